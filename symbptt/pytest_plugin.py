"""pytest plugin (registered through the `pytest11` entry point when symbptt is installed).

Adds the `bptt_check` fixture, which is `symbptt.testing.assert_bptt_correct`::

    def test_my_rnn(bptt_check):
        bptt_check(my_rnn.loss_and_grads, layout="column", names={"W_h": "Whh"})

and the `--symbptt-examples N` option, which sets how many random problems each check tries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .checking.report import Report


def _examples(text: str) -> int:
    """A positive whole number of examples, or a one-line usage error from pytest."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("symbptt")
    group.addoption(
        "--symbptt-examples",
        type=_examples,
        default=None,
        help="random problems each bptt_check tries (default 100)",
    )


@pytest.fixture
def bptt_check(request: pytest.FixtureRequest) -> Callable:
    """Check a BPTT function on random shapes; fail the test with symbptt's report if wrong."""
    from .testing import assert_bptt_correct

    examples = request.config.getoption("--symbptt-examples")

    def run(fn: Callable | str, **options) -> Report:
        if examples is not None:
            options.setdefault("max_examples", examples)
        return assert_bptt_correct(fn, **options)

    return run
