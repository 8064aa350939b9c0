"""`bench`'s re-booking line: the people of the first run booked again under new booking numbers.

The ledger knows each of them (delivered under another key), so each row is one signed booking create
through the bookings routes, no doomed patient create first: the figure to watch is requests per row.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path

from .._errors import BenchFailed
from ..delivery import RunConfig, run_bookings
from ..simulator import fetch_counters

__all__ = ["RebookingFigures", "measure_rebookings", "write_rebookings"]

BOOKING_COLUMN = "Booking Number"


@dataclass(frozen=True)
class RebookingFigures:
    """A run of re-bookings: people the ledger knows, each booked again."""

    rows: int
    delivered: int
    seconds: float
    rows_per_second: float
    requests: int  # what the server received during the run, lookups and refusals included
    requests_per_row: float
    booking_creates: int  # bookings the server stored
    duplicates: int  # bookings stored twice (must be 0)


def write_rebookings(export: Path, out: Path, rows: int) -> Path:
    """The first ROWS rows of EXPORT, each under a new booking number ("R" + the old one)."""
    with export.open(newline="", encoding="utf-8") as src, out.open("w", newline="", encoding="utf-8") as dst:
        reader, writer = csv.reader(src), csv.writer(dst)
        header = next(reader)
        at = header.index(BOOKING_COLUMN)
        writer.writerow(header)
        for i, row in enumerate(reader):
            if i == rows:
                break
            row[at] = "R" + row[at]
            writer.writerow(row)
    return out


def measure_rebookings(export: Path, mapping: Path, config: RunConfig, server_url: str, rows: int) -> RebookingFigures:
    """Run ROWS re-bookings of EXPORT's people (already delivered by this ledger) and count the server's requests."""
    rebooked = write_rebookings(export, export.with_name("rebookings.csv"), rows)
    before = fetch_counters(server_url)
    wall = time.perf_counter()
    result = run_bookings(rebooked, mapping, config)
    wall = time.perf_counter() - wall
    after = fetch_counters(server_url)
    delivered = result.counts["delivered"]
    if delivered != result.rows:
        raise BenchFailed(f"re-bookings were not all delivered: {dict(result.counts)}")
    requests = after.requests - before.requests
    stored = {
        (e, b): n for e, numbers in after.booking_creates.items() for b, n in numbers.items() if b.startswith("R")
    }
    return RebookingFigures(
        rows=result.rows,
        delivered=delivered,
        seconds=round(wall, 4),
        rows_per_second=round(delivered / wall, 1),
        requests=requests,
        requests_per_row=round(requests / result.rows, 3) if result.rows else 0.0,
        booking_creates=len(stored),
        duplicates=sum(1 for n in stored.values() if n > 1),
    )
