"""`python -m adapter` is the `oligo` command."""

from .cli import main

main()
