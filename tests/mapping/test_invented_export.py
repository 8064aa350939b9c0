"""Issue 14's invented export, mapped without workarounds: Latin-1, ";", preamble, trailer, 1/2/9 gender,
split booking date and time, "NMN", a shared facility table and training records (files in cases/)."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from pipeline.cli import cli

CASES = Path(__file__).parent / "cases"


def validate(export: Path, mapping: Path, bodies: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["validate", str(export), "-m", str(mapping), "--bodies", str(bodies)])
    return result.exit_code, result.stdout, result.stderr


def test_validate_gives_exactly_the_expected_bodies(tmp_path: Path) -> None:
    bodies = tmp_path / "bodies.jsonl"
    code, out, err = validate(CASES / "county-export.csv", CASES / "county.toml", bodies)
    assert (code, err) == (0, "")
    assert out == (
        "rows read: 6\nvalid:     4\ninvalid:   0\n"
        "excluded:  2 (by the mapping's [[exclude]] rules; never sent)\n"
        f"bodies:    {bodies} (4 line(s))\n"
    )
    assert bodies.read_bytes() == (CASES / "county-expected.jsonl").read_bytes()


def test_the_same_export_without_its_trailer_is_refused_as_incomplete(tmp_path: Path) -> None:
    shutil.copy(CASES / "county.toml", tmp_path / "county.toml")
    shutil.copy(CASES / "facilities.csv", tmp_path / "facilities.csv")
    export = tmp_path / "county-export.csv"
    export.write_bytes(b"".join((CASES / "county-export.csv").read_bytes().splitlines(keepends=True)[:-1]))
    code, out, err = validate(export, tmp_path / "county.toml", tmp_path / "bodies.jsonl")
    assert (code, out) == (2, "")
    assert err == (
        f"Error: {export}, line 9: not the footer that [source] footer_match describes;"
        " the export may be incomplete (or footer_lines is too large)\n"
    )
    assert not (tmp_path / "bodies.jsonl").exists()
