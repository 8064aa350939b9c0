"""The mapping's returning-patient options: `[target] on_change` and `booking_fields`, read and refused in one
line at load; and the booking number held to the URL-path rule wherever it goes into the bookings routes."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import MappingError
from pipeline.mapping import load_mapping, map_csv

from ..sites import SITE_MAPPING, V1_SITE_MAPPING


def load(tmp_path: Path, text: str, *target: str) -> object:
    path = tmp_path / "site.toml"
    path.write_text(text.replace("[target]\n", "[target]\n" + "".join(f"{t}\n" for t in target)), encoding="utf-8")
    return load_mapping(path)


def refused(tmp_path: Path, text: str, *target: str) -> str:
    with pytest.raises(MappingError) as info:
        load(tmp_path, text, *target)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(tmp_path / "site.toml") + ": ")
    return message


def test_by_default_changes_are_held_and_a_booking_body_is_the_assumed_fields(tmp_path: Path) -> None:
    mapping = load(tmp_path, SITE_MAPPING)
    assert mapping.on_change == "hold"  # type: ignore[attr-defined]
    assert mapping.booking_fields == ("facility", "booking_no", "booking_date")  # type: ignore[attr-defined]


def test_the_policy_and_the_booking_fields_are_read(tmp_path: Path) -> None:
    mapping = load(tmp_path, SITE_MAPPING, 'on_change = "update"', 'booking_fields = ["booking_no", "agency"]')
    assert mapping.on_change == "update"  # type: ignore[attr-defined]
    assert mapping.booking_fields == ("booking_no", "agency")  # type: ignore[attr-defined]


def test_v1_has_no_booking_body(tmp_path: Path) -> None:
    assert load(tmp_path, V1_SITE_MAPPING).booking_fields == ()  # type: ignore[attr-defined]
    message = refused(tmp_path, V1_SITE_MAPPING, 'booking_fields = ["booking_number"]')
    assert "target.booking_fields: CorEMR API v1 has no bookings routes; remove booking_fields" in message


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ('on_change = "overwrite"', "target.on_change: 'overwrite' is not one of hold, update"),
        ("booking_fields = []", "target.booking_fields: expected a non-empty list of field names, e.g. ["),
        ('booking_fields = "booking_no"', "target.booking_fields: expected a non-empty list of field names"),
        ('booking_fields = ["booking_no", "jail"]', "target.booking_fields[1]: 'jail' is not one of the fields"),
        ('booking_fields = ["booking_date"]', "target.booking_fields: must hold 'booking_no': it names the booking"),
        ('booking_fields = ["booking_no", "booking_no"]', "target.booking_fields: names a field twice"),
    ],
)
def test_bad_returning_options_are_refused_naming_the_key(tmp_path: Path, target: str, problem: str) -> None:
    assert problem in refused(tmp_path, SITE_MAPPING, target)


@pytest.mark.parametrize("number", [".", "..", "B/1", "B 1", "B%1", "B?1"])
def test_a_booking_number_unsafe_in_a_url_path_is_invalid_in_v2(tmp_path: Path, number: str) -> None:
    mapping = load(tmp_path, SITE_MAPPING)
    csv = tmp_path / "in.csv"
    csv.write_text(f"Inmate ID,Booking,First,Last,DOB,Sex,Booked\nP1,{number},A,B,1980-01-01,M,2026-01-01 10:00\n")
    [row] = next(map_csv(csv, mapping))  # type: ignore[arg-type]
    assert not row.valid and [p.field for p in row.problems] == ["booking_no"]
    assert "safe in a URL path" in row.problems[0].expected


def test_in_v1_the_booking_number_never_goes_into_a_path_and_is_not_held_to_it(tmp_path: Path) -> None:
    mapping = load(tmp_path, V1_SITE_MAPPING)
    csv = tmp_path / "in.csv"
    csv.write_text("Inmate ID,Booking,First,Last,DOB,Sex,Booked\nP1,B 1,A,B,1980-01-01,M,2026-01-01 10:00\n")
    [row] = next(map_csv(csv, mapping))  # type: ignore[arg-type]
    assert row.valid
