"""User regexes run by RE2: linear time whatever the cell, one-line refusals for what RE2 cannot express."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.mapping._regex import UserRegex, regex_problem

ROOT = Path(__file__).parents[2]


def test_a_catastrophic_pattern_does_not_hang_validate(tmp_path: Path) -> None:
    mapping = tmp_path / "m.toml"
    mapping.write_text(
        '[target]\nprofile = "none"\nkey = ["id"]\n[fields.id]\ncolumn = "ID"\n'
        "[fields.v]\ncolumn = \"V\"\nextract = '^(a+)+$'\nrequired = false\n",
        encoding="utf-8",
    )
    export = tmp_path / "in.csv"
    export.write_text("ID,V\n1," + "a" * 35 + "!\n2,aaa\n", encoding="utf-8")
    # Python's re backtracks 2**35 times on this cell (hours); RE2 answers at once. The timeout only
    # turns a hang into a failure: it measures nothing.
    args = ["validate", str(export), "-m", str(mapping), "--bodies", str(tmp_path / "b")]
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, timeout=120, check=False, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "b").read_text() == '{"id":"1"}\n{"id":"2","v":"aaa"}\n'


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        (r"(a)\1", r"invalid escape sequence: \1 (backreferences are not supported: RE2 runs in linear time)"),
        ("(?P<v>a)(?P=v)", "(backreferences are not supported: RE2 runs in linear time)"),
        ("(?=x)a", "invalid perl operator: (?= (lookahead and lookbehind are not supported: RE2 runs in linear time)"),
        ("(?<!x)a", "(?<! (lookahead and lookbehind are not supported: RE2 runs in linear time)"),
        (r"a\Z", r"(use $ or \z for the end of the text)"),
        ("[a", "missing ]: [a"),
    ],
)
def test_what_re2_cannot_run_is_refused_at_load_in_one_line(tmp_path: Path, pattern: str, says: str) -> None:
    mapping = tmp_path / "m.toml"
    mapping.write_text(
        f'[target]\nprofile = "none"\nkey = ["id"]\n[fields.id]\ncolumn = "ID"\nextract = \'{pattern}\'\n',
        encoding="utf-8",
    )
    export = tmp_path / "in.csv"
    export.write_text("ID\n1\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "validate", str(export), "-m", str(mapping)],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    # One line: RE2's own logging (the pattern and its error on stderr) is turned off.
    assert done.stderr.startswith(f"Error: {mapping}: fields.id.extract: bad regular expression (RE2 syntax): ")
    assert done.stderr.count("\n") == 1 and done.stderr.endswith(says + "\n"), done.stderr


def test_extract_keeps_the_value_group_the_whole_match_or_nothing() -> None:
    assert UserRegex(r",\s*(?P<value>.+?)\s*$").extract(["Peña , José ", "none", ","]) == ["José", "", ""]
    assert UserRegex(r"\d+").extract(["ab 123 cd", "x", "٣"]) == ["123", "", ""]  # \d is ASCII in RE2
    assert UserRegex(r"(?P<value>b)|a").extract(["a", "b"]) == ["", "b"]


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.text(alphabet="ab, -é1\t", max_size=12), max_size=20),
    pattern=st.sampled_from([r"^\s*(?P<value>[^,]+?)\s*,", r",\s*(?P<value>.+?)\s*$", r"[ab]+", r"(?P<value>é+)\d?"]),
)
def test_re2_extracts_what_pythons_re_extracts_for_ordinary_patterns(values: list[str], pattern: str) -> None:
    python = re.compile(pattern)
    group: int | str = "value" if "value" in python.groupindex else 0
    expected = [(m.group(group) or "") if (m := python.search(v)) else "" for v in values]
    assert UserRegex(pattern).extract(values) == expected
    assert UserRegex(pattern).matches(values) == [python.search(v) is not None for v in values]


def test_a_pattern_re2_can_run_has_no_problem() -> None:
    assert regex_problem(r"(?i)^(training|test)\b") is None
