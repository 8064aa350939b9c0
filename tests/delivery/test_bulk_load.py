"""Bulk loads against the real local server: a server that throttles hard, the delivery window, the new settings."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline import ConfigError
from pipeline.cli import cli
from pipeline.delivery import (
    DEFAULT_CEILING,
    DEFAULT_FIXED,
    RunProgress,
    RunResult,
    load_config,
    run_bookings,
    summary_lines,
)
from pipeline.delivery._pacing import RunStop
from pipeline.delivery._run import _limiter
from pipeline.ledger import Ledger
from pipeline.simulator import Capacity

from ..sites import Site, booking_rows


def run(site: Site, csv: Path, now: Callable[[], datetime] | None = None) -> RunResult:
    return run_bookings(csv, site.mapping, load_config(site.config), sleep=lambda _: None, now=now)


@pytest.fixture
def throttling_site(site: Site) -> Site:
    """A server that serves one request at a time and lets none wait: every other request at once gets 429."""
    site.restart_server(capacity=Capacity(1, service_ms=5, queue=0, retry_after="0.05"))
    return site


@pytest.fixture
def slow_site(site: Site) -> Site:
    """A server that answers every request 20 ms late."""
    site.restart_server(latency_ms=20)
    return site


def test_a_server_that_throttles_hard_still_gets_every_row_exactly_once(throttling_site: Site) -> None:
    site = throttling_site
    site.write_config(concurrency=16, max_attempts=20)
    result = run(site, site.write_csv(booking_rows(40)))
    assert result.counts["delivered"] == 40 and result.exit_code == 0
    counters = site.server.counters()
    assert counters.capacity is not None and counters.capacity.throttled > 0  # it did throttle
    assert counters.creates == {f"P{i:06d}": 1 for i in range(1, 41)}
    assert result.adaptive and result.concurrency < 16  # it backed off from the ceiling


def window_ending(at: datetime, minutes: int = 60) -> str:
    """A window of MINUTES that ends at AT (whole minutes, UTC)."""
    return f"{at - timedelta(minutes=minutes):%H:%M}-{at:%H:%M}"


def test_outside_the_window_a_run_sends_nothing_and_exits_5_saying_when_it_opens(site: Site) -> None:
    opens = (datetime.now(UTC) + timedelta(hours=2)).replace(second=0, microsecond=0)
    window = f"{opens:%H:%M}-{opens + timedelta(hours=1):%H:%M}"
    site.write_config(window=window, timezone="UTC")
    r = CliRunner().invoke(cli, ["run", str(site.write_csv(booking_rows(3))), "--mapping", str(site.mapping),
                                 "--config", str(site.config)])  # fmt: skip
    assert r.exit_code == 5 and len(r.output.splitlines()) == 1
    assert r.output.startswith(f"Not sending: outside the delivery window {window} UTC: it opens at {opens:%H:%M} (in ")
    assert r.output.endswith(" min); nothing was sent: run again then\n")  # in 1 h 59 min, or 2 h 00 min
    assert site.server.counters().requests == 0 and not site.ledger.exists()


def test_a_set_up_that_outlasts_the_window_sends_nothing_past_its_close(site: Site) -> None:
    closes = (datetime.now(UTC) + timedelta(hours=3)).replace(second=0, microsecond=0)
    window = window_ending(closes)
    site.write_config(window=window, timezone="UTC")
    times = iter([closes - timedelta(seconds=1)])  # open when the run starts; closed by the time it would send

    first = run(site, site.write_csv(booking_rows(5)), now=lambda: next(times, closes + timedelta(seconds=1)))
    assert first.stopped_early == f"the delivery window {window} closed at {closes:%H:%M}"
    assert first.exit_code == 5 and first.counts["failed"] == 5
    assert site.server.counters().requests == 0  # the watch reckoned the close from the start: not tomorrow's


def test_the_window_closing_stops_sending_and_the_next_run_sends_the_rest_once(slow_site: Site) -> None:
    site = slow_site
    closes = (datetime.now(UTC) + timedelta(hours=3)).replace(second=0, microsecond=0)
    window = window_ending(closes)
    site.write_config(window=window, timezone="UTC", concurrency=1, adaptive=False)
    csv = site.write_csv(booking_rows(60))  # 60 rows one at a time, 20 ms each: over a second of sending
    offset = closes - timedelta(seconds=0.2) - datetime.now(UTC)  # the run's clock: 0.2 s before the close

    first = run(site, csv, now=lambda: datetime.now(UTC) + offset)
    not_sent = f"not sent: the delivery window {window} closed at {closes:%H:%M}"
    assert first.stopped_early == f"the delivery window {window} closed at {closes:%H:%M}"
    assert first.exit_code == 5 and first.counts["failed"] > 0
    assert first.counts["delivered"] + first.counts["failed"] == 60
    assert {o.reason for o in first.attention} == {not_sent}
    assert f"Stopped sending: {first.stopped_early}; the rows not sent go in the next run." in summary_lines(first)
    with Ledger.open(site.ledger, create=False) as ledger:
        [record] = ledger.runs([first.run_id])
    assert (record.status, record.exit_code) == ("stopped", 5)

    second = run(site, csv, now=lambda: datetime.now(UTC) + offset - timedelta(minutes=30))  # inside again
    assert second.exit_code == 0 and second.stopped_early is None
    assert second.counts["delivered"] == first.counts["failed"]
    assert second.counts["skipped"] == first.counts["delivered"]
    counters = site.server.counters()
    ids = {f"P{i:06d}" for i in range(1, 61)}
    assert counters.creates == dict.fromkeys(ids, 1) and counters.create_attempts == dict.fromkeys(ids, 1)


def test_the_summary_and_the_run_record_keep_the_concurrency_the_run_settled_at(site: Site) -> None:
    site.write_config(concurrency=6)
    result = run(site, site.write_csv(booking_rows(20)))
    assert result.adaptive and 1 <= result.concurrency <= 6 and 1 <= result.peak_in_flight <= 6
    line = f"  concurrency: adaptive, up to {result.peak_in_flight} in flight, ending at {result.concurrency}"
    assert line in summary_lines(result)
    site.write_config(concurrency=3, adaptive=False)
    fixed = run(site, site.write_csv(booking_rows(9, start=100), name="more.csv"))
    assert not fixed.adaptive and fixed.concurrency == 3
    assert f"  concurrency: fixed at 3 ({fixed.peak_in_flight} in flight at most)" in summary_lines(fixed)
    rerun = run(site, site.write_csv(booking_rows(9, start=100), name="more.csv"))
    assert rerun.peak_in_flight == 0 and not any("concurrency" in x for x in summary_lines(rerun))  # sent nothing
    with Ledger.open(site.ledger, create=False) as ledger:
        recorded = [run.concurrency for run in ledger.runs()]
        details = [json.loads(e.detail or "{}") for e in ledger.entries() if e.event == "run_finished"]
    assert recorded == [result.concurrency, 3, None]
    assert [d.get("concurrency") for d in details] == [result.concurrency, 3, None]


def test_adaptive_is_the_default_with_a_ceiling_and_fixed_keeps_the_old_default(site: Site) -> None:
    site.write_config()
    config = site.config.read_text().replace("concurrency = 4\n", "")
    site.config.write_text(config)
    adaptive = load_config(site.config)
    assert adaptive.adaptive and adaptive.concurrency == DEFAULT_CEILING and adaptive.max_rate is None
    site.config.write_text(config + "adaptive = false\nmax_rate = 2.5\n")
    fixed = load_config(site.config)
    assert not fixed.adaptive and fixed.concurrency == DEFAULT_FIXED and fixed.max_rate == 2.5


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('window = "22:00-6:00"', "window: '22:00-6:00' is not a window like \"22:00-06:00\""),
        ('window = "24:00-06:00"', "window: '24:00-06:00': hours run 00-23"),
        ('window = "22:00-06:00"\ntimezone = "Mars/Olympus"', "timezone: 'Mars/Olympus' is not a time zone name"),
        ('window = "22:00-06:00"\ntimezone = "America"', "timezone: 'America' is not a time zone name"),
        ('timezone = "America/Chicago"', "timezone: it is the delivery window's time zone: set window too"),
        ("max_rate = 0", "max_rate: expected a positive number of requests per second, got 0"),
        ('adaptive = "yes"', "adaptive: expected true or false"),
    ],
)
def test_a_bulk_load_setting_that_cannot_be_used_is_one_line_naming_the_key(
    site: Site, setting: str, message: str
) -> None:
    site.config.write_text(site.config.read_text() + setting + "\n")
    with pytest.raises(ConfigError, match="^" + str(site.config).replace(".", r"\.") + ": ") as caught:
        load_config(site.config)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_max_rate_spaces_the_runs_requests_and_a_stop_ends_the_wait(site: Site) -> None:
    limiter = _limiter(replace(load_config(site.config), max_rate=0.5), RunProgress())  # one request every 2 s
    stop = RunStop()
    stop.also_wake(limiter.wake)
    assert limiter.slot(stop.event) is not None
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(limiter.slot(stop.event)))
    waiter.start()
    waiter.join(timeout=0.3)
    assert waiter.is_alive() and limiter.in_flight == 1  # places are free, but the rate says wait
    stop.stop("the delivery window 22:00-06:00 closed at 06:00")
    waiter.join(timeout=20)
    assert got == [None]
