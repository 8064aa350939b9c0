"""What `bench` prints on a terminal: one table of the figures, with the targets they are held to."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ._bench import BenchReport

__all__ = ["bench_table", "print_bench"]


def bench_table(report: BenchReport) -> Table:
    """The report as a rich table: what was measured, the figure, and what it is compared with."""
    o, f, v, r, rr, b = report.options, report.floor, report.validate, report.run, report.rerun, report.baseline
    m = report.machine
    table = Table(title=f"cws-pipeline bench: {m.cpu_count} × {m.cpu_model}, Python {m.python}")
    table.add_column("measure")
    table.add_column("figure", justify="right")
    table.add_column("compared with")
    table.add_row(
        f"RSA-{f.bits} signature CPU (median of {f.samples})",
        f"{f.signature_cpu_ms:.3f} ms",
        "the floor: the lower of " + " ms before and ".join(f"{m:.3f}" for m in f.medians_ms) + " ms after the run",
    )
    table.add_row(
        f"validate {v['rows']:,} rows", f"{v['rows_per_second']:,} rows/s", f"peak memory {v['peak_rss_mb']} MB"
    )
    latency = f", server latency {o.latency_ms:g} ms" if o.latency_ms else ""
    table.add_row(
        f"run {r.rows:,} rows (concurrency {o.concurrency}{latency})",
        f"{r.rows_per_second:,.1f} rows/s",
        f"{r.delivered:,} delivered in {r.seconds:.2f} s; {r.duplicates} created twice",
    )
    table.add_row("client CPU per delivered row", f"{r.cpu_ms_per_row:.3f} ms", f"{r.ratio_to_floor:.2f} × the floor")
    table.add_row("server CPU per row (not counted above)", f"{r.server_cpu_ms_per_row:.3f} ms", "separate process")
    if r.ideal_seconds is not None and r.ratio_to_ideal is not None:
        table.add_row(
            "run time vs rows × latency / concurrency", f"{r.ratio_to_ideal:.2f} ×", f"ideal {r.ideal_seconds:.2f} s"
        )
    table.add_row(
        f"re-run {rr.rows:,} rows (all skipped)",
        f"{rr.rows_per_second:,.0f} rows/s",
        f"median of {rr.repeats}: {rr.seconds:.2f} s",
    )
    if report.rebooking is not None:
        rb = report.rebooking
        table.add_row(
            f"re-book {rb.rows:,} of the same people",
            f"{rb.rows_per_second:,.1f} rows/s",
            f"{rb.requests_per_row:g} requests per row; {rb.booking_creates:,} bookings added, {rb.duplicates} twice",
        )
    if b is not None:
        table.add_row(
            f"manual method (openssl + {b.sent_with}), {b.rows} rows",
            f"{b.rows_per_second:,.1f} rows/s",
            f"run is {b.speedup:g} × faster",
        )
    load = ", ".join(f"{x:g}" for x in m.load_average) or "unknown"
    table.caption = f"total {report.total_seconds:g} s; load average before {load}; client CPU = {report.cpu_scope}"
    return table


def print_bench(report: BenchReport, console: Console | None = None) -> None:
    """Print the table to the terminal (or the given console); 120 columns wide when not a terminal."""
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=120)
    console.print(bench_table(report))
