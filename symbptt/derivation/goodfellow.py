"""The comparison with Goodfellow, Bengio and Courville, *Deep Learning* (2016), section 10.2.2,
eqs. 10.18-10.28: the book's equations for one example (column vectors, `diag` for the
elementwise product), next to ours, and checked numerically before they are printed.

The book writes W for our W_h and U for our W_x. Its eq. 10.21 prints
W^T (grad_{h(t+1)} L) diag(1 - h(t+1)^2), an (H x 1) vector times an (H x H) matrix, which is
undefined for H > 1; it must be read as W^T diag(1 - h(t+1)^2) grad_{h(t+1)} L.
"""

from __future__ import annotations

import numpy as np

from ..errors import DerivationCheckError
from ..models.dims import Dims
from .document import Block
from .printers import LatexPrinter

__all__ = ["book_gradients", "comparison", "check_book", "plain_vanilla"]


def plain_vanilla(spec) -> bool:
    """The book's model exactly: the vanilla RNN with tanh, both biases, an input h0, dense
    inputs, a summed loss and full BPTT (the comparison is shown only for it)."""
    from ..models import VANILLA

    return not spec.from_file and spec.name == "vanilla" and spec.options == VANILLA.options


def book_gradients(p: dict, T: int, *, reorder_10_21: bool = True) -> dict[str, np.ndarray]:
    """Eqs. 10.18-10.28 for one example (N = 1), literally: column vectors, diag matrices.

    `p` holds the row-convention arrays of the vanilla model (x (T, 1, D), y (T, 1), h0 (1, H),
    W_x (D, H), W_h (H, H), b (H,), V (H, C), c (C,)). With `reorder_10_21=False`, eq. 10.21
    is multiplied in the printed order (which raises ValueError for H > 1).
    """
    W, U, V = p["W_h"].T, p["W_x"].T, p["V"].T  # the book's W (H, H), U (H, D), V (C, H)
    b, c = p["b"].reshape(-1, 1), p["c"].reshape(-1, 1)
    h = {0: p["h0"].reshape(-1, 1)}
    yhat = {}
    for t in range(1, T + 1):
        x = p["x"][t - 1].reshape(-1, 1)
        h[t] = np.tanh(b + W @ h[t - 1] + U @ x)  # 10.8-10.9
        o = c + V @ h[t]
        e = np.exp(o - o.max())
        yhat[t] = e / e.sum()
    grad_o = {}
    for t in range(1, T + 1):  # 10.18: (grad_o L)_i = yhat_i - 1_{i = y}
        onehot = np.zeros_like(yhat[t])
        onehot[int(p["y"][t - 1][0])] = 1.0
        grad_o[t] = yhat[t] - onehot
    grad_h = {T: V.T @ grad_o[T]}  # 10.19
    for t in range(T - 1, 0, -1):  # 10.21
        d = np.diag((1 - h[t + 1] ** 2).ravel())
        if reorder_10_21:
            grad_h[t] = W.T @ d @ grad_h[t + 1] + V.T @ grad_o[t]
        else:
            grad_h[t] = W.T @ grad_h[t + 1] @ d + V.T @ grad_o[t]
    diag = {t: np.diag((1 - h[t] ** 2).ravel()) for t in range(1, T + 1)}
    return {
        "c": sum(grad_o[t] for t in range(1, T + 1)).ravel(),  # 10.22
        "b": sum(diag[t] @ grad_h[t] for t in range(1, T + 1)).ravel(),  # 10.23
        "V": sum(grad_o[t] @ h[t].T for t in range(1, T + 1)).T,  # 10.24
        "W_h": sum(diag[t] @ grad_h[t] @ h[t - 1].T for t in range(1, T + 1)).T,  # 10.26
        "W_x": sum(  # 10.28
            diag[t] @ grad_h[t] @ p["x"][t - 1].reshape(1, -1) for t in range(1, T + 1)
        ).T,
    }


def check_book(dims: Dims | None = None, seed: int = 0) -> int:
    """The book's equations (10.21 reordered) against the engine at N = 1, and 10.21 as
    printed failing to multiply for H > 1; returns how many arrays were compared."""
    from ..engine.compile import gradient_function
    from ..models import VANILLA

    dims = Dims(N=1, D=2, H=3, C=3, T=4) if dims is None else dims
    p = VANILLA.random_point(dims, seed=seed)
    truth = gradient_function(dims, VANILLA)(p)
    book = book_gradients(p, dims.T)
    for name, value in book.items():
        if value.shape != truth[name].shape or not np.allclose(value, truth[name], 1e-9, 1e-12):
            raise DerivationCheckError(
                f"Goodfellow et al.'s equation for the gradient of {name} disagrees with the "
                f"engine at {dims}; nothing was printed: please report this"
            )
    try:
        book_gradients(p, dims.T, reorder_10_21=False)
    except ValueError:
        pass
    else:
        raise DerivationCheckError("eq. 10.21 as printed multiplied for H > 1, unexpectedly")
    return len(book)


def comparison(tex: LatexPrinter, form) -> list[Block]:
    """The comparison section's blocks: the book's equations (checked by `check_book` when the
    document is built) next to our lines as derived (`form`, column convention)."""
    W, U = tex.symbol("W_h"), tex.symbol("W_x")

    def ours(base: str) -> str:
        line = next(line for line in form.adjoints if line.target.base == base)
        return f"${tex.doprint(line.target)} = {tex.doprint(line.expr)}$"

    def grad(name: str) -> str:
        line = form.gradient(name)
        return f"${tex.doprint(line.target)} = \\sum_t {tex.doprint(line.expr)}$"

    rows = [
        ["book", "book's formula", "ours (column convention)"],
        [
            "10.18",
            r"$(\nabla_{o^{(t)}} L)_i = \hat{y}^{(t)}_i - \mathbf{1}_{i = y^{(t)}}$",
            ours("do"),
        ],
        [
            "10.19",
            r"$\nabla_{h^{(\tau)}} L = V^\top \nabla_{o^{(\tau)}} L$",
            ours("dh") + r" at $t = T$",
        ],
        [
            "10.21",
            r"$\nabla_{h^{(t)}} L = W^\top \operatorname{diag}(1 - (h^{(t+1)})^2)\, \nabla_{h^{(t+1)}} L + V^\top \nabla_{o^{(t)}} L$",
            ours("dh"),
        ],
        ["", r"$\operatorname{diag}(1 - (h^{(t)})^2)\, \nabla_{h^{(t)}} L$ (unnamed)", ours("da")],
        ["10.22", r"$\nabla_c L = \sum_t \nabla_{o^{(t)}} L$", grad("c")],
        [
            "10.23",
            r"$\nabla_b L = \sum_t \operatorname{diag}(1 - (h^{(t)})^2)\, \nabla_{h^{(t)}} L$",
            grad("b"),
        ],
        ["10.24", r"$\nabla_V L = \sum_t (\nabla_{o^{(t)}} L)\, h^{(t)\top}$", grad("V")],
        [
            "10.26",
            r"$\nabla_W L = \sum_t \operatorname{diag}(1 - (h^{(t)})^2)\, (\nabla_{h^{(t)}} L)\, h^{(t-1)\top}$",
            grad("W_h"),
        ],
        [
            "10.28",
            r"$\nabla_U L = \sum_t \operatorname{diag}(1 - (h^{(t)})^2)\, (\nabla_{h^{(t)}} L)\, x^{(t)\top}$",
            grad("W_x"),
        ],
    ]
    h_t = tex.indexed(form.state, "t")
    da_next = tex.adjoint("a", "t+1")
    return [
        Block(
            "text",
            "Goodfellow, Bengio and Courville (Deep Learning, 2016, section 10.2.2) derive the "
            "same gradients for one example ($N = 1$, column vectors). The book writes $W$ for "
            f"our ${W}$, $U$ for ${U}$, $h^{{(t)}}$ for ${h_t}$ and "
            r"$\nabla_{X} L$ for $\frac{\mathrm{d}L}{\mathrm{d}X}$"
            + (rf" (our ${tex.adjoint('h', 't')}$ for $X = {h_t}$)" if tex.delta else "")
            + "; its "
            rf"$\operatorname{{diag}}(1 - (h^{{(t)}})^2)\,v$ is our $(1 - {h_t} \odot {h_t}) "
            r"\odot v$, and with $N$ columns its sums over $t$ also run over the columns. Each "
            "of the book's equations below was checked numerically against the engine at "
            "$N = 1$, $H = 3$ (10.21 with its factors reordered, as shown).",
        ),
        Block("table", rows),
        Block(
            "text",
            r"Eq. 10.21 is printed in the book as $W^\top (\nabla_{h^{(t+1)}} L)\, "
            r"\operatorname{diag}(1 - (h^{(t+1)})^2) + V^\top (\nabla_{o^{(t)}} L)$: an "
            r"$H \times 1$ vector times an $H \times H$ matrix, which is undefined for "
            r"$H > 1$. Read it with the factors reordered, as in the table: the diagonal "
            "matrix multiplies the gradient first. That product is our "
            f"${da_next}$, which the book never names; eqs. 10.20, 10.25 and 10.27 are the "
            "chain-rule forms that 10.21, 10.26 and 10.28 evaluate.",
        ),
    ]
