"""The reader of derivations in LaTeX, in the notation of papers and blogs.

A LaTeX rule is tokenized (a fixed table of commands, never evaluated) and written in the
formula language, then parsed by the same LALR grammar as the text format; a parse error is
reported at the LaTeX line and column it came from. Read:

- symbols `h_t`, `h_{t-1}`, `\\mathbf{h}^{(t-1)}`, `\\mathbf{W_h}`, `W_{hh}`, `\\hat{y}`;
- adjoints `d\\mathbf{h}^{(t)}`, `\\mathrm{d}h_t`, `\\nabla_{\\mathbf{h}^{(t)}} L`,
  `\\frac{\\partial L}{\\partial \\mathbf{a}^{(t)}}`, `\\frac{\\mathrm{d}L}{\\mathrm{d}W_h}` (a
  numerator L^{(t)} is read as L);
- transposes `^T`, `^{T}`, `^\\top`, `^{\\intercal}`; powers `^2`; `\\odot`, `\\circ`;
  juxtaposition as the matrix product; `\\tanh`, `\\sigma`, `\\exp`, `\\log`,
  `\\operatorname{diag}(v)` (with the product it implies), `softmax`;
- `\\sum_{t=1}^{T}` (up to the end of its term); `\\mathbf{1}_{y^{(t)}}` as onehot(y[t]);
- aligned environments: `&`, `\\\\`, `\\begin{aligned}`, `$$`, `\\[ \\]` are split into rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from ..formula.ast import Index, Rule
from ..formula.reader import FormulaSyntaxError, caret, read_text

__all__ = ["read_latex", "read_latex_document", "to_text", "Reading", "Unread", "Skipped"]

#: Commands that only space or size things.
_DROP = {
    r"\left", r"\right", r"\big", r"\Big", r"\bigg", r"\Bigg", r"\displaystyle", r"\quad",
    r"\qquad", r"\,", r"\;", r"\!", r"\:", r"\ ", r"\nonumber", r"\notag", r"\bigl",
    r"\bigr", r"\Bigl", r"\Bigr", r"\biggl", r"\biggr", r"\Biggl", r"\Biggr", r"\textstyle",
}  # fmt: skip
#: What opens a function's argument (a sizing command before its bracket).
_OPENERS = {"(", "{", "[", *(d for d in _DROP if d.startswith((r"\left", r"\big", r"\Big")))}
#: Wrappers whose content is the symbol.
_WRAPPERS = {r"\mathbf", r"\boldsymbol", r"\bm", r"\mathit", r"\mathrm", r"\vec", r"\mathsf"}
_FUNCTIONS = {
    r"\tanh": "tanh",
    r"\sigma": "sigmoid",
    r"\exp": "exp",
    r"\log": "log",
    r"\ln": "log",
    "softmax": "softmax",
    "tanh": "tanh",
    "relu": "relu",
    "diag": "diag",
    "onehot": "onehot",
    "prod": "prod",
}
_TRANSPOSES = {"T", r"\top", r"\intercal", r"\mathsf{T}", r"\mathrm{T}", "{T}", r"{\top}"}
_ELEMENTWISE = {r"\odot", r"\circ", "*"}
#: Written between matrices they are the matrix product (and between a number and a matrix,
#: a scale, which the product of a scalar also is).
_PRODUCTS = {r"\cdot", r"\times"}

_TOKEN = re.compile(
    r"(?P<cmd>\\[A-Za-z]+|\\[,;:! |{}])"
    r"|(?P<num>\d+(\.\d+)?)"
    r"|(?P<name>[A-Za-z])"
    r"|(?P<sym>[{}()\[\]^_=+\-*/,&|])"
    r"|(?P<space>\s+)"
    r"|(?P<other>.)"
)


@dataclass
class _Tok:
    kind: str
    text: str
    column: int


#: Unicode math as its LaTeX (a blog's ∂L/∂h_t, W⊙h, ŷ, hᵀ): each the tokens it stands for.
UNICODE = {
    "∂": ("cmd", r"\partial"), "⊙": ("cmd", r"\odot"), "∘": ("cmd", r"\circ"),
    "∑": ("cmd", r"\sum"), "∏": ("cmd", r"\prod"), "∇": ("cmd", r"\nabla"),
    "·": ("cmd", r"\cdot"), "⋅": ("cmd", r"\cdot"), "×": ("cmd", r"\times"),
    "⊗": ("cmd", r"\otimes"), "σ": ("cmd", r"\sigma"), "δ": ("cmd", r"\delta"),
    "Δ": ("cmd", r"\Delta"), "ε": ("cmd", r"\varepsilon"), "θ": ("cmd", r"\theta"),
    "γ": ("cmd", r"\gamma"), "Γ": ("cmd", r"\Gamma"), "α": ("cmd", r"\alpha"),
    "β": ("cmd", r"\beta"), "λ": ("cmd", r"\lambda"), "τ": ("cmd", r"\tau"),
    "ℓ": ("cmd", r"\ell"), "η": ("cmd", r"\eta"), "φ": ("cmd", r"\phi"),
    "⊤": ("cmd", r"\top"), "−": ("sym", "-"), "–": ("sym", "-"),
}  # fmt: skip
#: Characters that stand for two tokens: a superscript T, a letter with a hat.
UNICODE_PAIRS = {"ᵀ": (("sym", "^"), ("name", "T")), "ŷ": (("cmd", r"\hat"), ("name", "y"))}


def _tokens(line: str) -> list[_Tok]:
    out = []
    for m in _TOKEN.finditer(line):
        kind = m.lastgroup
        if kind == "space":
            continue
        text, column = m.group(), m.start() + 1
        if kind == "other" and text in UNICODE:
            kind, text = UNICODE[text]
        elif kind == "other" and text in UNICODE_PAIRS:
            for kind_, text_ in UNICODE_PAIRS[text]:
                out.append(_Tok(kind_, text_, column))
            continue
        out.append(_Tok(kind, text, column))
    return out


class _Writer:
    """Formula-language text with, for each character, the LaTeX column it came from."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.columns: list[int] = []

    def add(self, text: str, column: int) -> None:
        self.parts.append(text)
        self.columns.extend([column] * len(text))

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def wrap_last_operand(self, before: str, after: str) -> None:
        """`before` + the last symbol written (h[t], W_h, yhat[t].T) + `after`."""
        text = self.text
        m = re.search(r"[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?(\.T)?\s*$", text)
        if m is not None:
            start = m.start()
        elif text.rstrip().endswith(")"):  # (yhat[3] - y[3]): the whole bracket
            depth, start = 0, None
            for k in range(len(text.rstrip()) - 1, -1, -1):
                depth += text[k] == ")"
                depth -= text[k] == "("
                if depth == 0:
                    start = k
                    break
            if start is None:
                raise FormulaSyntaxError("nothing to apply this to")
            name = re.search(r"[A-Za-z_][A-Za-z0-9_]*$", text[:start])
            if name is not None:
                start = name.start()
        else:
            raise FormulaSyntaxError("nothing to apply this to")
        column = self.columns[start] if start < len(self.columns) else 1
        body = text[start:].rstrip()
        self.parts = [text[:start], before, body, after]
        self.columns = (
            self.columns[:start]
            + [column] * len(before)
            + self.columns[start : start + len(body)]
            + [column] * len(after)
        )

    def last(self) -> str:
        text = self.text.rstrip()
        return text[-1:] if text else ""


#: Greek letters read as names (\Gamma_f is Gamma_f); \sigma is the sigmoid.
_GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta",
    "vartheta", "iota", "kappa", "lambda", "mu", "nu", "xi", "pi", "rho", "varrho", "tau",
    "upsilon", "phi", "varphi", "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda",
    "Xi", "Pi", "Sigma", "Upsilon", "Phi", "Psi", "Omega",
}  # fmt: skip
#: Accents read as part of a name: \tilde{c} is ctilde (and printed back as \tilde{c}).
_ACCENTS = {
    r"\tilde": "tilde", r"\widetilde": "tilde", r"\bar": "bar", r"\overline": "bar",
    r"\check": "check", r"\breve": "breve", r"\dot": "dot", r"\widehat": "hat",
}  # fmt: skip
#: The derivative of a function at its argument, as the formula language names it.
PRIMES = {"tanh": "dtanh", "sigmoid": "dsigmoid", "relu": "step", "identity": "done"}


@dataclass
class Context:
    """What the readers of one derivation share: its loss names, the names that take a step
    (so that delta_3 is a name where no delta_t is written), the functions --map names, and
    how the author spells each symbol (to write corrections in the author's notation)."""

    loss_names: set = field(default_factory=lambda: {"L", "J", "E", "ell", "mathcalL"})
    step_bases: set | None = None
    functions: dict = field(default_factory=dict)
    spellings: dict = field(default_factory=dict)
    #: Letters that stand for each member of a set (k in {f, i, o, g}: a rule per gate),
    #: as the latest declaration before the rule being read says.
    sets: dict = field(default_factory=dict)
    #: The largest set declared for each letter in the whole document (for a rule written
    #: before its letter's declaration).
    all_sets: dict = field(default_factory=dict)
    #: How the author writes a symbol's step (`_{}`, `^{({})}`, `({})`), by name, and how
    #: often each way is used; how derivatives are written (frac, nabla, d, delta), how often.
    step_style: dict = field(default_factory=dict)
    step_styles: dict = field(default_factory=dict)
    adjoint_styles: dict = field(default_factory=dict)
    #: The loss as the author writes it in derivatives (J, \mathcal{L}, E).
    loss_spelling: str | None = None
    #: How the author writes the labels' one-hot (`\mathbf{1}_{{}}`, `\mathbf{e}_{{}}`), the
    #: last step (T_x, \tau), whether in Unicode (∂L/∂h_t, Wᵀ), the names written without
    #: their step (\Gamma_u), slices (`(v)_{1:H}`), concatenations ([a, b]), and the gradient
    #: of a loss left abstract (\nabla_{o_t} \ell(o_t, y_t)) by name.
    onehot: str | None = None
    last_step: str | None = None
    unicode: bool = False
    stepless: set = field(default_factory=set)
    slices: bool = False
    numpy_slice: tuple | None = None
    brackets: bool = False
    given: dict = field(default_factory=dict)

    @classmethod
    def of(cls, source: str, functions=None, loss: str | None = None) -> Context:
        """The context a document implies: a loss name from `X = \\sum_t ...` and the symbols
        written with a step subscript or superscript."""
        ctx = cls(functions=dict(functions or {}))
        for m in re.finditer(
            r"(\\mathcal\{([A-Za-z])\}|\\ell|\b([A-Za-z]))\s*&?\s*=\s*(-\s*)?"
            r"(\\frac\{1\}\{[^{}]*\}\s*)?(\\sum|∑)",
            source,
        ):
            name = (
                "mathcal" + m.group(2)
                if m.group(2)
                else ("ell" if m.group(3) is None else m.group(3))
            )
            ctx.loss_names.add(name)
        if loss:
            ctx.loss_names.add(loss)
        bases = set()
        for m in re.finditer(
            r"(\\[A-Za-z]+|[A-Za-z])\s*(\}\s*)?(\^\{\[[^\]]*\]\}\s*)?"
            r"(_\s*\{?\s*(t|T|\\tau|k|s)\b|\^\s*\{\s*[(<\[]\s*(t|T|k)"
            r"|\^\s*\{\s*\\langle)",
            source,
        ):
            bases.add(m.group(1).lstrip("\\"))
        for m in re.finditer(  # a^r_t, \delta^{z}_t: a word on top, then the step
            r"(\\[A-Za-z]+|(?<![A-Za-z\\])[A-Za-z])\s*\^\s*(\{\s*([A-Za-z]+)\s*\}|([A-Za-z]))"
            r"\s*_\s*\{?\s*(t|T|\\tau|k|s)\b",
            source,
        ):
            word = m.group(3) or m.group(4)
            if word not in ("T", "top"):
                bases.add(f"{m.group(1).lstrip(chr(92))}_{word}")
        for m in re.finditer(
            r"(\\[A-Za-z]+|\b[A-Za-z])\s*\(\s*(t|\\tau)\s*([+-]\s*\d+\s*)?\)", source
        ):
            bases.add(m.group(1).lstrip("\\"))  # h(t), \delta(t+1): time in parentheses
        for m in re.finditer(  # \hat{y}_t, \tilde c^{(t)}: the accented name takes a step too
            r"\\(hat|tilde|widetilde|bar|overline|widehat|check|breve|dot)\s*\{?\s*([A-Za-z])\s*\}?"
            r"\s*(_\s*\{?\s*(t|T|\\tau|k)\b|\^\s*\{\s*[(<\[]\s*(t|T|k)|\^\s*\{\s*\\langle)",
            source,
        ):
            accent = m.group(1)
            accent = "hat" if accent in ("hat", "widehat") else _ACCENTS.get("\\" + accent, accent)
            bases.add(m.group(2) + accent)
        ctx.step_bases = bases
        last = re.search(r"(?:\^\s*\{?|\\langle\s*|\(\s*)(T_\{?[a-z]\}?|\\tau)(?![A-Za-z])", source)
        if last is not None:
            ctx.last_step = last.group(1).replace("{", "").replace("}", "")
        ctx.unicode = bool(re.search("[∂ᵀ⊙∑]", source))
        ctx.brackets = bool(re.search(r"(?<![\\a-zA-Z])\[\s*[^\[\]]+,[^\[\]]+\]", source))
        for m in _SET.finditer(source):
            letter, members = m.group(1), _members_of(m.group(2))
            if members and len(members) > len(ctx.all_sets.get(letter, ())):
                ctx.all_sets[letter] = members
        return ctx

    def declare(self, text: str) -> None:
        """k \\in \\{f, i, o\\} in this piece of math: k stands for those from here on."""
        for m in _SET.finditer(text):
            members = _members_of(m.group(2))
            if members:
                self.sets[m.group(1)] = members

    def members(self, letter: str) -> tuple | None:
        return self.sets.get(letter) or self.all_sets.get(letter)


#: `k \\in \\{f, i, o, g\\}`: a letter declared to stand for each of a set's members.
_SET = re.compile(
    r"(?<![\\A-Za-z])([a-z]|\\(?:ast|star|bullet|diamond)(?![A-Za-z]))\s*\\in\s*\\\{([^{}]*?)\\\}"
)


def _members_of(text: str) -> tuple:
    """f, i, o, g (letters, or accented letters) -> their LaTeX texts."""
    parts = [p.strip() for p in text.split(",")]
    if all(re.fullmatch(r"[A-Za-z]|\\[a-z]+\s*\{?[A-Za-z]\}?", p) for p in parts) and parts:
        return tuple(parts)
    return ()


_DEFAULT = Context()


class _Reader:
    """A cursor over one rule's tokens, writing the formula language."""

    def __init__(
        self, tokens: list[_Tok], line: str, number: int, context: Context | None = None
    ) -> None:
        self.toks, self.i, self.line, self.number = tokens, 0, line, number
        self.context = context or _DEFAULT
        self.out = _Writer()
        self.sums: list[int] = []  # paren depth at which each open sum(t, ... started
        self.depth = 0
        self.called = False  # a function name was just written: its ( is a call
        self.transposed = False  # a symbol's superscript also held a transpose
        self.bound: set[str] = set()  # the letters a sum or a product of this rule binds
        self.pick: _Reader | None = None  # y_{t, y_t}: the entry a subscript picks
        self.batch: str | None = None  # the letter of a sum over the minibatch's examples
        self.entries: set[str] = set()  # the letters of sums over a vector's entries
        self._step_span: tuple[int, int] | None = None
        #: Index notation (delta_{h,j}(t) = ... \sum_k w_{kj} delta_{o,k}(t)): the free
        #: entry letters of the left-hand side, the letters sums bind, and the entries of the
        #: symbol being read; None when the rule is not written entry by entry.
        self._slash = False  # a derivative written inline, \partial L / \partial h_t
        self.index_letters: set[str] | None = None
        self.index_sums: set[str] = set()
        self._symbol_entries: list[str] = []
        self.in_lhs = True

    def _sub(self, tokens: list[_Tok]) -> _Reader:
        """A reader of some of this rule's tokens, knowing what the rule binds (a sum's
        letter, the entries or examples summed over)."""
        sub = _Reader(tokens, self.line, self.number, self.context)
        sub.bound, sub.entries, sub.batch = self.bound, self.entries, self.batch
        sub.index_letters, sub.index_sums, sub.in_lhs = (
            self.index_letters,
            self.index_sums,
            self.in_lhs,
        )
        return sub

    # -- cursor
    def peek(self, k: int = 0) -> _Tok | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def take(self) -> _Tok:
        if self.i >= len(self.toks):
            raise self.error(None, "the rule ends too early")
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def error(self, tok: _Tok | None, what: str) -> FormulaSyntaxError:
        column = tok.column if tok else len(self.line) + 1
        return FormulaSyntaxError(
            f"line {self.number}, column {column}: {what}\n{caret(self.line, column)}"
        )

    def group(self) -> list[_Tok]:
        """The tokens of a {...} group (or one token), the braces consumed."""
        tok = self.take()
        if tok.text != "{":
            return [tok]
        depth, inside = 1, []
        while self.peek() is not None:
            t = self.take()
            if t.text == "{":
                depth += 1
            elif t.text == "}":
                depth -= 1
                if depth == 0:
                    return inside
            inside.append(t)
        raise self.error(tok, "this { is never closed")

    # -- symbols
    def symbol(self) -> tuple[str, str | None, int] | None:
        """A symbol at the cursor: (name, index text or None, column), or None."""
        tok = self.peek()
        if tok is None:
            return None
        column = tok.column
        if tok.kind == "cmd" and tok.text in _WRAPPERS and tok.text != r"\mathrm":
            self.take()
            inner = self.group()
            name, index = _symbol_of(inner, self.context)
            if name is None:
                raise self.error(tok, f"cannot read a symbol in {tok.text}{{...}}")
        elif tok.kind == "cmd" and tok.text == r"\mathcal":
            self.take()
            inner = self.group()
            letters = "".join(t.text for t in inner)
            if not letters.isalpha():
                raise self.error(tok, "cannot read this \\mathcal{...}")
            name, index = "mathcal" + letters, None
            self.context.spellings.setdefault(name, rf"\mathcal{{{letters}}}")
        elif tok.kind == "cmd" and tok.text in (r"\hat", *_ACCENTS):
            self.take()
            inner = self.group()
            base, index = _symbol_of(inner, self.context)
            if base is None:
                raise self.error(tok, f"cannot read the symbol under {tok.text}")
            accent = "hat" if tok.text == r"\hat" else _ACCENTS[tok.text]
            name = f"{base}{accent}"
            if accent != "hat":
                self.context.spellings.setdefault(name, rf"\{accent}{{{base}}}")
        elif (
            tok.kind == "cmd"
            and tok.text in (r"\text", r"\textrm", r"\mathrm", r"\textit", r"\mathit")
            and self.peek(1) is not None
            and self.peek(1).text == "{"
            and self._word_symbol()
        ):
            self.take()
            name, index = "".join(t.text for t in self.group()), None
        elif tok.kind == "cmd" and tok.text == r"\ell":
            self.take()
            name, index = "ell", None
        elif tok.kind == "cmd" and tok.text[1:] in _GREEK and tok.text != r"\sigma":
            self.take()
            name, index = tok.text[1:], None
        elif tok.kind == "name":
            self.take()
            name, index = tok.text, None
        else:
            return None
        start = self.i - 1
        while start > 0 and self.toks[start].column > column:
            start -= 1
        self._step_span = None
        found = self._decorate(name, index, column)
        self._spell(found, column)
        return found

    def _spell(self, found, column: int) -> None:
        """Remember how the author writes the symbol and its step (for corrections written
        in the author's notation)."""
        name, index, _ = found
        unspelled, self._unspelled = getattr(self, "_unspelled", False), False
        if not self.line or self.i == 0 or unspelled or self._symbol_entries:
            return
        last = self.toks[self.i - 1]
        end = last.column - 1 + len(last.text)
        raw = self.line[column - 1 : end]
        span = self._step_span
        if span is not None:
            s0, s1 = span
            base = self.line[column - 1 : s0 - 1] + self.line[s1 - 1 : end]
            step = self.line[s0 - 1 : s1 - 1]
            if index is not None and index.strip() == "t":
                style = re.sub(r"(?<![A-Za-z\\])t(?![A-Za-z])", "{}", step, count=1)
                if "{}" in style:
                    self.context.step_style.setdefault(name, style)
                    counts = self.context.step_styles
                    counts[style] = counts.get(style, 0) + 1
        else:
            base = raw
        base = base.strip()
        if base and name not in self.context.spellings:
            self.context.spellings[name] = base

    def _decorate(self, name: str, index: str | None, column: int):
        """Subscripts and step superscripts after a symbol: W_h, h_t, h^{(t-1)}, W_{hh}, and
        a word on top as part of the name: W^{xh}, \\delta^o_t."""
        for _ in range(3):  # h^{(t)}_{y^{(t)}}: decorations in any order
            before = self.i
            while self._word_on_top():
                self.take()
                word = "".join(t.text for t in self.group())
                name = f"{name}_{word}"
            while self._layer_on_top():  # h^{[1]}, W^{[\ell]}: the layer, part of the name
                self.take()
                inner = [t for t in self.group() if t.text not in ("[", "]")]
                layer = "".join(t.text.lstrip("\\") for t in inner)
                name = f"{name}_{LAYER}{layer}"
            while self.peek() is not None and self.peek().text == "_":
                mark = self.peek().column
                self.take()
                group = self.group()
                sub = "".join(t.text for t in group)
                sub = sub.replace("\\tau", "T")
                steps = self.context.step_bases
                base = name.split("_" + LAYER)[0]
                digits_only = sub.strip().isdigit() and steps is not None and base not in steps
                head, comma, rest = sub.partition(",")
                if self._index_subscript(sub):  # delta_{h,j}, w^{ho}_{kj}: entries
                    if self._index_name:
                        name = f"{name}_{self._index_name}"
                    continue
                if self._bound_subscript(sub):  # y_{k,j} inside sums over k and j
                    self._unspelled = True  # y_i: not how the author writes y
                    continue
                if comma and self._is_step(head, name) and index is None:  # y_{t, y_t}: an entry
                    index = head
                    self.pick = _Reader(
                        group[_after_comma(group) :], self.line, self.number, self.context
                    )
                elif _symbol_like(group):  # \hat y^{(t)}_{y^{(t)}}, \hat y_{y(t)}(t)
                    self.pick = self._sub(group)
                elif (
                    self._is_step(sub, name)
                    and index is None
                    and not _param_like(name)
                    and not digits_only
                ):
                    index = sub
                    self._mark_step(mark)
                elif name == "1" or name.startswith("1"):
                    index = sub
                else:
                    name = f"{name}_{sub}"
            while self._angle_step():
                mark = self.peek().column
                self.take()
                inner = self.group()
                close = next(
                    (k for k, t in enumerate(inner) if t.text in (r"\rangle", ">")), len(inner)
                )
                text = "".join(t.text for t in inner[:close] if t.text not in (r"\langle", "<"))
                rest = "".join(t.text for t in inner[close + 1 :]).lstrip("^").strip("{}")
                text = _last_step(text)
                if not self._is_step(text, name) or (rest and rest not in _TRANSPOSES):
                    raise self.error(self.peek(), f"cannot read the step {text + rest!r}")
                index = text
                self._mark_step(mark)
                if rest:  # a^{\langle t \rangle T}: the step and a transpose (deeplearning.ai)
                    self.transposed = True
            while (
                self.peek() is not None
                and self.peek().text == "^"
                and self.peek(1) is not None
                and self.peek(1).text == "{"
                and self.peek(2) is not None
                and self.peek(2).text == "("
            ):
                mark = self.peek().column
                self.take()
                inner = self.group()
                text = "".join(t.text for t in inner)
                m = re.fullmatch(r"\((.*)\)(.*)", text)
                step, rest = (m.group(1), m.group(2)) if m else (text, "")
                rest = rest.lstrip("^").strip("{}")  # h^{(t)^\top}: the step, then ^\top
                if not self._is_step(step, name) or (rest and rest not in _TRANSPOSES):
                    raise self.error(self.peek(), f"cannot read the step {text!r}")
                index = step
                self._mark_step(mark)
                if rest:  # h^{(t-1)\top}: the step and a transpose in one superscript
                    self.transposed = True
            if self.i == before:
                break
        if (  # h(t), h(t-1): a step in parentheses after a symbol that is no function
            index is None
            and self.peek() is not None
            and self.peek().text == "("
            and name not in self.context.functions
        ):
            close = next(
                (k for k in range(1, 8) if self.peek(k) is not None and self.peek(k).text == ")"),
                None,
            )
            if close is not None:
                text = "".join(self.peek(k).text for k in range(1, close)).replace("\\tau", "T")
                steps = self.context.step_bases
                digit_ok = text.strip() == "0" or (steps is not None and name in steps)
                if self._is_step(text, name) and (not text.strip().isdigit() or digit_ok):
                    mark = self.peek().column
                    for _ in range(close + 1):
                        self.take()
                    index = text
                    self._mark_step(mark)
        if name.isalpha() and len(name) > 1 and name in _GREEK:
            self.context.spellings.setdefault(name, "\\" + name)
        return name, index, column

    def _style(self, style: str) -> None:
        counts = self.context.adjoint_styles
        counts[style] = counts.get(style, 0) + 1

    def _mark_step(self, mark: int) -> None:
        """The step decoration runs from column `mark` to the token just taken."""
        last = self.toks[self.i - 1]
        self._step_span = (mark, last.column + len(last.text))

    def _norm_ahead(self) -> bool:
        """|| ... ||: two bars make a norm (one bar alone is not read)."""
        return self.peek(1) is not None and self.peek(1).text == "|"

    def norm(self) -> None:
        r"""\|X\|^2, \lVert X \rVert_2^2, \left\| X \right\|_F^2: the sum of the squares of
        X's entries (a norm not squared is not read)."""
        tok = self.take()
        closing = {r"\|": (r"\|",), r"\lVert": (r"\rVert",), r"\Vert": (r"\Vert",)}
        ends = closing.get(tok.text, ("|",))
        if tok.text == "|":
            self.take()
        tokens, depth = [], 0
        while True:
            t = self.peek()
            if t is None:
                raise self.error(tok, "this norm is never closed")
            if depth == 0 and t.text in ends and not (t.text == "|" and self.peek(1) is None):
                self.take()
                if t.text == "|":
                    self.take()
                break
            if t.text in (r"\left", r"\right"):
                self.take()
                continue
            depth += t.text in ("(", "{", "[")
            depth -= t.text in (")", "}", "]")
            tokens.append(self.take())
        if self.peek() is not None and self.peek().text == "_":  # \|X\|_2, \|X\|_F
            self.take()
            self.group()
        if not (self.peek() is not None and self.peek().text == "^"):
            raise self.error(tok, "a norm that is not squared is not read: write ||X||^2")
        self.take()
        power = "".join(t.text for t in self.group())
        if power != "2":
            raise self.error(tok, f"a norm to the power {power} is not read: write ||X||^2")
        inner = self._sub(tokens).read()
        self.operand(tok.column)
        self.out.add(f"sum(({inner})**2)", tok.column)

    def outer(self, tok: _Tok) -> None:
        r"""u \otimes v: the outer product, the left operand already written."""
        self.out.wrap_last_operand("outer(", ", ")
        found = self.symbol()
        if found is None:
            raise self.error(tok, "\\otimes needs a symbol on its right")
        self.called = True
        self.write_symbol(*found, adjoint=False, operand=False)
        self.out.add(")", tok.column)

    def entry(self) -> None:
        """p_t[y_t]: the entry of the labels' class (as in a loss -log p_t[y_t])."""
        tok = self.take()
        tokens, depth = [], 1
        while self.peek() is not None:
            t = self.take()
            depth += t.text == "["
            depth -= t.text == "]"
            if depth == 0:
                break
            tokens.append(t)
        if self._bound_subscript("".join(t.text for t in tokens)):
            return  # dgamma[:, j] inside a sum over the examples j: the example's column
        if self.batch is not None and tokens and tokens[0].text == self.batch:
            # P_t[n, y_t[n]]: example n's entry of its label's class
            if len(tokens) < 3 or tokens[1].text != ",":
                raise self.error(tok, f"cannot read the entry [{self.batch}, ...]")
            tokens = tokens[2:]
            if len(tokens) > 3 and tokens[-1].text == "]" and tokens[-2].text == self.batch:
                tokens = tokens[:-3]
        sub = self._sub(tokens)
        found = sub.symbol()
        if found is None or sub.peek() is not None:
            raise self.error(tok, "cannot read the entry [...] of a symbol (one symbol)")
        name, index, _ = found
        self.out.wrap_last_operand("pick(", f", {_written((name, index or 't', 0))})")

    def _word_symbol(self) -> bool:
        """\text{target}: a word that names a symbol (no function, not d)."""
        k, word = 2, ""
        while (t := self.peek(k)) is not None and t.kind == "name":
            word += t.text
            k += 1
        closed = self.peek(k) is not None and self.peek(k).text == "}"
        return closed and len(word) > 1 and word not in _FUNCTIONS and word not in _MATH_TEXT

    def _is_step(self, text: str, name: str) -> bool:
        """A step index: t, T, tau, a number, t-1; k or j for a symbol the derivation also
        writes at step t (h_k), or the letter a sum or a product of this rule binds."""
        text = _last_step(text)
        letters = {"t", "T"} | self.bound
        steps = self.context.step_bases
        name = name.split("_" + LAYER)[0]  # h_L1 takes the steps h takes
        if steps is None or name in steps:
            letters |= {"k", "j"}
        pattern = "|".join(sorted(letters))
        return bool(re.fullmatch(rf"\s*({pattern}|\\tau)(\s*[+-]\s*\d+)?\s*|\s*\d+\s*", text))

    def _layer_on_top(self) -> bool:
        """^{[1]}, ^{[\\ell]}, ^{[l]}: a layer in square brackets."""
        return (
            self.peek() is not None
            and self.peek().text == "^"
            and self.peek(1) is not None
            and self.peek(1).text == "{"
            and self.peek(2) is not None
            and self.peek(2).text == "["
        )

    def _word_on_top(self) -> bool:
        """^o, ^{xh}: letters that name (not T, the transpose)."""
        if self.peek() is None or self.peek().text != "^" or self.peek(1) is None:
            return False
        first = self.peek(1)
        if first.kind == "name":
            return first.text != "T"
        if first.text != "{":
            return False
        k, word = 2, ""
        while self.peek(k) is not None and self.peek(k).kind == "name":
            word += self.peek(k).text
            k += 1
        return bool(word) and word != "T" and self.peek(k) is not None and self.peek(k).text == "}"

    def _angle_step(self) -> bool:
        """^{<t>}, ^{\\langle t \\rangle}: a step in angle brackets (deeplearning.ai)."""
        return (
            self.peek() is not None
            and self.peek().text == "^"
            and self.peek(1) is not None
            and self.peek(1).text == "{"
            and self.peek(2) is not None
            and self.peek(2).text in ("<", r"\langle")
        )

    def write_symbol(
        self, name: str, index: str | None, column: int, adjoint: bool, operand: bool = True
    ) -> None:
        if adjoint and index is not None and index.strip() == "0":
            name, index = name + "0", None  # dL/dh_0: the gradient of the initial state
        name = ("d" if adjoint else "") + name
        if operand:
            self.operand(column)
        written = name if index is None else f"{name}[{_index_text(index)}]"
        if self.pick is not None and name in ("e", "1"):  # e_{y_t}: the unit vector of y_t
            pick, self.pick = self.pick, None
            written = f"onehot({pick.read()})"
        elif self.pick is not None:  # yhat_{t, y_t}: the entry of the labels' class
            pick, self.pick = self.pick, None
            written = f"pick({written}, {pick.read()})"
        entries, self._symbol_entries = self._symbol_entries, []
        if entries and not self.in_lhs:  # w_{kj}: an entry of W, read entry by entry
            written = f"{INDEXED}({written}, {', '.join(entries)})"
        self.out.add(written, column)
        if self.transposed:
            self.out.add(".T", column)
            self.transposed = False

    def operand(self, column: int) -> None:
        """Juxtaposition: an operand right after another one is a matrix product."""
        if self.called:
            self.called = False
            return
        if self.out.last() and (self.out.last().isalnum() or self.out.last() in ")]T_"):
            scalar = _SCALAR_BEFORE.search(self.out.text)  # 2 h_t, \frac{1}{T} \sum: a scale
            entrywise = bool(self.entries) or self.index_letters is not None  # entries
            self.out.add(" * " if scalar or entrywise else " @ ", column)

    def called_function(self, name: str, column: int) -> None:
        self.operand(column)
        self.out.add(name, column)
        self.called = True
        nxt = self.peek()
        if nxt is not None and self._function_ahead():  # \log \operatorname{softmax}(o_t)
            self.out.add("(", column)
            self.called = False
            depth = self.depth
            self.step()  # the inner function's name, then its argument, brackets and all
            while self.peek() is not None and (self.called or self.depth > depth):
                self.step()
            if self.peek() is not None and self.peek().text == "[" and self._entry_ahead():
                self.entry()  # \log \operatorname{softmax}(o_t)[y_t]
            self.out.add(")", column)
            return
        if nxt is not None and nxt.text not in _OPENERS:  # \tanh a_t
            found = self.symbol()
            if found is None:
                raise self.error(nxt, f"{name} needs an argument")
            self.out.add("(", column)
            self.called = False
            self.write_symbol(*found, adjoint=False, operand=False)
            if self.peek() is not None and self.peek().text == "[" and self._entry_ahead():
                self.entry()  # \log p_t[y_t]: of the entry
            self.out.add(")", column)

    def _function_ahead(self) -> bool:
        """The next tokens start another function's call (\\tanh, \\operatorname{softmax})."""
        tok = self.peek()
        if tok.kind == "cmd" and tok.text in _FUNCTIONS:
            return True
        if tok.text in (r"\operatorname", r"\mathrm", r"\text") and self.peek(1) is not None:
            if self.peek(1).text == "{":
                k, word = 2, ""
                while (t := self.peek(k)) is not None and t.kind == "name":
                    word += t.text
                    k += 1
                return word in _FUNCTIONS or word.lower() in _FUNCTIONS
        return False

    # -- the rule
    def read(self) -> str:
        free = self._index_notation()
        if free:  # delta_{h,j}(t) = ... \sum_k w_{kj} delta_{o,k}(t): entry by entry
            self.index_letters = free
        letter = None if free else self._entrywise()
        if letter:  # (\nabla_o L)_i = ...: a rule for every entry i, read for the whole vector
            self.entries.add(letter)
        while self.peek() is not None:
            self.step()
        while self.sums:
            self.sums.pop()
            self.out.add(")", len(self.line) + 1)
        return self.out.text

    def step(self) -> None:
        tok = self.peek()
        text = tok.text
        if tok.kind == "cmd" and text in _DROP or text == "&":
            self.take()
            return
        if text in ("+", "-", "="):
            while self.sums and self.sums[-1] == self.depth:  # a sum ends with its term
                self.sums.pop()
                self.out.add(")", tok.column)
                if text != "=":
                    break
            self.take()
            self.out.add(f" {text} ", tok.column)
            if text == "=" and self.depth == 0:
                self.in_lhs = False
            return
        if text == "," and self.depth > 0:  # between a call's arguments or a block's parts
            self.take()
            self.out.add(", ", tok.column)
            return
        if text in ("(", "[", r"\left") and self._arguments_of_loss():
            return
        if text == "[" and _ends_with_operand(self.out.text) and self._entry_ahead():
            self.entry()  # p_t[y_t]: an entry, not a bracket
            return
        if text in ("(", "[", "{"):
            comma = self._comma_ahead()
            self.take()
            if comma and text == "[":  # [h_{t-1}, x_t]: the parts put together
                self.operand(tok.column)
                self.out.add("concat", tok.column)
            elif _ends_with_name(self.out.text) and (
                comma or _function_letter(self.out.text, self.context)
            ):  # l(o_t, y_t), f(a_t): a function's call
                pass
            else:
                grouping = not self.called
                self.operand(tok.column)
                if grouping:  # a bracket the author wrote: kept as one factor (see _members)
                    self.out.add(GROUP, tok.column)
            self.depth += 1
            self.out.add("(", tok.column)
            return
        if text in (")", "]", "}"):
            self.take()
            while self.sums and self.sums[-1] == self.depth:
                self.sums.pop()
                self.out.add(")", tok.column)
            self.depth -= 1
            self.out.add(")", tok.column)
            return
        if text == "^":
            self.superscript()
            return
        if text == "_" and self.batch is not None and self._example_subscript():
            return
        if text == "_" and self._entry_subscript():
            return
        if text == "_" and self.entries and self._bound_subscript_ahead():
            return
        if text == "_":
            raise self.error(
                tok,
                "an entry of an expression, (X)_i, is not read: write the rule for the whole "
                "vector or matrix",
            )
        if text in _ELEMENTWISE or (tok.kind == "cmd" and text in _ELEMENTWISE):
            self.take()
            self.out.add(" * ", tok.column)
            return
        if tok.kind == "cmd" and text in _PRODUCTS:
            self.take()
            self.out.add(" @ ", tok.column)
            return
        if text == "/":
            self.take()
            self.out.add(" / ", tok.column)
            return
        if tok.kind == "num":
            if text == "1" and self.peek(1) is not None and self.peek(1).text == "_":
                self.onehot(self.take())
                return
            self.take()
            self.operand(tok.column)
            self.out.add(text, tok.column)
            return
        if tok.kind == "cmd" and text in (r"\frac", r"\tfrac", r"\dfrac"):
            self.fraction()
            return
        if text == r"\partial" and self._slash_derivative():
            return
        if text in (r"\|", r"\lVert", r"\Vert") or (text == "|" and self._norm_ahead()):
            self.norm()
            return
        if tok.kind == "cmd" and text == r"\otimes":
            self.take()
            self.outer(tok)
            return

        if tok.kind == "cmd" and text == r"\nabla":
            self.nabla()
            return
        if tok.kind == "cmd" and text in (r"\sum", r"\prod"):
            self.sum()
            return
        if tok.kind == "cmd" and text in (r"\operatorname", r"\text", r"\mathrm") and self._named():
            return
        if tok.kind == "cmd" and text in (*_WRAPPERS, r"\mathbb") and self._one_hot_wrapped():
            return
        if self._generic_prime():
            return
        if text in _FUNCTIONS or (tok.kind == "name" and self._word() in _FUNCTIONS):
            self.function()
            return
        if self._adjoint_prefix():
            return
        found = self.symbol()
        if found is not None:
            self.write_symbol(*found, adjoint=False)
            return
        raise self.error(tok, f"cannot read {text!r} here")

    def _size_subscript(self) -> bool:
        """_N, _{N}, _H: a subscript that is a size (the length of a vector of ones)."""
        if self.peek() is None or self.peek().text != "_":
            return False
        save = self.i
        self.take()
        text = "".join(t.text for t in self.group())
        if text in ("N", "H", "D", "C", "T", "K"):
            return True
        self.i = save
        return False

    def _entry_subscript(self) -> bool:
        """(softmax(o_t))_{y_t}: the entry of the labels' class of a bracketed expression;
        (v)_{[:n_a, :]}, (v)_{[n_a:, :]}: its first n_a rows, or the rows after them."""
        save = self.i
        self.take()
        group = self.group()
        text = "".join(t.text for t in group).replace(" ", "")
        m = re.fullmatch(r"\[(:?)n_\{?([A-Za-z]+)\}?(:?)(,:)?\]", text)
        if m and bool(m.group(1)) != bool(m.group(3)) and self.out.text.rstrip().endswith(")"):
            part = 1 if m.group(1) else 2  # the first rows, or the rest
            self.context.numpy_slice = self.context.numpy_slice or (
                f"n_{{{m.group(2)}}}" if len(m.group(2)) > 1 else f"n_{m.group(2)}",
                bool(m.group(4)),
            )
            self.out.wrap_last_operand("rows(", f", {part}, n_{m.group(2)})")
            return True
        m = re.fullmatch(rf"({_SIZE_TERM}):({_SIZE_TERM})", text)
        if m and self.out.text.rstrip().endswith(")"):  # (dz)_{H+1:H+D}: entries H+1..H+D
            self.context.slices = True
            self.out.wrap_last_operand(
                "span(", f", {_size_text(m.group(1))}, {_size_text(m.group(2))})"
            )
            return True
        if (
            self.batch is not None
            and len(group) > 2
            and group[0].text == self.batch
            and group[1].text == ","
            and self.out.text.rstrip().endswith(")")
        ):  # (P_t)_{n, y_{t,n}}: example n's entry of its label's class
            sub = self._sub(group[2:])
            found = sub.symbol()
            if found is not None and sub.peek() is None and found[1] is not None:
                self.out.wrap_last_operand("pick(", f", {_written(found)})")
                return True
        if not _symbol_like(group) or not self.out.text.rstrip().endswith(")"):
            self.i = save
            return False
        found = self._sub(group).symbol()
        if found is None:
            self.i = save
            return False
        self.out.wrap_last_operand("pick(", f", {_written(found)})")
        return True

    def _entry_ahead(self) -> bool:
        """[y_t] or, in a sum over the examples n, [n, y_t[n]]: an entry, not a bracket."""
        if not self._comma_ahead():
            return True
        inside = []
        for t in self.toks[self.i + 1 :]:
            if t.text == "]":
                break
            inside.append(t.text)
        if self._bound_subscript("".join(inside)):
            return True
        nxt = self.peek(1)
        return self.batch is not None and nxt is not None and nxt.text == self.batch

    def _bound_subscript_ahead(self) -> bool:
        """_i after a bracket, in a rule read entry by entry: dropped."""
        save = self.i
        self.take()
        text = "".join(t.text for t in self.group())
        if self._bound_subscript(text):
            return True
        self.i = save
        return False

    def _index_notation(self) -> set[str] | None:
        """The free entry letters of a rule written entry by entry (index notation): the
        left-hand side's subscript ends with an entry letter (delta_{h,j}(t), h_j(t)), and
        the right-hand side sums over other entry letters without a range (\\sum_k)."""
        depth, k, eq = 0, 0, None
        for k, t in enumerate(self.toks):
            depth += t.text in ("{", "(", "[")
            depth -= t.text in ("}", ")", "]")
            if t.text == "=" and depth == 0:
                eq = k
                break
        if eq is None:
            return None
        rhs = "".join(t.text for t in self.toks[eq + 1 :])
        sums = {a or b for a, b in re.findall(r"\\sum_(?:\{([a-z])\}|([a-z])(?![=a-zA-Z{]))", rhs)}
        sums -= {"t"}
        if not sums:
            return None
        lhs = "".join(t.text for t in self.toks[:eq])
        m = re.search(r"_\{(?:[A-Za-z]+,)?([a-z])\}(?=\(|\^|$)|_([a-z])(?=\(|\^)", lhs)
        if m is None:
            return None
        letter = m.group(1) or m.group(2)
        if letter in ("t", "k") and letter not in sums and not re.search(r"\(t|\^\{", lhs):
            return None
        if letter in sums or not re.search(rf"_\{{?[^}}]*(?<![A-Za-z]){letter}(?![A-Za-z])", rhs):
            return None
        return {letter}

    def _index_subscript(self, sub: str) -> bool:
        """In index notation: a subscript of entry letters (_j, _{kj}, _{k,j}), after a
        word that is part of the name (_{h,j}: delta_h's entry j)."""
        self._index_name = ""
        if self.index_letters is None:
            return False
        letters = self.index_letters | self.index_sums
        parts = [p.strip() for p in sub.split(",")]
        tail: list[str] = []
        while parts and parts[-1] in letters:
            tail.insert(0, parts.pop())
        if not tail and len(parts) == 1 and len(parts[0]) == 2 and set(parts[0]) <= letters:
            tail, parts = list(parts[0]), []
        if not tail or len(tail) > 2:
            return False
        self._symbol_entries = tail
        self._index_name = "_".join(parts)
        return True

    def _entrywise(self) -> str | None:
        """The letter of an entry the left-hand side is written for ((X)_i, o^{(t)}_i), when
        it is no step: the rule holds entry by entry."""
        depth = 0
        for k, t in enumerate(self.toks):
            if t.text == "=" and depth == 0:
                break
            depth += t.text in ("{", "(", "[")
            depth -= t.text in ("}", ")", "]")
            if t.text != "_" or k + 1 >= len(self.toks):
                continue
            nxt = self.toks[k + 1]
            letter = nxt.text
            if letter == "{" and k + 3 < len(self.toks) and self.toks[k + 3].text == "}":
                letter = self.toks[k + 2].text
            if letter in ("i", "j") and (k == 0 or self.toks[k - 1].text in (")", "}")):
                return letter
        return None

    def _entry_letter(self, var: str) -> bool:
        """The rest of the rule uses the letter only as an entry subscript: one of two
        (y_{k,j}), or beside a step (o_i^{(t)}, h^{(t)}_i); h_k alone is a step."""
        text = "".join(t.text for t in self.toks[self.i :])
        v = re.escape(var)
        return bool(
            re.search(
                rf"_\{{{v},|,{v}\}}|_\{{?{v}\}}?\^\{{(\(|<|\\langle)"
                rf"|\^\{{(\([^)]*\)|(<|\\langle)[^}}]*)\}}_\{{?{v}(?![A-Za-z0-9])",
                text,
            )
        )

    def _bound_subscript(self, text: str) -> bool:
        """_{k,j}, _{:,j}, _{n,:}: entries or examples that a sum of the rule runs over."""
        letters = self.entries | ({self.batch} if self.batch else set())
        parts = [p.strip() for p in text.split(",")]
        return (
            bool(letters)
            and all(p in letters or p == ":" for p in parts)
            and any(p in letters for p in parts)
        )

    def _example_subscript(self) -> bool:
        """(X)_{n,:}, (X)_{:,n}: row (or column) n of X, inside a sum over the examples n
        (the sum of the rows is what the sum over n makes of it)."""
        save = self.i
        self.take()
        text = "".join(t.text for t in self.group()).replace(" ", "")
        if text in (f"{self.batch},:", f":,{self.batch}", self.batch):
            return True
        self.i = save
        return False

    def _comma_ahead(self) -> bool:
        """The bracket at the cursor holds a comma at its own depth (a call's arguments or
        the parts of a concatenation)."""
        depth = 0
        k = 0
        while (t := self.peek(k)) is not None:
            if t.text in ("(", "[", "{"):
                depth += 1
            elif t.text in (")", "]", "}"):
                depth -= 1
                if depth == 0:
                    return False
            elif t.text == "," and depth == 1:
                return True
            k += 1
        return False

    def _arguments_of_loss(self) -> bool:
        r"""E_t(y_t, \hat y_t) = ...: a loss term written with its arguments; they name
        nothing (the left-hand side is the loss term E_t)."""
        written = self.out.text.strip()
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(\[[^\]]*\])?", written)
        if m is None or m.group(1) not in self.context.loss_names:
            return False
        depth, k = 0, 0
        while (t := self.peek(k)) is not None:
            if t.text in ("(", "[", "{", r"\left"):
                depth += 1 if t.text != r"\left" else 0
            elif t.text in (")", "]", "}"):
                depth -= 1
                if depth == 0:
                    break
            k += 1
        after = self.peek(k + 1)
        if after is None or after.text != "=":
            return False
        for _ in range(k + 1):
            self.take()
        return True

    def superscript(self) -> None:
        tok = self.take()
        sup = [t for t in self.group() if t.text not in _DROP]
        text = "".join(t.text for t in sup)
        euler = re.search(r"(^|[^\w\].])e\s*$", self.out.text)
        if euler is not None and sup and text not in _TRANSPOSES:  # e^{-v}: exp(-v)
            inner = self._sub(sup).read()
            keep = len(self.out.text.rstrip()) - 1
            self.out.parts = [self.out.text[:keep]]
            self.out.columns = self.out.columns[:keep]
            self.out.add(f"exp({inner})", tok.column)
            return
        if text in _TRANSPOSES or text.replace("{", "").replace("}", "") in _TRANSPOSES:
            self.out.add(".T", tok.column)
        elif text.isdigit():
            self.out.add(f"**{text}", tok.column)
        elif text in (r"\prime", "'"):
            raise self.error(tok, "a prime on a quantity (not a function) is not read")
        elif re.fullmatch(r"[A-Za-z]+", text) and self.out.text.rstrip()[-1:].isalnum():
            # W^{xh}: a name with a word on top (written as W_xh)
            self.out.parts[-1] = self.out.parts[-1].rstrip() + f"_{text}"
            self.out.columns.extend([tok.column] * (len(text) + 1))
        elif re.fullmatch(r"-\d+", text):
            self.out.add(f"**{text}", tok.column)
        elif self._step_power(text, tok):
            return
        else:
            raise self.error(tok, f"cannot read the superscript {text!r}")

    def _step_power(self, text: str, tok: _Tok) -> bool:
        """(W^T)^{i-t}, W^{T-t}: a matrix to a power that depends on the steps, the product
        of that many copies (the identity for none)."""
        m = re.fullmatch(r"\(?([A-Za-z])(?:-([A-Za-z]))?\)?", text.replace(" ", ""))
        if m is None:
            return False
        high, low = m.group(1), m.group(2)
        letters = {"t", "T"} | self.bound
        if high not in letters or (low is not None and low not in letters):
            return False
        if low is None and high == "T":
            return False  # W^T: a transpose
        var = next(c for c in "rqpmn" if c not in self.bound and c not in (high, low))
        start = f"{low}+1" if low is not None else "1"
        self.out.wrap_last_operand(f"prodover({var}={start}..{high}, ", ")")
        return True

    def _word(self) -> str:
        """Letters spelled as separate tokens: s o f t m a x."""
        word, k = "", 0
        while (t := self.peek(k)) is not None and t.kind == "name":
            word += t.text
            k += 1
            if word in _FUNCTIONS:
                return word
        return word

    def function(self) -> None:
        tok = self.peek()
        if tok.kind == "cmd":
            self.take()
            name = _FUNCTIONS[tok.text]
        else:
            name = ""
            while name not in _FUNCTIONS:
                name += self.take().text
            name = _FUNCTIONS[name]
        if self._prime():
            name = PRIMES.get(name, f"d{name}")
        power = None
        if (
            self.peek() is not None
            and self.peek().text == "^"
            and self.peek(1) is not None
            and self.peek(1).text.isdigit()
        ):  # \tanh^2(u): the square of tanh(u)
            self.take()
            power = self.take().text
        self.called_function(name, tok.column)
        if power is not None:
            self._power_after_argument(power, tok.column)

    def _power_after_argument(self, power: str, column: int) -> None:
        """The argument of a function written with a power (\\tanh^2(u)) read, then the power."""
        if self.peek() is None or self.peek().text not in _OPENERS:
            self.out.add(f"**{power}", column)
            return
        while self.peek() is not None and self.peek().text in _DROP:
            self.take()
        open_ = self.take()
        close = {"(": ")", "[": "]", "{": "}"}.get(open_.text, ")")
        depth, tokens = 1, []
        while self.peek() is not None:
            t = self.take()
            if t.text == open_.text:
                depth += 1
            elif t.text == close:
                depth -= 1
                if depth == 0:
                    break
            tokens.append(t)
        inner = self._sub(tokens).read()
        self.called = False
        self.out.add(f"({inner})**{power}", column)

    def _prime(self) -> bool:
        """A prime after a function: ', ^\\prime, ^{\\prime}: its derivative."""
        nxt = self.peek()
        if nxt is not None and nxt.text == "'":
            self.take()
            return True
        if nxt is not None and nxt.text == "^" and self.peek(1) is not None:
            after = self.peek(1)
            if after.text == r"\prime":
                self.take(), self.take()
                return True
            if after.text == "{" and self.peek(2) is not None and self.peek(2).text == r"\prime":
                self.take(), self.group()
                return True
        return False

    def _generic_prime(self) -> bool:
        """f'(x), g'(a_t), \\phi'(x): the derivative of the activation the letter names (by
        --map f=tanh, else the model's own); read as prime_f(x)."""
        tok, nxt = self.peek(), self.peek(1)
        if tok is None or nxt is None or nxt.text != "'":
            return False
        letter = tok.text.lstrip("\\")
        if not (tok.kind == "name" or (tok.kind == "cmd" and letter in _GREEK)):
            return False
        after = self.peek(2)
        if after is None or after.text not in _OPENERS:
            return False
        self.take(), self.take()
        self.called_function(f"prime_{letter}", tok.column)
        return True

    def _named(self) -> bool:
        """\\operatorname{diag}, \\text{softmax}, \\mathrm{tanh}: a function by name."""
        if self.peek(1) is None or self.peek(1).text != "{":
            return False
        save = self.i
        tok = self.take()
        word = "".join(t.text for t in self.group())
        if word == "d" and tok.text == r"\mathrm":  # \mathrm{d}: the adjoint's d
            self.i = save
            return self._adjoint_prefix()
        if word not in _FUNCTIONS and word.lower() in _FUNCTIONS:  # \mathrm{ReLU}
            word = word.lower()
        if word not in _FUNCTIONS:
            self.i = save
            if tok.text == r"\mathrm":
                return False
            raise self.error(tok, f"unknown function {word!r}")
        self.called_function(_FUNCTIONS[word], tok.column)
        return True

    def _glued_name(self) -> bool:
        """dp\\tilde{c}: letters glued to an accented symbol are one name of the author's
        (dp_ctilde), not the adjoint of p times c-tilde."""
        first, second = self.peek(1), self.peek(2)
        if first is None or second is None or first.kind != "name":
            return False
        if first.column != self.peek().column + 1 or second.column != first.column + 1:
            return False
        if second.text not in (r"\hat", *_ACCENTS):
            return False
        tok = self.take()
        letters = self.take().text
        found = self.symbol()
        if found is None:
            raise self.error(tok, "cannot read this name")
        name, index, _ = found
        self.write_symbol(f"d{letters}_{name}", index, tok.column, adjoint=False)
        return True

    def _adjoint_prefix(self) -> bool:
        """d\\mathbf{h}^{(t)}, dh_t, \\mathrm{d}h_t: the adjoint of the symbol after d."""
        tok = self.peek()
        save = self.i
        if tok.kind == "name" and tok.text == "d" and self._glued_name():
            return True
        if tok.kind == "name" and tok.text == "d":
            self.take()
        elif (
            tok.kind == "cmd"
            and tok.text in (r"\delta", r"\Delta")
            and self.peek(1) is not None
            and self.peek(1).text not in ("_", "^", "(", ")", "{", "}", "=", "+", "-", ",")
            and (
                self.peek(1).kind == "name" or self.peek(1).text in (r"\hat", *_ACCENTS, *_WRAPPERS)
            )
        ):  # \delta c_t: the error signal of c, dL/dc_t
            self.take()
        elif tok.kind == "cmd" and tok.text == r"\mathrm" and self.peek(1) is not None:
            self.take()
            if "".join(t.text for t in self.group()) != "d":
                self.i = save
                return False
        else:
            return False
        if self.peek() is not None and self.peek().text == "{":  # d{\mathbf{W_h}^{(t)}}
            inner = self._sub(self.group())
            found = inner.symbol()
            if found is None or inner.peek() is not None:
                self.i = save
                return False
        else:
            found = self.symbol()
        if found is None:
            self.i = save
            return False
        self._style("delta" if tok.text in (r"\delta", r"\Delta") else "d")
        self.write_symbol(*found, adjoint=True)
        return True

    def fraction(self) -> None:
        r"""\frac{\partial L}{\partial X} (or d L / d X): the adjoint of X; of one loss term,
        its share grad(L[s], X); of another quantity, the Jacobian jac(Y, X); else a
        quotient."""
        tok = self.take()
        top, bottom = self.group(), self.group()
        sub_top = self._sub(top)
        sub_bottom = self._sub(bottom)
        if _is_partial(top) and _is_partial(bottom):
            self.derivative(tok, sub_top, sub_bottom)
            return
        self.operand(tok.column)
        self.out.add("(", tok.column)
        self.out.add(sub_top.read(), tok.column)
        self.out.add(") / (", tok.column)
        self.out.add(sub_bottom.read(), tok.column)
        self.out.add(")", tok.column)

    def _slash_derivative(self) -> bool:
        """\\partial L / \\partial s_t (inline): the same as \frac{\\partial L}{\\partial s_t}."""
        k = 1
        depth = 0
        while (t := self.peek(k)) is not None and not (t.text == "/" and depth == 0):
            depth += t.text in ("{", "(")
            depth -= t.text in ("}", ")")
            if t.text in ("=", "+", "-", ",") and depth == 0:
                return False
            k += 1
        if t is None or self.peek(k + 1) is None or self.peek(k + 1).text != r"\partial":
            return False
        tok = self.peek()
        top = [self.peek(j) for j in range(0, k)]
        rest = self.toks[self.i + k + 1 :]
        probe = self._sub(rest)
        _strip_d(probe)
        if probe.symbol() is None:
            return False
        bottom = rest[: probe.i]
        self.i += k + 1 + probe.i
        self._slash = True
        self.derivative(
            tok,
            self._sub(top),
            self._sub(bottom),
        )
        return True

    def derivative(self, tok: _Tok, top: _Reader, bottom: _Reader) -> None:
        r"""d Y / d X, its two halves read (each begins with d or \partial)."""
        _strip_d(top)
        plus = False
        if top.peek() is not None and top.peek().text == "^":  # \partial^+: immediate
            top.take()
            sign = "".join(t.text for t in top.group())
            if sign != "+":
                raise self.error(tok, f"cannot read the derivative \\partial^{{{sign}}}")
            plus = True
        _strip_d(bottom)
        if top.peek() is None:
            raise self.error(
                tok,
                "a derivative applied to an expression (d/dX of ...) is not read: write the "
                "derivative's value",
            )
        wrt = bottom.symbol()
        if wrt is None or bottom.peek() is not None:
            raise self.error(tok, "cannot read what is differentiated by (one symbol)")
        of = top.symbol()
        if of is None:
            raise self.error(tok, "cannot read what is differentiated (one symbol)")
        if self._abstract_loss(top, of, wrt, tok.column):
            return
        if top.peek() is not None:
            raise self.error(tok, "cannot read what is differentiated (one symbol)")
        name, index, _ = of
        loss = name in self.context.loss_names
        if loss and index is None and not plus:
            partial = any(t.text == r"\partial" for t in top.toks[:1])
            self._style("slash" if self._slash else "frac" if partial else "frac_d")
            self.context.loss_spelling = self.context.loss_spelling or self.context.spellings.get(
                name, name
            )
        self.operand(tok.column)
        if loss and index is None and not plus:
            wname, windex, _ = wrt
            if wname in self.context.loss_names and windex is not None:  # dL/dL_t: the seed
                self.out.add(f"grad(L, L[{_index_text(windex)}])", tok.column)
                return
            self.write_symbol(*wrt, adjoint=True, operand=False)
            return
        if loss:  # one loss term: its share
            self.out.add(f"grad(L[{_index_text(index)}], {_written(wrt)})", tok.column)
            return
        function = "jacplus" if plus else "jac"
        self.out.add(f"{function}({_written(of)}, {_written(wrt)})", tok.column)

    def _abstract_loss(self, top: _Reader, of, wrt, column: int) -> bool:
        """d l(o_t, y_t) / d o_t: the derivative of a loss left abstract by its first
        argument, the gradient the model takes as given (g_o[t])."""
        if top.peek() is None or top.peek().text not in ("(", r"\left"):
            return False
        name = of[0]
        if name not in self.context.loss_names and name not in ("ell", "l"):
            return False
        args = top.read().strip()
        if args.startswith(GROUP + "("):
            args = args[len(GROUP) :]
        first = args.lstrip("(").split(",")[0].strip()
        target = _written(wrt)
        if first != target:
            raise self.error(
                None, f"d {name}(...) / d {target}: only the derivative by its first argument"
            )
        self.operand(column)
        base, _, index = target.partition("[")
        self.out.add(f"g_{base}[{index}" if index else f"g_{base}", column)
        bases = [a.split("[")[0].strip("( ") for a in args.strip("()").split(",")]
        loss = self.context.spellings.get(name, name)
        self.context.given.setdefault("g_" + base, ("frac", loss, base, bases))
        return True

    def nabla(self) -> None:
        r"""\nabla_{X} L: the adjoint of X."""
        tok = self.take()
        if self.peek() is None or self.peek().text != "_":
            raise self.error(tok, "\\nabla needs a subscript: \\nabla_{X} L")
        self.take()
        inner = self._sub(self.group())
        found = inner.symbol()
        if found is None:
            raise self.error(tok, "cannot read the symbol of \\nabla_{...}")
        loss = self.peek()
        save = self.i
        after = self.symbol() if loss is not None else None
        if after is not None and after[0] not in self.context.loss_names and self.entries:
            # \sum_i (...) \nabla_{W^{(t)}} h_i^{(t)}: the gradient of an entry, by a weight
            self.operand(tok.column)
            self.out.add(f"jac({_written(after)}, {_written(found)})", tok.column)
            return
        if after is None or after[0] not in self.context.loss_names:
            self.i = save
            raise self.error(loss, "\\nabla_{X} must be followed by the loss (L)")
        self._style("nabla")
        self.context.loss_spelling = self.context.loss_spelling or self.context.spellings.get(
            after[0], after[0]
        )
        arguments = self._loss_arguments()
        if arguments and after[0] in ("ell", "l") and arguments[0] == _written(found):
            # \nabla_{o_t} \ell(o_t, y_t): a loss left abstract, its gradient given
            self.operand(tok.column)
            base, _, index = _written(found).partition("[")
            self.out.add(f"g_{base}[{index}" if index else f"g_{base}", tok.column)
            loss = self.context.spellings.get(after[0], after[0])
            bases = [a.split("[")[0] for a in arguments]
            self.context.given.setdefault("g_" + base, ("nabla", loss, base, bases))
            return
        self.write_symbol(*found, adjoint=True)

    def _loss_arguments(self) -> list[str]:
        r"""The arguments written after a loss, \ell(o_t, y_t) or L(\theta), taken (in the
        formula language); [] when none are written."""
        if self.peek() is None or self.peek().text not in ("(", r"\left"):
            return []
        save = self.i
        if self.peek().text == r"\left":
            self.take()
        self.take()
        depth, parts, current = 1, [], []
        while self.peek() is not None:
            t = self.take()
            if t.text in ("(", "[", "{"):
                depth += 1
            elif t.text in (")", "]", "}"):
                depth -= 1
                if depth == 0:
                    break
            if t.text == "," and depth == 1:
                parts.append(current)
                current = []
                continue
            if t.text != r"\right":
                current.append(t)
        else:
            self.i = save
            return []
        parts.append(current)
        out = []
        for tokens in parts:
            sub = self._sub(tokens)
            found = sub.symbol() if tokens else None
            out.append(_written(found) if found is not None and sub.peek() is None else "?")
        return out

    def sum(self) -> None:
        r"""\sum_{t=1}^{T} ...: sum(t, ...) to the end of the term; a sum over another step
        index (\sum_{k=1}^{t}, \sum_{i=t}^{T}) or a product (\prod_{j=k+1}^{t}): sumover /
        prodover, to the end of the term as well."""
        tok = self.take()
        product = tok.text == r"\prod"
        limits = {}
        for _ in range(2):
            if self.peek() is not None and self.peek().text == r"\limits":
                self.take()
            if self.peek() is not None and self.peek().text in ("_", "^"):
                side = self.take().text
                limits[side] = re.sub(r"\s+", "", "".join(t.text for t in self.group()))
        lower, upper = limits.get("_"), limits.get("^")
        upper = None if upper is None else _last_step(upper)
        what = r"\prod" if product else r"\sum"
        if lower is None:
            raise self.error(
                tok, f"a {what} without its index is not read: write {what}_{{t=1}}^{{T}}"
            )
        m = re.fullmatch(r"([A-Za-z])(=(.+))?", lower)
        if m is None:
            over = re.fullmatch(r"([a-z]|\\(?:ast|star|bullet|diamond))\\in\\\{(.*)\\\}", lower)
            members = _members_of(over.group(2)) if over else ()
            if over and members and not product:
                self._expand_set(over.group(1), members)
                return
            if r"\in" in lower:
                raise self.error(
                    tok,
                    f"a {what} over a set ({lower}) is not read: write each of its terms",
                )
            raise self.error(tok, f"cannot read the range of {what}_{{{lower}}}")
        var, first = m.group(1), m.group(3)
        if (
            not product
            and self.index_letters is not None
            and var not in ("t", "T")
            and (upper is None or re.fullmatch(r"[A-Z]|n_\w+|\w+_\{?\w+\}?", upper))
        ):  # \sum_k w_{kj} delta_k: a contraction over the entries k
            self.index_sums.add(var)
            self.operand(tok.column)
            self.out.add(f"{INDEX_SUM}({var}, ", tok.column)
            self.sums.append(self.depth)
            return
        if (
            not product
            and var in ("n", "i", "j", "m")
            and upper in ("N", "m", "M", None)
            and first in ("1", None)
            and var not in self.bound
            and (upper is not None or var == "n")
        ):  # \sum_{n=1}^{N}: over the examples of the minibatch, row (or column) by row
            self.batch = var
            self.operand(tok.column)
            self.out.add("sum_examples(", tok.column)
            self.sums.append(self.depth)
            return
        if first is None and upper is None and var not in ("t", "T") and self._entry_letter(var):
            self.entries.add(var)  # \sum_k y_{k,j} log p_{k,j}: over the entries of a vector
            self.operand(tok.column)
            self.out.add("sum_entries(", tok.column)
            self.sums.append(self.depth)
            return
        if (var in ("n", "i", "m") and (upper in ("N", "M", None) or first is None)) or (
            upper is not None and re.fullmatch(r"[A-SU-Z]|n_\w+|\w+_\{?\w+\}?", upper)
        ):
            raise self.error(
                tok,
                f"a {what} over the entries or the examples ({var}) is not read: write it with "
                "matrices (1^T X sums the rows of X)",
            )
        if not product and var == "t" and first in (None, "1") and upper in (None, "T"):
            self.operand(tok.column)
            self.out.add("sum(t, ", tok.column)
            self.sums.append(self.depth)
            return
        if first is None or upper is None:
            raise self.error(
                tok,
                f"a {what} over {var} without its range is not read: write "
                f"{what}_{{{var}=1}}^{{t}}",
            )
        self.bound.add(var)
        lo, hi = (_bound_text(b, self.bound) for b in (first, upper))
        if lo is None or hi is None:
            raise self.error(tok, f"cannot read the range {first}..{upper} of {what}")
        self.operand(tok.column)
        self.out.add(f"{'prod' if product else 'sum'}over({var}={lo}..{hi}, ", tok.column)
        self.sums.append(self.depth)

    def _expand_set(self, letter: str, members: tuple) -> None:
        """\\sum_{k \\in \\{f, i\\}} body: (body with k = f + body with k = i), in place."""
        start, depth, k = self.i, 0, self.i
        while k < len(self.toks):
            t = self.toks[k]
            if t.text in ("(", "[", "{") or t.text == r"\left":
                depth += 1
            elif t.text in (")", "]", "}") or t.text == r"\right":
                if depth == 0:
                    break
                depth -= 1
            elif t.text in ("+", "-", "=", "&") and depth == 0:
                break
            k += 1
        body = self.toks[start:k]
        column = body[0].column if body else 1
        spliced = [_Tok("sym", "(", column)]
        for n, member in enumerate(members):
            if n:
                spliced.append(_Tok("sym", "+", column))
            spliced.append(_Tok("sym", "(", column))
            for t in body:
                if t.kind in ("name", "cmd") and t.text == letter:
                    spliced += _tokens(member if len(member) == 1 else "{" + member + "}")
                else:
                    spliced.append(t)
            spliced.append(_Tok("sym", ")", column))
        spliced.append(_Tok("sym", ")", column))
        self.toks = self.toks[:start] + spliced + self.toks[k:]

    def onehot(self, tok: _Tok) -> None:
        """1_{y^{(t)}}: the one-hot rows of the labels."""
        start = self.take().column  # _
        group = self.group()
        if len(group) > 2 and group[0].text in self.entries and group[1].text in ("=", ","):
            group = group[2:]  # 1_{i = y^{(t)}}: entry i is 1 where i is the label
        inner = self._sub(group)
        found = inner.symbol()
        if found is None:
            raise self.error(tok, "cannot read the labels of 1_{...}")
        name, index, column = found
        self.operand(tok.column)
        self.out.add(f"onehot({name}[{_index_text(index or 't')}])", tok.column)
        head = self.line[tok.column - 1 : start - 1].strip() if self.line else ""
        if head and self.context.onehot is None:
            self.context.onehot = head

    def _indicator(self, tok: _Tok) -> bool:
        """\\mathbb{1}[A_t > 0] (or (...), \\{...\\}, _{...}): 1 where the comparison holds,
        ReLU's derivative: step(A_t); < 0 is step(-A_t)."""
        opener = self.peek()
        if opener is None or opener.text not in ("[", "(", r"\{", "_"):
            return False
        closer = {"[": "]", "(": ")", r"\{": r"\}"}.get(opener.text)
        k, depth, tokens = self.i + 1, 0, []
        if closer is None:  # _{A_t > 0}
            if k >= len(self.toks) or self.toks[k].text != "{":
                return False
            opener_text, closer, k = "{", "}", k + 1
        else:
            opener_text = opener.text
        while k < len(self.toks):
            t = self.toks[k]
            if t.text == opener_text:
                depth += 1
            elif t.text == closer:
                if depth == 0:
                    break
                depth -= 1
            tokens.append(t)
            k += 1
        else:
            return False
        signs = {">": 1, r"\gt": 1, r"\geq": 1, r"\ge": 1, "<": -1, r"\lt": -1, r"\leq": -1}
        signs[r"\le"] = -1
        where = [j for j, t in enumerate(tokens) if t.text in signs]
        if len(where) != 1 or "".join(t.text for t in tokens[where[0] + 1 :]) != "0":
            return False
        left = self._sub(tokens[: where[0]]).read()
        sign = signs[tokens[where[0]].text]
        self.i = k + 1
        self.operand(tok.column)
        self.out.add(f"step({'-' if sign < 0 else ''}({left}))", tok.column)
        return True

    def _label_subscript(self) -> bool:
        """_{y_t}, _{y^{(t)}}: a subscript that is a symbol at a step (a class label), not
        a step (\\bm{e}_t is the author's e at step t)."""
        if self.peek() is None or self.peek().text != "_":
            return False
        save = self.i
        self.take()
        group = self.group()
        self.i = save
        return _symbol_like(group) or len(group) > 1 and group[0].text in ("y", r"\text")

    def _one_hot_wrapped(self) -> bool:
        r"""\mathbf{1}_{y^{(t)}}, \mathbf{1_{y^{(t)}}}, \mathbb{1}_{...}."""
        if self.peek(1) is None or self.peek(1).text != "{":
            return False
        save = self.i
        tok = self.take()
        inner = self.group()
        if len(inner) == 1 and inner[0].text == "0":  # \mathbf{0}: zeros
            self.operand(tok.column)
            self.out.add("0", tok.column)
            return True
        if len(inner) == 1 and inner[0].text == "e" and self._label_subscript():
            if self.peek().text == "_":  # \mathbf{e}_{y_t}: the unit vector of class y_t
                self.onehot(tok)
                return True
        if not inner or inner[0].text != "1":
            self.i = save
            return False
        if len(inner) == 1 and inner[0].text == "1" and self._indicator(tok):
            return True
        if len(inner) == 1 and self.peek() is not None and self.peek().text == "[":
            self.take()  # \mathbb{1}[y_t]: the indicator of the class y_t
            tokens = []
            depth = 1
            while self.peek() is not None:
                t = self.take()
                depth += t.text == "["
                depth -= t.text == "]"
                if depth == 0:
                    break
                tokens.append(t)
            sub = self._sub(tokens)
            found = sub.symbol()
            if found is None or sub.peek() is not None:
                raise self.error(tok, "cannot read the class of the indicator 1[...]")
            name, index, _ = found
            self.operand(tok.column)
            self.out.add(f"onehot({name}[{_index_text(index or 't')}])", tok.column)
            return True
        if len(inner) == 1 and (self.peek() is None or self.peek().text != "_"):
            self.operand(tok.column)  # \mathbf{1}: a column of ones (1^T X sums rows)
            self.out.add("ones", tok.column)
            return True
        if len(inner) == 1 and self._size_subscript():  # \mathbf{1}_N: ones, N of them
            self.operand(tok.column)
            self.out.add("ones", tok.column)
            return True
        if len(inner) > 1:  # \mathbf{1_{y^{(t)}}}
            sub = self._sub(inner)
            sub.onehot(sub.take())
            self.operand(tok.column)
            self.out.add(sub.out.text, tok.column)
            return True
        if self.peek() is None or self.peek().text != "_":
            self.i = save
            return False
        self.onehot(tok)
        return True


#: A size in a slice's bound: 1, H, H+1, 2H, H+D.
_SIZE_TERM = r"(?:\d*[A-Z]|\d+)(?:\+(?:\d*[A-Z]|\d+))*"


def _size_text(text: str) -> str:
    """H+1 -> H + 1, 2H -> 2 * H: a bound in the formula language."""
    parts = []
    for part in text.split("+"):
        m = re.fullmatch(r"(\d*)([A-Z]?)", part)
        number, letter = m.group(1), m.group(2)
        parts.append(f"{number} * {letter}" if number and letter else number or letter)
    return " + ".join(parts)


#: What a juxtaposed product scales by: a number, or a number over a size (\frac{1}{N}).
_SCALAR_BEFORE = re.compile(
    r"(^|[\s(,=+\-*/@])(\d+(\.\d+)?|\(\d+(\.\d+)?\) / \((\d+|[NT]|[NT] \* [NT])\))\s*$"
)


def _function_letter(text: str, context: Context) -> bool:
    """The name just written is a letter that names a function (f, g, phi, or one the
    derivation set with f = tanh)."""
    m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*$", text)
    return m is not None and (
        m.group(1) in ("f", "g", "phi", "varphi", "psi") or m.group(1) in context.functions
    )


def _ends_with_operand(text: str) -> bool:
    """The formula so far ends with a symbol (h[t], p): what an entry [y_t] follows."""
    return bool(re.search(r"[A-Za-z0-9_\]]\s*$", text))


def _ends_with_name(text: str) -> bool:
    """The formula so far ends with a bare name (no step): what a call's ( follows."""
    return bool(re.search(r"(^|[^\w\].])[A-Za-z_][A-Za-z0-9_]*\s*$", text))


def _is_partial(tokens: list[_Tok]) -> bool:
    """The tokens start with d or \\partial (or \\mathrm{d}): half of a derivative."""
    if not tokens:
        return False
    first = tokens[0]
    if first.text == r"\partial" or first.text == r"\nabla":
        return True
    if first.kind == "name" and first.text == "d" and len(tokens) > 1:
        return True
    return first.text == r"\mathrm" and len(tokens) > 2 and tokens[2].text == "d"


def _written(found) -> str:
    """A symbol as the formula language writes it: h[t+1], W_h."""
    name, index, _ = found
    return name if index is None else f"{name}[{_index_text(index)}]"


def _derivative_of_loss(reader: _Reader) -> bool:
    r"""The numerator reads \partial L, d L or \mathrm{d}L (or the derivation's own loss
    name: E, J, \mathcal{L}, \ell); L_t, L^{(t)}, E_t: one loss term."""
    if not _strip_d(reader):
        return False
    save = reader.i
    found = reader.symbol()
    if found is None:
        reader.i = save
        return False
    name, index, _ = found
    if name not in reader.context.loss_names:
        reader.i = save
        return False
    if index is not None:  # L_t, E^{(t)}: one loss term
        reader.loss_term = True
    return reader.peek() is None


def _strip_d(reader: _Reader) -> bool:
    tok = reader.peek()
    if tok is None:
        return False
    if tok.text == r"\partial" or (tok.kind == "name" and tok.text == "d"):
        reader.take()
        return True
    if tok.text == r"\mathrm" and reader.peek(1) is not None:
        save = reader.i
        reader.take()
        if "".join(t.text for t in reader.group()) == "d":
            return True
        reader.i = save
    return False


def _symbol_of(tokens: list[_Tok], context: Context | None = None) -> tuple[str | None, str | None]:
    """The name and step inside \\mathbf{...}: W_h -> (W_h, None), h -> (h, None); a word
    (\\mathbf{net}, \\bm{net}) is one name."""
    if not tokens:
        return None, None
    if len(tokens) > 1 and all(t.kind == "name" for t in tokens):
        if all(b.column == a.column + 1 for a, b in zip(tokens, tokens[1:])):
            return "".join(t.text for t in tokens), None
    reader = _Reader(tokens, "", 0, context)
    found = reader.symbol()
    if found is None or reader.peek() is not None:
        return None, None
    return found[0], found[1]


def _after_comma(group: list[_Tok]) -> int:
    depth = 0
    for k, t in enumerate(group):
        if t.text in ("{", "(", "["):
            depth += 1
        elif t.text in ("}", ")", "]"):
            depth -= 1
        elif t.text == "," and depth == 0:
            return k + 1
    return len(group)


def _symbol_like(group: list[_Tok]) -> bool:
    """A subscript that is itself a symbol at a step (y^{(t)}, y_t): an entry's index."""
    text = "".join(t.text for t in group)
    return bool(re.fullmatch(r"[A-Za-z](\^\{\(t[^)]*\)\}|_\{?t\}?|\(t\))", text))


def _last_step(text: str) -> str:
    """T_x, T_{x}, \\tau: the last step T."""
    return re.sub(r"T_\{?[a-z]\}?|\\tau", "T", text)


def _bound_text(text: str, letters: set) -> str | None:
    """A sum's bound as the formula language writes it: 1, t, t+1, T, k-1."""
    text = _last_step(text)
    m = re.fullmatch(r"([A-Za-z])([+-]\d+)?|(\d+)", text)
    if m is None:
        return None
    if m.group(3):
        return m.group(3)
    if m.group(1) not in {"t", "T", "k", "j", "i", "s"} | letters:
        return None
    return m.group(1) + (m.group(2) or "")


def _is_index(text: str) -> bool:
    return bool(re.fullmatch(r"\s*(t|T|\\tau)(\s*[+-]\s*\d+)?\s*|\s*\d+\s*", text))


def _param_like(name: str) -> bool:
    """W, U, V carry their subscripts as part of the name (W_h, W_x, W_hh)."""
    return name[:1] in ("W", "U")


def _index_text(index: str) -> str:
    return _last_step(re.sub(r"\s+", "", index))


def to_text(source: str) -> list[tuple[int, str, str, list[int]]]:
    """(line number, LaTeX rule, formula-language rule, column map) for every rule; the first
    rule that cannot be read raises FormulaSyntaxError."""
    out = []
    for number, line, _ in _rule_lines(source):
        reader = _Reader(_tokens(line), line, number)
        text = reader.read()
        out.append((number, line, text, reader.out.columns))
    return out


def _rule_lines(source: str) -> list[tuple[int, str, list[tuple[str, str]]]]:
    """(line number, LaTeX rule with its notes removed, the notes) for each candidate rule:
    comments go; rules end at \\\\, at a display's edge and at a blank line (a newline alone
    does not end one: a long rule may continue on the next line)."""
    body = "\n".join(line.split("%", 1)[0] for line in source.split("\n"))
    body = _ONE_EQUATION.sub(  # multline, split: one equation over several lines
        lambda m: m.group().replace("\\\\", "  "), body
    )
    body = re.sub(
        r"\\(begin|end)\{[a-zA-Z*]+\}(\{[^{}]*\})?|\$\$|\\\[|\\\]|\n\s*\n",
        lambda m: "\\\\" + "\n" * m.group().count("\n"),  # keep the line count
        body,
    )
    rules: list[list] = []
    position = 0
    for piece in body.split("\\\\"):
        start = body.count("\n", 0, position) + 1
        position += len(piece) + 2
        found = _rules_in(piece)
        lead = _SPACES.sub("", piece.lstrip().lstrip("&"))
        if found and rules and lead.startswith(_CONTINUES) and "=" not in found[0][1]:
            rules[-1][1] += " " + found[0][1]  # `\\ & + W^T ...`: the rule above goes on
            found = found[1:]
        rules += [[start + offset, line] for offset, line in found]
    out = []
    for number, line in rules:
        for part in _split_rules(line):
            clean, notes = strip_notes(part)
            out.append((number, clean, notes))
    return out


#: Environments that hold one equation, broken over lines at \\.
_ONE_EQUATION = re.compile(r"\\begin\{(multline|split)\*?\}.*?\\end\{\1\*?\}", re.S)
#: Spacing at the start of a line (`&\quad + ...`).
_SPACES = re.compile(r"^(\s|\\q?quad\b|\\[,;:! ]|&)+")
#: What a line that continues the rule above starts with (a binary operator).
_CONTINUES = ("+", "-", r"\odot", r"\cdot", r"\times", r"\circ")


def _rules_in(piece: str) -> list[tuple[int, str]]:
    """(line offset, text) of each rule in a piece: a line with its own `=` starts a rule
    (a line starting with `=` after a line with its own `=` is the chain's next member, on
    its own line, as `&= ...` after `\\\\` is), other lines continue the one before."""
    rules: list[list] = []
    for offset, raw in enumerate(piece.split("\n")):
        line = " ".join(raw.split())
        if not line:
            continue
        lead = _SPACES.sub("", line)
        member = lead.startswith("=") and bool(rules) and _has_equation(rules[-1][1])
        continues = lead.startswith(("=", *_CONTINUES)) and not member
        starts = "=" in line and not continues
        if starts or not rules:
            rules.append([offset, line])
        else:
            rules[-1][1] += " " + line
    return [(o, t) for o, t in rules if t.strip()]


def _has_equation(text: str) -> bool:
    return len(_top_level_split(text.replace("&", " "), "=")) > 1


#: Spellings of "is defined as".
_DEFINES = re.compile(
    r"≔|:=|=:|\\coloneqq|\\eqqcolon|\\equiv|\\triangleq|\\doteq|\\stackrel\{[^{}]*\}\{=\}"
)
#: A bracket the author wrote, kept as a node until products are grouped (then dropped).
GROUP = "grp"
#: How a layer superscript is written in a name: h^{[1]} is h_L1, W^{[\ell]} is W_Lell.
LAYER = "L"
#: The note strip_notes leaves for a rule written as a definition (`:=`).
NAMING = "a definition"
#: Equation numbers and labels: notation that states nothing.
_NUMBERS = re.compile(r"\\(label|tag\*?|eqref|ref)\s*\{[^{}]*\}|\\(nonumber|notag)\b")
#: Words of prose that end a rule's math (`\quad \text{for } t = T, ..., 1`).
_PROSE_WORDS = {
    "for", "where", "with", "and", "if", "since", "when", "all", "each", "every", "is",
    "are", "by", "using", "because", "so", "then", "otherwise", "the", "at", "from", "of",
    "as", "in", "on", "to", "we", "here", "note", "i.e.", "e.g.", "recursively",
}  # fmt: skip
_MATH_TEXT = {"softmax", "tanh", "diag", "relu", "sigmoid", "prod", "onehot", "d", "exp", "log"}


def _split_rules(line: str) -> list[str]:
    """Two equations on one line, `a = b, \\quad c = d` or `a &= b & c &= d` (an align row
    of several columns), are two rules."""
    parts = re.split(r",?\s*\\q?quad\s*(?=[^=]*=)", line)
    out: list[str] = []
    for part in (p for p in parts if p.strip()):
        out += _align_columns(part)
    return out or [line]


def _align_columns(text: str) -> list[str]:
    """`A &= B, & C &= D`: split at an & that starts a new equation (one with its own =)."""
    cells = _top_level_split(text, "&")
    if len(cells) < 3:
        return [text]
    equations: list[str] = []
    current = ""
    for k, cell in enumerate(cells):
        after = cells[k + 1].lstrip() if k + 1 < len(cells) else ""
        equal = len(_top_level_split(cell, "=")) > 1
        opens = not cell.lstrip().startswith("=") and (equal or after.startswith("="))
        if opens and len(_top_level_split(current, "=")) > 1:
            equations.append(current)
            current = cell
        else:
            current = f"{current}&{cell}" if current else cell
    equations.append(current)
    return [e for e in equations if e.strip().strip("&,. ")]


def _top_level_split(text: str, mark: str) -> list[str]:
    depth, start, out = 0, 0, []
    for k, c in enumerate(text):
        depth += c in "{(["
        depth -= c in "})]"
        if c == mark and depth == 0 and (k == 0 or text[k - 1] != "\\"):
            out.append(text[start:k])
            start = k + 1
    out.append(text[start:])
    return out


def strip_notes(text: str) -> tuple[str, list[tuple[str, str]]]:
    """A rule without what states nothing: equation numbers and labels, trailing punctuation,
    prose after the math (`\\quad \\text{for all } t`), `\\in \\mathbb{R}^{...}`
    annotations; `:=` and `\\equiv` read as `=`. The notes say what was removed."""
    notes: list[tuple[str, str]] = []
    for m in _NUMBERS.finditer(text):
        notes.append(("an equation number or label", m.group()))
    text = _NUMBERS.sub(" ", text)
    if _DEFINES.search(text):
        notes.append((NAMING, _DEFINES.search(text).group()))
    text = _DEFINES.sub("=", text)
    cut, why = _prose_start(text)
    if cut is not None:
        if why:
            notes.append((why, text[cut:].strip()))
        text = text[:cut]
    stripped = text.rstrip()
    while stripped and (
        stripped[-1] in ",.;&" or stripped.endswith(("\\,", "\\;", "\\!", "\\quad"))
    ):
        ends = ("\\,", "\\;", "\\!")
        mark = stripped[-2:] if stripped.endswith(ends) else stripped[-1]
        if stripped.endswith("\\quad"):
            mark = "\\qquad" if stripped.endswith("\\qquad") else "\\quad"
        if mark in ",.;":
            notes.append(("trailing punctuation", mark))
        stripped = stripped[: -len(mark)].rstrip()
    return stripped, notes


def _prose_start(text: str) -> tuple[int | None, str]:
    """Where prose or an annotation starts in a rule (at the top level of its braces), and
    what it is; None when there is none."""
    depth = 0
    i = 0
    while i < len(text):
        c = text[i]
        if c in "{([":
            depth += 1
        elif c in "})]":
            depth -= 1
        elif c == "\\" and depth <= 0:
            m = re.match(r"\\([A-Za-z]+)", text[i:])
            word = m.group(1) if m else ""
            if word == "in" and "=" not in text[i:]:
                return i, "an annotation of the space a symbol lives in"
            if word in ("text", "textrm", "mbox", "textit", "textbf", "mathrm", "hbox"):
                inner = re.match(r"\\[A-Za-z]+\s*\{([^{}]*)\}", text[i:])
                content = inner.group(1).strip() if inner else ""
                words = re.findall(r"[A-Za-z.]+", content.lower())
                if (
                    content
                    and content not in _MATH_TEXT
                    and (
                        " " in content
                        or any(w in _PROSE_WORDS for w in words)
                        or not re.fullmatch(r"[A-Za-z0-9_]+", content)
                    )
                ):
                    return i, "prose"
            if word == "forall":
                return i, "prose"
            if word in ("quad", "qquad") and not _has_rule(text[i:]):
                rest = text[i + len(word) + 1 :].strip()
                if not rest.strip(",.;& "):  # a space at the end: nothing to list
                    return i, ""
                if _looks_like_prose(rest):
                    return i, "prose"
        i += 1
    return None, ""


def _has_rule(text: str) -> bool:
    return "=" in text and not re.match(r"\s*\\q?quad\s*\\text", text)


def _looks_like_prose(rest: str) -> bool:
    return bool(
        re.match(r"(\\text|\\mathrm|\\forall|\(|[A-Za-z]{3,}\b|t\s*=|\\textrm|\\mbox)", rest)
    )


#: `f = \tanh`, `\phi = \sigma`: a letter that names the activation.
_FUNCTION_NAMING = re.compile(
    r"\s*(f|g|\\phi|\\varphi|\\psi)\s*=\s*(\\tanh|\\sigma|\\operatorname\{\w+\}|\\mathrm\{\w+\}|tanh)\s*"
)


@dataclass(frozen=True)
class Unread:
    """A rule that could not be read: where, the LaTeX (or text) it was, and why."""

    line: int
    column: int
    source: str
    reason: str


@dataclass(frozen=True)
class Skipped:
    """Notation that states nothing, left out: an equation number, prose, an annotation."""

    line: int
    source: str
    what: str


@dataclass
class Reading:
    """What a reader made of a derivation: its rules, and the lines it did not read or
    skipped, each with its reason."""

    rules: list[Rule] = field(default_factory=list)
    unread: list[Unread] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    #: The document's notation (loss names, function letters) the readers found.
    context: Context | None = None
    #: The left-hand side of the last rule (what a line `&= ...` continues).
    last: str | None = None

    def extend(self, other: Reading) -> None:
        self.rules += other.rules
        self.unread += other.unread
        self.skipped += other.skipped
        self.last = other.last if other.last is not None else self.last


def read_latex(source: str) -> list[Rule]:
    """The rules of a LaTeX derivation; the first line that cannot be read raises
    FormulaSyntaxError (naming the LaTeX line and column). A chain `A = B = C` gives a rule for
    each member; `&= C` on the next line continues the last."""
    reading = read_latex_document(source)
    if reading.unread:
        first = reading.unread[0]
        raise FormulaSyntaxError(
            f"line {first.line}, column {first.column}: {first.reason}\n"
            f"{caret(first.source, first.column)}"
        )
    return reading.rules


def read_latex_document(
    source: str, first_line: int = 1, context: Context | None = None
) -> Reading:
    """Every rule of a LaTeX derivation that can be read, and for every other line why not
    (a rule the reader cannot read is a finding of its own, the rest is still read)."""
    context = context or Context.of(source)
    reading = Reading()
    for number, line, notes in _rule_lines(source):
        number += first_line - 1
        naming = any(what == NAMING for what, _ in notes)
        for what, text in notes:
            if what != NAMING:
                reading.skipped.append(Skipped(number, text, what))
        if not line.strip():
            continue
        if "=" not in line:
            left = _lone_left_side(line, number, context)
            if left is not None:  # L(...) \\ &= \sum_t L^{(t)}: the next lines' left side
                reading.last = left
                continue
            reading.skipped.append(Skipped(number, line, "no equation: it states no rule"))
            continue
        named = _FUNCTION_NAMING.fullmatch(line)
        if named:  # f = \tanh: the letter names a function
            letter, written = named.group(1).lstrip("\\"), named.group(2)
            word = re.sub(r"\\(operatorname|mathrm)\{(\w+)\}", r"\2", written).lstrip("\\")
            context.functions[letter] = _FUNCTIONS.get(written) or _FUNCTIONS.get(
                word.lower(), word.lower()
            )
            reading.skipped.append(Skipped(number, line, "names a function"))
            continue
        if (
            re.fullmatch(r"\s*[tT]\s*=.*", line)
            or re.fullmatch(r".*=\s*\\[lc]?dots.*", line)
            or re.fullmatch(r"\s*[a-z]\s*=\s*[a-z]\s*([+-]\s*\d+)?\s*", line)
            or re.fullmatch(r"\s*(\\ell|[a-z])\s*=\s*\d+(\s*,\s*(\d+|\\[lc]?dots))+\s*", line)
        ):
            reading.skipped.append(Skipped(number, line, "a range of the step index"))
            continue
        if _ELIDED.search(line):  # a_{t+1} = W h_t + \dots: a reminder, not a rule
            reading.skipped.append(Skipped(number, line, "an expression left unfinished (\\dots)"))
            continue
        expanded = _per_member(line, context)
        if expanded is not None:  # \delta \hat k_t = ... for k in {f, i, o}: a rule per gate
            for version in expanded:
                _read_rule(reading, number, version, line, context, naming)
            continue
        try:
            reader = _Reader(_point_free(_tokens(line), context), line, number, context)
            text = reader.read()
        except FormulaSyntaxError as exc:
            if _chain_members(reading, number, line, context, naming):
                continue  # A = (cannot read) = C: the members that can be read are judged
            reading.unread.append(_unread(exc, number, line))
            reading.last = _left_side(line, number, context)  # `&= ...` lines continue it
            continue
        before = len(reading.rules)
        _members(reading, number, line, text, reader.out.columns)
        if naming:
            reading.rules[before:] = [replace(r, naming=True) for r in reading.rules[before:]]
    return reading


#: A right-hand side that ends in dots: the rest of it is not written.
_ELIDED = re.compile(r"=.*[+\-*]\s*\\[lc]?dots\s*$|=\s*\\[lc]?dots\s*[+\-]")

#: The free argument of an identity between functions written without arguments.
POINT_FREE = r"\xi"


def _point_free(tokens: list[_Tok], context: Context) -> list[_Tok]:
    """\\sigma' = \\sigma(1 - \\sigma), \\tanh' = 1 - \\tanh^2: an identity between functions
    written without their argument, read with one free argument (\\sigma'(\\xi) = \\sigma(\\xi)
    \\odot (1 - \\sigma(\\xi))); the tokens unchanged when the line is no such identity."""

    def function(k: int) -> bool:
        t = tokens[k]
        if t.kind == "cmd":
            return t.text in _FUNCTIONS or t.text[1:] in context.functions
        return t.kind == "name" and t.text in context.functions

    def prime(k: int) -> int:
        """How many tokens a prime after a function takes (0: none)."""
        if k < len(tokens) and tokens[k].text == "'":
            return 1
        if k + 1 < len(tokens) and tokens[k].text == "^" and tokens[k + 1].text == r"\prime":
            return 2
        return 0

    if not tokens or not function(0) or not prime(1):
        return tokens
    after = 1 + prime(1)
    if after >= len(tokens) or tokens[after].text != "=":
        return tokens
    out: list[_Tok] = []
    k = 0
    while k < len(tokens):
        tok = tokens[k]
        out.append(tok)
        k += 1
        if not function(k - 1):
            continue
        taken = prime(k)
        if (
            not taken
            and k + 1 < len(tokens)
            and tokens[k].text == "^"
            and tokens[k + 1].kind == "num"
        ):
            taken = 2  # \tanh^2: its square
        out += tokens[k : k + taken]
        k += taken
        c = tok.column
        out += [_Tok("sym", "(", c), _Tok("cmd", POINT_FREE, c), _Tok("sym", ")", c)]
        if k < len(tokens) and tokens[k].text in ("(", r"\left", r"\big", r"\Big"):
            out.append(_Tok("cmd", r"\odot", c))  # \sigma(1 - \sigma): a product
    return out


def _chain_members(reading, number: int, line: str, context: Context, naming: bool) -> bool:
    """A chain A = B = C whose member B cannot be read: A = C is still a rule (and B a line
    not read, with its reason). False when the line is no chain of three or more."""
    members = [m for m in _top_level_split(line.replace("&", " "), "=")]
    if len(members) < 3 or not members[0].strip():
        return False
    try:
        lhs = _Reader(_tokens(members[0]), members[0], number, context).read().strip()
    except FormulaSyntaxError:
        return False
    read_any = False
    for k, member in enumerate(members[1:], start=1):
        try:
            reader = _Reader(_tokens(member), member, number, context)
            rhs = reader.read().strip()
            rule = _rule_of(f"{lhs} = {rhs}")
        except FormulaSyntaxError as exc:
            why = str(exc).splitlines()[0].split(": ", 1)[-1]
            reading.unread.append(Unread(number, 1, line, f"a member of the chain: {why}"))
            continue
        reading.rules.append(replace(rule, line=number, text=line, naming=naming, member=k))
        read_any = True
    reading.last = lhs
    return read_any


def _read_rule(reading, number: int, line: str, source: str, context: Context, naming: bool):
    """One rule line (already expanded for a set's member): read into `reading`."""
    try:
        reader = _Reader(_tokens(line), line, number, context)
        text = reader.read()
    except FormulaSyntaxError as exc:
        reading.unread.append(_unread(exc, number, source))
        return
    before = len(reading.rules)
    _members(reading, number, source, text, reader.out.columns)
    if naming:
        reading.rules[before:] = [replace(r, naming=True) for r in reading.rules[before:]]


def _per_member(line: str, context: Context) -> list[str] | None:
    """The line once for each member of a set whose letter it uses freely (k in W_k,
    \\hat k_t, W_{kh}), or None. A letter a \\sum_{k \\in ...} binds is the sum's own."""
    tokens = _tokens(line)
    for letter in sorted(set(context.sets) | set(context.all_sets)):
        if re.search(rf"\\sum_\{{\s*{re.escape(letter)}\s*\\in", line):
            continue
        if not any(t.kind in ("name", "cmd") and t.text == letter for t in tokens):
            continue
        if len(tokens) > 1 and tokens[0].text == letter and tokens[1].text == "=":
            continue  # k = 1, ...: the letter itself assigned
        members = context.members(letter)
        if not members:
            continue
        return [_substituted(line, letter, m) for m in members]
    return None


def _substituted(line: str, letter: str, member: str) -> str:
    """The line with every name token `letter` written `member`."""
    out, last = [], 0
    for m in _TOKEN.finditer(line):
        if m.lastgroup in ("name", "cmd") and m.group() == letter:
            out.append(line[last : m.start()])
            out.append(member if len(member) == 1 else "{" + member + "}")
            last = m.end()
    out.append(line[last:])
    return "".join(out)


def _lone_left_side(line: str, number: int, context: Context) -> str | None:
    """A line that is only a left-hand side, `& L(\\{x^{(1)}, ...\\})` before `&= ...` lines:
    the loss (its arguments name nothing), or a symbol."""
    text = line.replace("&", " ").strip()
    if not text:
        return None
    try:
        reader = _Reader(_tokens(text + " = 0"), text + " = 0", number, context)
        out = reader.read()
    except FormulaSyntaxError:
        return None
    left = out.rsplit(" = ", 1)[0].strip()
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?", left):
        return left
    return None


def _left_side(line: str, number: int, context: Context) -> str | None:
    """The left-hand side of a line whose right-hand side cannot be read (in the formula
    language), or None."""
    depth = 0
    for k, c in enumerate(line):
        depth += c in "{(["
        depth -= c in "})]"
        if c == "=" and depth == 0:
            left = line[:k].replace("&", " ").strip()
            if not left:
                return None
            try:
                return _Reader(_tokens(left), left, number, context).read().strip() or None
            except FormulaSyntaxError:
                return None
    return None


def _unread(exc: FormulaSyntaxError, number: int, line: str) -> Unread:
    message = str(exc).splitlines()[0]
    m = re.match(r"line \d+(, column (\d+))?: (.*)", message)
    column = int(m.group(2)) if m and m.group(2) else 1
    reason = m.group(3) if m else message
    return Unread(number, column, line, reason)


def _members(reading: Reading, number: int, latex: str, text: str, columns: list[int]) -> None:
    """The rules of one line: each member of a chain `A = B = C` is a rule of its own."""
    members = [m.strip() for m in text.split(" = ")]
    if len(members) < 2 or not all(members[1:]):
        reading.unread.append(Unread(number, 1, latex, "expected a rule `X = ...`"))
        return
    lhs = members[0]
    if not lhs:  # `&= ...`: another member of the previous rule's chain
        if reading.last is None:
            reading.unread.append(Unread(number, 1, latex, "`= ...` continues no rule"))
            return
        lhs = reading.last
    reading.last = lhs
    if (
        len(members) > 2
        and re.fullmatch(r"-?\d+(\.\d+)?", members[-1])
        and all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?", m) for m in members[:-1])
    ):  # h1[0] = h2[0] = 0: each of them is 0
        for target in members[:-1]:
            rule = _rule_of(f"{target} = {members[-1]}")
            reading.rules.append(replace(rule, line=number, text=latex))
        return
    chain = len(members) > 2
    for k, rhs in enumerate(members[1:], start=1):
        try:
            rule = _rule_of(f"{lhs} = {rhs}")
        except FormulaSyntaxError as exc:
            column = _column_of(str(exc), columns)
            what = str(exc).split(": ", 1)[1].splitlines()[0]
            reading.unread.append(
                Unread(
                    number,
                    column,
                    latex,
                    f"index notation: {what}"
                    if str(exc).startswith("index notation")
                    else f"{what} (read as `{lhs} = {rhs}`)".replace(GROUP + "(", "("),
                )
            )
            continue
        reading.rules.append(replace(rule, line=number, text=latex, member=k if chain else 0))


def _rule_of(text: str) -> Rule:
    """One rule of the formula language the LaTeX was written as, its products grouped as
    LaTeX groups them."""
    try:
        (rule,) = read_text(text)
    except FormulaSyntaxError as exc:
        raise FormulaSyntaxError(str(exc).replace(GROUP + "(", "(")) from None
    rule = replace(rule, expr=_contractions(juxtaposition_first(rule.expr)))
    if rule.lhs is not None:
        rule = replace(rule, lhs=juxtaposition_first(rule.lhs))
    if _has_entries(rule.expr):
        rule = replace(rule, expr=_deindexed(rule.expr))
    return rule


#: An entry of a symbol in index notation (w_{kj}: INDEXED(w, k, j)), and a sum over an
#: entry letter (\sum_k: INDEX_SUM(k, ...)); the reader's marks, gone once the rule is
#: written with vectors and matrices.
INDEXED, INDEX_SUM = "entry_of", "sum_over_entries"


def _has_entries(node) -> bool:
    from ..formula.ast import Call

    return any(isinstance(n, Call) and n.function in (INDEXED, INDEX_SUM) for n in _nodes(node))


def _nodes(node):
    yield node
    for attr in ("left", "right", "arg", "body"):
        child = getattr(node, attr, None)
        if child is not None and hasattr(child, "__dataclass_fields__"):
            yield from _nodes(child)
    for child in getattr(node, "args", ()) or ():
        yield from _nodes(child)


def _deindexed(node):
    """A right-hand side in index notation written with vectors and matrices: entries of one
    free letter multiply entry by entry, a sum over k of W_{kj} v_k is (W^T v)_j and of W_{jk}
    v_k is (W v)_j; what does not reduce so is not read."""
    from ..formula.ast import Binary, Call, Name, Neg, Num, Power, Transposed

    def fail(why: str):
        raise FormulaSyntaxError(f"index notation: {why}")

    def product(factors):
        """Factors (node, letters) multiplied entry by entry; at most one letter left."""
        letters = {x for _, sig in factors for x in sig}
        if len(letters) > 1 or any(len(sig) > 1 for _, sig in factors):
            fail("an entry index is left without its sum")
        out = None
        for node_, _ in factors:
            out = node_ if out is None else Binary("*", out, node_)
        return out, tuple(letters)

    def factors_of(n):
        if isinstance(n, Binary) and n.op in ("*", "@"):
            return factors_of(n.left) + factors_of(n.right)
        return [go(n)]

    def contract(var, n):
        if isinstance(n, Binary) and n.op in ("+", "-"):
            (left, ls), (right, rs) = contract(var, n.left), contract(var, n.right)
            return combine(n.op, (left, ls), (right, rs))
        if isinstance(n, Neg):
            inner, sig = contract(var, n.arg)
            return Neg(inner), sig
        factors = factors_of(n)
        with_var = [f for f in factors if var in f[1]]
        rest = [f for f in factors if var not in f[1]]
        if len(with_var) != 2:
            fail(f"the sum over {var} is not a product of a matrix and a vector")
        (a, sa), (b, sb) = with_var
        if len(sa) < len(sb):
            (a, sa), (b, sb) = (b, sb), (a, sa)
        if sb != (var,):
            fail(f"the sum over {var} is not a product of a matrix and a vector")
        if sa == (var, var):
            fail(f"the sum over {var} runs over a diagonal")
        if len(sa) == 2:  # sum_k W_{kj} v_k = (W^T v)_j; sum_k W_{jk} v_k = (W v)_j
            matrix = Transposed(a) if sa[0] == var else a
            other = sa[1] if sa[0] == var else sa[0]
            return product(rest + [(Binary("@", matrix, b), (other,))])
        return product(rest + [(Binary("@", Transposed(a), b), ())])  # sum_k u_k v_k

    def combine(op, left, right):
        (ln, ls), (rn, rs) = left, right
        if ls and rs and ls != rs:
            fail("the terms of a sum have different entries")
        return Binary(op, ln, rn), ls or rs

    def go(n):
        if isinstance(n, Call) and n.function == INDEXED:
            letters = tuple(a.name for a in n.args[1:])
            return n.args[0], letters
        if isinstance(n, Call) and n.function == INDEX_SUM:
            return contract(n.args[0].name, n.args[1])
        if isinstance(n, (Num, Name)):
            return n, ()
        if isinstance(n, Binary) and n.op in ("+", "-"):
            return combine(n.op, go(n.left), go(n.right))
        if isinstance(n, Binary) and n.op in ("*", "@"):
            return product(factors_of(n))
        if isinstance(n, Binary) and n.op == "/":
            (ln, ls), (rn, rs) = go(n.left), go(n.right)
            if rs and ls != rs:
                fail("a quotient of different entries")
            return Binary("/", ln, rn), ls
        if isinstance(n, Neg):
            inner, sig = go(n.arg)
            return Neg(inner), sig
        if isinstance(n, Power):
            inner, sig = go(n.arg)
            return Power(inner, n.exponent), sig
        if isinstance(n, Call) and len(n.args) == 1:
            inner, sig = go(n.args[0])
            return Call(n.function, (inner,), n.at), sig
        fail("a vector or a matrix written whole among entries")

    out, sig = go(node)
    if len(sig) > 1:
        fail("the right-hand side is a matrix of entries")
    return out


def _contractions(node):
    """sum_entries(g * jac(h[t], W)): the sum over i of g_i times the gradient of h_i by W
    is g contracted with the tensor dh/dW (g @ jac(h[t], W))."""
    from ..formula.ast import Binary, Call

    if isinstance(node, Call) and node.function == "sum_entries" and len(node.args) == 1:
        inner = node.args[0]
        if (
            isinstance(inner, Binary)
            and inner.op in ("*", "@")
            and isinstance(inner.right, Call)
            and inner.right.function in ("jac", "jacplus")
        ):
            return Binary("@", _contractions(inner.left), inner.right, inner.at)
    if hasattr(node, "__dataclass_fields__") and not isinstance(node, Index):
        from dataclasses import fields

        changes = {}
        for f in fields(node):
            value = getattr(node, f.name)
            if isinstance(value, tuple):
                changes[f.name] = tuple(_contractions(v) for v in value)
            elif hasattr(value, "__dataclass_fields__") and not isinstance(value, Index):
                changes[f.name] = _contractions(value)
        return replace(node, **changes) if changes else node
    return node


def juxtaposition_first(node):
    """a \\odot W h is a \\odot (W h): in LaTeX a product written by juxtaposition binds
    more tightly than \\odot (the formula language gives * and @ one level, left to right)."""
    from ..formula.ast import Binary, Call

    if isinstance(node, Call) and node.function == GROUP and len(node.args) == 1:
        return juxtaposition_first(node.args[0])  # the bracket did its job: one factor
    if isinstance(node, Binary) and node.op in ("*", "@"):
        factors, ops = _chain(node)
        factors = [juxtaposition_first(f) for f in factors]
        if "*" in ops and "@" in ops:
            groups, current = [], factors[0]
            for op, factor in zip(ops, factors[1:]):
                if op == "@":
                    current = Binary("@", current, factor, node.at)
                else:
                    groups.append(current)
                    current = factor
            groups.append(current)
            out = groups[0]
            for g in groups[1:]:
                out = Binary("*", out, g, node.at)
            return out
        out = factors[0]
        for op, factor in zip(ops, factors[1:]):
            out = Binary(op, out, factor, node.at)
        return out
    if hasattr(node, "__dataclass_fields__") and not isinstance(node, Index):
        from dataclasses import fields

        changes = {}
        for f in fields(node):
            value = getattr(node, f.name)
            if isinstance(value, tuple):
                changes[f.name] = tuple(juxtaposition_first(v) for v in value)
            elif hasattr(value, "__dataclass_fields__") and not isinstance(value, Index):
                changes[f.name] = juxtaposition_first(value)
        return replace(node, **changes) if changes else node
    return node


def _chain(node) -> tuple[list, list]:
    """The factors and operators of a left-nested chain of * and @ (not into brackets: a
    bracket is one node already)."""
    from ..formula.ast import Binary

    if isinstance(node, Binary) and node.op in ("*", "@"):
        factors, ops = _chain(node.left)
        return [*factors, node.right], [*ops, node.op]
    return [node], []


def _column_of(message: str, columns: list[int]) -> int:
    m = re.search(r"column (\d+)", message)
    if not m or not columns:
        return 1
    k = min(int(m.group(1)) - 1, len(columns) - 1)
    return columns[max(k, 0)]
