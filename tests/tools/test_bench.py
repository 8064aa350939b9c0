"""`bench` at a tiny size through the CLI: every figure present and sane, and no server left behind."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline._errors import BenchFailed
from pipeline.cli import cli
from pipeline.tools._bench_validate import _child

ROWS = 20
BASELINE_ROWS = 3


def simulator_children() -> list[int]:
    """Pids of `simulate` processes this test process started and that still exist."""
    me = str(os.getpid())
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = (proc / "stat").read_text().rsplit(")", 1)[1].split()[1]
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:  # it ended while we looked
            continue
        if ppid == me and b"simulate" in cmdline:
            found.append(int(proc.name))
    return found


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    """One tiny bench, with the manual method, as the JSON the CLI prints."""
    result = CliRunner().invoke(
        cli,
        ["bench", "--rows", str(ROWS), "--validate-rows", str(ROWS), "--bits", "2048", "--baseline",
         "--baseline-rows", str(BASELINE_ROWS), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    return data


@pytest.mark.slow
def test_bench_json_reports_every_figure_with_positive_rates(report: dict[str, Any]) -> None:
    assert report["machine"]["cpu_count"] >= 1 and report["machine"]["cpu_model"]
    assert len(report["machine"]["load_average"]) == 3
    assert report["options"]["rows"] == ROWS and report["options"]["bits"] == 2048
    floor = report["floor"]
    assert floor["signature_cpu_ms"] > 0 and floor["samples"] > 0
    assert len(floor["medians_ms"]) == 2 and floor["signature_cpu_ms"] == min(floor["medians_ms"])  # before, after
    validate = report["validate"]
    assert validate["rows"] == ROWS and validate["rows_per_second"] > 0 and validate["peak_rss_mb"] > 0
    run = report["run"]
    assert run["rows"] == run["delivered"] == run["server_creates"] == ROWS
    assert run["duplicates"] == 0
    assert run["rows_per_second"] > 0 and run["cpu_ms_per_row"] > 0 and run["server_cpu_ms_per_row"] >= 0
    assert run["ideal_seconds"] is None and run["ratio_to_ideal"] is None  # no latency asked for
    rerun = report["rerun"]
    assert rerun["rows"] == rerun["skipped"] == ROWS and rerun["rows_per_second"] > 0
    rebooking = report["rebooking"]  # the same people booked again: the ledger knows them, one request each
    assert rebooking["rows"] == rebooking["delivered"] == rebooking["booking_creates"] == ROWS // 5
    assert rebooking["requests_per_row"] == 1.0 and rebooking["duplicates"] == 0 and rebooking["rows_per_second"] > 0
    assert len(rerun["all_seconds"]) == rerun["repeats"] and sorted(rerun["all_seconds"])[1] == rerun["seconds"]
    assert report["cpu_scope"] and report["total_seconds"] > 0
    startup = report["startup"]  # cws-pipeline --help beside python -c pass, each in a fresh interpreter
    assert startup["runs"] > 0 and startup["help_seconds"] > 0 and startup["python_seconds"] > 0
    assert startup["ratio"] == pytest.approx(startup["help_seconds"] / startup["python_seconds"], rel=0.05, abs=0.051)


@pytest.mark.slow
def test_bench_ratios_are_computed_from_the_reported_figures(report: dict[str, Any]) -> None:
    run, floor, baseline = report["run"], report["floor"], report["baseline"]
    assert run["cpu_ms_per_row"] == pytest.approx(run["cpu_seconds"] * 1000 / run["delivered"], rel=0.01, abs=0.01)
    assert run["ratio_to_floor"] == pytest.approx(run["cpu_ms_per_row"] / floor["signature_cpu_ms"], rel=0.01)
    assert run["rows_per_second"] == pytest.approx(run["delivered"] / run["seconds"], rel=0.01)
    assert baseline["rows"] == baseline["accepted"] == BASELINE_ROWS
    assert baseline["sent_with"] in ("curl", "httpx") and baseline["rows_per_second"] > 0
    speedup = run["rows_per_second"] / baseline["rows_per_second"]  # reported to one decimal: allow its rounding
    assert baseline["speedup"] == pytest.approx(speedup, rel=0.05, abs=0.051)


@pytest.mark.slow
def test_bench_leaves_no_server_process_behind(report: dict[str, Any]) -> None:
    assert report["run"]["delivered"] == ROWS  # the server was up and answering
    assert simulator_children() == []


@pytest.mark.slow
def test_bench_table_names_the_floor_and_the_latency_target() -> None:
    result = CliRunner().invoke(
        cli, ["bench", "--rows", "5", "--validate-rows", "5", "--bits", "2048", "--latency-ms", "5"]
    )
    assert result.exit_code == 0, result.output
    for text in ("signature CPU", "the floor", "client CPU per delivered row", "re-run", "latency / concurrency",
                 "re-book 1 of the same people", "1 requests per row; 1 bookings added, 0 twice",
                 "start-up: cws-pipeline --help (median of 10)", "× python -c pass"):  # fmt: skip
        assert text in result.output
    assert simulator_children() == []


def test_a_failing_measuring_child_is_one_line_naming_why() -> None:
    with pytest.raises(BenchFailed, match=r"a measuring child process failed: the export is gone\Z"):
        _child("import sys; print('half a line', file=sys.stderr); sys.exit('the export is gone')")
    assert BenchFailed("x").exit_code == 1
