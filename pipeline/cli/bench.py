"""`cws-pipeline bench`: measure speed on this machine against the signature floor and the manual method."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click
from click.core import ParameterSource

from ..tools import BenchOptions, BulkOptions, bench_bulk, print_bench, print_bulk, run_bench
from . import cli

_BULK_BITS = 2048  # the bulk-load scenario measures the concurrency limit, not signing: cheaper keys leave CPU

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
@click.option("--bulk", is_flag=True,
              help="Instead: a bulk load (fixed 8, fixed 64, adaptive) against capacity models.")  # fmt: skip
@click.option("--seconds", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="With --bulk: how long each run sends.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON instead of a table.")
@click.pass_context
def bench(
    ctx: click.Context,
    rows: int,
    latency_ms: float,
    concurrency: int,
    bits: int,
    validate_rows: int,
    baseline: bool,
    baseline_rows: int,
    bulk: bool,
    seconds: float,
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
        cws-pipeline bench --bulk

    With --bulk it measures a bulk load instead: against local servers that serve N = 4, 16 and 64
    requests at once (M = 50 ms each, a queue of 2 x N, then 429), one run each with fixed concurrency
    8, fixed 64 and adaptive concurrency, sending for --seconds; it prints throughput as a share of
    the server's capacity N / M, the share of requests throttled and the server's p95. It first
    measures what this machine drives and serves each request for longer where N / M would need
    more than 40% of that (saying so), and uses 2048-bit keys unless --bits is given. About 5 minutes.
    """
    echo: Callable[[str], None] = lambda line: click.echo(line, err=True) if sys.stderr.isatty() else None  # noqa: E731
    if bulk:
        if ctx.get_parameter_source("bits") is ParameterSource.DEFAULT:
            bits = _BULK_BITS
        bulk_report = bench_bulk(BulkOptions(seconds=seconds, bits=bits), echo=echo)
        click.echo(bulk_report.to_json()) if as_json else print_bulk(bulk_report)
        return
    options = BenchOptions(
        rows=rows,
        latency_ms=latency_ms,
        concurrency=concurrency,
        bits=bits,
        validate_rows=validate_rows,
        baseline=baseline,
        baseline_rows=baseline_rows,
    )
    report = run_bench(options, echo=echo)
    if as_json:
        click.echo(report.to_json())
    else:
        print_bench(report)
