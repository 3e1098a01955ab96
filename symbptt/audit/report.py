"""The audit's report: a verdict per rule, the gradients the derivation determines, rendered
as text, JSON or Markdown (Jupyter)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["AuditReport"]


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

    @classmethod
    def build(cls, findings, form, mapping, format) -> AuditReport:
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
        # Compensation is no excuse, and an unchecked definition is not a right one.
        ok = all(f.status in ("right", "defines") for f in findings)
        return cls(
            ok,
            findings,
            form.convention,
            spec.describe(),
            [reverse.get(n, n) for n in determined],
            [reverse.get(n, n) for n in undetermined],
            format,
        )

    @property
    def wrong(self) -> list:
        return [f for f in self.findings if f.status not in ("right", "defines")]

    def to_dict(self) -> dict:
        return _finite(self._dict())

    def _dict(self) -> dict:
        return {
            "ok": self.ok,
            "convention": self.convention,
            "model": self.model,
            "determined": self.determined,
            "undetermined": self.undetermined,
            "findings": [
                {
                    "line": f.rule.line,
                    "rule": f.rule.text,
                    "target": f.rule.label,
                    "status": f.status,
                    "message": f.message,
                    "classification": f.classification,
                    "counterexample": f.counterexample,
                    "correction": f.correction,
                }
                for f in self.findings
            ],
        }

    def text(self) -> str:
        lines = []
        for f in self.findings:
            mark = {"right": "ok ", "defines": "def", "unchecked": "???"}.get(f.status, "BAD")
            lines.append(f"{mark} line {f.rule.line}: {f.rule.text}")
            if f.status in ("right", "defines"):
                continue
            what = {
                "shape": "does not type-check",
                "compensated": "is compensated",
                "unchecked": "is not checked",
            }.get(f.status, "is wrong")
            lines.append(f"      {what}: {f.message}")
            if f.classification:
                lines.append(f"      likely: {f.classification}")
            if f.counterexample:
                lines.append(f"      counterexample: {_example(f.counterexample)}")
            if f.correction:
                lines.append(f"      should be: {f.correction}")
        verdict = "every rule holds" if self.ok else f"{len(self.wrong)} rule(s) do not hold"
        lines.append(f"{verdict} ({self.convention} convention)")
        if self.determined:
            lines.append(f"gradients the derivation determines: {', '.join(self.determined)}")
        if self.undetermined:
            lines.append(f"left undetermined: {', '.join(self.undetermined)}")
        return "\n".join(lines) + "\n"

    def _repr_markdown_(self) -> str:
        return "```\n" + self.text() + "```\n"


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
