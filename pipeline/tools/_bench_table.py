"""What `bench` prints on a terminal: one table of the figures, with the targets they are held to."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ._bench import BenchReport, StartupFigures
from ._bench_bulk import HEADROOM, TARGET_P95, TARGET_SHARE, TARGET_THROTTLED, BulkReport

__all__ = ["bench_table", "bulk_table", "print_bench", "print_bulk"]


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
        f"run {r.rows:,} rows (adaptive, ceiling {o.concurrency}{latency})",
        f"{r.rows_per_second:,.1f} rows/s",
        f"{r.delivered:,} delivered in {r.seconds:.2f} s; {r.duplicates} created twice;"
        f" settled at {r.settled_concurrency} ({r.peak_in_flight} in flight at most)",
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
    if report.startup is not None:
        table.add_row(*_startup_row(report.startup))
    load = _load(m.load_average)
    table.caption = f"total {report.total_seconds:g} s; load average before {load}; client CPU = {report.cpu_scope}"
    return table


def _startup_row(s: StartupFigures) -> tuple[str, str, str]:
    """The command's start-up beside the interpreter's."""
    return (
        f"start-up: cws-pipeline --help (median of {s.runs})",
        f"{s.help_seconds:.3f} s",
        f"{s.ratio:g} × python -c pass ({s.python_seconds:.3f} s)",
    )


def print_bench(report: BenchReport, console: Console | None = None) -> None:
    """Print the table to the terminal (or the given console); 120 columns wide when not a terminal."""
    (console or _console(width=120)).print(bench_table(report))


def bulk_table(report: BulkReport) -> Table:
    """The bulk-load scenario as a rich table: each way of sending against each capacity model."""
    m = report.machine
    table = Table(title=f"cws-pipeline bench --bulk: {m.cpu_count} × {m.cpu_model}, Python {m.python}")
    table.add_column("server capacity N / M")
    table.add_column("sending", no_wrap=True)
    for name in ("of capacity: run", "second half", "throttled", "server p95", "concurrency", "delivered"):
        table.add_column(name, justify="right")
    for r in report.runs:
        table.add_row(
            f"{r.capacity} × {r.service_ms:g} ms = {r.capacity_per_second:,.0f}/s, queue {r.queue}",
            r.strategy,
            f"{r.capacity_share:.1%}",
            f"{r.second_half_share:.1%}",
            f"{r.throttled_share:.2%}",
            f"{r.p95_ms:,.0f} ms = {r.p95_over_service:.2f} × M",
            f"{r.concurrency} (peak {r.peak_in_flight})",
            f"{r.delivered:,}",
        )
    d, o = report.drive, report.options
    verdict = "met" if report.adaptive_meets_targets else "NOT met"
    lines = [
        f"Each run sends for {o.seconds:g} s; RSA-{o.bits}; figures from the server's own report.",
        f"This machine drives {d.rows_per_second:,.0f} rows/s (no capacity limit); M is chosen so that N / M"
        f" stays within {HEADROOM:.0%} of that.",
        *report.notes,
        f"Targets for adaptive at every N: ≥ {TARGET_SHARE:.0%} of capacity (second half), ≤ {TARGET_THROTTLED:.0%}"
        " throttled,"
        f" p95 ≤ {TARGET_P95:g} × M: {verdict}. Total {report.total_seconds:g} s; load average before"
        f" {_load(m.load_average)}.",
    ]
    table.caption = "\n".join(lines)
    return table


def print_bulk(report: BulkReport, console: Console | None = None) -> None:
    """Print the bulk-load table (150 columns wide when not a terminal)."""
    (console or _console(width=150)).print(bulk_table(report))


def _console(width: int) -> Console:
    """The terminal's console; off a terminal (a file, a pipe) one WIDTH columns wide, so no column is cut."""
    console = Console()
    return console if console.is_terminal else Console(width=width)


def _load(load_average: list[float]) -> str:
    """'1.2, 0.9, 0.7': the 1, 5 and 15 minute load averages, or 'unknown' where the system gives none."""
    return ", ".join(f"{x:g}" for x in load_average) or "unknown"
