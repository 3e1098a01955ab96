"""The audit on twenty-eight derivations written for this project in the styles people publish
(course notes, a textbook chapter, blog posts, notebooks, slides, a Q&A answer, a paper
appendix, a homework solution, a cheat sheet, scribe notes, a lab; vanilla, sigmoid, ReLU,
Elman, linear with an abstract loss, two layers, two biases, LSTM and GRU in several
notations; ten of them a held-out probe first run unseen), each judged as written
against its own truth (tests/audit_corpus/*.truth.json, every verdict checked by finite
differences in tests/audit_corpus/verify/, independently of symbptt).

A line's verdict is compared with the truth's: every planted mistake must be found, no
right line may be called wrong, and every line that states a claim must be read, but for
the few the reader does not read on purpose (listed below with why).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from symbptt.audit import audit
from symbptt.audit.sources import format_of, pieces

CORPUS = Path(__file__).parent / "audit_corpus"
FILES = sorted(p.name[: -len(".truth.json")] for p in CORPUS.glob("*.truth.json"))
#: Findings that hold.
HOLDS = {"right", "model", "defines", "compensated"}
#: Lines the reader leaves unread, and why (each a finding "not read" with that reason).
NOT_READ = {
    # an exercise's variant of the model, after the model's own definition
    ("lecture_rnn_row.tex", 54): "defined again",
}


def verdicts(name: str) -> tuple[dict, dict, object]:
    """(truth by line, findings' statuses by line, the report)."""
    path = CORPUS / name
    truth = json.loads((CORPUS / f"{name}.truth.json").read_text())
    fmt = format_of(path.suffix)
    source = path.read_text()
    report = audit(source, format=fmt, mapping=truth.get("audit_map"))
    document = pieces(source, fmt)

    def where(line: int):
        if not document.cells:
            return line
        first, cell = max((c for c in document.cells if c[0] <= line), default=document.cells[0])
        return (cell, line - first + 1)

    found: dict = defaultdict(list)
    for f in report.findings:
        found[where(f.rule.line)].append(f)
    expected: dict = defaultdict(set)
    for rule in truth["rules"]:
        expected[(rule["cell"], rule["line"]) if "cell" in rule else rule["line"]].add(
            rule["verdict"]
        )
    return expected, found, report


@pytest.mark.parametrize("name", FILES)
def test_each_derivation_is_read_as_written_and_judged_as_its_truth(name):
    expected, found, report = verdicts(name)
    for line, truth in expected.items():
        statuses = {f.status for f in found.get(line, [])}
        wrong = statuses & {"wrong", "shape"}
        if "wrong" in truth:  # the planted mistake is found
            assert wrong, (line, statuses, report.text())
            continue
        key = (name, line if isinstance(line, int) else line[1])
        if key in NOT_READ:
            reasons = [f.message for f in found[line] if f.status == "unread"]
            assert any(NOT_READ[key] in r for r in reasons), (line, reasons)
            continue
        assert not wrong, (line, [f.message for f in found[line]], report.text())
        if "right" in truth:  # read, and it holds
            assert statuses and statuses <= HOLDS, (line, statuses, report.text())
    assert report.how.startswith("the model of the derivation's own"), report.how


def test_the_corpus_has_what_the_issue_asks_for():
    assert len(FILES) >= 15
    kinds = {Path(f).suffix for f in FILES}
    assert kinds == {".tex", ".md", ".ipynb"}
    planted = 0
    for name in FILES:
        truth = json.loads((CORPUS / f"{name}.truth.json").read_text())
        planted += sum(r["verdict"] == "wrong" for r in truth["rules"])
    assert planted >= 10
