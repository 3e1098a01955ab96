"""`python -m symbptt`: the same as the `symbptt` command."""

from .cli import console_main

console_main()
