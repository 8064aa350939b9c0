"""Output files (`run --errors`, `report --output`, `validate --rejects`): never through a symbolic link, never into
a FIFO, 0600, one CSV writer for all, and a directory that is not there refused before anything is sent."""

from __future__ import annotations

import csv
import io
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline import UserInputError
from pipeline._private_files import open_private
from pipeline.cli import cli

from ..sites import Site, booking_rows
from .test_validate_command import SMALL_MAPPING

FORMULA_AFTER_CR = "Smith\r=cmd|' /C calc'!A0"


def invoke(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def small_export(tmp_path: Path, first_id: str) -> tuple[Path, Path]:
    mapping = tmp_path / "m.toml"
    mapping.write_text(SMALL_MAPPING, encoding="utf-8")
    data = tmp_path / "in.csv"
    with data.open("w", encoding="utf-8", newline="") as out:
        csv.writer(out, quoting=csv.QUOTE_ALL).writerows([["ID", "N"], [first_id, "x"], ["2", "20"]])
    return data, mapping


def test_validate_rejects_quotes_a_bare_cr_so_no_row_starts_with_a_formula(tmp_path: Path) -> None:
    data, mapping = small_export(tmp_path, FORMULA_AFTER_CR)
    rejects = tmp_path / "rejects.csv"
    code, _ = invoke("validate", data, "-m", mapping, "--rejects", rejects)
    assert code == 1
    raw = rejects.read_bytes().decode("utf-8")
    rows = list(csv.reader(io.StringIO(raw, newline="")))  # as a spreadsheet reads it: CR alone ends a row too
    assert [row[:2] for row in rows] == [["ID", "N"], [FORMULA_AFTER_CR, "x"]]
    assert raw.startswith('ID,N,line,error\r\n"Smith\r=cmd')  # the same CRLF writer as --errors and report csv
    assert stat.S_IMODE(rejects.stat().st_mode) == 0o600


@pytest.mark.parametrize("option", ["--rejects", "--bodies"])
def test_validate_refuses_a_symlink_at_its_output_and_leaves_the_target_alone(tmp_path: Path, option: str) -> None:
    data, mapping = small_export(tmp_path, "1")
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n", encoding="utf-8")
    link = tmp_path / "out.csv"
    link.symlink_to(target)
    code, output = invoke("validate", data, "-m", mapping, option, link)
    assert code == 2
    assert output == f"Error: {link}: is a symbolic link; not writing through it (its target is left untouched):" \
                     " give another path\n"  # fmt: skip
    assert target.read_text(encoding="utf-8") == "keep me\n" and link.is_symlink()


def test_report_output_refuses_a_symlink_and_writes_0600_otherwise(site: Site) -> None:
    site.write_config()
    assert invoke("run", site.write_csv(booking_rows(2)), "-m", site.mapping, "-c", site.config)[0] == 0
    target = site.dir / "precious.txt"
    target.write_text("keep me\n", encoding="utf-8")
    link = site.dir / "report.csv"
    link.symlink_to(target)
    code, output = invoke("report", "-c", site.config, "--format", "csv", "--output", link)
    assert code == 2 and len(output.splitlines()) == 1 and "is a symbolic link" in output
    assert target.read_text(encoding="utf-8") == "keep me\n"
    plain = site.dir / "report2.csv"
    plain.write_text("old\n", encoding="utf-8")
    plain.chmod(0o644)
    assert invoke("report", "-c", site.config, "--format", "csv", "--output", plain)[0] == 0
    assert stat.S_IMODE(plain.stat().st_mode) == 0o600 and plain.read_text(encoding="utf-8") != "old\n"


def test_run_errors_through_a_symlink_is_refused_before_anything_is_sent(site: Site) -> None:
    target = site.dir / "precious.txt"
    target.write_text("keep me\n", encoding="utf-8")
    link = site.dir / "errors.csv"
    link.symlink_to(target)
    code, output = invoke("run", site.write_csv(booking_rows(2)), "-m", site.mapping, "-c", site.config,
                          "--errors", link)  # fmt: skip
    assert code == 2 and len(output.splitlines()) == 1 and "is a symbolic link" in output
    assert target.read_text(encoding="utf-8") == "keep me\n"
    assert site.server.counters().requests == 0 and not site.ledger.exists()


def test_run_errors_into_a_missing_directory_is_refused_before_anything_is_sent(site: Site) -> None:
    errors = site.dir / "no-such-dir" / "errors.csv"
    code, output = invoke("run", site.write_csv(booking_rows(2)), "-m", site.mapping, "-c", site.config,
                          "--errors", errors)  # fmt: skip
    assert code == 2
    assert output == (
        f"Error: {errors}: the directory {errors.parent} does not exist; create it or give another path\n"
    )
    assert site.server.counters().requests == 0 and not site.ledger.exists()  # no run recorded at all


def test_open_private_refuses_a_fifo_without_waiting_for_a_reader(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(UserInputError, match="is not a regular file"):
        open_private(fifo)  # a plain open for writing would wait for a reader for ever
