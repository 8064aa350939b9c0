"""CWS patient checks per API version: mappings that cannot satisfy CorEMR are refused; rows are held to its rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import MappingError
from pipeline.mapping import MappedRow, Mapping, load_mapping, map_csv
from pipeline.protocol import API_PROFILES

DATE = 'column = "{column}"\ntype = "datetime"\nformats = ["%Y-%m-%d"]'
# A complete mapping's fields for each version, as TOML table bodies.
FIELDS: dict[str, dict[str, str]] = {
    "v1": {
        "external_id": 'column = "ID"',
        "facility": 'value = "MAIN"',
        "fname": 'column = "First"',
        "lname": 'column = "Last"',
        "dob": DATE.format(column="DOB"),
        "sex": 'value = "Unknown"',
        "booking_number": 'column = "Booking"',
        "booking_date": DATE.format(column="Booked"),
    },
    "v2": {
        "external_id": 'column = "ID"',
        "facility": "value = 10000",
        "agency": "value = 2",
        "fname": 'column = "First"',
        "lname": 'column = "Last"',
        "dob": DATE.format(column="DOB"),
        "sex": 'value = "U"',
        "booking_no": 'column = "Booking"',
        "booking_date": DATE.format(column="Booked"),
    },
}
FIELDS["v3"] = FIELDS["v2"]
# What CorEMR's documents (v1: the field table's Add column; v2/v3 dob and sex: a named assumption) require.
REQUIRED = {
    "v1": {"external_id", "facility", "fname", "lname", "dob", "sex", "booking_number", "booking_date"},
    "v2": {"external_id", "facility", "agency", "fname", "lname", "dob", "sex", "booking_no", "booking_date"},
    "v3": {"external_id", "facility", "fname", "lname", "dob", "sex", "booking_no", "booking_date"},
}
HEADER = "ID,First,Last,DOB,Booking,Booked\n"


def mapping_text(api: str | None, fields: dict[str, str], target: str = "") -> str:
    head = "[target]\n" + (f'api = "{api}"\n' if api else "") + target
    return head + "".join(f"[fields.{name}]\n{body}\n" for name, body in fields.items())


def changed(api: str, **tables: str | None) -> dict[str, str]:
    """Version API's complete fields with some tables replaced (None: removed)."""
    fields = {**FIELDS[api], **{k: v for k, v in tables.items() if v is not None}}
    return {k: v for k, v in fields.items() if tables.get(k, "") is not None}


def load(tmp_path: Path, text: str) -> Mapping:
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return load_mapping(path)


def refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(MappingError) as info:
        load(tmp_path, text)
    message = str(info.value)
    assert "\n" not in message
    return message


def rows(tmp_path: Path, mapping: Mapping, lines: str, header: str = HEADER) -> list[MappedRow]:
    csv_path = tmp_path / "in.csv"
    csv_path.write_text(header + lines, encoding="utf-8")
    return [row for chunk in map_csv(csv_path, mapping) for row in chunk]


@pytest.mark.parametrize("api", ["v1", "v2", "v3"])
def test_each_versions_complete_mapping_is_accepted_with_its_routes_and_key(tmp_path: Path, api: str) -> None:
    mapping = load(tmp_path, mapping_text(api, FIELDS[api]))
    assert mapping.api == api
    assert mapping.endpoint == {"v1": "/ws/patients/", "v2": "/ws/patients/", "v3": "/ws/v3/patients/"}[api]
    assert mapping.key_fields == ("external_id", "booking_number" if api == "v1" else "booking_no")


def test_a_mapping_without_api_is_v2(tmp_path: Path) -> None:
    mapping = load(tmp_path, mapping_text(None, FIELDS["v2"]))
    assert (mapping.api, mapping.endpoint) == ("v2", "/ws/patients/")
    assert "fields.agency: missing" in refused(tmp_path, mapping_text(None, changed("v2", agency=None)))


@pytest.mark.parametrize(("api", "name"), [(api, name) for api, names in REQUIRED.items() for name in sorted(names)])
def test_mapping_without_a_required_field_is_refused_naming_it(tmp_path: Path, api: str, name: str) -> None:
    message = refused(tmp_path, mapping_text(api, changed(api, **{name: None})))
    assert f": fields.{name}: missing; CorEMR API {api} requires " in message
    assert f"; missing: {name})" in message and 'profile = "none"' in message
    assert f"({API_PROFILES[api].required_source}; missing" in message  # type: ignore[index]
    if api == "v1":
        assert "(CorEMR v1 docs: the field table's Add column; missing" in message


@pytest.mark.parametrize("api", ["v1", "v2", "v3"])
def test_the_required_fields_are_the_documented_ones(api: str) -> None:
    assert set(API_PROFILES[api].required) == REQUIRED[api]  # type: ignore[index]


def test_fields_a_version_does_not_require_may_be_left_out(tmp_path: Path) -> None:
    v3 = load(tmp_path, mapping_text("v3", changed("v3", agency=None)))
    assert v3.api == "v3" and "agency" not in {f.name for f in v3.fields}
    v1 = load(tmp_path, mapping_text("v1", changed("v1", agency='value = "County"', mname=None)))
    assert v1.api == "v1" and "mname" not in {f.name for f in v1.fields}


def test_another_versions_field_name_is_refused_with_a_hint(tmp_path: Path) -> None:
    v2_name = changed("v1", booking_number=None, booking_no='column = "Booking"')
    message = refused(tmp_path, mapping_text("v1", v2_name))
    assert "fields.booking_number: missing" in message
    assert "[fields.booking_no] is another version's name for it: rename it" in message


def test_profile_none_accepts_a_partial_body(tmp_path: Path) -> None:
    mapping = load(tmp_path, '[target]\nprofile = "none"\nkey = ["id"]\n[fields.id]\ncolumn = "Id"\n')
    assert mapping.profile == "none" and [f.name for f in mapping.fields] == ["id"]


def test_unknown_api_version_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, mapping_text("v4", FIELDS["v2"]))
    assert message.endswith(": target.api: 'v4' is not one of v1, v2, v3 (the CorEMR API version)")


def test_optional_required_field_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, mapping_text("v2", changed("v2", fname='column = "First"\nrequired = false')))
    assert ": fields.fname.required: CorEMR API v2 requires fname in every body" in message


def test_optional_required_field_with_default_is_accepted(tmp_path: Path) -> None:
    text = mapping_text("v2", changed("v2", fname='column = "First"\nrequired = false\ndefault = "UNKNOWN"'))
    fname = next(f for f in load(tmp_path, text).fields if f.name == "fname")
    assert (fname.required, fname.default) == (False, "UNKNOWN")


@pytest.mark.parametrize(
    ("api", "name", "table", "says"),
    [
        ("v2", "facility", 'value = "10000"',
         'expects facility as an integer (CorEMR v2 docs: an integer ID, required): set type = "integer"'),
        ("v1", "facility", "value = 10000", "expects facility as text of at most 32 characters"
         ' (CorEMR v1 docs: String(32), required to add): set type = "string"'),
        ("v3", "agency", 'value = "2"',
         "expects agency as an integer (CorEMR v3 docs: optional, the site's Default Jurisdiction): set type"),
        ("v2", "dob", 'column = "DOB"', 'expects dob as a date: set type = "datetime"'),
        ("v2", "height", 'column = "Height"', "expects height as a number (assumption height-weight-numbers):"
         ' set type = "integer" or type = "number"'),
        ("v1", "height", 'column = "Height"\ntype = "number"',
         'expects height as an integer (CorEMR v1 docs: Integer (inches)): set type = "integer"'),
        ("v1", "agency", "value = 2", "expects agency as text of at most 255 characters (CorEMR v1 docs: String(255))"),
    ],
)  # fmt: skip
def test_a_field_of_the_wrong_type_is_refused(tmp_path: Path, api: str, name: str, table: str, says: str) -> None:
    message = refused(tmp_path, mapping_text(api, changed(api, **{name: table})))
    assert f": fields.{name}.type: CorEMR API {api} {says}" in message


@pytest.mark.parametrize(
    ("api", "table", "key_path", "value"),
    [
        ("v1", 'value = "M"', "fields.sex.value", "'M'"),
        ("v2", 'value = "Male"', "fields.sex.value", "'Male'"),
        ("v2", 'column = "Sex"\nlookup = { MALE = "Male" }', "fields.sex.lookup.MALE", "'Male'"),
        ("v1", 'column = "Sex"\ndefault = "U"', "fields.sex.default", "'U'"),
    ],
)
def test_a_sex_value_the_version_does_not_take_is_refused(
    tmp_path: Path, api: str, table: str, key_path: str, value: str
) -> None:
    message = refused(tmp_path, mapping_text(api, changed(api, sex=table)))
    values = "Male, Female, Unknown" if api == "v1" else "M, F, U"
    assert f": {key_path}: {value} is not a CorEMR API {api} sex value ({values})" in message


@pytest.mark.parametrize(
    ("api", "table", "good", "bad"),
    [
        ("v2", 'column = "Sex"', "F", "Female"),
        ("v1", 'column = "Sex"', "Female", "F"),
        ("v2", 'column = "Sex"\nlookup = { FEMALE = "F" }\nlookup_fallback = "keep"', "FEMALE", "X"),
    ],
)
def test_sex_cells_outside_the_versions_values_are_row_problems(
    tmp_path: Path, api: str, table: str, good: str, bad: str
) -> None:
    mapping = load(tmp_path, mapping_text(api, changed(api, sex=table)))
    lines = f"A1,Ann,Lee,1990-01-02,B1,2025-01-01,{good}\nA2,Bo,Ng,1990-01-02,B2,2025-01-01,{bad}\n"
    found = rows(tmp_path, mapping, lines, header=HEADER.replace("\n", ",Sex\n"))
    assert found[0].valid
    assert [(p.field, p.value) for p in found[1].problems] == [("sex", bad)]
    assert found[1].problems[0].expected.startswith("one of ")


def test_a_datetime_format_the_version_cannot_read_is_refused(tmp_path: Path) -> None:
    fields = FIELDS["v2"]
    message = refused(tmp_path, mapping_text("v2", fields, target='datetime_format = "%m/%d/%Y"\n'))
    says = ": target.datetime_format: '%m/%d/%Y' writes '02/03/2001', but CorEMR API v2 dates must be YYYY-MM-DD"
    assert says in message
    load(tmp_path, mapping_text("v2", fields, target='datetime_format = "%Y-%m-%d %H:%M:%S"\n'))
    load(tmp_path, mapping_text("v2", fields, target='datetime_format = "%m/%d/%Y"\nprofile = "none"\n'))


def test_external_id_longer_than_17_and_future_dob_are_row_problems(tmp_path: Path) -> None:
    mapping = load(tmp_path, mapping_text("v2", FIELDS["v2"]))
    found = rows(tmp_path, mapping, "ABCDEFGHIJKLMNOPQR,Ann,Lee,1990-01-02,B1,2025-01-01\n"
                 "E2,Bo,Ng,2999-01-01,B2,2025-01-01\nE3,Cy,Ox,1990-01-01,B3,2025-01-01\n")  # fmt: skip
    assert [str(p) for p in found[0].problems] == [
        "line 2: external_id (column 'ID'): 'ABCDEFGHIJKLMNOPQR' is not at most 17 characters"
        " (assumption v2-external-id-length; found 18)"
    ]
    assert [p.expected for p in found[1].problems] == ["a past date (not after now)"]  # dob never in the future
    assert found[2].valid


UNSAFE_IDS = [".", "..", "A/B", "A?B", "A#B", "50%", "A B", " A", "A\tB", "A\x01B", "A\x7fB"]


def test_external_ids_unsafe_in_a_url_path_are_row_problems(tmp_path: Path) -> None:
    mapping = load(tmp_path, mapping_text("v2", FIELDS["v2"]))
    ids = [*UNSAFE_IDS, "A.B", "J-1_x", "...", "Ünï"]
    lines = "".join(f'"{i}",Ann,Lee,1990-01-02,B{n},2025-01-01\n' for n, i in enumerate(ids))
    found = rows(tmp_path, mapping, lines)
    assert [r.valid for r in found] == [False] * len(UNSAFE_IDS) + [True] * 4
    for row, external_id in zip(found, UNSAFE_IDS, strict=False):
        assert [(p.field, p.value) for p in row.problems] == [("external_id", external_id)]
        assert row.problems[0].expected.startswith("text safe in a URL path (not '.' or '..', no '/'")


def test_profile_none_leaves_external_ids_unchecked(tmp_path: Path) -> None:
    mapping = load(tmp_path, mapping_text("v2", FIELDS["v2"], target='profile = "none"\n'))
    assert all(r.valid for r in rows(tmp_path, mapping, '"A/B",Ann,Lee,1990-01-02,B1,2025-01-01\n'))


def test_profile_caps_a_looser_max_length(tmp_path: Path) -> None:
    mapping = load(tmp_path, mapping_text("v2", changed("v2", external_id='column = "ID"\nmax_length = 30')))
    spec = next(f for f in mapping.fields if f.name == "external_id")
    assert spec.max_length == 17
