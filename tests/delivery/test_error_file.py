"""`run --errors FILE`: the rows needing a person, for the records clerk, as the export's own cells."""

from __future__ import annotations

import csv
import stat
from pathlib import Path

from click.testing import CliRunner

from pipeline.cli import cli

from ..sites import BOOKING_HEADER, Site, booking_rows


def run_with_errors(site: Site, rows: list[list[str]], errors: Path) -> int:
    csv_path = site.write_csv(rows)
    args = ["run", str(csv_path), "-m", str(site.mapping), "-c", str(site.config), "--errors", str(errors)]
    return CliRunner().invoke(cli, args).exit_code


def test_the_error_file_lists_each_row_needing_a_person_with_its_cells_state_and_reason(site: Site) -> None:
    rows = booking_rows(5)
    rows[1][4] = "not a date"  # line 3: invalid
    rows[3][2] = "=HYPERLINK(1)"  # line 5: delivered, a formula in a name cell
    rows[4][2] = "=cmd|' /C calc'!A0"  # line 6: invalid too (a bad date), and a formula to neutralise
    rows[4][4] = "soon"
    errors = site.dir / "errors.csv"
    assert run_with_errors(site, rows, errors) == 1

    assert stat.S_IMODE(errors.stat().st_mode) == 0o600
    with errors.open(newline="", encoding="utf-8") as fh:
        found = list(csv.reader(fh))
    assert found[0] == [*BOOKING_HEADER, "line", "state", "reason"]
    assert [(r[-3], r[-2]) for r in found[1:]] == [("3", "invalid"), ("6", "invalid")]
    assert found[1][: len(BOOKING_HEADER)] == rows[1]  # the cells as the export had them, to fix there
    assert found[2][2] == "'=cmd|' /C calc'!A0"  # a spreadsheet shows it, never runs it
    assert "dob (column 'DOB')" in found[1][-1]


def test_a_night_with_nothing_to_fix_leaves_a_file_with_no_rows(site: Site) -> None:
    errors = site.dir / "errors.csv"
    errors.write_text("last night's rows\n", encoding="utf-8")
    assert run_with_errors(site, booking_rows(3), errors) == 0
    assert errors.read_text(encoding="utf-8").splitlines() == ["line,state,reason"]  # nothing left from before


def test_cron_mail_names_the_error_file_when_rows_newly_need_a_person_and_is_silent_otherwise(site: Site) -> None:
    rows = booking_rows(3)
    rows[1][4] = "not a date"
    errors = site.dir / "errors.csv"
    args = ["run", str(site.write_csv(rows)), "-m", str(site.mapping), "-c", str(site.config), "--errors", str(errors)]
    first = CliRunner().invoke(cli, args)  # not a terminal, no -v: as cron runs it
    assert first.exit_code == 1
    assert f"Wrote {errors.resolve()} (1 row(s) needing a person; mode 0600)." in first.output
    again = CliRunner().invoke(cli, args)  # nothing new: cron mails nothing, not even the file's name
    assert (again.exit_code, again.output) == (0, "")
