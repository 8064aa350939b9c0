"""Read a bookings CSV as text, in chunks, keeping the physical line where every row starts.

Every cell is read as a string with no NA guessing (a surname "NA" is a surname). Rows whose cell count
differs from the header are kept as `RaggedRow`s for the mapper to report, never a crash. Lines holding
only whitespace, and rows whose cells are all empty, are skipped but still counted.

Two readers give the same rows: a fast one (a numpy scan of the raw bytes for record boundaries, then
pandas' C parser) for the common clean file, and the csv module for anything unusual (ragged rows,
stray quotes, lone carriage returns, encodings that are not ASCII-compatible).
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import pandas as pd

from .._errors import SourceError

__all__ = ["CsvFormat", "RaggedRow", "SourceChunk", "SourceFile", "open_source"]

_BLOCK = 1 << 23


@dataclass(frozen=True)
class CsvFormat:
    """How to read the file: codec, one-character delimiter, physical line of the header row."""

    encoding: str = "utf-8"
    delimiter: str = ","
    header_line: int = 1


@dataclass(frozen=True)
class RaggedRow:
    """A row with more or fewer cells than the header."""

    line: int
    cells: tuple[str, ...]


@dataclass(frozen=True)
class SourceChunk:
    """Consecutive rows: a frame with integer column labels (header positions), their start lines, ragged rows."""

    frame: pd.DataFrame
    lines: npt.NDArray[np.int64]
    ragged: tuple[RaggedRow, ...]


@dataclass(frozen=True)
class SourceFile:
    """A bookings CSV whose header has been read and whose bytes all decode."""

    path: Path
    header: tuple[str, ...]
    csv_format: CsvFormat
    data_offset: int  # byte offset where the first data row starts
    data_line: int  # physical line of that byte
    fast_lines: npt.NDArray[np.int64] | None  # start line of every non-blank row, when the fast reader applies

    def chunks(self, chunk_rows: int) -> Iterator[SourceChunk]:
        """Yield the data rows in file order, CHUNK_ROWS at a time."""
        if self.fast_lines is not None:
            yield from self._fast_chunks(self.fast_lines, chunk_rows)
        else:
            yield from self._csv_chunks(chunk_rows)

    def _fast_chunks(self, lines: npt.NDArray[np.int64], chunk_rows: int) -> Iterator[SourceChunk]:
        if len(lines) == 0:
            return
        width = len(self.header)
        done = 0
        with self.path.open("rb") as raw:
            raw.seek(self.data_offset)
            reader = pd.read_csv(
                raw,
                header=None,
                names=list(range(width)),
                dtype=object,  # plain Python strings: pandas' str dtype costs time and nothing here needs it
                na_filter=False,
                sep=self.csv_format.delimiter,
                quotechar='"',
                doublequote=True,
                encoding=self.csv_format.encoding,
                skip_blank_lines=True,
                chunksize=chunk_rows,
                engine="c",
            )
            with reader:
                for frame in reader:
                    n = len(frame)
                    chunk_lines = lines[done : done + n]
                    if len(chunk_lines) != n:
                        raise SourceError(f"{self.path}: rows could not be matched to lines; please report this file")
                    done += n
                    frame = frame.reset_index(drop=True)
                    yield _drop_empty(SourceChunk(frame, chunk_lines, ()))
        if done != len(lines):
            raise SourceError(f"{self.path}: rows could not be matched to lines; please report this file")

    def _csv_chunks(self, chunk_rows: int) -> Iterator[SourceChunk]:
        width = len(self.header)
        with self.path.open("rb") as raw:
            raw.seek(self.data_offset)
            text = io.TextIOWrapper(raw, encoding=self.csv_format.encoding, newline="")
            reader = csv.reader(text, delimiter=self.csv_format.delimiter, quotechar='"', doublequote=True)
            rows: list[list[str]] = []
            lines: list[int] = []
            ragged: list[RaggedRow] = []
            ended = self.data_line - 1
            try:
                for row in reader:
                    start, ended = ended + 1, self.data_line - 1 + reader.line_num
                    if not any(cell.strip() for cell in row):
                        continue
                    if len(row) != width:
                        ragged.append(RaggedRow(start, tuple(row)))
                    else:
                        rows.append(row)
                        lines.append(start)
                    if len(rows) + len(ragged) >= chunk_rows:
                        yield _csv_chunk(rows, lines, ragged, width)
                        rows, lines, ragged = [], [], []
            except csv.Error as exc:
                raise SourceError(f"{self.path}, line {ended + 1}: {exc}") from exc
            if rows or ragged:
                yield _csv_chunk(rows, lines, ragged, width)


def _csv_chunk(rows: list[list[str]], lines: list[int], ragged: list[RaggedRow], width: int) -> SourceChunk:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in range(width)]
    frame = pd.DataFrame({i: pd.Series(col, dtype="str") for i, col in enumerate(columns)}, index=range(len(rows)))
    return SourceChunk(frame, np.asarray(lines, dtype=np.int64), tuple(ragged))


def _drop_empty(chunk: SourceChunk) -> SourceChunk:
    """Drop rows whose cells are all empty (",,,," lines that spreadsheets leave behind)."""
    frame = chunk.frame
    empty = np.ones(len(frame), dtype=bool)
    for label in frame.columns:
        empty &= frame[label].to_numpy() == ""  # numpy's compare: pandas' costs 3x for the same answer
        if not empty.any():
            return chunk
    keep = ~empty
    return SourceChunk(frame[keep].reset_index(drop=True), chunk.lines[keep], chunk.ragged)


def _is_ascii_compatible(encoding: str) -> bool:
    try:
        return ',;|\t\n\r" '.encode(encoding) == b',;|\t\n\r" '
    except (UnicodeError, LookupError):
        return False


def open_source(path: Path | str, csv_format: CsvFormat) -> SourceFile:
    """Check the file (exists, decodes, has a header) and read its header; SourceError if it cannot be used."""
    path = Path(path)
    try:
        with path.open("rb") as raw:
            header, offset, data_line = _read_header(path, raw, csv_format)
            fast_lines = _scan(path, raw, csv_format, offset, data_line, len(header))
    except OSError as exc:
        raise SourceError(f"{path}: cannot read the bookings file ({exc.strerror or exc})") from exc
    return SourceFile(path, header, csv_format, offset, data_line, fast_lines)


def _decode(path: Path, data: bytes, encoding: str, line: int) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        at = line + data.count(b"\n", 0, exc.start)
        raise SourceError(
            f"{path}, line {at}: bytes that are not {encoding} ({exc.reason});"
            ' set [source] encoding in the mapping (e.g. "cp1252")'
        ) from exc


def _read_header(path: Path, raw: BinaryIO, fmt: CsvFormat) -> tuple[tuple[str, ...], int, int]:
    """Skip the preamble, parse the header record; return it with the data's byte offset and line."""
    first = raw.read(4)
    raw.seek(0)
    if not first:
        raise SourceError(f"{path}: the file is empty; expected a header row on line {fmt.header_line}")
    if codecs.lookup(fmt.encoding).name == "utf-8" and first.startswith(codecs.BOM_UTF8):
        raw.seek(len(codecs.BOM_UTF8))
    for _ in range(fmt.header_line - 1):
        if not raw.readline():
            raise SourceError(
                f"{path}: the file ends before line {fmt.header_line}, where [source] header_line says the header is"
            )
    line = fmt.header_line
    record = b""
    while True:
        piece = raw.readline()
        record += piece
        text = _decode(path, record, fmt.encoding, line)
        if not piece or text.count('"') % 2 == 0:
            break
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=fmt.delimiter))
    header = tuple(cell.strip() for cell in rows[0]) if rows else ()
    if not any(header):
        raise SourceError(f"{path}, line {line}: no header row there; set [source] header_line to the header's line")
    return header, raw.tell(), line + record.count(b"\n")


def _scan(
    path: Path, raw: BinaryIO, fmt: CsvFormat, offset: int, data_line: int, width: int
) -> npt.NDArray[np.int64] | None:
    """Decode-check every byte; return each non-blank record's start line, or None if the csv reader must be used."""
    fast = _is_ascii_compatible(fmt.encoding) and fmt.delimiter not in '"\n\r '
    decoder = codecs.getincrementaldecoder(fmt.encoding)()
    quote, delim = ord('"'), ord(fmt.delimiter) if fast else 0
    starts: list[npt.NDArray[np.int64]] = []  # byte positions where records start
    lines: list[npt.NDArray[np.int64]] = []
    fields: list[npt.NDArray[np.int64]] = []
    newlines = data_line - 1  # newlines before the current block
    quotes = 0  # quote characters before the current block (parity says whether we are inside quotes)
    delims = 0
    record_start, record_line, record_delims = offset, data_line, 0
    previous = ord("\n")  # the byte before the block
    pos = offset
    raw.seek(offset)
    while block := raw.read(_BLOCK):
        try:
            decoder.decode(block)
        except UnicodeDecodeError as exc:
            at = newlines + 1 + block.count(b"\n", 0, max(exc.start, 0))
            raise SourceError(
                f"{path}, line {at}: bytes that are not {fmt.encoding} ({exc.reason});"
                ' set [source] encoding in the mapping (e.g. "cp1252")'
            ) from exc
        if fast:
            a = np.frombuffer(block, dtype=np.uint8)
            special = np.flatnonzero((a == quote) | (a == delim) | (a == 10) | (a == 13))
            kinds = a[special]
            is_quote = kinds == quote
            # Parity is all that matters, so a wrapping uint8 running count is enough (and 8x less memory).
            quotes_before = np.cumsum(is_quote, dtype=np.uint8) - is_quote + np.uint8(quotes & 1)
            outside = (quotes_before & 1) == 0
            opening = is_quote & outside
            if opening.any():
                opened = special[opening]
                before = np.where(opened > 0, a[np.maximum(opened - 1, 0)], previous)
                if not np.isin(before, (delim, 10, quote)).all():  # "" inside quotes reopens
                    fast = False
            crs = special[kinds == 13]
            if len(crs):
                nxt = crs + 1
                inside_block = nxt < len(a)
                if not (a[nxt[inside_block]] == 10).all() or not inside_block.all():
                    fast = False  # a lone CR, or one at a block edge: let the csv module decide
            is_nl = kinds == 10
            is_delim = (kinds == delim) & outside
            delims_through = np.cumsum(is_delim, dtype=np.int32)  # a block holds < 2**31 special bytes
            ends = is_nl & outside
            if ends.any():
                end_at = np.flatnonzero(ends)
                end_pos = special[end_at] + pos
                end_lines = np.flatnonzero(outside[is_nl]) + 1 + newlines  # rank among the block's newlines
                end_delims = delims_through[end_at].astype(np.int64) + delims
                rec_starts = np.concatenate(([record_start], end_pos[:-1] + 1))
                rec_lines = np.concatenate(([record_line], end_lines[:-1] + 1))
                rec_delims = np.diff(np.concatenate(([record_delims], end_delims)))
                starts.append(rec_starts)
                lines.append(rec_lines)
                fields.append(rec_delims + 1)
                record_start, record_line, record_delims = (
                    int(end_pos[-1]) + 1,
                    int(end_lines[-1]) + 1,
                    int(end_delims[-1]),
                )
            quotes += int(is_quote.sum())
            delims += int(delims_through[-1]) if len(delims_through) else 0
            newlines += int(is_nl.sum())
            previous = int(a[-1])
        else:
            newlines += block.count(b"\n")
        pos += len(block)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}, line {newlines + 1}: the file ends inside a {fmt.encoding} character") from exc
    if not fast or quotes % 2:
        return None
    if pos > record_start:  # a last record without a newline
        starts.append(np.array([record_start], dtype=np.int64))
        lines.append(np.array([record_line], dtype=np.int64))
        fields.append(np.array([delims - record_delims + 1], dtype=np.int64))
    if not starts:
        return np.zeros(0, dtype=np.int64)
    all_starts, all_lines, all_fields = np.concatenate(starts), np.concatenate(lines), np.concatenate(fields)
    single = np.flatnonzero(all_fields == 1)
    blank = np.zeros(len(all_starts), dtype=bool)
    for i in single:  # records without a delimiter: blank lines, or one-column files
        raw.seek(int(all_starts[i]))
        text = raw.readline()
        if not text.strip():
            if text not in (b"\n", b"\r\n", b""):
                return None  # whitespace-only lines: pandas and csv disagree, let the csv reader decide
            blank[i] = True
    if (all_fields[~blank] != width).any():
        return None  # ragged rows: the csv reader reports them one by one
    return all_lines[~blank]
