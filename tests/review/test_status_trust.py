"""`status` never lies and never tracebacks: a run dated in the future is flagged, an edited runs table is one line."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner, Result

from pipeline.cli import cli
from pipeline.delivery import load_config, run_bookings
from pipeline.ledger import Ledger
from pipeline.review import site_status

from ..sites import Site, booking_rows


def status(site: Site, *args: str) -> Result:
    return CliRunner().invoke(cli, ["status", "-c", str(site.config), *args])


def edit_run(site: Site, **values: Any) -> None:
    """Change the first run's row with another SQLite client, as a person editing the file would."""
    db = sqlite3.connect(site.ledger)
    try:
        for column, value in values.items():  # our own column names
            db.execute(f"UPDATE runs SET {column}=? WHERE run_id=1", (value,))  # noqa: S608
        db.commit()
    finally:
        db.close()


def test_a_run_made_with_the_clock_400_days_ahead_is_attention_not_ok(site: Site) -> None:
    run_bookings(site.write_csv(booking_rows(2)), site.mapping, load_config(site.config))
    assert status(site, "--max-age", "26h").exit_code == 0  # the same run, judged by the clock that made it
    with Ledger.open_read_only(site.ledger) as ledger:
        behind = site_status(ledger, now=datetime.now(UTC) - timedelta(days=400, hours=1), max_age=timedelta(hours=26))
    assert (behind.verdict, behind.exit_code) == ("attention", 1)
    [reason] = behind.reasons
    assert reason.startswith("the last run, 1, is dated 20") and "400 days ahead of this clock" in reason

    ahead = (datetime.now(UTC) + timedelta(days=400)).isoformat(timespec="milliseconds")
    edit_run(site, started_at=ahead, finished_at=ahead)  # what a run with its clock 400 days ahead records
    result = status(site, "--max-age", "26h")
    assert result.exit_code == 1, result.output
    assert result.output.splitlines()[-1] == (
        f"Status: attention (exit 1): the last run, 1, is dated {ahead}, 399 days ahead of this clock: a clock was"
        " wrong when it ran (or is now), so its age cannot be judged"
    )


def test_a_run_a_moment_ahead_of_this_clock_is_within_the_clocks_slack(site: Site) -> None:
    run_bookings(site.write_csv(booking_rows(2)), site.mapping, load_config(site.config))
    with Ledger.open_read_only(site.ledger) as ledger:
        found = site_status(ledger, now=datetime.now(UTC) - timedelta(minutes=2), max_age=timedelta(hours=26))
    assert (found.verdict, found.reasons) == ("ok", ["every row is delivered or skipped"])


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("started_at", "yesterday", "started_at is 'yesterday', not a time"),
        ("started_at", "2026-11-29T02:15:01", "started_at is '2026-11-29T02:15:01', not a time"),  # no UTC offset
        ("finished_at", "garbage", "finished_at is 'garbage', not a time"),
        ("status", "done", "status is 'done', not one of running, finished,"),
        ("exit_code", "abc", "exit_code is 'abc', not a number"),
        ("exit_code", 1.5, "exit_code is '1.5', not a number"),
        ("exit_code", None, "exit_code is NULL, but the run is finished"),
        ("finished_at", None, "finished_at is NULL, but the run is finished"),
    ],
)
def test_an_edited_runs_table_is_one_line_with_the_damaged_ledger_exit_code(
    site: Site, column: str, value: object, problem: str
) -> None:
    run_bookings(site.write_csv(booking_rows(2)), site.mapping, load_config(site.config))
    edit_run(site, **{column: value})
    for args in ([], ["--json"], ["--max-age", "26h"]):
        result = status(site, *args)
        assert result.exit_code == 6, result.output
        assert result.output.startswith(f"Error: {site.ledger}: the runs table is damaged: run 1: {problem}")
        assert "run `cws-pipeline audit` on this ledger" in result.output
        assert result.output.count("\n") == 1 and "Traceback" not in result.output


def test_null_where_a_run_always_writes_a_value_is_damage(site: Site) -> None:
    run_bookings(site.write_csv(booking_rows(1)), site.mapping, load_config(site.config))
    with Ledger.open_read_only(site.ledger) as ledger:
        [run] = ledger.runs()
    assert run.damage() is None
    nulls = dataclasses.replace(run, started_at=None, status=None, pid=None)  # type: ignore[arg-type]
    assert nulls.damage() == (
        "started_at is NULL, not a time; status is NULL, not one of running, finished, stopped, interrupted, crashed,"
        " killed; pid is NULL, not a number"
    )


def test_a_run_on_a_ledger_whose_running_run_has_no_numeric_pid_is_one_line_and_sends_nothing(site: Site) -> None:
    run_bookings(site.write_csv(booking_rows(2)), site.mapping, load_config(site.config))
    edit_run(site, status="running", finished_at=None, exit_code=None, pid="x")
    sent_before = site.server.counters().requests
    args = ["run", str(site.write_csv(booking_rows(3))), "-m", str(site.mapping), "-c", str(site.config)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 6, result.output
    assert result.output.startswith(f"Error: {site.ledger}: the runs table is damaged: a running run's pid is 'x'")
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert site.server.counters().requests == sent_before  # nothing sent
