"""`bench --bulk` at a tiny size: every strategy runs against a capacity model, figures from the server's report."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from pipeline.tools import BulkOptions, bench_bulk
from pipeline.tools._bench_bulk import HEADROOM, STRATEGIES, choose_service_ms
from pipeline.tools._bench_table import bulk_table

from .test_bench import simulator_children


def test_m_is_raised_where_n_over_m_would_need_more_than_the_headroom_of_what_the_machine_drives() -> None:
    chosen, notes = choose_service_ms((4, 64), 50.0, drive=500.0)
    assert chosen[4] == 50.0  # 80 requests/s is within 40% of 500
    assert chosen[64] == 320.0 and HEADROOM * 500 >= 64 / 0.320  # 1,280/s is not: 200/s is
    [note] = notes
    assert note.startswith("N = 64: M = 320 ms instead of 50 ms: 64 / 50 ms = 1,280 requests/s is more than 40%")


@pytest.mark.slow
def test_a_tiny_bulk_bench_runs_every_strategy_and_reports_what_the_server_saw() -> None:
    report = bench_bulk(BulkOptions(capacities=(2,), service_ms=20.0, seconds=2.0, bits=2048, drive_rows=40))
    assert report.drive.rows == 40 and report.drive.rows_per_second > 0
    assert [r.strategy for r in report.runs] == [name for name, _, _ in STRATEGIES]
    for run in report.runs:
        assert run.capacity == 2 and run.queue == 4 and run.served == run.delivered > 0
        assert run.capacity_share > 0 and 0 <= run.throttled_share <= 1 and run.p95_ms >= run.p50_ms > 0
    fixed8, fixed64, adaptive = report.runs
    assert fixed8.concurrency == 8 and fixed64.concurrency == 64
    assert fixed64.throttled > 0  # 64 at a server serving 2 and queueing 4: turned away
    assert adaptive.peak_in_flight <= 8 and adaptive.concurrency < 64
    data = json.loads(report.to_json())
    assert data["runs"][2]["meets_targets"] == adaptive.meets_targets and "adaptive_meets_targets" in data
    console = Console(width=200, record=True)
    console.print(bulk_table(report))
    text = console.export_text()
    assert "fixed 64" in text and "adaptive" in text and "This machine drives" in text
    assert simulator_children() == []
