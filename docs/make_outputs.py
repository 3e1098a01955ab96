"""Run every command of symbptt and write one page per command with its real output
(docs/commands/*.md), so that the documentation shows what the tool prints today:

    python docs/make_outputs.py

Each page has a sentence on what the command does, then each invocation and its output as
captured (stdout and stderr, 100 columns, no colour), and its exit status.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = Path(__file__).resolve().parent / "commands"

#: name -> (title, what it does, [(command line, lines of output kept or None for all)])
COMMANDS = {
    "derive": (
        "symbptt derive",
        "Every path of the unrolled graph from a parameter to the loss, each path's "
        "contribution, the partial derivatives (one use at a time) and the total, checked "
        "against NumPy BPTT.",
        [
            ("symbptt derive --T 2 --N 1 --D 1 --H 1 --C 2 --wrt W_h", None),
            ("symbptt derive --model lstm --T 3 --wrt W_h", 6),
        ],
    ),
    "latex": (
        "symbptt latex",
        "The matrix-form derivation, every line checked against the engine first; here in "
        "the plain formula language (`--format text`).",
        [("symbptt latex --T 3 --wrt all --format text", None)],
    ),
    "audit": (
        "symbptt audit",
        "A hand-written derivation judged rule by rule: the seed blog's, in the formula language.",
        [("symbptt audit docs/audit/seed.txt", None)],
    ),
    "check": (
        "symbptt check",
        "Hand-written gradient code checked on random shapes, in its own conventions.",
        [
            (
                "symbptt check examples/rnn_layers.py:rnn_forward,rnn_backward --form layer "
                "--batch-first",
                None,
            ),
            (
                "symbptt check examples/rnn_layers.py:lstm_step_forward,lstm_step_backward "
                "--form layer --model lstm",
                None,
            ),
        ],
    ),
    "graph": (
        "symbptt graph",
        "The unrolled graph as DOT (the first lines), or as SVG or PNG through Graphviz.",
        [("symbptt graph --T 2 --wrt W_h", 14)],
    ),
    "contributions": (
        "symbptt contributions",
        "The gradient of W_h by path length t - k, for three scales of W_h.",
        [("symbptt contributions --T 12 --H 6 --scale 0.5,1,2", None)],
    ),
    "html": (
        "symbptt html",
        "The interactive page (see [pictures](../pictures.md) for a screenshot).",
        [("symbptt html --T 3 --wrt W_h -o page.html", None)],
    ),
}


def run(line: str, folder: Path) -> tuple[str, int]:
    argv = shlex.split(line)
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}
    done = subprocess.run(
        [sys.executable, "-m", "symbptt", *argv[1:]],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return (done.stdout + done.stderr).rstrip("\n"), done.returncode


def main() -> int:
    PAGES.mkdir(exist_ok=True)
    index = ["# Every command, with its output", "", "```{toctree}", ":maxdepth: 1", ""]
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        for folder in ("examples", "docs"):  # the commands read these, relative to the root
            os.symlink(ROOT / folder, work / folder)
        for name, (title, what, lines) in COMMANDS.items():
            out = [f"# {title}", "", what, ""]
            for line, keep in lines:
                print(line, flush=True)
                text, status = run(line, work)
                shown = text.splitlines()
                if keep is not None and len(shown) > keep:
                    shown = shown[:keep] + ["..."]
                out += ["```", f"$ {line}", *shown, f"(exit status {status})", "```", ""]
            (PAGES / f"{name}.md").write_text("\n".join(out))
            index.append(name)
    index += ["```", ""]
    (PAGES / "index.md").write_text("\n".join(index))
    return 0


if __name__ == "__main__":
    sys.exit(main())
