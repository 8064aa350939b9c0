"""The examples of docs/mapping.md load and map as the text says (a docs check)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.mapping import MappedRow, load_mapping, map_csv

MAPPING_PAGE = Path(__file__).parents[2] / "docs" / "mapping.md"
SECTION = MAPPING_PAGE.read_text(encoding="utf-8").split("# Mapping files\n", 1)[1].split("\n## ", 1)[0]
EXAMPLES = re.findall(r"```toml\n(.*?)```", SECTION, re.S)
MAIN, FRAGMENTS = EXAMPLES[0], EXAMPLES[1:]
HEADER = "Inmate ID,First Name,Name,DOB,Sex,Middle Name,Booking Number,Booking Date"
ROW = 'J1, ann ,"Lee, Ann",04/12/2000,f,nmn,B1,11/29/2026 22:15'  # "nmn": no middle name (blank_values)


def tables(text: str) -> dict[str, str]:
    """TOML text split into its tables, by header line."""
    parts = re.split(r"^(?=\[)", text, flags=re.M)
    return {part.splitlines()[0].split("#")[0].strip(): part for part in parts if part.startswith("[")}


def with_fragment(fragment: str) -> str:
    """The main example with the fragment's tables in place of its own."""
    kept = {header: text for header, text in tables(MAIN).items() if header not in tables(fragment)}
    return "".join(kept.values()) + "\n" + fragment


def mapped(tmp_path: Path, mapping_text: str, export: str) -> list[MappedRow]:
    (tmp_path / "m.toml").write_text(mapping_text, encoding="utf-8")
    (tmp_path / "in.csv").write_text(export, encoding="utf-8")
    return [row for chunk in map_csv(tmp_path / "in.csv", load_mapping(tmp_path / "m.toml")) for row in chunk]


def test_the_main_example_maps_a_row(tmp_path: Path) -> None:
    (row,) = mapped(tmp_path, MAIN, f"{HEADER}\n{ROW}\n")
    assert row.body == (
        b'{"external_id":"J1","facility":10000,"agency":2,"fname":"Ann","lname":"Lee","dob":"2000-04-12 00:00:00.000",'
        b'"sex":"F","booking_no":"B1","booking_date":"2026-11-29 22:15:00.000"}'
    )


def test_every_fragment_loads_in_the_main_example(tmp_path: Path) -> None:
    (tmp_path / "facilities.csv").write_text("Code,Name,CorEMR ID\nMAIN,Main jail,10000\n", encoding="utf-8")
    (tmp_path / "codes.toml").write_text('[gender]\n1 = "M"\n2 = "F"\n9 = "U"\n', encoding="utf-8")
    assert len(FRAGMENTS) == 6
    for fragment in FRAGMENTS:
        (tmp_path / "m.toml").write_text(with_fragment(fragment), encoding="utf-8")
        assert load_mapping(tmp_path / "m.toml").fields


@pytest.mark.parametrize(
    ("fragment", "header", "row", "expected"),
    [
        (0, HEADER, ROW, b'"booking_no":"B1"'),  # preamble, header on line 3, trailer skipped
        (1, HEADER, ROW + ",X1,X2,,X4,X5", b'"booking_date":"2026-11-29 22:15:00.000"'),  # 5 cells ignored
        (1, HEADER + ",Cell,Bed", ROW, b'"booking_no":"B1"'),  # 2 blank cells added
        (2, HEADER.replace("Booking Date", "Book Date,Book Time"), ROW.replace(" 22:15", ",2215"), b"22:15:00.000"),
        (3, HEADER + ",Facility,Gender", ROW.replace(",f,", ",,") + ",MAIN,2", b'"facility":10000'),
        (4, HEADER + ",RecordType", ROW + ",Training", None),
        (  # a key of the person and the booking date, the booking number made of both
            5,
            HEADER.replace("Inmate ID", "Person ID").replace("Booking Date", "Book Date"),
            ROW.replace("J1,", "812345,"),
            b'"booking_no":"812345112920262215","booking_date":"2026-11-29 22:15:00.000"',
        ),
    ],
)
def test_each_fragment_does_what_the_page_says(
    tmp_path: Path, fragment: int, header: str, row: str, expected: bytes | None
) -> None:
    (tmp_path / "facilities.csv").write_text("Code,Name,CorEMR ID\nMAIN,Main jail,10000\n", encoding="utf-8")
    (tmp_path / "codes.toml").write_text('[gender]\n1 = "M"\n2 = "F"\n9 = "U"\n', encoding="utf-8")
    text = with_fragment(FRAGMENTS[fragment])
    export = f"{header}\n{row}\n"
    if fragment == 0:
        export = f"County export\nrun 2026-11-30\n{export}TRAILER;1\n"
    (result,) = mapped(tmp_path, text, export)
    if expected is None:
        assert (result.excluded, result.body) == ("training record", None)
    else:
        assert result.body is not None and expected in result.body, result.problems
    if fragment == 3:
        assert result.body is not None and b'"sex":"F"' in result.body
