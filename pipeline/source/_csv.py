"""Read a bookings CSV as text, in chunks, keeping the physical line where every row starts.

Every cell is read as a string with no NA guessing (a surname "NA" is a surname). Rows whose cell count
differs from the header are kept as `RaggedRow`s for the mapper to report, never a crash, unless the
mapping says otherwise: `extra_cells = "ignore"` keeps the header's cells of a longer line (another
layout of the same export, its columns at the same places), `missing_cells = "blank"` pads a shorter
one with blank cells; both are counted per chunk. Lines holding
only whitespace, and rows whose cells are all empty, are skipped but still counted.

Two readers give the same rows: a fast one (a numpy scan of the raw bytes for record boundaries, then
pandas' C parser) for the common clean file, and the csv module for anything unusual (ragged rows,
stray quotes, lone carriage returns). Both read the export's bytes as they were when it was opened (or
snapshotted), from the header to the footer, never past them.
"""

from __future__ import annotations

import _csv
import codecs
import csv
import io
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, get_args

import numpy as np
import numpy.typing as npt

from .._errors import SourceError
from ._export import ExportBytes, open_export, reads_in_place, transcoded
from ._footer import footer_start
from ._scan import scan_records

if TYPE_CHECKING:  # pandas is imported in the functions that use it: loading this stage (status does) costs none
    import pandas as pd

__all__ = [
    "EXTRA_CELLS_CHOICES",
    "MISSING_CELLS_CHOICES",
    "CsvFormat",
    "ExtraCells",
    "MissingCells",
    "RaggedRow",
    "SourceChunk",
    "SourceFile",
    "open_source",
]

# What a line with more cells than the header is: a row problem, or the header's cells (the rest ignored).
ExtraCells = Literal["error", "ignore"]
EXTRA_CELLS_CHOICES: tuple[ExtraCells, ...] = get_args(ExtraCells)
# What a line with fewer cells than the header is: a row problem, or its cells padded with blanks.
MissingCells = Literal["error", "blank"]
MISSING_CELLS_CHOICES: tuple[MissingCells, ...] = get_args(MissingCells)

# Ends the csv module's input: a row ending in it means the file ended inside a quoted cell.
_END = "\ue000cws-pipeline: end of data\ue000"
# The csv module refuses cells over 128 KiB by default; a huge cell is a row problem, not a file error.
_CELL_LIMIT = (1 << 31) - 1


@dataclass(frozen=True)
class CsvFormat:
    """How to read the file: codec, one-character delimiter, physical line of the header row, the footer."""

    encoding: str = "utf-8"
    delimiter: str = ","
    header_line: int = 1
    footer_lines: int = 0  # non-blank lines at the end that are not rows (a trailer)
    footer_match: Callable[[str], bool] | None = None  # what a footer line looks like
    extra_cells: ExtraCells = "error"
    missing_cells: MissingCells = "error"


@dataclass(frozen=True)
class RaggedRow:
    """A row with more or fewer cells than the header."""

    line: int
    cells: tuple[str, ...]


@dataclass(frozen=True)
class SourceChunk:
    """Consecutive rows: a frame with integer column labels (header positions), their start lines, ragged rows,
    and how many lines had extra cells ignored or missing cells padded (as the mapping allows)."""

    frame: pd.DataFrame
    lines: npt.NDArray[np.int64]
    ragged: tuple[RaggedRow, ...]
    extra_cells: int = 0
    missing_cells: int = 0


@dataclass(frozen=True)
class SourceFile:
    """A bookings CSV whose header has been read and whose bytes all decode."""

    path: Path
    header: tuple[str, ...]
    csv_format: CsvFormat
    data_offset: int  # byte offset where the first data row starts
    data_line: int  # physical line of that byte
    data_end: int  # byte offset where the data ends (the footer, or the end of the file)
    fast_lines: npt.NDArray[np.int64] | None  # start line of every non-blank row, when the fast reader applies
    export: ExportBytes  # the bytes read (a snapshot, the file held open, or a UTF-8 copy)
    encoding: str  # the encoding of those bytes (utf-8 for a re-encoded copy)

    def data_reader(self) -> BinaryIO:
        """A reader of the data bytes: from the first row to the footer (or the end)."""
        return self.export.reader(self.data_offset, self.data_end)

    def chunks(self, chunk_rows: int) -> Iterator[SourceChunk]:
        """Yield the data rows in file order, CHUNK_ROWS at a time."""
        if self.fast_lines is not None:
            yield from self._fast_chunks(self.fast_lines, chunk_rows)
        else:
            yield from self._csv_chunks(chunk_rows)

    def _fast_chunks(self, lines: npt.NDArray[np.int64], chunk_rows: int) -> Iterator[SourceChunk]:
        import pandas as pd

        if len(lines) == 0:
            return
        width = len(self.header)
        done = 0
        with self.data_reader() as raw:
            reader = pd.read_csv(
                raw,
                header=None,
                names=list(range(width)),
                dtype=object,  # plain Python strings: pandas' str dtype costs time and nothing here needs it
                na_filter=False,
                sep=self.csv_format.delimiter,
                quotechar='"',
                doublequote=True,
                encoding=self.encoding,
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
        with self.data_reader() as raw:
            reader = _csv_reader(io.TextIOWrapper(raw, encoding=self.encoding, newline=""), self.csv_format)
            part = _Part(width, self.csv_format)
            ended = self.data_line - 1
            try:
                for row in reader:
                    start, ended = ended + 1, self.data_line - 1 + reader.line_num
                    if not any(cell.strip() for cell in row):
                        continue
                    part.add(start, row)
                    if part.size >= chunk_rows:
                        yield part.chunk()
                        part = _Part(width, self.csv_format)
            except csv.Error as exc:
                raise SourceError(f"{self.path}, line {ended + 1}: {exc}") from exc
            if part.size:
                yield part.chunk()


class _Part:
    """The rows of a chunk being read by the csv module: lines of the header's width (after any trimming or
    padding the mapping allows), and ragged ones."""

    def __init__(self, width: int, fmt: CsvFormat) -> None:
        self.width = width
        self.fmt = fmt
        self.rows: list[list[str]] = []
        self.lines: list[int] = []
        self.ragged: list[RaggedRow] = []
        self.extra = self.missing = 0

    @property
    def size(self) -> int:
        """How many rows, ragged ones included."""
        return len(self.rows) + len(self.ragged)

    def add(self, line: int, row: list[str]) -> None:
        """Take one non-blank row, starting on LINE."""
        width = self.width
        if len(row) > width and self.fmt.extra_cells == "ignore":
            row, self.extra = row[:width], self.extra + 1
        elif len(row) < width and self.fmt.missing_cells == "blank":
            row, self.missing = row + [""] * (width - len(row)), self.missing + 1
        if len(row) != width:
            self.ragged.append(RaggedRow(line, tuple(row)))
        else:
            self.rows.append(row)
            self.lines.append(line)

    def chunk(self) -> SourceChunk:
        """The rows taken, as a SourceChunk."""
        import pandas as pd

        rows, width = self.rows, self.width
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in range(width)]
        frame = pd.DataFrame({i: pd.Series(col, dtype="str") for i, col in enumerate(columns)}, index=range(len(rows)))
        lines = np.asarray(self.lines, dtype=np.int64)
        return SourceChunk(frame, lines, tuple(self.ragged), self.extra, self.missing)


def _drop_empty(chunk: SourceChunk) -> SourceChunk:
    """Drop rows whose cells are all empty (",,,," lines that spreadsheets leave behind)."""
    frame = chunk.frame
    empty = np.ones(len(frame), dtype=bool)
    for label in frame.columns:
        empty &= frame[label].to_numpy() == ""  # numpy's compare: pandas' costs 3x for the same answer
        if not empty.any():
            return chunk
    keep = ~empty
    return SourceChunk(frame[keep].reset_index(drop=True), chunk.lines[keep], chunk.ragged, chunk.extra_cells,
                       chunk.missing_cells)  # fmt: skip


def _csv_reader(lines: Iterator[str], fmt: CsvFormat) -> _csv.Reader:
    csv.field_size_limit(max(csv.field_size_limit(), _CELL_LIMIT))
    return csv.reader(lines, delimiter=fmt.delimiter, quotechar='"', doublequote=True)


def open_source(source: Path | str | ExportBytes, csv_format: CsvFormat) -> SourceFile:
    """Check the export (readable, decodes, has a header and any footer) and read its header; SourceError if not.

    SOURCE is a path (read in place, never past the size it has now) or bytes already read once (a Snapshot).
    """
    export = source if isinstance(source, ExportBytes) else open_export(source)
    encoding = csv_format.encoding
    if not reads_in_place(encoding):  # UTF-16, EBCDIC...: read a UTF-8 copy, so delimiters are plain bytes
        export, encoding = transcoded(export, encoding), "utf-8"
    path = export.path
    try:
        with export.reader() as raw:
            header, offset, data_line = _read_header(path, raw, csv_format, encoding)
        end = footer_start(export, encoding, offset, csv_format.footer_lines, csv_format.footer_match)
        with export.reader(0, end) as raw:
            scan = scan_records(path, raw, encoding, csv_format.delimiter, offset, data_line, len(header))
    except OSError as exc:
        raise SourceError(f"{path}: cannot read the bookings file ({exc.strerror or exc})") from exc
    source_file = SourceFile(path, header, csv_format, offset, data_line, end, scan.lines, export, encoding)
    if scan.ends_inside_quotes:
        _refuse_unclosed_quote(source_file)
    return source_file


def _decode(path: Path, data: bytes, encoding: str, line: int) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        at = line + data.count(b"\n", 0, exc.start)
        raise SourceError(
            f"{path}, line {at}: bytes that are not {encoding} ({exc.reason});"
            ' set [source] encoding in the mapping (e.g. "cp1252")'
        ) from exc


def _read_header(path: Path, raw: BinaryIO, fmt: CsvFormat, encoding: str) -> tuple[tuple[str, ...], int, int]:
    """Skip the preamble, parse the header record; return it with the data's byte offset and line."""
    first = raw.read(4)
    raw.seek(0)
    if not first:
        raise SourceError(f"{path}: the file is empty; expected a header row on line {fmt.header_line}")
    if codecs.lookup(encoding).name == "utf-8" and first.startswith(codecs.BOM_UTF8):
        raw.seek(len(codecs.BOM_UTF8))
    for _ in range(fmt.header_line - 1):
        if not raw.readline():
            raise SourceError(
                f"{path}: the file ends before line {fmt.header_line}, where [source] header_line says the header is"
            )
    line = fmt.header_line
    pieces: list[bytes] = []

    def physical_lines() -> Iterator[str]:
        while piece := raw.readline():
            pieces.append(piece)
            yield _decode(path, piece, encoding, line + len(pieces) - 1)

    # The csv module reads lines only until it has one record: the lines it took are the header's.
    record = next(_csv_reader(itertools.chain(physical_lines(), [_END]), fmt), [])
    if record and record[-1].endswith(_END) and record != [_END]:
        raise SourceError(f"{path}, line {line}: the header opens a quote that is never closed; fix the export")
    header = tuple(cell.strip() for cell in record) if record != [_END] else ()
    if not any(header):
        raise SourceError(f"{path}, line {line}: no header row there; set [source] header_line to the header's line")
    return header, raw.tell(), line + sum(piece.count(b"\n") for piece in pieces)


def _refuse_unclosed_quote(source: SourceFile) -> None:
    """SourceError naming the line where a quote opens that the file never closes (it would swallow every later row)."""
    with source.data_reader() as raw:
        lines = io.TextIOWrapper(raw, encoding=source.encoding, newline="")
        reader = _csv_reader(itertools.chain(lines, [_END]), source.csv_format)
        start, ended, last = source.data_line, source.data_line - 1, [_END]
        try:
            for row in reader:
                start, ended, last = ended + 1, source.data_line - 1 + reader.line_num, row
        except csv.Error as exc:
            raise SourceError(f"{source.path}, line {ended + 1}: {exc}") from exc
    if last == [_END] or not last[-1].endswith(_END):
        return
    opened = start + sum(cell.count("\n") for cell in last[:-1])
    raise SourceError(
        f"{source.path}, line {opened}: a quote opens a cell here and is never closed, so every later line"
        " would be read into that one cell; close or remove the quote in the export"
    )
