"""Apply a mapping to a bookings CSV: per row, the exact body bytes to sign and send, or every problem found.

Work is vectorised per field over each chunk (see _fields); per row only the final JSON join and the row
object remain.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from .._errors import SourceError
from .._gc import cycle_collector_paused
from ..source import ExportBytes, RaggedRow, SourceChunk, SourceFile, open_source
from ._duplicate_keys import KeySeen, SeenKeys, body_hashes, key_hashes
from ._exclusions import excluded_rows
from ._field_spec import FieldSpec
from ._field_values import FieldMapper, escape_key_part, template_cells
from ._mapping_file import Mapping

if TYPE_CHECKING:  # annotations only: loading this stage (status does) loads no pandas
    import pandas as pd

__all__ = ["MappedChunk", "MappedRow", "RowProblem", "escape_key_part", "map_csv", "map_csv_chunks"]


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One thing wrong with one row; `value` is None when the field identifies a person (never printed)."""

    line: int
    field: str | None
    column: str | None
    value: str | None
    expected: str

    def __str__(self) -> str:
        if self.field is None:
            return f"line {self.line}: {self.expected}"
        where = f"line {self.line}: {self.field}" + (f" (column {self.column!r})" if self.column else "")
        if self.value is None:
            return f"{where}: value withheld (identifying field); expected {self.expected}"
        if not self.value.strip():
            return f"{where}: blank; expected {self.expected}"
        return f"{where}: {self.value!r} is not {self.expected}"


@dataclass(frozen=True, slots=True)
class MappedRow:
    """One data row of the file: its body when valid, its problems when not, its reason when excluded."""

    line: int
    key: str
    external_id: str | None
    body: bytes | None
    problems: tuple[RowProblem, ...]
    header: tuple[str, ...] = field(repr=False)  # column names, shared by the rows of a file
    row: tuple[str, ...] = field(repr=False)  # the original cells in header order (ragged rows: what was there)
    excluded: str | None = None  # why an [[exclude]] rule leaves the row out (it has no body and is never sent)
    # The earlier line with this key and the byte-identical body (a per-charge export repeats a booking once
    # per charge): one booking, delivered with that line; this row keeps its body but is never sent.
    duplicate_of: int | None = None

    @property
    def valid(self) -> bool:
        """True when the row maps to a body with no problems (an excluded row is not)."""
        return not self.problems and self.excluded is None

    @property
    def cells(self) -> dict[str, str]:
        """The original cells by column name; cells beyond the header of a ragged row are named #13, #14..."""
        names = self.header + tuple(f"#{i}" for i in range(len(self.header) + 1, len(self.row) + 1))
        return dict(zip(names, self.row, strict=False))


_ROW_SLOTS = tuple(
    getattr(MappedRow, name).__set__
    for name in ("line", "key", "external_id", "body", "problems", "header", "row", "excluded", "duplicate_of")
)


def _new_row(
    line: int,
    key: str,
    external_id: str | None,
    body: bytes | None,
    problems: tuple[RowProblem, ...],
    header: tuple[str, ...],
    row: tuple[str, ...],
) -> MappedRow:
    """MappedRow(...) without the frozen dataclass's per-field object.__setattr__ (0.85 → 0.59 µs a row)."""
    made: MappedRow = object.__new__(MappedRow)
    s_line, s_key, s_external_id, s_body, s_problems, s_header, s_row, s_excluded, s_duplicate_of = _ROW_SLOTS
    s_line(made, line)
    s_key(made, key)
    s_external_id(made, external_id)
    s_body(made, body)
    s_problems(made, problems)
    s_header(made, header)
    s_row(made, row)
    s_excluded(made, None)
    s_duplicate_of(made, None)
    return made


def map_csv(
    csv_path: Path | str | ExportBytes, mapping: Mapping, *, chunk_rows: int = 20_000
) -> Iterator[list[MappedRow]]:
    """Yield the mapped rows of CSV_PATH (or of a Snapshot of it) one chunk at a time, in file order.

    File-level problems (missing, empty, undecodable, columns missing from the header) raise
    SourceError before the iterator is returned.
    """
    source = open_source(csv_path, mapping.source)
    positions = _column_positions(source, mapping)
    return _map_chunks(source, mapping, positions, chunk_rows)


def _column_positions(source: SourceFile, mapping: Mapping) -> dict[str, int]:
    header = source.header
    missing = [c for c in mapping.columns if c not in header]
    if missing:
        # Never the header's own cells: when header_line is wrong (or the export has none) they are a
        # row of names and birth dates.
        raise SourceError(
            f"{source.path}, line {source.csv_format.header_line}: the header there ({len(header)} cells) lacks"
            f" {len(missing)} of the {len(mapping.columns)} columns {mapping.path} reads"
            f" ({', '.join(repr(c) for c in missing)}); check [source] header_line and that the export has a"
            " header row with those names"
        )
    twice = [c for c in mapping.columns if header.count(c) > 1]
    if twice:
        raise SourceError(f"{source.path}: column {twice[0]!r} appears more than once in the header; rename one")
    return {c: header.index(c) for c in mapping.columns}


def _map_chunks(
    source: SourceFile, mapping: Mapping, positions: dict[str, int], chunk_rows: int
) -> Iterator[list[MappedRow]]:
    for chunk in _mapped_chunks(source, mapping, positions, chunk_rows):
        with cycle_collector_paused():
            rows = chunk.rows()
        yield rows


def map_csv_chunks(
    csv_path: Path | str | ExportBytes, mapping: Mapping, *, chunk_rows: int = 20_000
) -> Iterator[MappedChunk]:
    """Like map_csv, but yield each chunk as columns: for callers that need no per-row objects (validate)."""
    source = open_source(csv_path, mapping.source)
    positions = _column_positions(source, mapping)
    return _mapped_chunks(source, mapping, positions, chunk_rows)


def _mapped_chunks(
    source: SourceFile, mapping: Mapping, positions: dict[str, int], chunk_rows: int
) -> Iterator[MappedChunk]:
    seen = SeenKeys()
    now = datetime.now()
    fields = {spec.name: FieldMapper(spec, mapping, now) for spec in mapping.fields}
    for chunk in source.chunks(chunk_rows):
        with cycle_collector_paused():
            mapped = _map_chunk(chunk, source.header, mapping, positions, fields, seen)
        yield mapped


@dataclass(frozen=True)
class MappedChunk:
    """Consecutive rows mapped, as columns; `rows()` turns them into MappedRows in file order."""

    header: tuple[str, ...]
    frame: pd.DataFrame  # the original cells of the rows with the header's width
    lines: npt.NDArray[np.int64]
    key_parts: tuple[list[str], ...]  # per key field, each row's escaped text ("" where it failed)
    key_incomplete: npt.NDArray[np.bool_]
    external_ids: list[str | None]
    body_lines: bytes  # every frame row's body, newline-joined; meaningless where `bad` is set
    bad: npt.NDArray[np.bool_]
    problems: dict[int, tuple[RowProblem, ...]]  # by frame row, for the bad ones
    ragged: tuple[RaggedRow, ...]
    excluded: npt.NDArray[np.bool_]  # rows an [[exclude]] rule leaves out (never bad)
    exclusions: dict[int, str]  # by frame row, the reason each excluded row is left out
    duplicates: dict[int, int] = field(default_factory=dict)  # by frame row: the earlier line of the same booking
    extra_cells: int = 0  # lines whose cells beyond the header's were ignored ([source] extra_cells = "ignore")
    missing_cells: int = 0  # lines padded with blank cells ([source] missing_cells = "blank")

    @property
    def size(self) -> int:
        """How many rows, ragged ones included."""
        return len(self.lines) + len(self.ragged)

    @property
    def excluded_count(self) -> int:
        """How many rows the [[exclude]] rules leave out."""
        return len(self.exclusions)

    @property
    def duplicate_count(self) -> int:
        """How many rows repeat an earlier line's booking (same key, byte-identical body)."""
        return len(self.duplicates)

    @cached_property
    def keys(self) -> list[str]:
        """Every frame row's key."""
        return _join_keys(self.key_parts, self.key_incomplete) if len(self.lines) else []

    @cached_property
    def bodies(self) -> list[bytes]:
        """Every frame row's body (meaningless where `bad` is set)."""
        return self.body_lines.split(b"\n") if len(self.lines) else []

    def valid_body_lines(self) -> bytes:
        """The bodies of the valid rows in file order (a repeated booking once), each followed by a newline."""
        if not len(self.lines):
            return b""
        if not self.bad.any() and not self.exclusions and not self.duplicates:
            return self.body_lines + b"\n"
        sent = ~self.bad & ~self.excluded
        sent[list(self.duplicates)] = False
        valid = [self.bodies[i] for i in np.flatnonzero(sent).tolist()]
        return b"".join(body + b"\n" for body in valid)

    def invalid_rows(self) -> list[MappedRow]:
        """The invalid rows, ragged ones included, in file order."""
        rows = [self._row(i) for i in np.flatnonzero(self.bad).tolist()]
        rows.extend(_ragged_row(r, self.header) for r in self.ragged)
        rows.sort(key=lambda r: r.line)
        return rows

    def rows(self) -> list[MappedRow]:
        """Every row, in file order."""
        n, frame = len(self.lines), self.frame
        cells = zip(*(frame[label].tolist() for label in frame.columns), strict=True) if n else iter(())
        header = [self.header] * n
        rows = list(
            map(_new_row, self.lines.tolist(), self.keys, self.external_ids, self.bodies, [()] * n, header, cells)
        )
        for i in np.flatnonzero(self.bad).tolist():
            old = rows[i]
            rows[i] = MappedRow(old.line, old.key, old.external_id, None, self.problems[i], self.header, old.row)
        for i, reason in self.exclusions.items():
            old = rows[i]
            rows[i] = MappedRow(old.line, old.key, old.external_id, None, (), self.header, old.row, reason)
        for i, first in self.duplicates.items():
            old = rows[i]
            rows[i] = MappedRow(old.line, old.key, old.external_id, old.body, (), self.header, old.row, None, first)
        if self.ragged:
            rows.extend(_ragged_row(r, self.header) for r in self.ragged)
            rows.sort(key=lambda r: r.line)
        return rows

    def _row(self, i: int) -> MappedRow:
        cells = tuple(str(self.frame[label].iat[i]) for label in self.frame.columns)
        line, key, external_id = int(self.lines[i]), self.keys[i], self.external_ids[i]
        return MappedRow(line, key, external_id, None, self.problems[i], self.header, cells)


def _field_cells(spec: FieldSpec, frame: pd.DataFrame, positions: dict[str, int]) -> pd.Series[str] | None:
    """The cells a field maps: its column, its template built from several, or None for a constant."""
    if spec.template:
        columns = [frame[positions[column]].to_numpy(dtype=object) for _, column in spec.template[:-1]]
        return template_cells(columns, [literal for literal, _ in spec.template])
    return None if spec.column is None else frame[positions[spec.column]]


def _map_chunk(
    chunk: SourceChunk,
    header: tuple[str, ...],
    mapping: Mapping,
    positions: dict[str, int],
    fields: dict[str, FieldMapper],
    seen: SeenKeys,
) -> MappedChunk:
    frame, lines = chunk.frame, chunk.lines
    n = len(frame)
    results = {name: mapper.map(_field_cells(mapper.spec, frame, positions), n) for name, mapper in fields.items()}
    excluded, exclusions = excluded_rows(mapping.exclude, frame, positions)
    bad = np.zeros(n, dtype=bool)
    for result in results.values():
        bad |= result.bad
    bad &= ~excluded  # a training record's problems are not problems: it is never sent
    key_parts = tuple(results[k].key_text or [] for k in mapping.key_fields)
    incomplete = np.zeros(n, dtype=bool)
    for k in mapping.key_fields:
        incomplete |= results[k].bad
    usable = ~incomplete & ~excluded
    body_lines = _bodies([r.fragments for r in results.values()], n)
    seen_before = seen.check(
        key_hashes(list(key_parts)) if n else np.zeros(0, np.int64), body_hashes(body_lines, bad), lines, usable
    )
    duplicates = {i: found.first_line for i, found in seen_before.items() if found.same_body}
    extra = _duplicate_problems(seen_before, key_parts, lines, mapping)
    bad[list(extra)] = True
    external = results.get("external_id")
    ext_text: list[str | None] = list(external.text) if external is not None else [None] * n
    if external is not None:
        for i in np.flatnonzero(external.bad).tolist():
            ext_text[i] = None
    specs = [(fields[name].spec, result) for name, result in results.items()]
    problems: dict[int, tuple[RowProblem, ...]] = {}
    for i in np.flatnonzero(bad).tolist():
        line = int(lines[i])
        found = [RowProblem(line, spec.name, spec.column, *r.problems[i]) for spec, r in specs if i in r.problems]
        problems[i] = (*found, extra[i]) if i in extra else tuple(found)
    return MappedChunk(
        header, frame, lines, key_parts, incomplete, ext_text, body_lines, bad, problems, chunk.ragged,
        excluded, exclusions, duplicates, chunk.extra_cells, chunk.missing_cells,
    )  # fmt: skip


def _duplicate_problems(
    seen_before: dict[int, KeySeen], key_parts: tuple[list[str], ...], lines: npt.NDArray[np.int64], mapping: Mapping
) -> dict[int, RowProblem]:
    """A problem for each row whose key an earlier line of the file used with another body (or none)."""
    key_names = "/".join(mapping.key_fields)
    extra: dict[int, RowProblem] = {}
    for i, (first, same_body) in seen_before.items():
        if same_body:
            continue
        key = "/".join(part[i] for part in key_parts)
        extra[i] = RowProblem(
            int(lines[i]), None, None, key,
            f"key {key!r} ({key_names}) was already used on line {first}, with a different body: a key names"
            f" one booking; correct line {first} or line {int(lines[i])}",
        )  # fmt: skip
    return extra


def _bodies(fragments: list[list[str]], n: int) -> bytes:
    """Every row's JSON object, newline-joined, from its fields' fragments.

    Fragments are '{"name":value' for the first field, ',"name":value' for the others, "" when left
    out. One join and one encode for the whole chunk: compact JSON never holds a raw newline.
    """
    if n == 0:
        return b""
    if all(fragments[0]):
        # Interleave the fragments and row ends into one list and join once: no per-row tuple or string.
        width = len(fragments) + 1
        flat = [""] * (n * width)
        for at, column in enumerate(fragments):
            flat[at::width] = column
        flat[width - 1 :: width] = ["}\n"] * n
        flat[-1] = "}"
        return "".join(flat).encode("utf-8")
    rows = ["".join(t) for t in zip(*fragments, strict=True)]
    return "\n".join(row + "}" if row.startswith("{") else "{" + row[1:] + "}" for row in rows).encode("utf-8")


def _join_keys(parts: tuple[list[str], ...], incomplete: npt.NDArray[np.bool_]) -> list[str]:
    """Each row's key: escaped parts joined with "/" ("" for a part that failed; "" if all failed)."""
    keys = parts[0] if len(parts) == 1 else ["/".join(t) for t in zip(*parts, strict=True)]
    for i in np.flatnonzero(incomplete).tolist():
        if not any(part[i] for part in parts):
            keys[i] = ""
    return keys


def _ragged_row(row: RaggedRow, header: tuple[str, ...]) -> MappedRow:
    problem = RowProblem(
        row.line, None, None, None, f"expected {len(header)} cells as in the header, found {len(row.cells)}"
    )
    return MappedRow(row.line, "", None, None, (problem,), header, row.cells)
