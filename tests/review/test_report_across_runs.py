"""`report` across runs (--all, --since/--until): each row counted once by its latest state, each outstanding row
listed once, a line per run; on twelve real nightly runs against the local CWS server."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from click.testing import CliRunner, Result

from pipeline.cli import cli
from pipeline.delivery import load_config, run_bookings
from pipeline.ledger import Ledger

from ..sites import Site, booking_rows

NIGHTS = 12


@dataclass(frozen=True)
class Nights:
    site: Site
    started: list[str]  # each run's started_at


@pytest.fixture
def nights(site: Site) -> Nights:
    """Twelve nightly runs of a cumulative export: 3 rows and one more each night; row 2 never has a valid date."""
    for night in range(1, NIGHTS + 1):
        rows = booking_rows(3 + night)
        rows[1][4] = "not a date"
        run_bookings(site.write_csv(rows, f"bookings-{night:02d}.csv"), site.mapping, load_config(site.config))
    with Ledger.open_read_only(site.ledger) as ledger:
        return Nights(site, [run.started_at for run in ledger.runs()])


def report(nights: Nights, *args: str) -> Result:
    result = CliRunner().invoke(cli, ["report", "-c", str(nights.site.config), *args])
    assert result.exit_code == 0, result.output
    return result


def test_all_runs_count_each_row_once_by_its_latest_state(nights: Nights) -> None:
    out = report(nights, "--all").output
    lines = out.splitlines()
    assert lines[0].startswith(f"Runs 1 to {NIGHTS}: {NIGHTS} runs started {nights.started[0]} to ")
    assert lines[1] == f"Ledger {nights.site.ledger}"
    table = [line for line in lines if line.startswith("  ") and line.split()[0].isdigit()]
    assert [int(line.split()[0]) for line in table] == list(range(1, NIGHTS + 1))  # one line per run
    assert table[0].split()[2:6] == ["finished", "1", "4", "1"] and table[0].endswith("bookings-01.csv")
    # 15 distinct rows (the per-run sum is 4 + 5 + ... + 15 = 114): the last new one delivered, row 2 invalid
    assert (
        "Bookings: 15 distinct (a key once, whatever its lines), each counted once by its latest state: delivered 1,"
        " skipped 13, changed 0, invalid 1," in out
    )
    needs = "Needs a person: 1 booking (each once, whatever its lines; as `status` counts)\n"
    assert "Rows needing attention: 1\n" + needs in out
    attention = [line for line in lines if "P000002/B000002" in line]
    assert len(attention) == 1 and f"invalid  runs 1 to {NIGHTS}  line 3: dob (column 'DOB')" in attention[0]
    assert "invalid: The row failed the mapping" in out


def test_json_across_runs_has_each_row_once_and_every_record(nights: Nights) -> None:
    data = json.loads(report(nights, "--all", "--format", "json").output)
    assert list(data) == ["runs", "needs_person", "rows", "records"]
    keys = [row["key"] for row in data["rows"]]
    assert len(keys) == len(set(keys)) == 15
    bad = next(row for row in data["rows"] if row["key"] == "P000002/B000002")
    assert bad == {**bad, "state": "invalid", "since_run": 1, "first_run": 1, "last_run": NIGHTS, "runs": NIGHTS}
    newest = next(row for row in data["rows"] if row["key"] == "P000015/B000015")
    assert (newest["state"], newest["first_run"], newest["runs"]) == ("delivered", NIGHTS, 1)
    assert len(data["records"]) == sum(range(4, 4 + NIGHTS))  # the records stay one per row per run


def test_since_and_until_choose_the_runs_by_when_they_started(nights: Nights) -> None:
    later = json.loads(report(nights, "--since", nights.started[5], "--format", "json").output)
    assert [r["run_id"] for r in later["runs"]] == list(range(6, NIGHTS + 1))
    assert {row["key"] for row in later["rows"] if row["first_run"] == 6} >= {"P000001/B000001"}
    earlier = json.loads(report(nights, "--until", nights.started[4], "--format", "json").output)
    assert [r["run_id"] for r in earlier["runs"]] == [1, 2, 3, 4]
    today = json.loads(report(nights, "--until", nights.started[0][:10], "--format", "json").output)
    assert len(today["runs"]) == NIGHTS  # a date means the whole of that day


def test_state_filter_across_runs_keeps_rows_whose_latest_state_it_names(nights: Nights) -> None:
    data = json.loads(report(nights, "--all", "--state", "invalid", "--format", "json").output)
    assert [row["key"] for row in data["rows"]] == ["P000002/B000002"]
    assert {r["state"] for r in data["records"]} == {"invalid"} and len(data["records"]) == NIGHTS
    delivered = json.loads(report(nights, "--all", "--state", "delivered", "--format", "json").output)
    assert [row["key"] for row in delivered["rows"]] == ["P000015/B000015"]  # the others' latest state is skipped


def test_text_report_with_audit_ends_with_the_verdict_and_chain_head(nights: Nights) -> None:
    out = report(nights, "--audit").output
    with Ledger.open_read_only(nights.site.ledger) as ledger:
        head = ledger.head()
    assert head is not None
    assert out.splitlines()[-1] == (
        f"Audit passed: everything that could be checked holds ({head.seq} entries;"
        f" chain head: entry {head.seq} hash {head.hash})."
    )


def test_report_paths_are_absolute(nights: Nights, monkeypatch: pytest.MonkeyPatch) -> None:
    site = nights.site
    monkeypatch.chdir(site.dir)
    run = ["run", "bookings-01.csv", "--mapping", site.mapping.name, "--config", "cws.toml"]  # paths as typed
    assert CliRunner().invoke(cli, run).exit_code == 0  # its bad rows were reported by the nights before
    result = CliRunner().invoke(cli, ["report", "-c", "cws.toml", "--format", "json", "-o", "out.json"])
    assert result.exit_code == 0, result.output
    assert f"Wrote {site.dir / 'out.json'} (json, 1 run(s)" in result.output
    recorded = json.loads((site.dir / "out.json").read_text())["runs"][0]
    assert recorded["mapping"] == str(site.mapping) and recorded["source"] == str(site.dir / "bookings-01.csv")
