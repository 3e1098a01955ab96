"""Importing a user's code in the worker: files, packages, notebooks, and the folders they need.

Runs in the worker's fresh interpreter (loaded by path, like `worker.py`), so it imports
nothing of symbptt: the standard library only.

- A file in a package (its folder has `__init__.py`) is imported as the package's module, so
  its relative imports (`from .functions import sigmoid`) work.
- A file that imports its project's package (`from common.functions import sigmoid`, with
  `common/` a few folders up, as a book's chapters do) gets the nearest folder above it that
  holds that package on `sys.path`; so does every folder the user names (`--path`). All go at
  the end of `sys.path`: the user's files never shadow a real module.
- A notebook (`.ipynb`) is its code cells, each cut to its definitions (a notebook's demo
  cells run training and plots); tracebacks name the cell and its line.
- With `defs_only`, a script runs only its imports, definitions and constant assignments.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import linecache
import os
import sys
import types
from typing import Any

__all__ = ["load", "definitions_only", "project_roots", "UNPARSED", "module_name"]

#: (first line, line number, why) of each top-level block `definitions_only` left out because
#: it does not parse (a Python 2 print): named when a function the check needs was in one.
UNPARSED: list[tuple[str, int, str]] = []
#: How many folders above a file are searched for a package it imports.
_LEVELS = 6


def _append_path(folder: str) -> None:
    if folder not in sys.path:
        sys.path.append(folder)  # last: the user's files never shadow a real module


def module_name(path: str) -> tuple[str, str]:
    """(dotted module name, the folder to import it from): a file in a package is the
    package's module, imported from the folder above its top package."""
    folder = os.path.dirname(os.path.abspath(path))
    stem = os.path.splitext(os.path.basename(path))[0]
    parts = [stem]
    while os.path.isfile(os.path.join(folder, "__init__.py")) and (
        os.path.basename(folder).isidentifier()
    ):
        parts.insert(0, os.path.basename(folder))
        folder = os.path.dirname(folder)
    if len(parts) == 1 or not stem.isidentifier():
        # The file's own name, as `import rnn` would give it (a neutral name that no real
        # module has when the stem is taken): nothing names the checker.
        free = stem.isidentifier() and stem not in sys.modules and not _findable(stem)
        return (stem if free else "submission"), os.path.dirname(os.path.abspath(path))
    return ".".join(parts), folder


def _imported(source: str) -> list[str]:
    """The top-level modules a source imports anywhere (absolute imports only)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name.partition(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.append(node.module.partition(".")[0])
    return list(dict.fromkeys(names))


def _findable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def project_roots(path: str, source: str) -> list[str]:
    """Folders above the file that hold a package or module it imports and that nothing on
    sys.path provides: a project's root, as `sys.path.append('..')` would have added."""
    roots: list[str] = []
    start = os.path.dirname(os.path.abspath(path))
    for name in _imported(source):
        if name in sys.builtin_module_names or _findable(name):
            continue
        folder = start
        for _ in range(_LEVELS):
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
            if os.path.isdir(os.path.join(folder, name)) or os.path.isfile(
                os.path.join(folder, name + ".py")
            ):
                if folder not in roots:
                    roots.append(folder)
                break
    return roots


def _read(path: str) -> str:
    with open(path, encoding="utf-8-sig") as f:
        return f.read()


def load(path: str, defs_only: bool = False, paths: list[str] | tuple = ()) -> Any:
    """Import the user's file (or notebook) as a module, raising whatever its top-level code
    raises; `paths` are more folders to import from."""
    for folder in paths:
        _append_path(os.path.abspath(folder))
    if path.endswith(".ipynb"):
        return _notebook(path)
    source = _read(path)
    name, folder = module_name(path)
    _append_path(folder)
    _append_path(os.path.dirname(os.path.abspath(path)))
    for root in project_roots(path, source):
        _append_path(root)
    if "." in name:  # a package's module: imported as such, so relative imports work
        if not defs_only:
            return importlib.import_module(name)
        importlib.import_module(name.rpartition(".")[0])
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look their module up here
    if defs_only:
        exec(definitions_only(source, path), module.__dict__)  # the user's own file, cut down
    else:
        spec.loader.exec_module(module)
    return module


def _notebook(path: str) -> Any:
    """A notebook's code cells, each cut to its definitions, run in one module."""
    try:
        notebook = json.loads(_read(path))
        cells = notebook["cells"] if isinstance(notebook, dict) else notebook
        sources = []
        for cell in cells:
            if cell.get("cell_type") != "code":
                continue
            text = cell.get("source", "")
            sources.append("".join(text) if isinstance(text, list) else str(text))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ImportError(f"{path} is not a readable notebook ({type(exc).__name__})") from None
    _append_path(os.path.dirname(os.path.abspath(path)))
    for root in project_roots(path, "\n".join(_without_magics(s) for s in sources)):
        _append_path(root)
    module = types.ModuleType("notebook")
    module.__file__ = os.path.abspath(path)
    sys.modules[module.__name__] = module
    for k, text in enumerate(sources, 1):
        text = _without_magics(text)
        where = f"{path} [cell {k}]"
        lines = text.splitlines(keepends=True)
        linecache.cache[where] = (len(text), None, lines, where)  # tracebacks show the line
        exec(definitions_only(text, where), module.__dict__)
    return module


def _without_magics(text: str) -> str:
    """A cell without IPython's `%magic` and `!shell` lines (blank lines keep the numbering)."""
    return "\n".join(
        "" if line.lstrip().startswith(("%", "!")) else line for line in text.splitlines()
    )


def definitions_only(source: str, path: str = "<source>") -> Any:
    """The module's code with only its imports, function and class definitions, docstring
    and simple constant assignments (`hidden_size = 100`): a training script's top level that
    reads data or loops forever is left out."""
    try:
        tree = ast.parse(source, path)
    except SyntaxError:  # a Python 2 script, say: keep the top-level blocks that parse alone
        source = _parsable_blocks(source)
        tree = ast.parse(source, path)
    keep = []
    known: set[str] = set()  # names the kept statements define
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            keep.append(node)
            known |= {(a.asname or a.name).partition(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            keep.append(node)
            known.add(node.name)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            keep.append(node)  # a docstring
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and _constant(node.value, known):
            keep.append(node)
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            known |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    tree.body = keep
    return compile(tree, path, "exec")


def _parsable_blocks(source: str) -> str:
    """The source with every top-level block (a line at column 0 and the indented lines after
    it) that does not parse on its own blanked out: Python 2 print statements in a training
    loop go, the functions (which parse) stay. Line numbers are kept for tracebacks."""
    lines = source.splitlines()
    starts = [
        i
        for i, line in enumerate(lines)
        if line[:1] not in ("", " ", "\t", "#")
        and not line.startswith(("else", "elif", "except", "finally", ")", "]", "}"))
    ]
    out = list(lines)
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(lines)
        block = "\n".join(lines[start:end])
        try:
            ast.parse(block)
        except SyntaxError as exc:
            UNPARSED.append((lines[start], start + (exc.lineno or 1), exc.msg))
            for i in range(start, end):
                out[i] = ""
    return "\n".join(out) + "\n"


def _constant(node: Any, known: set[str] = frozenset()) -> bool:
    """A value computed without calling anything: literals (`100`, `1e-1`, `{}`), names
    already defined by kept statements (`H = hidden_size`), attributes of them
    (`DTYPE = np.float64`), and arithmetic, tuples, lists, sets and dicts of those."""
    if node is None:
        return False
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Name):
        return node.id in known
    if isinstance(node, ast.Attribute):
        return _constant(node.value, known)
    if isinstance(node, ast.UnaryOp):
        return _constant(node.operand, known)
    if isinstance(node, ast.BinOp):
        return _constant(node.left, known) and _constant(node.right, known)
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_constant(e, known) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(_constant(e, known) for e in [*node.keys, *node.values] if e is not None)
    return False
