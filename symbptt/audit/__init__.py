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
from dataclasses import replace

from ..formula.ast import Binary, Call, Index, Name, Step
from ..models.spec import ModelSpec
from .latex_reader import Reading, Skipped
from .report import AuditReport
from .sources import FORMATS, Document, pieces

__all__ = ["audit", "AuditReport", "parse_map"]


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
        if model_name not in known and model_name not in _ACTIVATIONS:
            raise InvalidArgumentError(
                f"--map gives {author} as {model_name!r}, which is not a name of the model "
                f"({', '.join(sorted(known))})"
            )


def audit(
    source: str,
    *,
    format: str = "text",  # noqa: A002 (the option's name)
    model: ModelSpec | None = None,
    convention: str | None = None,
    mapping: str | Mapping[str, str] | None = None,
    seed: int = 0,
    one_example: bool = False,
    options_model: ModelSpec | None = None,
    loss: str | None = None,
) -> AuditReport:
    """Audit a derivation written in the formula language (`format="text"`), LaTeX, Markdown
    or a Jupyter notebook's markdown cells.

    Without `model`, a derivation that states its forward equations is judged against the
    model they define (read as a model file, docs/models.md); one that does not, against the
    vanilla RNN. `convention` (row or column) is read off the forward equations when not
    given. `mapping` gives the author's symbols as the model's (`"W=W_h,U=W_x"`);
    `one_example` audits equations written for one example (N = 1, as textbooks write them);
    `options_model`: a variant the user asked for beside the author's equations (the report
    says where they disagree, and the author's lines are what is judged); `loss`: the loss's
    name when the derivation's definition of it does not say (J, Q).
    Lines that cannot be read are findings of their own (status "unread"), never an abort.
    Raises InvalidArgumentError for bad options.
    """
    from ..engine.matrix_form import CONVENTIONS, matrix_form
    from ..errors import InvalidArgumentError, SymbpttError
    from ..models import VANILLA
    from .check import audit_rules, unread_finding
    from .forward import LOSS_NAMES, author_model
    from .notation import normalize

    if format not in FORMATS:
        raise InvalidArgumentError(f"format={format!r} must be one of {', '.join(FORMATS)}")
    if convention is not None and convention not in CONVENTIONS:
        raise InvalidArgumentError(
            f"convention={convention!r} must be one of {', '.join(CONVENTIONS)}"
        )
    if not isinstance(source, str):
        raise InvalidArgumentError("the derivation must be text")
    if model is not None and model.options.truncate is not None:
        raise InvalidArgumentError(
            "--truncate cannot be audited: truncated BPTT has no one-index rules (its "
            "adjoints depend on the loss term as well as the step)"
        )
    names = parse_map(mapping)
    if loss is not None and not (isinstance(loss, str) and loss.isidentifier()):
        raise InvalidArgumentError(f"--loss takes a name (L, J, Q), not {loss!r}")
    document = pieces(source, format)
    reading = read_document(document, loss)
    names = _renamed_in_rules(reading, names)
    context = reading.context
    loss_names = set(LOSS_NAMES) | (context.loss_names if context is not None else set())
    if loss is not None:
        loss_names.add(loss)
    loss_names -= _states(reading.rules) - {loss}
    functions = dict(context.functions) if context is not None else {}
    functions.update({k: v for k, v in names.items() if v in _ACTIVATIONS})
    rules, notation = normalize(reading.rules, loss_names, functions)
    if context is not None:
        context.stepless = set(notation.stepless)
    author = None
    notes: list[str] = list(notation.notes)
    if model is not None:
        spec = model
        how = f"the {model.title or model.name} (--model)"
    else:
        author = author_model(rules, convention, loss_names, document.where)
        if author.spec is not None:
            spec, how = author.spec, author.how
            convention = convention or author.spec.definition.convention
        else:
            spec = options_model or VANILLA
            how = f"the {spec.title or spec.name} ({author.how})"
    convention = convention or "row"
    if spec.from_file:  # the author's model (or a file): its derivatives checked first
        from ..engine.trust import ensure_trusted

        ensure_trusted(spec)
    try:
        form = matrix_form(spec, convention)
    except SymbpttError as exc:
        if author is None or author.spec is None:
            raise
        spec = options_model or VANILLA
        how = f"the {spec.title or spec.name} (the model of the forward equations: {exc})"
        author = None
        form = matrix_form(spec, convention)
    _check_map({k: v for k, v in names.items() if v not in _ACTIVATIONS}, form)
    latex = format != "text"
    defining = author.forward if author is not None and author.spec is not None else set()
    constants = author.constants if author is not None and author.spec is not None else ()
    if author is not None and author.spec is not None and author.excluded:
        rules = [r for r in rules if id(r) not in author.excluded]
    if author is not None and author.spec is not None and author.rewrites:
        rules = _rewritten(rules, author.rewrites, defining)
    single = bool(one_example)
    if not single:
        why = _one_example(rules, convention, defining)
        if why:
            single = True
            notes.append(f"read for one example (N = 1): {why}")
    findings = audit_rules(
        rules,
        form,
        names,
        seed,
        latex=latex,
        single=single,
        defining=defining,
        zeros=author.zeros if author is not None and author.spec is not None else (),
        spelling=context if latex else None,
        adjoint_names={v: k for k, v in notation.adjoint_names.items()},
        where=document.where,
    )
    if author is not None and author.spec is None and author.forward_rules:
        findings = _not_this_model(findings, author, spec)
    if author is not None:
        findings += [_problem(r, why) for r, why in author.problems]
    findings += [unread_finding(u) for u in reading.unread]
    findings += [_naming(r, what) for r, what in notation.names]
    findings += [_naming(s) for s in reading.skipped if s.what == "names a function"]
    findings.sort(key=lambda f: f.rule.line)
    if defining and options_model is not None:
        notes += _disagreements(rules, defining, options_model, convention, seed, one_example)
    return AuditReport.build(
        findings,
        form,
        names,
        format,
        skipped=[s for s in reading.skipped if s.what != "names a function"]
        + [Skipped(r.line, r.text, "a constant, no claim") for r in constants]
        + [Skipped(r.line, r.text, "a condition, no rule") for r in notation.conditions],
        document=document,
        how=how,
        notes=notes,
        model_text=author.text if author is not None else "",
    )


def _one_example(rules, convention: str, defining: set) -> str | None:
    """Why the derivation is about one example (N = 1), or None: it uses Jacobians (of a
    minibatch they would be tensors), or its own forward equations define the model and no
    rule names the minibatch (N, a sum of rows or columns, ones): a derivation in columns,
    or in rows written for one example (a 1 x D row)."""
    from .forward import _walk

    calls = {
        n.function
        for r in rules
        for tree in (r.expr, r.lhs)
        if tree is not None
        for n in _walk(tree)
        if isinstance(n, Call)
    }
    if calls & {"jac", "jacplus", "outer"}:
        return (
            "the derivation uses Jacobians or outer products of vectors (of a minibatch they "
            "would be tensors)"
        )
    if not defining:
        return None
    names = {
        n.name
        for r in rules
        for tree in (r.expr, r.lhs)
        if tree is not None
        for n in _walk(tree)
        if isinstance(n, (Name, Step))
    }
    if "N" in names or _sums_ones(rules) or calls & {"sum_rows", "sum_cols", "sum_examples"}:
        return None
    if convention == "column":
        return "its forward equations are written in columns and no rule names a minibatch"
    return (
        "no rule names a minibatch (no N, no sum over examples or rows): a row is one "
        "example's vector"
    )


def _states(rules) -> set[str]:
    """Names a rule defines at step t from their own previous step (C_t = f_t * C_{t-1} +
    ...): states of the model, never a loss, whatever their letter (Colah's cell state C)."""
    from .forward import _walk

    out = set()
    for r in rules:
        if r.claim or r.index is None or r.index.anchor != "t" or r.index.offset != 0:
            continue
        for n in _walk(r.expr):
            if isinstance(n, Step) and n.name == r.target and n.index == Index("t", -1):
                out.add(r.target)
    return out


def _sums_ones(rules) -> bool:
    """A rule sums rows or columns with a vector of ones (1^T X, X 1): a minibatch."""
    from .build import _is_ones
    from .forward import _walk

    return any(
        isinstance(n, Binary)
        and n.op == "@"
        and (_is_ones(n.left, transposed=True) or _is_ones(n.right, transposed=False))
        for r in rules
        for tree in (r.expr, r.lhs)
        if tree is not None
        for n in _walk(tree)
    )


#: Functions --map can name a letter as (f=tanh).
_ACTIVATIONS = ("tanh", "sigmoid", "relu", "identity")


def _renamed_in_rules(reading: Reading, names: dict) -> dict:
    """--map pairs whose model name is a name the derivation itself uses (b_1=b where the
    author writes both, delta=dJ in a derivation that has J): the rules are renamed, and
    the pairs left are for the model (the built-in or --model one)."""
    from dataclasses import replace as _replace

    from .notation import _map

    used: set[str] = set()
    for r in reading.rules:
        used.add(r.target)
        for tree in (r.expr, r.lhs):
            if tree is None:
                continue
            for n in _names_of(tree):
                used.add(n)
    own = {k: v for k, v in names.items() if v in used or v.removeprefix("d") in used}
    if not own:
        return names

    def f(n):
        if isinstance(n, (Name, Step)) and n.name in own:
            return _replace(n, name=own[n.name])
        if isinstance(n, (Name, Step)) and n.name.startswith("d") and n.name[1:] in own:
            return _replace(n, name="d" + own[n.name[1:]])
        return None

    rules = []
    for r in reading.rules:
        target = own.get(r.target, r.target)
        if r.target.startswith("d") and r.target[1:] in own:
            target = "d" + own[r.target[1:]]
        lhs = None if r.lhs is None else _map(r.lhs, f)
        rules.append(_replace(r, target=target, expr=_map(r.expr, f), lhs=lhs))
    reading.rules = rules
    return {k: v for k, v in names.items() if k not in own}


def _names_of(tree) -> set[str]:
    from .notation import _walk

    return {n.name for n in _walk(tree) if isinstance(n, (Name, Step))}


def _rewritten(rules, rewrites: dict, defining: set) -> list:
    """The rules with the names that stand for an expression (a weight's block) written as
    it; a rule's identity (the author's forward lines) kept."""
    from dataclasses import replace as _replace

    from .notation import _map

    def f(n):
        if isinstance(n, Name) and n.name in rewrites:
            return rewrites[n.name]
        return None

    out = []
    for r in rules:
        if id(r) in defining:
            out.append(r)
            continue
        lhs = None if r.lhs is None else _map(r.lhs, f)
        out.append(_replace(r, expr=_map(r.expr, f), lhs=lhs))
    return out


def _not_this_model(findings: list, author, spec) -> list:
    """The derivation states forward equations symbptt could not make a model of: when they
    are not the fallback model's either (most of them do not hold for it), its rules are about
    another model, and no verdict of the fallback's is given: they are not judged, and say
    why (a checker's "wrong" must be about the author's model)."""
    ids = {id(r) for r in author.forward_rules}
    forward = [f for f in findings if id(f.rule) in ids or f.rule.text in author.forward_texts]
    failing = [f for f in forward if f.status not in ("right", "model", "defines")]
    if not forward or 2 * len(failing) <= len(forward):
        return findings  # the fallback's model is the author's (with a slip or two)
    why = (
        f"not judged: the forward equations are not the {spec.title or spec.name}'s, and "
        f"{author.how}; give the model with --model FILE (docs/models.md)"
    )
    out = []
    for f in findings:
        if f.status in ("wrong", "shape", "compensated", "right", "defines"):
            f.status, f.message = "unchecked", why
            f.classification = f.counterexample = f.correction = None
        out.append(f)
    return out


def _naming(item, what: str = ""):
    """A definition that names something (delta := dJ/du, f = tanh): a finding that holds."""
    from ..formula.ast import Rule as _Rule
    from .check import Finding

    if isinstance(item, _Rule):
        return Finding(item, "defines", what)
    rule = _Rule("?", None, None, item.line, item.source)
    return Finding(rule, "defines", "names the activation function (a definition)")


def _problem(rule, why: str):
    from .check import Finding

    return Finding(rule, "unread", why)


def _disagreements(rules, defining, options_model, convention, seed, one_example) -> list[str]:
    """Where the options a user gave describe another model than the author's lines: which
    lines, under which option (the author's lines are what is judged)."""
    from ..engine.matrix_form import matrix_form
    from .check import audit_rules

    forward = [r for r in rules if id(r) in defining]
    try:
        form = matrix_form(options_model, convention)
        found = audit_rules(forward, form, {}, seed, single=bool(one_example))
    except Exception:
        return []
    bad = [f.rule.line for f in found if f.status not in ("right", "defines")]
    if not bad:
        return []
    lines = ", ".join(map(str, sorted(set(bad))))
    return [
        f"the options given describe the {options_model.title or options_model.name} "
        f"({_variant(options_model)}), which lines {lines} of the derivation do not state: "
        "judged by the derivation's own lines"
    ]


def _variant(spec) -> str:
    from ..models.spec import describe_model

    return describe_model(spec.describe()) or "the vanilla RNN"


def read_document(document: Document, loss: str | None = None) -> Reading:
    """Every rule of a derivation's math that can be read; every other line with its reason,
    and the notation that states nothing, skipped."""
    from .latex_reader import Context, read_latex_document

    reading = Reading()
    context = None
    if document.format != "text":  # one context: the loss named in one display is the loss
        context = Context.of("\n".join(p.text for p in document.pieces), loss=loss)
    for piece in document.pieces:
        if context is not None:
            context.declare(piece.text)  # k \in \{f, i, o\}: for what follows
        if document.format == "text":
            reading.extend(_read_text_soft(piece.text, piece.line))
        elif piece.display or "=" in piece.text:
            reading.extend(read_latex_document(piece.text, piece.line, context))
    reading.context = context
    return reading


def _read_text_soft(source: str, first_line: int) -> Reading:
    """The formula language, line by line: a line that does not parse is not read (with the
    syntax error's column), and the rest still is."""
    from ..formula.reader import FormulaSyntaxError, read_text
    from .latex_reader import Unread

    reading = Reading()
    for number, raw in enumerate(source.splitlines(), start=first_line):
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        try:
            rules = read_text(line)
        except FormulaSyntaxError as exc:
            message = str(exc).splitlines()[0]
            head, _, reason = message.partition(": ")
            column = int(head.rsplit(" ", 1)[-1]) if "column" in head else 1
            reading.unread.append(Unread(number, column, raw.rstrip(), reason or message))
            continue
        for rule in rules:
            reading.rules.append(replace(rule, line=number, text=line.strip()))
    return reading
