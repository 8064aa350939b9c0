"""`python -m pipeline` runs the `cws-pipeline` command."""

from .cli import main

main()
