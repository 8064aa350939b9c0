"""The mapping file: every option is read, and every mistake is refused naming file, key path and problem."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pipeline import MappingError
from pipeline.mapping import load_mapping

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
            'column = "A"\ntype = "datetime"\nformats = ["%Y-%m-%d"]\ntwo_digit_year = "future"',
            "fields.x.two_digit_year",
            "not one of",
        ),
        (
            'column = "A"\ntype = "datetime"\nformats = ["%Y-%m-%d"]\nnot_future = "yes"',
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
        ('value = "x"\ntransform = ["strip"]', "fields.x.transform", "column or template fields only"),
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


@pytest.mark.parametrize("encoding", ["rot13", "hex", "base64", "zlib", "bz2", "uu", "quopri", "idna", "punycode",
                                      "unicode_escape", "raw_unicode_escape", "undefined"])  # fmt: skip
def test_codecs_that_are_not_character_sets_are_refused_at_load(tmp_path: Path, encoding: str) -> None:
    message = refused(tmp_path, f'[source]\nencoding = "{encoding}"\n' + MINIMAL)
    assert f": source.encoding: {encoding!r} is not a character set a CSV can be written in" in message


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ('datetime_format = "%A %B %p"', "cannot hold a whole date: it needs the year, month and day"),
        ('datetime_format = "%Y-%m-%d %I:%M"', "gives no way to tell morning from afternoon"),
        ('datetime_format = "%m/%d/%y"', "writes a two-digit year"),
        ('datetime_format = "%x"', "writes what the machine's locale says"),
        ('datetime_format = "%Y%Y-%m-%d"', "uses %Y more than once"),
    ],
)
def test_a_target_format_that_cannot_write_a_whole_date_is_refused(tmp_path: Path, target: str, problem: str) -> None:
    message = refused(tmp_path, MINIMAL.replace("[target]\n", f"[target]\n{target}\n"))
    assert ": target.datetime_format: " in message and problem in message, message


@pytest.mark.parametrize(
    ("fmt", "problem"),
    [
        ("%Y%Y-%m-%d", "uses %Y more than once"),  # was a traceback (re.error: redefinition of group name)
        ("%m/%d", "cannot hold a whole date"),
        ("%H:%M", "cannot hold a whole date"),
        ("%m/%d/%Y %I:%M", "gives no way to tell morning from afternoon"),
        ("%Y-%m-%d %", "'%' is not a date directive"),
    ],
)
def test_a_parse_format_that_cannot_read_a_whole_date_is_refused(tmp_path: Path, fmt: str, problem: str) -> None:
    message = refused(tmp_path, MINIMAL + f'[fields.x]\ncolumn = "A"\ntype = "datetime"\nformats = ["{fmt}"]\n')
    assert ": fields.x.formats[0]: " in message and problem in message, message


@pytest.mark.parametrize("key", ['["lname"]', '["external_id", "dob"]', '["ssn"]', '["id", "secret"]'])
def test_a_key_made_of_identifying_fields_is_refused(tmp_path: Path, key: str) -> None:
    fields = "".join(f'[fields.{n}]\ncolumn = "{n}"\n' for n in ("id", "external_id", "lname", "dob", "ssn"))
    text = f'[target]\nprofile = "none"\nkey = {key}\n{fields}[fields.secret]\ncolumn = "S"\nsensitive = true\n'
    message = refused(tmp_path, text)
    assert ": target.key[" in message and "identifies a person" in message, message


@pytest.mark.parametrize(
    ("source", "key_path", "problem"),
    [
        ("footer_lines = -1", "source.footer_lines", "must be at least 0"),
        ('footer_lines = "1"', "source.footer_lines", "expected an integer"),
        ("footer_match = '^TRAILER(?=;)'", "source.footer_match", "lookahead and lookbehind are not supported"),
        ("footer_match = 1", "source.footer_match", "expected a string"),
    ],
)
def test_bad_footer_options_are_refused(tmp_path: Path, source: str, key_path: str, problem: str) -> None:
    message = refused(tmp_path, f"[source]\n{source}\n" + MINIMAL)
    assert f": {key_path}: " in message and problem in message, message


def test_footer_options_are_read(tmp_path: Path) -> None:
    source = load_mapping(write_mapping(tmp_path, "[source]\nfooter_lines = 1\nfooter_match = '^TRAILER'\n" + MINIMAL))
    assert source.source.footer_lines == 1
    assert source.source.footer_match is not None and source.source.footer_match("TRAILER;3")
    assert not source.source.footer_match("1;Smith")


@pytest.mark.parametrize(
    ("field", "key_path", "problem"),
    [
        ('template = "{A} {B}"\ncolumn = "A"', "fields.x", "exactly one of column (a CSV column), template"),
        ('template = "no columns"', "fields.x.template", "names no column"),
        ('template = "{A} {"', "fields.x.template", "unmatched '{'"),
        ('template = "{ } x"', "fields.x.template", "{} names no column"),
        ('column = "A"\nblank_values = "NMN"', "fields.x.blank_values", "non-empty list of strings"),
        ('value = "x"\nblank_values = ["NMN"]', "fields.x.blank_values", "column or template fields only"),
        ('column = "A"\nlookup = { M = 1 }\nlookup_file = { path = "t.csv" }', "fields.x.lookup_file", "not both"),
        ('column = "A"\nlookup_file = { path = "t.txt" }', "fields.x.lookup_file.path", "a .csv or .toml file"),
        ('column = "A"\nlookup_file = { path = "missing.csv", key = "a", value = "b" }',
         "fields.x.lookup_file.path", "cannot read"),
        ('column = "A"\nlookup_file = { path = "t.csv", key = "Code" }', "fields.x.lookup_file.value",
         "expected a string"),
        ('column = "A"\nlookup_file = { path = "t.csv", key = "Code", value = "Nope" }',
         "fields.x.lookup_file.value", "t.csv has no column 'Nope' on its first line"),
        ('column = "A"\nlookup_file = { path = "t.csv", key = "Code", value = "ID", table = "x" }',
         "fields.x.lookup_file.table", "unknown key"),
        ('column = "A"\ntype = "integer"\nlookup_file = { path = "t.csv", key = "Code", value = "Name" }',
         "fields.x.lookup_file", "t.csv: MAIN: 'Main jail' does not fit type = \"integer\""),
        ('column = "A"\nlookup_file = { path = "t.toml", table = "nope" }', "fields.x.lookup_file.table",
         "t.toml has no table [nope]"),
        ('column = "A"\nlookup_file = { path = "dup.csv", key = "Code", value = "ID" }', "fields.x.lookup_file",
         "dup.csv, line 3: 'MAIN' is in the table twice"),
        ('value = "a\\u0000b"', "fields.x.value", "holds the control character U+0000"),
    ],
)  # fmt: skip
def test_bad_new_field_options_are_refused(tmp_path: Path, field: str, key_path: str, problem: str) -> None:
    (tmp_path / "t.csv").write_text("Code,ID,Name\nMAIN,10000,Main jail\n", encoding="utf-8")
    (tmp_path / "dup.csv").write_text("Code,ID\nMAIN,1\nMAIN,2\n", encoding="utf-8")
    (tmp_path / "t.toml").write_text("[facility]\nMAIN = 10000\n", encoding="utf-8")
    message = refused(tmp_path, MINIMAL + f"[fields.x]\n{field}\n")
    assert f": {key_path}: " in message, message
    assert problem in message, message


@pytest.mark.parametrize(
    ("rule", "key_path", "problem"),
    [
        ("exclude = 1\n", "exclude", "expected one or more [[exclude]] tables"),
        ('[[exclude]]\ncolumn = "Status"\n', "exclude[0].match", "required key is missing"),
        ("[[exclude]]\nmatch = 'VOID'\n", "exclude[0].column", "required key is missing"),
        ("[[exclude]]\ncolumn = \"Status\"\nmatch = '(VOID'\n", "exclude[0].match", "bad regular expression"),
        ("[[exclude]]\ncolumn = \"Status\"\nmatch = 'V'\nwhy = 'x'\n", "exclude[0].why", "unknown key"),
        ("[[exclude]]\ncolumn = \"Status\"\nmatch = 'V'\nreason = ''\n", "exclude[0].reason", "one line of at most"),
        ("[[exclude]]\ncolumn = \" \"\nmatch = 'V'\n", "exclude[0].column", "expected a column name"),
    ],
)
def test_bad_exclude_rules_are_refused(tmp_path: Path, rule: str, key_path: str, problem: str) -> None:
    message = refused(tmp_path, (rule if rule.startswith("exclude") else "") + MINIMAL + (
        "" if rule.startswith("exclude") else rule))  # fmt: skip
    assert f": {key_path}: " in message and problem in message, message


def test_lookup_tables_from_files_are_read_and_covered_by_the_mapping_hash(tmp_path: Path) -> None:
    (tmp_path / "facilities.csv").write_text("Code,Name,CorEMR ID\nMAIN,Main jail,10000\n ANNEX ,x, 10001 \n")
    (tmp_path / "sex.toml").write_text('[codes]\n1 = "M"\n2 = "F"\n9 = "U"\n', encoding="utf-8")
    text = MINIMAL + (
        '[fields.facility]\ncolumn = "F"\ntype = "integer"\n'
        'lookup_file = { path = "facilities.csv", key = "Code", value = "CorEMR ID" }\n'
        '[fields.sex]\ncolumn = "S"\nlookup_file = { path = "sex.toml", table = "codes" }\n'
    )
    path = write_mapping(tmp_path, text)
    mapping = load_mapping(path)
    by_name = {f.name: f for f in mapping.fields}
    assert by_name["facility"].lookup == {"MAIN": "10000", "ANNEX": "10001"}
    assert by_name["sex"].lookup == {"1": "M", "2": "F", "9": "U"}
    assert mapping.sha256 != hashlib.sha256(path.read_bytes()).hexdigest()  # the tables are in the hash
    (tmp_path / "facilities.csv").write_text("Code,Name,CorEMR ID\nMAIN,Main jail,10000\nANNEX,x,10002\n")
    assert load_mapping(path).sha256 != mapping.sha256  # a changed table changes the recorded hash
