"""Property: every valid body round-trips through json.loads to exactly the mapped values."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.mapping import load_mapping, map_csv
from pipeline.mapping._dates import (
    _fixed_layout,
    _foreign_characters,
    _has_foreign_characters,
    _parse_fixed_width,
    _strict_shape,
    _strptime_dates,
    iso_strings,
    parse_dates,
)

MAPPING = """
[target]
profile = "none"
key = ["id"]
[fields.id]
column = "ID"
[fields.name]
column = "Name"
required = false
[fields.n]
column = "N"
type = "integer"
[fields.x]
column = "X"
type = "number"
[fields.born]
column = "Born"
type = "datetime"
formats = ["%m/%d/%Y", "%Y-%m-%d"]
[fields.facility]
value = 10000
"""

# Any text a valid name can hold: no lone surrogates, no control characters (those are row problems).
cell_text = st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=30)
rows_strategy = st.lists(
    st.tuples(
        cell_text,
        st.integers(-(10**12), 10**12),
        st.floats(allow_nan=False, allow_infinity=False, width=64),
        st.dates(min_value=date(1900, 1, 1), max_value=date(2025, 12, 31)),
        st.booleans(),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(rows=rows_strategy, delimiter=st.sampled_from([",", ";", "\t"]))
def test_valid_bodies_round_trip_to_the_mapped_values(
    rows: list[tuple[str, int, float, date, bool]], delimiter: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mapping_path = Path(tmp) / "m.toml"
        mapping_path.write_text(MAPPING.replace("[target]", f"[source]\ndelimiter = {json.dumps(delimiter)}\n[target]"))
        out = io.StringIO()
        writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
        writer.writerow(["ID", "Name", "N", "X", "Born"])
        for i, (name, n, x, born, iso) in enumerate(rows):
            writer.writerow([f"E{i}", name, str(n), repr(x), born.isoformat() if iso else born.strftime("%m/%d/%Y")])
        csv_path = Path(tmp) / "in.csv"
        csv_path.write_bytes(out.getvalue().encode("utf-8"))
        mapped = [row for chunk in map_csv(csv_path, load_mapping(mapping_path), chunk_rows=7) for row in chunk]
    assert len(mapped) == len(rows)
    for row, (name, n, x, born, _) in zip(mapped, rows, strict=True):
        assert row.valid, row.problems
        assert row.body is not None and b"\n" not in row.body
        expected: dict[str, object] = {"id": row.key}
        if name.strip():
            expected["name"] = name
        expected |= {"n": n, "x": x, "born": f"{born.isoformat()} 00:00:00.000", "facility": 10000}
        assert json.loads(row.body) == expected
        assert list(json.loads(row.body)) == list(expected)  # keys in mapping order
        assert row.body == json.dumps(expected, ensure_ascii=False, separators=(",", ":")).encode()


@settings(max_examples=200, deadline=None)
@given(
    cells=st.lists(
        st.one_of(
            st.text(alphabet="0123456789/:- aJ.+٣", max_size=19),
            st.datetimes(min_value=datetime(1, 1, 1)).map(lambda d: d.strftime("%m/%d/%Y %H:%M")),
            st.datetimes(min_value=datetime(1, 1, 1)).map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S")),
        ),
        max_size=30,
    ),
    fmt=st.sampled_from(["%m/%d/%Y %H:%M", "%Y-%m-%d %H:%M:%S", "%m/%d/%y", "%Y%m%d"]),
)
def test_fast_date_parsing_agrees_with_pandas(cells: list[str], fmt: str) -> None:
    assert_agrees_with_pandas_at_strict_widths(cells, fmt)


def assert_agrees_with_pandas_at_strict_widths(cells: list[str], fmt: str) -> None:
    """parse_dates reads what pandas' strptime reads, except numbers at other widths (`1985123`), which are NaT."""
    ours = parse_dates(cells, fmt, "strptime", datetime(2026, 1, 1))
    theirs = pd.to_datetime(pd.Series(cells, dtype=object), format=fmt, errors="coerce").to_numpy(
        dtype="datetime64[us]"
    )
    theirs = theirs.copy()
    shape = _strict_shape(fmt)
    assert shape is not None
    strict = np.array([shape.fullmatch(c.strip()) is not None for c in cells], dtype=bool)
    theirs[~strict] = np.datetime64("NaT")
    assert ((ours == theirs) | (np.isnat(ours) & np.isnat(theirs))).all(), list(zip(cells, ours, theirs, strict=True))


@settings(max_examples=300, deadline=None)
@given(
    cells=st.lists(
        st.one_of(
            st.text(alphabet="0123456789/: ", max_size=16),
            st.datetimes(min_value=datetime(1, 1, 1)).map(lambda d: d.strftime("%Y%m%d%H%M")),
            st.datetimes(min_value=datetime(1, 1, 1)).map(lambda d: d.strftime("%m/%d/%Y %H:%M")),
        ),
        max_size=30,
    ),
    fmt=st.sampled_from(["%Y%m%d", "%Y%m%d%H%M", "%m/%d/%Y %H:%M", "%d%m%y", "%y%m%d %H:%M"]),
)
def test_both_date_parsing_paths_read_the_same_dates(cells: list[str], fmt: str) -> None:
    fast = _parse_fixed_width(cells, fmt)
    assert fast is not None
    slow = _strptime_dates(cells, fmt)
    read_by_fast = ~np.isnat(fast)
    assert (slow[read_by_fast] == fast[read_by_fast]).all()
    # What only the strptime path reads is a part between separators written without its leading zero.
    size = _fixed_layout(fmt).size  # type: ignore[union-attr]
    for cell in [c for c, only_slow in zip(cells, ~np.isnat(slow) & ~read_by_fast, strict=True) if only_slow]:
        assert len(cell) < size and "%Y%m" not in fmt and "%d%m" not in fmt, cell


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(st.sampled_from("abcdef"), st.sampled_from("xy")), min_size=1, max_size=40),
    chunk_rows=st.integers(1, 9),
)
def test_repeated_keys_are_one_booking_or_a_conflict_naming_the_first_line_whatever_the_chunking(
    rows: list[tuple[str, str]], chunk_rows: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mapping_path = Path(tmp) / "m.toml"
        mapping_path.write_text(
            '[target]\nprofile = "none"\nkey = ["id"]\n[fields.id]\ncolumn = "ID"\n[fields.v]\ncolumn = "V"\n'
        )
        csv_path = Path(tmp) / "in.csv"
        csv_path.write_text("ID,V\n" + "".join(f"{k},{v}\n" for k, v in rows))
        mapped = [
            row for chunk in map_csv(csv_path, load_mapping(mapping_path), chunk_rows=chunk_rows) for row in chunk
        ]
    first: dict[str, tuple[int, str]] = {}
    for row, (key, value) in zip(mapped, rows, strict=True):
        if key not in first:
            first[key] = (row.line, value)
            assert row.valid and row.duplicate_of is None
        elif first[key][1] == value:  # the same key and the same body: the same booking again
            assert row.valid and row.duplicate_of == first[key][0]
        else:
            assert row.duplicate_of is None
            assert [p.expected for p in row.problems] == [
                f"key {key!r} (id) was already used on line {first[key][0]}, with a different body: a key names"
                f" one booking; correct line {first[key][0]} or line {row.line}"
            ]


@settings(max_examples=100, deadline=None)
@given(
    stamps=st.lists(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)), max_size=30),
    unit=st.sampled_from(["ms", "s", "D"]),
)
def test_iso_dates_are_written_as_numpy_writes_them(stamps: list[datetime], unit: Literal["ms", "s", "D"]) -> None:
    array = np.array(stamps, dtype="datetime64[us]")
    expected = [t.replace("T", " ") for t in np.datetime_as_string(array, unit=unit).tolist()]
    assert (iso_strings(array, unit, " ") if stamps else []) == expected


@settings(max_examples=200, deadline=None)
@given(
    cells=st.lists(
        st.one_of(
            st.text(alphabet="0123456789/.:- T\x00é٣", max_size=24),
            st.datetimes(min_value=datetime(1, 1, 1)).map(lambda d: d.strftime("%d.%m.%Y é")),
            st.datetimes(min_value=datetime(1, 1, 1)).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S")),
            st.datetimes(min_value=datetime(1, 1, 1)).map(lambda d: d.strftime("%y%m%d%H%M%S")),
        ),
        max_size=30,
    ),
    fmt=st.sampled_from(["%d.%m.%Y é", "%Y-%m-%dT%H:%M:%S", "%y%m%d%H%M%S", "%d.%m.%Y"]),
)
def test_fast_date_parsing_agrees_with_pandas_for_any_bytes(cells: list[str], fmt: str) -> None:
    assert_agrees_with_pandas_at_strict_widths(cells, fmt)


@settings(max_examples=200, deadline=None)
@given(cells=st.lists(st.text(max_size=12), max_size=30), fmt=st.sampled_from(["%m/%d/%Y %H:%M", "%Y-%m-%d"]))
def test_foreign_character_screen_agrees_with_its_pattern(cells: list[str], fmt: str) -> None:
    pattern = _foreign_characters(fmt)
    assert _has_foreign_characters(cells, fmt).tolist() == [pattern.search(c) is not None for c in cells]


@settings(max_examples=100, deadline=None)
@given(
    stamps=st.lists(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)), min_size=1),
    prefix=st.text(st.characters(exclude_categories=("Cs",)), max_size=5),
)
def test_iso_dates_with_a_prefix_are_the_prefix_and_the_date(stamps: list[datetime], prefix: str) -> None:
    array = np.array(stamps, dtype="datetime64[us]")
    plain = iso_strings(array, "ms", "T")
    assert iso_strings(array, "ms", "T", prefix=prefix, suffix='"') == [prefix + t + '"' for t in plain]
