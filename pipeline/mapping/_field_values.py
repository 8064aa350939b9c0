"""Map one field over a chunk's cells: the JSON fragment, text and problems for each row.

Order of application for a column (or template) field: transform → extract → blank_values → blank?
(default, or the required rule) → lookup → type conversion → checks. The work is done once per distinct
cell value, and kept across chunks for fields with few distinct values.
"""

from __future__ import annotations

import importlib
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..protocol import PATH_SEGMENT_RULE, unsafe_path_segments
from ._dates import ISO_FORMATS, format_datetimes, parse_dates
from ._field_spec import FieldSpec, control_character
from ._mapping_file import Mapping

if TYPE_CHECKING:  # pandas is imported in the functions that use it: loading this stage (status does) costs none
    import pandas as pd

__all__ = ["FieldMapper", "FieldResult", "escape_key_part", "template_cells"]

_encode_str: Any = getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring
_INTEGER = re.compile(r"[+-]?\d+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SHOWN = 60  # characters of a bad value a problem shows (a 50 MB cell is not printed whole)
_LISTED = 12  # lookup values a problem lists before it only counts them


def template_cells(columns: list[npt.NDArray[Any]], literals: list[str]) -> pd.Series[str]:
    """A template field's cells: LITERALS[0] + COLUMNS[0] + LITERALS[1] + ...; "" where every column is blank."""
    import pandas as pd

    n = len(columns[0])
    built = np.full(n, literals[0], dtype=object)
    blank = np.ones(n, dtype=bool)
    for column, literal in zip(columns, literals[1:], strict=True):
        built = built + column + literal
        blank &= np.fromiter((not cell.strip() for cell in column), dtype=bool, count=n)
    built[blank] = ""
    return pd.Series(built, dtype=object)


def escape_key_part(value: str) -> str:
    """Backslash-escape "\\" and "/" so key parts can be joined with "/"."""
    if "/" not in value and "\\" not in value:
        return value
    return value.replace("\\", "\\\\").replace("/", "\\/")


def _escape_key_parts(values: list[str]) -> list[str]:
    joined = "".join(values)
    if "/" not in joined and "\\" not in joined:
        return values
    return [escape_key_part(v) for v in values]


@dataclass
class FieldResult:
    """A field mapped over a chunk: per row its JSON fragment (',"name":value', "" when left out), text, problems."""

    fragments: list[str]
    text: list[str]  # only for fields whose text is used (keys, external_id); empty or blank for the others
    key_text: list[str] | None  # text with "\\" and "/" escaped, for key fields
    bad: npt.NDArray[np.bool_]
    problems: dict[int, tuple[str | None, str]]  # by bad row: its cell (None if identifying) and what was expected


class FieldMapper:
    """Maps one field chunk after chunk, doing the work once per distinct cell value.

    For a field with few distinct values (sex, facility, birth dates) the results are kept across
    chunks; a field whose values are nearly all distinct (IDs) is mapped value by value instead.
    """

    _MEMO_LIMIT = 200_000

    def __init__(self, spec: FieldSpec, mapping: Mapping, now: datetime) -> None:
        self.spec = spec
        self.is_key = spec.name in mapping.key_fields
        self.needs_text = self.is_key or spec.name == "external_id"
        # The first field opens the object; the others follow a comma. (An omitted field adds nothing.)
        opener = "{" if spec.name == mapping.fields[0].name else ","
        self.prefix = opener + json.dumps(spec.name, ensure_ascii=False) + ":"
        self.output = _Output(self.prefix, mapping.datetime_format, now, self.needs_text)
        self.distinct: bool | None = None  # decided on the first sizeable chunk
        self.memo = _Memo()

    def map(self, column: pd.Series[str] | None, n: int) -> FieldResult:
        """Map the field over one chunk's column of N rows (None for a constant)."""
        import pandas as pd

        spec = self.spec
        if column is None:
            constant = str(spec.value)
            fragment = self.prefix + json.dumps(spec.value, ensure_ascii=False)
            key_parts = [escape_key_part(constant)] * n if self.is_key else None
            return FieldResult([fragment] * n, [constant] * n, key_parts, np.zeros(n, dtype=bool), {})
        original = column.to_numpy(dtype=object)
        if self.distinct:
            cells = original.tolist()
            mapped = _map_values(spec, cells, self.output)
            escaped = _escape_key_parts(mapped.text) if self.is_key else None
            return self._result(mapped.fragments, mapped.text, escaped, mapped.bad, mapped.expected, None, cells)
        if self.distinct is None and n >= 1000:
            self.distinct = len(pd.unique(original)) > n * 0.9
            if self.distinct:
                return self.map(column, n)
        if len(self.memo) > self._MEMO_LIMIT:
            self.memo = _Memo()
        memo = self.memo
        rows = memo.find(original, lambda new: _map_values(spec, new, self.output))
        fragments: list[str] = memo.fragments[rows].tolist()
        text: list[str] = memo.text[rows].tolist() if self.needs_text else []
        key_text: list[str] | None = memo.key_text[rows].tolist() if self.is_key else None
        return self._result(fragments, text, key_text, memo.bad[rows], memo.expected, rows, original)

    def _result(
        self,
        fragments: list[str],
        text: list[str],
        key_text: list[str] | None,
        bad: npt.NDArray[np.bool_],
        expected: dict[int, str],
        codes: npt.NDArray[np.intp] | None,
        original: Sequence[object] | npt.NDArray[Any],
    ) -> FieldResult:
        spec = self.spec
        problems: dict[int, tuple[str | None, str]] = {}
        for i in np.flatnonzero(bad).tolist():
            cell = str(original[i])
            if len(cell) > _SHOWN:
                cell = f"{cell[:_SHOWN]}... ({len(cell)} characters)"
            value = None if spec.sensitive and cell.strip() else cell
            why = expected[int(codes[i]) if codes is not None else i]
            problems[i] = (value, why)
        return FieldResult(fragments, text, key_text, bad, problems)


class _Memo:
    """A field's results for the distinct cell values seen so far, in growable numpy arrays."""

    def __init__(self) -> None:
        # pandas' own hash table of Python objects: C-speed lookups that can grow between chunks, which neither
        # pd.factorize nor a dict of fresh strings gives (measured: 0.8 s → 0.1 s for 1,000,000 birth dates).
        self.index: Any = importlib.import_module("pandas._libs.hashtable").PyObjectHashTable()
        self.size = 0
        self.fragments = np.empty(0, dtype=object)
        self.text = np.empty(0, dtype=object)
        self.key_text = np.empty(0, dtype=object)
        self.bad = np.zeros(0, dtype=bool)
        self.expected: dict[int, str] = {}

    def __len__(self) -> int:
        return self.size

    def find(self, cells: npt.NDArray[Any], map_new: Callable[[list[str]], _MappedValues]) -> npt.NDArray[np.intp]:
        """Where each of CELLS is in the arrays, mapping with MAP_NEW the values not seen before."""
        import pandas as pd

        at: npt.NDArray[np.intp] = self.index.lookup(cells)
        missing = at < 0
        if missing.any():
            new: list[str] = pd.unique(cells[missing]).tolist()
            mapped = map_new(new)
            base, k = self.size, len(new)
            self._reserve(base + k)
            self.fragments[base : base + k] = mapped.fragments
            self.text[base : base + k] = mapped.text
            self.key_text[base : base + k] = _escape_key_parts(mapped.text)
            self.bad[base : base + k] = mapped.bad
            self.expected.update({base + j: e for j, e in mapped.expected.items()})
            for j, value in enumerate(new):
                self.index.set_item(value, base + j)
            self.size = base + k
            at[missing] = self.index.lookup(cells[missing])
        return at

    def _reserve(self, size: int) -> None:
        if size <= len(self.fragments):
            return
        capacity = max(size, 2 * len(self.fragments), 1024)
        for name in ("fragments", "text", "key_text"):
            grown = np.empty(capacity, dtype=object)
            grown[: self.size] = getattr(self, name)[: self.size]
            setattr(self, name, grown)
        bad = np.zeros(capacity, dtype=bool)
        bad[: self.size] = self.bad[: self.size]
        self.bad = bad


@dataclass(frozen=True)
class _Output:
    """What a field's values are turned into: its fragment prefix, the datetime format, now, whether text is used."""

    prefix: str
    dt_format: str
    now: datetime
    wants_text: bool


@dataclass
class _MappedValues:
    """A field mapped over distinct cell values: fragment, key text, whether bad, and what was expected."""

    fragments: list[str]
    text: list[str]
    bad: npt.NDArray[np.bool_]
    expected: dict[int, str]


def _prepared(spec: FieldSpec, cells: list[str]) -> list[str]:
    """CELLS after the field's transforms, extract and blank_values (a value that means blank becomes "")."""
    values = cells
    for t in spec.transform:
        values = _TRANSFORMS[t](values)
    if spec.extract is not None:
        values = spec.extract.extract(values)
    if spec.blank_values:
        means_blank = spec.blank_values
        values = ["" if v.strip().casefold() in means_blank else v for v in values]
    return values


def _map_values(spec: FieldSpec, cells: list[str], output: _Output) -> _MappedValues:
    n, prefix = len(cells), output.prefix
    values = _prepared(spec, cells)
    fragments: list[str] = [""] * n
    text: list[str] = [""] * n
    bad = np.zeros(n, dtype=bool)
    expected: dict[int, str] = {}
    default_fragment = prefix + json.dumps(spec.default, ensure_ascii=False)
    blank = [] if all(map(str.strip, values)) else [i for i, v in enumerate(values) if not v.strip()]
    todo: Sequence[int] = range(n)  # a range, not a list: nearly always every value is converted
    if blank:
        blank_set = set(blank)
        todo = [i for i in todo if i not in blank_set]
        for i in blank:
            if spec.default is not None:
                fragments[i], text[i] = default_fragment, str(spec.default)
            elif spec.required:
                bad[i] = True
                expected[i] = (
                    "a value (required)"
                    if not cells[i].strip()
                    else "a value (required): none left after transform/extract/blank_values"
                )
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
                bad[i], expected[i] = True, _lookup_expected(spec)
        todo, values = kept, looked
    if not todo:
        return _MappedValues(fragments, text, bad, expected)
    everything = len(todo) == n
    converted = _CONVERT[spec.type](spec, values if everything else [values[i] for i in todo], output)
    if everything and not any(converted.problems):
        return _MappedValues(converted.fragments, converted.text, bad, expected)
    for i, problem, value_text, fragment in zip(
        todo, converted.problems, converted.text, converted.fragments, strict=True
    ):
        if problem is None:
            fragments[i], text[i] = fragment, value_text
        else:
            bad[i], expected[i] = True, problem
    return _MappedValues(fragments, text, bad, expected)


def _cited(spec: FieldSpec) -> str:
    """The documented rule behind a field's checks, to follow a problem: " (CorEMR v1 docs: Integer)", or ""."""
    return f" ({spec.rule_source})" if spec.rule_source else ""


def _lookup_expected(spec: FieldSpec) -> str:
    assert spec.lookup is not None
    if len(spec.lookup) <= _LISTED:
        return f"one of {', '.join(spec.lookup)}{_cited(spec)}"
    return f"one of the {len(spec.lookup)} values in {spec.lookup_name or 'the lookup table'}{_cited(spec)}"


@dataclass
class _Converted:
    """Values converted to their type: per value, None or what was expected, the text, and prefix + JSON text."""

    problems: list[str | None]
    text: list[str]  # may be blank where the output wants no text
    fragments: list[str]


def _to_string(spec: FieldSpec, values: list[str], output: _Output) -> _Converted:
    problems: list[str | None] = [None] * len(values)
    high = spec.max_length if spec.max_length is not None else math.inf
    lengths = list(map(len, values))
    if lengths and (max(lengths) > high or min(lengths) < spec.min_length):
        cited = f"{spec.rule_source}; " if spec.rule_source else ""
        for i, v in enumerate(values):
            if len(v) > high:
                problems[i] = f"at most {spec.max_length} characters ({cited}found {len(v)})"
            elif len(v) < spec.min_length:
                problems[i] = f"at least {spec.min_length} character(s){_cited(spec)}"
    if spec.path_segment:  # the more precise rule for an external_id: checked first
        for i in unsafe_path_segments(values):
            if problems[i] is None:
                problems[i] = PATH_SEGMENT_RULE
    if _CONTROL.search("".join(values)):  # one scan for the chunk: control characters are rare
        for i, v in enumerate(values):
            found = control_character(v)
            if found and problems[i] is None:
                problems[i] = (
                    f"text without control characters (found {found});"
                    ' fix the export, or add transform "remove_controls"'
                )
    prefix = output.prefix
    return _Converted(problems, values, [prefix + j for j in map(_encode_str, values)])


def _to_integer(spec: FieldSpec, values: list[str], output: _Output) -> _Converted:
    texts = [str(int(v)) if _INTEGER.fullmatch(v.strip()) else "" for v in values]
    expected = "a whole number" + _cited(spec)
    problems: list[str | None] = [None if t else expected for t in texts]
    prefix = output.prefix
    return _Converted(problems, texts, [prefix + t for t in texts])


def _to_number(spec: FieldSpec, values: list[str], output: _Output) -> _Converted:
    texts: list[str] = []
    for v in values:
        try:
            number = float(v)
        except ValueError:
            number = math.nan
        texts.append(repr(number) if math.isfinite(number) else "")
    expected = "a number" + _cited(spec)
    problems: list[str | None] = [None if t else expected for t in texts]
    prefix = output.prefix
    return _Converted(problems, texts, [prefix + t for t in texts])


def _to_datetime(spec: FieldSpec, values: list[str], output: _Output) -> _Converted:
    prefix, dt_format, now = output.prefix, output.dt_format, output.now
    cells = list(map(str.strip, values))
    parsed = np.full(len(cells), np.datetime64("NaT"), dtype="datetime64[us]")
    for fmt in spec.formats:
        idx = np.flatnonzero(np.isnat(parsed))
        if len(idx) == 0:
            break
        subset = cells if len(idx) == len(cells) else [cells[i] for i in idx.tolist()]
        parsed[idx] = parse_dates(subset, fmt, spec.two_digit_year, now)
    unparsed = np.isnat(parsed)
    future = parsed > np.datetime64(now, "us") if spec.not_future else np.zeros(len(cells), dtype=bool)
    if not unparsed.any() and not future.any():
        if dt_format not in ISO_FORMATS:
            texts = format_datetimes(parsed, dt_format)
            return _Converted([None] * len(cells), texts, [prefix + j for j in map(_encode_str, texts)])
        # ISO text needs no JSON escaping: write prefix and quotes with the digits, and text only if used.
        fragments = format_datetimes(parsed, dt_format, prefix=prefix + '"', suffix='"')
        texts = format_datetimes(parsed, dt_format) if output.wants_text else [""] * len(cells)
        return _Converted([None] * len(cells), texts, fragments)
    expected = f"a date in {' or '.join(spec.formats)}"
    problems: list[str | None] = [expected if bad else None for bad in unparsed.tolist()]
    for i in np.flatnonzero(future).tolist():
        problems[i] = "a past date (not after now)"
    good = [i for i, p in enumerate(problems) if p is None]
    texts = [""] * len(values)
    for i, t in zip(good, format_datetimes(parsed[good], dt_format), strict=True):
        texts[i] = t
    return _Converted(problems, texts, [prefix + j for j in map(_encode_str, texts)])


_WHITESPACE = re.compile(r"\s+")
_NON_DIGITS = re.compile(r"\D+")
_TRANSFORMS: dict[str, Callable[[list[str]], list[str]]] = {
    "strip": lambda vs: list(map(str.strip, vs)),
    "upper": lambda vs: list(map(str.upper, vs)),
    "lower": lambda vs: list(map(str.lower, vs)),
    "title": lambda vs: list(map(str.title, vs)),
    "collapse_spaces": lambda vs: [_WHITESPACE.sub(" ", v) for v in vs],
    "digits": lambda vs: [_NON_DIGITS.sub("", v) for v in vs],
    "remove_controls": lambda vs: [_CONTROL.sub("", v) for v in vs],
}
_CONVERT: dict[str, Callable[[FieldSpec, list[str], _Output], _Converted]] = {
    "string": _to_string,
    "integer": _to_integer,
    "number": _to_number,
    "datetime": _to_datetime,
}
