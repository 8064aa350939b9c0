"""Footer lines: a trailer record (`TRAILER;12`, `Total records: 12`) at the end of an export, which is not a row.

The footer is found from the end of the file, line by physical line; blank lines at the very end are not
counted. With a count, exactly that many lines are the footer; with a pattern, the trailing lines that
match it; with both, exactly that many, each of which must match (a missing trailer means the export
may be incomplete, and the file is refused).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from .._errors import SourceError
from ._export import ExportBytes

__all__ = ["footer_start"]

_TAIL_BLOCK = 1 << 16


def _lines_backwards(export: ExportBytes, lower: int) -> Iterator[tuple[int, bytes]]:
    """(start offset, bytes without the line end) of each physical line after LOWER, last line first."""
    end = export.size
    pending = b""  # the part of a line read so far (its end), before the block that holds its start
    with export.reader(lower, end) as raw:
        position = end
        while position > lower:
            size = min(_TAIL_BLOCK, position - lower)
            position -= size
            raw.seek(position - lower)
            block = raw.read(size) + pending
            pieces = block.split(b"\n")
            pending = pieces[0]
            at = position + len(block)
            for piece in reversed(pieces[1:]):
                at -= len(piece) + 1
                yield at + 1, piece.rstrip(b"\r")
        if pending:
            yield lower, pending.rstrip(b"\r")


def _line_number(export: ExportBytes, offset: int) -> int:
    """The physical line that starts at byte OFFSET."""
    with export.reader(0, offset) as raw:
        return 1 + sum(block.count(b"\n") for block in iter(lambda: raw.read(1 << 20), b""))


def footer_start(
    export: ExportBytes, encoding: str, data_offset: int, count: int, match: Callable[[str], bool] | None
) -> int:
    """The byte offset where the footer begins (the data's end); SourceError when it is not as described."""
    end = export.size
    if count == 0 and match is None:
        return end
    taken = 0
    for start, line in _lines_backwards(export, data_offset):
        if not line.strip():
            continue
        if count and taken == count:
            break
        if match is not None and not match(line.decode(encoding, "replace")):
            if not count:
                break
            at = _line_number(export, start)
            raise SourceError(
                f"{export.path}, line {at}: not the footer that [source] footer_match describes;"
                " the export may be incomplete (or footer_lines is too large)"
            )
        end, taken = start, taken + 1
    if taken < count:
        raise SourceError(
            f"{export.path}: [source] footer_lines = {count}, but only {taken} non-blank line(s) follow the header;"
            " the export may be incomplete"
        )
    return end
