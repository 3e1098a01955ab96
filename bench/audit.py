"""Benchmark: how long `symbptt audit` takes on real derivations.

In process (median of --repeat): the seed blog's LaTeX transcription (docs/audit/seed.tex),
the 16 rules `symbptt latex --format text --wrt all` writes, five wrong rules (each
classified: the search for the small change that makes it right is the costly part), and
each derivation of the audit corpus (tests/audit_corpus, read as written, its model from its
own forward equations). As whole processes: `symbptt audit docs/audit/seed.tex` against the
baseline `python -c "import numpy, symengine"`, and the corpus' 40-rule LSTM report in LaTeX
(tests/audit_corpus/lstm_concat_report.tex) against `symbptt derive --T 3` (issue 18's target:
<= 3x), both measured in the same run.

    python bench/audit.py [--repeat 5] [--out bench/results/audit.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # bench/timing.py

from timing import median_seconds  # noqa: E402

SEED = HERE.parent / "docs" / "audit" / "seed.tex"
CORPUS = HERE.parent / "tests" / "audit_corpus"
FORTY = CORPUS / "lstm_concat_report.tex"

WRONG = [
    "dV = sum(t, h[t].T @ do[t]) * 2",
    "dh[t] = do[t] @ V + da[t+1] @ W_h.T",
    "dW_h = sum(t, h[t].T @ da[t])",
    "da[t] = dh[t] * (1 - a[t]**2)",
    "dx[t] = da[t] @ W_h.T",
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "audit.json")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    from symbptt.audit import audit
    from symbptt.derivation import derivation

    seed = SEED.read_text()
    text = derivation(3, "all").text()
    wrong = "\n".join(WRONG)
    audit(seed, format="latex")  # warm the imports
    cases = {
        "seed blog, LaTeX (10 rules)": lambda: audit(seed, format="latex"),
        "symbptt latex --format text --wrt all (16 rules)": lambda: audit(text),
        "5 wrong rules, each classified": lambda: audit(wrong),
    }
    from symbptt.audit.sources import format_of

    for path in sorted(CORPUS.glob("*.truth.json")):
        doc = CORPUS / path.name[: -len(".truth.json")]
        source, fmt = doc.read_text(), format_of(doc.suffix)
        report = audit(source, format=fmt)
        cases[f"corpus: {doc.name} ({report.counts['rules_read']} rules)"] = (
            lambda s=source, f=fmt: audit(s, format=f)
        )
    rows = {name: median_seconds(f, args.repeat) for name, f in cases.items()}
    forty = audit(FORTY.read_text(), format="latex").counts["rules_read"]
    commands = {
        "baseline: import numpy, symengine": [sys.executable, "-c", "import numpy, symengine"],
        "symbptt audit docs/audit/seed.tex": [sys.executable, "-m", "symbptt", "audit", str(SEED)],
        "baseline: symbptt derive --T 3": [sys.executable, "-m", "symbptt", "derive", "--T", "3"],
        f"symbptt audit {FORTY.name} ({forty} rules, LaTeX)": [
            sys.executable,
            "-m",
            "symbptt",
            "audit",
            str(FORTY),
        ],
    }
    processes = {
        name: median_seconds(lambda a=argv_: subprocess.run(a, capture_output=True), args.repeat)
        for name, argv_ in commands.items()
    }

    def fresh() -> None:  # the author's model checked against differences on first use
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "XDG_CACHE_HOME": cache}
            subprocess.run(
                commands[f"symbptt audit {FORTY.name} ({forty} rules, LaTeX)"],
                capture_output=True,
                env=env,
            )

    processes[f"symbptt audit {FORTY.name}, first use (empty cache)"] = median_seconds(
        fresh, args.repeat
    )
    no_torch = [  # CI has no PyTorch: the first-use check is differences alone there
        sys.executable,
        "-c",
        "import sys; sys.modules['torch'] = None\n"
        "from symbptt.cli import main\n"
        f"main(['audit', {str(FORTY)!r}])",
    ]

    def fresh_no_torch() -> None:
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "XDG_CACHE_HOME": cache}
            subprocess.run(no_torch, capture_output=True, env=env)

    processes[f"symbptt audit {FORTY.name}, first use, no PyTorch"] = median_seconds(
        fresh_no_torch, args.repeat
    )
    baseline = processes["baseline: import numpy, symengine"]
    derive = processes["baseline: symbptt derive --T 3"]
    print(f"{'in process':60} {'seconds':>8}")
    for name, seconds in rows.items():
        print(f"{name:60} {seconds:8.3f}")
    print(f"\n{'whole process':60} {'seconds':>8} {'x import':>9} {'x derive':>9}")
    for name, seconds in processes.items():
        print(f"{name:60} {seconds:8.3f} {seconds / baseline:9.2f} {seconds / derive:9.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "repeat": args.repeat,
                "in_process": rows,
                "processes": {
                    k: {
                        "seconds": v,
                        "ratio_to_baseline": v / baseline,
                        "ratio_to_derive_T3": v / derive,
                    }
                    for k, v in processes.items()
                },
                "forty_rule_latex_vs_derive_T3": processes[
                    f"symbptt audit {FORTY.name} ({forty} rules, LaTeX)"
                ]
                / derive,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
