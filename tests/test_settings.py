"""The declared values of a check (`Deviations`, `Limits`): each refuses a bad field in one
sentence, and check_gradients takes them in place of the keywords they hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from symbptt import Deviations, Limits, Tolerance, check_gradients
from symbptt.errors import InvalidArgumentError

PAIR = str(Path(__file__).parents[1] / "examples" / "rnn_layers.py") + ":rnn_forward,rnn_backward"


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: Deviations(clip=-1.0), "clip=-1.0 must be a positive number"),
        (lambda: Deviations(clip=1.0, clip_norm=2.0), "one of clip and clip_norm"),
        (lambda: Deviations(only="W_h"), "non-empty sequence of names"),
        (lambda: Deviations(precision="float8"), "precision='float8'"),
        (lambda: Deviations(tolerances={"int8": Tolerance(1e-3, 1e-3)}), "keys are dtypes"),
        (lambda: Deviations(probe="yes"), "probe='yes' must be True or False"),
        (lambda: Limits(timeout=0), "timeout=0 must be a positive number of seconds"),
        (lambda: Limits(memory_mb=8), "memory_mb=8"),
        (lambda: Limits(forbid_imports=("numpy",)), "numpy cannot be forbidden"),
        (lambda: Limits(forbid_imports="torch"), "sequence of top-level module names"),
    ],
)
def test_a_bad_field_is_refused_in_one_sentence(make, words):
    with pytest.raises(InvalidArgumentError, match=words.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_the_values_are_frozen():
    with pytest.raises(AttributeError):
        Deviations().probe = False  # type: ignore[misc]
    with pytest.raises(AttributeError):
        Limits().timeout = 1.0  # type: ignore[misc]


def test_check_gradients_takes_the_values_in_place_of_their_keywords():
    report = check_gradients(
        PAIR,
        batch_first=True,
        deviations=Deviations(only=("W_h", "W_x"), probe=False),
        limits=Limits(timeout=20.0, total_timeout=120.0),
        max_examples=5,
    )
    assert report.ok, report
    status = {r.name: r.status for r in report.results}
    assert status["W_h"] == status["W_x"] == "OK"


def test_a_keyword_beside_its_value_is_refused_before_any_call():
    with pytest.raises(InvalidArgumentError, match="probe given both"):
        check_gradients("nowhere.py:f", deviations=Deviations(probe=False), probe=False)
    with pytest.raises(InvalidArgumentError, match="timeout given both"):
        check_gradients("nowhere.py:f", limits=Limits(timeout=2.0), timeout=3.0)
    with pytest.raises(InvalidArgumentError, match="must be a Limits"):
        check_gradients("nowhere.py:f", limits={"timeout": 2.0})
