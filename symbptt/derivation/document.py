"""The derivation document: sections of prose, equations and tables, written as LaTeX or
Markdown from one list of blocks, and the plain formula language.

Every formula in a block comes from the matrix form (`engine.matrix_form`) or from a path term,
printed by `printers.LatexPrinter`; `build` is only called after `verify` has checked them all.
The prose around the formulas is fixed text that explains them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..engine import matexpr
from ..engine.matexpr import Indexed, column_shape
from ..engine.matrix_form import Line, MatrixForm, PathTerm
from ..errors import DerivationCheckError
from .printers import FormulaPrinter, LatexPrinter
from .verify import Verification

__all__ = ["Block", "Document", "build", "formula_text"]


@dataclass(frozen=True)
class Block:
    """One piece of the document: `kind` is heading, text (inline math in $...$), equations
    (LaTeX rows of an aligned display, each `left & = right`), table (rows of cells, the first
    the header) or lines (formulas one per line, each shrunk to the page width if wider)."""

    kind: str
    content: object


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)
    #: The generator named in the PDF's metadata ("symbptt 0.1.0").
    creator: str = "symbptt"

    def heading(self, text: str) -> None:
        self.blocks.append(Block("heading", text))

    def subheading(self, text: str) -> None:
        self.blocks.append(Block("subheading", text))

    def text(self, text: str) -> None:
        self.blocks.append(Block("text", text))

    def equations(self, rows: Sequence[str]) -> None:
        if rows:
            self.blocks.append(Block("equations", [r for row in rows for r in _break_sum(row)]))

    def table(self, rows: Sequence[Sequence[str]]) -> None:
        self.blocks.append(Block("table", [list(r) for r in rows]))

    # -- LaTeX ------------------------------------------------------------------------------
    def latex_body(self) -> str:
        out: list[str] = [FIT_MACRO]
        for block in self.blocks:
            if block.kind == "heading":
                out.append(f"\\section*{{{_tex_text(block.content)}}}")
            elif block.kind == "subheading":
                out.append(f"\\subsection*{{{_tex_text(block.content)}}}")
            elif block.kind == "text":
                out.append(_tex_text(block.content) + "\n")
            elif block.kind == "equations":
                rows = " \\\\\n".join(block.content)
                out.append(f"\\begin{{align*}}\n{rows}\n\\end{{align*}}")
            elif block.kind == "table":
                header, *rows = block.content
                spec = "l" * len(header)
                lines = [" & ".join(_tex_text(c) for c in header) + " \\\\ \\midrule"]
                lines += [" & ".join(_display(_tex_text(c)) for c in r) + " \\\\" for r in rows]
                body = "\n".join(lines)
                tall = "\\frac" in body or "\\sum" in body  # display fractions need room
                # a float: a table too tall for the rest of the page moves to the next one
                # while the text goes on, instead of leaving the page blank
                out.append(
                    "\\begin{table}[!htbp]\\centering\\small\\renewcommand{\\arraystretch}"
                    f"{{{1.8 if tall else 1.25}}}"
                    f"\\begin{{tabular}}{{{spec}}}\\toprule\n{body}\n"
                    "\\bottomrule\\end{tabular}\\end{table}"
                )
            elif block.kind == "lines":  # formulas one per line, each shrunk if too wide
                rows = "\\\\\n".join(f"\\symbpttfit{{{r}}}" for r in block.content)
                out.append(f"\\begin{{flushleft}}\n{rows}\n\\end{{flushleft}}")
        return "\n\n".join(out) + "\n"

    def latex(self) -> str:
        return (
            "\\documentclass[11pt]{article}\n"
            # vector fonts (Latin Modern, Type 1) whose text copies: cmap maps the text
            # fonts' glyphs to Unicode, glyphtounicode the math fonts'
            "\\ifdefined\\pdfgentounicode\\input{glyphtounicode}\\pdfgentounicode=1\\fi\n"
            "\\usepackage{cmap}\n"
            "\\usepackage{lmodern}\n"
            "\\usepackage[T1]{fontenc}\n"
            "\\usepackage{amsmath,amssymb}\n"
            "\\usepackage{booktabs,graphicx}\n"
            "\\usepackage[margin=2cm]{geometry}\n"
            # paragraphs apart, not indented (a paragraph after a display is no new one)
            "\\setlength{\\parindent}{0pt}\\setlength{\\parskip}{0.5\\baselineskip}\n"
            f"\\usepackage[pdftitle={{{_pdf_text(self.title)}}},"
            f"pdfcreator={{{_pdf_text(self.creator)}}},"
            "hidelinks]{hyperref}\n"
            "\\allowdisplaybreaks\n"
            f"\\title{{{_tex_text(self.title)}}}\n"
            "\\date{}\n"
            "\\begin{document}\n\\maketitle\n\n"
            f"{self.latex_body()}"
            "\\end{document}\n"
        )

    # -- HTML -------------------------------------------------------------------------------
    def html_body(self) -> str:
        """The document as HTML for a page that renders math itself (symbptt html): math in
        elements with a `data-tex` attribute, `display` for displayed math."""
        from html import escape

        def math(tex: str, display: bool = False) -> str:
            kind = "math display" if display else "math"
            tag = "div" if display else "span"
            return f'<{tag} class="{kind}" data-tex="{escape(tex, quote=True)}"></{tag}>'

        def prose(text: object) -> str:
            parts = str(text).split("$")
            return "".join(math(p) if i % 2 else escape(p) for i, p in enumerate(parts))

        out = [f"<h1>{escape(self.title)}</h1>"]
        for block in self.blocks:
            if block.kind == "heading":
                out.append(f"<h2>{prose(block.content)}</h2>")
            elif block.kind == "subheading":
                out.append(f"<h3>{prose(block.content)}</h3>")
            elif block.kind == "text":
                out.append(f"<p>{prose(block.content)}</p>")
            elif block.kind == "equations":
                rows = " \\\\ ".join(block.content)
                out.append(math(f"\\begin{{aligned}}{rows}\\end{{aligned}}", display=True))
            elif block.kind == "table":
                header, *rows = block.content
                cells = ["".join(f"<th>{prose(c)}</th>" for c in header)]
                cells += ["".join(f"<td>{prose(c)}</td>" for c in r) for r in rows]
                out.append("<table>" + "".join(f"<tr>{c}</tr>" for c in cells) + "</table>")
            elif block.kind == "lines":
                out += [math(r, display=True) for r in block.content]
        return "\n".join(out) + "\n"

    # -- Markdown ---------------------------------------------------------------------------
    def markdown(self) -> str:
        out = [f"# {self.title}"]
        for block in self.blocks:
            if block.kind == "heading":
                out.append(f"## {block.content}")
            elif block.kind == "subheading":
                out.append(f"### {block.content}")
            elif block.kind == "text":
                out.append(str(block.content))
            elif block.kind == "equations":
                rows = " \\\\\n".join(block.content)
                out.append(f"$$\n\\begin{{aligned}}\n{rows}\n\\end{{aligned}}\n$$")
            elif block.kind == "table":
                header, *rows = block.content
                lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                lines += ["| " + " | ".join(r) + " |" for r in rows]
                out.append("\n".join(lines))
            elif block.kind == "lines":
                rows = " \\\\\n".join(f"&{r}" for r in block.content)
                out.append(f"$$\n\\begin{{aligned}}\n{rows}\n\\end{{aligned}}\n$$")
        return "\n\n".join(out) + "\n"


#: \symbpttfit{math}: display math at its natural size, or shrunk to the line's width when it
#: is wider (defined once, also when the body is \input into a reader's document).
FIT_MACRO = r"""\makeatletter
\@ifundefined{symbpttfit}{%
\newsavebox{\symbpttbox}%
\newcommand{\symbpttfit}[1]{\sbox{\symbpttbox}{$\displaystyle #1$}%
\ifdim\wd\symbpttbox>\linewidth\resizebox{\linewidth}{!}{\usebox{\symbpttbox}}%
\else\usebox{\symbpttbox}\fi}}{}
\makeatother"""


#: How many visible characters a displayed row may have before its sum is broken at `+`.
ROW_WIDTH = 80


def _visible(tex: str) -> int:
    """Roughly how many characters wide a row of LaTeX math prints (dL/dX counts as its X)."""
    tex = re.sub(r"\\frac\{\\mathrm\{d\}L\}\{\\mathrm\{d\}", "dL/d{", tex)
    tex = re.sub(r"\\(left|right|mathrm|operatorname|top|quad)\b|\\[,;]", "", tex)
    tex = re.sub(r"\\[A-Za-z]+", "x", tex)
    return len(re.sub(r"[{}\s_^&]", "", tex))


def _break_sum(row: str, width: int = ROW_WIDTH) -> list[str]:
    r"""An aligned row `lhs &= a + b + c` too wide for the page, broken before its top-level
    `+` (outside every bracket) into continuation rows `& \quad + b`, as textbooks break
    long sums; a row that fits, or has no top-level sum, as it is."""
    if _visible(row) <= width or "&=" not in row:
        return [row]
    lhs, rhs = row.split("&=", 1)
    terms, depth, start, i = [], 0, 0, 0
    while i < len(rhs):
        if rhs.startswith(r"\left", i) or rhs[i] == "{":
            depth += 1
        elif rhs.startswith(r"\right", i) or rhs[i] == "}":
            depth -= 1
        elif depth == 0 and rhs.startswith(" + ", i):
            terms.append(rhs[start:i])
            start = i + 1
        i += 1
    terms.append(rhs[start:])
    if len(terms) == 1:
        return [row]
    rows, current = [], f"{lhs}&={terms[0]}"
    for term in terms[1:]:
        if _visible(current + term) > width:
            rows.append(current)
            current = rf"&\quad {term.strip()}"
        else:
            current += f" {term.strip()}"
    rows.append(current)
    return rows


def _display(cell: str) -> str:
    """A table cell's math in display style (fractions full size, as in a displayed line)."""
    parts = cell.split("$")
    return "$".join(rf"\displaystyle {p}" if i % 2 else p for i, p in enumerate(parts))


def _pdf_text(text: str) -> str:
    """Text for a PDF metadata field (no math, no LaTeX specials, no braces or commas)."""
    return re.sub(r"[^A-Za-z0-9 .,()=+-]", "", str(text).replace("$", ""))


def _tex_text(text: object) -> str:
    """Prose for LaTeX: math between $...$ kept, the characters LaTeX reserves escaped."""
    parts = str(text).split("$")
    for i in range(0, len(parts), 2):  # even parts are outside math
        p = parts[i]
        for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("#", r"\#")):
            p = p.replace(a, b)
        p = p.replace("_", r"\_").replace("~", r"\textasciitilde{}").replace("^", r"\^{}")
        p = p.replace("`", "").replace("et al. ", "et al.\\ ")
        parts[i] = p
    return "$".join(parts)


# -- building the document ----------------------------------------------------------------------
#: The most path terms a document lists (a gated cell has hundreds at T = 4).
PATHS_MAX_COUNT = 64


@dataclass(frozen=True)
class Request:
    """What the reader asked for."""

    T: int
    wrt: tuple[str, ...]
    names: Mapping[str, str]
    form: MatrixForm
    paths: Mapping[str, Sequence[PathTerm]]
    dropped: Mapping[str, int]
    expanded: tuple[str, str] | None = None
    #: The path counts, when there were too many paths to list (a gated cell's).
    counts: Mapping[str, int] | None = None
    #: A handout: the path listing and the verification in an appendix.
    handout: bool = False
    #: "fraction" (dL/da_t) or "delta" (delta^a_t for a per-step quantity's adjoint).
    notation: str = "fraction"


#: How a document writes the adjoint of a per-step quantity: dL/da_t, or delta^a_t.
NOTATIONS = ("fraction", "delta")


def _shape_tex(shape) -> str:
    return r" \times ".join(map(str, shape)) if len(shape) > 1 else str(shape[0]) if shape else "1"


def build(request: Request, verification: Verification, version: str) -> Document:
    """The whole document, from a verified derivation."""
    form, T = request.form, request.T
    spec, options = form.spec, form.spec.options
    row = form.convention == "row"
    K = options.truncate if options.truncate is not None and options.truncate < T - 1 else None
    tex = LatexPrinter(
        request.names, delta=request.notation == "delta", initial=_initial_states(spec)
    )
    trunc = tex.at("k", truncated=True)
    sym = tex.symbol
    per_step = {i.name for i in spec.sequences}
    listed = [f"${tex.indexed(n, 't') if n in per_step else sym(n)}$" for n in request.wrt]
    wrt_tex = listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + f" and {listed[-1]}"
    what = (
        f"the {K}-step truncated gradient of the loss $L$ with respect to"
        if K is not None
        else "the gradient of the loss $L$ with respect to"
    )
    doc = Document(
        f"Backpropagation through time for {model_phrase(spec)}, T = {T} "
        f"({form.convention} convention)",
        creator=f"symbptt {version}",
    )
    doc.text(
        f"This derivation of {what} {wrt_tex} applies the vector-Jacobian rule of each "
        "matrix operation to one step of the model (it was generated by symbptt "
        f"{version}). Every formula in it was checked numerically, entry by entry, against "
        "an independent differentiation of the unrolled graph before it was printed (see "
        + ("the appendix)." if request.handout else "the last section).")
    )

    # -- notation
    doc.heading("Notation")
    weights = [line for line in form.model if line.target.base not in form.predictions]
    first = tex.doprint(weights[0].expr) if weights else ""
    if spec.from_file:
        doc.text(_file_layout(form, tex, first))
    elif row:
        state, seq = form.state, spec.sequence.name
        h_t, x_t = tex.indexed(state, "t"), tex.indexed(seq, "t")
        doc.text(
            "Row convention: each example of the minibatch is a row (row vectors, as in the "
            f"CS231n notes and the seed blog post). ${h_t}$ is $N \\times H$, ${x_t}$ is "
            f"$N \\times D$, weights multiply from the right (${first}$), a bias is a row "
            "vector added to every row, and softmax acts on each row."
        )
    else:
        state, seq = form.state, spec.sequence.name
        h_t, x_t = tex.indexed(state, "t"), tex.indexed(seq, "t")
        doc.text(
            "Column convention (as in Goodfellow et al.): each example of the minibatch is a "
            f"column. ${h_t}$ is $H \\times N$, ${x_t}$ is $D \\times N$, weights multiply from "
            f"the left (${first}$), a bias is a column ($H \\times 1$) added to every column, "
            "and softmax acts on each column."
        )
    symbols_at = len(doc.blocks)  # the symbols paragraph: only the notation the document uses

    # -- the model
    doc.heading("The model")
    doc.text(_variant_sentence(spec, tex, form.state))
    doc.equations([_row(tex, line) for line in form.model])
    if _has_blocks(form):
        doc.text(
            r"$[X]_{\mathrm{cols}\,k/n}$ is the $k$-th of the $n$ equal blocks of the columns "
            r"of $X$ (each $H$ wide: one gate's share), and $[\,A \;\; B \;\; \cdots\,]$ "
            r"puts blocks side by side, $\mathbf{0}$ a block of zeros"
            + ("" if row else r" (in the column convention, blocks of rows: $\mathrm{rows}$)")
            + "."
        )
    from .verify import textbook_loss_line

    mean = options.reduction == "mean"
    total_row = (
        r"L &= \frac{1}{N\,T} \sum_{t=1}^{T} L_{t}" if mean else r"L &= \sum_{t=1}^{T} L_{t}"
    )
    yhat_line = textbook_loss_line(form)
    if yhat_line is not None:
        if not verification.textbook_loss:
            raise DerivationCheckError(
                "the loss as textbooks write it was not checked against the engine; nothing "
                "was printed: please report this"
            )
        yhat = tex.doprint(yhat_line.target)
        (logits,) = yhat_line.expr.symbols()
        y_t = tex.indexed(_label(spec), "t")
        entry = rf"[i,\, {y_t}[i]]" if row else rf"[{y_t}[i],\, i]"
        where = (
            "row $i$ holds example $i$'s probabilities of the $C$ classes"
            if row
            else "column $i$ holds example $i$'s probabilities of the $C$ classes"
        )
        doc.text(
            f"The loss at step $t$ is the cross-entropy of the predictions ${yhat}$ "
            f"(${_shape_tex(yhat_line.target.shape)}$, the softmax of the logits "
            f"${tex.doprint(logits)}$: {where}) with the labels ${y_t}$ "
            f"(${y_t}[i]$ is the class of example $i$), summed over the $N$ examples"
            + (r", and the loss is their mean over the $N\,T$ terms:" if mean else ":")
        )
        doc.equations([rf"L_{{t}} &= -\sum_{{i=1}}^{{N}} \log {yhat}{entry}", total_row])
    else:
        doc.text(_file_loss_sentence(spec, tex))
        doc.equations([_row(tex, form.loss), total_row])
    if spec.from_file:
        doc.text(_file_states_sentence(spec, tex))
    elif spec.initial is None:
        doc.text("The initial state is fixed: $h_0 = 0$ (it has no gradient).")
    else:
        doc.text(f"The initial state ${sym('h0')}$ is an input, with a gradient of its own.")

    # -- shapes
    doc.heading("Shapes")
    doc.text(
        "The weights and biases are the same at every step; a symbol with the subscript $t$ "
        "is a quantity of step $t$."
    )
    rows = [["symbol", "shape", "what it is"]]
    what = {
        "sequence": "input",
        "label": "labels (class ids)",
        "initial": "initial state",
        "parameter": "weights or bias",
        "upstream": "upstream gradient (given)",
    }
    named = {} if spec.from_file else _WHAT.get(spec.name, {})
    for item in spec.inputs:
        per_step = item.role in ("sequence", "label", "upstream")
        shape = item.shape[1:] if per_step else item.shape
        if item.integer:
            desc = "token ids" if item.role == "sequence" else what["label"]
            rows.append([f"${tex.indexed(item.name, 't')}$", f"${_shape_tex(shape)}$", desc])
            continue
        shape = shape if row else column_shape(shape)
        name = f"${tex.indexed(item.name, 't')}$" if per_step else f"${sym(item.name)}$"
        desc = named.get(item.name, what[item.role]) if item.role == "parameter" else None
        rows.append([name, f"${_shape_tex(shape)}$", desc or what[item.role]])
    for line in form.model:
        desc = named.get(line.target.base, "computed at step $t$")
        rows.append([f"${tex.doprint(line.target)}$", f"${_shape_tex(line.target.shape)}$", desc])
    doc.table(rows)

    # -- partial and total: said once, for every parameter of the document
    from . import PATHS_MAX_T

    doc.heading("Partial and total derivatives")
    summed = [n for n in request.wrt if form.gradient(n).summed]
    if summed:
        doc.text(_uses_text(tex, summed, K))
    if request.paths or request.counts:
        doc.text(_paths_text(tex, spec, request, K, T))
    elif T > PATHS_MAX_T:
        doc.text(
            f"For $T = {T}$ the paths are too many to list; the recurrences below add them all up."
        )

    # -- recurrences
    doc.heading("Backward recurrences")
    needed = form.lines_for(request.wrt)
    if K is None:
        doc.text(
            "The adjoints are computed for $t = T, T-1, \\dots, 1$. Each is the sum over every "
            "use of its quantity, the use at step $t+1$ (the recurrent term) included; after "
            "the last step nothing depends on step $T+1$, so those adjoints are 0:"
        )
        if options.truncate is not None:
            doc.text(
                f"With {options.truncate}-step truncated BPTT and $T = {T} \\le "
                f"{options.truncate} + 1$, no path is dropped: the lines below are full BPTT, "
                f"and they hold for every $T \\le {options.truncate + 1}$ (checked there)."
            )
        ends = [line for line in form.boundaries if line.target.adjoint]
        doc.equations([_row(tex, line) for line in (*ends, *needed)])
    else:
        base = "a" if "a" in {m.target.base for m in form.model} else form.state
        a, a_k = tex.symbol(base), tex.indexed(base, "k")
        steps = "1 step" if K == 1 else f"{K} steps"
        doc.text(
            f"With {K}-step truncated BPTT, a loss term $L_s$ reaches back at most {steps}: "
            f"only the paths from a use at step $k$ with $s - k \\le {K}$ count. So the "
            f"adjoints are kept per loss term: $\\bar{{{a}}}^{{(s)}}_k$ is the derivative of "
            f"$L_s$ alone with respect to ${a_k}$ "
            "through those paths (and 0 outside the window), and likewise for the other "
            f"quantities. For each $s$, with $k$ from $s$ down to $\\max(1, s-{K})$, where "
            "$[k=s]$ is 1 if $k = s$ and 0 otherwise:"
        )
        doc.equations([_truncated_row(trunc, line) for line in needed])

    # -- one section per gradient
    for name in request.wrt:
        line = form.gradient(name)
        doc.heading(f"The gradient of ${_of_tex(tex, spec, name)}$")
        doc.text(_share_text(tex, trunc, form, name, line, K))
        doc.equations([_gradient_row(tex, trunc, form, line, K)])
        if name in request.paths and not request.handout:
            _path_blocks(doc, tex, spec, name, request, K)

    from .goodfellow import comparison, plain_vanilla

    if form.convention == "column" and plain_vanilla(spec):
        doc.heading("Comparison with Goodfellow et al., Deep Learning, 10.2.2")
        for block in comparison(tex, form):
            doc.blocks.append(block)

    if request.expanded:
        entry, rows = request.expanded
        doc.heading("One entry written out")
        doc.text(entry)
        doc.blocks.append(Block("lines", rows))

    if request.handout and request.paths:
        for name in request.paths:
            doc.heading(f"Appendix: the paths of ${_of_tex(tex, spec, name)}$ for $T = {T}$")
            _path_blocks(doc, tex, spec, name, request, K)

    doc.heading("Appendix: verification" if request.handout else "Verification")
    shapes = "; ".join(
        ", ".join(f"{k}={v}" for k, v in d.as_dict().items()) for d in verification.shapes
    )
    doc.text(
        f"Each line above was computed with NumPy at seeded random inputs for the shapes "
        f"{shapes} (every step, every adjoint, every gradient, each step's share of a "
        f"parameter's gradient{', every path term' if verification.paths else ''}) and "
        f"compared entry by entry with symbptt's element-level engine: "
        f"{verification.comparisons} arrays agreed within "
        f"$|\\text{{ours}} - \\text{{engine}}| \\le {_power(verification.atol)} + "
        f"{_power(verification.rtol)}\\,|\\text{{engine}}|$ (largest relative difference "
        f"${_power(verification.max_error, digits=True)}$)."
        + (
            " The path terms also add up to the engine's total derivative, which the engine "
            "gets by differentiating each entry, not from the rules used here."
            if verification.paths
            else ""
        )
    )
    doc.blocks.insert(symbols_at, Block("text", _symbols_text(doc, form, tex, spec)))
    return doc


#: What the built-in models' symbols are, for the shapes table.
_COMMON = {
    "W_x": "input weights",
    "W_h": "recurrent weights",
    "V": "output weights",
    "c": "output bias",
    "yhat": "predicted probabilities",
    "h": "hidden state",
}
_WHAT = {
    "vanilla": {**_COMMON, "b": "hidden bias", "a": "pre-activation", "o": "logits"},
    "lstm": {
        **_COMMON,
        "W_x": "input weights of the four gates",
        "W_h": "recurrent weights of the four gates",
        "b": "bias of the four gates",
        "b_y": "output bias",
        "a": "the four gates' pre-activations",
        "a_i": "input gate's pre-activation",
        "i": "input gate",
        "a_f": "forget gate's pre-activation",
        "f": "forget gate",
        "a_o": "output gate's pre-activation",
        "o": "output gate",
        "a_g": "candidate's pre-activation",
        "g": "candidate cell values",
        "c": "cell state",
        "k": "$\\tanh$ of the cell state",
        "s": "logits",
    },
    "gru": {
        **_COMMON,
        "W_x": "input weights of the three blocks",
        "W_h": "recurrent weights of the three blocks",
        "b_x": "input-side bias",
        "b_h": "recurrent-side bias",
        "u": "input side of the pre-activations",
        "v": "recurrent side of the pre-activations",
        "a": "pre-activations of the gates",
        "a_r": "reset gate's pre-activation",
        "r": "reset gate",
        "a_z": "update gate's pre-activation",
        "z": "update gate",
        "u_n": "input side of the candidate's",
        "v_n": "recurrent side of the candidate's",
        "a_n": "candidate's pre-activation",
        "n": "candidate state",
        "o": "logits",
    },
}


def _initial_states(spec) -> dict[str, str]:
    """The inputs that are initial states, and their states ({"h0": "h"})."""
    out = {}
    for state in getattr(spec, "states", ()):
        start = spec.initial_of(state)
        if start is not None:
            out[start] = state
    return out


def _symbols_text(doc: Document, form, tex: LatexPrinter, spec) -> str:
    """The notation paragraph: the symbols every document uses, then only those this one
    does (the ones vector, onehot, step, L_sum), each introduced once."""
    used = "\n".join(str(b.content) for b in doc.blocks)
    parts = [
        r"$\odot$ is the elementwise product and $^\top$ the transpose. "
        r"$\frac{\mathrm{d}L}{\mathrm{d}X}$ (upright d) is the total derivative of the loss: "
        "a matrix of the shape of $X$ holding the derivative of $L$ with respect to each "
        "entry, through every path. A partial derivative (curly $\\partial$) holds everything "
        "else fixed. The total derivative of $L$ with respect to a quantity of the model is "
        "also called its adjoint: the gradient that flows back into it."
    ]
    if tex.delta:
        a_t = tex.indexed(form.state, "t")
        parts.append(
            rf"As in many lecture notes, $\delta^{{X}}_{{t}} = \frac{{\mathrm{{d}}L}}"
            rf"{{\mathrm{{d}}X_{{t}}}}$ is the adjoint of a quantity $X$ of step $t$ (so "
            rf"$\delta^{{{tex.symbol(form.state)}}}_{{t}}$ is that of ${a_t}$); "
            "the gradient of a weight or bias $W$ is written $\\frac{\\mathrm{d}L}{\\mathrm{d}W}$."
        )
    if r"\mathbf{1}^{\top}" in used or r"\, \mathbf{1}" in used:
        parts.append(
            r"$\mathbf{1}$ is a column of $N$ ones, one per example: "
            + (
                r"$\mathbf{1}^\top X$ sums the rows of $X$ over the examples."
                if form.convention == "row"
                else r"$X \mathbf{1}$ sums the columns of $X$ over the examples."
            )
        )
    if r"\operatorname{onehot}" in used:
        parts.append(
            r"$\operatorname{onehot}(y_t)$ has a 1 where an example's label is, 0 elsewhere."
        )
    if r"\operatorname{step}" in used:
        parts.append(r"$\operatorname{step}(z)$ is 1 where $z > 0$, else 0 (relu's derivative).")
    if r"L_{\mathrm{sum}}" in used:
        parts.append(r"$L_{\mathrm{sum}}$ is the sum of the loss terms before the mean divides it.")
    renamed = _renaming_sentence(form, tex, spec)
    if renamed:
        parts.append(renamed)
    return " ".join(parts)


def _renaming_sentence(form, tex: LatexPrinter, spec) -> str:
    """Where a model must name its logits otherwise than the RNN's o_t (the LSTM's o_t is its
    output gate), one sentence says so."""
    from .verify import textbook_loss_line

    line = textbook_loss_line(form)
    if line is None or spec.from_file:
        return ""
    (logits,) = line.expr.symbols()
    gate = "o" in {m.target.base for m in form.model} and logits.base != "o"
    if not gate:
        return ""
    bias = [n for n in spec.parameters if n not in ("c",) and n.startswith("b_")]
    bias_text = f" and their bias ${tex.symbol(bias[-1])}$" if bias else ""
    return (
        f"Here ${tex.indexed('o', 't')}$ is the output gate, so the logits are named "
        f"${tex.doprint(logits)}$ (the vanilla RNN's $o_t$){bias_text} (its $c$)."
    )


def _end_step(term) -> int:
    """The loss term L_s a path ends at."""
    for node in reversed(term.path.nodes):
        head, _, tail = node.rpartition("_")
        if head == "L" and tail.isdigit():
            return int(tail)
    return 0


def _path_blocks(doc: Document, tex, spec, name: str, request: Request, K) -> None:
    """The paths of one parameter, grouped by the loss term they end at, each group under
    its own heading."""
    terms = request.paths[name]
    what = f"${_of_tex(tex, spec, name)}$"
    dropped = request.dropped.get(name, 0)
    every = len(terms) + dropped
    intro = f"$L$ depends on {what} through {every} paths"
    if every == request.T * (request.T + 1) // 2 and name in spec.parameters:
        intro += f" ($T(T+1)/2 = {every}$)"
    if dropped:
        intro += (
            f"; the {K}-step truncation keeps the {len(terms)} from a use at step $k$ to a "
            f"loss term $L_s$ with $s - k \\le {K}$ (listed below) and drops {dropped}"
        )
    doc.text(intro + ".")
    groups: dict[int, list] = {}
    for term in terms:
        groups.setdefault(_end_step(term), []).append(term)
    for step in sorted(groups):
        doc.subheading(f"Paths of {what} to $L_{{{step}}}$")
        rows = []
        for term in groups[step]:
            chain = " ".join(
                rf"\frac{{\partial {_node_tex(tex, c)}}}{{\partial {_node_tex(tex, p)}}}"
                for c, p in term.jacobians
                if "^(" not in c  # the copy W^(k) is W itself
            )
            nodes = term.path.nodes
            shown = nodes[1:] if "^(" in nodes[1] else nodes  # start at the copy W^(k)
            label = r" \to ".join(_node_tex(tex, n) for n in shown)
            rows.append(rf"\text{{path }} {label}: \quad {chain}")
            rows.append(rf"\quad = {tex.doprint(term.expr)}")
        doc.blocks.append(Block("lines", rows))
    where = (
        " (for each step, the terms entering there)"
        if name in {i.name for i in spec.sequences}
        else ""
    )
    index = "t" if name in {i.name for i in spec.sequences} else ""
    what_sum = (
        f"The truncated gradient ${_gradient_symbol(tex, name, K, index)}$"
        if K is not None
        else f"The total derivative ${_gradient_symbol(tex, name, None, index)}$"
    )
    doc.text(f"{what_sum} is the sum of these {len(terms)} terms{where}.")


def _power(value: float, *, digits: bool = False) -> str:
    """1e-12 as 10^{-12} (with `digits`, 2.7e-16 as 2.7 \\cdot 10^{-16}); 0 as 0."""
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.1e}".split("e")
    power = f"10^{{{int(exponent)}}}"
    return f"{mantissa} \\cdot {power}" if digits and mantissa != "1.0" else power


def recurrence_rows(form: MatrixForm, wrt, names, T: int) -> list[str]:
    """The backward lines the gradients of `wrt` need and the gradients themselves, as rows of
    an aligned display (truncated when K-step truncation drops paths at this T), preceded by a
    row stating the layout: the compact form Jupyter shows."""
    K = form.truncate if form.truncate is not None and form.truncate < T - 1 else None
    tex = LatexPrinter(names)
    trunc = LatexPrinter(names, "k", truncated=True)
    needed = form.lines_for(wrt)
    layout = "each example is a row" if form.convention == "row" else "each example is a column"
    rows = [rf"&\text{{{form.convention} convention: {layout}}}"]
    if K is None:
        ends = [line for line in form.boundaries if line.target.adjoint]
        rows += [_row(tex, line) for line in (*ends, *needed)]
    else:
        window = rf"$k = s, \dots, \max(1, s-{K})$"
        rows.append(rf"&\text{{{K}-step truncation: for each loss term $s$, {window}}}")
        rows += [_truncated_row(trunc, line) for line in needed]
    rows += [_gradient_row(tex, trunc, form, form.gradient(n), K) for n in wrt]
    return rows


def _row(printer: LatexPrinter, line: Line) -> str:
    return printer.rule(line.target, line.expr, eq=" &= ")


def _truncated_row(printer: LatexPrinter, line: Line) -> str:
    parts = []
    for term in line.terms:
        text = printer.doprint(term.expr)
        if term.source == "loss":
            text = rf"[k=s]\left({text}\right)" if " " in text else rf"[k=s]\,{text}"
        parts.append(text)
    return f"{printer.doprint(line.target)} &= {' + '.join(parts)}"


def _gradient_symbol(tex: LatexPrinter, name: str, K: int | None, index: str = "") -> str:
    """dL/dθ (the total derivative; a per-step input's in the document's notation), or g̃_θ
    for the K-step truncated gradient, which is not."""
    of = tex.indexed(name, index) if index else tex.symbol(name)
    if K is not None:
        return rf"\tilde{{g}}_{{{of}}}"
    if not index and tex.delta and name in tex.initial:  # dL/dh_0: the state's at step 0
        return tex.adjoint(tex.initial[name], "0")
    return tex.adjoint(name, index) if index else tex.total(of)


def _of_tex(tex: LatexPrinter, spec, name: str) -> str:
    """How prose names an input: a per-step one at step t (x_t), any other as it is."""
    return tex.indexed(name, "t") if name in {i.name for i in spec.sequences} else tex.symbol(name)


def _gradient_row(tex, trunc, form: MatrixForm, line: Line, K: int | None) -> str:
    name = line.about
    if K is None:
        return tex.rule(line.target, line.expr, summed=line.summed, eq=" &= ")
    body = trunc.doprint(line.expr)
    if line.summed:
        target = _gradient_symbol(tex, name, K)
        return rf"{target} &= \sum_{{s=1}}^{{T}} \sum_{{k=\max(1,s-{K})}}^{{s}} {body}"
    if isinstance(line.target, Indexed):  # x_k
        target = _gradient_symbol(tex, name, K, "k")
        return rf"{target} &= \sum_{{s=k}}^{{\min(T,k+{K})}} {body}"
    return rf"{_gradient_symbol(tex, name, K)} &= \sum_{{s=1}}^{{\min(T,{K + 1})}} {body}"


def _uses_text(tex: LatexPrinter, summed: Sequence[str], K: int | None) -> str:
    """Copies, partial and total derivatives: said once for every parameter used at each step."""
    if len(summed) == 1:
        P = tex.symbol(summed[0])
        subject, whose = f"${P}$ is used at every step", "its use"
    else:
        listed = ", ".join(f"${tex.symbol(n)}$" for n in summed[:-1])
        P = r"\theta"
        subject = f"The parameters {listed} and ${tex.symbol(summed[-1])}$ are used at every step"
        whose = r"the use of a parameter $\theta$"
    copy = rf"{{{P}}}^{{(k)}}"
    partial = rf"\frac{{\partial L}}{{\partial {copy}}}"
    intro = (
        f"{subject}. Write ${copy}$ for {whose} at step $k$: the same matrix, one copy per step "
        "of the unrolled graph (Goodfellow et al. use the same device). The partial derivative "
        f"${partial}$ holds every other use fixed"
    )
    if K is None:
        return (
            f"{intro}; the total derivative adds every use up: "
            f"${tex.total(P)} = \\sum_{{k=1}}^{{T}} {partial}$. The adjoints inside each "
            f"${partial}$ are themselves total derivatives: each carries every path from its "
            "quantity to every loss term it reaches."
        )
    share = rf"\tilde{{g}}_{{{copy}}}"
    return (
        f"{intro}. With {K}-step truncated BPTT the gradient is not the total derivative: "
        f"the share ${share}$ of the use at step $k$ keeps only the loss terms $L_s$ with "
        f"$k \\le s \\le k+{K}$, and $\\tilde{{g}}_{{{P}}} = \\sum_{{k=1}}^{{T}} {share}$ "
        "(the total derivative would let $s$ run to $T$)."
    )


def _paths_text(tex: LatexPrinter, spec, request: Request, K, T: int) -> str:
    """What a path is and where the paths are, said once."""
    text = (
        "$L$ depends on a parameter through the paths of the unrolled graph from its uses to "
        "the loss terms. Along each, the local partial derivatives multiply (from the loss "
        "down, each applied as a vector-Jacobian product), and the total derivative is the "
        "sum of these products over every path."
    )
    if request.paths:
        where = (
            "the appendix"
            if request.handout
            else "each gradient's section, grouped by the loss term they end at"
        )
        return f"{text} For $T = {T}$ they are listed in {where}."
    counted = ", ".join(
        f"${_of_tex(tex, spec, name)}$ through {n:,} paths" for name, n in request.counts.items()
    )
    return (
        f"{text} For $T = {T}$ there are too many to list. Counted on the unrolled graph, $L$ "
        f"depends on {counted}; the recurrences below add them all up."
    )


def _share_text(tex, trunc, form, name, line: Line, K) -> str:
    """The gradient of one parameter: what its use at step k contributes."""
    sym = tex.symbol
    at_k = tex.at("k")
    if line.summed:
        copy = rf"{{{sym(name)}}}^{{(k)}}"
        if K is None:
            partial = rf"\frac{{\partial L}}{{\partial {copy}}}"
            return (
                f"The use at step $k$ gives ${partial} = {at_k.doprint(line.expr)}$; adding "
                "the uses up:"
            )
        share = rf"\tilde{{g}}_{{{copy}}}"
        return (
            f"The share of the use at step $k$ is ${share} = \\sum_{{s=k}}^{{\\min(T,k+{K})}} "
            f"{trunc.doprint(line.expr)}$; adding the shares up:"
        )
    which = "truncated gradient" if K is not None else "total derivative"
    kept = "kept " if K is not None else ""
    if isinstance(line.target, Indexed):
        x_t = tex.indexed(name, "t")
        return (
            f"Each ${x_t}$ is used once, at step $t$; its {which} "
            f"${_gradient_symbol(tex, name, K, 't')}$ carries every {kept}path from step $t$ "
            "to the loss terms:"
        )
    return (
        f"${sym(name)}$ is used once, at step 1; its {which} carries every {kept}path from "
        "step 1 to the loss terms:"
    )


def _node_tex(tex: LatexPrinter, name: str) -> str:
    """A node of the unrolled graph (`a_2`, `W_h^(1)`, `L_sum`) in LaTeX."""
    if "^(" in name:
        base, step = name.split("^(")
        return f"{{{tex.symbol(base)}}}^{{({step.rstrip(')')})}}"
    if name == "L_sum":
        return r"L_{\mathrm{sum}}"
    head, _, tail = name.rpartition("_")
    if head and tail.isdigit():
        return f"L_{{{tail}}}" if head == "L" else tex.indexed(head, tail)
    return tex.symbol(name) if name != "L" else "L"


def _label(spec) -> str:
    return next(i.name for i in spec.inputs if i.role == "label")


def _has_blocks(form) -> bool:
    """Whether the derivation slices gates out of a matrix (LSTM, GRU)."""
    lines = (*form.model, *form.adjoints, *form.gradients.values())
    kinds = (matexpr.Block, matexpr.Blocks)
    return any(isinstance(n, kinds) for line in lines for n in line.expr.nodes())


def model_phrase(spec) -> str:
    """How prose names the model: "the vanilla RNN", or "the model of cell.txt"."""
    if spec.from_file:
        path = spec.definition.path
        return f"the model of {path.rsplit('/', 1)[-1]}" if path else "the model file's model"
    return f"the {spec.title or spec.name}"


def _file_layout(form, tex: LatexPrinter, first: str) -> str:
    if form.convention == "row":
        return (
            "Row convention, as the model file is written: each example of the minibatch is "
            f"a row, so a per-step quantity is $N \\times k$, weights multiply from the right "
            f"(${first}$), a bias is a row vector added to every row, and softmax acts on "
            "each row."
        )
    return (
        "Column convention: each example of the minibatch is a column, so a per-step quantity "
        f"is $k \\times N$, weights multiply from the left (${first}$), a bias is a column "
        "added to every column, and softmax acts on each column."
    )


def _file_loss_sentence(spec, tex: LatexPrinter) -> str:
    model = spec.definition
    if model.loss is None:
        outs = ", ".join(
            f"${tex.indexed(o, 't')}$ (given ${tex.adjoint(o, 't')}$ as "
            f"${tex.indexed('d' + o, 't')}$)"
            for o in model.outputs
        )
        return (
            f"The file is a layer: its outputs are {outs}. Their upstream gradients are given, "
            "so the loss whose gradients the layer computes is the sum over the steps of each "
            "output's entries times its upstream gradient's:"
        )
    return (
        "The loss at step $t$, as the file writes it, with the matrix operations the engine "
        "uses (a cross-entropy is the log-sum-exp of each example's logits minus the logit of "
        "its label, summed over the examples):"
    )


def _file_states_sentence(spec, tex: LatexPrinter) -> str:
    parts = []
    for state in spec.states:
        start = spec.initial_of(state)
        s0 = tex.indexed(state, "0")
        if start is None:
            parts.append(f"${s0} = 0$ is fixed (it has no gradient)")
        else:
            parts.append(f"${s0} = {tex.symbol(start)}$ is an input with a gradient of its own")
    return "The state before the first step: " + "; ".join(parts) + "."


def _variant_sentence(spec, tex: LatexPrinter, state: str) -> str:
    if spec.from_file:
        title = spec.definition.title
        return (
            f"The model of the file ({title}), for $t = 1, \\dots, T$:"
            if title
            else "The model of the file, for $t = 1, \\dots, T$:"
        )
    o = spec.options
    parts = [f"activation {o.activation}"] if "activation" not in spec.fixed else []
    if "gate_order" in spec.choices:
        order = ", ".join(f"${g}$" for g in o.gate_order)
        parts.append(f"the gates' blocks in the order {order}")
        c_0 = tex.indexed("c", "0")
        parts.append(f"${c_0}$ an input" if o.c0 == "input" else f"${c_0}$ fixed at 0")
    if "reset" in spec.choices:
        parts.append(
            "the reset gate applied after the product with the $n$ block of $W_{h}$ (PyTorch's)"
            if o.reset == "after"
            else "the reset gate applied to $h_{t-1}$ before the product (the original GRU)"
        )
    if o.inputs == "tokens":
        x_t = tex.indexed(spec.sequence.name, "t")
        parts.append(f"token inputs (${x_t}$ holds ids, entering one-hot)")
    if o.no_bias:
        parts.append("no bias " + ", ".join(f"${tex.symbol(b)}$" for b in o.no_bias))
    h_0 = tex.indexed(state, "0")
    parts.append(f"${h_0}$ fixed at 0" if o.h0 == "zero" else f"${h_0}$ an input")
    parts.append(
        "the mean of the N T loss terms" if o.reduction == "mean" else "the sum of the loss terms"
    )
    if o.truncate is not None:
        parts.append(f"{o.truncate}-step truncated BPTT")
    return f"The {spec.title or spec.name} ({'; '.join(parts)}), for $t = 1, \\dots, T$:"


# -- the plain formula language ----------------------------------------------------------------
def formula_text(
    form: MatrixForm, wrt: Sequence[str], names: Mapping[str, str], T: int, version: str
) -> str:
    """The model lines and every backward line the gradients of `wrt` need, in the formula
    language (docs/formula-language.md)."""
    p = FormulaPrinter(names)
    spec = form.spec
    row = form.convention == "row"
    shapes = []
    for item in spec.inputs:
        if item.role == "label" or item.integer:
            continue
        per_step = item.role in ("sequence", "upstream")
        shape = item.shape[1:] if per_step else item.shape
        shape = shape if row else column_shape(shape)
        name = f"{p.name(item.name)}[t]" if per_step else p.name(item.name)
        shapes.append(f"{name} ({','.join(map(str, shape))}{',' if len(shape) == 1 else ''})")
    where = "row: biases added to every row, softmax per row"
    if not row:
        where = "column: biases added to every column, softmax per column"
    layout = f"each example is a {where}; " + ", ".join(shapes)
    out = [
        f"# symbptt {version}: BPTT for {model_phrase(spec)}, {form.convention} convention",
        f"# layout: {layout}",
        f"# {_plain_variant(spec)}",
        *(
            [
                f"# with {spec.options.truncate}-step truncation no path is dropped for "
                f"T <= {spec.options.truncate + 1}: these full-BPTT lines hold only there"
            ]
            if spec.options.truncate is not None
            else []
        ),
        "# dNAME is dL/dNAME, the total derivative (same shape as NAME); "
        "sum(t, ...) runs over t = 1..T",
        f"# every line was checked numerically against symbptt's engine (T = {T} requested)",
        "",
        "# the model",
    ]
    out += [p.rule(line.target, line.expr) for line in form.model]
    out += ["", "# boundaries"]
    out += [p.rule(line.target, line.expr) for line in form.boundaries]
    out += ["", "# backward, for t = T, ..., 1"]
    out += [p.rule(line.target, line.expr) for line in form.lines_for(wrt)]
    out += ["", "# gradients"]
    out += [p.rule(g.target, g.expr, summed=g.summed) for g in map(form.gradient, wrt)]
    return "\n".join(out) + "\n"


def _plain_variant(spec) -> str:
    if spec.from_file:
        model = spec.definition
        return f"model file: {model.path or '<text>'} ({model.title or 'no title'})"
    o = spec.options
    return (
        "variant: "
        f"activation={o.activation} inputs={o.inputs} h0={o.h0} reduction={o.reduction} "
        f"no_bias={','.join(o.no_bias) or '-'} truncate={o.truncate}"
    )
