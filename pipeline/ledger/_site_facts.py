"""Site facts: what `check` found out about a site's CorEMR (whether it has bookings routes, ...), when and how.

A fact is a name, a value, when it was found and how (in words: which requests answered what). It lives in
its own small table, outside the hash chain: a fact is found again by the next `check`, never audited. The
table is made on the first fact recorded, so a ledger without one is read as knowing no facts.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ._entries import now_iso
from ._ledger import Ledger
from ._schema import columns

__all__ = ["SiteFact", "created_patient", "record_site_fact", "site_facts"]

_TABLE = (
    "CREATE TABLE IF NOT EXISTS site_facts"
    " (name TEXT PRIMARY KEY, value TEXT NOT NULL, found_at TEXT NOT NULL, how TEXT NOT NULL)"
)


@dataclass(frozen=True)
class SiteFact:
    """One thing found out about the site: e.g. bookings_routes = "no", found at a time, by which requests."""

    name: str
    value: str
    found_at: str
    how: str


def record_site_fact(ledger: Ledger, name: str, value: str, how: str) -> SiteFact:
    """Record (or replace) a fact about the site in a ledger opened for writing."""
    fact = SiteFact(name, value, now_iso(), how)
    ledger._sound()  # a damaged file is refused before anything is written to it
    with ledger._reading():
        ledger._db.execute(_TABLE)
        ledger._db.execute(
            "INSERT INTO site_facts VALUES (?,?,?,?) ON CONFLICT(name) DO UPDATE SET"
            " value=excluded.value, found_at=excluded.found_at, how=excluded.how",
            (fact.name, fact.value, fact.found_at, fact.how),
        )
    return fact


def site_facts(ledger: Ledger) -> dict[str, SiteFact]:
    """Every fact recorded about the site, by name (none for a ledger that never recorded one)."""
    with ledger._reading():
        try:
            found = ledger._db.execute("SELECT name, value, found_at, how FROM site_facts ORDER BY name").fetchall()
        except sqlite3.OperationalError:  # no such table: no fact was ever recorded
            return {}
    return {row[0]: SiteFact(*row) for row in found}


def created_patient(ledger: Ledger) -> str | None:
    """The external_id of a patient a run delivered, most recently delivered first, preferring one it created."""
    with ledger._reading():
        have = columns(ledger._db, "row_status")  # a ledger from before actions: any delivered row will do
        created = ", COALESCE(action, 'created') != 'created'" if "action" in have else ""
        latest = "delivered_run_id DESC, run_id DESC" if "delivered_run_id" in have else "run_id DESC"
        row = ledger._db.execute(
            "SELECT external_id FROM row_status WHERE external_id IS NOT NULL AND external_id != ''"  # noqa: S608
            f" AND delivered_sha256 IS NOT NULL ORDER BY delivered_sha256 IS NULL{created}, {latest} LIMIT 1"
        ).fetchone()
    return None if row is None else str(row[0])
