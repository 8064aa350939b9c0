"""`cws-pipeline validate`: counts, first problems, exit codes, 0600 bodies and rejects files, nothing on error."""

from __future__ import annotations

import csv
import io
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline._private_files import neutralise_cell
from pipeline.cli import cli
from pipeline.mapping import load_mapping, map_csv

ROOT = Path(__file__).parents[2]
SAMPLE = ROOT / "sample_data" / "bookings.csv"
MAPPING = ROOT / "mappings" / "sample-jms.toml"
SMALL_MAPPING = (
    '[target]\nprofile = "none"\nkey = ["id"]\n[fields.id]\ncolumn = "ID"\n[fields.n]\ncolumn = "N"\ntype = "integer"\n'
)


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def small(tmp_path: Path) -> tuple[Path, Path]:
    mapping = tmp_path / "m.toml"
    mapping.write_text(SMALL_MAPPING, encoding="utf-8")
    data = tmp_path / "in.csv"
    data.write_text("ID,N\n1,10\n2,=1+2\n3,30\n", encoding="utf-8")
    return data, mapping


def test_sample_export_counts_and_problems(tmp_path: Path) -> None:
    code, out, _ = invoke("validate", SAMPLE, "--mapping", MAPPING)
    assert code == 1
    assert out.startswith("rows read: 240\nvalid:     233\ninvalid:   7\nfirst 8 problem(s):\n")
    assert (
        "  line 32: sex (column 'Sex'): 'X' is not one of M, MALE, F, FEMALE, U, UNKNOWN (assumption v2-sex-values)\n"
        in out
    )
    assert (
        "  line 82: key 'J0000021/B25-000021' (external_id/booking_no) was already used on line 22, with a different"
        " body: a key names one booking; correct line 22 or line 82\n"
    ) in out
    assert "  line 214: expected 12 cells as in the header, found 13\n" in out


def test_names_and_birth_dates_never_reach_stdout(tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.csv"
    _, out, err = invoke("validate", SAMPLE, "--mapping", MAPPING, "--rejects", rejects, "--show", "100")
    cells = list(csv.DictReader(io.StringIO(rejects.read_text(encoding="utf-8"))))
    assert len(cells) == 7
    for row in cells:
        for column in ("Name", "DOB", "Middle Name"):
            if len(row[column]) > 2:
                assert row[column] not in out + err, column
    assert "13/45/1990" in rejects.read_text(encoding="utf-8")  # the rejects file keeps the original cells


def test_bodies_file_holds_exactly_the_bytes_to_sign(tmp_path: Path) -> None:
    bodies = tmp_path / "bodies.jsonl"
    code, out, _ = invoke("validate", SAMPLE, "--mapping", MAPPING, "--bodies", bodies)
    assert code == 1 and f"bodies:    {bodies} (233 line(s))" in out
    expected = [row.body for chunk in map_csv(SAMPLE, load_mapping(MAPPING)) for row in chunk if row.body]
    assert bodies.read_bytes() == b"".join(body + b"\n" for body in expected)
    assert stat.S_IMODE(bodies.stat().st_mode) == 0o600


def test_rejects_file_has_original_columns_line_and_error_neutralised(tmp_path: Path, small: tuple[Path, Path]) -> None:
    data, mapping = small
    rejects = tmp_path / "rejects.csv"
    code, out, _ = invoke("validate", data, "--mapping", mapping, "--rejects", rejects)
    assert code == 1 and "rejects:   " in out
    assert stat.S_IMODE(rejects.stat().st_mode) == 0o600
    rows = list(csv.reader(io.StringIO(rejects.read_text(encoding="utf-8"))))
    assert rows == [
        ["ID", "N", "line", "error"],
        ["2", "'=1+2", "3", "line 3: n (column 'N'): '=1+2' is not a whole number"],
    ]


@pytest.mark.parametrize(
    ("cell", "written"), [("=SUM(A1)", "'=SUM(A1)"), ("+1", "'+1"), ("-1", "'-1"), ("@x", "'@x"), ("a=b", "a=b")]
)
def test_formula_cells_are_neutralised(cell: str, written: str) -> None:
    assert neutralise_cell(cell) == written


def test_all_valid_exits_0(tmp_path: Path) -> None:
    mapping = tmp_path / "m.toml"
    mapping.write_text(SMALL_MAPPING, encoding="utf-8")
    data = tmp_path / "in.csv"
    data.write_text("ID,N\n1,10\n", encoding="utf-8")
    assert invoke("validate", data, "-m", mapping) == (0, "rows read: 1\nvalid:     1\ninvalid:   0\n", "")


def test_header_only_export_is_valid_and_empty(tmp_path: Path) -> None:
    mapping = tmp_path / "m.toml"
    mapping.write_text(SMALL_MAPPING, encoding="utf-8")
    data = tmp_path / "in.csv"
    data.write_text("ID,N\n", encoding="utf-8")
    bodies, rejects = tmp_path / "b.jsonl", tmp_path / "r.csv"
    code, out, _ = invoke("validate", data, "-m", mapping, "--bodies", bodies, "--rejects", rejects)
    assert code == 0 and out.startswith("rows read: 0\n")
    assert bodies.read_bytes() == b""
    assert rejects.read_text(encoding="utf-8") == "line,error\n"


def test_mapping_error_exits_2_and_writes_nothing(tmp_path: Path, small: tuple[Path, Path]) -> None:
    data, mapping = small
    mapping.write_text(SMALL_MAPPING + "extract = '(['\n", encoding="utf-8")
    bodies, rejects = tmp_path / "b.jsonl", tmp_path / "r.csv"
    code, out, err = invoke("validate", data, "-m", mapping, "--bodies", bodies, "--rejects", rejects)
    assert code == 2 and out == ""
    assert err.startswith(f"Error: {mapping}: fields.n.extract: bad regular expression")
    assert not bodies.exists() and not rejects.exists()
    assert list(tmp_path.glob("*.partial")) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"Id,Number\n1,2\n", "line 1: the header there (2 cells) lacks 2 of the 2 columns"),
        (b"ID,N\n1,2\n3,Pe\xf1a\n", "line 3: bytes that are not utf-8"),
    ],
)
def test_file_errors_exit_2_and_write_nothing(
    tmp_path: Path, small: tuple[Path, Path], content: bytes, message: str
) -> None:
    data, mapping = small
    data.write_bytes(content)
    bodies = tmp_path / "b.jsonl"
    code, out, err = invoke("validate", data, "-m", mapping, "--bodies", bodies)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not bodies.exists()


def test_missing_mapping_option_is_a_usage_error(small: tuple[Path, Path]) -> None:
    data, _ = small
    code, _, err = invoke("validate", data)
    assert code == 2 and "--mapping" in err


def test_help_starts_with_one_line_and_shows_an_example() -> None:
    code, out, _ = invoke("validate", "--help")
    assert code == 0
    assert "Check a bookings CSV against a mapping" in out
    assert "cws-pipeline validate sample_data/bookings.csv --mapping mappings/sample-jms.toml" in out


@pytest.mark.parametrize("header_line", [None, 2], ids=["no header", "header_line wrong"])
def test_a_missing_or_misplaced_header_never_prints_the_row_it_found(tmp_path: Path, header_line: int | None) -> None:
    rows = SAMPLE.read_text(encoding="utf-8").splitlines()[1:6]  # data rows only: names and birth dates
    data = tmp_path / "export.csv"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    mapping = tmp_path / "m.toml"
    text = MAPPING.read_text(encoding="utf-8")
    mapping.write_text(text if header_line is None else text.replace("header_line = 1", "header_line = 2"))
    code, out, err = invoke("validate", data, "-m", mapping)
    assert code == 2 and out == "" and err.count("\n") == 1
    line = header_line or 1
    assert f"{data}, line {line}: the header there (12 cells) lacks 10 of the 10 columns {mapping} reads" in err
    assert "check [source] header_line" in err
    cells = {cell.strip('"') for row in rows[line - 1 : line] for cell in row.replace('"', "").split(",")}
    for cell in cells - {"", "M", "F", "I", "W", "B", "U", "MAIN", "ANNEX"}:
        assert cell not in err, cell


def test_excluded_rows_are_counted_apart_and_do_not_make_validate_fail(tmp_path: Path) -> None:
    mapping = tmp_path / "m.toml"
    mapping.write_text(SMALL_MAPPING + '[[exclude]]\ncolumn = "N"\nmatch = \'^TEST$\'\nreason = "test record"\n')
    data = tmp_path / "in.csv"
    data.write_text("ID,N\n1,10\n2,TEST\n3,30\n", encoding="utf-8")
    bodies = tmp_path / "b.jsonl"
    code, out, _ = invoke("validate", data, "-m", mapping, "--bodies", bodies)
    assert code == 0
    assert out.startswith(
        "rows read: 3\nvalid:     2\ninvalid:   0\nexcluded:  1 (by the mapping's [[exclude]] rules; never sent)\n"
    )
    assert bodies.read_bytes() == b'{"id":"1","n":10}\n{"id":"3","n":30}\n'
