"""Benchmark: checking code written in another convention (the search, `--convention FILE`).

1. A textbook-style layer class (a TimeLSTM(Wx, Wh, b) written here, batch-first, bias
   (1, 4H), gates packed g, i, f, o, gradients in self.grads) that the default convention does
   not fit. Whole processes, wall clock, 100 examples, against today's check of the CS231n
   pair measured in the same run (the baseline):
     - `symbptt check CLASS --model lstm --convention auto` (the search, then the check under
       what it found; target <= 2x the baseline),
     - `symbptt check CLASS --model lstm` (the first command a user types: exit 2 with the
       command that fits),
     - that command (the convention declared with flags: no search).
   How many candidates the search judged is measured in this process (`search.search`).
2. A grade book of --submissions copies of a CS231n-style LSTM pair (examples/rnn_layers.py's;
   one in five with one of ten planted bugs), graded with today's flags (`--model lstm --form
   layer --batch-first`, the baseline) and with `--convention conv.toml` (written by
   `--write-convention` from a right submission), same --jobs, --json and --examples (20 by
   default, to keep the run short). Target <= 1.2x. The verdicts of the two are compared per
   submission.

Speed is reported, never asserted; the exit status is non-zero only when a check does not
give the verdict it must (a benchmark of wrong verdicts would measure nothing).

    python bench/conventions.py [--quick] [--out bench/results/conventions.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXAMPLES = ROOT / "examples"
PAIR = "lstm_forward,lstm_backward"

#: Written for this benchmark, in the style of a textbook's layer classes: the search must
#: find the batch-first data (nothing in the source unpacks `N, T, D = xs.shape`), the
#: (1, 4H) bias and the gate order g, i, f, o.
CLASS_SOURCE = '''"""An LSTM layer over a whole sequence, as a textbook writes its layer classes.

The four gates share the weights, packed as [g | i | f | o] along the last axis:
Wx (D, 4H), Wh (H, 4H), b (1, 4H). xs is batch-first (N, T, D); the state starts at zero.
After backward(dhs), self.grads holds dWx, dWh, db (aligned with self.params).
"""
import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class TimeLSTM:
    def __init__(self, Wx, Wh, b):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        self.cache = None

    def forward(self, xs):
        Wx, Wh, b = self.params
        N, T = xs.shape[0], xs.shape[1]
        H = Wh.shape[0]
        h = np.zeros((N, H))
        c = np.zeros((N, H))
        hs = np.empty((N, T, H))
        self.cache = []
        for t in range(T):
            x = xs[:, t, :]
            A = np.dot(x, Wx) + np.dot(h, Wh) + b
            g = np.tanh(A[:, :H])
            i = sigmoid(A[:, H : 2 * H])
            f = sigmoid(A[:, 2 * H : 3 * H])
            o = sigmoid(A[:, 3 * H :])
            c_prev, h_prev = c, h
            c = f * c_prev + i * g
            tanh_c = np.tanh(c)
            h = o * tanh_c
            self.cache.append((x, h_prev, c_prev, g, i, f, o, tanh_c))
            hs[:, t, :] = h
        return hs

    def backward(self, dhs):
        Wx, Wh, b = self.params
        N, T = dhs.shape[0], dhs.shape[1]
        H = Wh.shape[0]
        dxs = np.empty((N, T, Wx.shape[0]))
        dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
        dh = np.zeros((N, H))
        dc = np.zeros((N, H))
        for t in reversed(range(T)):
            x, h_prev, c_prev, g, i, f, o, tanh_c = self.cache[t]
            dh = dh + dhs[:, t, :]
            do = dh * tanh_c * o * (1 - o)
            dc = dc + dh * o * (1 - tanh_c**2)
            dg = dc * i * (1 - g**2)
            di = dc * g * i * (1 - i)
            df = dc * c_prev * f * (1 - f)
            dA = np.hstack((dg, di, df, do))
            dWx += np.dot(x.T, dA)
            dWh += np.dot(h_prev.T, dA)
            db += np.sum(dA, axis=0, keepdims=True)
            dxs[:, t, :] = np.dot(dA, Wx.T)
            dh = np.dot(dA, Wh.T)
            dc = dc * f
        self.grads[0][...] = dWx
        self.grads[1][...] = dWh
        self.grads[2][...] = db
        return dxs
'''

#: Planted bugs: (name, text in the pair's source, replacement). Each occurs exactly once.
BUGS = [
    ("no_forget_in_carry", "dprev_c = dc * f", "dprev_c = dc"),
    ("tanh_slope_of_c", "o * (1 - tanh_c**2)", "o * (1 - next_c**2)"),
    ("forget_grad_uses_next_c", "df = dc * prev_c", "df = dc * next_c"),
    (
        "i_f_swapped_in_backward",
        "da = np.hstack([di * i * (1 - i), df * f * (1 - f),",
        "da = np.hstack([df * f * (1 - f), di * i * (1 - i),",
    ),
    ("db_mean", "db = da.sum(axis=0)", "db = da.mean(axis=0)"),
    (
        "no_recurrent_dh",
        "lstm_step_backward(dh[:, t] + dprev_h, dprev_c, caches[t])",
        "lstm_step_backward(dh[:, t], dprev_c, caches[t])",
    ),
    (
        "cell_carry_dropped",
        "lstm_step_backward(dh[:, t] + dprev_h, dprev_c, caches[t])",
        "lstm_step_backward(dh[:, t] + dprev_h, 0 * dprev_c, caches[t])",
    ),
    ("output_gate_uses_prev_c", "do = dnext_h * tanh_c", "do = dnext_h * np.tanh(prev_c)"),
    ("output_sigmoid_slope", "do * o * (1 - o)", "do * (1 - o)"),
    ("dh0_zero", "return dx, dprev_h, dWx, dWh, db", "return dx, 0 * dprev_h, dWx, dWh, db"),
]


def _symbptt(*argv: str) -> list[str]:
    return [sys.executable, "-m", "symbptt", "check", *argv]


def _run(argv: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    return time.perf_counter() - t0, done


def _tail(done: subprocess.CompletedProcess) -> str:
    return (done.stdout[-1500:] + "\n" + done.stderr[-1500:]).strip()


class Trouble(list):
    """Verdicts that are not what they must be (the exit status says so)."""

    def add(self, message: str) -> None:
        self.append(message)
        print(f"!! {message}", file=sys.stderr)


# -- 1. a class target that needs the search ---------------------------------------------------


def search_in_process(target: str, path: Path) -> dict:
    """What the search judges for the class (as `--convention auto` runs it: the LSTM, the
    form left open): candidates judged, candidates that failed at once, its convention."""
    from symbptt.checking import search as finder
    from symbptt.checking.isolation import Limits, Worker
    from symbptt.checking.suggest import command, describe
    from symbptt.models import LSTM

    tried: list[str] = []  # every convention class probed, in order, and what it gave
    original = finder._try

    def traced(trial, skeleton, conv, *rest):
        candidate, error = original(trial, skeleton, conv, *rest)
        what = f"{conv.layout} {conv.sequence} state {conv.state_axes} bias {conv.bias_axes}"
        if candidate is None:
            tried.append(f"{what}: failed at once")
        else:
            tried.append(f"{what}: judged, {candidate.right} of {candidate.judged} arrays right")
        return candidate, error

    finder._try = traced
    worker = Worker.for_target(target, limits=Limits(), adapter={"kind": "plan"})
    try:
        failure = worker.load()
        assert failure is None, failure
        t0 = time.perf_counter()
        found = finder.search(
            worker,
            [o["name"] for o in worker.objects],
            [path],
            LSTM,
            None,
            deadline=time.monotonic() + 60.0,
        )
        seconds = time.perf_counter() - t0
    finally:
        worker.close()
        finder._try = original
    best = found.best.calling if found.best is not None else None
    return {
        "what": "search",
        "fits": found.fits,
        "candidates_judged": found.tried,
        "candidates_failed_at_once": len(found.errors),
        "seconds_in_process": seconds,
        "probed_in_order": tried,
        "convention": describe(best) if best is not None else None,
        "command": command(target, best) if best is not None else None,
    }


def class_checks(folder: Path, examples: int, repeat: int, trouble: Trouble) -> list[dict]:
    path = folder / "time_lstm.py"
    path.write_text(CLASS_SOURCE)
    target = f"{path}:TimeLSTM"
    found = search_in_process(target, path)
    if not found["fits"]:
        trouble.add(f"the search found no convention for {target}")
    n = str(examples)
    commands = {
        "baseline": _symbptt(
            f"examples/rnn_layers.py:{PAIR}",
            "--model",
            "lstm",
            "--form",
            "layer",
            "--batch-first",
            "--examples",
            n,
        ),
        "auto": _symbptt(target, "--model", "lstm", "--convention", "auto", "--examples", n),
        "first": _symbptt(target, "--model", "lstm", "--examples", n),
    }
    # The command the first one prints (exit 2): the convention declared with flags.
    _, done = _run([*commands["first"], "--json"])
    if done.returncode != 2:
        trouble.add(f"the first command exited {done.returncode}, not 2: {_tail(done)}")
        suggested = None
    else:
        suggested = json.loads(done.stdout.strip().splitlines()[-1])["suggestion"]["argv"]
        commands["declared"] = [sys.executable, "-m", "symbptt", *suggested]
    expected = {"baseline": 0, "auto": 0, "first": 2, "declared": 0}
    labels = {
        "baseline": "baseline: the CS231n LSTM pair, today's flags",
        "auto": "class, --convention auto (search, then check)",
        "first": "class, no convention (exit 2 + the command)",
        "declared": "class, the printed command (declared, no search)",
    }
    times: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(repeat):  # interleaved, so that a load on the machine hits all alike
        for key, argv in commands.items():
            seconds, done = _run(argv)
            times[key].append(seconds)
            if done.returncode != expected[key]:
                trouble.add(f"{labels[key]}: exit {done.returncode}, not {expected[key]}")
            if key == "auto" and "checked under the convention the search found" not in (
                done.stdout + done.stderr
            ):
                trouble.add(f"{labels[key]}: no note of the convention found: {_tail(done)}")
    base = statistics.median(times["baseline"])
    records = [found]
    for key, argv in commands.items():
        median = statistics.median(times[key])
        records.append(
            {
                "what": "class_check",
                "run": key,
                "label": labels[key],
                "argv": argv[1:],
                "examples": examples,
                "seconds": times[key],
                "median_seconds": median,
                "ratio_to_baseline": median / base,
            }
        )
    return records


# -- 2. a grade book --------------------------------------------------------------------------


def _pair_source() -> str:
    text = (EXAMPLES / "rnn_layers.py").read_text()
    start, end = text.index("def sigmoid"), text.index("def gru_step_forward")
    return "import numpy as np\n\n\n" + text[start:end].rstrip() + "\n"


def write_submissions(folder: Path, count: int) -> dict[str, str | None]:
    """count folders, each with lstm_layers.py: every fifth with one of the bugs (in turn)."""
    right = _pair_source()
    planted: dict[str, str | None] = {}
    for i in range(count):
        bug = BUGS[(i // 5) % len(BUGS)] if i % 5 == 4 else None
        text = right
        if bug is not None:
            name, old, new = bug
            assert text.count(old) == 1, (name, text.count(old))
            text = text.replace(old, new)
        sub = folder / f"student{i:03d}"
        sub.mkdir()
        (sub / "lstm_layers.py").write_text(text)
        planted[f"{sub / 'lstm_layers.py'}:{PAIR}"] = bug[0] if bug else None
    return planted


def _verdicts(done: subprocess.CompletedProcess) -> dict[str, dict]:
    from symbptt.checking.batch import verdict

    out = {}
    for line in done.stdout.splitlines():
        record = json.loads(line)
        out[record["target"]] = {
            "verdict": verdict(record),
            "wrong": sorted(r["name"] for r in record["results"] if r["status"] == "WRONG"),
            "dims": record.get("dims"),
            "inconsistent": bool(record.get("inconsistent")),
            "error": record.get("error"),
        }
    return out


def grade_book(
    folder: Path, count: int, examples: int, jobs: int, repeat: int, trouble: Trouble
) -> list[dict]:
    planted = write_submissions(folder, count)
    pattern = f"{folder}/student*/lstm_layers.py:{PAIR}"
    first = next(t for t, bug in planted.items() if bug is None)
    conv = folder / "conv.toml"
    n = str(examples)
    flags = ["--model", "lstm", "--form", "layer", "--batch-first"]
    seconds, done = _run(_symbptt(first, *flags, "--examples", n, "--write-convention", str(conv)))
    if done.returncode != 0 or not conv.is_file():
        trouble.add(f"--write-convention failed: {_tail(done)}")
        return []
    written = {"what": "write_convention", "seconds": seconds, "toml": conv.read_text()}
    common = ["--examples", n, "--jobs", str(jobs), "--json"]
    modes = {
        "flags": _symbptt(pattern, *flags, *common),
        "convention": _symbptt(pattern, "--convention", str(conv), *common),
    }
    order = ["flags", "convention"] + ["convention", "flags"] * (repeat > 1)
    times: dict[str, list[float]] = {k: [] for k in modes}
    graded: dict[str, list[dict]] = {k: [] for k in modes}
    for mode in order:  # ABBA when repeated: neither gets the warmer machine
        seconds, done = _run(modes[mode])
        times[mode].append(seconds)
        if done.returncode not in (0, 1):
            trouble.add(f"grade book ({mode}) exited {done.returncode}: {_tail(done)}")
            continue
        graded[mode].append(_verdicts(done))
        print(f"  grade book, {mode:10s}: {seconds:6.1f} s", flush=True)
    reference = graded["flags"][0] if graded["flags"] else {}
    differences, unexpected = [], []
    for mode, runs in graded.items():
        for k, run in enumerate(runs):
            if set(run) != set(planted):
                trouble.add(f"grade book ({mode}, run {k + 1}) graded {len(run)} of {count}")
            for target, got in run.items():
                want = reference.get(target)
                if want is not None and got != want:
                    differences.append(
                        {"target": target, "mode": mode, "run": k + 1, "flags": want, "got": got}
                    )
                bug = planted.get(target)
                if got["verdict"] != ("wrong" if bug else "right"):
                    unexpected.append({"target": target, "mode": mode, "bug": bug, "got": got})
    for d in differences:
        trouble.add(f"verdicts differ: {d}")
    for u in unexpected:
        trouble.add(f"unexpected verdict: {u}")
    base = statistics.mean(times["flags"])
    records = [written]
    for mode, argv in modes.items():
        mean = statistics.mean(times[mode])
        records.append(
            {
                "what": "grade_book",
                "mode": mode,
                "argv": argv[1:],
                "submissions": count,
                "planted_bugs": sum(1 for b in planted.values() if b),
                "examples": examples,
                "jobs": jobs,
                "seconds": times[mode],
                "mean_seconds": mean,
                "ratio_to_flags": mean / base,
            }
        )
    by_bug: dict[str, list[str]] = {}
    for target, bug in planted.items():
        if bug and reference.get(target):
            by_bug.setdefault(bug, []).append(" ".join(reference[target]["wrong"]) or "-")
    records.append(
        {
            "what": "verdicts",
            "right": sum(1 for v in reference.values() if v["verdict"] == "right"),
            "wrong": sum(1 for v in reference.values() if v["verdict"] == "wrong"),
            "other": sum(1 for v in reference.values() if v["verdict"] not in ("right", "wrong")),
            "differences_between_modes": differences,
            "unexpected": unexpected,
            "wrong_gradients_by_bug": {b: sorted(set(w)) for b, w in by_bug.items()},
        }
    )
    return records


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "conventions.json")
    parser.add_argument("--quick", action="store_true", help="one run each, 30 submissions")
    parser.add_argument("--examples", type=int, default=100, help="for the class checks")
    parser.add_argument("--repeat", type=int, default=None, help="class checks (default 5)")
    parser.add_argument("--submissions", type=int, default=None, help="default 100")
    parser.add_argument("--grade-examples", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 5)
    count = args.submissions or (30 if args.quick else 100)

    trouble = Trouble()
    folder = Path(tempfile.mkdtemp(prefix="symbptt-bench-conv-"))
    try:
        t0 = time.perf_counter()
        records = class_checks(folder, args.examples, repeat, trouble)
        found = records[0]
        print(
            f"\nthe search on the class: {found['candidates_judged']} candidates judged by "
            f"values ({found['candidates_failed_at_once']} more failed at once), "
            f"{found['seconds_in_process']:.2f} s in process; found: {found['convention']}"
        )
        for line in found["probed_in_order"]:
            print(f"  {line}")
        print(f"\n{'class check, whole process':56s} {'median s':>9s} {'ratio':>6s}")
        print(f"  ({args.examples} examples, median of {repeat}, interleaved)")
        for r in records[1:]:
            print(f"{r['label']:56s} {r['median_seconds']:9.2f} {r['ratio_to_baseline']:6.2f}")
        books = folder / "class"
        books.mkdir()
        print(
            f"\ngrade book: {count} submissions, --examples {args.grade_examples}, "
            f"--jobs {args.jobs}, --json",
            flush=True,
        )
        graded = grade_book(
            books, count, args.grade_examples, args.jobs, 1 if args.quick else 2, trouble
        )
        records += graded
        rows = [r for r in graded if r["what"] == "grade_book"]
        print(f"{'mode':12s} {'runs s':>16s} {'mean s':>8s} {'ratio':>6s}")
        for r in rows:
            runs = ", ".join(f"{s:.1f}" for s in r["seconds"])
            print(
                f"{r['mode']:12s} {runs:>16s} {r['mean_seconds']:8.1f} {r['ratio_to_flags']:6.2f}"
            )
        summary = next((r for r in graded if r["what"] == "verdicts"), None)
        if summary:
            print(
                f"verdicts (flags): {summary['right']} right, {summary['wrong']} wrong, "
                f"{summary['other']} other; {len(summary['differences_between_modes'])} "
                f"differences between the modes, {len(summary['unexpected'])} unexpected"
            )
        records.append(
            {
                "what": "run",
                "seconds": time.perf_counter() - t0,
                "quick": args.quick,
                "problems": list(trouble),
            }
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 1 if trouble else 0


if __name__ == "__main__":
    sys.exit(main())
