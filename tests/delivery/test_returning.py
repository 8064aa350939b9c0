"""Returning patients end to end against the local CWS server: re-bookings, a fresh ledger against a CorEMR that
holds everyone, corrections held or sent as updates and accepted, per-charge exports, and the v1 limits."""

from __future__ import annotations

import csv
import io
import json
import re
import shlex
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.delivery import RowOutcome, RunResult, load_config, run_bookings
from pipeline.ledger import Ledger
from pipeline.simulator import Fault

from ..sites import SITE_MAPPING, V1_SITE_MAPPING, RecordedProgress, Site, booking_rows

RETURNING_PAGE = Path(__file__).resolve().parents[2] / "docs" / "returning-patients.md"


def run(site: Site, csv: Path, outcomes: list[RowOutcome] | None = None) -> RunResult:
    progress = RecordedProgress(outcomes)
    return run_bookings(csv, site.mapping, load_config(site.config), progress=progress, sleep=lambda _: None)


def with_target(site: Site, *lines: str) -> None:
    """The site's mapping with more [target] options."""
    site.mapping.write_text(SITE_MAPPING.replace("[target]\n", "[target]\n" + "".join(f"{x}\n" for x in lines)))


def create_body(row: list[str], booking: str | None = None) -> dict[str, Any]:
    """The v2 create body the site's mapping makes of a booking row (optionally under another booking number)."""
    return {"external_id": row[0], "facility": 10000, "agency": 2, "billing_agency": 1, "fname": row[2],
            "lname": row[3], "dob": row[4], "sex": row[5], "booking_no": booking or row[1],
            "booking_date": row[6] + ":00.000"}  # fmt: skip


def actions(outcomes: list[RowOutcome]) -> dict[str, str | None]:
    return {o.key: o.action for o in outcomes}


def test_a_fresh_ledger_against_a_coremr_holding_every_patient_delivers_every_row(site: Site) -> None:
    rows = booking_rows(20)
    for i, row in enumerate(rows):  # half already hold this booking; half only an earlier one
        site.server.enter_by_hand(create_body(row, None if i % 2 else f"OLD{i}"))
    outcomes: list[RowOutcome] = []
    result = run(site, site.write_csv(rows), outcomes)
    assert result.counts["delivered"] == 20 and result.counts["rejected"] == 0 and result.exit_code == 0
    assert actions(outcomes) == {f"P{i + 1:06d}/B{i + 1:06d}": "found" if i % 2 else "booking added" for i in range(20)}
    counters = site.server.counters()
    assert counters.creates == dict.fromkeys((r[0] for r in rows), 1)  # entered by hand, never created by us
    assert all(counters.booking_creates[r[0]][r[1]] == 1 for r in rows)
    assert counters.refused_booking_creates == {r[0]: {r[1]: 1} for i, r in enumerate(rows) if i % 2}
    again = run(site, site.write_csv(rows))
    assert again.counts["skipped"] == 20 and site.server.counters().requests == counters.requests


def test_a_rebooking_of_a_person_the_ledger_knows_is_one_booking_request(site: Site) -> None:
    rows = booking_rows(3)
    run(site, site.write_csv(rows))
    before = site.server.counters().requests
    rebooked = [[r[0], f"R{r[1]}", *r[2:]] for r in rows]
    outcomes: list[RowOutcome] = []
    result = run(site, site.write_csv(rebooked, "night2.csv"), outcomes)
    assert result.counts["delivered"] == 3 and set(actions(outcomes).values()) == {"booking added"}
    counters = site.server.counters()
    assert counters.requests - before == 3 and not counters.refused_creates  # no doomed create
    assert counters.booking_creates == {r[0]: {r[1]: 1, f"R{r[1]}": 1} for r in rows}


def test_two_bookings_of_a_new_person_in_one_export_make_one_patient_and_two_bookings(site: Site) -> None:
    rows = booking_rows(1)
    rows.append([rows[0][0], "B777777", *rows[0][2:]])
    outcomes: list[RowOutcome] = []
    result = run(site, site.write_csv(rows), outcomes)
    assert result.counts["delivered"] == 2
    assert sorted(a or "" for a in actions(outcomes).values()) == ["booking added", "created"]
    assert site.server.counters().booking_creates == {"P000001": {"B000001": 1, "B777777": 1}}


def test_a_held_correction_names_the_delivering_run_and_is_accepted_by_a_person(site: Site) -> None:
    rows = booking_rows(2)
    first = run(site, site.write_csv(rows))
    run(site, site.write_csv(rows))  # a quiet night in between: the message must not name it
    rows[0][2] = "Firstname-Corrected"
    corrected = site.write_csv(rows, "corrected.csv")
    held = [run(site, corrected) for _ in range(2)]
    for night in held:
        assert night.counts["changed"] == 1
        assert night.attention[0].reason == (
            f'delivered in run {first.run_id} with a different body; held (on_change = "hold"): not sent'
        )
    # Reported once, then quiet: the second night knows it (same state, same held body) and exits 0.
    assert [(n.exit_code, n.attention[0].known) for n in held] == [(1, False), (0, True)]
    assert site.server.counters().updates == {}
    accepted = CliRunner().invoke(cli, ["accept", "-c", str(site.config), "--key", "P000001/B000001"])
    assert accepted.exit_code == 0, accepted.output
    assert accepted.output.startswith("Accepted key P000001/B000001 (line 2, changed): its body ")
    after = run(site, corrected)
    assert after.counts["skipped"] == 2 and after.exit_code == 0
    again = CliRunner().invoke(cli, ["accept", "-c", str(site.config), "--key", "P000001/B000001"])
    assert again.exit_code == 2 and "is skipped" in again.output and "accept takes a row" in again.output
    with Ledger.open(site.ledger, create=False) as ledger:
        [entry] = [e for e in ledger.entries() if e.event == "accepted"]
    assert entry.key == "P000001/B000001" and json.loads(entry.detail or "")["was"] == "changed"
    audit = CliRunner().invoke(cli, ["audit", "-c", str(site.config)])
    assert audit.exit_code == 0, audit.output


def test_accepting_an_unknown_key_is_one_line_and_writes_nothing(site: Site) -> None:
    run(site, site.write_csv(booking_rows(1)))
    refused = CliRunner().invoke(cli, ["accept", "-c", str(site.config), "--key", "NOPE/1"])
    assert refused.exit_code == 2 and "no row has the key 'NOPE/1'" in refused.output
    assert "Traceback" not in refused.output


def test_under_the_update_policy_a_correction_is_sent_and_recorded_as_updated(site: Site) -> None:
    with_target(site, 'on_change = "update"')
    rows = booking_rows(2)
    first = run(site, site.write_csv(rows))
    run(site, site.write_csv(rows))
    rows[0][2], rows[1][6] = "Annabel", "2026-11-28 23:40"  # a name, and a booking's date
    site.server.set_faults([Fault("drop_after_processing", first=1)])  # the update's answer is lost once
    outcomes: list[RowOutcome] = []
    result = run(site, site.write_csv(rows, "corrected.csv"), outcomes)
    assert result.counts["delivered"] == 2 and set(actions(outcomes).values()) == {"updated"}
    assert {o.reason for o in outcomes} == {
        f'corrected: delivered in run {first.run_id} with a different body; sent as an update (on_change = "update")'
    }
    assert site.server.patients()["P000001"]["fname"] == "Annabel"
    assert site.server.bookings()["P000002"]["B000002"]["booking_date"] == "2026-11-28 23:40:00.000"
    assert site.server.counters().creates == {"P000001": 1, "P000002": 1}
    assert run(site, site.write_csv(rows, "corrected.csv")).counts["skipped"] == 2
    report = CliRunner().invoke(cli, ["report", "-c", str(site.config), "--format", "json"])
    [record] = [r for r in json.loads(report.output)["records"] if r["key"] == "P000001/B000001"]
    assert record["state"] == "skipped"
    report = CliRunner().invoke(cli, ["report", "-c", str(site.config), "--run", str(result.run_id)])
    assert "  delivered updated 2\n" in report.output


def test_a_per_charge_export_is_one_booking_per_key_never_sent_twice_nor_an_alarm(site: Site) -> None:
    rows = booking_rows(3)
    charges = [rows[0], rows[0], rows[1], rows[0], rows[2], rows[2]]
    outcomes: list[RowOutcome] = []
    result = run(site, site.write_csv(charges), outcomes)
    assert (result.counts["delivered"], result.counts["duplicate"], result.exit_code) == (3, 3, 0)
    assert [o.reason for o in sorted(outcomes, key=lambda o: o.line) if o.state == "duplicate"] == [
        "the same booking as line 2 (same key and body): not sent",
        "the same booking as line 2 (same key and body): not sent",
        "the same booking as line 6 (same key and body): not sent",
    ]
    assert site.server.counters().create_attempts == {"P000001": 1, "P000002": 1, "P000003": 1}
    again = run(site, site.write_csv(charges))
    assert (again.counts["skipped"], again.counts["duplicate"], again.exit_code) == (3, 3, 0)
    text = CliRunner().invoke(cli, ["report", "-c", str(site.config), "--all"])
    # Three bookings on six lines, each counted once by its latest state (not a line per charge per night).
    assert "Bookings: 3 distinct" in text.output and "delivered 0, skipped 3" in text.output
    assert "duplicate 0" in text.output and "Needs a person: 0 bookings" in text.output


def test_a_key_reused_with_another_body_stays_an_error_naming_both_lines(site: Site) -> None:
    rows = booking_rows(1)
    other = [*rows[0][:2], "Someone", *rows[0][3:]]
    result = run(site, site.write_csv([rows[0], other]))
    assert result.counts["invalid"] == 1 and result.exit_code == 1
    assert "was already used on line 2, with a different body" in (result.attention[0].reason or "")


def test_v1_a_returning_patient_is_rejected_saying_why_and_a_known_one_in_doubt_stays_ambiguous(site: Site) -> None:
    site.restart_server(api="v1")
    site.mapping.write_text(V1_SITE_MAPPING)
    site.write_config(algorithm="CWS-SHA1", circuit_breaker=100, concurrency=1)  # line 2 meets the dropped answer
    rows = booking_rows(2)
    run(site, site.write_csv(rows[:1]))
    rebooked = [[rows[0][0], "B999999", *rows[0][2:]], [rows[1][0], "B888888", *rows[1][2:]]]
    # v1 requires facility, dob and sex to add a patient, by hand as through CWS
    site.server.enter_by_hand({"external_id": rows[1][0], "facility": "MAIN", "fname": "X", "lname": "Y",
                               "dob": "1970-01-01", "sex": "Male", "booking_number": "H1",
                               "booking_date": "2020-01-01 00:00:00.000"})  # fmt: skip
    site.server.set_faults([Fault("drop_after_processing", first=1)])
    result = run(site, site.write_csv(rebooked, "night2.csv"))
    by_key = {o.key: o for o in result.attention}
    assert by_key["P000001/B999999"].state == "ambiguous"  # a lookup by patient cannot tell bookings apart
    assert by_key["P000002/B888888"].state == "rejected"
    assert "CorEMR API v1 has no bookings routes" in (by_key["P000002/B888888"].reason or "")
    assert site.server.counters().creates == {"P000001": 1, "P000002": 1}
    accepted = CliRunner().invoke(cli, ["accept", "-c", str(site.config), "--key", "P000001/B999999"])
    assert accepted.exit_code == 0, accepted.output  # a person found the booking in CorEMR
    again = run(site, site.write_csv(rebooked, "night2.csv"))
    assert again.counts["skipped"] == 1 and again.counts["rejected"] == 1


def test_the_returning_patients_page_commands_run_as_written(site: Site) -> None:
    section = RETURNING_PAGE.read_text(encoding="utf-8").split("# Returning patients\n", 1)[1].split("\n## ", 1)[0]
    commands = [line.split("  #", 1)[0].strip() for block in re.findall(r"```sh\n(.*?)```", section, re.S)
                for line in block.splitlines() if line.startswith("cws-pipeline ")]  # fmt: skip
    assert [c.split()[1] for c in commands] == ["report", "accept"]
    rows = [["J0412", "B23-1187", *booking_rows(1)[0][2:]]]
    run(site, site.write_csv(rows))
    rows[0][2] = "Corrected"
    run(site, site.write_csv(rows))  # held
    for command in commands:
        args = [str(site.config) if a == "cws.toml" else a for a in shlex.split(command)[1:]]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code in (0, 1), (command, result.output)
        assert "Error" not in result.output, (command, result.output)
    with Ledger.open(site.ledger, create=False) as ledger:
        assert ledger.row_status("J0412/B23-1187").state == "skipped"  # type: ignore[union-attr]


def test_every_report_format_says_which_action_each_delivered_row_took(site: Site, tmp_path: Path) -> None:
    rows = booking_rows(3)
    site.server.enter_by_hand(create_body(rows[1], "OLD"))  # P2 holds another booking: booking added
    site.server.enter_by_hand(create_body(rows[2]))  # P3 holds this one: found
    result = run(site, site.write_csv(rows))
    expected = {"P000001/B000001": "created", "P000002/B000002": "booking added", "P000003/B000003": "found"}

    def report(*args: str) -> str:
        out = CliRunner().invoke(cli, ["report", "-c", str(site.config), *args])
        assert out.exit_code == 0, out.output
        return out.output

    data = json.loads(report("--format", "json"))
    assert data["runs"][0]["actions"] == {"created": 1, "booking added": 1, "found": 1}
    assert {r["key"]: r["action"] for r in data["records"]} == expected
    records = list(csv.DictReader(io.StringIO(report("--format", "csv"))))
    assert {r["key"]: r["action"] for r in records} == expected
    assert f"Run {result.run_id} " in (text := report()) and "  delivered created 1, booking added 1, found 1\n" in text
    html = tmp_path / "r.html"
    report("--format", "html", "--output", str(html))
    assert "<dt>Delivered by</dt><dd>created 1, booking added 1, found 1</dd>" in html.read_text(encoding="utf-8")
