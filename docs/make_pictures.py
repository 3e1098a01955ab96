"""Draw the documentation's pictures with symbptt itself (docs/images/), so that every picture in
the docs is what the tool prints:

    python docs/make_pictures.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

IMAGES = Path(__file__).resolve().parent / "images"

COMMANDS = [
    ["graph", "--T", "3", "--wrt", "W_h", "-o", "graph-rnn-W_h.svg"],
    ["graph", "--T", "3", "--wrt", "W_h", "-o", "graph-rnn-W_h.png"],
    ["graph", "--T", "4", "--wrt", "W_h", "--through", "h_2", "-o", "graph-rnn-through-h2.svg"],
    ["graph", "--T", "2", "--wrt", "W_h", "--model", "lstm", "-o", "graph-lstm-W_h.svg"],
    ["contributions", "--T", "20", "--wrt", "W_h", "--scale", "0.5,1,2", "-o", "contributions.png"],
]


def main() -> int:
    IMAGES.mkdir(exist_ok=True)
    for argv in COMMANDS:
        command = [sys.executable, "-m", "symbptt", *argv, "--force"]
        print("symbptt", " ".join(argv), flush=True)
        subprocess.run(command, cwd=IMAGES, check=True, stdout=subprocess.DEVNULL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
