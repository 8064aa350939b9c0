"""`run` and `demo`: the product's main job."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .._errors import OutsideWindow
from .._private_files import check_output_path
from ..delivery import (
    RowOutcome,
    RunConfig,
    RunInterrupted,
    RunProgress,
    RunResult,
    load_config,
    print_summary,
    run_bookings,
)
from ..ledger import NOT_DELIVERED, Ledger
from ..protocol import API_VERSIONS, DEFAULT_API, ApiVersion
from ..review import gather_report, name_held_fields, open_private_text, write_error_file
from ..tools import run_demo
from . import cli

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

_PATH = click.Path(path_type=Path)


@cli.command()
@click.argument("csv", type=click.Path(path_type=Path, dir_okay=False))
@click.option("-m", "--mapping", "mapping", required=True, type=_PATH, help="Mapping file (TOML).")
@click.option("-c", "--config", "config_path", required=True, type=_PATH, help="Run config (TOML).")
@click.option(
    "-e",
    "--errors",
    "errors_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the rows needing a person here, for the records clerk: the export's cells, then line, state and"
    " reason (CSV, mode 0600; formulas neutralised). Written every run: no rows when none needs a person. Its"
    " directory must exist and it must not be a symbolic link (checked before anything is sent).",
)
@click.option("-v", "--verbose", is_flag=True, help="Print the summary even when all went well and no terminal.")
def run(csv: Path, mapping: Path, config_path: Path, errors_path: Path | None, verbose: bool) -> None:
    """Deliver every booking in CSV to CorEMR: map, sign, send, verify, record.

    Off a terminal (cron mails what it prints) it is silent unless a row newly needs a person (or
    changed since it was reported): then one line per state, those rows, and one line for the rows
    reported before and unchanged. On a terminal, or with -v, it shows every row needing a person, and
    while it runs a progress bar shows rows/s, the requests in flight allowed now (adaptive
    concurrency) and the time left. Exit codes: 0 nothing new needs a person, 1 a row newly needs a
    person, 2 usage/config/input error, or an export still being written (it must stay unchanged for
    `settle_seconds`; nothing sent), 3 security stop, 4 another run holds the ledger, 5 outside the
    delivery window (`window` in the config: nothing sent, one line says when it opens) or the window
    closed, or the run reached `max_run_seconds`, before every row was sent (the next run goes on),
    6 the ledger cannot be read or written (disk full, damaged), 130 interrupted by Ctrl-C, 143 by
    SIGTERM (both recorded as interrupted in the ledger).

    Example: cws-pipeline run bookings.csv --mapping mappings/sample-jms.toml --config cws.toml
    """
    config = load_config(config_path)
    if errors_path is not None:  # a path the error file cannot be written to stops the run before anything is sent
        check_output_path(errors_path)
    interactive = sys.stdout.isatty()
    try:
        result = _run_with_progress(csv, mapping, config) if interactive else run_bookings(csv, mapping, config)
    except OutsideWindow as outside:  # not an error: the run is early (or late); cron may well start it so
        click.echo(f"Not sending: {outside}", err=True)
        sys.exit(outside.exit_code)
    except RunInterrupted as stopped:
        click.echo(f"Interrupted: {stopped}; the next run settles rows left in flight", err=True)
        sys.exit(stopped.exit_code)
    for notice in result.notices:  # an earlier run that did not finish: worth a line even from cron
        click.echo(notice, err=True)
    if errors_path is not None:
        listed = _write_error_file(result, errors_path)
        if verbose or interactive or result.exit_code != 0:  # cron's mail names the file the clerk opens
            click.echo(f"Wrote {errors_path.resolve()} ({listed} row(s) needing a person; mode 0600).", err=True)
    result = name_held_fields(result)  # a held change names its fields (not their values: it may be mailed)
    if verbose or interactive:
        print_summary(result, click.echo)
    elif result.exit_code != 0:  # cron: only what is new; rows reported before are one line
        print_summary(result, click.echo, everything=False)
    sys.exit(result.exit_code)


def _write_error_file(result: RunResult, path: Path) -> int:
    """The clerk's error file for this run, from the ledger (where the rows' original cells are kept)."""
    with Ledger.open_read_only(result.ledger) as ledger:
        report = gather_report(ledger, [result.run_id], NOT_DELIVERED, with_cells=True, with_values=True)
    with open_private_text(path) as out:
        return write_error_file(report, out)


def _run_with_progress(csv: Path, mapping: Path, config: RunConfig) -> RunResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} rows/s"),
        TextColumn("concurrency {task.fields[concurrency]}"),
        TimeRemainingColumn(),
        transient=True,
        speed_estimate_period=30,  # rows/s and the time left over the last 30 s, not since the start
    ) as bar:
        task = bar.add_task("Delivering", total=None, rate="-", concurrency="-")
        return run_bookings(csv, mapping, config, progress=_ProgressBar(bar, task))


class _ProgressBar(RunProgress):
    """The run on a terminal: rows done of rows expected, rows/s, the concurrency allowed now, the time left."""

    def __init__(self, bar: Progress, task: TaskID) -> None:
        self._bar, self._task = bar, task
        self._read = self._expected = 0

    def expected(self, lines: int) -> None:
        self._expected = lines
        self._bar.update(self._task, total=lines or None)

    def rows_read(self, rows: int) -> None:  # the rows read so far: exact once the export is read to its end
        self._read += rows
        self._bar.update(self._task, total=max(self._read, self._expected))

    def row(self, outcome: RowOutcome) -> None:
        self._bar.advance(self._task)
        speed = self._bar.tasks[0].speed
        self._bar.update(self._task, rate=f"{speed:,.0f}" if speed else "-")

    def concurrency(self, limit: int) -> None:
        self._bar.update(self._task, concurrency=limit)


@cli.command()
@click.argument("directory", required=False, default="cws-demo", type=click.Path(path_type=Path, file_okay=False))
@click.option("--bits", default=4096, show_default=True, help="RSA key size for the demo's keys.")
@click.option(
    "--api",
    type=click.Choice(API_VERSIONS),
    default=DEFAULT_API,
    show_default=True,
    help="CorEMR API version: the local server speaks it and the matching mappings/sample-jms*.toml is used.",
)
def demo(directory: Path, bits: int, api: ApiVersion) -> None:
    """Run the whole job end to end against a local CWS server, twice, with no set-up.

    Makes client and server keys in DIRECTORY (default ./cws-demo), starts a local CWS server for the
    CorEMR API version asked for on a free loopback port, delivers sample_data/ through the matching
    sample mapping in mappings/, runs again to show nothing is sent twice, and prints where the
    ledger is.

    Example: cws-pipeline demo --api v1
    """
    run_demo(directory, bits=bits, api=api, echo=click.echo)
