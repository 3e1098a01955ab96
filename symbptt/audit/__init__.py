"""Auditing hand-written BPTT derivations: `audit(text)` says which rule is wrong, why, with a
counterexample, and what it should be.

    >>> from symbptt.audit import audit
    >>> report = audit("dh[t] = do[t] @ V.T")  # the seed blog's dh: no recurrent term
    >>> report.ok, report.findings[0].classification

The readers (`text_reader`, `latex_reader`) turn text into rules with a grammar, never by
evaluating it; `build` gives every name its meaning and shape in the model and convention;
`check` judges each rule on its own against the engine's values.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..models.spec import ModelSpec
from .report import AuditReport

__all__ = ["audit", "AuditReport", "parse_map"]

FORMATS = ("text", "latex")


def parse_map(text: str | Mapping[str, str] | None) -> dict[str, str]:
    """`W=W_h,U=W_x` (the author's symbol = the model's), validated."""
    from ..errors import InvalidArgumentError

    if not text:
        return {}
    if isinstance(text, Mapping):
        pairs = dict(text)
    else:
        pairs = {}
        for item in filter(None, (p.strip() for p in text.split(","))):
            if item.count("=") != 1:
                raise InvalidArgumentError(f"--map takes AUTHOR=MODEL pairs, got {item!r}")
            key, value = (s.strip() for s in item.split("="))
            if key in pairs:
                raise InvalidArgumentError(f"--map names {key!r} twice")
            pairs[key] = value
    for key, value in pairs.items():
        if not (isinstance(key, str) and key.isidentifier() and isinstance(value, str)):
            raise InvalidArgumentError(f"--map pairs are names: {key!r}={value!r}")
    return pairs


def _check_map(names: dict, form) -> None:
    """--map values must be the model's names (or their gradients): a typo would otherwise
    leave a symbol unchecked."""
    from ..errors import InvalidArgumentError

    spec = form.spec
    known = {*spec.names, *(line.target.base for line in (*form.model, *form.adjoints))}
    known |= {"d" + n for n in spec.gradient_names} | {"N", "T", "D", "H", "C", *spec.size_names}
    for author, model_name in names.items():
        if model_name not in known:
            raise InvalidArgumentError(
                f"--map gives {author} as {model_name!r}, which is not a name of the model "
                f"({', '.join(sorted(known))})"
            )


def audit(
    source: str,
    *,
    format: str = "text",  # noqa: A002 (the option's name)
    model: ModelSpec | None = None,
    convention: str = "row",
    mapping: str | Mapping[str, str] | None = None,
    seed: int = 0,
    one_example: bool = False,
) -> AuditReport:
    """Audit a derivation written in the formula language (`format="text"`) or in LaTeX.

    `mapping` gives the author's symbols as the model's (`"W=W_h,U=W_x"`); `one_example`
    audits equations written for one example (N = 1, as textbooks write them).
    Raises FormulaSyntaxError (a line, a column, what was expected) for text that does not
    parse, and InvalidArgumentError for bad options.
    """
    from ..engine.matrix_form import CONVENTIONS, matrix_form
    from ..errors import InvalidArgumentError
    from ..models import VANILLA
    from .check import audit_rules

    if format not in FORMATS:
        raise InvalidArgumentError(f"format={format!r} must be one of {', '.join(FORMATS)}")
    if convention not in CONVENTIONS:
        raise InvalidArgumentError(
            f"convention={convention!r} must be one of {', '.join(CONVENTIONS)}"
        )
    if not isinstance(source, str):
        raise InvalidArgumentError("the derivation must be text")
    spec = VANILLA if model is None else model
    if spec.options.truncate is not None:
        raise InvalidArgumentError(
            "--truncate cannot be audited: truncated BPTT has no one-index rules (its "
            "adjoints depend on the loss term as well as the step)"
        )
    names = parse_map(mapping)
    if format == "latex":
        from .latex_reader import read_latex

        rules = read_latex(source)
    else:
        from ..formula.reader import read_text

        rules = read_text(source)
    form = matrix_form(spec, convention)
    _check_map(names, form)
    findings = audit_rules(
        rules, form, names, seed, latex=format == "latex", single=bool(one_example)
    )
    return AuditReport.build(findings, form, names, format)
