"""`bench`: the product measures itself against the physical floor (one RSA signature per row) and
against the manual method, on the machine it runs on.

One bench: make a temp site (keys, a synthetic export, a mapping), start the local CWS server in its
own process, then measure the signature floor, `validate`, a first `run`, a re-run of the same file
(all skipped) and, optionally, the manual method at the same server latency.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .._errors import BenchFailed
from ..delivery import RunConfig, load_config, run_bookings
from ..mapping import load_mapping, map_csv
from ..protocol import load_private_key
from ..simulator import fetch_counters
from ._bench_manual import manual_method
from ._bench_rebookings import RebookingFigures, measure_rebookings
from ._bench_site import CLIENT_ACCESS, BenchSite, SimulatorProcess, make_site
from ._bench_startup import StartupFigures, measure_startup
from ._bench_validate import bench_validate

__all__ = [
    "BaselineFigures",
    "BenchOptions",
    "BenchReport",
    "FloorFigures",
    "Machine",
    "RebookingFigures",
    "RerunFigures",
    "RunFigures",
    "StartupFigures",
    "machine",
    "run_bench",
    "signature_cpu_seconds",
]

_RERUNS = 3  # re-runs are cheap and repeatable: report their median
CPU_SCOPE = (
    "process CPU time (user + system) of run_bookings in this process, all its threads included;"
    " the run starts no child processes; the key was loaded (and cached) before the run"
)


@dataclass(frozen=True)
class BenchOptions:
    """What to measure and at which size."""

    rows: int = 5000
    latency_ms: float = 0.0
    concurrency: int = 8
    bits: int = 4096
    validate_rows: int = 100_000
    baseline: bool = False
    baseline_rows: int = 20
    signature_samples: int = 300
    startup_runs: int = 10


@dataclass(frozen=True)
class Machine:
    """Where the bench ran."""

    cpu_count: int
    cpu_model: str
    python: str
    platform: str
    load_average: list[float]  # 1, 5 and 15 minutes, as the bench started: how busy the machine already was


@dataclass(frozen=True)
class FloorFigures:
    """The CPU time of one RSA signature of a body: what each delivered row must cost at least.

    Measured before the run and again after it; the lower median counts, so that a busy moment on a
    shared machine cannot inflate the floor and flatter the ratio to it.
    """

    bits: int
    samples: int  # per measurement
    signature_cpu_ms: float  # the lower of the medians
    medians_ms: tuple[float, float]  # before the run, after it


@dataclass(frozen=True)
class RunFigures:
    """A first run of the export: every row sent, signed, verified and recorded."""

    rows: int
    delivered: int
    seconds: float
    rows_per_second: float
    cpu_seconds: float
    cpu_ms_per_row: float
    ratio_to_floor: float
    server_cpu_ms_per_row: float
    server_creates: int
    duplicates: int
    ideal_seconds: float | None  # rows x latency / concurrency, when the server adds latency
    ratio_to_ideal: float | None
    settled_concurrency: int = 0  # where adaptive concurrency settled (concurrency is its ceiling)
    peak_in_flight: int = 0


@dataclass(frozen=True)
class RerunFigures:
    """The same file again: every row already delivered, so skipped."""

    rows: int
    skipped: int
    seconds: float  # the median of `repeats` re-runs
    rows_per_second: float
    repeats: int
    all_seconds: list[float]


@dataclass(frozen=True)
class BaselineFigures:
    """The manual method on a sample, and how many times faster the run was."""

    rows: int
    accepted: int
    seconds: float
    rows_per_second: float
    sent_with: str
    speedup: float  # run rows/s divided by the manual method's rows/s, same server latency


@dataclass(frozen=True)
class BenchReport:
    """Everything one bench measured."""

    options: BenchOptions
    machine: Machine
    floor: FloorFigures
    validate: dict[str, Any]
    run: RunFigures
    rerun: RerunFigures
    baseline: BaselineFigures | None
    cpu_scope: str
    total_seconds: float
    rebooking: RebookingFigures | None = None  # the first run's people booked again
    startup: StartupFigures | None = None  # the command's start-up, measured before anything else runs

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return asdict(self)

    def to_json(self) -> str:
        """The report as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)


def machine() -> Machine:
    """CPU count (usable by this process) and model, Python version and platform."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor() or "unknown"
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else []
    return Machine(cpus, model, platform.python_version(), platform.platform(terse=True), load)


def signature_cpu_seconds(key: rsa.RSAPrivateKey, body: bytes, samples: int) -> float:
    """Median thread CPU time of one PKCS#1 v1.5 SHA-256 signature of BODY, over SAMPLES signatures."""
    times = []
    for _ in range(samples):
        started = time.thread_time()
        key.sign(body, padding.PKCS1v15(), hashes.SHA256())
        times.append(time.thread_time() - started)
    return statistics.median(times)


def run_bench(options: BenchOptions, echo: Callable[[str], None] = lambda _: None) -> BenchReport:
    """Make a temp site, start the local CWS server in its own process, measure; the server is gone after."""
    started = time.perf_counter()
    where = machine()
    echo(f"Timing `cws-pipeline --help` and `python -c pass`, {options.startup_runs} times each ...")
    startup = measure_startup(options.startup_runs)
    with tempfile.TemporaryDirectory(prefix="cws-bench-") as tmp:
        directory = Path(tmp)
        echo(f"Making two {options.bits}-bit key pairs and a {options.rows}-row export ...")
        site = make_site(directory, options.rows, options.bits)
        key = load_private_key(site.client_key)
        first_bodies = _sample_bodies(site, max(options.baseline_rows, 1))
        echo(f"Measuring one RSA-{options.bits} signature ({options.signature_samples} samples) ...")
        before = signature_cpu_seconds(key, first_bodies[0], options.signature_samples) * 1000
        echo(f"Validating {options.validate_rows} rows (in child processes, for their peak memory) ...")
        validated = bench_validate(options.validate_rows, directory / "validate")
        with SimulatorProcess(site, options.latency_ms) as server:
            echo(f"Local CWS server (pid {server.pid}) at {server.url}; running {options.rows} rows ...")
            config = load_config(site.write_config(server.url, options.concurrency, directory / "ledger.sqlite"))
            run = _measure_run(site, config, server, options)
            echo(f"Running the same file again, {_RERUNS} times (every row skipped) ...")
            rerun = _measure_rerun(site, config)
            rebooking = _measure_rebookings(site, config, server.url, options, echo)
            echo(f"Measuring one RSA-{options.bits} signature again ...")
            after = signature_cpu_seconds(key, first_bodies[0], options.signature_samples) * 1000
            floor = FloorFigures(
                options.bits,
                options.signature_samples,
                round(min(before, after), 4),
                (round(before, 4), round(after, 4)),
            )
            run = replace(run, ratio_to_floor=round(run.cpu_ms_per_row / floor.signature_cpu_ms, 3))
            baseline = None
            if options.baseline:
                echo(f"The manual method (openssl + curl) on {options.baseline_rows} rows ...")
                sample = first_bodies[: options.baseline_rows]
                baseline = _measure_baseline(site, server.url, sample, run, directory / "manual")
    return BenchReport(
        options=options,
        machine=where,
        floor=floor,
        validate=validated,
        run=run,
        rerun=rerun,
        baseline=baseline,
        cpu_scope=CPU_SCOPE,
        total_seconds=round(time.perf_counter() - started, 1),
        rebooking=rebooking,
        startup=startup,
    )


def _measure_rebookings(
    site: BenchSite, config: RunConfig, url: str, options: BenchOptions, echo: Callable[[str], None]
) -> RebookingFigures:
    rows = max(1, options.rows // 5)
    echo(f"Booking {rows} of the same people again (re-bookings: the ledger knows them) ...")
    return measure_rebookings(site.export, site.mapping, config, url, rows)


def _measure_baseline(
    site: BenchSite, url: str, bodies: list[bytes], run: RunFigures, workdir: Path
) -> BaselineFigures:
    """The manual method on BODIES (under external ids of its own), and how many times faster the run was."""
    manual = manual_method(
        [_manual_body(b) for b in bodies], url + "/ws/patients/", site.client_key, CLIENT_ACCESS, workdir
    )
    return BaselineFigures(
        manual.rows,
        manual.accepted,
        round(manual.seconds, 3),
        round(manual.rows_per_second, 2),
        manual.sent_with,
        round(run.rows_per_second / manual.rows_per_second, 1) if manual.rows_per_second else 0.0,
    )


def _sample_bodies(site: BenchSite, n: int) -> list[bytes]:
    rows = next(map_csv(site.export, load_mapping(site.mapping), chunk_rows=n), [])
    bodies = [r.body for r in rows[:n] if r.body is not None]
    if not bodies:
        raise BenchFailed(f"{site.export}: the synthetic export gave no valid row")
    return bodies


def _manual_body(body: bytes) -> bytes:
    """The same booking under another external_id, so the manual method creates patients of its own."""
    data = json.loads(body)
    data["external_id"] = "M" + str(data["external_id"])[1:]
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _measure_run(site: BenchSite, config: RunConfig, server: SimulatorProcess, options: BenchOptions) -> RunFigures:
    server_cpu = server.cpu_seconds()
    cpu, wall = time.process_time(), time.perf_counter()
    result = run_bookings(site.export, site.mapping, config)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    server_cpu = server.cpu_seconds() - server_cpu
    delivered = result.counts["delivered"]
    per_row = cpu / delivered * 1000 if delivered else 0.0
    creates = fetch_counters(server.url).creates
    ideal = options.rows * options.latency_ms / 1000 / options.concurrency if options.latency_ms > 0 else None
    return RunFigures(
        rows=result.rows,
        delivered=delivered,
        seconds=round(wall, 4),
        rows_per_second=round(delivered / wall, 1),
        cpu_seconds=round(cpu, 5),
        cpu_ms_per_row=round(per_row, 4),
        ratio_to_floor=0.0,  # set once the floor is known (measured again after the run)
        server_cpu_ms_per_row=round(server_cpu / delivered * 1000, 3) if delivered else 0.0,
        server_creates=len(creates),
        duplicates=sum(1 for n in creates.values() if n > 1),
        ideal_seconds=round(ideal, 3) if ideal is not None else None,
        ratio_to_ideal=round(wall / ideal, 3) if ideal else None,
        settled_concurrency=result.concurrency,
        peak_in_flight=result.peak_in_flight,
    )


def _measure_rerun(site: BenchSite, config: RunConfig) -> RerunFigures:
    walls = []
    for _ in range(_RERUNS):
        wall = time.perf_counter()
        result = run_bookings(site.export, site.mapping, config)
        walls.append(time.perf_counter() - wall)
        if result.counts["skipped"] != result.rows:
            raise BenchFailed(f"a re-run sent rows again: {dict(result.counts)}")
    median = statistics.median(walls)
    return RerunFigures(
        result.rows, result.counts["skipped"], round(median, 3), round(result.rows / median, 1), _RERUNS,
        [round(w, 3) for w in walls],
    )  # fmt: skip
