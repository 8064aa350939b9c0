"""`run` and `demo`: the product's main job."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..delivery import RowOutcome, RunConfig, RunResult, load_config, print_summary, run_bookings
from ..protocol import API_VERSIONS, DEFAULT_API, ApiVersion
from ..tools import run_demo
from . import cli


@cli.command()
@click.argument("csv", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--mapping", "mapping", required=True, type=click.Path(path_type=Path), help="Mapping file (TOML).")
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path), help="Run config (TOML).")
@click.option("-v", "--verbose", is_flag=True, help="Print the summary even when all went well and no terminal.")
def run(csv: Path, mapping: Path, config_path: Path, verbose: bool) -> None:
    """Deliver every booking in CSV to CorEMR: map, sign, send, verify, record.

    Silent when every row is delivered or skipped and stdout is not a terminal (cron mails output);
    otherwise one line per state and the rows that need attention. Exit codes: 0 all delivered or
    skipped, 1 some rows not delivered, 2 usage/config/input error (nothing sent), 3 security stop,
    4 another run holds the ledger.

    Example: cws-pipeline run bookings.csv --mapping mappings/sample-jms.toml --config cws.toml
    """
    config = load_config(config_path)
    interactive = sys.stdout.isatty()
    result = _run_with_progress(csv, mapping, config) if interactive else run_bookings(csv, mapping, config)
    if verbose or interactive or result.exit_code != 0:
        print_summary(result, click.echo)
    sys.exit(result.exit_code)


def _run_with_progress(csv: Path, mapping: Path, config: RunConfig) -> RunResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as progress:
        task = progress.add_task("Delivering", total=0)

        def on_total(n: int) -> None:
            progress.update(task, total=(progress.tasks[0].total or 0) + n)

        def on_row(_: RowOutcome) -> None:
            progress.advance(task)

        return run_bookings(csv, mapping, config, on_row=on_row, on_total=on_total)


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
