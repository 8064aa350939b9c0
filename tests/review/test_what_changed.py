"""A held correction says what changed, through the CLI against the local CWS server: field by field, old → new,
in the error file and the report files (0600, the clerk's), the field names only in what may be mailed, and
where in CorEMR each field lives (a booking date is a booking field, not a patient field)."""

from __future__ import annotations

import csv
import json
import stat
from pathlib import Path

from click.testing import CliRunner, Result

from pipeline.cli import cli
from pipeline.review._changes import body_changes, changes_text, where_text

from ..sites import Site

JON = ["P000001", "B000001", "Jon", "Smith", "1980-01-02", "M", "2026-11-28 22:15"]
OTHER = ["P000002", "B000002", "Ann", "Lee", "1975-05-06", "F", "2026-11-28 23:40"]


def cws(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def night(site: Site, rows: list[list[str]], name: str, *more: str) -> Result:
    return cws("run", str(site.write_csv(rows, name)), "-m", str(site.mapping), "-c", str(site.config), *more)


def held_correction(site: Site) -> Path:
    """Night 1 delivers Jon; night 2 corrects his first name to John and his booking date: held (on_change hold)."""
    assert night(site, [JON, OTHER], "night1.csv").exit_code == 0
    errors = site.dir / "errors.csv"
    corrected = [[*JON[:2], "John", *JON[3:6], "2026-11-29 01:05"], OTHER]
    second = night(site, corrected, "night2.csv", "--errors", str(errors))
    assert second.exit_code == 1, second.output
    return errors


def test_the_cron_mail_names_the_changed_fields_and_where_they_live_without_their_values(site: Site) -> None:
    assert night(site, [JON, OTHER], "night1.csv").exit_code == 0
    mail = night(site, [[*JON[:2], "John", *JON[3:]], OTHER], "night2.csv")
    assert mail.exit_code == 1
    [line] = [x for x in mail.output.splitlines() if x.startswith("  line 2 ")]
    assert line.endswith("; what changed: fname (patient)")
    assert "Jon" not in mail.output and "John" not in mail.output


def test_a_held_correction_shows_old_and_new_values_in_the_error_file(site: Site) -> None:
    errors = held_correction(site)
    assert stat.S_IMODE(errors.stat().st_mode) == 0o600
    with errors.open(newline="", encoding="utf-8") as fh:
        found = list(csv.DictReader(fh))
    assert [(r["line"], r["state"]) for r in found] == [("2", "changed")]
    assert found[0]["changes"] == (
        'fname: "Jon" → "John" (patient); booking_date: "2026-11-28 22:15:00.000" → "2026-11-29 01:05:00.000" (booking)'
    )


def test_the_report_text_names_fields_and_shows_values_only_when_asked(site: Site) -> None:
    held_correction(site)
    text = cws("report", "-c", str(site.config))
    assert text.exit_code == 0, text.output
    assert "               what changed: fname (patient); booking_date (booking)" in text.output.splitlines()
    assert "Jon" not in text.output and "John" not in text.output
    assert (
        "    where in CorEMR: fname: on the patient in CorEMR; booking_date: on the booking in CorEMR (a booking"
        " field, not a patient field: change the booking, not the patient)"
    ) in text.output.splitlines()
    shown = cws("report", "-c", str(site.config), "--show-values")
    assert 'what changed: fname: "Jon" → "John" (patient); booking_date: ' in shown.output
    across = cws("report", "-c", str(site.config), "--all")
    assert "               what changed: fname (patient); booking_date (booking)" in across.output.splitlines()


def test_the_report_files_carry_the_values_and_json_on_stdout_does_not(site: Site) -> None:
    held_correction(site)
    report_csv, report_html = site.dir / "report.csv", site.dir / "report.html"
    assert cws("report", "-c", str(site.config), "--format", "csv", "--output", str(report_csv)).exit_code == 0
    with report_csv.open(newline="", encoding="utf-8") as fh:
        [held] = [r for r in csv.DictReader(fh) if r["state"] == "changed"]
    assert held["changes"].startswith('fname: "Jon" → "John" (patient); booking_date: ')
    assert cws("report", "-c", str(site.config), "--format", "html", "--output", str(report_html)).exit_code == 0
    page = report_html.read_text(encoding="utf-8")
    assert "What changed: fname: &quot;Jon&quot; → &quot;John&quot; (patient)" in page
    assert "on the booking in CorEMR (a booking field, not a patient field" in page
    on_stdout = cws("report", "-c", str(site.config), "--format", "csv")
    assert "fname (patient); booking_date (booking)" in on_stdout.output and "John" not in on_stdout.output
    as_json = cws("report", "-c", str(site.config), "--format", "json")
    assert "John" not in as_json.output and json.loads(as_json.output)["records"]


def test_changes_are_the_fields_that_differ_with_where_each_lives() -> None:
    old = json.dumps({"fname": "Jon", "lname": "Smith", "booking_no": "B1", "mname": "Q"}).encode()
    new = json.dumps({"fname": "John", "lname": "Smith", "booking_no": "B2"}).encode()
    changes = body_changes(old, new, values=True)
    assert changes_text(changes, values=True) == (
        'fname: "Jon" → "John" (patient); booking_no: "B1" → "B2" (booking); mname: "Q" → (none) (patient)'
    )
    assert changes_text(body_changes(old, new, values=False), values=False) == (
        "fname (patient); booking_no (booking); mname (patient)"
    )
    assert where_text(changes) == (
        "fname, mname: on the patient in CorEMR; booking_no: on the booking in CorEMR (a booking field, not a"
        " patient field: change the booking, not the patient)"
    )
    assert body_changes(old, b"not json", values=True) == ()
