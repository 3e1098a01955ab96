"""Conventions as data: how a user's arrays hold the model's, laid out and read back, saved and
read as TOML, declared on the command line, and found by the search for code written in any
of them (a hypothesis test re-arranges a correct implementation into a random convention)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symbptt.checking.check import check_gradients
from symbptt.checking.convention import Convention, parts_of
from symbptt.checking.conventionfile import load
from symbptt.checking.suggest import toml_text
from symbptt.checking.usercode import Calling
from symbptt.cli import main
from symbptt.errors import InvalidArgumentError, TargetError
from symbptt.models import GRU, LSTM, VANILLA
from symbptt.models.dims import Dims

DIMS = Dims(N=2, D=3, H=4, C=5, T=3)


# -- conventions as values ---------------------------------------------------------------------
def conventions(model) -> st.SearchStrategy[Convention]:
    """Random conventions the model can take."""
    gates = model.fused_gates
    letters = [k for k, _ in model.stacking]
    stacks = [None]
    if {"x", "h"} <= set(letters):
        stacks += ["hx", "xh"] + (["1xh", "hx1"] if "1" in letters else [])
    if "2" in letters:
        stacks += ["12"]

    def build(layout, sequence, bias, order, weights, stack, update, split):
        if split and stack and "1" in stack:
            return None  # one bias as two arrays, or as a row: not both
        conv = Convention(
            layout=layout,
            sequence=sequence,
            bias=bias,
            gates="".join(order) if order else None,
            weights=weights,
            stack=stack,
            update=update,
            split=split,
        )
        conv.validate_for(model)
        return conv

    return st.builds(
        build,
        st.sampled_from(["row", "column"]),
        st.sampled_from(["TNF", "NTF", "FNT", "TF"]),
        st.sampled_from(["F", "1F", "F1"]),
        st.permutations(list(gates)) if gates else st.none(),
        st.sampled_from(["fused", "per-gate"] if gates else ["fused"]),
        st.sampled_from(stacks),
        st.sampled_from(["prev", "new"] if model.complement_gate else ["prev"]),
        st.booleans() if "2" not in letters else st.just(False),
    ).filter(lambda c: c is not None)


@pytest.mark.parametrize("model", [VANILLA, LSTM.variant(c0="input"), GRU], ids=lambda m: m.name)
@settings(max_examples=40, deadline=None, derandomize=True)
@given(data=st.data())
def test_an_arrangement_lays_out_every_entry_once_and_reads_it_back(model, data):
    conv = data.draw(conventions(model))
    arrangement = conv.arrange(model, DIMS)
    point = model.random_point(DIMS, 3)
    user = arrangement.to_user(point)
    assert set(user) == set(parts_of(conv, model))
    for part, value in user.items():
        assert np.shape(value) == arrangement.call_shape(part)
    back = arrangement.to_model(user)
    for name, value in point.items():
        if name != "y":
            np.testing.assert_allclose(back[name], value, err_msg=name)
    # Gradients map like values (a signed permutation); a split bias's halves each get the
    # bias's gradient, while their values add up to the bias.
    grads = arrangement.to_user(point, gradients=True)
    for part, array in arrangement.arrays.items():
        if array.half == "ih":
            np.testing.assert_allclose(grads[part], user[part] + array.shift)
        elif array.half == "hh":
            np.testing.assert_allclose(grads[part], grads[part.replace("_hh", "_ih", 1)])
        elif array.ids is not None:
            np.testing.assert_allclose(grads[part], user[part])


@pytest.mark.parametrize("model", [VANILLA, LSTM.variant(c0="input"), GRU], ids=lambda m: m.name)
@settings(max_examples=25, deadline=None, derandomize=True)
@given(data=st.data())
def test_a_convention_round_trips_through_its_toml_file(model, data, tmp_path_factory):
    conv = data.draw(conventions(model))
    names = {p: f"u{k}" for k, p in enumerate(parts_of(conv, model)) if data.draw(st.booleans())}
    conv = replace(conv, names=names)
    form = data.draw(st.sampled_from(["full", "layer"]))
    calling = Calling(form=form, model=model, arrays=conv, declared=True)
    path = tmp_path_factory.mktemp("conv") / "conv.toml"
    path.write_text(toml_text(calling))
    loaded = load(path)
    assert loaded.arrays.settled(model) == conv.settled(model)
    assert loaded.model.describe() == model.describe() and loaded.form == form


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(layout="diagonal"), "layout='diagonal' must be one of row, column"),
        (dict(sequence="TNX"), "has 'X'; its letters are"),
        (dict(sequence="TTF"), "names the axis T twice"),
        (dict(sequence="NF"), "has no T axis"),
        (dict(sequence="TF", state="NF"), "either both have the batch axis N or neither"),
        (dict(bias="FF"), "bias='FF' must be one of"),
        (dict(weights="split"), "weights='split' must be one of fused, per-gate"),
        (dict(stack="hxq"), "must order two or more of x, h, 1 and 2"),
        (dict(update="old"), "update='old' must be one of prev, new"),
        (dict(gates="iifo"), "must name each gate once"),
    ],
)
def test_a_bad_convention_is_one_sentence(fields, message):
    with pytest.raises(InvalidArgumentError, match=message):
        Convention(**fields)


@pytest.mark.parametrize(
    "model, fields, message",
    [
        (LSTM, dict(gates="rzn"), "does not order the LSTM's gates"),
        (VANILLA, dict(weights="per-gate"), "the vanilla RNN has no gates"),
        (VANILLA, dict(update="new"), "the GRU's other update convention"),
        (GRU, dict(split=True), "has two biases already"),
        (LSTM, dict(stack="12"), "stacks only"),
        (LSTM, dict(names={"W_y": "Why"}), "names renames 'W_y', which is not one of the arrays"),
    ],
)
def test_a_convention_the_model_cannot_take_is_one_sentence(model, fields, message):
    with pytest.raises(InvalidArgumentError, match=message):
        Convention(**fields).validate_for(model)


def test_a_bad_convention_file_is_one_sentence(tmp_path):
    path = tmp_path / "conv.toml"
    for text, message in [
        ("[arrays\n", "is not valid TOML"),
        ("[model]\nname = 'lstm'\n[arrays]\nlayuot = 'row'\n", "unknown key 'layuot'"),
        ("[modle]\nname = 'lstm'\n", "unknown section \\[modle\\]"),
        ("[model]\nname = 'transformer'\n", "name='transformer' must be one of rnn, lstm, gru"),
        ("[model]\nname = 'rnn'\ngate_order = 'ifgo'\n", "gate_order is an option of the lstm"),
        ("[model]\nname = 'lstm'\nform = 'half'\n", "form='half' must be full or layer"),
    ]:
        path.write_text(text)
        with pytest.raises(InvalidArgumentError, match=message):
            load(path)
    with pytest.raises(InvalidArgumentError, match="no such convention file"):
        load(tmp_path / "missing.toml")


# -- the command line ------------------------------------------------------------------------
CORPUS = Path(__file__).resolve().parent / "check_corpus"


def _cli(capsys, monkeypatch, *argv) -> tuple[int, dict, str]:
    monkeypatch.chdir(CORPUS)
    code = main([*argv, "--json", "--examples", "10"])
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    return code, (json.loads(lines[-1]) if lines else {}), captured.err


def test_a_grader_writes_the_convention_once_and_grades_with_it(capsys, monkeypatch, tmp_path):
    target = "time_layers.py:TimeLSTM"
    code, record, _ = _cli(capsys, monkeypatch, "check", target, "--model", "lstm")
    assert code == 2
    argv = record["suggestion"]["argv"]
    saved = tmp_path / "assignment.toml"
    code, record, err = _cli(capsys, monkeypatch, *argv, "--write-convention", str(saved))
    assert code == 0 and saved.is_file() and "wrote the convention" in err
    # Written once, it is never overwritten without --force.
    code, _, err = _cli(capsys, monkeypatch, *argv, "--write-convention", str(saved))
    assert code == 2 and "use --force" in err
    # Graded with it: the right one is right, the buggy one WRONG under that convention.
    code, record, _ = _cli(capsys, monkeypatch, "check", target, "--convention", str(saved))
    assert code == 0, record
    code, record, _ = _cli(
        capsys, monkeypatch, "check", "time_layers_bug.py:TimeLSTM", "--convention", str(saved)
    )
    wrong = {r.get("user") or r["name"] for r in record["results"] if r["status"] == "WRONG"}
    # (i and g swapped in the backward: every gradient but the unreturned c0's)
    assert code == 1 and wrong == {"Wx", "Wh", "b", "x", "h0"}, record


def test_a_grader_s_convention_reports_another_gate_order_without_passing_it(
    capsys, monkeypatch, tmp_path
):
    """A student whose LSTM is right for gates f, g, i, o, graded under i, f, o, g: WRONG,
    with the order under which it would be right in a note."""
    saved = tmp_path / "ifog.toml"
    saved.write_text(
        "[model]\nname = 'lstm'\nform = 'layer'\nc0 = 'input'\n"
        "[arrays]\nlayout = 'row'\nsequence = 'NTF'\ngates = 'ifog'\n"
        "[names]\nW_x = 'Wx'\nW_h = 'Wh'\n"
    )
    code, record, _ = _cli(
        capsys, monkeypatch, "check", "time_layers.py:TimeLSTM", "--convention", str(saved)
    )
    assert code == 1 and not record["ok"], record
    assert any("gates in the order f, g, i, o" in n for n in record["notes"]), record["notes"]


def test_auto_checks_under_the_convention_found_and_says_so(capsys, monkeypatch):
    code, record, _ = _cli(
        capsys,
        monkeypatch,
        "check",
        "cmu_gru_cell.py:GRUCell",
        "--model",
        "gru",
        "--convention",
        "auto",
    )
    assert code == 0, record
    assert any("checked under the convention the search found" in n for n in record["notes"])
    assert record["suggestion"]["argv"][:2] == ["check", "cmu_gru_cell.py:GRUCell"]


def test_convention_options_are_one_declaration(capsys):
    code = main(["check", "x.py:f", "--convention", "auto", "--gates", "ifog"])
    assert code == 2 and "--convention auto declares the convention" in capsys.readouterr().err
    code = main(["check", "x.py:f", "--batch-first", "--sequence", "TNF"])
    assert code == 2 and "--batch-first is --sequence NTF" in capsys.readouterr().err
    code = main(["check", "x.py:f", "--sequence", "TXF"])
    assert code == 2 and "has 'X'" in capsys.readouterr().err


def test_a_python_caller_declares_a_convention_as_a_value():
    import sys

    sys.path.insert(0, str(CORPUS))
    try:
        report = check_gradients(
            str(CORPUS / "cmu_gru_cell.py") + ":GRUCell",
            model=GRU,
            form="layer",
            convention=Convention(
                layout="column",
                sequence="TF",
                bias="F",
                weights="per-gate",
                names={
                    f"{w}.{g}": f"{w[0]}{g}{w[2]}".replace("_", "")
                    for w in ("W_x", "W_h")
                    for g in "rzn"
                }
                | {f"{b}.{g}": f"b{g}{b[2]}" for b in ("b_x", "b_h") for g in "rzn"},
            ),
            max_examples=10,
        )
    finally:
        sys.path.remove(str(CORPUS))
    assert report.ok, report.to_dict()
    assert {r.user for r in report.results if r.user} >= {"Wrx", "bnh"}


def test_code_that_fits_no_convention_is_wrong_under_the_closest_never_a_usage_error(
    capsys, monkeypatch
):
    code, record, _ = _cli(
        capsys, monkeypatch, "check", "keras_gru_bug.py:gru_forward,gru_backward", "--model", "gru"
    )
    assert code == 1 and record["convention"], record
    assert any("no convention makes it right" in n for n in record["notes"])


def test_the_fitting_command_is_the_exit_2_line(capsys, monkeypatch):
    code, record, err = _cli(capsys, monkeypatch, "check", "rnn_col.py:rnn_forward,rnn_backward")
    assert code == 2 and err.count("\n") == 1
    assert "symbptt check rnn_col.py:rnn_forward,rnn_backward" in err
    assert record["suggestion"]["argv"][0] == "check"
    with pytest.raises(TargetError) as raised:
        check_gradients(str(CORPUS / "rnn_col.py") + ":rnn_forward,rnn_backward", max_examples=5)
    assert raised.value.suggestion["argv"][0] == "check"


# -- the search finds any convention -------------------------------------------------------------
#: How the generated code names each part: names the search reads (Wxf: the input's weight of
#: gate f; bhr: the state-side bias of gate r), never the parts' own.
def _user_name(part: str) -> str:
    head, _, gate = part.partition(".")
    if gate and head in ("b_ih", "b_hh"):  # PyTorch's per-gate biases: b_if, b_hf
        return f"b_{head[2]}{gate}"
    base = {
        "W_x": "Wx",
        "W_h": "Wh",
        "b": "b",
        "b_x": "bx",
        "b_h": "bh",
        "W": "W",
        "B": "bias",
        "b_ih": "b_ih",
        "b_hh": "b_hh",
        "V": "Wy",
        "c": "by",
        "b_y": "by",
    }[head]
    return base + gate


_LAYER_CODE = """
import json
import numpy as np
from symbptt.checking.convention import Convention
from symbptt.models import MODELS
from symbptt.models.dims import Dims

MODEL = MODELS[{model!r}].variant(**json.loads({options!r}))
CONV = Convention.from_dict(json.loads({conv!r}))
PARTS = json.loads({parts!r})  # user name -> part
BROKEN = {broken!r}


def _dims(x, h0):
    xs = dict(zip(CONV.sequence, x.shape))
    hs = dict(zip(CONV.state_axes, h0.shape))
    return Dims(N=xs.get("N", 1), D=xs["F"], H=hs["F"], C=2, T=xs["T"])


def forward({args}):
    arrays = dict(zip({names!r}, [{args}]))
    return None, arrays


def backward(dh, cache):
    user = {{PARTS[k]: v for k, v in cache.items()}}
    user["dh"] = dh
    one = "N" not in CONV.sequence
    if one:
        user = {{k: (v[None] if k in ("x", "h0", "c0", "dh") else v) for k, v in user.items()}}
    dims = _dims(cache["x"], cache["h0"])
    from symbptt.models.spec import Input
    arrangement = CONV.arrange(MODEL, dims, (Input("dh", ("T", "N", "H"), "upstream"),))
    model_arrays = arrangement.to_model(user)
    _, grads = MODEL.truth(model_arrays, "layer")
    laid = arrangement.to_user(grads, gradients=True)
    out = {{}}
    for name, part in PARTS.items():
        if part in laid:
            value = laid[part][0] if one and part in ("x", "h0", "c0") else laid[part]
            out["d" + name] = value * (1.1 if name == BROKEN else 1.0)
    return out
"""


@pytest.mark.parametrize("model", [VANILLA, LSTM.variant(c0="input"), GRU], ids=lambda m: m.name)
@settings(max_examples=8, deadline=None, derandomize=True)
@given(data=st.data())
def test_the_search_finds_a_random_convention_and_a_bug_stays_wrong(model, data, tmp_path_factory):
    import time

    from symbptt.checking import search as finder
    from symbptt.checking.isolation import Limits, Worker

    conv = data.draw(conventions(model))
    layer = [p for p in parts_of(conv, model) if p not in ("y", "V", "c", "b_y")]
    names = {p: (p if p in ("x", "h0", "c0") else _user_name(p)) for p in layer}
    conv = replace(conv, names={p: u for p, u in names.items() if p not in ("x", "h0", "c0")})
    args = ", ".join(names.values())
    folder = tmp_path_factory.mktemp("code")
    broken = next(u for p, u in names.items() if p not in ("x", "h0", "c0"))
    for label, bug in (("right", None), ("wrong", broken)):
        source = _LAYER_CODE.format(
            model=model.name,
            options=json.dumps(
                {
                    k: v
                    for k, v in model.options.as_dict().items()
                    if k in model.choices or k == "c0"
                }
                if model.name == "lstm"
                else {}
            ),
            conv=json.dumps(conv.as_dict()),
            parts=json.dumps({u: p for p, u in names.items()}),
            broken=bug,
            args=args,
            names=list(names.values()),
        )
        path = folder / f"{label}.py"
        path.write_text(source)
        worker = Worker.for_target(
            f"{path}:forward,backward", limits=Limits(), adapter={"kind": "plan"}
        )
        try:
            assert worker.load() is None
            found = finder.search(
                worker,
                [o["name"] for o in worker.objects],
                [path],
                model,
                "layer",
                deadline=time.monotonic() + 60,
                targets=2,
            )
        finally:
            worker.close()
        if bug is None:
            assert found.fits, (conv, found.errors[:3])
            point = model.random_point(DIMS, 5)
            mine = conv.arrange(model, DIMS).to_user(point)
            theirs = found.best.calling.arrays.arrange(found.best.calling.model, DIMS).to_user(
                point
            )
            by_name = {found.best.calling.user_name(p): v for p, v in theirs.items()}
            for part, value in mine.items():
                if part in names:
                    np.testing.assert_allclose(by_name[names[part]], value, err_msg=part)
        else:
            assert not found.fits, conv
