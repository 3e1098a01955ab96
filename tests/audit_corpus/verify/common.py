"""Shared machinery for the audit-corpus verification scripts.

Every derivation FILE in tests/audit_corpus/ has one script verify/verify_<stem>.py. The
script holds the truth for FILE as a list of rules written next to a numerical check of each
rule, and

  * finds the line (and, for .ipynb, the markdown cell) of every rule's text in FILE,
  * compares the result with FILE.truth.json (``--write`` writes that file instead),
  * checks that every line of FILE that holds an equation inside math has a truth entry,
  * evaluates every forward and backward rule numerically at two sizes and seeds and prints
    ``OK`` when the numbers agree with the verdict: a "right" rule must equal the true value
    (finite differences of the forward pass, through tap points) to 1e-6, a "wrong" rule
    must differ from it by more than 1e-4 somewhere (or not even have the right shape).

Each rule is judged on its own: every symbol on its right-hand side takes the meaning the
derivation gives it (its true value), so a mistake is charged to the line that makes it.

True values come from central differences (eps = 1e-6, float64) of the forward pass. A
forward pass calls ``tap(name, t, value)`` on every node it computes; the tap records the
value and adds a perturbation when asked to, so dL/d(node) for any node -- a total
derivative when the node is tapped where it is computed, a partial one when it is tapped at
one of its uses -- is a finite difference like any other.
"""
import json
import os
import re
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.dirname(HERE)
EPS = 1e-6
ATOL, RTOL = 1e-6, 1e-5
WRONG_MIN = 1e-4


# ---------------------------------------------------------------- numerics
def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmax(o, axis=-1):
    e = np.exp(o - o.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def onehot(y, C):
    """one-hot rows for an int array y of shape (N,), or a vector for an int."""
    y = np.asarray(y)
    if y.ndim == 0:
        v = np.zeros(C)
        v[int(y)] = 1.0
        return v
    Y = np.zeros((len(y), C))
    Y[np.arange(len(y)), y] = 1.0
    return Y


class Tap:
    def __init__(self, pert=None):
        self.pert = pert or {}
        self.rec = {}

    def __call__(self, name, t, value):
        value = np.array(value, dtype=float)
        self.rec[(name, t)] = value.copy()
        p = self.pert.get((name, t))
        return value + p if p is not None else value


def fd(f, x):
    """central differences of the scalar function f() w.r.t. the array x (perturbed in place)."""
    g = np.zeros_like(x, dtype=float)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + EPS
        fp = f()
        x[i] = old - EPS
        fm = f()
        x[i] = old
        g[i] = (fp - fm) / (2 * EPS)
    return g


class Model:
    """A forward pass at one point. forward(P, D, tap) returns a dict of scalar losses ('L'
    is the total); P holds the parameters, D the data (inputs, labels, h0, ...)."""

    def __init__(self, forward, P, D, dims):
        self.forward, self.P, self.data, self.dims = forward, P, D, dims
        tap = Tap()
        self.losses = forward(P, D, tap)
        self.v = tap.rec
        self._cache = {}
        for k, val in dims.items():
            setattr(self, k, val)

    def __call__(self, name, t=None):
        """the value of node (name, t) of the forward pass"""
        return self.v[(name, t)]

    def has(self, name, t=None):
        return (name, t) in self.v

    def g(self, name, t=None, loss="L"):
        """d loss / d node (name, t); zero of the right shape is NOT invented: the node must exist"""
        key = ("node", name, t, loss)
        if key not in self._cache:
            base = self.v[(name, t)]
            pert = np.zeros_like(base)
            self._cache[key] = fd(lambda: self.forward(self.P, self.data, Tap({(name, t): pert}))[loss], pert)
        return self._cache[key]

    def g0(self, name, t, like, loss="L"):
        """like g, but a node that does not exist (e.g. step T+1) has derivative zero"""
        if (name, t) in self.v:
            return self.g(name, t, loss)
        return np.zeros_like(like)

    def gp(self, pname, loss="L"):
        """d loss / d parameter"""
        key = ("param", pname, loss)
        if key not in self._cache:
            P = {k: np.array(v, dtype=float) for k, v in self.P.items()}
            self._cache[key] = fd(lambda: self.forward(P, self.data, Tap())[loss], P[pname])
        return self._cache[key]

    def gd(self, dname, loss="L"):
        """d loss / d data item (h0, x, ...)"""
        key = ("data", dname, loss)
        if key not in self._cache:
            D = {k: (np.array(v, dtype=float) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v)
                 for k, v in self.data.items()}
            self._cache[key] = fd(lambda: self.forward(self.P, D, Tap())[loss], D[dname])
        return self._cache[key]


def randn(rng, *shape, scale=0.6):
    return rng.standard_normal(shape) * scale


# ---------------------------------------------------------------- comparison
def compare(pairs):
    """pairs: list of (author, true). Returns (status, max_diff); status is 'same', 'differs',
    'ambiguous' (differs by less than WRONG_MIN) or 'shape' (shapes differ or no value)."""
    worst = 0.0
    status = "same"
    for a, b in pairs:
        if a is None:
            return "shape", float("inf")
        a = np.asarray(a, dtype=float)
        b = np.asarray(b, dtype=float)
        if a.shape != b.shape:
            return "shape", float("inf")
        d = np.abs(a - b)
        worst = max(worst, float(d.max()) if d.size else 0.0)
        if not np.all(d <= ATOL + RTOL * np.abs(b)):
            status = "differs"
    if status == "differs" and worst < WRONG_MIN:
        status = "ambiguous"
    return status, worst


def safe(fn):
    """evaluate an author's expression; a shape error means the expression has no value"""
    try:
        return fn()
    except ValueError:
        return None


# ---------------------------------------------------------------- truth
class R:
    def __init__(self, text, kind, verdict=None, why=None, check=None, nth=None):
        assert kind in ("forward", "backward", "no claim"), kind
        if verdict is None:
            verdict = {"forward": "right", "backward": "right", "no claim": "skip"}[kind]
        self.text, self.kind, self.verdict, self.why, self.check, self.nth = text, kind, verdict, why, check, nth


def file_lines(path):
    """[(cell, [lines])]; cell is None for .tex/.md, the cell index for markdown cells of .ipynb"""
    if path.endswith(".ipynb"):
        nb = json.load(open(path))
        out = []
        for i, c in enumerate(nb["cells"]):
            if c["cell_type"] == "markdown":
                src = c["source"] if isinstance(c["source"], str) else "".join(c["source"])
                out.append((i, src.split("\n")))
        return out
    return [(None, open(path).read().split("\n"))]


def locate(blocks, text, nth):
    hits = [(cell, i + 1) for cell, lines in blocks for i, line in enumerate(lines) if text in line]
    if nth is None and len(hits) > 1:
        raise SystemExit("truth text on %d lines, give nth=: %r %s" % (len(hits), text, hits))
    nth = nth or 1
    if len(hits) < nth:
        raise SystemExit("truth text not found (%d hits, nth=%d): %r" % (len(hits), nth, text))
    return hits[nth - 1]


MATH_ENVS = ("align", "equation", "gather", "multline", "eqnarray", "split", "aligned")


def math_lines(path, blocks):
    """(cell, line) of lines that hold an equation ('=' inside math); a safety net for completeness"""
    out = []
    tex = path.endswith(".tex")
    for cell, lines in blocks:
        in_disp = False
        in_fence = False
        for i, line in enumerate(lines):
            s = line.strip()
            if tex and s.startswith("%"):
                continue
            if s.startswith("```"):
                if in_fence:
                    in_fence = False
                    continue
                if s.startswith("```math"):
                    in_fence = "math"
                else:
                    in_fence = "code"
                continue
            if in_fence == "code":
                continue
            body = re.sub(r"(?<!\\)%.*", "", line) if tex else line
            opened = False
            disp_now = in_disp or in_fence == "math"
            for m in re.finditer(r"\$\$|\\\[|\\\]|\\begin\{(\w+)\*?\}|\\end\{(\w+)\*?\}", body):
                tok = m.group(0)
                if tok == "$$":
                    in_disp = not in_disp
                elif tok == "\\[":
                    in_disp = True
                elif tok == "\\]":
                    in_disp = False
                elif m.group(1) in MATH_ENVS:
                    in_disp = True
                elif m.group(2) in MATH_ENVS and m.group(2) not in ("aligned", "split"):
                    in_disp = False
                else:
                    continue
                disp_now = disp_now or in_disp
                opened = True
            has_eq = "=" in body or "\\le" in body or "\\ge" in body
            inline = re.findall(r"(?<!\$)\$(?!\$)([^$]+)\$|\\\((.+?)\\\)", body)
            inline_eq = any("=" in (a or b) for a, b in inline)
            if (disp_now or opened) and has_eq or inline_eq:
                out.append((cell, i + 1))
    return out


def build_truth(path, model, mapping, rules):
    blocks = file_lines(path)
    entries = []
    for r in rules:
        cell, line = locate(blocks, r.text, r.nth)
        r.line, r.cell = line, cell
        e = {"line": line}
        if cell is not None:
            e["cell"] = cell
        e.update({"text": r.text, "kind": r.kind, "verdict": r.verdict})
        if r.why:
            e["why"] = r.why
        entries.append(e)
    order = sorted(range(len(rules)), key=lambda i: (entries[i].get("cell", 0), entries[i]["line"], i))
    truth = {"model": model, "map": mapping, "rules": [entries[i] for i in order]}
    return truth, [rules[i] for i in order], blocks


def main(fname, model, mapping, rules, build, configs):
    path = os.path.join(CORPUS, fname)
    tpath = path + ".truth.json"
    truth, rules, blocks = build_truth(path, model, mapping, rules)
    fails = 0

    def report(ok, msg):
        nonlocal fails
        if not ok:
            fails += 1
        print(("OK   " if ok else "FAIL ") + msg)

    # structure
    for r in rules:
        assert (r.kind == "no claim") == (r.verdict == "skip"), r.text
        assert r.kind != "forward" or r.verdict == "right", r.text
        assert r.verdict != "wrong" or r.why, "a wrong rule needs its why: " + r.text
        assert r.kind == "no claim" or r.check is not None, "no check for " + r.text
    if "--write" in sys.argv:
        with open(tpath, "w") as f:
            json.dump(truth, f, indent=2, ensure_ascii=False)
            f.write("\n")
        print("wrote", os.path.relpath(tpath, CORPUS))
    on_disk = json.load(open(tpath))
    report(on_disk == truth, "%s.truth.json agrees with the rules checked here" % fname)
    covered = {(r.cell, r.line) for r in rules}
    for cell, line in math_lines(path, blocks):
        if (cell, line) not in covered:
            report(False, "line %s%d holds an equation but has no truth entry" %
                   ("" if cell is None else "cell %d " % cell, line))

    # numbers
    for cfg in configs:
        m = build(cfg)
        print("-- %s" % ", ".join("%s=%s" % kv for kv in cfg.items()))
        for r in rules:
            where = ("cell %d " % r.cell if r.cell is not None else "") + "line %d" % r.line
            if r.kind == "no claim":
                report(True, "%-16s %-8s skip     %s" % (where, "no claim", r.text[:70]))
                continue
            status, diff = compare(r.check(m))
            want = "same" if r.verdict == "right" else ("differs", "shape")
            ok = status == want if r.verdict == "right" else status in want
            report(ok, "%-16s %-8s %-8s %s  [%s, max diff %.2g]" % (where, r.kind, r.verdict, r.text[:70], status, diff))
    n = len(rules)
    print("%s: %d rules (%d wrong), %s" % (fname, n, sum(r.verdict == "wrong" for r in rules),
                                           "all OK" if not fails else "%d FAIL" % fails))
    sys.exit(1 if fails else 0)


def steps(m, f, ts=None):
    """[f(t) for t in 1..T]"""
    return [f(t) for t in (ts if ts is not None else range(1, m.T + 1))]


def jac(f, x):
    """finite-difference Jacobian of the vector function f at x: J[i, j] = d f_i / d x_j
    (numerator layout; arrays are flattened)"""
    x = np.array(x, dtype=float)
    y0 = np.asarray(f(x), dtype=float)
    J = np.zeros((y0.size, x.size))
    for j in range(x.size):
        e = np.zeros(x.size)
        e[j] = EPS
        J[:, j] = (np.asarray(f(x + e.reshape(x.shape))).ravel() - np.asarray(f(x - e.reshape(x.shape))).ravel()) / (2 * EPS)
    return J
