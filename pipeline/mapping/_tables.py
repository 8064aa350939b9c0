"""Lookup tables kept in their own files next to the mapping (a facility table shared by several mappings).

A CSV table names the column to look up and the column to use (`key`, `value`); a TOML table is a
table of `key = value` pairs (`table` picks a sub-table). The file's bytes are part of the mapping's
recorded SHA-256, so a changed table changes the hash each run records.
"""

from __future__ import annotations

import csv
import io
import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._toml import TomlFile, kind_of

__all__ = ["LookupFile", "read_lookup_file"]

Scalar = str | int | float | bool
MAX_LOOKUP_BYTES = 16 << 20  # a facility or agency table is a few kB; 16 MiB is far past any real one
_CSV_KEYS = {"path", "key", "value"}
_TOML_KEYS = {"path", "table"}


@dataclass(frozen=True)
class LookupFile:
    """A lookup table read from a file: its name as written in the mapping, its bytes and its entries."""

    name: str
    data: bytes
    entries: dict[str, Scalar]


def read_lookup_file(where: TomlFile, key_path: str, value: object, directory: Path) -> LookupFile:
    """Read the table `lookup_file = { path = ..., ... }` names (PATH relative to the mapping's DIRECTORY)."""
    spec = where.table(key_path, value)
    name = where.string(f"{key_path}.path", spec.get("path"))
    suffix = Path(name).suffix.lower()
    if suffix not in (".csv", ".toml"):
        raise where.error(f"{key_path}.path", f"{name!r}: a lookup file is a .csv or .toml file")
    where.only(key_path, spec, _CSV_KEYS if suffix == ".csv" else _TOML_KEYS)
    data = _read_table_file(where, f"{key_path}.path", directory / name)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise where.error(f"{key_path}.path", f"{name}: a lookup file must be UTF-8 (byte {exc.start})") from None
    if suffix == ".csv":
        entries = _csv_entries(where, key_path, name, text, spec)
    else:
        entries = _toml_entries(where, key_path, name, text, spec)
    if not entries:
        raise where.error(f"{key_path}.path", f"{name}: the table has no entries")
    return LookupFile(name, data, entries)


def _read_table_file(where: TomlFile, key_path: str, path: Path) -> bytes:
    """The bytes of a regular file of at most MAX_LOOKUP_BYTES; a FIFO, a device or a larger file is refused unread."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # O_NONBLOCK: a FIFO does not wait for a writer
    except OSError as exc:
        raise where.error(key_path, f"cannot read {path} ({exc.strerror or exc})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise where.error(key_path, f"{path} is not a regular file (a FIFO, device or directory); give a table file")
    with os.fdopen(fd, "rb") as file:
        if info.st_size > MAX_LOOKUP_BYTES:
            raise where.error(key_path, f"{path} is larger than a lookup table may be ({MAX_LOOKUP_BYTES >> 20} MiB)")
        try:
            data = file.read(MAX_LOOKUP_BYTES + 1)  # a file growing meanwhile is still read no further
        except OSError as exc:
            raise where.error(key_path, f"cannot read {path} ({exc.strerror or exc})") from None
    if len(data) > MAX_LOOKUP_BYTES:
        raise where.error(key_path, f"{path} is larger than a lookup table may be ({MAX_LOOKUP_BYTES >> 20} MiB)")
    return data


def _csv_entries(where: TomlFile, key_path: str, name: str, text: str, spec: dict[str, Any]) -> dict[str, Scalar]:
    key = where.string(f"{key_path}.key", spec.get("key"))
    value = where.string(f"{key_path}.value", spec.get("value"))
    rows = csv.reader(io.StringIO(text, newline=""))
    header = [cell.strip() for cell in next(rows, [])]
    for option, column in (("key", key), ("value", value)):
        if column not in header:
            raise where.error(f"{key_path}.{option}", f"{name} has no column {column!r} on its first line")
    at_key, at_value = header.index(key), header.index(value)
    entries: dict[str, Scalar] = {}
    for row in rows:
        if not any(cell.strip() for cell in row):
            continue
        where_row = f"{name}, line {rows.line_num}"
        if len(row) <= max(at_key, at_value):
            raise where.error(key_path, f"{where_row}: expected {len(header)} cells as on the first line")
        looked_up = row[at_key].strip()
        if looked_up in entries:
            raise where.error(key_path, f"{where_row}: {looked_up!r} is in the table twice")
        entries[looked_up] = row[at_value].strip()
    return entries


def _toml_entries(where: TomlFile, key_path: str, name: str, text: str, spec: dict[str, Any]) -> dict[str, Scalar]:
    try:
        doc: Any = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise where.error(f"{key_path}.path", f"{name} is not valid TOML: {exc}") from None
    table_name = where.string(f"{key_path}.table", spec["table"]) if "table" in spec else ""
    for part in table_name.split(".") if table_name else []:
        doc = doc.get(part) if isinstance(doc, dict) else None
        if not isinstance(doc, dict):
            raise where.error(f"{key_path}.table", f"{name} has no table [{table_name}]")
    entries: dict[str, Scalar] = {}
    for looked_up, result in doc.items():
        if not isinstance(result, str | int | float | bool):
            inner = f"{table_name}.{looked_up}" if table_name else looked_up
            raise where.error(key_path, f"{name}: {inner}: expected a string, number or boolean, got {kind_of(result)}")
        entries[str(looked_up)] = result
    return entries
