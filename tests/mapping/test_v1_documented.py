"""`cws-pipeline validate` holds a v1 mapping and its rows to CorEMR's v1 field table.

The table (docs.coremr.com /ws/v1/patients/) marks facility, dob and sex required to add; it gives String(255)
names, one of five race values and an Integer height. Each refusal cites the documented rule, through the CLI.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli

ROOT = Path(__file__).resolve().parents[2]
V1_SAMPLE = ROOT / "mappings" / "sample-jms-v1.toml"
HEADER = "Inmate ID,Booking Number,Booking Date,Name,Middle Name,DOB,Sex,Race,Height,Weight,Facility,Housing\n"
GOOD = 'J1,B1,2025-01-27 08:57:00,"Brown, Ann",,1954-05-02,F,W,64,109.5,MAIN,D-POD 27\n'


def validate(tmp_path: Path, rows: str, mapping: Path = V1_SAMPLE) -> tuple[int, str, str]:
    export = tmp_path / "bookings.csv"
    export.write_text(HEADER + rows, encoding="utf-8")
    result = CliRunner().invoke(cli, ["validate", str(export), "--mapping", str(mapping)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


def test_a_row_within_every_documented_rule_is_valid(tmp_path: Path) -> None:
    code, out, _ = validate(tmp_path, GOOD)
    assert code == 0 and "valid:     1\n" in out


@pytest.mark.parametrize("field", ["facility", "dob", "sex"])
def test_a_v1_mapping_without_facility_dob_or_sex_is_refused_citing_the_add_column(tmp_path: Path, field: str) -> None:
    text = V1_SAMPLE.read_text(encoding="utf-8")
    start = text.index(f"[fields.{field}]")
    mapping = tmp_path / "v1.toml"
    mapping.write_text(text[:start] + text[text.index("\n[fields.", start) + 1 :], encoding="utf-8")
    code, out, err = validate(tmp_path, GOOD, mapping)
    assert (code, out) == (2, "")
    [line] = err.splitlines()
    assert line.startswith(f"Error: {mapping}: fields.{field}: missing; CorEMR API v1 requires external_id, facility,")
    assert f"(CorEMR v1 docs: the field table's Add column; missing: {field})" in line


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (GOOD.replace("Brown, Ann", "Brown, " + "A" * 300),
         "  line 2: fname (column 'Name'): value withheld (identifying field); expected at most 255 characters"
         " (CorEMR v1 docs: String(255); found 300)\n"),
        (GOOD.replace(",W,", ",Martian,"),
         "  line 2: race (column 'Race'): 'Martian' is not one of A, B, I, W (CorEMR v1 docs: the five listed race"
         " values)\n"),
        (GOOD.replace(",64,", ",70.5,"),
         "  line 2: height (column 'Height'): '70.5' is not a whole number (CorEMR v1 docs: Integer (inches))\n"),
        (GOOD.replace(",F,", ",X,"),
         "  line 2: sex (column 'Sex'): 'X' is not one of M, MALE, F, FEMALE, U, UNKNOWN (CorEMR v1 docs:"
         " String(7), required to add)\n"),
    ],
    ids=["fname-300", "race-martian", "height-70.5", "sex-x"],
)  # fmt: skip
def test_a_row_breaking_a_documented_rule_is_invalid_citing_it(tmp_path: Path, row: str, problem: str) -> None:
    code, out, _ = validate(tmp_path, row)
    assert code == 1 and "invalid:   1\n" in out
    assert problem in out
