"""Whether a mapping's key tells one booking from another: a key naming the booking number or the booking date does,
one naming the person alone does not (and `validate` warns about it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.mapping import load_mapping, validate_csv

from ..sites import SITE_MAPPING, V1_SITE_MAPPING


@pytest.mark.parametrize(
    ("mapping", "key", "names_booking"),
    [
        (SITE_MAPPING, '["external_id", "booking_no"]', True),
        (SITE_MAPPING, '["external_id", "booking_date"]', True),
        (SITE_MAPPING, '["booking_no"]', True),
        (SITE_MAPPING, '["external_id"]', False),
        (V1_SITE_MAPPING, '["external_id", "booking_number"]', True),
        (V1_SITE_MAPPING, '["external_id"]', False),
    ],
)
def test_a_key_names_a_booking_by_its_number_or_its_date(
    tmp_path: Path, mapping: str, key: str, names_booking: bool
) -> None:
    path = tmp_path / "m.toml"
    text = mapping.replace('key = ["external_id", "booking_no"]', f"key = {key}")
    path.write_text(text.replace('key = ["external_id", "booking_number"]', f"key = {key}"), encoding="utf-8")
    loaded = load_mapping(path)
    assert loaded.key_names_booking is names_booking
    export = tmp_path / "in.csv"
    export.write_text("Inmate ID,Booking,First,Last,DOB,Sex,Booked\n", encoding="utf-8")
    warnings = validate_csv(export, loaded).warnings
    assert bool(warnings) is not names_booking
    assert all(w.startswith(f"{path}: [target] key = ") and "add the booking date to the key" in w for w in warnings)


def test_a_mapping_without_booking_fields_is_not_warned_about(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('[target]\nprofile = "none"\nkey = ["id"]\n[fields.id]\ncolumn = "ID"\n', encoding="utf-8")
    export = tmp_path / "in.csv"
    export.write_text("ID\n1\n", encoding="utf-8")
    mapping = load_mapping(path)
    assert (mapping.key_names_booking, validate_csv(export, mapping).warnings) == (False, ())
