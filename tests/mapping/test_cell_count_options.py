"""`[source] extra_cells` and `missing_cells`: a line with more or fewer cells than the header is kept (the header's
cells, or padded with blanks) when the mapping says so, counted in `validate`; by default it is a row problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline import MappingError
from pipeline.cli import cli
from pipeline.mapping import MappedRow, load_mapping, map_csv

MAPPING = (
    '[target]\nprofile = "none"\nkey = ["id"]\n[fields.id]\ncolumn = "ID"\n'
    '[fields.n]\ncolumn = "N"\ntype = "integer"\n[fields.note]\ncolumn = "Note"\nrequired = false\n'
)
# Two lines of the header's width, two in a longer layout (the same columns first), one short line.
EXPORT = "ID,N,Note\n1,10,a\n2,20,b,EXTRA,MORE\n3,30,c,,\n4,40\n5,50,e\n"


def rows(tmp_path: Path, source: str) -> list[MappedRow]:
    (tmp_path / "m.toml").write_text(source + MAPPING, encoding="utf-8")
    (tmp_path / "in.csv").write_text(EXPORT, encoding="utf-8")
    return [row for chunk in map_csv(tmp_path / "in.csv", load_mapping(tmp_path / "m.toml")) for row in chunk]


def test_lines_of_another_width_are_row_problems_by_default(tmp_path: Path) -> None:
    mapped = rows(tmp_path, "")
    bad = {row.line: str(row.problems[0]) for row in mapped if not row.valid}
    assert bad == {
        3: "line 3: expected 3 cells as in the header, found 5",
        4: "line 4: expected 3 cells as in the header, found 5",
        5: "line 5: expected 3 cells as in the header, found 2",
    }


def test_extra_cells_ignore_keeps_the_headers_cells(tmp_path: Path) -> None:
    mapped = rows(tmp_path, '[source]\nextra_cells = "ignore"\n')
    by_line = {row.line: row for row in mapped}
    assert by_line[3].body == b'{"id":"2","n":20,"note":"b"}'
    assert by_line[3].row == ("2", "20", "b")  # what the ledger keeps of the line: the header's cells
    assert by_line[4].valid
    assert not by_line[5].valid  # a short line is still a problem: missing_cells was not set


def test_missing_cells_blank_pads_the_line(tmp_path: Path) -> None:
    mapped = rows(tmp_path, '[source]\nmissing_cells = "blank"\n')
    by_line = {row.line: row for row in mapped}
    assert by_line[5].body == b'{"id":"4","n":40}'  # Note blank and optional: left out
    assert not by_line[3].valid and not by_line[4].valid


def test_validate_counts_and_names_both(tmp_path: Path) -> None:
    (tmp_path / "m.toml").write_text('[source]\nextra_cells = "ignore"\nmissing_cells = "blank"\n' + MAPPING)
    (tmp_path / "in.csv").write_text(EXPORT, encoding="utf-8")
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "in.csv"), "--mapping", str(tmp_path / "m.toml")])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "rows read: 5",
        "valid:     5",
        "invalid:   0",
        '2 lines had extra cells (ignored: extra_cells = "ignore")',
        '1 lines had missing cells (padded with blanks: missing_cells = "blank")',
    ]


@pytest.mark.parametrize(
    ("source", "key_path"),
    [('extra_cells = "drop"', "source.extra_cells"), ('missing_cells = "pad"', "source.missing_cells")],
)
def test_an_unknown_choice_is_refused_naming_the_key(tmp_path: Path, source: str, key_path: str) -> None:
    (tmp_path / "m.toml").write_text(f"[source]\n{source}\n" + MAPPING, encoding="utf-8")
    with pytest.raises(MappingError, match=rf": {key_path}: .* is not one of "):
        load_mapping(tmp_path / "m.toml")
