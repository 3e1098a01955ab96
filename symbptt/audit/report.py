"""The audit's report: a verdict per rule, the gradients the derivation determines, rendered
as text, JSON or Markdown (Jupyter)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["AuditReport"]

#: Statuses of a rule that holds: right, a quantity the author defines and uses, an equation
#: that defines the model.
_HOLDS = ("right", "defines", "model")


@dataclass
class AuditReport:
    """`ok` when every rule holds; `findings` one per rule, in the file's order."""

    ok: bool
    findings: list
    convention: str
    model: dict
    determined: list[str] = field(default_factory=list)
    undetermined: list[str] = field(default_factory=list)
    format: str = "text"
    #: Notation that states nothing, left out (equation numbers, prose, annotations).
    skipped: list = field(default_factory=list)
    #: Where a line is (a notebook's cell): the document the findings point into.
    document: object = None
    #: Which model the rules were judged against, and how it was found.
    how: str = ""
    notes: list = field(default_factory=list)
    #: The author's model as a model file (when it came from the derivation's equations).
    model_text: str = ""

    @classmethod
    def build(
        cls,
        findings,
        form,
        mapping,
        format,
        skipped=(),
        document=None,
        how: str = "",
        notes=(),
        model_text: str = "",
    ) -> AuditReport:
        spec = form.spec
        reverse = {m: a for a, m in mapping.items()}
        written = set()
        for f in findings:
            name = f.rule.target
            canonical = mapping.get(name, name)
            if name.startswith("d") and name[1:] in mapping:
                canonical = "d" + mapping[name[1:]]
            written.add(canonical)
        determined = [n for n in spec.gradient_names if "d" + n in written]
        undetermined = [n for n in spec.gradient_names if "d" + n not in written]
        # Compensation is no excuse, an unchecked definition is not a right one, and a line
        # that was not read is not a right one either.
        ok = all(f.status in _HOLDS for f in findings)
        return cls(
            ok,
            findings,
            form.convention,
            spec.describe(),
            [reverse.get(n, n) for n in determined],
            [reverse.get(n, n) for n in undetermined],
            format,
            list(skipped),
            document,
            how,
            list(notes),
            model_text,
        )

    @property
    def counts(self) -> dict[str, int]:
        """How many rules were read, right, wrong; lines not read; notes skipped."""
        read = [f for f in self.findings if f.status != "unread"]
        return {
            "rules_read": len(read),
            "right": sum(f.status in _HOLDS for f in read),
            "wrong": sum(f.status not in _HOLDS and f.status != "unchecked" for f in read),
            "not_checked": sum(f.status == "unchecked" for f in read),
            "not_read": sum(f.status == "unread" for f in self.findings),
            "skipped": len(self.skipped),
        }

    def summary(self) -> str:
        """'12 rules read, 11 right, 1 wrong, 2 lines not read (3 notes skipped)'."""
        c = self.counts
        parts = [
            f"{c['rules_read']} rule{'s' * (c['rules_read'] != 1)} read",
            f"{c['right']} right",
            f"{c['wrong']} wrong",
        ]
        if c["not_checked"]:
            parts.append(f"{c['not_checked']} not checked")
        if c["not_read"]:
            parts.append(f"{c['not_read']} line{'s' * (c['not_read'] != 1)} not read")
        text = ", ".join(parts)
        if c["skipped"]:
            text += f" ({c['skipped']} note{'s' * (c['skipped'] != 1)} without a claim skipped)"
        return text

    def where(self, line: int) -> str:
        return self.document.where(line) if self.document is not None else f"line {line}"

    @property
    def wrong(self) -> list:
        return [f for f in self.findings if f.status not in (*_HOLDS, "unread")]

    def to_dict(self) -> dict:
        return _finite(self._dict())

    def _dict(self) -> dict:
        return {
            "ok": self.ok,
            "summary": self.summary(),
            "counts": self.counts,
            "convention": self.convention,
            "model": self.model,
            "how": self.how,
            "notes": self.notes,
            "model_file": self.model_text or None,
            "determined": self.determined,
            "undetermined": self.undetermined,
            "findings": [
                {
                    "line": f.rule.line,
                    "where": self.where(f.rule.line),
                    "column": f.column,
                    "rule": f.rule.text,
                    "member": getattr(f.rule, "member", 0) or None,
                    "target": f.rule.label if f.status != "unread" else None,
                    "status": f.status,
                    "message": f.message,
                    "classification": f.classification,
                    "counterexample": f.counterexample,
                    "correction": f.correction,
                }
                for f in self.findings
            ],
            "skipped": [
                {"line": s.line, "where": self.where(s.line), "what": s.what, "text": s.source}
                for s in self.skipped
            ],
        }

    def text(self) -> str:
        lines = []
        previous = None
        for group in _chains(self.findings):
            if len(group) > 1:  # A = B = C: one entry, saying which member fails
                lines += self._chain(group)
                previous = None
                continue
            (f,) = group
            if f.status in _HOLDS and previous == (f.rule.line, f.rule.text, f.status):
                continue  # another rule per gate that holds
            previous = (f.rule.line, f.rule.text, f.status)
            lines.append(f"{_MARKS.get(f.status, 'BAD')} {self.where(f.rule.line)}: {f.rule.text}")
            lines += _details(f)
        if self.skipped:
            lines.append("skipped (they state nothing):")
            for s in self.skipped:
                lines.append(f"      {self.where(s.line)}: {s.what}: {s.source}")
        if self.ok:
            verdict = "every rule holds"
        elif self.counts["wrong"]:
            verdict = f"{self.counts['wrong']} rule(s) do not hold"
        elif self.counts["not_checked"]:
            verdict = "no rule is wrong, but not every rule could be checked"
        else:
            verdict = "every rule read holds, but not every line was read"
        lines.append(f"{verdict}: {self.summary()} ({self.convention} convention)")
        if self.how:
            lines.append(f"model: {self.how}")
        for note in self.notes:
            lines.append(f"note: {note}")
        if self.determined:
            lines.append(f"gradients the derivation determines: {', '.join(self.determined)}")
        if self.undetermined:
            lines.append(f"left undetermined: {', '.join(self.undetermined)}")
        return "\n".join(lines) + "\n"

    def _chain(self, group: list) -> list[str]:
        """The findings of one chain A = B = C: one line; when a member fails, which one."""
        first = group[0]
        failing = [f for f in group if f.status not in _HOLDS]
        if not failing:
            mark = "ok " if any(f.status == "right" for f in group) else _MARKS[first.status]
            out = [f"{mark} {self.where(first.rule.line)}: {first.rule.text}"]
            for f in group:
                out += _details(f)
            return out
        worst = failing[0]
        out = [
            f"{_MARKS.get(worst.status, 'BAD')} {self.where(first.rule.line)}: {first.rule.text}"
        ]
        members = _member_texts(first.rule.text)
        for f in failing:
            k = f.rule.member
            if k and k < len(members):
                out.append(f"      member {k} of the chain (= {members[k].strip()}):")
            out += _details(f)
        held = [f.rule.member for f in group if f.status in _HOLDS and f.rule.member]
        if held:
            which = ", ".join(str(k) for k in held)
            verb = "hold" if len(held) > 1 else "holds"
            out.append(f"      member{'s' * (len(held) > 1)} {which} of the chain {verb}")
        return out

    def _repr_markdown_(self) -> str:
        return "```\n" + self.text() + "```\n"


_MARKS = {"right": "ok ", "defines": "def", "model": "mod", "unchecked": "???", "unread": "---"}


def _chains(findings) -> list[list]:
    """The findings in order, those of one chain A = B = C (one line, one text, members
    numbered) together."""
    out: list[list] = []
    for f in findings:
        last = out[-1][0] if out else None
        chained = getattr(f.rule, "member", 0) or (
            f.status == "unread" and f.message.startswith("a member of the chain")
        )
        if (
            last is not None
            and chained
            and (last.rule.line, last.rule.text) == (f.rule.line, f.rule.text)
        ):
            out[-1].append(f)
        else:
            out.append([f])
    return out


def _member_texts(text: str) -> list[str]:
    from .latex_reader import _top_level_split

    return _top_level_split(text.replace("&", " "), "=")


def _details(f) -> list[str]:
    """The lines under a finding's own: why it fails, or how it was read when that says
    something (a product read from the smallest index up)."""
    if f.status in _HOLDS:
        if f.status == "right" and f.message:
            return [f"      note: {f.message}"]
        return []
    if f.status == "unread":
        out = [f"      not read: {f.message}"]
        if f.column:
            out.append(f"      {f.rule.text}")
            out.append(f"      {' ' * (f.column - 1)}^")
        return out
    what = {
        "shape": "does not type-check",
        "compensated": "is compensated",
        "unchecked": "is not checked",
    }.get(f.status, "is wrong")
    out = [f"      {what}: {f.message}"]
    if f.classification:
        out.append(f"      likely: {f.classification}")
    if f.counterexample:
        out.append(f"      counterexample: {_example(f.counterexample)}")
    if f.correction:
        out.append(f"      should be: {f.correction}")
    return out


def _finite(value):
    """JSON has no inf or NaN: such numbers are written as strings ("inf", "nan")."""
    if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _example(c: dict) -> str:
    dims = " ".join(f"{k}={v}" for k, v in c["dims"].items())
    at = "" if c.get("t") is None else f", t={c['t']}"
    if "yours" in c:
        return f"{dims}{at}: yours {c['yours']}, true {c['true']}"
    return f"{dims}{at}: largest error {c['max_error']:.3g}"
