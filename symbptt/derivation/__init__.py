"""Matrix-form BPTT derivations as documents: LaTeX, Markdown and the plain formula language.

    >>> from symbptt.derivation import derivation
    >>> d = derivation(T=3, wrt="W_h")          # derived, verified, ready to print
    >>> print(d.text())                         # the recurrences in the formula language
    >>> d.write("bptt.tex")                     # a standalone LaTeX document

`derivation` derives the model's recurrences by rule application (`engine.matrix_form`), lists
every path for small T (`engine.matrix_form.path_terms`), checks every line against the
element-level engine (`verify`), and only then builds the document (`document`).
"""

from __future__ import annotations

import keyword
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidArgumentError
from ..models.dims import Dims, resolve_name
from ..models.spec import ModelSpec
from .printers import LatexPrinter, latex_name

__all__ = ["Derivation", "derivation", "FORMATS", "MAX_T", "PATHS_MAX_T", "parse_names"]

FORMATS = ("tex", "md", "text")
#: The general-t recurrences hold for any T; T only sets the paths section and the title.
MAX_T = 10_000
#: Largest T whose paths are listed one by one (W_h has T(T+1)/2 of them).
PATHS_MAX_T = 4
#: Names a reader may not give a symbol: the language's functions and indices.
RESERVED = {
    "t", "T", "N", "D", "H", "C", "L", "sum", "sum_rows", "sum_cols", "sum_all", "tanh",
    "sigmoid", "relu", "step", "identity", "exp", "log", "softmax", "onehot", "logsumexp",
}  # fmt: skip
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)?")

Progress = Callable[[str, int, int], None]


@dataclass
class Derivation:
    """A verified derivation: print it as `latex()`, `markdown()` or `text()`, or `write` it.

    Jupyter shows it through `_repr_markdown_` (the whole document) and `_repr_latex_`.
    """

    T: int
    wrt: tuple[str, ...]
    convention: str
    names: dict[str, str]
    form: object
    document: object
    verification: object
    seconds: float
    _text: str | None
    #: The listed paths' terms by input name (PathTerm: the path and its matrix form, each
    #: verified against the engine); empty when T > 4 or there are too many to list.
    paths: dict = field(default_factory=dict)
    #: Why there is no text in the formula language (when `_text` is None).
    no_text: str = (
        "the formula language has one time index, and K-step truncated BPTT needs two (the "
        "loss step and the step of the use): use the tex or md format"
    )

    def latex(self, *, body: bool = False) -> str:
        """A standalone LaTeX document, or with `body=True` its body for \\input."""
        return self.document.latex_body() if body else self.document.latex()

    def markdown(self) -> str:
        """Markdown with $$ math (GitHub, Jupyter, KaTeX)."""
        return self.document.markdown()

    def text(self) -> str:
        """The recurrences in the plain formula language (docs/formula-language.md)."""
        if self._text is None:
            raise InvalidArgumentError(self.no_text)
        return self._text

    def render(self, format: str = "tex", *, body: bool = False) -> str:
        if format not in FORMATS:
            raise InvalidArgumentError(f"format={format!r} is not one of {', '.join(FORMATS)}")
        if format == "text":
            return self.text()
        return self.markdown() if format == "md" else self.latex(body=body)

    def write(
        self,
        path: str | Path,
        format: str | None = None,
        *,
        force: bool = False,
        body: bool = False,
    ) -> Path:
        """Write the document to `path` (format from its suffix unless given); an existing
        file is never overwritten without `force`."""
        from .output import write_new

        path = Path(path)
        format = format or format_of(path)
        return write_new(path, self.render(format, body=body), force=force)

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def _repr_latex_(self) -> str:
        from .document import recurrence_rows

        rows = recurrence_rows(self.form, self.wrt, self.names, self.T)
        return "$$\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}$$"


def format_of(path: Path) -> str:
    """The format a file name asks for: .tex, .md (or .markdown), anything else text."""
    suffix = path.suffix.lower()
    return {".tex": "tex", ".md": "md", ".markdown": "md"}.get(suffix, "text")


def parse_names(
    text: str | Mapping[str, str] | None, spec: ModelSpec, nodes: Sequence[str] = ("a", "h", "o")
) -> dict[str, str]:
    """The reader's names (`W_h=W,W_x=U` or a dict), validated: keys are the model's inputs
    and per-step quantities (`nodes`), values identifiers (letters, digits, one `_suffix`),
    all distinct, none reserved."""
    if not text:
        return {}
    if isinstance(text, str):
        pairs = {}
        for item in filter(None, (p.strip() for p in text.split(","))):
            if item.count("=") != 1:
                raise InvalidArgumentError(
                    f"--names takes NAME=YOURS pairs separated by commas, got {item!r}"
                )
            key, value = (s.strip() for s in item.split("="))
            pairs[key] = value
    else:
        pairs = dict(text)
    known = list(dict.fromkeys([*spec.names, *nodes, "yhat"]))
    for key, value in pairs.items():
        if key not in known:
            raise InvalidArgumentError(
                f"--names renames {key!r}, which is not a name of the {spec.name} model "
                f"({', '.join(known)})"
            )
        if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value) or len(value) > 24:
            raise InvalidArgumentError(
                f"--names gives {key} the name {value!r}: a name is letters and digits with at "
                "most one _suffix (W, W_hh, U2), at most 24 characters"
            )
        if value in RESERVED or keyword.iskeyword(value):
            raise InvalidArgumentError(f"--names gives {key} the name {value!r}, which is reserved")
    final = {k: pairs.get(k, k) for k in known}
    seen: dict[str, str] = {}
    for key, value in final.items():
        if value in seen:
            raise InvalidArgumentError(
                f"--names gives {seen[value]} and {key} the same name {value!r}"
            )
        seen[value] = key
    rendered: dict[str, str] = {}
    for key, value in final.items():  # W1 and W_1 both print as W_{1}
        tex = latex_name(value)
        if tex in rendered:
            raise InvalidArgumentError(
                f"--names gives {rendered[tex]} and {key} names that print alike "
                f"({final[rendered[tex]]!r} and {value!r})"
            )
        rendered[tex] = key
    per_step = {final[k] for k in known if k not in spec.names or _per_step(spec, k)}
    for key, value in pairs.items():
        if value.startswith("d") and (value[1:] in seen or value[1:] in final):
            raise InvalidArgumentError(
                f"--names gives {key} the name {value!r}, which reads as the gradient of "
                f"{value[1:]!r}"
            )
        head, _, suffix = value.partition("_")
        digits = re.fullmatch(r"([A-Za-z]+)(\d+)", value)
        if digits:
            head, suffix = digits.groups()
        if (
            head in per_step
            and head != value
            and (suffix in ("t", "k", "s", "T") or suffix.isdigit())
        ):
            raise InvalidArgumentError(
                f"--names gives {key} the name {value!r}, which reads as {head!r} at a step"
            )
    return pairs


def _why_no_gradient(spec: ModelSpec, name: str) -> str:
    """Why an input of the full model has no gradient in this variant."""
    o = spec.options
    if name in o.no_bias:
        return f"this variant has no bias {name} (--no-bias {name})"
    if spec.initial is None and name in {i.name for i in spec.base_inputs if i.role == "initial"}:
        return f"{name} is fixed at zero in this variant (--h0 zero): it has no gradient"
    if name == spec.sequence.name and spec.sequence.integer:
        return f"{name} holds token ids in this variant (--inputs tokens): ids have no gradient"
    return f"{name} is data (labels), not differentiated"


def _per_step(spec: ModelSpec, name: str) -> bool:
    return spec.input(name).role in ("sequence", "label", "initial")


def _wrt_list(wrt: str | Sequence[str], spec: ModelSpec) -> tuple[str, ...]:
    items = [w.strip() for w in wrt.split(",")] if isinstance(wrt, str) else list(wrt)
    items = [w for w in items if w]
    if not items:
        raise InvalidArgumentError("--wrt names no parameter")
    if items == ["all"]:
        return spec.gradient_names
    out: list[str] = []
    for w in items:
        if w not in spec.gradient_names and w in {i.name for i in spec.base_inputs}:
            raise InvalidArgumentError(f"--wrt {w}: {_why_no_gradient(spec, w)}")
        name = resolve_name(w, spec.gradient_names)
        if name not in out:
            out.append(name)
    return tuple(out)


def derivation(
    T: int = 3,
    wrt: str | Sequence[str] = "W_h",
    *,
    model: ModelSpec | None = None,
    convention: str = "row",
    names: str | Mapping[str, str] | None = None,
    expand: bool = False,
    handout: bool = False,
    notation: str = "fraction",
    progress: Progress | None = None,
) -> Derivation:
    """Derive, verify and lay out the BPTT derivation of dL/d(wrt) for T steps.

    `wrt` is a name, a comma list, a sequence or "all"; `model` a spec or variant (default the
    vanilla RNN); `convention` "row" (a_t = b + h_{t-1} W_h + x_t W_x) or "column"
    (a_t = b + W_h h_{t-1} + W_x x_t); `names` the reader's symbols (`"W_h=W,W_x=U"`);
    `expand` adds one entry of the first gradient written out in the raw inputs (T <= 3);
    `handout` moves the path listing and the verification paragraph to an appendix;
    `notation` "delta" writes the adjoint dL/da_t of a per-step quantity as delta^a_t in the
    LaTeX and Markdown documents (a parameter's gradient stays dL/dW; the formula language's
    text() is the same in either notation).

    Raises InvalidArgumentError / UnknownNameError for bad arguments, and
    DerivationCheckError if any line disagrees with the engine (then nothing is printed).
    """
    from .. import __version__
    from ..engine.derivatives import Derivation as Paths
    from ..engine.graph import unroll
    from ..engine.matrix_form import CONVENTIONS, matrix_form, path_terms
    from .document import NOTATIONS, PATHS_MAX_COUNT, Request, build, formula_text
    from .goodfellow import check_book, plain_vanilla
    from .verify import verify

    start = time.perf_counter()
    from ..models import VANILLA

    spec = VANILLA if model is None else model
    if isinstance(T, bool) or not isinstance(T, int) or not 1 <= T <= MAX_T:
        raise InvalidArgumentError(f"T={T!r} must be a whole number from 1 to {MAX_T}")
    if convention not in CONVENTIONS:
        raise InvalidArgumentError(
            f"convention={convention!r} is not one of {', '.join(CONVENTIONS)}"
        )
    if notation not in NOTATIONS:
        raise InvalidArgumentError(f"notation={notation!r} is not one of {', '.join(NOTATIONS)}")
    wrt = _wrt_list(wrt, spec)
    form = matrix_form(spec, convention)
    reader_names = parse_names(names, spec, [line.target.base for line in form.model])
    terms: dict = {}
    dropped: dict[str, int] = {}
    path_dims = spec.complete(Dims(N=2, D=3, H=2, C=3, T=T))
    all_terms = []
    counts, graph = None, None
    if T <= PATHS_MAX_T:
        graph = unroll(path_dims, spec=spec, max_seconds=None)
        derived = Paths(graph, [], [], {})  # listing and counting paths needs the graph only
        counts = {name: derived.path_count(name) for name in wrt}
        if sum(counts.values()) > PATHS_MAX_COUNT:  # a gated cell's hundreds: counted only
            graph = None
    if graph is not None:
        counts = None
        for name in wrt:
            paths = derived.paths(name)
            terms[name] = path_terms(graph, paths, convention)
            all_terms += terms[name]
            dropped[name] = derived.path_count(name, truncated=False) - len(paths)
    verification = verify(
        form,
        path_terms=all_terms,
        path_dims=path_dims if all_terms else None,
        shapes=_verification_shapes(spec, T),
        progress=progress,
    )
    if convention == "column" and plain_vanilla(spec):
        verification.comparisons += check_book()
    if expand and spec.from_file:
        raise InvalidArgumentError(
            "--expand writes an entry out for the built-in models only; a model file's "
            "derivation names every quantity"
        )
    expanded = _expanded_entry(spec, wrt[0], reader_names, form) if expand else None
    request = Request(
        T, wrt, reader_names, form, terms, dropped, expanded, counts, handout, notation
    )
    document = build(request, verification, __version__)
    no_text = {}
    if form.truncate is not None and form.truncate < T - 1:
        text = None
    else:
        try:
            text = formula_text(form, wrt, reader_names, T, __version__)
        except InvalidArgumentError as exc:  # what the plain language cannot write
            text, no_text = None, {"no_text": f"{exc}: use the tex or md format"}
    seconds = time.perf_counter() - start
    return Derivation(
        T,
        wrt,
        convention,
        reader_names,
        form,
        document,
        verification,
        seconds,
        text,
        terms,
        **no_text,
    )


#: The largest T the verification unrolls for K-step truncation (it needs T = K + 3).
MAX_VERIFY_T = 40


def _verification_shapes(spec: ModelSpec, T: int) -> list[Dims]:
    """The shapes the printed lines are checked at. Without truncation, SHAPES. With K-step
    truncation where it drops paths (T > K + 1), the printed lines are the truncated ones:
    checked at T = K + 2 and K + 3, where it drops some, and T = 1. Where it drops none
    (T <= K + 1), the printed lines are full BPTT, which holds for T <= K + 1: checked there."""
    from dataclasses import replace

    from .verify import SHAPES

    K = spec.options.truncate
    if K is None:
        return [spec.complete(d) for d in SHAPES]
    if K >= T - 1:
        return [replace(d, T=min(d.T, K + 1)) for d in SHAPES]
    if K + 3 > MAX_VERIFY_T:
        raise InvalidArgumentError(
            f"--truncate {K} with T={T}: the truncated formulas are checked at T = K + 3 = "
            f"{K + 3} steps, more than the {MAX_VERIFY_T} symbptt checks quickly; use K <= "
            f"{MAX_VERIFY_T - 3}"
        )
    a, b, c = SHAPES
    return [replace(a, T=K + 2), replace(b, T=K + 3), replace(c, T=1)]


def _expanded_entry(spec, name, names, form) -> tuple[str, list[str]]:
    """One entry of dL/d(name) for N = D = H = 1, C = 2 and T = 1 (T = 2 when it is 0 at
    T = 1, as dL/dW_h is with h0 = 0), written out in the raw inputs with SymPy's LaTeX
    printer, and checked against the compiled engine at a random point."""
    import numpy as np
    import sympy

    from ..engine.compile import gradient_function
    from ..engine.derivatives import derive
    from ..engine.graph import unroll
    from ..errors import DerivationCheckError

    for T in (1, 2):
        dims = Dims(N=1, D=1, H=1, C=2, T=T)
        derived = derive(unroll(dims, spec=spec))
        entry = derived.total_derivative(name).flat[0]
        expr = derived.expand(np.asarray([entry], dtype=object))[0]
        sym_expr = sympy.sympify(str(expr))  # our own generated expression, not user text
        if sym_expr != 0:
            break
    point = spec.random_point(dims, seed=7)
    entries = _entries(spec, dims, point, LatexPrinter(names), form.state)
    subs = {s: entries[str(s)][0] for s in sym_expr.free_symbols}
    ours = float(sym_expr.evalf(subs=subs))
    truth = float(np.asarray(gradient_function(dims, spec)(point)[name]).flat[0])
    if not np.isclose(ours, truth, rtol=1e-9, atol=1e-12):
        raise DerivationCheckError(
            f"the written-out entry of d{name} disagrees with the engine ({ours} vs {truth})"
        )
    pretty = {s: sympy.Symbol(entries[str(s)][1]) for s in sym_expr.free_symbols}
    tex = LatexPrinter(names)
    label = tex.symbol(name)
    sentence = (
        f"For $N = D = H = 1$, $C = 2$ and $T = {T}$, every matrix but those of the classes "
        f"is a number. The first entry of the gradient of ${label}$, written out in the raw "
        "inputs (a subscript $c$ is class $c$'s entry; $Y_{t,c}$ is 1 if the label at step "
        "$t$ is $c$), checked against the engine at a random point. The expression grows "
        "exponentially with $T$, which is why the derivation names every intermediate "
        "quantity."
    )
    lhs = tex.total(label)
    return sentence, [f"\\left({lhs}\\right)_{{1}} = ", *_split_lines(sym_expr.xreplace(pretty))]


def _entries(spec, dims, point, tex, state) -> dict[str, tuple[float, str]]:
    """Every scalar of the unrolled graph's inputs, by the engine's symbol name (`W_h_0_0`,
    `x_1_0_0`, `Y_1_0_1`): its value at `point` and its LaTeX (only class indices shown)."""
    import numpy as np

    out: dict[str, tuple[float, str]] = {}

    def add(code: str, array: np.ndarray, letters, base: str) -> None:
        for index in np.ndindex(*array.shape):
            # classes numbered from 1, as the time steps are
            keep = [str(i + 1) for i, letter in zip(index, letters) if letter == "C"]
            tex_name = base
            if keep:
                tex_name = (
                    f"{{{base}}}_{{{','.join(keep)}}}" if "_" in base else f"{base}_{{{keep[0]}}}"
                )
            out["_".join([code, *map(str, index)])] = (float(array[index]), tex_name)

    label = next(i for i in spec.inputs if i.role == "label")
    for item in spec.inputs:
        value = np.asarray(point[item.name])
        if item.role == "parameter":
            add(item.name, value, item.shape, tex.symbol(item.name))
        elif item.role == "initial":
            add(item.name, value, item.shape, tex.indexed(state, "0"))
        elif item.role == "sequence":
            for t in range(1, dims.T + 1):
                step = value[t - 1]
                if item.integer:  # ids enter one-hot, as data
                    step = (step[:, None] == np.arange(getattr(dims, item.bound))).astype(float)
                add(f"{item.name}_{t}", step, ("N", "D"), tex.indexed(item.name, str(t)))
    for t in range(1, dims.T + 1):
        hot = (np.asarray(point[label.name])[t - 1][:, None] == np.arange(dims.C)).astype(float)
        for c in range(dims.C):
            out[f"Y_{t}_0_{c}"] = (float(hot[0, c]), f"Y_{{{t},{c + 1}}}")
    return out


def _split_lines(expr) -> list[str]:
    """A long product written over lines: its sum factor's terms one per line."""
    import sympy

    if isinstance(expr, sympy.Mul):
        sums = [f for f in expr.args if isinstance(f, sympy.Add)]
        if sums:
            big = max(sums, key=lambda f: len(sympy.latex(f)))
            rest = sympy.Mul(*[f for f in expr.args if f is not big])
            terms = [sympy.latex(t) for t in big.args]
            rows = [sympy.latex(rest) + r" \Big("] + [f"+ {t}" for t in terms]
            rows[1] = rows[1][2:]
            rows[-1] += r" \Big)"
            return rows
    return [sympy.latex(expr)]
