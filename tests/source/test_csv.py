"""The bookings CSV reader: text cells, physical line numbers, ragged rows, encodings, chunking."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline._errors import SourceError
from pipeline.source._csv import CsvFormat, SourceFile, open_source


def rows_of(source: SourceFile, chunk_rows: int = 1000) -> list[tuple[int, list[str]]]:
    """(line, cells) for every row the reader yields, ragged ones included, in file order."""
    out: list[tuple[int, list[str]]] = []
    for chunk in source.chunks(chunk_rows):
        cells = [list(r) for r in zip(*(chunk.frame[c].tolist() for c in chunk.frame.columns), strict=True)]
        out.extend(zip(chunk.lines.tolist(), cells, strict=True))
        out.extend((r.line, list(r.cells)) for r in chunk.ragged)
    return sorted(out, key=lambda item: item[0])


def write(tmp_path: Path, data: bytes, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_quoted_newlines_push_later_rows_to_their_physical_lines(tmp_path: Path) -> None:
    path = write(tmp_path, b'id,note\n1,"two\nlines"\n2,plain\n3,"three\n\nlines"\n4,x\n')
    source = open_source(path, CsvFormat())
    assert source.fast_lines is not None  # the fast reader handles this file
    assert rows_of(source) == [
        (2, ["1", "two\nlines"]),
        (4, ["2", "plain"]),
        (5, ["3", "three\n\nlines"]),
        (8, ["4", "x"]),
    ]


def test_blank_and_whitespace_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    path = write(tmp_path, b"id,note\n1,a\n\n   \n2,b\n,\n3,c")
    assert rows_of(open_source(path, CsvFormat())) == [(2, ["1", "a"]), (5, ["2", "b"]), (7, ["3", "c"])]


def test_ragged_rows_are_kept_with_their_line_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path, b'id,note\n1,a\n2,b,extra\n3,"q\nq"\n4\n5,e\n')
    source = open_source(path, CsvFormat())
    assert source.fast_lines is None  # ragged rows need the csv reader
    chunks = list(source.chunks(1000))
    ragged = [(r.line, r.cells) for c in chunks for r in c.ragged]
    assert ragged == [(3, ("2", "b", "extra")), (6, ("4",))]
    assert rows_of(source) == [
        (2, ["1", "a"]),
        (3, ["2", "b", "extra"]),
        (4, ["3", "q\nq"]),
        (6, ["4"]),
        (7, ["5", "e"]),
    ]


def test_fast_and_csv_readers_agree(tmp_path: Path) -> None:
    body = b'id,name,dob\n1,"Smith, Ann",01/02/1990\n\n2,NA,\n3,"say ""hi""",x\n4,"multi\nline",y\r\n5,Null,z\n'
    fast = open_source(write(tmp_path, body, "fast.csv"), CsvFormat())
    slow = open_source(write(tmp_path, body + b"6,too,many,cells\n", "slow.csv"), CsvFormat())
    assert fast.fast_lines is not None and slow.fast_lines is None
    assert rows_of(slow)[:-1] == rows_of(fast)
    assert rows_of(fast)[1] == (4, ["2", "NA", ""])  # "NA" is a surname, not a missing value
    assert rows_of(fast)[2] == (5, ["3", 'say "hi"', "x"])


def test_stray_quote_inside_a_cell_is_literal(tmp_path: Path) -> None:
    path = write(tmp_path, b"id,height\n1,5'10\"\n2,6'1\"\n3,ok\n")
    assert rows_of(open_source(path, CsvFormat())) == [(2, ["1", "5'10\""]), (3, ["2", "6'1\""]), (4, ["3", "ok"])]


def test_header_line_skips_preamble_lines(tmp_path: Path) -> None:
    path = write(tmp_path, b"County JMS export\nrun 2026-11-29\nid,name\n1,a\n")
    source = open_source(path, CsvFormat(header_line=3))
    assert source.header == ("id", "name")
    assert rows_of(source) == [(4, ["1", "a"])]


def test_header_line_beyond_the_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="ends before line 5"):
        open_source(write(tmp_path, b"id\n1\n"), CsvFormat(header_line=5))


def test_utf8_bom_is_stripped_from_the_header(tmp_path: Path) -> None:
    source = open_source(write(tmp_path, "\ufeffid,name\n1,José\n".encode()), CsvFormat())
    assert source.header == ("id", "name")
    assert rows_of(source) == [(2, ["1", "José"])]


def test_cp1252_file_reads_with_its_encoding(tmp_path: Path) -> None:
    path = write(tmp_path, "id,name\n1,Peña\n2,Lefèvre\n".encode("cp1252"))
    assert rows_of(open_source(path, CsvFormat(encoding="cp1252")))[1] == (3, ["2", "Lefèvre"])


def test_wrong_encoding_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "id,name\n1,a\n2,b\n3,Peña\n".encode("cp1252"))
    with pytest.raises(SourceError, match=r"line 4: bytes that are not utf-8.*\[source\] encoding"):
        open_source(path, CsvFormat())


def test_empty_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="the file is empty"):
        open_source(write(tmp_path, b""), CsvFormat())


def test_header_only_file_has_no_rows(tmp_path: Path) -> None:
    source = open_source(write(tmp_path, b"id,name\n"), CsvFormat())
    assert source.header == ("id", "name")
    assert rows_of(source) == []


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot read the bookings file"):
        open_source(tmp_path / "nope.csv", CsvFormat())


@pytest.mark.parametrize("delimiter", ["\t", ";", "|"])
def test_other_delimiters(tmp_path: Path, delimiter: str) -> None:
    text = f"id{delimiter}name\n1{delimiter}Smith, Ann\n"
    source = open_source(write(tmp_path, text.encode()), CsvFormat(delimiter=delimiter))
    assert rows_of(source) == [(2, ["1", "Smith, Ann"])]


def test_crlf_line_endings(tmp_path: Path) -> None:
    source = open_source(write(tmp_path, b'id,name\r\n1,"a\r\nb"\r\n2,c\r\n'), CsvFormat())
    assert rows_of(source) == [(2, ["1", "a\r\nb"]), (4, ["2", "c"])]


def test_small_chunks_give_the_same_rows(tmp_path: Path) -> None:
    lines = ["id,note"] + [f'{i},"n\n{i}"' if i % 7 == 0 else f"{i},n{i}" for i in range(1, 500)]
    path = write(tmp_path, ("\n".join(lines) + "\n").encode())
    source = open_source(path, CsvFormat())
    assert rows_of(source, chunk_rows=13) == rows_of(source, chunk_rows=10_000)
    assert rows_of(source, chunk_rows=13)[-1][0] == 499 + 1 + 499 // 7
