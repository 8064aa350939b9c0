"""The `cws-pipeline` command: a thin layer of options over the library.

Each command lives in the module for its stage and registers itself on `cli`; this module turns
the library's one-line errors into messages and exit codes (`ExitCode`: 2 input, 4 locked, 5 outside the
delivery window, 6 the ledger cannot be read or written, or is damaged; 1 any other).
"""

from __future__ import annotations

from typing import Any

import click

from .._errors import CWSPipelineError
from .._version import __version__
from ._commands import LazyGroup

__all__ = ["cli", "main"]


class _Group(LazyGroup):
    """A click group that prints CWSPipelineError as one line and exits with its code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CWSPipelineError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="cws-pipeline")
def cli() -> None:
    """Send county-jail bookings to CorEMR Web Services: map, sign, deliver, verify, audit.

    Start with `cws-pipeline demo`, then see the README for setting up a site.
    """


def main() -> None:
    """Console-script entry point."""
    cli()
