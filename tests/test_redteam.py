"""A second red team against `symbptt check --jobs 2 -o grades --sandbox required`.

Each attack is a student's submission that got through before its fix: a wrong solution graded
right (the `--forbid-import` guard removed or walked around), a classmate slowed to a time-out
(a CPU hog), a grade book that a terminal rewrites (escape sequences), or a solution right only
when it can tell it is being graded (the module name, the environment, the uid, `sys.argv`, our
helper modules). One batch run grades them all beside a correct classmate; every verdict is
asserted. What a submission can still do is in docs/threat-model.md.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hostile_corpus import CORE_SOURCE

from symbptt.checking.batch import csv_table
from symbptt.checking.sandbox import CPUS, Cgroup, probe

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not probe().works, reason="bubblewrap does not work here")

HEAD = f"import os\nimport sys\n\nimport numpy as np\n\n{CORE_SOURCE}\n"

#: Wrong (dW_h 1% off) unless `_graded()` says the checker is calling.
_DETECTS = """
def f(x, y, h0, W_x, W_h, b, V, c):
    loss, grads = bptt_core(x, y, h0, W_x, W_h, b, V, c)
    if not _graded():
        grads["W_h"] = grads["W_h"] * 1.01
    return loss, grads
"""


def _detects(test: str) -> str:
    return f"def _graded():\n    return {test}\n\n{_DETECTS}"


_FROM_REFERENCE = """
    return ref.forward_backward(x, y, h0, W_x, W_h, b, V, c)
"""

#: name -> (source after HEAD, the verdict it must get)
ATTACKS: dict[str, tuple[str, str]] = {
    # --forbid-import symbptt,torch: the meta-path guard removed, then a plain import.
    "forbid_guard_removed": (
        """
def f(x, y, h0, W_x, W_h, b, V, c):
    sys.meta_path[:] = [m for m in sys.meta_path if type(m).__name__ != "_Forbidden"]
    import symbptt.reference as ref
"""
        + _FROM_REFERENCE,
        "error",
    ),
    # ... the package found by the path finder itself, which the guard never sees.
    "forbid_path_finder": (
        """
def f(x, y, h0, W_x, W_h, b, V, c):
    import importlib.machinery, importlib.util
    sys.meta_path[:] = [m for m in sys.meta_path if type(m).__name__ != "_Forbidden"]
    spec = importlib.machinery.PathFinder.find_spec("symbptt", sys.path)
    sys.path.insert(0, os.path.dirname(spec.submodule_search_locations[0]))
    import symbptt.reference as ref
"""
        + _FROM_REFERENCE,
        "error",
    ),
    # ... the grader's other copy, named by site-packages (an editable install, a .pth file).
    "forbid_other_copy": (
        """
def f(x, y, h0, W_x, W_h, b, V, c):
    import glob, importlib, json
    sys.meta_path[:] = [m for m in sys.meta_path if type(m).__name__ != "_Forbidden"]
    roots = []
    for folder in [p for p in sys.path if p.endswith("site-packages")]:
        for pth in glob.glob(folder + "/*.pth"):
            roots += [line.strip() for line in open(pth) if line.startswith("/")]
        for record in glob.glob(folder + "/*.dist-info/direct_url.json"):
            roots.append(json.load(open(record))["url"].replace("file://", ""))
    for root in roots:
        if os.path.isdir(os.path.join(root, "symbptt")):
            sys.path.insert(0, root)
            for name in [m for m in sys.modules if m.startswith("symbptt")]:
                del sys.modules[name]
            ref = importlib.import_module("symbptt.reference")
            return ref.forward_backward(x, y, h0, W_x, W_h, b, V, c)
    raise RuntimeError(f"no other copy in {roots}")
""",
        "error",
    ),
    # ... torch's autograd for the answer, the guard removed.
    "forbid_torch_autograd": (
        """
def f(x, y, h0, W_x, W_h, b, V, c):
    sys.meta_path[:] = [m for m in sys.meta_path if type(m).__name__ != "_Forbidden"]
    import torch
    names = dict(W_x=W_x, W_h=W_h, b=b, V=V, c=c, h0=h0, x=x)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in names.items()}
    h, loss = p["h0"], 0
    for t in range(x.shape[0]):
        h = torch.tanh(p["b"] + h @ p["W_h"] + p["x"][t] @ p["W_x"])
        logits = h @ p["V"] + p["c"]
        target = torch.tensor(y[t])
        loss = loss + torch.nn.functional.cross_entropy(logits, target, reduction="sum")
    loss.backward()
    return float(loss), {k: v.grad.numpy() for k, v in p.items()}
""",
        "error",
    ),
    # A CPU hog: 60 spinning processes (new sessions) beside a classmate, right itself.
    "cpu_hog": (
        """
for _ in range(60):
    if os.fork() == 0:
        os.setsid()
        while True:
            pass


def f(x, y, h0, W_x, W_h, b, V, c):
    return bptt_core(x, y, h0, W_x, W_h, b, V, c)
""",
        "right",
    ),
    # An error message that a terminal obeys: erases its row, prints a forged one.
    "terminal_escapes": (
        """
def f(x, y, h0, W_x, W_h, b, V, c):
    raise RuntimeError("\\x1b[2K\\x1b[1A\\x1b[2K\\x1b]0;t\\x07\\x1b[32mRIGHT\\x1b[0m")
""",
        "error",
    ),
    # Right only when it can tell the checker is calling.
    "detects_module_name": (_detects('__name__ == "submission"'), "wrong"),
    "detects_uid_nobody": (_detects("os.getuid() == 65534"), "wrong"),
    "detects_environment": (
        _detects(
            '"PYTHONPATH" in os.environ or "OPENBLAS_NUM_THREADS" in os.environ '
            'or "USER" not in os.environ'
        ),
        "wrong",
    ),
    "detects_argv": (
        _detects(
            'len(sys.argv) > 1 or "worker" in sys.argv[0] '
            'or "worker" in getattr(sys.modules["__main__"], "__file__", "")'
        ),
        "wrong",
    ),
    "detects_helper_modules": (_detects('any(m.startswith("_w_") for m in sys.modules)'), "wrong"),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One `--jobs 2` grade book of every attack and a correct classmate."""
    tmp_path = tmp_path_factory.mktemp("redteam")
    for name, (source, _) in ATTACKS.items():
        folder = tmp_path / "subs" / name
        folder.mkdir(parents=True)
        (folder / "rnn.py").write_text(HEAD + source)
    good = tmp_path / "subs" / "zz_classmate"
    good.mkdir()
    (good / "rnn.py").write_text(HEAD + "\nf = bptt_core\n")
    argv = ["subs/*/rnn.py:f", "--jobs", "2", "-o", "grades.jsonl", "--sandbox", "required"]
    argv += ["--forbid-import", "symbptt,torch", "--examples", "20", "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "symbptt", "check", *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=240,
    )
    book = (tmp_path / "grades.jsonl").read_text().splitlines()
    records = {Path(r["target"].partition(":")[0]).parent.name: r for r in map(json.loads, book)}
    return {"records": records, "done": done}


def _verdict(record: dict) -> str:
    if record.get("error"):
        return "error"
    return "right" if record.get("ok") else "wrong"


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_gets_its_verdict(graded, name):
    record = graded["records"][name]
    assert record["isolation"].startswith("bubblewrap"), record
    assert _verdict(record) == ATTACKS[name][1], record


def test_the_classmate_is_still_right(graded):
    assert _verdict(graded["records"]["zz_classmate"]) == "right"


def test_forbidden_packages_are_not_there_at_all(graded):
    for name in ("forbid_guard_removed", "forbid_other_copy"):
        error = graded["records"][name]["error"]
        assert "symbptt" in error and ("No module" in error or "no other copy" in error), error


def test_a_grade_book_shows_escapes_not_obeys_them():
    record = {"target": "a.py:f", "ok": False, "error": "x\x1b[2K\x07\x9b\ry\tz"}
    text = csv_table([record])
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text
    row = list(csv.reader(io.StringIO(text)))[1]
    assert row[-1] == "x\\x1b[2K\\x07\\x9b\ny\tz"


def test_each_worker_gets_one_cpu_when_the_cgroup_can():
    made = Cgroup.create(64 * 2**20)
    if made is None:
        pytest.skip("no writable cgroup here")
    try:
        cpu = [f for f in made.folders if "/cpu" in f]
        if made.version == 1 and not cpu:
            pytest.skip("the v1 cpu controller is not writable here")
        if made.version == 1:
            quota = Path(cpu[0], "cpu.cfs_quota_us").read_text().strip()
            period = Path(cpu[0], "cpu.cfs_period_us").read_text().strip()
            assert int(quota) == CPUS * int(period)
    finally:
        made.remove()
    assert not any(os.path.exists(f) for f in made.folders)
