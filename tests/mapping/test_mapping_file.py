"""The mapping file: every option is read, and every mistake is refused naming file, key path and problem."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pipeline._errors import MappingError
from pipeline.mapping._mapping_file import load_mapping

MINIMAL = """
[target]
profile = "none"
key = ["id"]

[fields.id]
column = "ID"
"""


def write_mapping(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return path


def refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(MappingError) as info:
        load_mapping(write_mapping(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(tmp_path / "site.toml") + ": ")
    return message


def test_sample_mapping_loads_with_every_section(tmp_path: Path) -> None:
    mapping = load_mapping(Path(__file__).parents[2] / "mappings" / "sample-jms.toml")
    assert mapping.endpoint == "/ws/patients/"
    assert mapping.key_fields == ("external_id", "booking_no")
    assert [f.name for f in mapping.fields][:4] == ["external_id", "facility", "agency", "billing_agency"]
    assert mapping.profile == "cws-patient"


def test_defaults_when_options_are_left_out(tmp_path: Path) -> None:
    mapping = load_mapping(write_mapping(tmp_path, '[target]\nprofile = "none"\n[fields.external_id]\ncolumn = "ID"\n'
                                                   '[fields.booking_no]\nvalue = "B1"\n'))  # fmt: skip
    assert mapping.endpoint == "/ws/patients/"
    assert mapping.key_fields == ("external_id", "booking_no")
    assert mapping.datetime_format == "%Y-%m-%d %H:%M:%S.%f"
    assert (mapping.source.encoding, mapping.source.delimiter, mapping.source.header_line) == ("utf-8", ",", 1)
    spec = mapping.fields[0]
    assert (spec.type, spec.required, spec.transform, spec.lookup_fallback) == ("string", True, (), "error")


def test_sha256_is_of_the_file_bytes(tmp_path: Path) -> None:
    path = write_mapping(tmp_path, MINIMAL)
    assert load_mapping(path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_source_options_are_read(tmp_path: Path) -> None:
    text = '[source]\nencoding = "cp1252"\ndelimiter = "\\t"\nheader_line = 3\n' + MINIMAL
    source = load_mapping(write_mapping(tmp_path, text)).source
    assert (source.encoding, source.delimiter, source.header_line) == ("cp1252", "\t", 3)


def test_constant_type_follows_the_toml_value(tmp_path: Path) -> None:
    mapping = load_mapping(
        write_mapping(tmp_path, MINIMAL + "[fields.facility]\nvalue = 10000\n[fields.w]\nvalue = 1.5\n")
    )
    assert [(f.type, f.value) for f in mapping.fields[1:]] == [("integer", 10000), ("number", 1.5)]


@pytest.mark.parametrize(
    ("extra", "key_path", "problem"),
    [
        ("[sourse]\n", "sourse", "unknown key"),
        ('[source]\nencodng = "utf-8"\n', "source.encodng", "unknown key"),
        ('[source]\nencoding = "utf-99"\n', "source.encoding", "not a known encoding"),
        ('[source]\ndelimiter = ",;"\n', "source.delimiter", "must be one character"),
        ("[source]\nheader_line = 0\n", "source.header_line", "line number, 1 or more"),
        ('[source]\nheader_line = "2"\n', "source.header_line", "line number"),
    ],
)
def test_bad_source_options_are_refused(tmp_path: Path, extra: str, key_path: str, problem: str) -> None:
    message = refused(tmp_path, extra + MINIMAL)
    assert f": {key_path}: " in message and problem in message


@pytest.mark.parametrize(
    ("field", "key_path", "problem"),
    [
        ('column = "A"\nvalue = 1', "fields.x", "exactly one of column"),
        ("required = false", "fields.x", "exactly one of column"),
        ('column = "A"\ncolumns = "B"', "fields.x.columns", "unknown key"),
        ('column = "A"\ntype = "date"', "fields.x.type", "'date' is not one of string, integer, number, datetime"),
        ('column = "A"\ntype = "datetime"', "fields.x.formats", "needs a list of formats"),
        ('column = "A"\ntype = "datetime"\nformats = ["%m/%Q/%Y"]', "fields.x.formats[0]", "'%Q' is not a date"),
        ('column = "A"\ntype = "datetime"\nformats = ["monday"]', "fields.x.formats[0]", "no %-directives"),
        ('column = "A"\nformats = ["%Y"]', "fields.x.formats", 'type = "datetime" only'),
        (
            'column = "A"\ntype = "datetime"\nformats = ["%Y"]\ntwo_digit_year = "future"',
            "fields.x.two_digit_year",
            "not one of",
        ),
        (
            'column = "A"\ntype = "datetime"\nformats = ["%Y"]\nnot_future = "yes"',
            "fields.x.not_future",
            "true or false",
        ),
        ('column = "A"\ntransform = ["strip", "capitalize"]', "fields.x.transform[1]", "'capitalize' is not one of"),
        ('column = "A"\ntransform = "strip"', "fields.x.transform", "expected a list"),
        ('column = "A"\nextract = "(?P<value>[a-z"', "fields.x.extract", "bad regular expression"),
        ('column = "A"\nlookup = { M = [1] }', "fields.x.lookup.M", "expected a string, number or boolean"),
        ('column = "A"\ntype = "integer"\nlookup = { M = 1.5 }', "fields.x.lookup.M", 'does not fit type = "integer"'),
        ('column = "A"\nlookup = { M = "M" }\nlookup_fallback = "default"', "fields.x.lookup_fallback", "no default"),
        ('column = "A"\nlookup_fallback = "keep"', "fields.x.lookup_fallback", "only with a lookup"),
        ('column = "A"\nlookup = { M = "M" }\nlookup_fallback = "guess"', "fields.x.lookup_fallback", "not one of"),
        ('column = "A"\nrequired = "no"', "fields.x.required", "true or false"),
        ('column = "A"\nmax_length = 0', "fields.x.max_length", "positive integer"),
        ('column = "A"\ntype = "integer"\nmax_length = 3', "fields.x.max_length", "string fields only"),
        ('column = "A"\ndefault = [1]', "fields.x.default", "expected a string, number or boolean"),
        ('value = "x"\ntransform = ["strip"]', "fields.x.transform", "column fields only"),
        ('value = "abc"\nmax_length = 2', "fields.x.value", "longer than max_length"),
        ('value = "abc"\ntype = "integer"', "fields.x.value", 'does not fit type = "integer"'),
        ('column = "  "', "fields.x.column", "expected a column name"),
    ],
)
def test_bad_field_options_are_refused(tmp_path: Path, field: str, key_path: str, problem: str) -> None:
    message = refused(tmp_path, MINIMAL + f"[fields.x]\n{field}\n")
    assert f": {key_path}: " in message, message
    assert problem in message, message


@pytest.mark.parametrize(
    ("target", "key_path", "problem"),
    [
        ('key = ["nope"]', "target.key[0]", "'nope' is not one of the fields"),
        ("key = []", "target.key", "non-empty list"),
        ('endpoint = "ws/patients"', "target.endpoint", "starting with '/'"),
        ('datetime_format = "%Y-%m-%d %H:%M:%S.%q"', "target.datetime_format", "'%q' is not a date"),
        ('profile = "cws-doctor"', "target.profile", "not one of cws-patient, none"),
        ('endpont = "/x"', "target.endpont", "unknown key"),
    ],
)
def test_bad_target_options_are_refused(tmp_path: Path, target: str, key_path: str, problem: str) -> None:
    lines = ["[target]", target]
    lines += [] if target.startswith("profile") else ['profile = "none"']
    lines += [] if target.startswith("key") else ['key = ["id"]']
    message = refused(tmp_path, "\n".join(lines) + '\n[fields.id]\ncolumn = "ID"\n')
    assert f": {key_path}: " in message and problem in message, message


def test_no_fields_is_refused(tmp_path: Path) -> None:
    assert "no output fields" in refused(tmp_path, '[target]\nprofile = "none"\n[fields]\n')


def test_invalid_toml_is_refused_with_its_position(tmp_path: Path) -> None:
    assert "not valid TOML" in refused(tmp_path, "[fields.x\ncolumn = 1\n")


def test_non_utf8_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_bytes('[fields.x]\ncolumn = "Peña"\n'.encode("cp1252"))
    with pytest.raises(MappingError, match="must be UTF-8"):
        load_mapping(path)


def test_missing_mapping_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="cannot read the mapping file"):
        load_mapping(tmp_path / "missing.toml")
