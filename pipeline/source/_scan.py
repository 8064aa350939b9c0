"""One pass over an export's data bytes: check they decode, and find where each record starts, with numpy.

For the common clean file (every quote opens or closes a quoted cell, CRLF or LF line ends, every record
as wide as the header) the pass yields each non-blank record's start line, which lets pandas' C parser
read the rows while we still know their physical lines. Anything unusual sends the file to the csv
module instead, which reports ragged rows one by one.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from .._errors import SourceError

__all__ = ["Scan", "scan_records"]

_BLOCK = 1 << 23


@dataclass(frozen=True)
class Scan:
    """What the pass found: the start line of every non-blank record (None: use the csv reader), and quotes."""

    lines: npt.NDArray[np.int64] | None
    ends_inside_quotes: bool  # a quote may be left open at the end (the csv reader must say where)


def _undecodable(path: Path, encoding: str, line: int, exc: UnicodeDecodeError) -> SourceError:
    return SourceError(
        f"{path}, line {line}: bytes that are not {encoding} ({exc.reason});"
        ' set [source] encoding in the mapping (e.g. "cp1252")'
    )


class _Records:
    """Record boundaries found block by block: quote parity, delimiters counted per record, start lines."""

    def __init__(self, delimiter: str, offset: int, data_line: int, fast: bool) -> None:
        self.fast = fast
        self.quote, self.delim = ord('"'), ord(delimiter) if fast else 0
        self.starts: list[npt.NDArray[np.int64]] = []  # byte positions where records start
        self.lines: list[npt.NDArray[np.int64]] = []
        self.fields: list[npt.NDArray[np.int64]] = []
        self.newlines = data_line - 1  # newlines before the current block
        self.quotes = 0  # quote characters before the current block (parity says whether we are inside quotes)
        self.delims = 0
        self.record_start, self.record_line, self.record_delims = offset, data_line, 0
        self.previous = ord("\n")  # the byte before the block
        self.pos = offset

    def feed(self, block: bytes) -> None:
        """Account for the next block of bytes."""
        if self.fast:
            self._feed_fast(np.frombuffer(block, dtype=np.uint8))
        else:
            self.newlines += block.count(b"\n")
            self.quotes += block.count(b'"')
        self.pos += len(block)

    def _feed_fast(self, a: npt.NDArray[np.uint8]) -> None:
        quote, delim = self.quote, self.delim
        special = np.flatnonzero((a == quote) | (a == delim) | (a == 10) | (a == 13))
        kinds = a[special]
        is_quote = kinds == quote
        # Parity is all that matters, so a wrapping uint8 running count is enough (and 8x less memory).
        quotes_before = np.cumsum(is_quote, dtype=np.uint8) - is_quote + np.uint8(self.quotes & 1)
        outside = (quotes_before & 1) == 0
        opening = is_quote & outside
        if opening.any():
            opened = special[opening]
            before = np.where(opened > 0, a[np.maximum(opened - 1, 0)], self.previous)
            if not np.isin(before, (delim, 10, quote)).all():  # "" inside quotes reopens
                self.fast = False
        crs = special[kinds == 13]
        if len(crs):
            nxt = crs + 1
            inside_block = nxt < len(a)
            if not (a[nxt[inside_block]] == 10).all() or not inside_block.all():
                self.fast = False  # a lone CR, or one at a block edge: let the csv module decide
        is_nl = kinds == 10
        delims_through = np.cumsum((kinds == delim) & outside, dtype=np.int32)  # < 2**31 special bytes a block
        ends = is_nl & outside
        if ends.any():
            self._add_records(special, ends, is_nl, outside, delims_through)
        self.quotes += int(is_quote.sum())
        self.delims += int(delims_through[-1]) if len(delims_through) else 0
        self.newlines += int(is_nl.sum())
        self.previous = int(a[-1])

    def _add_records(
        self,
        special: npt.NDArray[np.intp],
        ends: npt.NDArray[np.bool_],
        is_nl: npt.NDArray[np.bool_],
        outside: npt.NDArray[np.bool_],
        delims_through: npt.NDArray[np.int32],
    ) -> None:
        end_at = np.flatnonzero(ends)
        end_pos = special[end_at] + self.pos
        end_lines = np.flatnonzero(outside[is_nl]) + 1 + self.newlines  # rank among the block's newlines
        end_delims = delims_through[end_at].astype(np.int64) + self.delims
        self.starts.append(np.concatenate(([self.record_start], end_pos[:-1] + 1)))
        self.lines.append(np.concatenate(([self.record_line], end_lines[:-1] + 1)))
        self.fields.append(np.diff(np.concatenate(([self.record_delims], end_delims))) + 1)
        self.record_start, self.record_line = int(end_pos[-1]) + 1, int(end_lines[-1]) + 1
        self.record_delims = int(end_delims[-1])

    def finish(self, raw: BinaryIO, width: int) -> npt.NDArray[np.int64] | None:
        """Each non-blank record's start line, or None when the csv reader must read the file."""
        if not self.fast or self.quotes % 2:
            return None
        if self.pos > self.record_start:  # a last record without a newline
            self.starts.append(np.array([self.record_start], dtype=np.int64))
            self.lines.append(np.array([self.record_line], dtype=np.int64))
            self.fields.append(np.array([self.delims - self.record_delims + 1], dtype=np.int64))
        if not self.starts:
            return np.zeros(0, dtype=np.int64)
        starts, lines, fields = np.concatenate(self.starts), np.concatenate(self.lines), np.concatenate(self.fields)
        blank = np.zeros(len(starts), dtype=bool)
        for i in np.flatnonzero(fields == 1):  # records without a delimiter: blank lines, or one-column files
            raw.seek(int(starts[i]))
            text = raw.readline()
            if not text.strip():
                if text not in (b"\n", b"\r\n", b""):
                    return None  # whitespace-only lines: pandas and csv disagree, let the csv reader decide
                blank[i] = True
        if (fields[~blank] != width).any():
            return None  # ragged rows: the csv reader reports them one by one
        return lines[~blank]


def scan_records(
    path: Path, raw: BinaryIO, encoding: str, delimiter: str, offset: int, data_line: int, width: int
) -> Scan:
    """Decode-check RAW's bytes from OFFSET (line DATA_LINE) to its end, and find the records; RAW reads the file."""
    fast = _is_ascii_compatible(encoding) and delimiter not in '"\n\r '
    decoder = codecs.getincrementaldecoder(encoding)()
    records = _Records(delimiter, offset, data_line, fast)
    raw.seek(offset)
    while block := raw.read(_BLOCK):
        try:
            decoder.decode(block)
        except UnicodeDecodeError as exc:
            at = records.newlines + 1 + block.count(b"\n", 0, max(exc.start, 0))
            raise _undecodable(path, encoding, at, exc) from exc
        records.feed(block)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        line = records.newlines + 1
        raise SourceError(f"{path}, line {line}: the file ends inside a {encoding} character") from exc
    lines = records.finish(raw, width)
    return Scan(lines, records.quotes > 0 and (lines is None))


def _is_ascii_compatible(encoding: str) -> bool:
    try:
        return ',;|\t\n\r" '.encode(encoding) == b',;|\t\n\r" '
    except (UnicodeError, LookupError):
        return False
