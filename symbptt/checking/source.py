"""What a user's source says, read without running it: signatures, the keys a function reads
from a dict argument, what it returns (the names in a returned tuple, the keys of a returned
dict), the sizes it unpacks from an array's shape (`N, T, D = x.shape`), and for a class what
its constructor stores (`self.params = [Wx, Wh, b]`) and where its backward puts gradients.

The search (`search.py`) reads these facts to plan calls of code it has never seen; they are
evidence only (the values decide), and the file is parsed, never executed.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FunctionFacts", "ClassFacts", "SourceFacts", "read_facts"]


@dataclass
class FunctionFacts:
    """One function or method, as its source shows it."""

    name: str
    params: list[str] = field(default_factory=list)
    #: Parameters with a default value.
    optional: set[str] = field(default_factory=set)
    #: Parameter -> the string keys the body reads from it (`parameters["Wf"]`).
    keys: dict[str, list[str]] = field(default_factory=dict)
    #: Each return statement: ("tuple", [names or None]), ("dict", [keys]), ("name", id) or
    #: ("other", None); a returned local dict is resolved to its keys.
    returns: list[tuple] = field(default_factory=list)
    #: Parameter -> the names a shape is unpacked into (`N, T, D = x.shape`).
    unpacks: dict[str, list[str]] = field(default_factory=dict)
    #: Parameter -> {axis: name} for `H = h0.shape[1]`.
    axes: dict[str, dict[int, str]] = field(default_factory=dict)
    #: (left, right) operand names of every product (`x @ W`, `np.dot(W, x)`).
    products: list[tuple[str | None, str | None]] = field(default_factory=list)
    #: Attributes of self assigned in the body: name -> ("list", [names]) / ("name", id) /
    #: ("dict", [keys]) / ("other", None).
    sets: dict[str, tuple] = field(default_factory=dict)
    #: (attribute, key or index) of self written through an item (`self.grads[0][...] = `,
    #: `self.gradients["Wf"] += `).
    items: list[tuple[str, object]] = field(default_factory=list)
    #: Names of functions the body calls.
    calls: set[str] = field(default_factory=set)
    #: Whether the body loops (`for t in range(T)`): a sequence, not one step.
    loops: bool = False
    #: A staticmethod (called without an instance).
    static: bool = False


@dataclass
class ClassFacts:
    name: str
    methods: dict[str, FunctionFacts] = field(default_factory=dict)
    bases: list[str] = field(default_factory=list)


@dataclass
class SourceFacts:
    functions: dict[str, FunctionFacts] = field(default_factory=dict)
    classes: dict[str, ClassFacts] = field(default_factory=dict)

    def function(self, dotted: str) -> FunctionFacts | None:
        """A function, or a method as Class.method."""
        head, _, tail = dotted.partition(".")
        if tail:
            cls = self.classes.get(head)
            return cls.methods.get(tail) if cls else None
        return self.functions.get(head)


def _name(node) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):  # dW["f"] reads as dWf, grads["dWf"] as dWf
        key = _const(node.slice)
        base = _name(node.value)
        if isinstance(key, str) and base is not None:
            return key if key[:1].isalpha() and len(key) > 1 else base + key
        return base
    if isinstance(node, ast.Call):  # np.array(dxs), np.stack(dxs): the array inside
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and (func.value.id in ("np", "numpy", "cp", "jnp"))
        ):
            return _name(node.args[0]) if node.args else None
        if isinstance(func, ast.Attribute):  # W.copy(), dW.reshape(...): the array itself
            return _name(func.value)
        return None
    return None


def _const(node) -> object:
    return node.value if isinstance(node, ast.Constant) else None


class _Body(ast.NodeVisitor):
    def __init__(self, facts: FunctionFacts) -> None:
        self.f = facts
        self.local_dicts: dict[str, list[str]] = {}

    def visit_Subscript(self, node: ast.Subscript) -> None:
        base = node.value
        key = _const(node.slice)
        if isinstance(base, ast.Name) and base.id in self.f.params and isinstance(key, str):
            self.f.keys.setdefault(base.id, [])
            if key not in self.f.keys[base.id]:
                self.f.keys[base.id].append(key)
        self.generic_visit(node)

    def _assign(self, targets, value) -> None:
        for target in targets:
            if isinstance(target, ast.Tuple) and _is_shape(value):
                owner = _name(value.value)
                if owner:
                    self.f.unpacks[owner] = [
                        e.id if isinstance(e, ast.Name) else "_" for e in target.elts
                    ]
            if isinstance(target, ast.Name) and isinstance(value, ast.Subscript):
                if _is_shape(value.value) and isinstance(_const(value.slice), int):
                    owner = _name(value.value.value)
                    if owner:
                        self.f.axes.setdefault(owner, {})[_const(value.slice)] = target.id
            if isinstance(target, ast.Name) and isinstance(value, ast.Dict):
                self.local_dicts[target.id] = [
                    k for k in map(_const, value.keys) if isinstance(k, str)
                ]
            if isinstance(target, ast.Name) and isinstance(value, ast.DictComp):
                self.local_dicts.setdefault(target.id, [])
            if isinstance(target, ast.Subscript):
                key = _const(target.slice)
                holder = target.value
                if isinstance(holder, ast.Name) and isinstance(key, str):
                    self.local_dicts.setdefault(holder.id, [])
                    if key not in self.local_dicts[holder.id]:
                        self.local_dicts[holder.id].append(key)
                inner = holder
                while isinstance(inner, ast.Subscript):  # self.grads[0][...] = ...
                    key = _const(inner.slice) if key is None or key is Ellipsis else key
                    inner = inner.value
                if _is_self_attr(inner):
                    self.f.items.append(
                        (
                            inner.attr,
                            _const(target.slice)
                            if not isinstance(target.value, ast.Subscript)
                            else _const(target.value.slice),
                        )
                    )
            if _is_self_attr(target):
                self.f.sets[target.attr] = _describe(value)

    def visit_Assign(self, node: ast.Assign) -> None:
        self._assign(node.targets, node.value)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._assign([node.target], node.value)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self._assign([node.target], node.value)
        self.generic_visit(node)

    def visit_Return(self, node: ast.Return) -> None:
        value = node.value
        if isinstance(value, ast.Tuple):
            self.f.returns.append(
                ("tuple", [_name(e) if not isinstance(e, ast.Dict) else None for e in value.elts])
            )
            for e in value.elts:  # return loss, grads: the dict's keys too
                if isinstance(e, ast.Name) and e.id in self.local_dicts:
                    self.f.returns.append(("dict", list(self.local_dicts[e.id])))
                if isinstance(e, ast.Dict):
                    keys = [k for k in map(_const, e.keys) if isinstance(k, str)]
                    self.f.returns.append(("dict", keys))
        elif isinstance(value, ast.Dict):
            self.f.returns.append(
                ("dict", [k for k in map(_const, value.keys) if isinstance(k, str)])
            )
        elif isinstance(value, ast.Name):
            if value.id in self.local_dicts:
                self.f.returns.append(("dict", list(self.local_dicts[value.id])))
            else:
                self.f.returns.append(("name", value.id))
        elif value is not None:
            self.f.returns.append(("other", None))
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if isinstance(node.op, ast.MatMult):
            self.f.products.append((_name(node.left), _name(node.right)))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name:
            self.f.calls.add(name)
        if name in ("dot", "matmul") and len(node.args) == 2:
            self.f.products.append((_name(node.args[0]), _name(node.args[1])))
        if isinstance(func, ast.Attribute) and func.attr == "dot" and len(node.args) == 1:
            self.f.products.append((_name(func.value), _name(node.args[0])))
        self.generic_visit(node)

    def visit_For(self, node: ast.For) -> None:
        self.f.loops = True
        self.generic_visit(node)

    def visit_While(self, node: ast.While) -> None:
        self.f.loops = True
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:  # nested: not ours
        return


def _is_shape(node) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "shape"


def _is_self_attr(node) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    )


def _describe(value) -> tuple:
    if isinstance(value, (ast.List, ast.Tuple)):
        return ("list", [_name(e) for e in value.elts])
    if isinstance(value, ast.Dict):
        return ("dict", [k for k in map(_const, value.keys) if isinstance(k, str)])
    if isinstance(value, ast.Name):
        return ("name", value.id)
    if isinstance(value, ast.Constant):
        return ("constant", value.value if isinstance(value.value, (int, float, str)) else None)
    return ("other", None)


def _function(node, method: bool) -> FunctionFacts:
    args = node.args
    names = [a.arg for a in (*args.posonlyargs, *args.args)]
    is_static = method and any(
        isinstance(d, ast.Name) and d.id == "staticmethod" for d in node.decorator_list
    )
    if method and names and names[0] in ("self", "cls") and not is_static:
        names = names[1:]
    defaults = names[len(names) - len(args.defaults) :] if args.defaults else []
    optional = set(defaults) | {a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults) if d}
    facts = FunctionFacts(node.name, names + [a.arg for a in args.kwonlyargs], optional)
    facts.static = bool(is_static)
    body = _Body(facts)
    for statement in node.body:
        body.visit(statement)
    return facts


def _source_of(path: Path) -> str:
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    if path.suffix != ".ipynb":
        return text
    try:
        cells = json.loads(text)["cells"]
    except (ValueError, KeyError, TypeError):
        return ""
    parts = []
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        lines = [
            "" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()
        ]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def read_facts(path: Path | str) -> SourceFacts:
    """The facts of a file's top-level functions and classes (empty when it does not parse:
    a Python 2 script's blocks that do parse are read one by one)."""
    source = _source_of(Path(path))
    facts = SourceFacts()
    try:
        tree = ast.parse(source)
        bodies = [tree.body]
    except SyntaxError:
        bodies = []
        for block in source.split("\n\n"):
            try:
                bodies.append(ast.parse(block).body)
            except SyntaxError:
                continue
    for body in bodies:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                facts.functions[node.name] = _function(node, method=False)
            elif isinstance(node, ast.ClassDef):
                cls = ClassFacts(node.name, bases=[b for b in map(_name, node.bases) if b])
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        cls.methods[item.name] = _function(item, method=True)
                facts.classes[node.name] = cls
    return facts
