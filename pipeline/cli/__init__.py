"""The `cws-pipeline` command: a thin layer of options over the library.

Each command lives in the module for its stage and registers itself on `cli`; this module turns
the library's one-line errors into messages and exit codes (`ExitCode`: 2 input, 4 locked, 5 outside the
delivery window, 6 the ledger cannot be read or written, or is damaged; 1 any other), and shows the
library's log on stderr when asked (`-v`, `--log-format json`): silent otherwise, so cron stays quiet.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from .._errors import CWSPipelineError
from .._version import __version__
from ._commands import LazyGroup

__all__ = ["cli", "main"]

# pipeline._logging.LOG_FORMATS, not imported from there: `--help` loads no `logging` (a test keeps them equal).
LOG_FORMATS = ("text", "json")


class _Group(LazyGroup):
    """A click group that prints CWSPipelineError as one line and exits with its code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CWSPipelineError as exc:
            from .._logging import logger  # only now: --help and a quiet command load no `logging`

            logger(__name__).error("%s (exit %d)", exc, exc.exit_code, extra={"exit_code": int(exc.exit_code)})
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="cws-pipeline")
@click.option(
    "-v", "--verbose", "verbosity", count=True,
    help="Log to stderr what the pipeline does: -v a run's start and end, retries and stops; -vv every request"
    " too (method, path, status, time). Never a body, a name or a birth date.",
)  # fmt: skip
@click.option(
    "--log-format", type=click.Choice(LOG_FORMATS), default="text", show_default=True,
    help="With -v: text for people, or json (one object per line) for journald, syslog and other collectors.",
)  # fmt: skip
@click.pass_context
def cli(ctx: click.Context, verbosity: int, log_format: str) -> None:
    """Send county-jail bookings to CorEMR Web Services: map, sign, deliver, verify, audit.

    Start with `cws-pipeline demo`, then see the README for setting up a site.
    """
    if verbosity:
        from .._logging import configure_logging, stop_logging

        handler = configure_logging(verbosity, "json" if log_format == "json" else "text", sys.stderr)
        if handler is not None:
            ctx.call_on_close(lambda: stop_logging(handler))


def main() -> None:
    """Console-script entry point."""
    cli()
