"""`cws-pipeline status`: the site at a glance over real nightly runs against the local CWS server, and the exit
codes a monitoring check reads."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from pipeline.cli import cli
from pipeline.delivery import load_config, run_bookings
from pipeline.ledger import Ledger, RunInfo, RunLock
from pipeline.review import site_status

from ..sites import SITE_MAPPING, Site, booking_rows


def status(site: Site, *args: str) -> Result:
    return CliRunner().invoke(cli, ["status", "-c", str(site.config), *args])


def status_json(site: Site) -> tuple[int, dict[str, Any]]:
    result = status(site, "--json")
    return result.exit_code, json.loads(result.output)


def nightly_export(site: Site, night: int) -> Path:
    """A cumulative export: 10 bookings plus one more each night; rows 4 and 6 have a bad date every night,
    CorEMR refuses row 3 (sex "X", a verified 400); from night 7 on, the new row 15 has a bad date too."""
    rows = booking_rows(10 + night)
    rows[3][4] = rows[5][4] = "not a date"
    rows[2][5] = "X"
    if night >= 7:
        rows[14][4] = "31/02/1990"
    return site.write_csv(rows, f"bookings-{night:02d}.csv")


def test_ten_nightly_runs_list_the_three_persistent_and_the_one_new_bad_row_once_each(site: Site) -> None:
    # Without CorEMR's patient checks in the mapping, row 3's sex "X" reaches CorEMR, which refuses it.
    site.mapping.write_text(SITE_MAPPING.replace("[target]\n", '[target]\nprofile = "none"\n'), encoding="utf-8")
    for night in range(1, 11):
        result = run_bookings(nightly_export(site, night), site.mapping, load_config(site.config))
        assert result.exit_code == (1 if night in (1, 7) else 0)  # a run speaks when a row newly needs a person
    code, found = status_json(site)
    assert code == 1 and found["status"] == "attention" and found["exit_code"] == 1
    outstanding = {(r["key"], r["state"], r["since_run"], r["last_run"]) for r in found["outstanding"]}
    assert len(found["outstanding"]) == 4
    assert outstanding == {
        ("P000003/B000003", "rejected", 1, 10), ("P000004/B000004", "invalid", 1, 10),
        ("P000006/B000006", "invalid", 1, 10), ("P000015/B000015", "invalid", 7, 10),
    }  # fmt: skip
    last = found["last_run"]
    assert (last["run_id"], last["status"], last["exit_code"], found["runs"]) == (10, "finished", 0, 10)
    assert found["last_good_run"] is None  # no night delivered or skipped every row
    assert found["outstanding"][0]["since"].startswith(datetime.now(UTC).strftime("%Y-%m-%d"))
    with Ledger.open_read_only(site.ledger) as ledger:
        head = ledger.head()
    assert head is not None and found["chain_head"]["seq"] == head.seq and found["chain_head"]["hash"] == head.hash
    assert found["size"]["entries"] == head.seq and found["size"]["file_bytes"] > 0
    assert found["size"]["bodies_pruned"] == 0 and found["size"]["bodies_stored"] > 0

    text = status(site)
    assert text.exit_code == 1
    lines = text.output.splitlines()
    assert lines[0].startswith(f"Ledger {site.ledger}: ") and ", 10 runs, " in lines[0]
    assert lines[1].startswith("Last run:       run 10, finished, exit 0, started ")
    assert lines[2] == "Last good run:  none"
    assert "Outstanding:    4 booking(s) need a person (4 row(s))" in lines
    assert sum("P000015/B000015  invalid  since run 7" in line for line in lines) == 1
    assert lines[-1] == "Status: attention (exit 1): 4 bookings need a person"
    for i in range(1, 21):  # rows are named by line and key, never by name or birth date
        assert f"First{i}" not in text.output and f"Last{i}" not in text.output


def test_a_site_where_everything_was_delivered_is_ok(site: Site) -> None:
    run_bookings(site.write_csv(booking_rows(3)), site.mapping, load_config(site.config))
    code, found = status_json(site)
    assert (code, found["status"], found["outstanding"]) == (0, "ok", [])
    assert found["last_good_run"]["run_id"] == found["last_run"]["run_id"] == 1
    assert 0 <= found["last_run"]["age_seconds"] < 600


def test_no_run_yet_is_unknown(site: Site) -> None:
    Ledger.open(site.ledger).close()
    code, found = status_json(site)
    assert (code, found["status"], found["last_run"]) == (3, "unknown", None)


def test_a_run_whose_process_died_is_a_problem_and_one_in_progress_is_not(site: Site) -> None:
    run_bookings(site.write_csv(booking_rows(2)), site.mapping, load_config(site.config))
    info = RunInfo("/x.csv", "0" * 64, "/m.toml", "0" * 64, site.server.url, "/ws/patients/", "county-jms",
                   "CWS-SHA256", "test")  # fmt: skip
    with RunLock(site.ledger), Ledger.open(site.ledger) as ledger:
        ledger.begin_run(info, os.getpid())
        code, found = status_json(site)
        assert (code, found["status"]) == (0, "ok")  # judged by the last finished run
        assert found["running"]["pid"] == os.getpid() and found["last_run"]["status"] == "running"
    code, found = status_json(site)  # the lock is gone, the run never recorded its end: it died
    assert (code, found["status"]) == (2, "problem")
    assert f"run 2 (pid {os.getpid()}) is recorded as running, but no run holds the ledger" in found["reasons"][0]


def test_a_last_run_that_did_not_finish_or_is_too_old_is_a_problem(site: Site) -> None:
    run_bookings(site.write_csv(booking_rows(2)), site.mapping, load_config(site.config))
    with Ledger.open_read_only(site.ledger) as ledger:
        later = site_status(ledger, now=datetime.now(UTC) + timedelta(hours=30), max_age=timedelta(hours=26))
    assert later.exit_code == 2 and "the last run started 30 h ago, longer ago than --max-age allows" in later.reasons
    assert status(site, "--max-age", "26h").exit_code == 0
    bad = status(site, "--max-age", "soon")
    assert bad.exit_code == 2 and "--max-age 'soon': give hours or days, like 26h or 2d" in bad.output
    with Ledger.open(site.ledger) as ledger:
        ledger.finish_run(ledger.begin_run(RunInfo(*"abcdefghi"), 1), {}, "crashed", 1)
    code, found = status_json(site)
    assert (code, found["reasons"]) == (2, ["the last run, 2, did not finish: crashed, exit 1"])


def test_status_needs_a_config_or_a_ledger(site: Site) -> None:
    result = CliRunner().invoke(cli, ["status"])
    assert result.exit_code == 2 and "give --config CONFIG (it names the ledger) or --ledger LEDGER" in result.output
    by_ledger = CliRunner().invoke(cli, ["status", "--ledger", str(site.dir / "none.sqlite")])
    assert by_ledger.exit_code == 2 and "none.sqlite: no such ledger file" in by_ledger.output


def test_a_row_without_a_key_is_listed_from_the_latest_run(site: Site) -> None:
    rows = booking_rows(3)
    rows[2][0] = rows[2][1] = ""  # no Inmate ID, no Booking: nothing to follow it across runs by
    csv = site.write_csv(rows)
    for _ in range(2):
        run_bookings(csv, site.mapping, load_config(site.config))
    code, found = status_json(site)
    assert code == 1
    listed = [(r["key"], r["line"], r["state"], r["since_run"]) for r in found["outstanding"]]
    assert listed == [(None, 4, "invalid", 2)]
    across = json.loads(CliRunner().invoke(cli, ["report", "-c", str(site.config), "--all", "-f", "json"]).output)
    keyless = [row for row in across["rows"] if not row["key"]]
    assert len(keyless) == 1 and keyless[0]["runs"] == 2  # the same input cells: the same row in both runs


def test_the_text_lists_the_first_fifty_outstanding_rows_and_json_all(tmp_path: Path) -> None:
    from pipeline.ledger import LedgerWrite, StatusUpdate

    path = tmp_path / "ledger.sqlite"
    with Ledger.open(path) as ledger:
        run_id = ledger.begin_run(RunInfo(*"abcdefghi"), 1)
        ledger.append(
            LedgerWrite(updates=[StatusUpdate(f"K{i:03d}", None, "failed", None, run_id, i) for i in range(60)])
        )
        ledger.finish_run(run_id, {"failed": 60}, "finished", 1)
    text = CliRunner().invoke(cli, ["status", "-l", str(path)])
    assert text.exit_code == 1
    listed = [line for line in text.output.splitlines() if line.startswith("  line ")]
    assert len(listed) == 50 and "  ... and 10 more (`status --json` or `report --all` lists them all)" in text.output
    found = json.loads(CliRunner().invoke(cli, ["status", "-l", str(path), "--json"]).output)
    assert len(found["outstanding"]) == 60
