"""Independent truth for the check corpus (does not import symbptt).

For every implementation listed in manifest.json, in its right and in its buggy version:

  (a) call it the way its author would (one small driver per implementation, below),
  (b) compare every gradient it returns with central finite differences of ITS OWN forward
      output: loss = sum_t <dh_t, h_t> for a fixed random dh (layer form), or its own loss
      (full form); float64, D=2, H=3, N=2 (N=1 for one-example code), T=4, 3 random
      problems (SEEDS),
  (c) compare its forward output with the canonical model of the README (LSTM gates i,f,o,g;
      PyTorch's GRU and its declared variants; tanh RNN; softmax cross-entropy head), after
      the re-arrangement of the arrays the driver declares in `build`.

The right version must pass (b) for every gradient, the buggy one must fail (b) for exactly
the arrays in the manifest's "wrong_in_bug"; both must pass (c). Each buggy file must also
be its right file with exactly the patch listed in BUG_PATCHES, the manifest's convention
(h0, c0, gates, GRU variant) must be the driver's, and its targets must exist.

    python3 tests/check_corpus/verify.py            # everything, exit 0 when all is OK
    python3 tests/check_corpus/verify.py -v karpathy_lstm   # one id, per-gradient errors
"""

import contextlib
import importlib.util
import io
import json
import sys
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
D, H, NB, T, C = 2, 3, 2, 4, 3
EPS = 1e-6
GRAD_TOL = 1e-6  # max |analytic - numeric| <= GRAD_TOL * max(1, max |numeric|)
FWD_TOL = 1e-12


# ---------------------------------------------------------------- loading the code
_counter = [0]


def _fresh_name(stem):
    _counter[0] += 1
    return f"check_corpus_{stem.replace('/', '_').replace('.', '_')}_{_counter[0]}"


def load_py(rel):
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))  # project-root imports: `from common.functions import ...`
    path = HERE / rel
    spec = importlib.util.spec_from_file_location(_fresh_name(rel), path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_package(dirname):
    """Import HERE/dirname as a package (so that its relative imports work)."""
    name = _fresh_name(dirname)
    spec = importlib.util.spec_from_file_location(
        name, HERE / dirname / "__init__.py", submodule_search_locations=[str(HERE / dirname)]
    )
    pkg = importlib.util.module_from_spec(spec)
    sys.modules[name] = pkg
    spec.loader.exec_module(pkg)
    return pkg


def load_notebook(rel):
    """Run every code cell of the notebook (its demo cells too, output swallowed)."""
    nb = json.loads((HERE / rel).read_text())
    assert nb["nbformat"] == 4
    ns = {"__name__": _fresh_name(rel)}
    with contextlib.redirect_stdout(io.StringIO()):
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                exec(compile("".join(cell["source"]), rel, "exec"), ns)
    return types.SimpleNamespace(**ns)


def load_default(files):
    first = files[0]
    if first.endswith(".ipynb"):
        return load_notebook(first)
    return load_py(first)


# ---------------------------------------------------------------- the canonical models
def sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def canon_lstm(P):
    """Rows; x (T,N,D); Wx (D,4H), Wh (H,4H), b (4H,) in blocks i, f, o, g."""
    h, c, hs = P["h0"], P["c0"], []
    for t in range(P["x"].shape[0]):
        a = P["x"][t] @ P["Wx"] + h @ P["Wh"] + P["b"]
        i, f, o = sig(a[:, :H]), sig(a[:, H : 2 * H]), sig(a[:, 2 * H : 3 * H])
        g = np.tanh(a[:, 3 * H :])
        c = f * c + i * g
        h = o * np.tanh(c)
        hs.append(h)
    return np.stack(hs)


def canon_gru(P, update, reset):
    """PyTorch's GRU (update='prev': h = (1-z) n + z h_prev; reset='after': r * (h W_hn + b_hn)),
    and the variants: update='new': h = (1-z) h_prev + z n; reset='before': (r*h) W_hn + b_hn.
    A one-bias-per-gate model is this one with b_hr = b_hz = b_hn = 0."""
    h, hs = P["h0"], []
    for t in range(P["x"].shape[0]):
        x = P["x"][t]
        r = sig(x @ P["Wxr"] + P["bxr"] + h @ P["Whr"] + P["bhr"])
        z = sig(x @ P["Wxz"] + P["bxz"] + h @ P["Whz"] + P["bhz"])
        if reset == "after":
            n = np.tanh(x @ P["Wxn"] + P["bxn"] + r * (h @ P["Whn"] + P["bhn"]))
        else:
            n = np.tanh(x @ P["Wxn"] + P["bxn"] + (r * h) @ P["Whn"] + P["bhn"])
        h = (1 - z) * n + z * h if update == "prev" else (1 - z) * h + z * n
        hs.append(h)
    return np.stack(hs)


def canon_rnn(P):
    h, hs = P["h0"], []
    for t in range(P["x"].shape[0]):
        h = np.tanh(P["x"][t] @ P["Wx"] + h @ P["Wh"] + P["b"])
        hs.append(h)
    return np.stack(hs)


def canon_ce(hs, P):
    """L = sum_t sum_n -log softmax(h_t V + c)[n, y_t[n]]."""
    loss = 0.0
    for t in range(hs.shape[0]):
        o = hs[t] @ P["V"] + P["c"]
        o = o - o.max(axis=1, keepdims=True)
        logp = o - np.log(np.exp(o).sum(axis=1, keepdims=True))
        loss -= logp[np.arange(o.shape[0]), P["y"][t]].sum()
    return loss


# ---------------------------------------------------------------- helpers for the drivers
def blk(W, gate, letters):
    """Block `gate` of a fused array whose last axis is in the order `letters`."""
    k = letters.index(gate)
    return W[..., k * H : (k + 1) * H]


def fuse(W, order, canon="ifog"):
    """Re-order the gate blocks of W (last axis) from `canon` to `order`."""
    return np.concatenate([blk(W, g, canon) for g in order], axis=-1)


def gru_cat(P, prefix, order):
    """[P[prefix+g] for g in order] concatenated on the last axis (e.g. Wx r,z,n)."""
    return np.concatenate([P[prefix + g] for g in order], axis=-1)


def ntd(x):
    return x.transpose(1, 0, 2)


def dnt(x):
    return x.transpose(2, 1, 0)


CASES = {}


def case(cls):
    CASES[cls.id] = cls()
    return cls


class Case:
    id = None
    model = None  # lstm | gru | rnn
    form = "layer"  # layer | full
    n = NB  # examples per call (1 for one-example code)
    h0 = "input"  # canonical initial states: "input" (random) or "zero"
    c0 = "zero"
    update, reset, one_bias = "prev", "after", False  # GRU variants
    gates = None  # the user's order of the canonical gate letters (manifest's "gates")
    diff = ()  # user arrays whose gradients the code returns

    def load(self, files):
        return load_default(files)

    def canonical_forward(self, P):
        if self.model == "lstm":
            return canon_lstm(P)
        if self.model == "gru":
            return canon_gru(P, self.update, self.reset)
        return canon_rnn(P)


# ================================================================ LSTM drivers
@case
class TextbookTimeLSTM(Case):
    id, model, h0, gates = "textbook_time_lstm", "lstm", "zero", "fgio"
    diff = ("Wx", "Wh", "b", "xs")

    def build(self, P):
        o = self.gates
        return {
            "Wx": fuse(P["Wx"], o),
            "Wh": fuse(P["Wh"], o),
            "b": fuse(P["b"], o),
            "xs": ntd(P["x"]),
        }

    def forward(self, m, A):
        layer = m.TimeLSTM(A["Wx"], A["Wh"], A["b"])
        return ntd(layer.forward(A["xs"]))

    def backward(self, m, A, dh):
        layer = m.TimeLSTM(A["Wx"], A["Wh"], A["b"])
        layer.forward(A["xs"])
        dxs = layer.backward(ntd(dh))
        return {"Wx": layer.grads[0], "Wh": layer.grads[1], "b": layer.grads[2], "xs": dxs}


class NpmlCellBase(Case):
    model, h0, gates = "lstm", "zero", "figo"
    diff = ("Wf", "Wu", "Wc", "Wo", "bf", "bu", "bc", "bo", "X_t")
    GATES = {"f": "f", "u": "i", "c": "g", "o": "o"}

    def build(self, P):
        assert "".join(self.GATES.values()) == self.gates
        A = {"X_t": P["x"].copy()}  # stacked over t: X_t = A["X_t"][t], (N, D)
        for k, g in self.GATES.items():
            # Z = [A_prev, X_t]: the first H rows act on h_{t-1}, the last D rows on x_t
            A["W" + k] = np.vstack([blk(P["Wh"], g, "ifog"), blk(P["Wx"], g, "ifog")])
            A["b" + k] = blk(P["b"], g, "ifog")[None, :]
        return A

    def params(self, A):
        return {k: A[k] for k in ("Wf", "Wu", "Wc", "Wo", "bf", "bu", "bc", "bo")}

    def forward(self, m, A):
        cell = self.make(m, A)
        out = []
        for t in range(T):
            At = cell.forward(A["X_t"][t])
            out.append(At[0] if isinstance(At, tuple) else At)
        return np.stack(out)

    def backward(self, m, A, dh):
        cell = self.make(m, A)
        for t in range(T):
            cell.forward(A["X_t"][t])
        dX = np.zeros_like(A["X_t"])
        for t in reversed(range(T)):
            dX[t] = cell.backward(dh[t])
        grads = dict(cell.gradients)
        grads["X_t"] = dX
        return grads


@case
class NpmlLazy(NpmlCellBase):
    id = "npml_lstm_lazy"

    def make(self, m, A):
        cell = m.LSTMCell(n_out=H)
        cell.forward(A["X_t"][0])  # the parameters are created on the first call ...
        cell.parameters = self.params(A)  # ... then replaced by ours
        cell.flush_gradients()  # and the history of that first call erased
        return cell


@case
class NpmlSized(NpmlCellBase):
    id = "npml_lstm_sized"

    def make(self, m, A):
        cell = m.LSTMCell(D, H)
        cell.parameters = self.params(A)
        cell.reset()
        return cell


class DlaiBase(Case):
    model, gates = "lstm", "figo"
    diff = ("x", "a0", "Wf", "bf", "Wi", "bi", "Wc", "bc", "Wo", "bo")
    GATES = {"f": "f", "i": "i", "c": "g", "o": "o"}

    def build(self, P):
        assert "".join(self.GATES.values()) == self.gates
        A = {"x": dnt(P["x"]), "a0": P["h0"].T.copy()}
        for k, g in self.GATES.items():
            # column layout on [a_prev; x_t]: W_k = [W_h block^T, W_x block^T]
            A["W" + k] = np.hstack([blk(P["Wh"], g, "ifog").T, blk(P["Wx"], g, "ifog").T])
            A["b" + k] = blk(P["b"], g, "ifog")[:, None].copy()
        A["Wy"] = P["V"].T.copy()  # present in the parameters, unused by the layer loss
        A["by"] = P["c"][:, None].copy()
        return A

    def params(self, A):
        return {k: A[k] for k in ("Wf", "bf", "Wi", "bi", "Wc", "bc", "Wo", "bo", "Wy", "by")}

    def forward(self, m, A):
        a, y, c, caches = m.lstm_forward(A["x"], A["a0"], self.params(A))
        return dnt(a)

    def backward(self, m, A, dh):
        a, y, c, caches = m.lstm_forward(A["x"], A["a0"], self.params(A))
        g = m.lstm_backward(dnt(dh), caches)
        out = {"x": g["dx"], "a0": g["da0"]}
        out.update({k: g["d" + k] for k in ("Wf", "bf", "Wi", "bi", "Wc", "bc", "Wo", "bo")})
        return out


@case
class DlaiPy(DlaiBase):
    id = "dlai_lstm"


@case
class DlaiNb(DlaiBase):
    id = "dlai_lstm_nb"


@case
class Karpathy(Case):
    id, model, c0, gates = "karpathy_lstm", "lstm", "input", "ifog"
    diff = ("X", "WLSTM", "c0", "h0")

    def build(self, P):
        o = self.gates
        WLSTM = np.vstack([fuse(P["b"], o)[None, :], fuse(P["Wx"], o), fuse(P["Wh"], o)])
        return {"X": P["x"].copy(), "WLSTM": WLSTM, "c0": P["c0"].copy(), "h0": P["h0"].copy()}

    def forward(self, m, A):
        Hout, cT, hT, cache = m.LSTM.forward(A["X"], A["WLSTM"], A["c0"], A["h0"])
        return Hout

    def backward(self, m, A, dh):
        Hout, cT, hT, cache = m.LSTM.forward(A["X"], A["WLSTM"], A["c0"], A["h0"])
        dX, dWLSTM, dc0, dh0 = m.LSTM.backward(dh, cache)
        return {"X": dX, "WLSTM": dWLSTM, "c0": dc0, "h0": dh0}


@case
class Cs231nLSTM(Case):
    id, model, gates = "cs231n_lstm", "lstm", "ifog"
    diff = ("x", "h0", "Wx", "Wh", "b")

    def build(self, P):
        o = self.gates
        return {
            "x": ntd(P["x"]),
            "h0": P["h0"].copy(),
            "Wx": fuse(P["Wx"], o),
            "Wh": fuse(P["Wh"], o),
            "b": fuse(P["b"], o),
        }

    def forward(self, m, A):
        h, cache = m.lstm_forward(A["x"], A["h0"], A["Wx"], A["Wh"], A["b"])
        return ntd(h)

    def backward(self, m, A, dh):
        h, cache = m.lstm_forward(A["x"], A["h0"], A["Wx"], A["Wh"], A["b"])
        return dict(zip(self.diff, m.lstm_backward(ntd(dh), cache)))


@case
class TorchLSTM(Case):
    id, model, c0, gates = "torch_lstm", "lstm", "input", "ifgo"
    diff = ("input", "h0", "c0", "W_ih", "W_hh", "b_ih", "b_hh")

    def build(self, P):
        o = self.gates
        b = fuse(P["b"], o)
        b_ih = P["b_split"]  # any split b = b_ih + b_hh
        return {
            "input": P["x"].copy(),
            "h0": P["h0"].copy(),
            "c0": P["c0"].copy(),
            "W_ih": fuse(P["Wx"], o).T.copy(),
            "W_hh": fuse(P["Wh"], o).T.copy(),
            "b_ih": b_ih,
            "b_hh": b - b_ih,
        }

    def args(self, A):
        return [A[k] for k in self.diff]

    def forward(self, m, A):
        output, (h_n, c_n), cache = m.lstm_forward(*self.args(A))
        return output

    def backward(self, m, A, dh):
        output, (h_n, c_n), cache = m.lstm_forward(*self.args(A))
        return dict(zip(self.diff, m.lstm_backward(dh, cache)))


@case
class PkgLSTM(Case):
    id, model, c0, gates = "pkg_lstm", "lstm", "input", "fiog"
    diff = ("x", "h0", "c0", "W", "b")

    def load(self, files):
        return load_package(Path(files[0]).parent.as_posix()).layers

    def build(self, P):
        o = self.gates
        return {
            "x": P["x"].copy(),
            "h0": P["h0"].copy(),
            "c0": P["c0"].copy(),
            "W": np.vstack([fuse(P["Wx"], o), fuse(P["Wh"], o)]),
            "b": fuse(P["b"], o),
        }

    def forward(self, m, A):
        h, cache = m.lstm_forward(A["x"], A["h0"], A["c0"], A["W"], A["b"])
        return h

    def backward(self, m, A, dh):
        h, cache = m.lstm_forward(A["x"], A["h0"], A["c0"], A["W"], A["b"])
        return dict(zip(self.diff, m.lstm_backward(dh, cache)))


PER_GATE_LSTM = (("f", "f"), ("i", "i"), ("c", "g"), ("o", "o"))
WU_ARGS = ("Wf", "Wi", "Wc", "Wo", "Uf", "Ui", "Uc", "Uo", "bf", "bi", "bc", "bo")


@case
class LstmWU(Case):
    id, model, c0, gates = "lstm_wu", "lstm", "input", "figo"
    diff = ("X", "h0", "c0") + WU_ARGS

    def build(self, P):
        assert "".join(g for k, g in PER_GATE_LSTM) == self.gates
        A = {"X": ntd(P["x"]), "h0": P["h0"].copy(), "c0": P["c0"].copy()}
        for k, g in PER_GATE_LSTM:
            A["W" + k] = blk(P["Wx"], g, "ifog").copy()
            A["U" + k] = blk(P["Wh"], g, "ifog").copy()
            A["b" + k] = blk(P["b"], g, "ifog").copy()
        return A

    def forward(self, m, A):
        Hs, cache = m.lstm_forward(*[A[k] for k in self.diff])
        return ntd(Hs)

    def backward(self, m, A, dh):
        Hs, cache = m.lstm_forward(*[A[k] for k in self.diff])
        return dict(zip(self.diff, m.lstm_backward(ntd(dh), cache)))


@case
class Lstm1D(Case):
    id, model, c0, n, gates = "lstm_1d", "lstm", "input", 1, "figo"
    diff = ("xs", "h0", "c0") + WU_ARGS

    def build(self, P):
        assert "".join(g for k, g in PER_GATE_LSTM) == self.gates
        A = {"xs": P["x"][:, 0, :].copy(), "h0": P["h0"][0].copy(), "c0": P["c0"][0].copy()}
        for k, g in PER_GATE_LSTM:
            A["W" + k] = blk(P["Wx"], g, "ifog").T.copy()  # column: W @ x
            A["U" + k] = blk(P["Wh"], g, "ifog").T.copy()
            A["b" + k] = blk(P["b"], g, "ifog").copy()
        return A

    def forward(self, m, A):
        hs, caches = m.forward(*[A[k] for k in self.diff])
        return hs[:, None, :]

    def backward(self, m, A, dh):
        hs, caches = m.forward(*[A[k] for k in self.diff])
        return dict(zip(self.diff, m.backward(dh[:, 0, :], caches)))


@case
class FullLSTMClass(Case):
    id, model, form, h0, gates = "full_lstm_class", "lstm", "full", "zero", "gifo"
    diff = ("Wx", "Wh", "b", "Wy", "by")

    def build(self, P):
        o = self.gates
        return {
            "X": P["x"].copy(),
            "y": P["y"].copy(),
            "Wx": fuse(P["Wx"], o),
            "Wh": fuse(P["Wh"], o),
            "b": fuse(P["b"], o),
            "Wy": P["V"].copy(),
            "by": P["c"].copy(),
        }

    def run(self, m, A):
        model = m.LSTMTagger(D, H, C)
        model.params = {k: A[k] for k in ("Wx", "Wh", "b", "Wy", "by")}
        return model.loss(A["X"], A["y"])

    def forward(self, m, A):
        return self.run(m, A)[0]

    def backward(self, m, A):
        return self.run(m, A)


# ================================================================ GRU drivers
TORCH_GRU = (
    "W_ir",
    "W_iz",
    "W_in",
    "W_hr",
    "W_hz",
    "W_hn",
    "b_ir",
    "b_iz",
    "b_in",
    "b_hr",
    "b_hz",
    "b_hn",
)


@case
class TextbookTimeGRU(Case):
    id, model, h0, gates = "textbook_time_gru", "gru", "zero", "zrn"
    update, reset, one_bias = "new", "before", True
    diff = ("Wx", "Wh", "b", "xs")

    def build(self, P):
        o = self.gates
        return {
            "Wx": gru_cat(P, "Wx", o),
            "Wh": gru_cat(P, "Wh", o),
            "b": gru_cat(P, "bx", o),
            "xs": ntd(P["x"]),
        }

    def forward(self, m, A):
        return ntd(m.TimeGRU(A["Wx"], A["Wh"], A["b"]).forward(A["xs"]))

    def backward(self, m, A, dh):
        layer = m.TimeGRU(A["Wx"], A["Wh"], A["b"])
        layer.forward(A["xs"])
        dxs = layer.backward(ntd(dh))
        return {"Wx": layer.grads[0], "Wh": layer.grads[1], "b": layer.grads[2], "xs": dxs}


@case
class GruTorchNames(Case):
    id, model, gates = "gru_torchnames", "gru", "rzn"
    diff = ("x", "h0") + TORCH_GRU

    def build(self, P):
        A = {"x": P["x"].copy(), "h0": P["h0"].copy()}
        for g in self.gates:
            A["W_i" + g] = P["Wx" + g].T.copy()  # torch stores (H, D), used as x @ W.T
            A["W_h" + g] = P["Wh" + g].T.copy()
            A["b_i" + g] = P["bx" + g].copy()
            A["b_h" + g] = P["bh" + g].copy()
        return A

    def forward(self, m, A):
        out, cache = m.gru_forward(*[A[k] for k in self.diff])
        return out

    def backward(self, m, A, dh):
        out, cache = m.gru_forward(*[A[k] for k in self.diff])
        return dict(zip(self.diff, m.gru_backward(dh, cache)))


CMU_W = ("Wrx", "Wzx", "Wnx", "Wrh", "Wzh", "Wnh", "brx", "bzx", "bnx", "brh", "bzh", "bnh")


class CmuBase(Case):
    model, n, gates = "gru", 1, "rzn"
    diff = ("x", "h_prev_t") + CMU_W

    def build(self, P):
        A = {"x": P["x"][:, 0, :].copy(), "h_prev_t": P["h0"][0].copy()}
        for g in self.gates:
            A[f"W{g}x"] = P["Wx" + g].T.copy()  # (H, D), used as W @ x
            A[f"W{g}h"] = P["Wh" + g].T.copy()
            A[f"b{g}x"] = P["bx" + g].copy()
            A[f"b{g}h"] = P["bh" + g].copy()
        return A

    def cell(self, m, A):
        c = m.GRUCell(D, H)
        c.init_weights(*[A[k] for k in CMU_W])
        return c

    def forward(self, m, A):
        h, hs = A["h_prev_t"], []
        for t in range(T):
            h = self.cell(m, A).forward(A["x"][t], h)
            hs.append(h)
        return np.stack(hs)[:, None, :]


@case
class CmuGRUCell(CmuBase):
    """One cell object per time step (gradients are set, not accumulated): sum them."""

    id = "cmu_gru_cell"

    def backward(self, m, A, dh):
        cells, h = [], A["h_prev_t"]
        for t in range(T):
            cells.append(self.cell(m, A))
            h = cells[t].forward(A["x"][t], h)
        dx = np.zeros_like(A["x"])
        dnext = np.zeros(H)
        for t in reversed(range(T)):
            dx[t], dnext = cells[t].backward(dh[t, 0] + dnext)
        grads = {k: sum(getattr(c, "d" + k) for c in cells) for k in CMU_W}
        grads.update(x=dx, h_prev_t=dnext)
        return grads


@case
class CmuGRUCellAcc(CmuBase):
    """One cell for the whole sequence: forward(x_t, h_{t-1}) again before each backward."""

    id = "cmu_gru_cell_acc"
    update = "new"

    def backward(self, m, A, dh):
        cell = self.cell(m, A)
        hs = [A["h_prev_t"]]
        for t in range(T):
            hs.append(cell.forward(A["x"][t], hs[-1]))
        dx = np.zeros_like(A["x"])
        dnext = np.zeros(H)
        for t in reversed(range(T)):
            cell.forward(A["x"][t], hs[t])
            dx[t], dnext = cell.backward(dh[t, 0] + dnext)
        grads = {k: getattr(cell, "d" + k) for k in CMU_W}
        grads.update(x=dx, h_prev_t=dnext)
        return grads


@case
class SplitGRU(Case):
    id, model, gates = "split_gru", "gru", "rzn"
    diff = ("x", "h0", "Wx", "Wh", "bx", "bh")

    def load(self, files):
        fwd, bwd = load_py(files[0]), load_py(files[1])
        return types.SimpleNamespace(gru_forward=fwd.gru_forward, gru_backward=bwd.gru_backward)

    def build(self, P):
        o = self.gates
        return {
            "x": ntd(P["x"]),
            "h0": P["h0"].copy(),
            "Wx": gru_cat(P, "Wx", o),
            "Wh": gru_cat(P, "Wh", o),
            "bx": gru_cat(P, "bx", o),
            "bh": gru_cat(P, "bh", o),
        }

    def forward(self, m, A):
        h, cache = m.gru_forward(*[A[k] for k in self.diff])
        return ntd(h)

    def backward(self, m, A, dh):
        h, cache = m.gru_forward(*[A[k] for k in self.diff])
        return dict(zip(self.diff, m.gru_backward(ntd(dh), cache)))


@case
class FullGRU(Case):
    id, model, form, gates = "full_gru_fn", "gru", "full", "zrn"
    update, reset, one_bias = "prev", "before", True
    diff = ("h0", "Wx", "Wh", "b", "Wy", "by")

    def build(self, P):
        o = self.gates
        return {
            "X": P["x"].copy(),
            "y": P["y"].copy(),
            "h0": P["h0"].copy(),
            "Wx": gru_cat(P, "Wx", o),
            "Wh": gru_cat(P, "Wh", o),
            "b": gru_cat(P, "bx", o),
            "Wy": P["V"].copy(),
            "by": P["c"].copy(),
        }

    def run(self, m, A):
        return m.gru_loss(*[A[k] for k in ("X", "y", "h0", "Wx", "Wh", "b", "Wy", "by")])

    def forward(self, m, A):
        return self.run(m, A)[0]

    def backward(self, m, A):
        return self.run(m, A)


@case
class GruConcatCol(Case):
    id, model, gates = "gru_concat_col", "gru", "zrn"
    update, reset, one_bias = "new", "before", True
    diff = ("x", "a0", "Wz", "bz", "Wr", "br", "Wh", "bh")
    GATES = {"z": "z", "r": "r", "h": "n"}

    def build(self, P):
        assert "".join(self.GATES.values()) == self.gates
        A = {"x": dnt(P["x"]), "a0": P["h0"].T.copy()}
        for k, g in self.GATES.items():
            A["W" + k] = np.hstack([P["Wh" + g].T, P["Wx" + g].T])  # on [a_prev; x_t]
            A["b" + k] = P["bx" + g][:, None].copy()
        return A

    def params(self, A):
        return {k: A[k] for k in ("Wz", "bz", "Wr", "br", "Wh", "bh")}

    def forward(self, m, A):
        a, caches = m.gru_forward(A["x"], A["a0"], self.params(A))
        return dnt(a)

    def backward(self, m, A, dh):
        a, caches = m.gru_forward(A["x"], A["a0"], self.params(A))
        g = m.gru_backward(dnt(dh), caches)
        return {k: g["d" + k] for k in self.diff}


@case
class KerasGRU(Case):
    id, model, gates = "keras_gru", "gru", "zrn"
    diff = ("inputs", "initial_state", "kernel", "recurrent_kernel", "bias")

    def build(self, P):
        o = self.gates
        return {
            "inputs": ntd(P["x"]),
            "initial_state": P["h0"].copy(),
            "kernel": gru_cat(P, "Wx", o),
            "recurrent_kernel": gru_cat(P, "Wh", o),
            "bias": np.stack([gru_cat(P, "bx", o), gru_cat(P, "bh", o)]),
        }

    def forward(self, m, A):
        out, cache = m.gru_forward(*[A[k] for k in self.diff])
        return ntd(out)

    def backward(self, m, A, dh):
        out, cache = m.gru_forward(*[A[k] for k in self.diff])
        return dict(zip(self.diff, m.gru_backward(ntd(dh), cache)))


@case
class Gru1D(Case):
    id, model, n, gates = "gru_1d", "gru", 1, "zrn"
    update, reset, one_bias = "new", "before", True
    ARGS = ("Wz", "Uz", "bz", "Wr", "Ur", "br", "Wh", "Uh", "bh")
    diff = ("xs", "h0") + ARGS

    def build(self, P):
        A = {"xs": P["x"][:, 0, :].copy(), "h0": P["h0"][0].copy()}
        for k, g in zip("zrh", self.gates):
            A["W" + k] = P["Wx" + g].T.copy()
            A["U" + k] = P["Wh" + g].T.copy()
            A["b" + k] = P["bx" + g].copy()
        return A

    def forward(self, m, A):
        hs, cache = m.forward(*[A[k] for k in self.diff])
        return hs[:, None, :]

    def backward(self, m, A, dh):
        hs, cache = m.forward(*[A[k] for k in self.diff])
        g = m.backward(dh[:, 0, :], cache)
        return {k: g["d" + k] for k in self.diff}


# ================================================================ vanilla RNN drivers
@case
class TextbookTimeRNN(Case):
    id, model = "textbook_time_rnn", "rnn"
    diff = ("Wx", "Wh", "b", "xs", "h")

    def build(self, P):
        return {
            "Wx": P["Wx"].copy(),
            "Wh": P["Wh"].copy(),
            "b": P["b"].copy(),
            "xs": ntd(P["x"]),
            "h": P["h0"].copy(),
        }

    def layer(self, m, A):
        layer = m.TimeRNN(A["Wx"], A["Wh"], A["b"], stateful=True)
        layer.set_state(A["h"])
        return layer

    def forward(self, m, A):
        return ntd(self.layer(m, A).forward(A["xs"]))

    def backward(self, m, A, dh):
        layer = self.layer(m, A)
        layer.forward(A["xs"])
        dxs = layer.backward(ntd(dh))
        return {
            "Wx": layer.grads[0],
            "Wh": layer.grads[1],
            "b": layer.grads[2],
            "xs": dxs,
            "h": layer.dh,
        }


@case
class RnnCol(Case):
    id, model = "rnn_col_layer", "rnn"
    diff = ("x", "h0", "Wxh", "Whh", "bh")

    def build(self, P):
        return {
            "x": dnt(P["x"]),
            "h0": P["h0"].T.copy(),
            "Wxh": P["Wx"].T.copy(),
            "Whh": P["Wh"].T.copy(),
            "bh": P["b"][:, None].copy(),
        }

    def params(self, A):
        return {k: A[k] for k in ("Wxh", "Whh", "bh")}

    def forward(self, m, A):
        h, cache = m.rnn_forward(A["x"], A["h0"], self.params(A))
        return dnt(h)

    def backward(self, m, A, dh):
        h, cache = m.rnn_forward(A["x"], A["h0"], self.params(A))
        g = m.rnn_backward(dnt(dh), cache)
        return {k: g["d" + k] for k in self.diff}


@case
class FullRnnCol(Case):
    id, model, form = "full_rnn_col", "rnn", "full"
    diff = ("Wxh", "Whh", "Why", "bh", "by", "hprev")

    def build(self, P):
        return {
            "xs": P["x"].transpose(0, 2, 1).copy(),
            "ys": P["y"].copy(),
            "hprev": P["h0"].T.copy(),
            "Wxh": P["Wx"].T.copy(),
            "Whh": P["Wh"].T.copy(),
            "Why": P["V"].T.copy(),
            "bh": P["b"][:, None].copy(),
            "by": P["c"][:, None].copy(),
        }

    def run(self, m, A):
        out = m.lossFun(*[A[k] for k in ("xs", "ys", "hprev", "Wxh", "Whh", "Why", "bh", "by")])
        loss, dWxh, dWhh, dWhy, dbh, dby, dhprev = out
        return loss, {"Wxh": dWxh, "Whh": dWhh, "Why": dWhy, "bh": dbh, "by": dby, "hprev": dhprev}

    def forward(self, m, A):
        return self.run(m, A)[0]

    def backward(self, m, A):
        return self.run(m, A)


@case
class Cs231nRNN(Case):
    id, model = "cs231n_rnn", "rnn"
    diff = ("x", "h0", "Wx", "Wh", "b")

    def build(self, P):
        return {
            "x": ntd(P["x"]),
            "h0": P["h0"].copy(),
            "Wx": P["Wx"].copy(),
            "Wh": P["Wh"].copy(),
            "b": P["b"].copy(),
        }

    def forward(self, m, A):
        h, cache = m.rnn_forward(*[A[k] for k in self.diff])
        return ntd(h)

    def backward(self, m, A, dh):
        h, cache = m.rnn_forward(*[A[k] for k in self.diff])
        return dict(zip(self.diff, m.rnn_backward(ntd(dh), cache)))


# ---------------------------------------------------------------- the planted bugs
# bug file: (right file, text replaced, replacement); the bug file must be exactly that.
BUG_PATCHES = {
    "time_layers_bug.py": (
        "time_layers.py",
        "np.hstack((df, dg, di, do))",
        "np.hstack((df, di, dg, do))",
    ),
    "time_gru_bug.py": (
        "time_gru.py",
        "dWh_zr = np.dot(h_prev.T, dA[:, : 2 * H])",
        "dWh_zr = np.dot((r * h_prev).T, dA[:, : 2 * H])",
    ),
    "time_rnn_bug.py": ("time_rnn.py", "grads[k] += g", "grads[k] = g"),
    "npml_lstm_lazy_bug.py": (
        "npml_lstm_lazy.py",
        'self.gradients["Wc"] += Zt.T @ dCc',
        'self.gradients["Wc"] = Zt.T @ dCc',
    ),
    "npml_lstm_sized_bug.py": ("npml_lstm_sized.py", "dA = dLdA_t + self.dA_next", "dA = dLdA_t"),
    "dlai_lstm_bug.py": (
        "dlai_lstm.py",
        "dcct = dc * it * (1 - cct**2)",
        "dcct = dc * it * cct * (1 - cct)",
    ),
    "karpathy_lstm_bug.py": ("karpathy_lstm.py", "dc0 = f * dc", "dc0 = dc"),
    "cs231n_lstm_bug.py": ("cs231n_lstm.py", "db += db_t", "db = db_t"),
    "torch_lstm_bug.py": ("torch_lstm.py", "[d_i, d_f, d_g, d_o]", "[d_i, d_f, d_o, d_g]"),
    "pkg_lstm_bug/layers.py": (
        "pkg_lstm/layers.py",
        "dct = dc_next + dht * o * tanh_grad(tc)",
        "dct = dht * o * tanh_grad(tc)",
    ),
    "pkg_lstm_bug/__init__.py": ("pkg_lstm/__init__.py", "", ""),
    "pkg_lstm_bug/functions.py": ("pkg_lstm/functions.py", "", ""),
    "lstm_wu_bug.py": ("lstm_wu.py", "dU[k] += h_prev.T @ dz[k]", "dU[k] += h.T @ dz[k]"),
    "lstm_1d_bug.py": (
        "lstm_1d.py",
        "dh_prev = Uf.T @ df + Ui.T @ di + Uc.T @ dg + Uo.T @ do",
        "dh_prev = Uf @ df + Ui @ di + Uc @ dg + Uo @ do",
    ),
    "full_lstm_bug.py": (
        "full_lstm.py",
        'dh = dscores @ p["Wy"].T + dh_next',
        'dh = dscores @ p["Wy"].T',
    ),
    "gru_torch_bug.py": (
        "gru_torch.py",
        "dgh_n = dn * r  # gradient of h W_hn^T + b_hn\n        dr = dn * gh_n * r * (1 - r)",
        "dgh_n = dn  # gradient of (r * h) W_hn^T + b_hn\n"
        "        dr = (dn @ W_hn) * h_prev * r * (1 - r)",
    ),
    "cmu_gru_cell_bug.py": (
        "cmu_gru_cell.py",
        "dz = delta * (-self.n + self.hidden)",
        "dz = delta * (self.n + self.hidden)",
    ),
    "cmu_gru_cell_acc_bug.py": (
        "cmu_gru_cell_acc.py",
        "self.dbnh += d_hn",
        "self.dbnh += d_n",
    ),
    "split_gru_bwd_bug.py": (
        "split_gru_bwd.py",
        "dbh += dgh.sum(axis=0)",
        "dbh += dgx.sum(axis=0)",
    ),
    "full_gru_bug.py": ("full_gru.py", 'grads["Wy"] += hs[t].T @ do', 'grads["Wy"] = hs[t].T @ do'),
    "gru_concat_col_bug.py": (
        "gru_concat_col.py",
        "dWh = np.dot(dht, concat_r.T)",
        "dWh = np.dot(dht, concat.T)",
    ),
    "keras_gru_bug.py": ("keras_gru.py", "d_rec_h @ R_h.T", "d_rec_h @ R_h"),
    "gru_1d_bug.py": ("gru_1d.py", "dh_prev = dh * (1 - z) + drh * r", "dh_prev = drh * r"),
    "rnn_col_bug.py": (
        "rnn_col.py",
        'grads["dWhh"] += dhraw @ h_prev.T',
        'grads["dWhh"] += dhraw @ h[:, :, t].T',
    ),
    "min_char_rnn_loss_bug.py": (
        "min_char_rnn_loss.py",
        "dhnext = np.dot(Whh.T, da)",
        "dhnext = np.dot(Whh, da)",
    ),
    "rnn_layers_bug.py": (
        "rnn_layers.py",
        "rnn_step_backward(\n            dh[:, t, :] + dprev_h, cache[t]\n        )",
        "rnn_step_backward(dh[:, t, :], cache[t])",
    ),
    "dlai_lstm_nb_bug.ipynb": (
        "dlai_lstm_nb.ipynb",
        "concat = np.concatenate((a_prev, xt), axis=0)",
        "concat = np.concatenate((a_next, xt), axis=0)",
    ),
}


def check_patch(bug_rel):
    right_rel, old, new = BUG_PATCHES[bug_rel]
    right, bug = (HERE / right_rel).read_text(), (HERE / bug_rel).read_text()
    if right_rel.endswith(".ipynb"):  # compare the code, cell by cell
        right = json.dumps([c["source"] for c in json.loads(right)["cells"]])
        bug = json.dumps([c["source"] for c in json.loads(bug)["cells"]])
    if old == "":
        return bug == right
    if right.count(old) != 1:
        return False
    return bug == right.replace(old, new)


# ---------------------------------------------------------------- the checks
def canonical_problem(c, seed):
    """Random canonical arrays for case c (x is (T, N, D) with N = c.n)."""
    rng = np.random.default_rng(seed)
    n = c.n
    P = {
        "x": rng.standard_normal((T, n, D)),
        "h0": rng.standard_normal((n, H)) * 0.5 if c.h0 == "input" else np.zeros((n, H)),
        "c0": rng.standard_normal((n, H)) * 0.5 if c.c0 == "input" else np.zeros((n, H)),
        "dh": rng.standard_normal((T, n, H)),
        "V": rng.standard_normal((H, C)) * 0.7,
        "c": rng.standard_normal(C) * 0.3,
        "y": rng.integers(0, C, size=(T, n)),
    }
    if c.model == "lstm":
        P["Wx"] = rng.standard_normal((D, 4 * H)) * 0.6
        P["Wh"] = rng.standard_normal((H, 4 * H)) * 0.6
        P["b"] = rng.standard_normal(4 * H) * 0.4
        P["b_split"] = rng.standard_normal(4 * H) * 0.4
    elif c.model == "gru":
        for g in "rzn":
            P["Wx" + g] = rng.standard_normal((D, H)) * 0.6
            P["Wh" + g] = rng.standard_normal((H, H)) * 0.6
            P["bx" + g] = rng.standard_normal(H) * 0.4
            P["bh" + g] = np.zeros(H) if c.one_bias else rng.standard_normal(H) * 0.4
    else:
        P["Wx"] = rng.standard_normal((D, H)) * 0.6
        P["Wh"] = rng.standard_normal((H, H)) * 0.6
        P["b"] = rng.standard_normal(H) * 0.4
    return P


def _copy(A):
    return {k: np.array(v, copy=True) for k, v in A.items()}


def user_loss(c, m, A, dh):
    if c.form == "full":
        return float(c.forward(m, _copy(A)))
    return float(np.sum(c.forward(m, _copy(A)) * dh))


def numeric_grad(c, m, A, dh, name):
    base = A[name]
    g = np.zeros(base.shape)
    for idx in np.ndindex(base.shape):
        vals = []
        for sgn in (+1, -1):
            B = dict(A)
            B[name] = base.astype(float).copy()
            B[name][idx] += sgn * EPS
            vals.append(user_loss(c, m, B, dh))
        g[idx] = (vals[0] - vals[1]) / (2 * EPS)
    return g


def check_impl(c, m, P):
    """(forward error vs the canonical model, {array: relative gradient error})."""
    A = c.build(P)
    dh = P["dh"]
    # (c) the forward is the canonical model's (hidden states, or the loss for the full form)
    if c.form == "full":
        canon = canon_ce(c.canonical_forward(P), P)
        fwd_err = abs(c.forward(m, _copy(A)) - canon) / max(1.0, abs(canon))
        loss, grads = c.backward(m, _copy(A))
        fwd_err = max(fwd_err, abs(loss - canon) / max(1.0, abs(canon)))
    else:
        canon = c.canonical_forward(P)
        out = c.forward(m, _copy(A))
        fwd_err = np.inf if out.shape != canon.shape else float(np.max(np.abs(out - canon)))
        grads = c.backward(m, _copy(A), dh)
    # (b) every returned gradient against finite differences of its own forward
    assert set(grads) == set(c.diff), (c.id, sorted(grads), sorted(c.diff))
    errs = {}
    for name in c.diff:
        g = np.asarray(grads[name], dtype=float)
        num = numeric_grad(c, m, A, dh, name)
        if g.shape != num.shape:
            errs[name] = ("shape", g.shape, num.shape)
            continue
        errs[name] = float(np.max(np.abs(g - num)) / max(1.0, np.max(np.abs(num))))
    return fwd_err, errs


def bad(e):
    return not isinstance(e, float) or e > GRAD_TOL


def target_problems(target, files):
    """The manifest's target ("a.py:f,g", "b.py:Cls.meth", "x.py:f,y.py:g") names what exists."""
    found, path = [], None
    for part in target.split(","):
        if ":" in part:
            path, part = part.split(":", 1)
        if path not in files:
            found.append(f"target file {path} is not in the files")
            continue
        if path.endswith(".ipynb"):
            obj = load_notebook(path)
        elif (HERE / path).parent != HERE and (HERE / path).with_name("__init__.py").is_file():
            obj = getattr(load_package(Path(path).parent.as_posix()), Path(path).stem)
        else:
            obj = load_py(path)
        for attr in part.split("."):
            obj = getattr(obj, attr, None)
        if not callable(obj):
            found.append(f"target {path}:{part} does not exist")
    return found


SEEDS = (0, 1, 2)  # three random problems per implementation, all at the same sizes


def check_entry(e, c, verbose):
    """Problems of one manifest entry (empty when all is OK) and the lines to print."""
    problems, lines = [], []
    for f in e["files"] + e["bug_files"]:
        if not (HERE / f).is_file():
            problems.append(f"missing file {f}")
    if (e["model"], e["form"]) != (c.model, c.form):
        problems.append("manifest model/form differ from the driver")
    conv = e["convention"]
    declared = {"h0": conv["h0"], "c0": conv["c0"], "gates": conv["gates"]}
    driver = {"h0": c.h0, "c0": c.c0 if c.model == "lstm" else None, "gates": c.gates}
    if c.model == "gru":
        declared.update(
            update=conv["gru_update"], reset=conv["reset"], one_bias=conv["one_bias_per_gate"]
        )
        driver.update(update="z_weighs_" + c.update, reset=c.reset, one_bias=c.one_bias)
    if declared != driver:
        problems.append(f"manifest convention {declared} differs from the driver's {driver}")
    missing = set(c.diff) - set(e["convention"]["names"])
    if missing:
        problems.append(f"arrays not in convention.names: {sorted(missing)}")
    problems += target_problems(e["target"], e["files"])
    problems += target_problems(e["bug_target"], e["bug_files"])
    for f in e["bug_files"]:
        if f in BUG_PATCHES and not check_patch(f):
            problems.append(f"{f} is not its right file plus the planted bug")
    if problems:
        return problems, lines
    for variant, files in (("right", e["files"]), ("bug", e["bug_files"])):
        m = c.load(files)
        expect = [] if variant == "right" else sorted(e["wrong_in_bug"])
        worst_fwd, ok_errs, wrong_errs = 0.0, [0.0], []
        for seed in SEEDS:
            fwd_err, errs = check_impl(c, m, canonical_problem(c, seed))
            wrong = sorted(k for k, v in errs.items() if bad(v))
            worst_fwd = max(worst_fwd, fwd_err)
            ok_errs += [v for v in errs.values() if not bad(v)]
            wrong_errs += [v for v in errs.values() if bad(v) and isinstance(v, float)]
            if fwd_err > FWD_TOL or wrong != expect:
                problems.append(
                    f"{variant}, seed {seed}: forward error {fwd_err:.2e}, "
                    f"wrong {wrong}, expected {expect}"
                )
            if verbose:
                lines += [f"      seed {seed} {k:<18} {v}" for k, v in errs.items()]
        tail = f"  min wrong err {min(wrong_errs):.1e}" if wrong_errs else ""
        lines.append(
            f"  {variant:<5} forward vs canonical {worst_fwd:.1e}  "
            f"wrong {expect or 'none'}  max ok err {max(ok_errs):.1e}{tail}"
        )
    return problems, lines


def main(argv):
    verbose = "-v" in argv
    only = [a for a in argv if not a.startswith("-")]
    manifest = json.loads((HERE / "manifest.json").read_text())
    ids = [e["id"] for e in manifest]
    problems = []
    if sorted(ids) != sorted(CASES) or len(set(ids)) != len(ids):
        problems.append(f"manifest ids {sorted(ids)} != drivers {sorted(CASES)}")
    listed = {f for e in manifest for f in e["bug_files"]}
    for f in sorted(set(BUG_PATCHES) - listed):
        problems.append(f"BUG_PATCHES lists {f}, which no manifest entry has")
    for e in manifest:
        if only and e["id"] not in only:
            continue
        c = CASES[e["id"]]
        found, lines = check_entry(e, c, verbose)
        problems += [f"{c.id}: {p}" for p in found]
        print(
            f"{'FAIL' if found else 'OK  '} {c.id:<20} {c.model} {c.form}, "
            f"{len(c.diff)} gradients, {len(SEEDS)} seeds"
        )
        for line in lines:
            print(line)
    print()
    if problems:
        print("FAILED:")
        for p in problems:
            print("  " + p)
        return 1
    n = len(only) if only else len(manifest)
    print(
        f"all {n} implementations OK: right versions agree with finite differences and the "
        "canonical model, bugs are wrong exactly where declared"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
