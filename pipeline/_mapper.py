"""Apply a mapping to a bookings CSV: per row, the exact body bytes to sign and send, or every problem found.

Work is vectorised per field over each chunk; per row only the final JSON join and the row object remain.
Order of application for a column field: transform → extract → blank? (default, or the required rule)
→ lookup → type conversion → checks.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from ._errors import SourceError
from ._mapping import FieldSpec, Mapping
from ._source import RaggedRow, SourceChunk, SourceFile, open_source

__all__ = ["MappedRow", "RowProblem", "escape_key_part", "map_csv"]

_encode_str: Any = getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring
_INTEGER = re.compile(r"[+-]?\d+")


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
            return f"{where}: the value (withheld: identifying field) is not {self.expected}"
        if not self.value.strip():
            return f"{where}: blank; expected {self.expected}"
        return f"{where}: {self.value!r} is not {self.expected}"


@dataclass(frozen=True, slots=True)
class MappedRow:
    """One data row of the file: its body when valid, its problems when not."""

    line: int
    key: str
    external_id: str | None
    body: bytes | None
    problems: tuple[RowProblem, ...]
    header: tuple[str, ...] = field(repr=False)  # column names, shared by the rows of a file
    row: tuple[str, ...] = field(repr=False)  # the original cells in header order (ragged rows: what was there)

    @property
    def valid(self) -> bool:
        """True when the row maps to a body with no problems."""
        return not self.problems

    @property
    def cells(self) -> dict[str, str]:
        """The original cells by column name; cells beyond the header of a ragged row are named #13, #14..."""
        names = self.header + tuple(f"#{i}" for i in range(len(self.header) + 1, len(self.row) + 1))
        return dict(zip(names, self.row, strict=False))


def escape_key_part(value: str) -> str:
    """Backslash-escape "\\" and "/" so key parts can be joined with "/"."""
    return value.replace("\\", "\\\\").replace("/", "\\/")


def map_csv(csv_path: Path | str, mapping: Mapping, *, chunk_rows: int = 50_000) -> Iterator[list[MappedRow]]:
    """Yield the mapped rows of CSV_PATH one chunk at a time, in file order.

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
        available = ", ".join(repr(h) for h in header)
        raise SourceError(
            f"{source.path}: column(s) {', '.join(repr(c) for c in missing)} named in {mapping.path}"
            f" are not in the header on line {source.csv_format.header_line}; available: {available}"
        )
    twice = [c for c in mapping.columns if header.count(c) > 1]
    if twice:
        raise SourceError(f"{source.path}: column {twice[0]!r} appears more than once in the header; rename one")
    return {c: header.index(c) for c in mapping.columns}


def _map_chunks(
    source: SourceFile, mapping: Mapping, positions: dict[str, int], chunk_rows: int
) -> Iterator[list[MappedRow]]:
    seen = _SeenKeys()
    now = datetime.now()
    for chunk in source.chunks(chunk_rows):
        yield _map_chunk(chunk, source.header, mapping, positions, seen, now)


@dataclass
class _FieldResult:
    """A field mapped over a chunk: per row its JSON fragment (',"name":value', "" when left out), text, problems."""

    fragments: list[str]
    text: list[str]
    key_text: list[str] | None  # text with "\\" and "/" escaped, for key fields
    bad: npt.NDArray[np.bool_]
    problems: dict[int, RowProblem]


def _map_chunk(
    chunk: SourceChunk,
    header: tuple[str, ...],
    mapping: Mapping,
    positions: dict[str, int],
    seen: _SeenKeys,
    now: datetime,
) -> list[MappedRow]:
    frame, lines = chunk.frame, chunk.lines
    n = len(frame)
    results = {
        spec.name: _map_field(spec, frame, positions, lines, mapping, now, spec.name in mapping.key_fields)
        for spec in mapping.fields
    }
    bad = np.zeros(n, dtype=bool)
    for result in results.values():
        bad |= result.bad
    keys, key_complete = _keys([results[k] for k in mapping.key_fields], n)
    duplicates = seen.check(keys, lines, key_complete)
    key_names = "/".join(mapping.key_fields)
    extra: dict[int, RowProblem] = {}
    for i, first in duplicates.items():
        bad[i] = True
        extra[i] = RowProblem(
            int(lines[i]), None, None, keys[i], f"key {keys[i]!r} ({key_names}) was already used on line {first}"
        )
    external = results.get("external_id")
    ext_text: list[str | None] = list(external.text) if external is not None else [None] * n
    if external is not None:
        for i in np.flatnonzero(external.bad).tolist():
            ext_text[i] = None
    bodies = [("{" + "".join(t)[1:] + "}").encode() for t in zip(*(r.fragments for r in results.values()), strict=True)]
    cells = zip(*(frame[label].tolist() for label in frame.columns), strict=True) if n else iter(())
    rows = list(map(MappedRow, lines.tolist(), keys, ext_text, bodies, [()] * n, [header] * n, cells))
    for i in np.flatnonzero(bad).tolist():
        problems = [r.problems[i] for r in results.values() if i in r.problems]
        if i in extra:
            problems.append(extra[i])
        old = rows[i]
        rows[i] = MappedRow(old.line, old.key, old.external_id, None, tuple(problems), header, old.row)
    if chunk.ragged:
        rows.extend(_ragged_row(r, header) for r in chunk.ragged)
        rows.sort(key=lambda r: r.line)
    return rows


def _keys(parts: list[_FieldResult], n: int) -> tuple[list[str], npt.NDArray[np.bool_]]:
    """Each row's key, and whether every part of it could be computed."""
    incomplete = np.zeros(n, dtype=bool)
    texts: list[list[str]] = []
    for part in parts:
        incomplete |= part.bad
        assert part.key_text is not None
        texts.append(part.key_text)
    keys = texts[0] if len(texts) == 1 else ["/".join(t) for t in zip(*texts, strict=True)]
    for i in np.flatnonzero(incomplete).tolist():
        pieces = [escape_key_part(p.text[i]) if not p.bad[i] else "" for p in parts]
        keys[i] = "/".join(pieces) if any(pieces) else ""
    return keys, ~incomplete


def _ragged_row(row: RaggedRow, header: tuple[str, ...]) -> MappedRow:
    problem = RowProblem(
        row.line, None, None, None, f"expected {len(header)} cells as in the header, found {len(row.cells)}"
    )
    return MappedRow(row.line, "", None, None, (problem,), header, row.cells)


def _map_field(
    spec: FieldSpec,
    frame: pd.DataFrame,
    positions: dict[str, int],
    lines: npt.NDArray[np.int64],
    mapping: Mapping,
    now: datetime,
    is_key: bool,
) -> _FieldResult:
    """Map one field over a chunk; the work is done once per distinct cell value, then spread by code."""
    n = len(frame)
    prefix = "," + json.dumps(spec.name, ensure_ascii=False) + ":"
    if spec.column is None:
        text = str(spec.value)
        fragment = prefix + json.dumps(spec.value, ensure_ascii=False)
        key_text = [escape_key_part(text)] * n if is_key else None
        return _FieldResult([fragment] * n, [text] * n, key_text, np.zeros(n, dtype=bool), {})
    original = frame[positions[spec.column]].to_numpy(dtype=object)
    codes, uniques = pd.factorize(original)
    mapped = _map_values(spec, [str(u) for u in uniques], prefix, mapping.datetime_format, now)
    fragments = np.asarray(mapped.fragments, dtype=object)[codes].tolist()
    text = np.asarray(mapped.text, dtype=object)[codes].tolist()
    key_text = None
    if is_key:
        key_text = np.asarray([escape_key_part(t) for t in mapped.text], dtype=object)[codes].tolist()
    bad = mapped.bad[codes]
    problems: dict[int, RowProblem] = {}
    for i in np.flatnonzero(bad).tolist():
        cell = str(original[i])
        value = None if spec.sensitive and cell.strip() else cell
        problems[i] = RowProblem(int(lines[i]), spec.name, spec.column, value, mapped.expected[codes[i]])
    return _FieldResult(fragments, text, key_text, bad, problems)


@dataclass
class _MappedValues:
    """A field mapped over distinct cell values: fragment, key text, whether bad, and what was expected."""

    fragments: list[str]
    text: list[str]
    bad: npt.NDArray[np.bool_]
    expected: dict[int, str]


def _map_values(spec: FieldSpec, cells: list[str], prefix: str, dt_format: str, now: datetime) -> _MappedValues:
    n = len(cells)
    values = cells
    for t in spec.transform:
        values = _TRANSFORMS[t](values)
    if spec.extract is not None:
        rx = spec.extract
        group: int | str = "value" if "value" in rx.groupindex else 0
        values = [(m.group(group) or "") if (m := rx.search(v)) else "" for v in values]
    fragments: list[str] = [""] * n
    text: list[str] = [""] * n
    bad = np.zeros(n, dtype=bool)
    expected: dict[int, str] = {}
    default_fragment = prefix + json.dumps(spec.default, ensure_ascii=False)
    todo: list[int] = []
    for i, v in enumerate(values):
        if v.strip():
            todo.append(i)
        elif spec.default is not None:
            fragments[i], text[i] = default_fragment, str(spec.default)
        elif spec.required:
            bad[i], expected[i] = True, "a value (the field is required)"
    if spec.lookup is not None:
        table = {k: str(v) for k, v in spec.lookup.items()}
        kept: list[int] = []
        looked = list(values)
        for i in todo:
            found = table.get(values[i])
            if found is not None:
                looked[i] = found
                kept.append(i)
            elif spec.lookup_fallback == "keep":
                kept.append(i)
            elif spec.lookup_fallback == "default":
                fragments[i], text[i] = default_fragment, str(spec.default)
            else:
                bad[i], expected[i] = True, f"one of {', '.join(spec.lookup)}"
        todo, values = kept, looked
    if not todo:
        return _MappedValues(fragments, text, bad, expected)
    converted = _CONVERT[spec.type](spec, [values[i] for i in todo], dt_format, now)
    for i, problem, value_text, json_text in zip(todo, converted.problems, converted.text, converted.json, strict=True):
        if problem is None:
            fragments[i], text[i] = prefix + json_text, value_text
        else:
            bad[i], expected[i] = True, problem
    return _MappedValues(fragments, text, bad, expected)


@dataclass
class _Converted:
    """Values converted to their type: per value, None or what was expected, the key text and the JSON text."""

    problems: list[str | None]
    text: list[str]
    json: list[str]


def _to_string(spec: FieldSpec, values: list[str], dt_format: str, now: datetime) -> _Converted:
    problems: list[str | None] = [None] * len(values)
    if spec.max_length is not None or spec.min_length:
        high = spec.max_length if spec.max_length is not None else math.inf
        for i, v in enumerate(values):
            if len(v) > high:
                problems[i] = f"at most {spec.max_length} characters (found {len(v)})"
            elif len(v) < spec.min_length:
                problems[i] = f"at least {spec.min_length} character(s)"
    return _Converted(problems, values, list(map(_encode_str, values)))


def _to_integer(spec: FieldSpec, values: list[str], dt_format: str, now: datetime) -> _Converted:
    texts = [str(int(v)) if _INTEGER.fullmatch(v.strip()) else "" for v in values]
    problems: list[str | None] = [None if t else "a whole number" for t in texts]
    return _Converted(problems, texts, texts)


def _to_number(spec: FieldSpec, values: list[str], dt_format: str, now: datetime) -> _Converted:
    texts: list[str] = []
    for v in values:
        try:
            number = float(v)
        except ValueError:
            number = math.nan
        texts.append(repr(number) if math.isfinite(number) else "")
    problems: list[str | None] = [None if t else "a number" for t in texts]
    return _Converted(problems, texts, texts)


def _to_datetime(spec: FieldSpec, values: list[str], dt_format: str, now: datetime) -> _Converted:
    cells = pd.Series([v.strip() for v in values], dtype=object)
    parsed = pd.Series(pd.NaT, index=cells.index, dtype="datetime64[us]")
    for fmt in spec.formats:
        missing = parsed.isna()
        if not missing.any():
            break
        attempt = pd.to_datetime(cells[missing], format=fmt, errors="coerce").astype("datetime64[us]")
        if "%y" in fmt and spec.two_digit_year == "past":
            future_year = attempt.dt.year > now.year
            if future_year.any():
                attempt = attempt.where(~future_year, attempt - pd.DateOffset(years=100))
        parsed = parsed.where(~missing, attempt)
    expected = f"a date in {' or '.join(spec.formats)}"
    problems: list[str | None] = [None if ok else expected for ok in parsed.notna().tolist()]
    if spec.not_future:
        for i in np.flatnonzero((parsed > pd.Timestamp(now)).to_numpy(dtype=bool)).tolist():
            problems[i] = "a date not in the future"
    good = [i for i, p in enumerate(problems) if p is None]
    texts = [""] * len(values)
    for i, t in zip(good, _format_datetimes(parsed.to_numpy()[good], dt_format), strict=True):
        texts[i] = t
    return _Converted(problems, texts, list(map(_encode_str, texts)))


# Formats numpy writes itself (ISO 8601 at a unit), far faster than strftime per value.
_ISO_FORMATS: dict[str, Literal["ms", "s", "D"]] = {
    "%Y-%m-%d %H:%M:%S.%f": "ms",
    "%Y-%m-%dT%H:%M:%S.%f": "ms",
    "%Y-%m-%d %H:%M:%S": "s",
    "%Y-%m-%dT%H:%M:%S": "s",
    "%Y-%m-%d": "D",
}


def _format_datetimes(stamps: npt.NDArray[np.datetime64], fmt: str) -> list[str]:
    """Format dates in FMT, %f written as milliseconds (CWS: 2000-04-12 10:00:00.000)."""
    unit = _ISO_FORMATS.get(fmt)
    if unit is not None:
        iso: list[str] = np.datetime_as_string(stamps, unit=unit).tolist()
        return [t.replace("T", " ") for t in iso] if "T" not in fmt else iso
    out: list[str] = []
    for stamp in stamps.astype("datetime64[us]").tolist():
        out.append(stamp.strftime(fmt.replace("%f", f"{stamp.microsecond // 1000:03d}")))
    return out


_WHITESPACE = re.compile(r"\s+")
_NON_DIGITS = re.compile(r"\D+")
_TRANSFORMS: dict[str, Callable[[list[str]], list[str]]] = {
    "strip": lambda vs: list(map(str.strip, vs)),
    "upper": lambda vs: list(map(str.upper, vs)),
    "lower": lambda vs: list(map(str.lower, vs)),
    "title": lambda vs: list(map(str.title, vs)),
    "collapse_spaces": lambda vs: [_WHITESPACE.sub(" ", v) for v in vs],
    "digits": lambda vs: [_NON_DIGITS.sub("", v) for v in vs],
}
_CONVERT: dict[str, Callable[[FieldSpec, list[str], str, datetime], _Converted]] = {
    "string": _to_string,
    "integer": _to_integer,
    "number": _to_number,
    "datetime": _to_datetime,
}


class _SeenKeys:
    """The keys already seen in this file, as 8-byte hashes with the line where each first appeared."""

    def __init__(self) -> None:
        self._runs: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]] = []

    def check(self, keys: list[str], lines: npt.NDArray[np.int64], usable: npt.NDArray[np.bool_]) -> dict[int, int]:
        """Record the usable KEYS; return {row index: first line} for those already seen."""
        idx = np.flatnonzero(usable)
        if len(idx) == 0:
            return {}
        hashes = np.fromiter((hash(keys[i]) for i in idx.tolist()), dtype=np.int64, count=len(idx))
        row_lines = lines[idx]
        order = np.argsort(hashes, kind="stable")
        sorted_h, sorted_lines, sorted_idx = hashes[order], row_lines[order], idx[order]
        first_in_run = np.ones(len(sorted_h), dtype=bool)
        first_in_run[1:] = sorted_h[1:] != sorted_h[:-1]
        result: dict[int, int] = {}
        starts = np.flatnonzero(first_in_run)
        run_of = np.cumsum(first_in_run) - 1
        for j in np.flatnonzero(~first_in_run).tolist():
            result[int(sorted_idx[j])] = int(sorted_lines[starts[run_of[j]]])
        new_h, new_lines = sorted_h[first_in_run], sorted_lines[first_in_run]
        fresh = np.ones(len(new_h), dtype=bool)
        for run_h, run_lines in self._runs:
            if len(run_h) == 0:
                continue
            pos = np.searchsorted(run_h, new_h).clip(0, len(run_h) - 1)
            hit = run_h[pos] == new_h
            if hit.any():
                for j in np.flatnonzero(hit).tolist():
                    fresh[j] = False
                    first_line = int(run_lines[pos[j]])
                    block = slice(starts[j], starts[j + 1] if j + 1 < len(starts) else len(sorted_h))
                    for k in sorted_idx[block].tolist():
                        result[int(k)] = first_line
        self._runs.append((new_h[fresh], new_lines[fresh]))
        if len(self._runs) > 8:
            all_h = np.concatenate([h for h, _ in self._runs])
            all_lines = np.concatenate([ln for _, ln in self._runs])
            order = np.argsort(all_h, kind="stable")
            self._runs = [(all_h[order], all_lines[order])]
        return result
