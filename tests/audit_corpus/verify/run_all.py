"""Run every verify_*.py and check the corpus as a whole.

    python3 tests/audit_corpus/verify/run_all.py            # from anywhere; exit 0 when all is OK

Besides each script's own checks (truth file == rules checked, every equation line covered,
every rule numerically right or wrong as its verdict says, at two sizes), this checks that
every derivation has a truth file and a script, states forward equations and 4 to 24 backward
rules, and that every truth file has the documented shape.
"""
import glob
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.dirname(HERE)
EXTS = (".tex", ".md", ".ipynb")


def main():
    derivations = sorted(f for f in os.listdir(CORPUS) if f.endswith(EXTS) and f != "README.md")
    bad = 0
    rows = []
    for f in derivations:
        stem = os.path.splitext(f)[0]
        script = os.path.join(HERE, "verify_%s.py" % stem)
        tpath = os.path.join(CORPUS, f + ".truth.json")
        problems = []
        if not os.path.exists(script):
            problems.append("no verify script")
        if not os.path.exists(tpath):
            problems.append("no truth file")
        else:
            truth = json.load(open(tpath))
            if set(truth) != {"model", "map", "rules"}:
                problems.append("truth keys %s" % sorted(truth))
            for r in truth["rules"]:
                keys = set(r) - {"cell", "why"}
                if keys != {"line", "text", "kind", "verdict"}:
                    problems.append("rule keys %s" % sorted(r))
                if ("cell" in r) != f.endswith(".ipynb"):
                    problems.append("cell field on line %d" % r["line"])
            nb = sum(r["kind"] == "backward" for r in truth["rules"])
            nf = sum(r["kind"] == "forward" for r in truth["rules"])
            nw = sum(r["verdict"] == "wrong" for r in truth["rules"])
            if not 4 <= nb <= 24:
                problems.append("%d backward rules" % nb)
            if nf == 0:
                problems.append("no forward equations")
        if os.path.exists(script):
            p = subprocess.run([sys.executable, script], cwd=HERE, capture_output=True, text=True)
            oks = p.stdout.count("\nOK ") + p.stdout.startswith("OK ")
            fails = p.stdout.count("FAIL")
            if p.returncode != 0:
                problems.append("script failed (%d FAIL lines)\n%s%s" % (fails, p.stdout[-2000:], p.stderr[-2000:]))
        rows.append((f, nf, nb, nw, oks, problems))
        bad += bool(problems)
    print("%-34s %7s %8s %5s %6s  %s" % ("derivation", "forward", "backward", "wrong", "OK", "status"))
    for f, nf, nb, nw, oks, problems in rows:
        print("%-34s %7d %8d %5d %6d  %s" % (f, nf, nb, nw, oks, "OK" if not problems else "FAIL: " + "; ".join(problems)))
    print("%d derivations, %d with planted mistakes, %d wrong rules in all; %s" % (
        len(rows), sum(r[3] > 0 for r in rows), sum(r[3] for r in rows), "all OK" if not bad else "%d FAIL" % bad))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
