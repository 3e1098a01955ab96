"""The result of a gradient check: per-parameter verdicts, rendered as a table or as JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from rich.console import Console
from rich.table import Table

from ..errors import UnknownNameError
from ..models.spec import describe_model
from .mistakes import CAUSES

__all__ = ["ParameterResult", "Report"]


@dataclass
class ParameterResult:
    """The verdict on one gradient (or on the loss, under the name "loss")."""

    name: str
    status: str  # "OK", "WRONG" or "NOT CHECKED"
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    worst_index: tuple[int, ...] | None = None
    first_wrong_step: int | None = None
    likely_cause: str | None = None
    cause_detail: str | None = None
    message: str | None = None
    #: The shape at which these figures were measured.
    shape: str | None = None
    #: The user's own name for the array (`Wf` for the part `W.f`), when it has another.
    user: str | None = None

    @property
    def label(self) -> str:
        """How the report names it: the user's name, else the model's."""
        return self.user or self.name

    @property
    def explanation(self) -> str:
        parts = []
        if self.message:
            parts.append(self.message)
        if self.likely_cause:
            text = CAUSES.get(self.likely_cause, self.likely_cause)
            parts.append(
                f"likely cause: {text}" + (f" ({self.cause_detail})" if self.cause_detail else "")
            )
        if self.first_wrong_step is not None:
            parts.append(f"first wrong with sequences of length t={self.first_wrong_step}")
        return "; ".join(parts)


@dataclass
class Report:
    """Everything `check_gradients` learned; `ok` is True when every checked gradient is right."""

    ok: bool
    form: str
    layout: str
    examples: int
    distinct_shapes: int = 0
    dims: dict[str, int] | None = None  # the smallest failing shape, when one was found
    results: list[ParameterResult] = field(default_factory=list)
    #: Why the function is not right beyond wrong values: it raised, returned something
    #: unusable, hung, crashed, could not be imported, or the check ran out of time.
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    tolerance: dict[str, float] = field(default_factory=dict)
    #: The `file.py:function` checked, when a target string was given.
    target: str | None = None
    #: The function gave different answers for the same inputs.
    inconsistent: bool = False
    #: What the function wrote to stdout and stderr (its subprocesses too), trimmed.
    output: str = ""
    #: The declared precision, if any.
    precision: str | None = None
    #: The whole check ran out of time before it could be sure.
    out_of_time: bool = False
    #: The model variant checked: its name and options.
    model: dict | None = None
    #: How the function was called: "plain", "char-rnn" or "pair"; x batch-first or not.
    style: str = "plain"
    batch_first: bool = False
    #: The axes of the per-step data as the code holds them ("TNF" time-major, "NTF"
    #: batch-first, "FNT" features first, "TF" one example per call, ...).
    data_axes: str | None = None
    #: Right on ordinary inputs but NaN or inf on saturated ones where the truth is finite:
    #: one sentence (the command line exits 4).
    overflow: str | None = None
    #: A convention the search found the code right under: {"argv", "toml", "convention"}.
    suggestion: dict | None = None
    #: How the code was called, in a few words, when not in the model's own arrays.
    convention: str | None = None
    #: The convention file (TOML) of the convention the verdict was reached under.
    toml: str | None = None
    #: The seed every problem was drawn from (`seed=`, `--seed` replays the check exactly).
    seed: int | None = None
    #: How the code was kept apart from the checker: "bubblewrap+cgroup", "bubblewrap+rlimits",
    #: "rlimits" (a worker process with resource limits only) or "in-process" (isolate=False).
    isolation: str | None = None

    def result(self, name: str) -> ParameterResult:
        """The verdict on one gradient (or "loss"); UnknownNameError if the report has none."""
        for r in self.results:
            if r.name == name:
                return r
        known = ", ".join(r.name for r in self.results) or "none: the check could not run"
        raise UnknownNameError(f"the report has no result {name!r} (it has {known})")

    @property
    def wrong(self) -> list[str]:
        return [r.name for r in self.results if r.status == "WRONG"]

    def results_from(self, at_failing: dict | None, at_generic: dict | None) -> None:
        """Merge the diagnoses at the smallest failing shape and at the generic shape.

        The smallest failing shape explains best; the generic shape (every size > 1, D != H)
        catches what the small one hides and tells causes apart best.
        """
        if at_failing is None or at_generic is None:
            self.results = list((at_failing or at_generic or {}).values())
            return
        merged = []
        for name, small in at_failing.items():
            big = at_generic[name]
            if small.status == "WRONG":
                if big.status == "WRONG" and big.likely_cause:
                    small.likely_cause, small.cause_detail = big.likely_cause, big.cause_detail
                merged.append(small)
            else:
                merged.append(big)
        self.results = merged

    def to_dict(self) -> dict:
        return asdict(self)

    def render(self, console: Console | None = None) -> None:
        """Print the report as a table (rich), with the failing shape and notes."""
        console = console or Console()
        verdict = (
            "[green]all checked gradients are right[/green]" if self.ok else "[red]WRONG[/red]"
        )
        if self.overflow and not self.wrong and not self.error:
            verdict = "[yellow]right on ordinary inputs, overflows on saturated ones[/yellow]"
        if self.target:
            console.print(f"target: {safe_text(self.target)}", highlight=False, soft_wrap=True)
        if self.isolation:
            console.print(f"isolation: {self.isolation}", highlight=False)
        variant = describe_model(self.model)
        if variant:
            console.print(f"model: {variant}", highlight=False, soft_wrap=True)
        how = [f"{self.form} form", f"{self.layout} layout"]
        if self.style != "plain":
            how.insert(0, f"{self.style} style")
        if self.data_axes and self.data_axes not in ("TNF", "NTF"):
            how.append(f"data axes {self.data_axes}")
        elif self.batch_first:
            how.append("batch-first")
        examples = f"{self.examples} example{'s' * (self.examples != 1)}"
        if self.distinct_shapes:
            plural = "s" * (self.distinct_shapes != 1)
            examples += f" over {self.distinct_shapes} shape{plural}"
        console.print(
            f"symbptt check ({', '.join(how)}, {examples}): {verdict}",
            soft_wrap=True,
        )
        if self.seed is not None:
            console.print(f"seed: {self.seed} (--seed {self.seed} replays this check)")
        if self.overflow:
            console.print(
                f"[yellow]overflow:[/yellow] {safe_text(self.overflow)}",
                highlight=False,
                soft_wrap=True,
            )
        if self.error:
            console.print(
                f"[red]error:[/red] {safe_text(self.error)}", highlight=False, soft_wrap=True
            )
        if self.convention:
            console.print(
                f"convention: {safe_text(self.convention)}", highlight=False, soft_wrap=True
            )
        if self.dims:
            shape = " ".join(f"{k}={v}" for k, v in self.dims.items())
            console.print(f"smallest failing shape: {shape}")
        if self.results:
            table = Table()
            for col in (
                "gradient",
                "verdict",
                "max abs err",
                "max rel err",
                "worst at",
                "at shape",
            ):
                table.add_column(col)
            for r in self.results:
                colour = {"OK": "green", "WRONG": "red"}.get(r.status, "yellow")
                table.add_row(
                    r.label,
                    f"[{colour}]{r.status}[/{colour}]",
                    _num(r.max_abs_error),
                    _num(r.max_rel_error),
                    "" if r.worst_index is None else str(r.worst_index),
                    r.shape or "",
                )
            console.print(table)
            for r in self.results:
                if r.status == "WRONG" and r.explanation:
                    label = r.name if r.name == "loss" else f"d{r.label}"
                    console.print(
                        f"  {label}: {safe_text(r.explanation)}", highlight=False, soft_wrap=True
                    )
        for note in self.notes:
            console.print(f"note: {safe_text(note)}", highlight=False)
        if self.output:
            lines = self.output.rstrip("\n").splitlines()
            shown = (
                lines
                if len(lines) <= 2 * _OUTPUT_LINES
                else (
                    lines[:_OUTPUT_LINES]
                    + [f"[... {len(lines) - 2 * _OUTPUT_LINES} lines ...]"]
                    + lines[-_OUTPUT_LINES:]
                )
            )
            console.print("your code printed (stdout and stderr, trimmed):", highlight=False)
            for line in shown:
                console.print(
                    f"  | {_printable(line)}", highlight=False, markup=False, soft_wrap=True
                )


#: Lines of the user's output the table shows from its start and from its end.
_OUTPUT_LINES = 10


def _printable(text: str) -> str:
    """The user's output with control characters (terminal escapes) shown, not obeyed."""
    return "".join(c if c.isprintable() or c == "\t" else f"\\x{ord(c):02x}" for c in text)


#: Option values of the plain model, not worth showing.
def safe_text(text: str) -> str:
    """Text that came from the user's code, safe to print with rich: no markup, no escapes."""
    from rich.markup import escape

    return escape(_printable(text))


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.2e}"
