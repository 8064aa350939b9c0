"""A ledger whose reasons an earlier version recorded with CorEMR's own words: they are never printed again."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.delivery import printable_reason

from ..sites import SITE_MAPPING, Site, booking_rows

OLD_WORDS = "Marcusqz Hollowayqz born 03/14/1979, SSN 987-65-4321, is Zoeqz's brother"
OURS = "CorEMR's words are kept in the ledger, not printed"


def test_an_earlier_versions_reason_prints_our_words_not_the_servers() -> None:
    assert printable_reason(f"HTTP 400: {OLD_WORDS}") == f"HTTP 400: {OURS}"
    assert printable_reason(f"lookup answered HTTP 403: {OLD_WORDS}") == f"lookup answered HTTP 403: {OURS}"
    again = "rejected earlier with the same body (run {}): "
    nested = f"{again.format(2)}{again.format(1)}HTTP 409: {OLD_WORDS}"
    assert printable_reason(nested) == nested.replace(OLD_WORDS, OURS)


def test_reasons_in_our_own_words_are_printed_as_recorded() -> None:
    for reason in (
        "HTTP 400: CorEMR named fields sex; its words are kept in the ledger, not printed",
        f"HTTP 409: {OURS}; the patient exists, and the row names no booking the bookings routes can take",
        "HTTP 400: CorEMR's answer has no message",
        "CorEMR refused booking B1 as existing, yet its lookup answered HTTP 404: check the patient in CorEMR",
        "HTTP 401 to a create: check private_key and access",
        "line 3: dob (column 'DOB'): value withheld (identifying field); expected a date",
    ):
        assert printable_reason(reason) == reason


def record_old_words(ledger: Path) -> None:
    """Rewrite the rejected rows' reasons as an earlier version recorded them: CorEMR's words after the status."""
    with sqlite3.connect(ledger) as db:
        db.execute(
            "UPDATE entries SET error = ? WHERE event = 'state' AND state = 'rejected'", (f"HTTP 400: {OLD_WORDS}",)
        )
        db.execute("UPDATE row_status SET reason = ? WHERE state = 'rejected'", (f"HTTP 400: {OLD_WORDS}",))
    db.close()


def test_a_ledger_with_old_reasons_prints_none_of_coremrs_words_in_report_run_or_the_error_file(site: Site) -> None:
    site.mapping.write_text(SITE_MAPPING.replace("[target]\n", '[target]\nprofile = "none"\n'), encoding="utf-8")
    rows = booking_rows(2)
    rows[0][5] = "X"  # CorEMR itself refuses it with a signed 400
    export = site.write_csv(rows)
    runner = CliRunner()
    run = ["run", str(export), "-m", str(site.mapping), "-c", str(site.config), "-v"]
    assert runner.invoke(cli, run).exit_code == 1
    record_old_words(site.ledger)

    report = runner.invoke(cli, ["report", "--ledger", str(site.ledger)])
    errors = site.dir / "errors.csv"
    again = runner.invoke(cli, [*run, "--errors", str(errors)])  # rejected again: last night's reason, read back
    across = runner.invoke(cli, ["report", "--ledger", str(site.ledger), "--all"])

    assert again.exit_code == 0, again.output  # refused before, unchanged since: cron need not hear of it
    for output in (report.output, again.output, across.output):
        assert "Marcusqz" not in output and "987-65-4321" not in output and "03/14/1979" not in output
    assert f"rejected  HTTP 400: {OURS}" in report.output
    assert f"rejected earlier with the same body (run 1): HTTP 400: {OURS}" in again.output
    with errors.open(encoding="utf-8", newline="") as fh:
        assert [r["reason"] for r in csv.DictReader(fh)] == [
            f"rejected earlier with the same body (run 1): HTTP 400: {OURS}"
        ]
