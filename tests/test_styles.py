"""Checking code as people write it (issue 9): char-RNN scripts, forward/backward pairs,
declared clipping and truncation, usage errors that are not verdicts, shape findings and the
numerical robustness probe. Every program is in tests/style_corpus.py; every verdict is
judged against the independent NumPy reference (through the checker) with default settings.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import style_corpus
from hypothesis import given, settings
from hypothesis import strategies as st

from symbptt import reference
from symbptt.checking import worker
from symbptt.checking.check import check_gradients
from symbptt.cli import main
from symbptt.errors import InvalidArgumentError, TargetError


def _check(tmp_path, capsys, name, *args, function=None):
    """Run `symbptt check` on corpus program `name`: (exit status, JSON report)."""
    path = style_corpus.write(tmp_path, name)
    function = (
        function
        or {
            "char": "lossFun",
            "layers": "rnn_forward,rnn_backward",
            "tutorial": "bptt",
            "full": "loss_and_grads",
        }[name.split("_")[0]]
    )
    status = main(["check", f"{path}:{function}", "--json", "--examples", "40", *args])
    out = capsys.readouterr()
    record = json.loads(out.out.strip().splitlines()[-1]) if out.out.strip() else {}
    return status, record, out.err


def _result(record, name):
    return next(r for r in record["results"] if r["name"] == name)


# -- the char-RNN script, unmodified -------------------------------------------------------------
def test_a_char_rnn_script_is_right_with_its_clipping_declared(tmp_path, capsys):
    status, record, _ = _check(
        tmp_path, capsys, "char_rnn", "--style", "char-rnn", "--defs-only", "--clip", "5"
    )
    assert status == 0, record
    assert record["style"] == "char-rnn" and record["layout"] == "column"
    assert any("declared clipping to ±5 changed" in n for n in record["notes"])
    # lossFun returns the last hidden state, not dL/dhprev: h0 is not listed at all.
    assert [r["name"] for r in record["results"]] == ["W_x", "W_h", "b", "V", "c", "loss"]
    assert not any("not checked" in n for n in record["notes"])


def test_undeclared_clipping_is_wrong_and_named(tmp_path, capsys):
    status, record, _ = _check(
        tmp_path, capsys, "char_rnn", "--style", "char-rnn", "--defs-only", "--examples", "100"
    )
    assert status == 1
    clipped = [r for r in record["results"] if r["status"] == "WRONG"]
    assert clipped and all(r["likely_cause"] == "clipped" for r in clipped)
    assert all(r["cause_detail"].startswith("at ±5") for r in clipped)


def test_a_backward_pass_that_forgets_hprev_is_wrong_in_dWhh_only(tmp_path, capsys):
    status, record, _ = _check(
        tmp_path, capsys, "char_rnn_zero_start", "--style", "char-rnn", "--defs-only",
        "--clip", "5",
    )  # fmt: skip
    assert status == 1
    assert _result(record, "W_h")["status"] == "WRONG"
    assert _result(record, "W_h")["likely_cause"] == "zero_initial_state"
    assert _result(record, "loss")["status"] == "OK"
    assert _result(record, "W_x")["status"] == "OK"


def test_h_t_where_h_t_minus_1_belongs_is_named(tmp_path, capsys):
    status, record, _ = _check(
        tmp_path, capsys, "char_rnn_h_t", "--style", "char-rnn", "--defs-only", "--clip", "5"
    )
    assert status == 1
    assert _result(record, "W_h")["likely_cause"] == "h_t_for_h_prev"


def test_renamed_globals(tmp_path, capsys):
    status, record, _ = _check(
        tmp_path, capsys, "char_rnn_renamed", "--style", "char-rnn", "--defs-only",
        "--clip", "5", "--names", "W_x=U,W_h=W,V=V", "--globals", "n_chars=D",
    )  # fmt: skip
    assert status == 0, record


def test_a_training_script_without_defs_only_says_how_to_import_it(tmp_path, capsys):
    status, record, _ = _check(tmp_path, capsys, "char_rnn", "--style", "char-rnn", "--clip", "5")
    assert status == 1
    assert "input.txt" in record["error"] and "--defs-only" in record["error"]


def test_a_lossFun_returning_too_little_is_a_usage_error(tmp_path, capsys):
    status, _, err = _check(
        tmp_path, capsys, "char_rnn_short", "--style", "char-rnn", "--defs-only"
    )
    assert status == 2
    assert "expects lossFun to return (loss, dWxh, dWhh, dWhy, dbh, dby, hlast)" in err


@settings(max_examples=20, deadline=None, derandomize=True)
@given(
    vocab=st.integers(2, 6),
    hidden=st.integers(1, 4),
    T=st.integers(1, 6),
    N=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_the_char_rnn_adapter_over_random_vocabularies_and_lengths(vocab, hidden, T, N, seed):
    """The adapter around the example lossFun (one sequence per call, globals set each time)
    equals the reference on the whole batch, with the example's clipping left out of reach."""
    namespace: dict = {"__name__": "char_rnn_example"}
    exec(worker.definitions_only(style_corpus.CHAR_RNN, "char_rnn.py"), namespace)
    names = ["Wxh", "Whh", "Why", "bh", "by"]
    adapter = worker.CharRNN(namespace["lossFun"], namespace, names, {"vocab_size": "D"})
    rng = np.random.default_rng(seed)
    x = rng.integers(0, vocab, (T, N))
    y = rng.integers(0, vocab, (T, N))
    h0 = rng.uniform(-0.5, 0.5, (N, hidden))
    row = {
        "W_x": 0.1 * rng.standard_normal((vocab, hidden)),
        "W_h": 0.1 * rng.standard_normal((hidden, hidden)),
        "b": 0.1 * rng.standard_normal(hidden),
        "V": 0.1 * rng.standard_normal((hidden, vocab)),
        "c": 0.1 * rng.standard_normal(vocab),
    }
    column = {"Wxh": row["W_x"].T, "Whh": row["W_h"].T, "Why": row["V"].T}
    column |= {"bh": row["b"][:, None], "by": row["c"][:, None]}
    loss, grads = adapter(x=x, y=y, h0=h0, **column)
    truth_loss, truth = reference.forward_backward_dict(
        {"x": x, "y": y, "h0": h0, **row}, inputs="tokens"
    )
    assert max(np.abs(v).max() for v in truth.values()) < 5  # the clip never acts here
    np.testing.assert_allclose(loss, truth_loss, rtol=1e-10)
    for name, g in zip(["W_x", "W_h", "V", "b", "c"], grads):
        want = truth[name].T if name in ("W_x", "W_h", "V") else truth[name][:, None]
        np.testing.assert_allclose(g, want, rtol=1e-9, atol=1e-12)


def test_definitions_only_runs_no_top_level_work():
    code = worker.definitions_only(
        "import math\nN = 2 * 3\nA = -1.5\ndata = open('missing.txt').read()\n"
        "while True:\n    pass\ndef f():\n    return N\nclass C:\n    pass\n"
    )
    namespace: dict = {}
    exec(code, namespace)
    assert namespace["f"]() == 6 and namespace["A"] == -1.5 and "data" not in namespace


# -- forward/backward pairs ---------------------------------------------------------------------
def test_a_cs231n_pair_is_right_batch_first(tmp_path, capsys):
    status, record, _ = _check(tmp_path, capsys, "layers", "--form", "layer", "--batch-first")
    assert status == 0, record
    assert record["style"] == "pair" and record["batch_first"] is True
    assert all("C=" not in r["shape"] for r in record["results"])


def test_a_pair_without_its_batch_first_is_a_usage_error_with_the_fix(tmp_path, capsys):
    status, _, err = _check(tmp_path, capsys, "layers", "--form", "layer")
    assert status == 2
    assert "check it with batch_first=True (--batch-first)" in err


def test_the_step_pair(tmp_path, capsys):
    status, record, _ = _check(
        tmp_path, capsys, "layers", "--form", "layer", function="rnn_step_forward,rnn_step_backward"
    )
    assert status == 0, record
    assert record["dims"] is None or record["dims"]["T"] == 1


def test_a_pair_with_a_missing_transpose_is_wrong_and_named(tmp_path, capsys):
    status, record, _ = _check(
        tmp_path, capsys, "layers_untransposed", "--form", "layer", "--batch-first"
    )
    assert status == 1
    assert _result(record, "W_h")["likely_cause"] == "untransposed_recurrence"


def test_a_pair_needs_the_layer_form(tmp_path, capsys):
    status, _, err = _check(tmp_path, capsys, "layers")
    assert status == 2 and "--form layer" in err


def test_a_pair_of_callables_from_python():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "rnn_layers", style_corpus.EXAMPLES / "rnn_layers.py"
    )
    layers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(layers)
    report = check_gradients(
        (layers.rnn_forward, layers.rnn_backward), form="layer", batch_first=True, max_examples=20
    )
    assert report.ok, report.to_dict()


# -- a tutorial RNN: no biases, truncated BPTT -------------------------------------------------
def test_a_tutorial_rnn_with_its_variant_declared(tmp_path, capsys):
    declared = ["--no-bias", "b", "--no-bias", "c", "--truncate", "2"]
    status, record, _ = _check(tmp_path, capsys, "tutorial", *declared)
    assert status == 0, record


def test_truncation_declared_as_full_bptt_is_wrong_and_named(tmp_path, capsys):
    status, record, _ = _check(tmp_path, capsys, "tutorial", "--no-bias", "b", "--no-bias", "c")
    assert status == 1
    assert _result(record, "W_h")["likely_cause"] == "truncated"
    assert "2 steps" in _result(record, "W_h")["cause_detail"]


# -- shapes, clipping by norm, usage errors, the probe -----------------------------------------
def test_a_row_bias_gradient_is_a_finding_of_its_own(tmp_path, capsys):
    status, record, _ = _check(tmp_path, capsys, "full_row_bias", "--no-probe")
    assert status == 1
    b = _result(record, "b")
    assert b["status"] == "WRONG" and b["likely_cause"] == "singleton_axes"
    assert "its values are right" in b["message"] and "axes of size 1" in b["message"]
    status, record, _ = _check(
        tmp_path, capsys, "full_row_bias", "--no-probe", "--allow-broadcast-shapes"
    )
    assert status == 0, record


def test_clipping_by_norm_declared_and_not(tmp_path, capsys):
    status, record, _ = _check(tmp_path, capsys, "full_clip_norm", "--clip-norm", "1")
    assert status == 0, record
    status, record, _ = _check(tmp_path, capsys, "full_clip_norm", "--no-probe")
    assert status == 1


@pytest.mark.parametrize(
    "name, where",
    [("full_exp_tanh", "pre-activations in the thousands"), ("full_unshifted_softmax", "logits")],
)
def test_overflow_on_saturated_inputs_is_its_own_finding(tmp_path, capsys, name, where):
    status, record, _ = _check(tmp_path, capsys, name)
    assert status == 4, record
    assert where in record["overflow"]
    assert all(r["status"] == "OK" for r in record["results"])


def test_the_plain_function_passes_the_probe(tmp_path, capsys):
    status, record, _ = _check(tmp_path, capsys, "full_right")
    assert status == 0 and record["overflow"] is None


def test_a_tuple_without_an_order_is_a_usage_error(tmp_path, capsys):
    status, _, err = _check(tmp_path, capsys, "full_tuple", "--no-probe")
    assert status == 2 and "declare their order" in err
    status, record, _ = _check(
        tmp_path, capsys, "full_tuple", "--no-probe", "--order", "W_x,W_h,b,V,c,h0,x"
    )
    assert status == 0, record


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(style="char-rnn", form="layer"), "leave form='full'"),
        (dict(style="char-rnn", batch_first=True), "batch_first"),
        (dict(style="char-rnn", order=("W_x",)), "order"),
        (dict(style="char-rnn", globals={"seq": "N"}), "sizes are D, H, C, T"),
        (dict(globals={"seq": "D"}), "use them with style='char-rnn'"),
        (dict(style="lstm"), "style='lstm' must be one of"),
        (dict(clip=5, clip_norm=1), "not both"),
        (dict(clip=-1), "clip=-1 must be a positive number"),
    ],
    ids=["form", "batch first", "order", "size letter", "globals", "style", "both", "negative"],
)
def test_style_options_are_one_sentence(options, message):
    with pytest.raises((InvalidArgumentError, TargetError), match=message):
        check_gradients(lambda *a: None, isolate=False, **options)


# -- the small things ---------------------------------------------------------------------------
def test_every_option_of_every_command_has_help():
    import argparse

    from symbptt.cli import _parser

    parser = _parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [
        f"{name} {'/'.join(action.option_strings) or action.dest}"
        for name, sub in commands.choices.items()
        for action in sub._actions
        if not isinstance(action, argparse._HelpAction) and not action.help
    ]
    assert missing == []


def test_the_readmes_python_snippet_runs_as_printed(monkeypatch):
    import re

    readme = (style_corpus.EXAMPLES.parent / "README.md").read_text()
    snippets = re.findall(r"```python\n(.*?)```", readme, re.S)
    snippet = next(s for s in snippets if "check_gradients(" in s)
    monkeypatch.chdir(style_corpus.EXAMPLES.parent)
    namespace: dict = {}
    exec(snippet.replace("report.render()", ""), namespace)
    assert namespace["report"].ok, namespace["report"].to_dict()


def test_header_counts_read_as_english():
    from rich.console import Console

    from symbptt.checking.report import Report

    console = Console(record=True, width=200)
    Report(ok=True, form="layer", layout="row", examples=1).render(console)
    text = console.export_text()
    assert "1 example)" in text and "0 shapes" not in text


def test_definitions_only_reads_a_python_2_training_script():
    source = (
        "import numpy as np\n"
        "data = open('input.txt').read()\n"
        "print 'data has %d characters' % len(data)\n"
        "hidden_size = 100\n"
        "def lossFun(inputs, targets, hprev):\n"
        "  return hidden_size\n"
        "while True:\n"
        "  print 'iter'\n"
    )
    namespace: dict = {}
    exec(worker.definitions_only(source, "min_char_rnn.py"), namespace)
    assert namespace["lossFun"]([], [], None) == 100 and "data" not in namespace


# -- found in review: what short random problems cannot show, and what must not be blamed ------
def test_undeclared_clipping_is_caught_without_the_probe(tmp_path, capsys):
    status, record, _ = _check(
        tmp_path, capsys, "char_rnn", "--style", "char-rnn", "--defs-only", "--no-probe"
    )
    assert status == 1
    assert any(r["likely_cause"] == "clipped" for r in record["results"])


def test_a_declared_clip_the_code_does_not_apply_is_named(tmp_path, capsys):
    status, record, _ = _check(tmp_path, capsys, "full_right", "--clip", "1", "--no-probe")
    assert status == 1
    causes = {r["likely_cause"] for r in record["results"] if r["status"] == "WRONG"}
    assert causes == {"clip_not_applied"}


def test_truncation_at_depth_4_is_not_full_bptt(tmp_path, capsys):
    status, record, _ = _check(tmp_path, capsys, "tutorial_k4", "--no-bias", "b", "--no-bias", "c")
    assert status == 1
    assert _result(record, "W_h")["likely_cause"] == "truncated"
    status, record, _ = _check(
        tmp_path, capsys, "tutorial_k4", "--no-bias", "b", "--no-bias", "c", "--truncate", "4"
    )
    assert status == 0, record


def test_a_swapped_dx_is_wrong_not_a_usage_error(tmp_path, capsys):
    status, record, _ = _check(tmp_path, capsys, "full_dx_swapped", "--no-probe")
    assert status == 1
    assert _result(record, "x")["likely_cause"] == "batch_time_swapped"


def test_an_epsilon_in_the_log_is_not_an_overflow(tmp_path, capsys):
    status, record, _ = _check(tmp_path, capsys, "full_eps_log")
    assert status == 0, record


def test_gradient_buffers_reused_across_calls(tmp_path, capsys):
    status, record, _ = _check(
        tmp_path, capsys, "char_rnn_buffers", "--style", "char-rnn", "--defs-only", "--clip", "5"
    )
    assert status == 0, record


def test_seq_length_is_set_to_each_sequence(tmp_path, capsys):
    args = ["--style", "char-rnn", "--defs-only", "--clip", "5"]
    status, record, _ = _check(tmp_path, capsys, "char_rnn_seq_length", *args)
    assert status == 1  # it reads a seq_length of 16 from the script
    status, record, _ = _check(
        tmp_path, capsys, "char_rnn_seq_length", *args, "--globals", "seq_length=T"
    )
    assert status == 0, record


def test_script_names_as_keys_and_unknown_ones(tmp_path, capsys):
    status, record, _ = _check(
        tmp_path, capsys, "char_rnn_renamed", "--style", "char-rnn", "--defs-only",
        "--clip", "5", "--names", "Wxh=U,Whh=W,Why=V", "--globals", "n_chars=D",
    )  # fmt: skip
    assert status == 0, record
    status, _, err = _check(tmp_path, capsys, "char_rnn", "--style", "char-rnn", "--names", "Wq=U")
    assert status == 2 and "not a weight of a char-rnn lossFun" in err


def test_a_lossFun_that_does_not_parse_is_named(tmp_path, capsys):
    status, record, _ = _check(
        tmp_path, capsys, "char_rnn_py2_inside", "--style", "char-rnn", "--defs-only"
    )
    assert status == 1 and "lossFun does not parse (line" in record["error"]


def test_step_pairs_are_told_by_the_words_of_their_names(tmp_path, capsys):
    cell = "rnn_cell_forward,rnn_cell_backward"
    status, record, _ = _check(tmp_path, capsys, "layers_renamed", "--form", "layer", function=cell)
    assert status == 0, record
    sequence = "forward_all_steps,backward_all_steps"
    status, record, _ = _check(
        tmp_path, capsys, "layers_renamed", "--form", "layer", "--batch-first", function=sequence
    )
    assert status == 0, record


def test_a_tuple_in_another_order_than_declared_is_a_usage_error(tmp_path, capsys):
    status, _, err = _check(
        tmp_path, capsys, "full_tuple", "--no-probe", "--order", "W_h,W_x,b,V,c,h0,x"
    )
    assert status == 2 and "in the order W_x,W_h,b,V,c,h0,x" in err
