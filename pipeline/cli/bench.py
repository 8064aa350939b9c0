"""`cws-pipeline bench`: measure speed on this machine against the signature floor and the manual method."""

from __future__ import annotations

import sys

import click

from ..tools import BenchOptions, print_bench, run_bench
from . import cli

__all__ = ["bench"]


@cli.command()
@click.option("--rows", type=click.IntRange(min=1), default=5000, show_default=True, help="Rows to run.")
@click.option("--latency-ms", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Delay the local server adds to every answer.")  # fmt: skip
@click.option("--concurrency", type=click.IntRange(min=1), default=8, show_default=True, help="Requests in flight.")
@click.option("--bits", type=click.IntRange(min=2048), default=4096, show_default=True, help="RSA key size.")
@click.option("--validate-rows", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Rows in the export validate measures (its own file).")  # fmt: skip
@click.option("--baseline", is_flag=True, help="Also time the manual method (openssl + curl per row).")
@click.option("--baseline-rows", type=click.IntRange(min=1), default=20, show_default=True,
              help="Rows the manual method sends.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON instead of a table.")
def bench(
    rows: int,
    latency_ms: float,
    concurrency: int,
    bits: int,
    validate_rows: int,
    baseline: bool,
    baseline_rows: int,
    as_json: bool,
) -> None:
    """Measure validate and run speed on this machine, against one RSA signature per row.

    Everything happens in a temp directory with fresh keys, a synthetic export and the local CWS
    server in its own process: the CPU time of one signature (the floor), validate rows/s and peak
    memory, run rows/s and client CPU per delivered row, a re-run (all skipped), and with
    --baseline the walkthrough's manual method (openssl + curl per row) at the same latency.

    The defaults take about 20 to 30 seconds on a 2-core machine. Examples:

    \b
        cws-pipeline bench --baseline
        cws-pipeline bench --rows 2000 --latency-ms 100 --concurrency 32 --baseline --json
    """
    options = BenchOptions(
        rows=rows,
        latency_ms=latency_ms,
        concurrency=concurrency,
        bits=bits,
        validate_rows=validate_rows,
        baseline=baseline,
        baseline_rows=baseline_rows,
    )
    progress = sys.stderr.isatty()
    report = run_bench(options, echo=lambda line: click.echo(line, err=True) if progress else None)
    if as_json:
        click.echo(report.to_json())
    else:
        print_bench(report)
