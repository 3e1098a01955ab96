"""From a reader's rules to matrix expressions: what every name of the derivation is (a model
quantity, an adjoint, a parameter, a size, or a quantity the author defined), with its shape in
the chosen convention, and each operation from a fixed table. A shape that does not fit is an
`AuditShapeError` naming the shapes; nothing is evaluated here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..engine import matexpr, rules
from ..engine.matexpr import Constant, Indexed, MatExpr, Symbol, column_shape, one_hot
from ..engine.matrix_form import MatrixForm
from ..errors import InvalidArgumentError, SymbpttError
from ..formula.ast import (
    Binary,
    Call,
    Index,
    Name,
    Neg,
    Num,
    Power,
    Rule,
    Step,
    SumOverT,
    Transposed,
)
from ..formula.reader import FormulaSyntaxError
from .latex_reader import GROUP

__all__ = ["AuditShapeError", "AuditUnreadError", "Scope", "FUNCTIONS"]

FUNCTIONS = (
    "tanh",
    "sigmoid",
    "relu",
    "step",
    "exp",
    "log",
    "identity",
    "softmax",
    "onehot",
    "sum_rows",
    "sum_cols",
    "diag",
    "colblock",
    "rowblock",
    "hstack",
    "vstack",
    "colpart",
    "rowpart",
    "sum_all",
    "sum",
    "dtanh",
    "dsigmoid",
    "done",
    "concat",
    "prod",
    "block",
    "rows",
    "span",
    "sum_entries",
    "sum_examples",
    "outer",
    "pick",
    "jac",
    "jacplus",
    "grad",
)
#: Derivatives written with a prime (tanh'(a)), at their argument, as matrix expressions.
DERIVATIVES = {
    "dtanh": lambda a: 1 - rules.tanh(a) * rules.tanh(a),
    "dsigmoid": lambda a: rules.sigmoid(a) * (1 - rules.sigmoid(a)),
    "done": lambda a: 1 + 0 * a,
    "step": rules.step,
}
#: Functions of several arguments (the rest take one).
BLOCK_FUNCTIONS = ("colblock", "rowblock", "hstack", "vstack", "colpart", "rowpart")
SIZES = ("N", "T", "D", "H", "C")
#: The largest power written out (h**2 is tanh's derivative; nothing needs h**1000).
MAX_POWER = 8
#: `\mathbf{1}` in LaTeX, a column of ones: 1^T X sums the rows of X, X 1 its columns.
ONES = "ones"


class AuditShapeError(SymbpttError):
    """A rule whose shapes do not fit: one sentence with the shapes."""


class AuditUnreadError(AuditShapeError):
    """A rule written in a form the audit does not read (a tensor, a derivative by a quantity
    the loss's derivative does not pass through): a line not read, never a wrong one."""


@dataclass
class Scope:
    """What every name means in one model, convention and author's notation."""

    form: MatrixForm
    #: The author's symbol -> the model's (from --map), applied to every name and its d-form.
    mapping: Mapping[str, str] = field(default_factory=dict)
    #: Shapes of quantities the author defined (per step or not), learned rule by rule.
    defined: dict[str, tuple] = field(default_factory=dict)
    defined_per_step: set[str] = field(default_factory=set)
    #: Corrections are printed in LaTeX (for a LaTeX derivation) rather than as text.
    latex: bool = False
    #: One example per call (N = 1), as textbooks write the per-example equations.
    single: bool = False
    #: Every target of the file and its line (to say "defined later" of a name used early).
    targets: dict[str, int] = field(default_factory=dict)
    #: The symbols of derived quantities (a Jacobian at concrete steps) and what they are.
    derived: dict[str, tuple] = field(default_factory=dict)
    #: A claim's free variables (f'(a) = 1 - f(a)**2 for any a) and their shapes.
    free: dict[str, tuple] = field(default_factory=dict)
    #: Parts of adjoints an author's quantity may mean (dc from step t+1), by shape.
    parts: dict[str, tuple] = field(default_factory=dict)
    #: How the author writes (audit.spelling), and the author's names for adjoints.
    spelling: object = None
    adjoint_names: dict[str, str] = field(default_factory=dict)
    #: The adjoints the derivation writes (a correction is written in those).
    author_adjoints: set[str] = field(default_factory=set)
    #: What the author's own quantities mean (found from their uses): da_next -> da.
    meanings: dict[str, str] = field(default_factory=dict)
    #: Where a line of the derivation is, as a message says it ("line 12", "cell 4, line 9").
    where: object = None

    def at(self, line: int) -> str:
        return self.where(line) if callable(self.where) else f"line {line}"

    def __post_init__(self) -> None:
        spec, column = self.form.spec, self.form.convention == "column"
        self.parameters = {
            i.name: self.size(column_shape(i.shape) if column else i.shape)
            for i in spec.inputs
            if i.role in ("parameter", "initial")
        }
        self.per_step: dict[str, tuple] = {}
        for line in (*self.form.model, *self.form.adjoints):
            self.per_step[line.target.base] = self.size(line.target.shape)
        for seq in spec.per_step:  # x (and a model file's other per-step inputs)
            if seq.integer:
                continue
            shape = seq.shape[1:]
            self.per_step[seq.name] = self.size(column_shape(shape) if column else shape)
            if seq.role == "sequence":
                self.per_step["d" + seq.name] = self.per_step[seq.name]
        self.ids = {i.name: i for i in spec.inputs if i.integer}
        self.sizes = {*SIZES, *spec.size_names}

    def size(self, shape: tuple) -> tuple:
        """A shape with N = 1 when the derivation is written for one example."""
        return tuple(1 if (self.single and d == "N") else d for d in shape)

    # -- names --------------------------------------------------------------------------------
    def canonical(self, name: str) -> str:
        if name in self.mapping:
            return self.mapping[name]
        if name.startswith("d") and name[1:] in self.mapping:
            return "d" + self.mapping[name[1:]]
        return name

    def known(self, name: str) -> bool:
        """The name means something here: the model's, a size, or the author's."""
        name = self.canonical(name)
        return (
            name in self.parameters
            or name in self.per_step
            or name in self.sizes
            or name in self.defined
        )

    def gradient_of(self, target: str) -> str | None:
        """The model input whose gradient a non-indexed target `dP` is, if any."""
        name = self.canonical(target)
        if name.startswith("d") and name[1:] in self.parameters:
            return name[1:]
        return None

    def known_per_step(self, target: str) -> bool:
        return self.canonical(target) in self.per_step

    def shape_of_step(self, name: str) -> tuple:
        name = self.canonical(name)
        if name in self.per_step:
            return self.per_step[name]
        if self.gradient_of(name):  # dW_h[t]: the share of W_h's use at step t
            return self.parameters[self.gradient_of(name)]
        if name in self.defined and name in self.defined_per_step:
            return self.defined[name]
        if name in self.parts:
            return self.parts[name]
        raise AuditShapeError(self.unknown(name))

    # -- building -----------------------------------------------------------------------------
    def build(self, node) -> MatExpr:
        """The matrix expression of a rule's right-hand side (sum(t, ...) is built as its
        body; the caller knows the rule is summed); a `Deferred` one, built at each concrete
        step, when it sums or multiplies over another index or holds a Jacobian."""
        from .concrete import Deferred, needs_steps

        if needs_steps(node):
            try:
                return Deferred(node, self)
            except FormulaSyntaxError as exc:
                raise AuditShapeError(str(exc)) from None
        return self.build_static(node)

    def build_static(self, node) -> MatExpr:
        """The matrix expression of a tree whose steps are t, T or numbers."""
        try:
            return self._build(node)
        except InvalidArgumentError as exc:  # MatExpr's own shape sentences
            raise AuditShapeError(str(exc)) from None

    def _build(self, node) -> MatExpr:
        if isinstance(node, Num):
            value = node.value
            return Constant(int(value) if float(value).is_integer() else value)
        if isinstance(node, Name):
            return self._name(node.name)
        if isinstance(node, Step):
            return self._step(node)
        if isinstance(node, SumOverT):
            raise AuditShapeError("sum(t, ...) can only be a whole right-hand side")
        if isinstance(node, Transposed):
            return self._build(node.arg).T
        if isinstance(node, Neg):
            return Constant(-1) * self._build(node.arg)
        if isinstance(node, Power):
            if abs(node.exponent) > MAX_POWER:
                raise AuditShapeError(
                    f"the exponent {node.exponent} is larger than {MAX_POWER}: BPTT's rules "
                    "square at most"
                )
            base = self._build(node.arg)
            if node.exponent == 0:
                return Constant(1)
            out = base
            for _ in range(abs(node.exponent) - 1):
                out = out * base
            return Constant(1) / out if node.exponent < 0 else out
        if isinstance(node, Binary):
            if node.op == "@" and self._tensor_factor(node.right):
                return self._contraction(node)
            if node.op == "@" and _is_ones(node.left, transposed=True):  # 1^T X
                return self._build(node.right).sum(axis=0)
            if node.op == "@" and _is_ones(node.right, transposed=False):  # X 1
                arg = self._build(node.left)
                if arg.ndim != 2:
                    raise AuditShapeError(f"X 1 sums the columns of a matrix; got {arg.shape}")
                return matexpr.Sum(arg, (arg.shape[0], 1), axis=1, keepdims=True)
            if node.op == "@" and isinstance(node.left, Call) and node.left.function == "diag":
                return self._diag_times(node.left, self._build(node.right), left=True)
            if node.op == "@" and isinstance(node.right, Call) and node.right.function == "diag":
                return self._diag_times(node.right, self._build(node.left), left=False)
            left, right = self._build(node.left), self._build(node.right)
            if node.op == "@":
                if left.ndim == 0 or right.ndim == 0:
                    return left * right  # a scalar written as a product
                if self.single:
                    left, right = _oriented_product(left, right)
                return left @ right
            if self.single:
                right = _oriented_like(right, left)
            return {"+": left + right, "-": left - right, "*": left * right, "/": left / right}[
                node.op
            ]
        if isinstance(node, Call):
            return self._call(node)
        raise AuditShapeError(f"cannot read {node!r}")

    def _name(self, name: str) -> MatExpr:
        canonical = self.canonical(name)
        if canonical in self.sizes:
            return Symbol(canonical)
        if canonical in self.free:
            return Symbol(canonical, self.free[canonical])
        if canonical in self.parameters:
            return Symbol(canonical, self.parameters[canonical])
        if self.gradient_of(canonical):  # dW_h as a value: its gradient
            return Symbol(canonical, self.parameters[self.gradient_of(canonical)])
        if canonical in self.defined and canonical not in self.defined_per_step:
            return Symbol(canonical, self.defined[canonical])
        if canonical in self.per_step or canonical in self.defined_per_step:
            raise AuditShapeError(f"{name} is a per-step quantity: write {name}[t]")
        if name == ONES:  # 1 - h (\mathbf{1} - h): a vector of ones, entry by entry
            return Constant(1)
        raise AuditShapeError(self.unknown(name))

    def unknown(self, name: str) -> str:
        later = self.targets.get(self.canonical(name))
        if later is not None:
            return (
                f"{name!r} is defined on {self.at(later)}, not before this rule (or by this rule "
                f"itself): if it is one of the model's quantities, say which with --map "
                f"{name}=<model name> (e.g. {name}=da)"
            )
        return (
            f"{name!r} is not a name of the model or of this derivation (the model's are "
            f"{', '.join([*self.parameters, *self.per_step])}; --map renames the author's)"
        )

    def _step(self, node: Step) -> MatExpr:
        canonical = self.canonical(node.name)
        if canonical in self.ids and self.ids[canonical].role == "label":
            # The labels as a matrix can only be their one-hot rows: y_t in yhat_t - y_t.
            return self._call(Call("onehot", (node,)))
        if canonical in self.ids:
            raise AuditShapeError(f"{node.name}[...] holds token ids: use onehot({node.name}[...])")
        shape = self.shape_of_step(node.name)
        adjoint = canonical.startswith("d") and canonical[1:] in {
            *self.per_step,
            *self.parameters,
        }
        return Indexed.make(canonical, shape, node.index.offset, node.index.anchor, adjoint=adjoint)

    def _call(self, node: Call) -> MatExpr:
        name = node.function
        if name in ("jac", "jacplus", "grad", "eye_like"):
            return self._derived(node)
        if name == GROUP:  # a bracket the author wrote (the reader's mark)
            if len(node.args) == 1:
                return self._build(node.args[0])
            raise AuditUnreadError(
                "a bracket holding several expressions, (a, b), is not read here: a "
                "function's arguments or a concatenation [a, b] are"
            )
        if name == "concat":  # [h_{t-1}, x_t]: the features put together
            axis = "vstack" if self.form.convention == "column" else "hstack"
            return self._blocks(Call(axis, node.args, node.at))
        if name == "outer":
            return self._outer(node)
        if name == "prod" and len(node.args) == 2:  # d2l's prod: the product the shapes need
            return self._build(Binary("@", node.args[0], node.args[1]))
        if name == "block":
            return self._block(node)
        if name == "rows":
            return self._rows(node)
        if name == "span":
            return self._span(node)
        if name == "pick":
            return self._pick(node)
        if name.startswith("prime_"):  # f'(x): the derivative of the function f stands for
            name = self._prime_of(name[len("prime_") :])
            node = Call(name, node.args, node.at)
        elif name in self.mapping and self.mapping[name] in FUNCTIONS:  # --map f=tanh
            node = Call(self.mapping[name], node.args, node.at)
            name = node.function
        if name in DERIVATIVES and len(node.args) == 1:
            return DERIVATIVES[name](self._build(node.args[0]))
        if name not in FUNCTIONS:
            raise AuditShapeError(
                f"unknown function {name!r}; the language has {', '.join(FUNCTIONS)}"
            )
        if name in BLOCK_FUNCTIONS:
            return self._blocks(node)
        if len(node.args) != 1:
            raise AuditShapeError(f"{name} takes one argument, not {len(node.args)}")
        (arg_node,) = node.args
        if name == "onehot":
            if not isinstance(arg_node, Step) or self.canonical(arg_node.name) not in self.ids:
                raise AuditShapeError("onehot(...) takes class or token ids: onehot(y[t])")
            item = self.ids[self.canonical(arg_node.name)]
            index = arg_node.index
            ids = Indexed.make(item.name, self.size(item.shape[1:]), index.offset, index.anchor)
            hot = one_hot(ids, item.bound)
            if self.form.convention == "column":
                return matexpr.OneHot(ids, (item.bound, self.size(item.shape[1:])[0]), columns=True)
            return hot
        arg = self._build(arg_node)
        if name in ("sum_all", "sum"):
            return arg.sum()
        if name == "sum_entries":  # a sum over a vector's entries (each example's)
            if arg.ndim < 2:
                return arg.sum()
            return arg.sum(axis=0 if self.form.convention == "column" else 1)
        if name == "sum_examples":  # a sum over the minibatch's examples
            if arg.ndim < 2:
                return arg.sum()
            if self.form.convention == "column":
                return matexpr.Sum(arg, (arg.shape[0], 1), axis=1, keepdims=True)
            return arg.sum(axis=0)
        if name == "sum_rows":
            return arg.sum(axis=0)
        if name == "sum_cols":
            if arg.ndim != 2:
                raise AuditShapeError(f"sum_cols takes a matrix; got shape {arg.shape}")
            return matexpr.Sum(arg, (arg.shape[0], 1), axis=1, keepdims=True)
        if name == "softmax":
            row_softmax = rules.softmax(arg, None)
            if self.form.convention == "column":
                return matexpr.columnwise(row_softmax, arg)
            return row_softmax
        if name == "diag":
            raise AuditShapeError("diag(v) must multiply a matrix: diag(v) @ M")
        return getattr(rules, name)(arg)

    def _blocks(self, node: Call) -> MatExpr:
        """colblock(X, k, n) / rowblock(X, k, n): block k of n; hstack(...) / vstack(...):
        blocks put together, a 0 being a block of zeros."""
        name, args = node.function, node.args
        axis = -1 if name in ("colblock", "hstack", "colpart") else 0
        if name in ("colpart", "rowpart"):  # part k of blocks of the given widths
            if len(args) < 4 or not (
                isinstance(args[1], Num) and float(args[1].value).is_integer()
            ):
                raise AuditShapeError(f"{name} takes (X, k, w_1, ..., w_n): part k of n blocks")
            k = int(args[1].value)
            widths = [self._size(a, name) for a in args[2:]]
            if not 1 <= k <= len(widths):
                raise AuditShapeError(f"{name}(X, {k}, ...): k must be one of 1..{len(widths)}")
            arg = self._build(args[0])
            if arg.ndim != 2:
                raise AuditShapeError(f"{name} takes a matrix; got shape {_text(arg.shape)}")
            return matexpr.block(arg, k - 1, len(widths), axis, widths)
        if name in ("colblock", "rowblock"):
            numbers = args[1:]
            if len(args) != 3 or not all(
                isinstance(a, Num) and float(a.value).is_integer() for a in numbers
            ):
                raise AuditShapeError(f"{name} takes (X, k, n) with whole numbers k and n")
            k, n = (int(a.value) for a in numbers)
            if not 1 <= k <= n:
                raise AuditShapeError(f"{name}(X, {k}, {n}): k must be one of 1..{n}")
            arg = self._build(args[0])
            if arg.ndim != 2:
                raise AuditShapeError(f"{name} takes a matrix; got shape {_text(arg.shape)}")
            return matexpr.block(arg, k - 1, n, axis)
        items = [None if isinstance(a, Num) and a.value == 0 else self._build(a) for a in args]
        if not items:
            raise AuditShapeError(f"{name} takes at least one block")
        return matexpr.blocks(items, axis)

    def _size(self, node, where: str):
        """A width written as a size: H, 4 * H, D + H, 3."""
        from ..models import sizes as size_text

        def text(n) -> str:
            if isinstance(n, Num) and float(n.value).is_integer():
                return str(int(n.value))
            if isinstance(n, Name) and self.canonical(n.name) in self.sizes:
                return self.canonical(n.name)
            if isinstance(n, Binary) and n.op in ("+", "*"):
                left, right = text(n.left), text(n.right)
                return f"{left}+{right}" if n.op == "+" else f"{left}*{right}"
            raise AuditShapeError(f"{where} takes sizes as its widths (H, 4 * H, D + H)")

        try:
            return size_text.canonical(text(node))
        except Exception as exc:
            if isinstance(exc, AuditShapeError):
                raise
            raise AuditShapeError(f"{where} takes sizes as its widths (H, 4 * H, D + H)") from None

    def _prime_of(self, letter: str) -> str:
        """The derivative f' stands for: of the function --map names (f=tanh), or of the
        model's one activation."""
        from ..models.spec import ACTIVATIONS

        function = self.mapping.get(letter)
        if function is None:
            spec = self.form.spec
            if not spec.from_file and "activation" not in spec.fixed:
                function = spec.options.activation
            elif letter == "sigma":
                function = "sigmoid"
        derivative = {"tanh": "dtanh", "sigmoid": "dsigmoid", "relu": "step", "identity": "done"}
        if function not in derivative:
            raise AuditShapeError(
                f"{letter}' is the derivative of {letter}, and the derivation does not say "
                f"which function {letter} is: say it with --map {letter}=tanh (one of "
                f"{', '.join(ACTIVATIONS)}, sigmoid)"
            )
        return derivative[function]

    def _diag_times(self, call: Call, other: MatExpr, *, left: bool) -> MatExpr:
        """diag(v) @ M is v ⊙ M (each row of M scaled); M @ diag(v) needs M's columns to match
        v's entries, and is M ⊙ v^T."""
        v = self._build(call.args[0])
        if v.ndim == 2 and v.shape[0] == 1 and v.shape[1] != 1:  # a row vector (one example)
            v = v.T
        size = v.shape[0] if v.ndim else 1
        if left:
            if other.ndim == 0 or other.shape[0] != size:
                raise AuditShapeError(
                    f"diag(v) is ({size}, {size}) and cannot multiply a matrix of shape "
                    f"{other.shape}"
                )
            return v * other
        if other.ndim == 0 or other.shape[-1] != size:
            raise AuditShapeError(
                f"a matrix of shape {_text(other.shape)} cannot multiply diag(v), which is "
                f"({size}, {size}): the inner dimensions differ"
            )
        return other * v.T

    def _block(self, node: Call) -> MatExpr:
        """block(W, k, v_1, ..., v_n): the part of W that multiplies v_k in W @ concat(v_1,
        ..., v_n) (columns of W in the column convention, rows in the row convention)."""
        weight, k, *parts = node.args
        matrix = self._build(weight)
        built = [self._build(p) for p in parts]
        column = self.form.convention == "column"
        widths = [b.shape[0] if column else b.shape[-1] for b in built]
        return matexpr.block(matrix, int(k.value) - 1, len(widths), -1 if column else 0, widths)

    def _rows(self, node: Call) -> MatExpr:
        """rows(v, 1, a) / rows(v, 2, a): v's first n_a features (as many as the quantity a
        has), or the ones after them (NumPy's v[:n_a, :] and v[n_a:, :])."""
        from ..models import sizes as size_text

        value, part, quantity = node.args
        v = self._build(value)
        name = self.canonical(getattr(quantity, "name", "").removeprefix("n_"))
        shape = self.per_step.get(name) or self.parameters.get(name)
        if shape is None:
            raise AuditShapeError(f"n_{name}: {name} is not a quantity of the model")
        column = self.form.convention == "column"
        axis = 0 if column else -1
        width = shape[0] if column else shape[-1]
        total = v.shape[axis]
        counts, constant = size_text.terms(total)
        less, less_constant = size_text.terms(width)
        for k, c in less.items():
            counts[k] = counts.get(k, 0) - c
        rest = size_text._text({k: c for k, c in counts.items() if c}, constant - less_constant)
        return matexpr.block(v, int(part.value) - 1, 2, axis, [width, rest])

    def _span(self, node: Call) -> MatExpr:
        """span(v, lo, hi): v's entries lo..hi, counted from 1, both included, each a size
        (`(dz)_{1:H}`, `(dz)_{H+1:H+D}`): rows in the column convention, columns in the
        row one. Bounds in sizes the model does not have are not read."""
        from ..models import sizes as size_text

        if len(node.args) != 3:
            raise AuditShapeError("span takes (v, first, last)")
        value, lo, hi = node.args
        known = {"N", "T", *self.form.spec.size_names}
        for bound in (lo, hi):
            for n in _walk_names(bound):
                if n not in known:
                    raise AuditUnreadError(
                        f"the bound {n} of a slice is not a size of the model (its sizes are "
                        f"{', '.join(sorted(known))})"
                    )
        v = self._build(value)
        column = self.form.convention == "column"
        axis = 0 if column else -1
        if v.ndim != 2:
            raise AuditShapeError(f"a slice takes a vector or a matrix; got {_text(v.shape)}")
        first, last = self._size(lo, "a slice"), self._size(hi, "a slice")

        def minus(a, b):
            ca, ka = size_text.terms(a)
            cb, kb = size_text.terms(b)
            counts = {k: ca.get(k, 0) - cb.get(k, 0) for k in {*ca, *cb}}
            if any(c < 0 for c in counts.values()) or (not any(counts.values()) and ka < kb):
                raise AuditShapeError(
                    f"the slice {first}:{last} does not fit in {v.shape[axis]} entries"
                )
            return size_text._text({k: c for k, c in counts.items() if c}, ka - kb)

        before = minus(first, 1)
        width = minus(size_text.plus(last, 1), first)
        after = minus(v.shape[axis], last)
        widths = [w for w in (before, width, after) if w != 0]
        part = widths.index(width) if before == 0 else 1
        if width == 0:
            raise AuditShapeError(f"the slice {first}:{last} is empty")
        if len(widths) == 1:
            return v
        return matexpr.block(v, part, len(widths), axis, widths)

    def _outer(self, node: Call) -> MatExpr:
        """u ⊗ v: the outer product of two vectors (one example), u v^T."""
        if len(node.args) != 2:
            raise AuditShapeError("an outer product takes two vectors")
        u, v = (self._build(a) for a in node.args)
        if not (self.single and _vector(u) and _vector(v)):
            raise AuditShapeError(
                f"an outer product of shapes {_text(u.shape)} and {_text(v.shape)}: it is read "
                "for two vectors of one example"
            )
        column = lambda e: e if e.shape[1] == 1 else e.T  # noqa: E731
        return column(u) @ column(v).T

    def _pick(self, node: Call) -> MatExpr:
        """p_t[y_t]: each example's entry of the class its label names."""
        if len(node.args) != 2:
            raise AuditShapeError("X[y] picks one entry: one index")
        values = self._build(node.args[0])
        hot = self._call(Call("onehot", (node.args[1],)))
        if values.shape != hot.shape:
            raise AuditShapeError(
                f"the entry of the label's class of {_text(values.shape)} values: the labels' "
                f"one-hot rows are {_text(hot.shape)}"
            )
        product = values * hot
        axis = 0 if self.form.convention == "column" else 1
        return matexpr.Sum(product, (product.shape[1 - axis],), axis=axis)

    def _derived(self, node: Call) -> MatExpr:
        """jac(Y, X), jacplus(Y, X), grad(L[s], X), eye_like(M): a symbol the world gives a
        value when the rule is evaluated at a concrete step (audit.concrete)."""
        node = self._copies(node)
        name = node.function
        if name == "eye_like":
            arg = self._build(node.args[0])
            if arg.ndim != 2 or arg.shape[0] != arg.shape[1]:
                raise AuditShapeError(
                    f"an empty product of factors of shape {_text(arg.shape)} (not square)"
                )
            key = ("eye", arg.shape[0])
            return self._symbol(key, f"eye[{arg.shape[0]}]", arg.shape)
        if len(node.args) != 2:
            raise AuditShapeError(f"{name} takes two arguments: what and by what")
        of, wrt = node.args
        if name == "grad":
            if isinstance(of, Name):  # dL/dL_s: the seed
                if not (isinstance(wrt, Step) and wrt.name == of.name):
                    raise AuditShapeError("grad(L, X) of the whole loss is dX")
                return self._symbol(("grad", None, None), "grad[L]", ())
            if not isinstance(of, Step) or of.index.anchor is not None:
                raise AuditShapeError("grad(L[s], X) takes one loss term L[s]")
            target, shape = self._argument(wrt, "the derivative of a loss term")
            key = ("grad", of.index.offset, target)
            return self._symbol(key, f"grad[L[{of.index.offset}],{_key_text(target)}]", shape)
        if not self.single:
            raise AuditUnreadError(
                "a Jacobian of a minibatch is a tensor: Jacobians are read for one example "
                "(--one-example)"
            )
        source, out_shape = self._argument(of, "a Jacobian")
        target, in_shape = self._argument(wrt, "a Jacobian")
        if source[1] is None:
            raise AuditUnreadError(f"a Jacobian of {of_text(of)}, a parameter, is not read")
        rows, cols = _entries(out_shape, of), _entries(in_shape, wrt)
        key = (name, source, target)
        label = f"{name}[{_key_text(source)},{_key_text(target)}]"
        return self._symbol(key, label, (rows, cols))

    def _copies(self, node: Call) -> Call:
        """dh_t/db^{(t)}: a derivative by a weight's copy at step t (Goodfellow et al.'s
        notation) is the immediate partial, by the use of the weight at that step."""
        if node.function in ("jac", "jacplus") and len(node.args) == 2:
            of, wrt = node.args
            if isinstance(wrt, Step) and self.canonical(wrt.name) in self.parameters:
                return Call("jacplus", (of, Name(wrt.name, wrt.at)), node.at)
        return node

    def _tensor_factor(self, node) -> bool:
        """jac(Y, P) or jacplus(Y, P) by a matrix P: a tensor, read only as the last factor
        of a product (a vector times it)."""
        if not (isinstance(node, Call) and node.function in ("jac", "jacplus")):
            return False
        node = self._copies(node)
        wrt = node.args[1] if len(node.args) == 2 else None
        if not isinstance(wrt, Name):
            return False
        shape = self.parameters.get(self.canonical(wrt.name))
        return shape is not None and len([d for d in shape if d != 1]) > 1

    def _contraction(self, node: Binary) -> MatExpr:
        """g @ dY/dP for a matrix P: the vector g pulled back through Y's uses of P."""
        from .concrete import contracted

        call = self._copies(node.right)
        of, wrt = call.args
        left = self._build(node.left)
        source, out_shape = self._argument(of, "a derivative")
        target, shape = self._argument(wrt, "a derivative")
        if not _vector(left) and left.ndim == 2 and 1 not in left.shape:
            raise AuditShapeError(
                f"a matrix of shape {_text(left.shape)} times the tensor d{of_text(of)}/d"
                f"{wrt.name}: only a vector (one example's gradient) contracts with it"
            )
        if source[1] is None:
            raise AuditUnreadError(f"a derivative of {of_text(of)}, a parameter, is not read")
        self.contracts = True
        return contracted(left, (call.function, source, target), shape)

    def _argument(self, node, what: str) -> tuple[tuple, tuple]:
        """(the model's name and step, the shape) of what a derivative is taken of or by."""
        if isinstance(node, Step):
            if node.index.anchor is not None:
                raise AuditUnreadError(f"{what} needs a concrete step")
            name = self.canonical(node.name)
            if name not in self.per_step:
                raise AuditShapeError(
                    f"{what} of or by {node.name}, which is not one of the model's quantities"
                )
            if name not in self._differentiable():
                raise AuditUnreadError(
                    f"{what} of or by {node.name}: the loss's derivative does not pass through "
                    f"{node.name} in this model (a softmax inside the cross-entropy is one "
                    "step): write it by the logits"
                )
            return (name, node.index.offset), self.per_step[name]
        if isinstance(node, Name):
            name = self.canonical(node.name)
            if name not in self.parameters:
                raise AuditShapeError(
                    f"{what} by {node.name}, which is not one of the model's inputs"
                )
            return (name, None), self.parameters[name]
        raise AuditUnreadError(f"{what} is taken of or by a quantity, not an expression")

    def _differentiable(self) -> set[str]:
        """The per-step quantities a reverse pass reaches: those with an adjoint, and the
        per-step inputs with a gradient."""
        out = {line.target.base[1:] for line in self.form.adjoints}
        out |= {i.name for i in self.form.spec.sequences}
        return out

    def _symbol(self, key: tuple, label: str, shape: tuple) -> MatExpr:
        self.derived[label] = key
        return Symbol(label, tuple(shape))

    def learn(self, rule: Rule, value: MatExpr) -> None:
        """Remember the shape of a quantity the author defines."""
        name = self.canonical(rule.target)
        if name in self.per_step or name in self.parameters or self.gradient_of(name):
            return
        if value.ndim == 0 and rule.index is not None and rule.index.anchor != "t":
            return  # delta[T+1] = 0: a boundary fills the quantity's shape, it has none
        self.defined[name] = value.shape
        if rule.index is not None:
            self.defined_per_step.add(name)


def _walk_names(node):
    if isinstance(node, Name):
        yield node.name
    elif isinstance(node, Binary):
        yield from _walk_names(node.left)
        yield from _walk_names(node.right)


def _entries(shape: tuple, node) -> object:
    """The number of entries of a vector (one example's row or column), for a Jacobian."""
    big = [d for d in shape if d != 1]
    if len(big) > 1:
        raise AuditUnreadError(
            f"a derivative by or of {of_text(node)}, a matrix, is a tensor: not read"
        )
    return big[0] if big else 1


def of_text(node) -> str:
    if isinstance(node, Step):
        return f"{node.name}[{node.index.text()}]"
    return getattr(node, "name", "?")


def _key_text(key: tuple) -> str:
    name, step = key
    return name if step is None else f"{name}[{step}]"


def _vector(e: MatExpr) -> bool:
    return e.ndim == 2 and (e.shape[0] == 1 or e.shape[1] == 1) and e.shape != (1, 1)


def _oriented_product(left: MatExpr, right: MatExpr) -> tuple[MatExpr, MatExpr]:
    """For one example, a vector is a row or a column as the product needs (authors write
    dL/dh as either): a vector operand is turned when that is what makes the shapes fit, to
    contract over its entries (never into an outer product: d x for d x^T is a mistake)."""
    if left.shape[-1] == right.shape[0]:
        return left, right
    for a, b in (
        (left, right.T if _vector(right) else right),
        (left.T if _vector(left) else left, right),
    ):
        if a.shape[-1] == b.shape[0] and a.shape[-1] != 1:
            return a, b
    if _vector(left) and _vector(right):
        a, b = left.T, right.T
        if a.shape[-1] == b.shape[0] and a.shape[-1] != 1:
            return a, b
    return left, right


def _oriented_like(value: MatExpr, like: MatExpr) -> MatExpr:
    """For one example, a row added to a column is the same vector: turned to match."""
    if _vector(value) and _vector(like) and value.shape == like.shape[::-1]:
        return value.T
    return value


def _is_ones(node, *, transposed: bool) -> bool:
    if transposed:
        return isinstance(node, Transposed) and isinstance(node.arg, Name) and node.arg.name == ONES
    return isinstance(node, Name) and node.name == ONES


def _text(shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def relative_index(index: Index | None) -> bool:
    return index is not None and index.anchor == "t"
