"""CWS patient checks: mappings that cannot satisfy CorEMR are refused; rows are held to its field rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline._errors import MappingError
from pipeline.mapping._mapped_rows import map_csv
from pipeline.mapping._mapping_file import Mapping, load_mapping

PATIENT = """
[fields.external_id]
column = "ID"
[fields.facility]
value = 10000
[fields.fname]
column = "First"
[fields.lname]
column = "Last"
[fields.dob]
column = "DOB"
type = "datetime"
formats = ["%Y-%m-%d"]
[fields.sex]
value = "U"
[fields.booking_no]
column = "Booking"
[fields.booking_date]
column = "Booked"
type = "datetime"
formats = ["%Y-%m-%d"]
"""
HEADER = "ID,First,Last,DOB,Booking,Booked\n"


def load(tmp_path: Path, text: str) -> Mapping:
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return load_mapping(path)


def refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(MappingError) as info:
        load(tmp_path, text)
    return str(info.value)


def test_complete_patient_mapping_is_accepted(tmp_path: Path) -> None:
    load(tmp_path, PATIENT)


def test_mapping_without_lname_is_refused_before_reading(tmp_path: Path) -> None:
    message = refused(tmp_path, PATIENT.replace('[fields.lname]\ncolumn = "Last"\n', ""))
    assert ": fields.lname: missing;" in message
    assert 'profile = "none"' in message


def test_profile_none_accepts_a_partial_body(tmp_path: Path) -> None:
    load(tmp_path, '[target]\nprofile = "none"\nkey = ["id"]\n[fields.id]\ncolumn = "Id"\n')


def test_optional_required_field_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, PATIENT.replace('column = "First"', 'column = "First"\nrequired = false'))
    assert ": fields.fname.required: " in message


def test_optional_required_field_with_default_is_accepted(tmp_path: Path) -> None:
    load(tmp_path, PATIENT.replace('column = "First"', 'column = "First"\nrequired = false\ndefault = "UNKNOWN"'))


def test_facility_must_be_an_integer(tmp_path: Path) -> None:
    message = refused(tmp_path, PATIENT.replace("value = 10000", 'value = "10000"'))
    assert ': fields.facility.type: CWS expects facility as an integer ID: set type = "integer"' in message


def test_dob_must_be_a_date(tmp_path: Path) -> None:
    text = PATIENT.replace('column = "DOB"\ntype = "datetime"\nformats = ["%Y-%m-%d"]', 'column = "DOB"')
    assert ": fields.dob.type: " in refused(tmp_path, text)


def test_external_id_longer_than_17_and_future_dob_are_row_problems(tmp_path: Path) -> None:
    mapping = load(tmp_path, PATIENT)
    csv_path = tmp_path / "in.csv"
    csv_path.write_text(
        HEADER + "ABCDEFGHIJKLMNOPQR,Ann,Lee,1990-01-02,B1,2025-01-01\nE2,Bo,Ng,2999-01-01,B2,2025-01-01\n"
        "E3,Cy,Ox,1990-01-01,B3,2025-01-01\n",
        encoding="utf-8",
    )
    rows = [row for chunk in map_csv(csv_path, mapping) for row in chunk]
    assert [str(p) for p in rows[0].problems] == [
        "line 2: external_id (column 'ID'): 'ABCDEFGHIJKLMNOPQR' is not at most 17 characters (found 18)"
    ]
    assert [p.expected for p in rows[1].problems] == ["a past date (not after now)"]  # dob never in the future
    assert rows[2].valid


def test_profile_caps_a_looser_max_length(tmp_path: Path) -> None:
    mapping = load(tmp_path, PATIENT.replace('column = "ID"', 'column = "ID"\nmax_length = 30'))
    spec = next(f for f in mapping.fields if f.name == "external_id")
    assert spec.max_length == 17
