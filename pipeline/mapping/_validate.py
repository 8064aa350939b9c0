"""The dry run: map a bookings CSV, count valid, invalid, excluded and repeated rows, optionally write bodies and
rejects.

Both output files hold patient data, so they are created 0600, written beside their final name and
moved into place only when the whole file has been read: a file-level error leaves nothing behind.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .._errors import UserInputError
from .._private_files import check_output_path, neutralise_cell, open_private, spreadsheet_csv
from ._mapped_rows import MappedRow, RowProblem, map_csv_chunks
from ._mapping_file import Mapping

__all__ = ["ValidationReport", "validate_csv"]


@dataclass(frozen=True)
class ValidationReport:
    """What a dry run found: row counts and the first few problems."""

    rows: int
    valid: int
    invalid: int
    problems: tuple[RowProblem, ...]
    excluded: int = 0  # rows an [[exclude]] rule leaves out: neither valid nor invalid, never sent
    duplicates: int = 0  # rows repeating an earlier line's booking (same key, byte-identical body): sent once
    extra_cells: int = 0  # lines whose cells beyond the header's were ignored ([source] extra_cells = "ignore")
    missing_cells: int = 0  # lines padded with blank cells ([source] missing_cells = "blank")
    warnings: tuple[str, ...] = ()  # what the mapping may get wrong without being invalid (validate still passes)

    @property
    def all_valid(self) -> bool:
        """True when every row maps to a body."""
        return self.invalid == 0


def validate_csv(
    csv_path: Path | str,
    mapping: Mapping,
    *,
    bodies: Path | None = None,
    rejects: Path | None = None,
    max_problems: int = 10,
    chunk_rows: int = 20_000,
) -> ValidationReport:
    """Map every row of CSV_PATH; write valid bodies (one per line) and invalid rows if asked."""
    chunks = map_csv_chunks(csv_path, mapping, chunk_rows=chunk_rows)
    rows = valid = excluded = duplicates = extra = missing = 0
    problems: list[RowProblem] = []
    with _private_output(bodies) as body_out, _private_output(rejects) as reject_out:
        rejects_writer = _RejectsWriter(reject_out) if reject_out is not None else None
        for chunk in chunks:
            rows += chunk.size
            bad = chunk.invalid_rows() if chunk.problems or chunk.ragged else []
            excluded += chunk.excluded_count
            duplicates += chunk.duplicate_count
            extra, missing = extra + chunk.extra_cells, missing + chunk.missing_cells
            valid += chunk.size - len(bad) - chunk.excluded_count - chunk.duplicate_count
            if body_out is not None:
                body_out.write(chunk.valid_body_lines())
            if bad and len(problems) < max_problems:
                problems.extend(p for row in bad for p in row.problems)
                del problems[max_problems:]
            if rejects_writer is not None:
                rejects_writer.write(chunk.header, bad)
        if rejects_writer is not None:
            rejects_writer.close()
    invalid = rows - valid - excluded - duplicates
    return ValidationReport(rows, valid, invalid, tuple(problems), excluded, duplicates, extra, missing,
                            _mapping_warnings(mapping))  # fmt: skip


def _mapping_warnings(mapping: Mapping) -> tuple[str, ...]:
    """What a mapping may get wrong without being invalid: a key that names none of its booking fields."""
    if mapping.key_names_booking or not mapping.booking_identity:
        return ()
    key = ", ".join(f'"{k}"' for k in mapping.key_fields)
    return (
        f"{mapping.path}: [target] key = [{key}] names no booking field (no booking number, no booking date): a"
        " returning person comes back under the same key, told from a correction only by a changed booking number"
        ' or date; add the booking date to the key, e.g. key = ["external_id", "booking_date"]'
        ' (see docs/returning-patients.md, "Keys without a booking number")',
    )


class _RejectsWriter:
    """The invalid rows as CSV: their original columns, then `line` and `error`."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._header: tuple[str, ...] | None = None

    def _write(self, cells: list[str]) -> None:
        text = io.StringIO()
        spreadsheet_csv(text).writerow([neutralise_cell(c) for c in cells])
        self._out.write(text.getvalue().encode("utf-8"))

    def write(self, header: tuple[str, ...], rows: list[MappedRow]) -> None:
        """Write ROWS, after the header line if this is the first call."""
        if self._header is None:
            self._header = header
            self._write([*header, "line", "error"])
        for row in rows:
            cells = list(row.row[: len(header)]) + [""] * (len(header) - len(row.row))
            self._write([*cells, str(row.line), "; ".join(str(p) for p in row.problems)])

    def close(self) -> None:
        """Write the bare header when the file had no rows at all."""
        if self._header is None:
            self._write(["line", "error"])


@contextmanager
def _private_output(path: Path | None) -> Iterator[BinaryIO | None]:
    """A 0600 file written as PATH.partial and renamed to PATH only if the block succeeds."""
    if path is None:
        yield None
        return
    check_output_path(path)  # the rename below would replace a link at PATH: refuse it, as every output does
    partial = path.with_name(path.name + ".partial")
    try:
        fd = open_private(partial)
    except OSError as exc:
        raise UserInputError(f"{path}: cannot write there ({exc.strerror or exc})") from exc
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as out:
            yield out
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)
