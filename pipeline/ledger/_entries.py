"""The ledger's hash-chained entries: the Entry record, its chain hash, chain checks, and skipped-row lists.

Every event is an Entry storing the hash of the one before it and its own, so any edit, deletion,
insertion or reordering is detectable later (`verify_chain`). A row's state in a run is one `state`
entry, except rows skipped as already delivered: a re-run of a cumulative export skips nearly every
row, so those are listed, [line, key, external_id, request_sha256, cells_sha256] each, in the `detail`
of a `skipped_rows` entry (up to SKIPPED_ROWS_PER_ENTRY rows), chained like any other. `row_states`
reads both kinds back as one state entry per row. A person accepting a held change (`accept`) is an
`accepted` entry, and a person marking a refused row to be sent again (`resend`) a `resend` entry, chained
like the rest.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

__all__ = [
    "ENTRY_FIELDS",
    "GENESIS_HASH",
    "SKIPPED_ROWS_PER_ENTRY",
    "ChainBreak",
    "Entry",
    "EntryEvent",
    "SkippedRow",
    "entry_hash",
    "entry_values",
    "now_iso",
    "row_states",
    "sha256_hex",
    "skipped_rows",
    "skipped_rows_entries",
    "verify_chain",
]

EntryEvent = Literal[
    "run_started", "run_finished", "sending", "attempt", "lookup", "state", "skipped_rows", "accepted", "resend"
]  # fmt: skip
GENESIS_HASH = "0" * 64
SKIPPED_ROWS_PER_ENTRY = 5000  # keeps one entry's detail under about a megabyte


def now_iso() -> str:
    """The current time as ISO 8601 with offset, to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def sha256_hex(data: bytes) -> str:
    """SHA-256 of bytes as lowercase hex."""
    return hashlib.sha256(data).hexdigest()


@dataclass
class Entry:
    """One event in the ledger's chain; `seq`, `prev_hash` and `hash` are filled in when appended."""

    run_id: int
    event: EntryEvent
    at: str = ""
    line: int | None = None
    key: str | None = None
    external_id: str | None = None
    state: str | None = None
    attempt: int | None = None
    method: str | None = None
    url: str | None = None
    http_status: int | None = None
    elapsed_ms: float | None = None
    request_sha256: str | None = None
    request_authorization: str | None = None
    response_sha256: str | None = None
    response_authorization: str | None = None
    response_signer: str | None = None
    verification: str | None = None
    cells_sha256: str | None = None
    error: str | None = None
    detail: str | None = None
    seq: int = 0
    prev_hash: str = ""
    hash: str = ""


ENTRY_FIELDS = tuple(f.name for f in fields(Entry))  # the entries table's columns, in order
_HASHED_FIELDS = tuple(name for name in ENTRY_FIELDS if name != "hash")
_hashed_values = operator.itemgetter(*_HASHED_FIELDS)
entry_values = operator.itemgetter(*ENTRY_FIELDS)  # an entry's __dict__ -> its column values, in order
# Byte for byte what json.dumps(list, ensure_ascii=False, separators=(",", ":")) writes, without a new
# encoder per call: the C encoder json.dumps itself builds for each call, built once (entries hold no cycles).
_CANONICAL = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_c_encode_basestring: Any = getattr(json.encoder, "c_encode_basestring", None)
_encode_canonical: Any = (
    _c_make_encoder(None, _CANONICAL.default, _c_encode_basestring, None, ":", ",", False, False, True)
    if _c_make_encoder is not None and _c_encode_basestring is not None
    else None
)


def entry_hash(values: dict[str, Any]) -> str:
    """The chain hash of an entry: SHA-256 of its fields (all but `hash`) as canonical JSON."""
    fields = _hashed_values(values)
    canonical = "".join(_encode_canonical(fields, 0)) if _encode_canonical else _CANONICAL.encode(fields)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class SkippedRow(NamedTuple):
    """One row a skipped_rows entry lists: not sent, because this body was delivered in an earlier run."""

    line: int | None
    key: str
    external_id: str | None
    request_sha256: str  # the body it would have sent, identical to the one delivered before
    cells_sha256: str  # its input cells (stored in bodies)


_SKIPPED_COLUMNS = list(SkippedRow._fields)


def skipped_rows_entries(run_id: int, rows: Sequence[SkippedRow]) -> list[Entry]:
    """The entries recording rows skipped as already delivered, up to SKIPPED_ROWS_PER_ENTRY rows in each."""
    return [
        Entry(run_id, "skipped_rows", state="skipped", line=part[0].line, attempt=0,
              detail=_CANONICAL.encode({"columns": _SKIPPED_COLUMNS, "rows": part}))
        for part in (rows[i : i + SKIPPED_ROWS_PER_ENTRY] for i in range(0, len(rows), SKIPPED_ROWS_PER_ENTRY))
    ]  # fmt: skip


def skipped_rows(entry: Entry) -> list[SkippedRow]:
    """The rows a skipped_rows entry lists; ValueError naming the entry when its detail is not that shape."""
    try:
        data = json.loads(entry.detail or "")
    except ValueError:
        data = None
    rows = data.get("rows") if isinstance(data, dict) and data.get("columns") == _SKIPPED_COLUMNS else None
    if isinstance(rows, list) and all(map(_is_skipped_row, rows)):
        return [SkippedRow._make(r) for r in rows]
    raise ValueError(f"entry {entry.seq}: its detail is not a list of skipped rows")


def _is_skipped_row(r: object) -> bool:
    return (
        isinstance(r, list) and len(r) == 5 and isinstance(r[0], int | None) and isinstance(r[1], str)
        and isinstance(r[2], str | None) and isinstance(r[3], str) and isinstance(r[4], str)
    )  # fmt: skip


def row_states(entries: Iterable[Entry]) -> Iterator[Entry]:
    """Each row's state entry, in chain order, with every skipped_rows entry expanded into one per row.

    An expanded entry is a view: it carries the skipped_rows entry's seq, run and time but no hash of its own.
    """
    for entry in entries:
        if entry.event == "state":
            yield entry
        elif entry.event == "skipped_rows":
            for row in skipped_rows(entry):
                yield Entry(
                    entry.run_id,
                    "state",
                    at=entry.at,
                    line=row.line,
                    key=row.key,
                    external_id=row.external_id,
                    state="skipped",
                    attempt=0,
                    request_sha256=row.request_sha256,
                    cells_sha256=row.cells_sha256,
                    seq=entry.seq,
                )


@dataclass(frozen=True)
class ChainBreak:
    """Where the hash chain first fails to hold, and how."""

    seq: int
    problem: str

    def __str__(self) -> str:
        return f"entry {self.seq}: {self.problem}"


def verify_chain(entries: Iterable[Entry]) -> ChainBreak | None:
    """Walk entries in order; return the first edited, deleted, inserted or reordered one (None if intact)."""
    prev, expected = GENESIS_HASH, 1
    for entry in entries:
        if entry.seq != expected:
            what = "missing" if entry.seq > expected else "out of order"
            return ChainBreak(entry.seq, f"entry {expected} is {what} before it (deleted or reordered entries)")
        if entry.prev_hash != prev:
            return ChainBreak(entry.seq, "does not follow the entry before it (deleted, inserted or swapped entries)")
        if entry_hash(entry.__dict__) != entry.hash:
            return ChainBreak(entry.seq, "its contents do not match its hash (the entry was edited)")
        prev, expected = entry.hash, expected + 1
    return None
