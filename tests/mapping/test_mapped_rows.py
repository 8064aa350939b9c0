"""Applying a mapping: each field option, the order of application, exact body bytes, keys and problems."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from pipeline import SourceError
from pipeline.mapping import MappedRow, Mapping, RowProblem, load_mapping, map_csv


def mapping_of(tmp_path: Path, fields: str, target: str = 'key = ["id"]', source: str = "") -> Mapping:
    path = tmp_path / "site.toml"
    path.write_text(f'[source]\n{source}\n[target]\nprofile = "none"\n{target}\n{fields}', encoding="utf-8")
    return load_mapping(path)


def run(tmp_path: Path, mapping: Mapping, csv_text: str, chunk_rows: int = 50_000) -> list[MappedRow]:
    path = tmp_path / "in.csv"
    path.write_text(csv_text, encoding="utf-8")
    return [row for chunk in map_csv(path, mapping, chunk_rows=chunk_rows) for row in chunk]


ID = '[fields.id]\ncolumn = "ID"\n'


def one_field(tmp_path: Path, spec: str, cells: list[str]) -> list[MappedRow]:
    mapping = mapping_of(tmp_path, ID + f'[fields.v]\ncolumn = "V"\n{spec}\n')
    text = "ID,V\n" + "".join(f'{i},"{c}"\n' for i, c in enumerate(cells, start=1))
    return run(tmp_path, mapping, text)


def values(rows: list[MappedRow]) -> list[object]:
    return [json.loads(r.body).get("v", "<absent>") if r.body is not None else None for r in rows]


def test_body_is_compact_utf8_json_in_mapping_order(tmp_path: Path) -> None:
    mapping = mapping_of(
        tmp_path, '[fields.name]\ncolumn = "Name"\n[fields.id]\ncolumn = "ID"\n[fields.facility]\nvalue = 10000\n'
    )
    (row,) = run(tmp_path, mapping, 'ID,Name\n7,"Peña ""Q"" \\ Zoë"\n')
    assert row.body == '{"name":"Peña \\"Q\\" \\\\ Zoë","id":"7","facility":10000}'.encode()
    assert (row.line, row.key, row.valid, row.problems) == (2, "7", True, ())
    assert row.cells == {"ID": "7", "Name": 'Peña "Q" \\ Zoë'}


@pytest.mark.parametrize(
    ("transform", "cell", "expected"),
    [
        ('["strip"]', "  ann lee  ", "ann lee"),
        ('["upper"]', "Peña", "PEÑA"),
        ('["lower"]', "PEÑA", "peña"),
        ('["title"]', "o'brien mary-ann", "O'Brien Mary-Ann"),
        ('["collapse_spaces"]', "a  \t b", "a b"),
        ('["digits"]', "(555) 12-34", "5551234"),
        ('["strip", "collapse_spaces", "title"]', "  mary   ann ", "Mary Ann"),
    ],
)
def test_transforms_apply_in_order(tmp_path: Path, transform: str, cell: str, expected: str) -> None:
    assert values(one_field(tmp_path, f"transform = {transform}", [cell])) == [expected]


def test_extract_keeps_the_value_group_or_the_whole_match(tmp_path: Path) -> None:
    named = one_field(tmp_path, "extract = '^\\s*(?P<value>[^,]+?)\\s*,'\nrequired = false", ["Lee , Ann", "Madonna"])
    assert values(named) == ["Lee", "<absent>"]  # no match = blank
    whole = one_field(tmp_path, "extract = '[0-9]+'", ["cell 42 b"])
    assert values(whole) == ["42"]


def test_transform_runs_before_extract(tmp_path: Path) -> None:
    rows = one_field(tmp_path, "transform = [\"upper\"]\nextract = '^(?P<value>[A-Z]+)'", ["lee, ann"])
    assert values(rows) == ["LEE"]


def test_blank_uses_default_as_final_value_not_looked_up(tmp_path: Path) -> None:
    spec = 'transform = ["strip", "upper"]\nlookup = { M = "Male", F = "Female" }\ndefault = "U"'
    assert values(one_field(tmp_path, spec, ["m", " ", "f"])) == ["Male", "U", "Female"]


def test_blank_required_field_is_a_problem(tmp_path: Path) -> None:
    (row,) = one_field(tmp_path, "", ["  "])
    assert row.body is None
    assert [str(p) for p in row.problems] == ["line 2: v (column 'V'): blank; expected a value (required)"]


def test_blank_optional_field_is_left_out_of_the_body(tmp_path: Path) -> None:
    (row,) = one_field(tmp_path, "required = false", [""])
    assert row.body == b'{"id":"1"}'


def test_lookup_fallbacks(tmp_path: Path) -> None:
    table = 'lookup = { MAIN = "10000" }'
    error = one_field(tmp_path, table, ["MAIN", "ANNEX"])
    assert values(error) == ["10000", None]
    assert error[1].problems[0].expected == "one of MAIN"
    assert error[1].problems[0].value == "ANNEX"
    assert values(one_field(tmp_path, table + '\nlookup_fallback = "keep"', ["MAIN", "ANNEX"])) == ["10000", "ANNEX"]
    fallback = table + '\nlookup_fallback = "default"\ndefault = "0"'
    assert values(one_field(tmp_path, fallback, ["MAIN", "ANNEX"])) == ["10000", "0"]


def test_lookup_result_is_converted_to_the_type(tmp_path: Path) -> None:
    rows = one_field(
        tmp_path,
        'type = "integer"\ntransform = ["upper"]\nlookup = { MAIN = 10000, ANNEX = "10001" }',
        ["main", "Annex"],
    )
    assert values(rows) == [10000, 10001]


def test_integer_and_number_types(tmp_path: Path) -> None:
    ints = one_field(tmp_path, 'type = "integer"', ["42", " -7 ", "007", "4.5", "x"])
    assert values(ints) == [42, -7, 7, None, None]
    assert ints[3].problems[0].expected == "a whole number"
    numbers = one_field(tmp_path, 'type = "number"', ["1.5", "2", "1e3", "nan", "x"])
    assert values(numbers) == [1.5, 2.0, 1000.0, None, None]


def test_datetime_formats_are_tried_in_order_and_written_in_the_target_format(tmp_path: Path) -> None:
    spec = 'type = "datetime"\nformats = ["%m/%d/%Y", "%Y-%m-%d", "%d-%b-%Y %H:%M"]'
    rows = one_field(tmp_path, spec, ["04/12/2000", "2000-04-12", "4/2/2000", "12-Apr-2000 10:05", "13/45/1990"])
    assert values(rows) == [
        "2000-04-12 00:00:00.000",
        "2000-04-12 00:00:00.000",
        "2000-04-02 00:00:00.000",
        "2000-04-12 10:05:00.000",
        None,
    ]
    assert str(rows[4].problems[0]) == (
        "line 6: v (column 'V'): '13/45/1990' is not a date in %m/%d/%Y or %Y-%m-%d or %d-%b-%Y %H:%M"
    )


def test_datetime_format_of_the_target_is_used(tmp_path: Path) -> None:
    mapping = mapping_of(
        tmp_path,
        ID + '[fields.v]\ncolumn = "V"\ntype = "datetime"\nformats = ["%m/%d/%Y %H:%M:%S.%f"]\n',
        target='key = ["id"]\ndatetime_format = "%d.%m.%Y %H:%M:%S.%f"',
    )
    (row,) = run(tmp_path, mapping, "ID,V\n1,04/12/2000 10:00:01.250000\n")
    assert json.loads(row.body or b"")["v"] == "12.04.2000 10:00:01.250"


def test_impossible_dates_are_refused(tmp_path: Path) -> None:
    rows = one_field(tmp_path, 'type = "datetime"\nformats = ["%m/%d/%Y"]', ["02/29/2024", "02/29/2023", "02/30/2024"])
    assert values(rows) == ["2024-02-29 00:00:00.000", None, None]


def test_two_digit_year_past_never_lands_in_the_future(tmp_path: Path) -> None:
    next_year = (datetime.now().year + 1) % 100
    cells = ["01/02/50", f"01/01/{next_year:02d}", "06/30/05"]
    past = values(one_field(tmp_path, 'type = "datetime"\nformats = ["%m/%d/%y"]\ntwo_digit_year = "past"', cells))
    assert past == [
        "1950-01-02 00:00:00.000",
        f"{datetime.now().year + 1 - 100}-01-01 00:00:00.000",
        "2005-06-30 00:00:00.000",
    ]
    strptime = values(
        one_field(tmp_path, 'type = "datetime"\nformats = ["%m/%d/%y"]\ntwo_digit_year = "strptime"', cells)
    )
    assert strptime[0] == "2050-01-02 00:00:00.000"


def test_not_future(tmp_path: Path) -> None:
    rows = one_field(
        tmp_path, 'type = "datetime"\nformats = ["%Y-%m-%d"]\nnot_future = true', ["2999-01-01", "2000-01-01"]
    )
    assert values(rows) == [None, "2000-01-01 00:00:00.000"]
    assert str(rows[0].problems[0]) == "line 2: v (column 'V'): '2999-01-01' is not a past date (not after now)"


def test_max_length(tmp_path: Path) -> None:
    rows = one_field(tmp_path, "max_length = 3", ["abc", "abcd"])
    assert values(rows) == ["abc", None]
    assert rows[1].problems[0].expected == "at most 3 characters (found 4)"


def test_identifying_values_are_withheld_from_problems(tmp_path: Path) -> None:
    mapping = mapping_of(tmp_path, ID + '[fields.dob]\ncolumn = "DOB"\ntype = "datetime"\nformats = ["%Y-%m-%d"]\n'
                                       '[fields.lname]\ncolumn = "Last"\nmax_length = 2\n')  # fmt: skip
    (row,) = run(tmp_path, mapping, "ID,DOB,Last\n1,13/45/1990,Garcia\n")
    assert [p.value for p in row.problems] == [None, None]
    text = "; ".join(str(p) for p in row.problems)
    assert "13/45/1990" not in text and "Garcia" not in text
    assert "value withheld (identifying field)" in text
    assert row.cells["DOB"] == "13/45/1990"  # the original cells stay available for the rejects file


def test_sensitive_option_withholds_any_field(tmp_path: Path) -> None:
    (row,) = one_field(tmp_path, 'sensitive = true\ntype = "integer"', ["secret"])
    assert row.problems[0].value is None


def test_every_problem_of_a_row_is_reported(tmp_path: Path) -> None:
    mapping = mapping_of(tmp_path, ID + '[fields.a]\ncolumn = "A"\ntype = "integer"\n[fields.b]\ncolumn = "B"\n')
    (row,) = run(tmp_path, mapping, "ID,A,B\n1,x,\n")
    assert [(p.field, p.column, p.value) for p in row.problems] == [("a", "A", "x"), ("b", "B", "")]


def test_a_key_reused_with_another_body_names_both_lines_even_across_chunks(tmp_path: Path) -> None:
    mapping = mapping_of(
        tmp_path, ID + '[fields.b]\ncolumn = "B"\n[fields.w]\ncolumn = "W"\n', target='key = ["id", "b"]'
    )
    text = "ID,B,W\n1,x,150\n2,x,90\n1,y,150\n1,x,151\n3,z,80\n2,x,91\n"
    rows = run(tmp_path, mapping, text, chunk_rows=2)
    assert [r.valid for r in rows] == [True, True, True, False, True, False]
    assert str(rows[3].problems[0]) == (
        "line 5: key '1/x' (id/b) was already used on line 2, with a different body: a key names one booking;"
        " correct line 2 or line 5"
    )
    assert "already used on line 3, with a different body" in rows[5].problems[0].expected
    assert rows[3].key == "1/x" and rows[3].duplicate_of is None


def test_per_charge_lines_with_the_same_key_and_body_are_one_booking(tmp_path: Path) -> None:
    mapping = mapping_of(tmp_path, ID + '[fields.b]\ncolumn = "B"\n', target='key = ["id", "b"]')
    text = "ID,B,Charge\n1,x,theft\n2,x,dui\n1,x,assault\n1,x,fraud\n2,x,speeding\n3,z,theft\n"
    rows = run(tmp_path, mapping, text, chunk_rows=2)  # the repeats fall in later chunks too
    assert [r.duplicate_of for r in rows] == [None, None, 2, 2, 3, None]
    assert all(r.valid for r in rows)  # a repeated booking is not a problem...
    assert rows[2].body == rows[0].body and rows[2].row[2] == "assault"  # ...and keeps its own cells


def test_an_invalid_first_line_makes_a_later_line_with_its_key_invalid_not_a_duplicate(tmp_path: Path) -> None:
    mapping = mapping_of(tmp_path, ID + '[fields.n]\ncolumn = "N"\ntype = "integer"\n', target='key = ["id"]')
    rows = run(tmp_path, mapping, "ID,N\n1,x\n1,x\n1,5\n")
    assert [r.valid for r in rows] == [False, False, False]
    assert [r.duplicate_of for r in rows] == [None, None, None]
    assert "was already used on line 2" in rows[2].problems[-1].expected


def test_key_parts_escape_slash_and_backslash(tmp_path: Path) -> None:
    mapping = mapping_of(tmp_path, ID + '[fields.b]\ncolumn = "B"\n', target='key = ["id", "b"]')
    rows = run(tmp_path, mapping, "ID,B\na/b,c\\d\na,b/c\\d\n")
    assert [r.key for r in rows] == ["a\\/b/c\\\\d", "a/b\\/c\\\\d"]
    assert all(r.valid for r in rows)  # different keys once escaped


def test_invalid_row_key_holds_what_could_be_computed(tmp_path: Path) -> None:
    mapping = mapping_of(tmp_path, ID + '[fields.b]\ncolumn = "B"\ntype = "integer"\n', target='key = ["id", "b"]')
    rows = run(tmp_path, mapping, "ID,B\n7,x\n,y\n")
    assert [r.key for r in rows] == ["7/", ""]


def test_external_id_is_exposed(tmp_path: Path) -> None:
    mapping = mapping_of(
        tmp_path, '[fields.external_id]\ncolumn = "ID"\ntransform = ["upper"]\n', target='key = ["external_id"]'
    )
    assert [r.external_id for r in run(tmp_path, mapping, "ID\nj1\n")] == ["J1"]


def test_ragged_row_is_a_row_problem_with_its_cells(tmp_path: Path) -> None:
    mapping = mapping_of(tmp_path, ID + '[fields.b]\ncolumn = "B"\n')
    rows = run(tmp_path, mapping, "ID,B\n1,a\n2,b,c\n3\n4,d\n")
    assert [r.line for r in rows] == [2, 3, 4, 5]
    assert [str(p) for p in rows[1].problems] == ["line 3: expected 2 cells as in the header, found 3"]
    assert rows[1].cells == {"ID": "2", "B": "b", "#3": "c"}
    assert str(rows[2].problems[0]) == "line 4: expected 2 cells as in the header, found 1"
    assert rows[3].valid


def test_missing_columns_are_named_with_the_header_line_and_its_width(tmp_path: Path) -> None:
    mapping = mapping_of(tmp_path, ID + '[fields.b]\ncolumn = "Surname"\n[fields.c]\ncolumn = "DOB"\n')
    path = tmp_path / "in.csv"
    path.write_text("ID,Last Name,Birth\n1,a,b\n", encoding="utf-8")
    with pytest.raises(SourceError) as info:
        map_csv(path, mapping)
    message = str(info.value)
    assert message.startswith(f"{path}, line 1: the header there (3 cells) lacks 2 of the 3 columns")
    assert "('Surname', 'DOB')" in message and "[source] header_line" in message
    assert "Last Name" not in message and "Birth" not in message  # the cells found are never listed
    assert "\n" not in message


def test_header_only_file_maps_to_no_rows(tmp_path: Path) -> None:
    assert run(tmp_path, mapping_of(tmp_path, ID), "ID\n") == []


def test_source_options_reach_the_reader(tmp_path: Path) -> None:
    mapping = mapping_of(
        tmp_path, ID + '[fields.n]\ncolumn = "Name"\n', source='encoding = "cp1252"\ndelimiter = ";"\nheader_line = 2'
    )
    path = tmp_path / "in.csv"
    path.write_bytes("JMS export\nID;Name\n1;Peña\n".encode("cp1252"))
    (row,) = [r for c in map_csv(path, mapping) for r in c]
    assert (row.line, row.body) == (3, '{"id":"1","n":"Peña"}'.encode())


def test_row_problem_str_for_a_plain_value() -> None:
    problem = RowProblem(14, "dob", "DOB", "13/45/1990", "a date in %m/%d/%Y or %Y-%m-%d")
    assert str(problem) == "line 14: dob (column 'DOB'): '13/45/1990' is not a date in %m/%d/%Y or %Y-%m-%d"


def test_first_field_left_out_still_gives_a_well_formed_body(tmp_path: Path) -> None:
    mapping = mapping_of(tmp_path, '[fields.m]\ncolumn = "M"\nrequired = false\n' + ID)
    rows = run(tmp_path, mapping, "ID,M\n1,x\n2,\n")
    assert [r.body for r in rows] == [b'{"m":"x","id":"1"}', b'{"id":"2"}']


@pytest.mark.parametrize("cell", ["Sm\x00ith", "Sm\rith", "Smith\n", "Sm\x1bith", "Sm\x85ith", "Sm\tith"])
def test_control_characters_in_names_are_a_problem_naming_the_field_value_withheld(tmp_path: Path, cell: str) -> None:
    mapping = mapping_of(tmp_path, ID + '[fields.lname]\ncolumn = "Last"\n')
    path = tmp_path / "in.csv"
    path.write_bytes(b'ID,Last\n1,"' + cell.encode() + b'"\n2,Smith\n')
    rows = [r for chunk in map_csv(path, mapping) for r in chunk]
    assert rows[0].body is None and rows[1].valid
    (problem,) = rows[0].problems
    assert (problem.field, problem.column, problem.value) == ("lname", "Last", None)
    assert problem.expected.startswith(f"text without control characters (found U+{ord(cell.strip('Smith')):04X})")
    assert "Sm" not in str(problem)


def test_control_characters_in_other_fields_are_shown_escaped(tmp_path: Path) -> None:
    (row,) = one_field(tmp_path, "", ["a\x00b"])
    assert str(row.problems[0]) == (
        "line 2: v (column 'V'): 'a\\x00b' is not text without control characters (found U+0000);"
        ' fix the export, or add transform "remove_controls"'
    )


def test_a_transform_that_removes_control_characters_makes_the_value_good(tmp_path: Path) -> None:
    assert values(one_field(tmp_path, 'transform = ["remove_controls"]', ["Sm\x00ith\r"])) == ["Smith"]
    assert values(one_field(tmp_path, 'transform = ["collapse_spaces", "strip"]', ["Ann\r\nLee\t"])) == ["Ann Lee"]


def test_a_50_mb_surname_is_not_delivered_and_not_printed(tmp_path: Path) -> None:
    mapping = mapping_of(tmp_path, ID + '[fields.lname]\ncolumn = "Last"\n[fields.note]\ncolumn = "Note"\n')
    path = tmp_path / "in.csv"
    huge = "S" * (50 * 1024 * 1024)
    path.write_text(f"ID,Last,Note\n1,{huge},{huge}\n2,Smith,ok\n", encoding="utf-8")
    rows = [r for chunk in map_csv(path, mapping) for r in chunk]
    assert rows[0].body is None and rows[1].valid
    lname, note = rows[0].problems
    assert (lname.value, lname.expected) == (None, "at most 1000 characters (found 52428800)")
    assert note.value == "S" * 60 + "... (52428800 characters)"  # a non-identifying value, shown cut short
    assert len(str(note)) < 200


def test_max_length_raises_the_default_limit(tmp_path: Path) -> None:
    assert values(one_field(tmp_path, "max_length = 2000", ["x" * 1500])) == ["x" * 1500]
    assert one_field(tmp_path, "", ["x" * 1001])[0].problems[0].expected == "at most 1000 characters (found 1001)"


def test_blank_values_mean_blank_before_the_blank_rule(tmp_path: Path) -> None:
    spec = 'transform = ["title"]\nblank_values = ["NMN", "Unknown"]\nrequired = false'
    assert values(one_field(tmp_path, spec, ["NMN", " nmn ", "UNKNOWN", "Nmnx", "ann"])) == [
        "<absent>", "<absent>", "<absent>", "Nmnx", "Ann",
    ]  # fmt: skip
    assert values(one_field(tmp_path, 'blank_values = ["NMN"]\ndefault = "-"', ["NMN", "Lee"])) == ["-", "Lee"]
    (required,) = one_field(tmp_path, 'blank_values = ["NMN"]', ["NMN"])
    assert required.problems[0].expected == "a value (required): none left after transform/extract/blank_values"


def test_a_template_builds_one_field_from_several_columns(tmp_path: Path) -> None:
    fields = ID + (
        '[fields.booked]\ntemplate = "{Booking Date} {Booking Time}"\ntype = "datetime"\n'
        'formats = ["%Y%m%d %H%M"]\nrequired = false\n'
        '[fields.label]\ntemplate = "{{{ID}}}-{Booking Time}"\n'
    )
    mapping = mapping_of(tmp_path, fields)
    rows = run(tmp_path, mapping, "ID,Booking Date,Booking Time\n1,20251203,0745\n2,,\n3,20251203,745\n")
    assert [json.loads(r.body) if r.body else None for r in rows] == [
        {"id": "1", "booked": "2025-12-03 07:45:00.000", "label": "{1}-0745"},
        {"id": "2", "label": "{2}-"},
        None,
    ]
    assert str(rows[2].problems[0]) == (
        "line 4: booked (column '{Booking Date} {Booking Time}'): '20251203 745' is not a date in %Y%m%d %H%M"
    )


def test_lookup_from_a_shared_table_file(tmp_path: Path) -> None:
    (tmp_path / "facilities.csv").write_text("Code,CorEMR ID\nMAIN,10000\nANNEX,10001\n", encoding="utf-8")
    spec = 'type = "integer"\nlookup_file = { path = "facilities.csv", key = "Code", value = "CorEMR ID" }'
    rows = one_field(tmp_path, spec, ["MAIN", "ANNEX", "JAIL2"])
    assert values(rows) == [10000, 10001, None]
    assert rows[2].problems[0].expected == "one of MAIN, ANNEX"


def test_a_problem_names_a_large_lookup_table_instead_of_listing_it(tmp_path: Path) -> None:
    (tmp_path / "codes.toml").write_text("".join(f'C{i} = "{i}"\n' for i in range(40)), encoding="utf-8")
    (row,) = one_field(tmp_path, 'lookup_file = { path = "codes.toml" }', ["C99"])
    assert row.problems[0].expected == "one of the 40 values in codes.toml"


def test_excluded_rows_are_never_bodies_nor_problems_nor_duplicate_keys(tmp_path: Path) -> None:
    fields = ID + '[fields.n]\ncolumn = "N"\ntype = "integer"\n'
    rules = (
        '[[exclude]]\ncolumn = "Type"\nmatch = \'(?i)^training$\'\nreason = "training record"\n'
        "[[exclude]]\ncolumn = \"Status\"\nmatch = '^VOID'\n"
    )
    mapping = mapping_of(tmp_path, fields + rules)
    text = "ID,N,Type,Status\n1,10,,OK\n2,bad,Training,OK\n1,11,TRAINING,VOID\n3,12,,VOIDED\n4,x,,\n"
    rows = run(tmp_path, mapping, text)
    assert [(r.line, r.key, r.excluded, r.valid) for r in rows] == [
        (2, "1", None, True),
        (3, "2", "training record", False),  # its bad N is no problem: it is never sent
        (4, "1", "training record", False),  # its key repeats line 2's, and no duplicate is reported
        (5, "3", "column 'Status' matches '^VOID'", False),
        (6, "4", None, False),
    ]
    assert [r.body is None and r.problems == () for r in rows[1:4]] == [True, True, True]
    assert rows[4].problems[0].expected == "a whole number"


@pytest.mark.parametrize(
    ("fmt", "cells", "expected"),
    [
        ("%Y%m%d", ["1985123", "19851203", "198512031"], [None, "1985-12-03 00:00:00.000", None]),
        ("%m/%d/%Y", ["12/3/1985", "12/03/85", "12/03/01985"], ["1985-12-03 00:00:00.000", None, None]),
        ("%d%m%y", ["31128", "311285"], [None, "1985-12-31 00:00:00.000"]),
        ("%Y-%m-%d %H%M", ["1985-12-03 745", "1985-12-03 0745"], [None, "1985-12-03 07:45:00.000"]),
    ],
)
def test_numeric_date_parts_need_their_full_width_in_every_parsing_path(
    tmp_path: Path, fmt: str, cells: list[str], expected: list[str | None]
) -> None:
    rows = one_field(tmp_path, f'type = "datetime"\nformats = ["{fmt}"]', cells)
    assert values(rows) == expected
