"""Corrections in the author's notation: the LaTeX printer of the model's expressions, with
each symbol spelled the way the derivation spells it (`W^{hh}`, `\\tilde{c}`, `\\Gamma_f`), its
step written the way the derivation writes steps (`h_{t+1}`, `h^{(t+1)}`, `h(t+1)`,
`a^{\\langle t+1 \\rangle}`), and derivatives the way the derivation writes them
(`\\frac{\\partial J}{\\partial h_t}`, `\\nabla_{h_t} J`, `dh_t`, `\\delta h_t`, or the author's
own name for one: `\\delta_t` where the derivation says `\\delta_t := \\partial J / \\partial
u_t`).

The reader records the spellings while it reads (latex_reader.Context); nothing here reads
LaTeX.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..derivation.printers import LatexPrinter, latex_name
from ..engine.matexpr import Indexed

__all__ = ["AuthorPrinter"]

#: The placeholder of the step in a recorded step style.
STEP = "{}"


def _ends_with_script(spelled: str, mark: str) -> bool:
    """The symbol already carries a `mark` script at its top level (W_{h}, h^{[1]}): another
    one would be a double script."""
    depth = 0
    for c in spelled:
        depth += c == "{"
        depth -= c == "}"
        if c == mark and depth == 0:
            return True
    return False


class AuthorPrinter(LatexPrinter):
    """LaTeX in the derivation's own notation (`context`: what the reader recorded)."""

    def __init__(
        self,
        context,
        names: Mapping[str, str] | None = None,
        adjoint_names: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(names)
        self.context = context
        #: The model's adjoint -> the author's own name for it (du -> delta).
        self.adjoint_names = dict(adjoint_names or {})
        styles = context.step_styles or {}
        self.step_default = max(styles, key=styles.get) if styles else "_" + STEP
        adjoints = context.adjoint_styles or {}
        # the author's most frequent way; the inline \partial L / \partial h only when it is
        # the author's usual one (inside a product, \frac reads without ambiguity)
        ranked = sorted(adjoints, key=lambda k: (-adjoints[k], k == "slash"))
        self.adjoint_style = ranked[0] if ranked else "frac"
        self.loss = context.loss_spelling or "L"

    def symbol(self, base: str) -> str:
        name = self.name(base)
        return self.context.spellings.get(name) or latex_name(name)

    def summation(self, body: str) -> str:
        last = getattr(self.context, "last_step", None) or "T"
        return rf"\sum_{{t=1}}^{{{last}}} {body}"

    def rule(self, target, expr, *, summed: bool = False, eq: str = " = ") -> str:
        return self.finish(super().rule(target, expr, summed=summed, eq=eq))

    def finish(self, text: str) -> str:
        """A whole correction in the author's script: Unicode where the author types it."""
        return unicode_form(text) if getattr(self.context, "unicode", False) else text

    def indexed(self, base: str, index: str) -> str:
        name = self.name(base)
        given = getattr(self.context, "given", {}).get(name)
        if given is not None:  # the gradient of a loss left abstract, as the author writes it
            style, loss, of, args = given
            at = ", ".join(self.indexed(a, index) for a in args)
            wrt = self.indexed(of, index)
            if style == "nabla":
                return rf"\nabla_{{{wrt}}} {loss}({at})"
            return rf"\frac{{\partial {loss}({at})}}{{\partial {wrt}}}"
        if name in getattr(self.context, "stepless", ()) and index == self.letter:  # \Gamma_u
            return self.symbol(base)
        if getattr(self.context, "last_step", None) and "T" in index:
            index = index.replace("T", getattr(self.context, "last_step", None))
        style = self.context.step_style.get(name) or self.step_default
        spelled = self.symbol(base)
        if style.startswith("_") and _ends_with_script(spelled, "_"):
            spelled = "{" + spelled + "}"
        if style.startswith("^") and _ends_with_script(spelled, "^"):
            spelled = "{" + spelled + "}"
        step = style.replace(STEP, index)
        if style == "_" + STEP:
            step = "_{" + index + "}"
        return f"{spelled}{step}"

    def total(self, of: str) -> str:
        loss = self.loss
        if self.adjoint_style == "slash":
            return rf"\partial {loss} / \partial {of}"
        if self.adjoint_style == "frac_d":
            return rf"\frac{{d{loss}}}{{d{of}}}"
        if self.adjoint_style == "nabla":
            return rf"\nabla_{{{of}}} {loss}"
        if self.adjoint_style == "d":
            return f"d{of}"
        if self.adjoint_style == "delta":
            return rf"\delta {of}"
        return rf"\frac{{\partial {loss}}}{{\partial {of}}}"

    def _print_OneHot(self, node, ids):
        spelled = getattr(self.context, "onehot", None)
        return f"{spelled}_{{{ids}}}" if spelled else ids  # the labels as the author writes them

    def _print_Blocks(self, node, *items):
        if not getattr(self.context, "brackets", False) or None in node.items:
            return super()._print_Blocks(node, *items)
        return "[" + ", ".join(items) + "]"  # [h_{t-1}, x_t], as the author writes it

    def _print_Block(self, node, arg):
        numpy = getattr(self.context, "numpy_slice", None)
        if numpy is not None and node.widths is not None and node.parts == 2:
            size, rows = numpy  # (W^T dz)_{[:n_a]}, as the author slices
            cut = f"[:{size}, :]" if node.part == 0 else f"[{size}:, :]"
            if not rows:
                cut = cut.replace(", :", "")
            return rf"\left({arg}\right)_{{{cut}}}"
        if not getattr(self.context, "slices", False) or node.widths is None:
            return super()._print_Block(node, arg)
        from ..models import sizes

        before = sizes.plus(0, *node.widths[: node.part])
        first = sizes.plus(before, 1)
        last = sizes.plus(before, node.widths[node.part])
        return rf"\left({arg}\right)_{{{_size(first)}:{_size(last)}}}"

    def _print_Transpose(self, node, arg):
        if "^" in arg and not arg.startswith(("(", r"\left")):  # (W^{hy})^\top
            return rf"\left({arg}\right)^{{\top}}"
        return super()._print_Transpose(node, arg)

    def _print_Indexed(self, node):
        own = self.adjoint_names.get(node.base) if node.adjoint else None
        if own is not None:  # delta_t where the derivation names dJ/du_t delta_t
            from ..derivation.printers import index_text

            return self._own(own, index_text(node, self.letter))
        return super()._print_Indexed(node)

    def _print_Symbol(self, node):
        own = self.adjoint_names.get(node.name) if node.adjoint else None
        if own is not None and not isinstance(node, Indexed):
            return self._spelled_own(own)
        return super()._print_Symbol(node)

    def _spelled_own(self, name: str) -> str:
        if name in self.context.spellings:
            return self.context.spellings[name]
        if name.startswith("d") and name[1:] in self.context.spellings:  # da_next: d a_{next}
            return "d" + self.context.spellings[name[1:]]
        return latex_name(name)

    def _own(self, name: str, index: str) -> str:
        spelled = self._spelled_own(name)
        if (
            name in getattr(self.context, "stepless", ()) and index == self.letter
        ):  # dz_u, at step t
            return spelled
        style = self.context.step_style.get(name) or self.step_default
        if style == "_" + STEP:
            return f"{spelled}_{{{index}}}"
        return spelled + style.replace(STEP, index)


def _size(dim) -> str:
    return str(dim).replace(" ", "")


#: LaTeX as an author who types Unicode math writes it.
_UNICODE = [
    (r"\left(", "("), (r"\right)", ")"), (r"\left[", "["), (r"\right]", "]"),
    (r"^{\top}", "ᵀ"), (r"\odot", "⊙"), (r"\partial ", "∂"), (r"\partial", "∂"),
    (r"\hat{y}", "ŷ"), (r"\,", " "), (r"\sum", "∑"), (r"\sigma", "σ"),
]  # fmt: skip


def unicode_form(text: str) -> str:
    """∂L / ∂h_{t} = Vᵀ ∂L / ∂o_{t} + ...: the LaTeX commands an author types as Unicode."""
    for tex, char in _UNICODE:
        text = text.replace(tex, char)
    text = text.replace("∂L / ∂", "∂L/∂")
    return " ".join(text.split())
