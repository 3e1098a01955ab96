"""What a user's names say: which argument is the input, the state, the upstream gradient or
the cache, which is a size, and which weight or bias of which gate a parameter's name means.

Names are evidence, never proof: the search (`search.py`) ranks its candidates by them and
decides by values. Everything here is data over the model's gate letters
(`ModelSpec.gate_names`), so a new model brings its own letters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..models.spec import ModelSpec

__all__ = ["data_role", "size_letter", "Facts", "facts", "is_dict_name", "gradient_key"]

#: Argument names of the data a call gets, by role (compared lower-case, without "_").
_DATA = {
    "x": "x xs inputs input xseq seq data xt xin inp x_t embeddings embeds batch sequence "
    "sequences xbatch inputsequence",
    "y": "y ys labels label targets target ytrue yt truth classes",
    "h": "h0 hinit hprev prevh hidden h a0 aprev s0 sprev init_h inith hprevt hx state htm1 "
    "prevstate hiddenstate initialstate hidden0 h_0 a_0 prevhidden ht1 hlast hstart",
    "c": "c0 cinit cprev prevc cell ctm1 cellstate c_0 prevcell cstart sprevc",
    "dh": "dh dout dhs dhout dhnext dnexth dhidden da dlda dldat delta dy douts doutputs "
    "gradh gradout gradoutput grad dldh dhidden dhtotal dht topdiffh dhseq dh_seq upstream "
    "dldy dah dldhs dlast dhts dhiddens",
    "dc": "dc dcn dnextc dcnext dcprev dctotal dct topdiffs",
    "cache": "cache caches ctx saved memory cachelist store",
}
_DATA_LOOKUP = {w.replace("_", ""): role for role, words in _DATA.items() for w in words.split()}

#: Size names, by the dimension letter they give.
_SIZES = {
    "D": "d inputsize inputdim indim nin nx infeatures inputdims xdim vocabsize ninputs dimin "
    "nfeatures numinputs inputs_dim embeddim embeddingdim",
    "H": "hiddensize hiddendim nout na hidden units unitcells nhidden memcellct hiddenunits "
    "numunits hdim statesize nh nhid hiddendims outdim ncell cellsize",
    "C": "c numclasses nclasses outputsize outputdim ny nclass classes vocab outsize nlabels",
    "N": "n batchsize nexamples m",
    "T": "t seqlen nsteps tx seqlength timesteps steps",
}
_SIZE_LOOKUP = {w: letter for letter, words in _SIZES.items() for w in words.split()}

#: Parameter names people give a dict of arrays (`parameters["Wf"]`).
_DICTS = frozenset(
    "parameters params param p weights theta model state_dict statedict ps pars w net cell "
    "variables vars".split()
)


def _plain(name: str) -> str:
    return name.lower().replace("_", "")


def data_role(name: str) -> str | None:
    """x, y, h (an initial or previous state), c, dh, dc, cache, or None for anything else."""
    return _DATA_LOOKUP.get(_plain(name))


def size_letter(name: str) -> str | None:
    """D, H, C, N or T when the name is a size's (input_size, hidden_dim, n_a, ...)."""
    return _SIZE_LOOKUP.get(_plain(name))


def is_dict_name(name: str) -> bool:
    return _plain(name) in _DICTS


@dataclass(frozen=True)
class Facts:
    """What a parameter's name says: a weight or a bias, of which gate (None: no gate named),
    acting on which input (x, h, out: the output layer's; None: not named)."""

    kind: str
    gates: frozenset
    sources: frozenset


#: Letters and words that name what a weight multiplies.
_SOURCES = {
    "x": ("x", "i", "in", "input", "ih", "xh", "ix", "k", "kernel"),
    "h": ("h", "hh", "a", "aa", "rec", "recurrent", "r", "hid", "hidden", "u"),
    "out": ("y", "hy", "ya", "ay", "o", "q", "hq", "ho", "out", "output", "yh", "v", "hv"),
}
_WORD = re.compile(r"[A-Za-z][a-z]*|\d+")


def gradient_key(key: str) -> str:
    """A returned gradient's key without its gradient prefix: dWf, d_Wf, grad_Wf -> Wf."""
    for prefix in ("grad_", "d_", "d"):
        if key.startswith(prefix) and len(key) > len(prefix):
            rest = key[len(prefix) :]
            if rest[:1].isalpha() and (prefix != "d" or rest[:1].isupper() or rest[:1] == "b"):
                return rest
    return key


def facts(name: str, model: ModelSpec) -> Facts | None:
    """What the name of a parameter (or of its gradient, dWf) says about it; None when it
    does not look like a weight or a bias at all."""
    gates = dict(model.gate_names) or {}
    raw = name.strip("_")
    lower = raw.lower()
    if lower.startswith(("bias", "b")) and not lower.startswith("batch"):
        kind = "bias"
        rest = raw[4:] if lower.startswith("bias") else raw[1:]
    elif lower.startswith(("weight", "kernel")):
        kind = "weight"
        rest = raw[6:]
    elif lower.startswith("recurrent_kernel"):
        return Facts("weight", frozenset(), frozenset({"h"}))
    elif raw[:1] in "WUVwuv":
        kind = "weight"
        rest = raw[1:]
    else:
        return None
    rest = rest.strip("_")
    letters = rest.replace("_", "").lower()
    found_gates: set[str] = set()
    found_sources: set[str] = set()
    if kind == "weight" and raw[:1] in "Vv" and not letters:
        found_sources.add("out")  # V: the output weights (Goodfellow's)
    if letters in ("lstm", "gru", "rnn", "all", "cat", "concat", "stack", "fused", ""):
        return Facts(kind, frozenset(), frozenset(found_sources))

    def gate_of(letter: str) -> set[str]:
        return {g for g, names in gates.items() if letter in names}

    # Each way to read the letters as (source, gate) or (gate, source) or one of them.
    for source, words in _SOURCES.items():
        if letters in words:
            found_sources.add(source)
    single = gate_of(letters) if len(letters) == 1 or letters in ("cand", "tilde") else set()
    found_gates |= single
    if len(letters) == 2:
        a, b = letters
        for s, g in ((a, b), (b, a)):
            if gate_of(g) and any(s in words[:4] for words in _SOURCES.values()):
                found_gates |= gate_of(g)
                found_sources |= {src for src, words in _SOURCES.items() if s in words[:4]}
    if not gates:  # a model without gates: the letters name sources only
        found_gates = set()
    return Facts(kind, frozenset(found_gates), frozenset(found_sources))
