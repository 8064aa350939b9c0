"""What a held change changed: the body held against the body delivered, field by field, old → new, and where
in CorEMR each field lives (on the patient, or on the booking: a booking date is not a patient field).

The field names are not patient data and go wherever the row goes (a cron mail included); the values are, so
a renderer shows them only in the private (0600) files and when a person asks (`report --show-values`).
Both bodies are read from the ledger's bodies table: once pruned, a change can no longer be shown.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from ..delivery import RunResult
from ..ledger import Ledger
from ..protocol import API_PROFILES

__all__ = [
    "BOOKING_FIELDS",
    "FieldChange",
    "HeldRecord",
    "body_changes",
    "changes_text",
    "held_changes",
    "name_held_fields",
    "where_text",
]

# A booking's fields in every API version (booking_number in v1, booking_no in v2/v3, booking_date).
BOOKING_FIELDS = frozenset(f.name for profile in API_PROFILES.values() for f in profile.fields if f.booking)
Place = Literal["patient", "booking"]
_ARROW = "→"
_ABSENT = object()


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field of a held row: its name, where CorEMR keeps it, and (when shown) the delivered and held values."""

    field: str
    old: object = None  # None: withheld, or the field was not in the body
    new: object = None

    @property
    def place(self) -> Place:
        """Where CorEMR keeps the field: on the booking (booking number and date) or on the patient."""
        return "booking" if self.field in BOOKING_FIELDS else "patient"

    def text(self, values: bool) -> str:
        """`fname: "Jon" → "John"` with values, else `fname`."""
        if not values:
            return self.field
        return f"{self.field}: {_value(self.old)} {_ARROW} {_value(self.new)}"


def body_changes(delivered: bytes, held: bytes, *, values: bool) -> tuple[FieldChange, ...]:
    """The fields whose values differ between two JSON bodies (the held body's order, then fields it dropped);
    values kept only when asked. () when either is not a JSON object."""
    old, new = _object(delivered), _object(held)
    if old is None or new is None:
        return ()
    names = [*new, *(name for name in old if name not in new)]
    return tuple(
        FieldChange(name, old.get(name) if values else None, new.get(name) if values else None)
        for name in names
        if old.get(name, _ABSENT) != new.get(name, _ABSENT)
    )


def changes_text(changes: Sequence[FieldChange], values: bool) -> str:
    """The changes on one line, each with where it lives: 'fname: "Jon" → "John" (patient); booking_date …'."""
    return "; ".join(f"{c.text(values)} ({c.place})" for c in changes)


def where_text(changes: Iterable[FieldChange]) -> str | None:
    """Where in CorEMR a person makes the held changes by hand, naming each field (None when there are none)."""
    by_place: dict[Place, list[str]] = {"patient": [], "booking": []}
    for change in changes:
        if change.field not in by_place[change.place]:
            by_place[change.place].append(change.field)
    said = []
    if by_place["patient"]:
        said.append(f"{', '.join(by_place['patient'])}: on the patient in CorEMR")
    if by_place["booking"]:
        said.append(
            f"{', '.join(by_place['booking'])}: on the booking in CorEMR (a booking field, not a patient field:"
            " change the booking, not the patient)"
        )
    return "; ".join(said) or None


class HeldRecord(Protocol):
    """What held_changes needs of a record (a RowRecord): its state, its body and the body it differs from."""

    @property
    def state(self) -> str: ...
    @property
    def request_sha256(self) -> str | None: ...
    @property
    def differs_from(self) -> str | None: ...


def held_changes(ledger: Ledger, records: Sequence[HeldRecord], *, values: bool) -> dict[int, tuple[FieldChange, ...]]:
    """Each held change's field changes (state changed), by its index in RECORDS, from the two bodies the ledger
    keeps (none for a record whose bodies were pruned, or written before held bodies were kept)."""
    held = [(i, r) for i, r in enumerate(records) if r.state == "changed" and r.differs_from and r.request_sha256]
    if not held:
        return {}
    stored = ledger.bodies({sha for _, r in held for sha in (r.request_sha256, r.differs_from) if sha})
    found: dict[int, tuple[FieldChange, ...]] = {}
    for i, r in held:
        old, new = stored.get(r.differs_from or ""), stored.get(r.request_sha256 or "")
        if old is not None and new is not None:
            found[i] = body_changes(old, new, values=values)
    return found


def _object(body: bytes) -> dict[str, object] | None:
    try:
        value = json.loads(body) if body else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _value(value: object) -> str:
    return "(none)" if value is None else json.dumps(value, ensure_ascii=False)


def name_held_fields(result: RunResult) -> RunResult:
    """The run's result with each held change's reason naming the fields that changed and where they live
    (never their values: the summary goes to a cron mail), read from the ledger the run wrote."""
    if not any(o.state == "changed" for o in result.attention):
        return result
    with Ledger.open_read_only(result.ledger) as ledger, ledger.snapshot():
        records = [r for r in ledger.state_rows([result.run_id], ("changed",)) if r[3] is not None]
        held = [_Held(state, request_sha, _differs_from(detail), line, key)
                for (_, line, _, key, state, _, _, request_sha, *_, detail) in records]  # fmt: skip
        changes = held_changes(ledger, held, values=False)
    named = {(held[i].line, held[i].key): changes_text(found, values=False) for i, found in changes.items() if found}
    attention = [
        replace(o, reason=f"{o.reason}; what changed: {named[(o.line, o.key)]}" if o.reason else named[(o.line, o.key)])
        if o.state == "changed" and (o.line, o.key) in named else o
        for o in result.attention
    ]  # fmt: skip
    return replace(result, attention=attention)


@dataclass(frozen=True)
class _Held:
    state: str
    request_sha256: str | None
    differs_from: str | None
    line: int | None
    key: str | None


def _differs_from(detail: str | None) -> str | None:
    value = _object((detail or "").encode())
    found = value.get("differs_from") if value is not None else None
    return found if isinstance(found, str) else None
