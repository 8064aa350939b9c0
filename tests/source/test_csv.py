"""The bookings CSV reader: text cells, physical line numbers, ragged rows, encodings, chunking."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import SourceError
from pipeline.source import CsvFormat, SourceFile, open_source


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


def test_unterminated_quote_mid_file_is_refused_naming_its_line(tmp_path: Path) -> None:
    rows = b"".join(b"%d,n%d,x\n" % (i, i) for i in range(2, 10))
    path = write(tmp_path, b"id,name,dob\n1,a,x\n" + b'2,"b,y\n' + rows)  # before: "rows read: 3", no hint why
    with pytest.raises(SourceError) as info:
        open_source(path, CsvFormat())
    assert str(info.value) == (
        f"{path}, line 3: a quote opens a cell here and is never closed, so every later line would be read"
        " into that one cell; close or remove the quote in the export"
    )


def test_unterminated_quote_in_the_last_column_is_refused_too(tmp_path: Path) -> None:
    # The swallowed rows make one row of the right width here: without the check it would be valid.
    path = write(tmp_path, b'id,note\n1,"two\nlines"\n2,"open\n3,c\n4,d\n')
    with pytest.raises(SourceError, match=r", line 4: a quote opens a cell here and is never closed"):
        open_source(path, CsvFormat())


def test_unterminated_quote_in_a_file_the_csv_module_reads_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, b'id,height\n1,5\'10"\n2,x,ragged\n3,"open\n4,y\n')  # stray quote and a ragged row
    with pytest.raises(SourceError, match=r", line 4: a quote opens a cell here and is never closed"):
        open_source(path, CsvFormat())


def test_unterminated_quote_in_the_header_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r", line 2: the header opens a quote that is never closed"):
        open_source(write(tmp_path, b'preamble\n"id,name\n1,a\n'), CsvFormat(header_line=2))


@pytest.mark.parametrize("ragged", [False, True], ids=["fast reader", "csv reader"])
def test_a_50_mb_cell_is_read_whole_not_a_file_error(tmp_path: Path, ragged: bool) -> None:
    huge = b"S" * (50 * 1024 * 1024)
    data = b"id,name\n1," + huge + b"\n2,ok\n" + (b"3,x,ragged\n" if ragged else b"")
    source = open_source(write(tmp_path, data), CsvFormat())
    assert (source.fast_lines is None) is ragged
    rows = rows_of(source)
    assert rows[0] == (2, ["1", huge.decode()]) and rows[1] == (3, ["2", "ok"])


def test_utf16_export_with_a_bom_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, 'id;name\r\n1;Peña\r\n2;"Zoë; Ann"\r\n'.encode("utf-16"))
    source = open_source(path, CsvFormat(encoding="utf-16", delimiter=";"))
    assert source.header == ("id", "name")
    assert rows_of(source) == [(2, ["1", "Peña"]), (3, ["2", "Zoë; Ann"])]


def test_bytes_that_are_not_utf16_are_refused_naming_the_line(tmp_path: Path) -> None:
    data = "id,name\n1,a\n2,b\n".encode("utf-16-le") + b"\x00\xdc"  # a lone low surrogate
    with pytest.raises(SourceError, match=r", line 4: bytes that are not utf-16-le"):
        open_source(write(tmp_path, data), CsvFormat(encoding="utf-16-le"))


def test_ebcdic_export_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, "id|name\n1|Smith\n".encode("cp037"))
    assert rows_of(open_source(path, CsvFormat(encoding="cp037", delimiter="|"))) == [(2, ["1", "Smith"])]


def test_footer_lines_are_not_rows(tmp_path: Path) -> None:
    path = write(tmp_path, b"id,name\n1,a\n2,b\nTRAILER,2 records\n\n")
    assert rows_of(open_source(path, CsvFormat(footer_lines=1))) == [(2, ["1", "a"]), (3, ["2", "b"])]


def test_footer_pattern_alone_skips_the_trailing_lines_that_match(tmp_path: Path) -> None:
    def trailer(line: str) -> bool:
        return line.startswith("TRAILER")

    path = write(tmp_path, b"id,name\n1,a\n2,b\nTRAILER 2\r\nTRAILER end\n")
    assert rows_of(open_source(path, CsvFormat(footer_match=trailer))) == [(2, ["1", "a"]), (3, ["2", "b"])]
    no_trailer = write(tmp_path, b"id,name\n1,a\n", "plain.csv")
    assert rows_of(open_source(no_trailer, CsvFormat(footer_match=trailer))) == [(2, ["1", "a"])]


def test_a_missing_trailer_is_refused_as_an_incomplete_export(tmp_path: Path) -> None:
    path = write(tmp_path, b"id,name\n1,a\n2,b\n")  # the export job stopped before writing its trailer

    def trailer(line: str) -> bool:
        return line.startswith("TRAILER")

    with pytest.raises(SourceError, match=r", line 3: not the footer that \[source\] footer_match describes"):
        open_source(path, CsvFormat(footer_lines=1, footer_match=trailer))


def test_more_footer_lines_than_the_file_has_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"footer_lines = 2, but only 1 non-blank line\(s\) follow the header"):
        open_source(write(tmp_path, b"id\nTRAILER\n"), CsvFormat(footer_lines=2))


def test_footer_is_found_across_read_blocks(tmp_path: Path) -> None:
    body = b"".join(b"%d,%s\n" % (i, b"x" * 900) for i in range(200))  # ~180 KB: several 64 KB tail blocks
    path = write(tmp_path, b"id,v\n" + body + b"END\n")
    rows = rows_of(open_source(path, CsvFormat(footer_lines=1)))
    assert len(rows) == 200 and rows[-1][0] == 201
