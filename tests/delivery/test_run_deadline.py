"""A run's time limit (max_run_seconds): sending stops as when the delivery window closes; the rest go next time."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from pipeline import ConfigError
from pipeline.cli import cli
from pipeline.delivery import load_config, run_bookings
from pipeline.ledger import Ledger

from ..sites import Site, booking_rows


@pytest.fixture
def slow_site(site: Site) -> Site:
    """A server that answers every request 20 ms late: 60 rows one at a time take 1.2 s at the very least."""
    site.restart_server(latency_ms=20)
    return site


def test_a_run_past_max_run_seconds_stops_sending_exits_5_naming_the_setting_and_the_next_run_sends_the_rest(
    slow_site: Site,
) -> None:
    site = slow_site
    site.write_config(max_run_seconds=0.3, concurrency=1, adaptive=False)
    csv = site.write_csv(booking_rows(60))
    r = CliRunner().invoke(cli, ["run", str(csv), "--mapping", str(site.mapping), "--config", str(site.config)])
    limit = f"the run reached its time limit, max_run_seconds = 0.3 in {site.config}"
    assert r.exit_code == 5, r.output
    assert f"Stopped sending: {limit}; the rows not sent go in the next run." in r.output.splitlines()
    with Ledger.open(site.ledger, create=False) as ledger:
        [record] = ledger.runs([1])
        reasons = {e.error for e in ledger.row_states(1) if e.state == "failed"}
    assert (record.status, record.exit_code) == ("stopped", 5)
    assert reasons == {f"not sent: {limit}"}
    sent = sum(site.server.counters().creates.values())
    assert sent < 60  # (a busy machine may not even finish the first request in 0.3 s: then none was sent)

    site.write_config(concurrency=1, adaptive=False)  # the default limit, 4 hours
    second = run_bookings(csv, site.mapping, load_config(site.config))
    assert second.exit_code == 0 and second.stopped_early is None
    assert second.counts["delivered"] == 60 - sent and second.counts["skipped"] == sent
    ids = {f"P{i:06d}" for i in range(1, 61)}
    counters = site.server.counters()
    assert counters.creates == dict.fromkeys(ids, 1) and counters.create_attempts == dict.fromkeys(ids, 1)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("max_run_seconds = 0", "max_run_seconds: expected a positive number of seconds, got 0"),
        ("max_run_seconds = 604801", "max_run_seconds: must be at most 604800 seconds, got 604801"),
        ("timeout = 1e308", "timeout: must be at most 3600 seconds, got 1e+308"),
        ("timeout = inf", "timeout: expected a positive number of seconds, got inf"),
        (f"timeout = {10**400}", "timeout: expected a positive number of seconds, got an integer too large"),
        ("max_rate = 1e-300", "max_rate: must be at least 0.01 requests per second, got 1e-300"),
        ("max_rate = nan", "max_rate: expected a positive number of requests per second, got nan"),
        ("max_attempts = 1e22", "max_attempts: expected an integer, got a number"),
        ("max_attempts = 101", "max_attempts: must be at most 100"),
        ("retry_initial_wait = -1", "retry_initial_wait: expected a non-negative number of seconds, got -1"),
        ("retry_max_wait = 86400", "retry_max_wait: must be at most 3600 seconds, got 86400"),
        ("retry_after_cap = 999999", "retry_after_cap: must be at most 3600 seconds, got 999999"),
        ("circuit_breaker = 0", "circuit_breaker: must be at least 1"),
        ("concurrency = 100000", "concurrency: must be at most 1024"),
        ("max_answer_bytes = 10", "max_answer_bytes: must be at least 1024"),
        ("settle_seconds = 7200", "settle_seconds: must be at most 3600 seconds, got 7200"),
    ],
)
def test_every_numeric_setting_out_of_range_is_one_line_naming_the_file_and_key(
    site: Site, line: str, problem: str
) -> None:
    key = line.split(" = ")[0]
    kept = [k for k in site.config.read_text().splitlines() if not k.startswith(f"{key} = ")]
    site.config.write_text("\n".join([*kept, line]) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(site.config)
    assert str(caught.value) == f"{site.config}: {problem}"
    r = CliRunner().invoke(cli, ["run", str(site.write_csv(booking_rows(1))), "--mapping", str(site.mapping),
                                 "--config", str(site.config)])  # fmt: skip
    assert r.exit_code == 2 and r.output == f"Error: {site.config}: {problem}\n"
    assert site.server.counters().requests == 0
