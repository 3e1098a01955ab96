"""The `symbptt` command line: derive, write, audit and check BPTT, and draw it.

`derive` a gradient through every path, `latex` its matrix-form derivation as a document,
`audit` a hand-written derivation, `check` user code; `graph`, `contributions` and `html` draw
the unrolled graph, the gradient by path length and an interactive page.

Every error symbptt raises on purpose becomes one line on stderr and a non-zero exit code, never
a traceback: 1 when a numerical check fails (or checked code raised, hung or crashed), 2 for a
usage error, 3 for an internal error of symbptt.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..errors import InternalError, SymbpttError
from . import audit, check, common, contributions, derive, graph, html, latex
from .check import check_options, exit_status
from .common import MAX_PATH_T, _Parser
from .derive import derive_and_check

__all__ = ["main", "console_main", "check_options", "exit_status", "derive_and_check", "MAX_PATH_T"]

#: The commands, in the order `--help` lists them: a module with `register(sub)` each, and
#: the function that runs it.
COMMANDS = {
    "derive": (derive, derive.run_derive),
    "latex": (latex, latex.run_latex),
    "audit": (audit, audit.run_audit),
    "check": (check, check.run_check),
    "graph": (graph, graph.run_graph),
    "contributions": (contributions, contributions.run_contributions),
    "html": (html, html.run_html),
}


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="symbptt", description=__doc__.splitlines()[0])
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"symbptt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module, _ in COMMANDS.values():
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `symbptt` console script; returns the exit code."""
    try:
        args = _parser().parse_args(argv)  # before rich is imported: --help stays quick
        from rich.console import Console

        out, err = Console(), Console(stderr=True)
        return COMMANDS[args.command][1](args, out, err)
    except InternalError as e:
        print(f"symbptt: internal error: {e}", file=sys.stderr)
        return 3
    except SymbpttError as e:
        print(f"symbptt: error: {e}", file=sys.stderr)
        return 2
    except (RecursionError, MemoryError) as e:
        what = "memory" if isinstance(e, MemoryError) else "recursion depth"
        print(f"symbptt: error: ran out of {what} at these sizes; try a smaller T", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("symbptt: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `symbptt check ... --json | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as e:  # a bug of ours: one line, exit 3 (SYMBPTT_DEBUG=1 shows it whole)
        if os.environ.get("SYMBPTT_DEBUG"):
            raise
        print(
            f"symbptt: internal error: {type(e).__name__}: {e} (please report it; "
            "SYMBPTT_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 3


def console_main() -> None:
    """The `symbptt` command: `main` in a process of its own, whose only children are the
    workers that run user code, so `check` adopts (and later kills) whatever they leave."""
    common.OWN_PROCESS = True
    sys.exit(main())


if __name__ == "__main__":
    console_main()
