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
from dataclasses import dataclass
from pathlib import Path

from ..errors import ExpansionTooLargeError, InvalidArgumentError
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

    def latex(self, *, body: bool = False) -> str:
        """A standalone LaTeX document, or with `body=True` its body for \\input."""
        return self.document.latex_body() if body else self.document.latex()

    def markdown(self) -> str:
        """Markdown with $$ math (GitHub, Jupyter, KaTeX)."""
        return self.document.markdown()

    def text(self) -> str:
        """The recurrences in the plain formula language (docs/formula-language.md)."""
        if self._text is None:
            raise InvalidArgumentError(
                "the formula language has one time index, and K-step truncated BPTT needs two "
                "(the loss step and the step of the use): use the tex or md format"
            )
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
        from .printers import LatexPrinter

        tex = LatexPrinter(self.names)
        rows = [
            f"{tex.doprint(line.target)} &= {tex.doprint(line.expr)}"
            for line in self.form.lines_for(self.wrt)
        ]
        for name in self.wrt:
            line = self.form.gradient(name)
            body = tex.doprint(line.expr)
            if line.summed:
                body = r"\sum_{t=1}^{T} " + body
            rows.append(f"{tex.doprint(line.target)} &= {body}")
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
    for key, value in final.items():
        if value.startswith("d") and value[1:] in seen:
            raise InvalidArgumentError(
                f"--names gives {key} the name {value!r}, which reads as the gradient of "
                f"{value[1:]!r}"
            )
    return pairs


def _wrt_list(wrt: str | Sequence[str], spec: ModelSpec) -> tuple[str, ...]:
    items = [w.strip() for w in wrt.split(",")] if isinstance(wrt, str) else list(wrt)
    items = [w for w in items if w]
    if not items:
        raise InvalidArgumentError("--wrt names no parameter")
    if items == ["all"]:
        return spec.gradient_names
    out: list[str] = []
    for w in items:
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
    progress: Progress | None = None,
) -> Derivation:
    """Derive, verify and lay out the BPTT derivation of dL/d(wrt) for T steps.

    `wrt` is a name, a comma list, a sequence or "all"; `model` a spec or variant (default the
    vanilla RNN); `convention` "row" (a_t = b + h_{t-1} W_h + x_t W_x) or "column"
    (a_t = b + W_h h_{t-1} + W_x x_t); `names` the reader's symbols (`"W_h=W,W_x=U"`);
    `expand` adds one entry of the first gradient written out in the raw inputs (T <= 3).

    Raises InvalidArgumentError / UnknownNameError for bad arguments, and
    DerivationCheckError if any line disagrees with the engine (then nothing is printed).
    """
    from .. import __version__
    from ..engine.derivatives import derive
    from ..engine.graph import unroll
    from ..engine.matrix_form import CONVENTIONS, matrix_form, path_terms
    from .document import Request, build, formula_text
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
    wrt = _wrt_list(wrt, spec)
    form = matrix_form(spec, convention)
    reader_names = parse_names(names, spec, [line.target.base for line in form.model])
    if expand and T > 3:
        raise ExpansionTooLargeError(
            f"expand writes one entry out in the raw inputs, which grows exponentially with T: "
            f"T={T} is too large (at most 3)"
        )
    terms: dict = {}
    dropped: dict[str, int] = {}
    path_dims = Dims(N=2, D=3, H=2, C=3, T=T)
    all_terms = []
    if T <= PATHS_MAX_T:
        graph = unroll(path_dims, spec=spec, max_seconds=None)
        derived = derive(graph)
        for name in wrt:
            paths = derived.paths(name)
            terms[name] = path_terms(graph, paths, convention)
            all_terms += terms[name]
            dropped[name] = derived.path_count(name, truncated=False) - len(paths)
    verification = verify(
        form, path_terms=all_terms, path_dims=path_dims if all_terms else None, progress=progress
    )
    if convention == "column" and plain_vanilla(spec):
        verification.comparisons += check_book()
    expanded = _expanded_entry(spec, wrt[0], reader_names, form) if expand else None
    request = Request(T, wrt, reader_names, form, terms, dropped, expanded)
    document = build(request, verification, __version__)
    if form.truncate is not None and form.truncate < T - 1:
        text = None
    else:
        text = formula_text(form, wrt, reader_names, T, __version__)
    seconds = time.perf_counter() - start
    return Derivation(T, wrt, convention, reader_names, form, document, verification, seconds, text)


def _expanded_entry(spec, name, names, form) -> tuple[str, str]:
    """One entry of dL/d(name) for N = D = H = 1, C = 2, T = 1, written out in the raw inputs
    with SymPy's LaTeX printer, and checked against the compiled engine at a random point."""
    import numpy as np
    import sympy

    from ..engine.compile import gradient_function
    from ..engine.derivatives import derive
    from ..engine.graph import unroll
    from ..errors import DerivationCheckError

    dims = Dims(N=1, D=1, H=1, C=2, T=1)
    derived = derive(unroll(dims, spec=spec))
    total = derived.total_derivative(name)
    entry = total.flat[0]
    expr = derived.expand(np.asarray([entry], dtype=object))[0]
    sym_expr = sympy.sympify(str(expr))
    point = spec.random_point(dims, seed=7)
    values = {}
    for item in spec.inputs:
        arr = np.asarray(point[item.name])
        if item.role in ("sequence", "label"):
            for t in range(1, dims.T + 1):
                for index in np.ndindex(*arr.shape[1:]):
                    values["_".join([f"{item.name}_{t}", *map(str, index)])] = arr[t - 1][index]
        else:
            for index in np.ndindex(*arr.shape):
                values["_".join([item.name, *map(str, index)])] = arr[index]
    for t in range(1, dims.T + 1):
        for c in range(dims.C):
            values[f"Y_{t}_0_{c}"] = float(point["y"][t - 1][0] == c)
        if spec.sequence.integer:  # token ids enter one-hot
            for d in range(dims.D):
                values[f"{spec.sequence.name}_{t}_0_{d}"] = float(point["x"][t - 1][0] == d)
    subs = {s: values[str(s)] for s in sym_expr.free_symbols if str(s) in values}
    ours = float(sym_expr.evalf(subs=subs))
    truth = float(np.asarray(gradient_function(dims, spec)(point)[name]).flat[0])
    if not np.isclose(ours, truth, rtol=1e-9, atol=1e-12):
        raise DerivationCheckError(
            f"the written-out entry of d{name} disagrees with the engine ({ours} vs {truth})"
        )
    pretty = {s: sympy.Symbol(_entry_tex(str(s), names)) for s in sym_expr.free_symbols}
    sentence = (
        f"For $N = D = H = 1$, $C = 2$ and $T = 1$, every matrix but the output layer's is a "
        f"number. The first entry of the gradient of ${latex_name(names.get(name, name))}$, "
        "written out in the raw inputs ($V_c$, $c_c$: class $c$'s entries; $Y_{t,c}$ is 1 "
        "if the label at step $t$ is $c$), checked against the engine at a random point. The "
        "expression grows exponentially with $T$, which is why the derivation names every "
        "intermediate quantity."
    )
    lhs = LatexPrinter(names).total(latex_name(names.get(name, name)))
    pretty_expr = sym_expr.xreplace(pretty)
    return sentence, [f"\\left({lhs}\\right)_{{1}} = ", *_split_lines(pretty_expr)]


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


def _entry_tex(code: str, names: Mapping[str, str]) -> str:
    """An entry's symbol (`W_h_0_0`, `x_2_0_0`, `V_0_1`, `Y_1_0_1`) as LaTeX for N=D=H=1."""
    from .printers import latex_name

    head, *index = code.split("_")
    while index and not index[0].isdigit():  # names with an underscore: W_h, W_x
        head, index = f"{head}_{index[0]}", index[1:]
    steps = {"x": 1, "Y": 1}
    step = index[0] if head in steps else None
    rest = index[1:] if step else index
    inner = latex_name(names.get(head, head)) if head != "Y" else "Y"
    classes = [str(int(i)) for i in rest[1:]] if head in ("V", "Y") or step else []
    if head == "c":
        classes = rest
    subscript = ",".join(([step] if step else []) + [c for c in classes if head in ("V", "c", "Y")])
    if not subscript:
        return inner
    return f"{{{inner}}}_{{{subscript}}}" if "_" in inner else f"{inner}_{{{subscript}}}"
