"""`bench --bulk`: a bulk load against the local server's capacity model, fixed concurrency against adaptive.

For each capacity N (requests the server serves at once, M ms each) and each way of sending (fixed 8,
fixed 64, adaptive with the default ceiling), a fresh local CWS server runs in its own process and one
`run` delivers a synthetic export to it for a set time (the run's delivery window closes then). The
figures come from the server's own report: throughput as a share of its capacity N / M, the share of
requests it answered 429, and the p95 of the time served requests spent in it (queue wait + service).
Throughput is given over the whole run and over its second half: a run of a few dozen service times is
mostly slow start, which a bulk load of hours does once; the throughput target is held to the second
half, the throttled share and the p95 to the whole run.

Client and server share this machine's cores, and both sign every request: a capacity beyond what the
machine can drive would measure our CPU, not the limit. So the bench first measures what the machine
drives (a server with no capacity limit), and where N / M would need more than HEADROOM of that, it
serves each request for longer (a larger M) and says so.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .._errors import BenchFailed
from ..delivery import DEFAULT_CEILING, RunResult, load_config, run_bookings
from ..simulator import Capacity, fetch_counters
from ._bench import Machine, machine
from ._bench_site import CLIENT_ACCESS, SimulatorProcess
from ._local_site import LocalSite, make_local_site
from ._synthetic import SAMPLE_MAPPING_TOML, write_export

__all__ = ["BulkFigures", "BulkOptions", "BulkReport", "DriveFigures", "bench_bulk"]

HEADROOM = 0.4  # N / M may use at most this share of what the machine drives, so the model is the bottleneck
STRATEGIES: tuple[tuple[str, bool, int], ...] = (
    ("fixed 8", False, 8),
    ("fixed 64", False, 64),
    ("adaptive", True, DEFAULT_CEILING),
)
_WINDOW = "00:00-12:00"  # in UTC; each run's clock is set so that the window closes `seconds` after it starts
_CLOSES = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
# What adaptive concurrency must reach at every N, with the same settings.
TARGET_SHARE, TARGET_THROTTLED, TARGET_P95 = 0.90, 0.01, 2.0


@dataclass(frozen=True)
class BulkOptions:
    """Which capacities, for how long each run sends, and the key size."""

    capacities: tuple[int, ...] = (4, 16, 64)
    service_ms: float = 50.0
    seconds: float = 20.0
    bits: int = 4096
    drive_rows: int = 2000


@dataclass(frozen=True)
class DriveFigures:
    """What this machine drives: rows/s against a local server with no capacity limit (fixed concurrency 16)."""

    rows: int
    seconds: float
    rows_per_second: float


@dataclass(frozen=True)
class BulkFigures:
    """One run: a way of sending against one capacity model, as the server saw it."""

    strategy: str
    capacity: int
    service_ms: float
    queue: int
    capacity_per_second: float  # N / M
    delivered: int
    served: int
    throttled: int
    busy_seconds: float
    capacity_share: float  # served per second of the server's busy time, over N / M
    second_half_share: float  # the same over the second half of that time: after slow start, as in a long load
    throttled_share: float  # 429s over every request the server answered
    p50_ms: float
    p95_ms: float
    p95_over_service: float
    concurrency: int  # the limit it settled at (the fixed number when fixed)
    peak_in_flight: int

    @property
    def meets_targets(self) -> bool:
        """At least 90% of capacity (once past slow start), at most 1% throttled, p95 within 2 x the service time."""
        return (
            self.second_half_share >= TARGET_SHARE
            and self.throttled_share <= TARGET_THROTTLED
            and self.p95_over_service <= TARGET_P95
        )


@dataclass(frozen=True)
class BulkReport:
    """Every run of the bulk-load scenario, and how M was chosen for each N."""

    options: BulkOptions
    machine: Machine
    drive: DriveFigures
    service_ms: dict[int, float]  # M used per N
    notes: list[str]
    runs: list[BulkFigures] = field(default_factory=list)
    total_seconds: float = 0.0

    @property
    def adaptive_meets_targets(self) -> bool:
        """True when adaptive met every target at every N."""
        adaptive = [r for r in self.runs if r.strategy == "adaptive"]
        return bool(adaptive) and all(r.meets_targets for r in adaptive)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        data = asdict(self)
        data["service_ms"] = {str(n): m for n, m in self.service_ms.items()}
        for run, figures in zip(data["runs"], self.runs, strict=True):
            run["meets_targets"] = figures.meets_targets
        data["adaptive_meets_targets"] = self.adaptive_meets_targets
        return data

    def to_json(self) -> str:
        """The report as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)


def bench_bulk(options: BulkOptions, echo: Callable[[str], None] = lambda _: None) -> BulkReport:
    """Measure what the machine drives, choose M per N, then run every strategy against every capacity."""
    started = time.perf_counter()
    where = machine()
    with tempfile.TemporaryDirectory(prefix="cws-bulk-") as tmp:
        directory = Path(tmp)
        echo(f"Making two {options.bits}-bit key pairs ...")
        site = make_local_site(directory, options.bits, CLIENT_ACCESS)
        mapping = directory / "mapping.toml"
        mapping.write_text(SAMPLE_MAPPING_TOML, encoding="utf-8")
        echo(f"Measuring what this machine drives ({options.drive_rows} rows, no capacity limit) ...")
        drive = _measure_drive(site, mapping, options.drive_rows)
        chosen, notes = choose_service_ms(options.capacities, options.service_ms, drive.rows_per_second)
        report = BulkReport(options, where, drive, chosen, notes)
        most = max(n / (m / 1000) for n, m in chosen.items())
        export = write_export(directory / "bulk.csv", math.ceil(most * options.seconds * 1.3) + 100)
        for n in options.capacities:
            capacity = Capacity(n, chosen[n])
            for name, adaptive, ceiling in STRATEGIES:
                echo(f"N = {n}, M = {chosen[n]:g} ms: {name}, {options.seconds:g} s ...")
                report.runs.append(_bulk_run(site, export, mapping, capacity, name, adaptive, ceiling, options))
    return replace(report, total_seconds=round(time.perf_counter() - started, 1))


def choose_service_ms(capacities: Sequence[int], service_ms: float, drive: float) -> tuple[dict[int, float], list[str]]:
    """M per N: SERVICE_MS, unless N / M would exceed HEADROOM of what the machine drives (then a larger M)."""
    budget = HEADROOM * drive
    chosen: dict[int, float] = {}
    notes: list[str] = []
    for n in capacities:
        m = service_ms
        if n / (m / 1000) > budget:
            m = math.ceil(n / budget * 1000 / 10) * 10  # ms, rounded up to 10
            notes.append(
                f"N = {n}: M = {m:g} ms instead of {service_ms:g} ms: {n} / {service_ms:g} ms = "
                f"{n / service_ms * 1000:,.0f} requests/s is more than {HEADROOM:.0%} of the {drive:,.0f} rows/s"
                " this machine drives (client and server share its cores), so our CPU would be measured, not the limit"
            )
        chosen[n] = float(m)
    return chosen, notes


def _measure_drive(site: LocalSite, mapping: Path, rows: int) -> DriveFigures:
    export = write_export(site.directory / "drive.csv", rows, seed=2)
    with SimulatorProcess(site) as server:
        ledger = site.directory / "drive.sqlite"
        config_path = site.write_config(server.url, 16, ledger, name="drive.toml", extra="adaptive = false\n")
        wall = time.perf_counter()
        result = run_bookings(export, mapping, load_config(config_path))
        wall = time.perf_counter() - wall
    _check_delivered(result, rows, "the drive measurement")
    return DriveFigures(rows, round(wall, 3), round(rows / wall, 1))


def _bulk_run(
    site: LocalSite,
    export: Path,
    mapping: Path,
    capacity: Capacity,
    name: str,
    adaptive: bool,
    ceiling: int,
    options: BulkOptions,
) -> BulkFigures:
    """One run of NAME against CAPACITY, sending for options.seconds; the figures from the server's report."""
    tag = f"{capacity.capacity}-{name.replace(' ', '-')}"
    with SimulatorProcess(site, capacity=capacity) as server:
        settings = f'adaptive = {"true" if adaptive else "false"}\nwindow = "{_WINDOW}"\ntimezone = "UTC"\n'
        ledger = site.directory / f"{tag}.sqlite"
        config_path = site.write_config(server.url, ceiling, ledger, name=f"{tag}.toml", extra=settings)
        opened = time.monotonic()

        def now() -> datetime:  # the window closes options.seconds after the run starts
            return _CLOSES - timedelta(seconds=options.seconds) + timedelta(seconds=time.monotonic() - opened)

        result = run_bookings(export, mapping, load_config(config_path), now=now)
        counters = fetch_counters(server.url)
    seen = counters.capacity
    if seen is None or seen.busy_seconds <= 0:
        raise BenchFailed(f"N = {capacity.capacity}, {name}: the local server reported no capacity figures")
    if any(n > 1 for n in counters.creates.values()):
        raise BenchFailed(f"N = {capacity.capacity}, {name}: a patient was created twice")
    answered = seen.served + seen.throttled
    return BulkFigures(
        strategy=name,
        capacity=capacity.capacity,
        service_ms=capacity.service_ms,
        queue=seen.queue,
        capacity_per_second=round(capacity.per_second, 1),
        delivered=result.counts["delivered"],
        served=seen.served,
        throttled=seen.throttled,
        busy_seconds=seen.busy_seconds,
        capacity_share=round(seen.served / seen.busy_seconds / capacity.per_second, 4),
        second_half_share=round(seen.second_half_per_second / capacity.per_second, 4),
        throttled_share=round(seen.throttled / answered, 4) if answered else 0.0,
        p50_ms=seen.p50_ms,
        p95_ms=seen.p95_ms,
        p95_over_service=round(seen.p95_ms / capacity.service_ms, 3) if capacity.service_ms else 0.0,
        concurrency=result.concurrency,
        peak_in_flight=result.peak_in_flight,
    )


def _check_delivered(result: RunResult, rows: int, what: str) -> None:
    if result.counts["delivered"] != rows:
        raise BenchFailed(f"{what}: {result.counts['delivered']} of {rows} rows delivered: {dict(result.counts)}")
