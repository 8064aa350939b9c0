"""A ledger of two real runs with rows in several states, for the review tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.delivery import load_config, run_bookings
from pipeline.simulator import Fault

from ..sites import SITE_MAPPING, Site, booking_rows

FORMULA_NAME = '=HYPERLINK("http://example.invalid","x")'


@dataclass(frozen=True)
class MixedLedger:
    """A ledger of two real runs of the same 8-row export: delivered, rejected, invalid, one unverified answer."""

    site: Site
    csv: Path
    first: int
    second: int


def make_mixed_ledger(site: Site) -> MixedLedger:
    """Run 1: P1 delivered after an unverified answer (settled by lookup), P2 rejected (a verified 400), line 5
    invalid, line 7 has a formula in a name cell, the rest delivered. Run 2: the same file again (skipped and
    repeats)."""
    rows = booking_rows(8)
    # Without CorEMR's patient checks in the mapping, P2's sex "X" reaches CorEMR, which refuses it (400).
    site.mapping.write_text(SITE_MAPPING.replace("[target]\n", '[target]\nprofile = "none"\n'), encoding="utf-8")
    rows[1][5] = "X"
    site.write_config(concurrency=1, circuit_breaker=100)
    rows[3][4] = "not a date"
    rows[5][2] = FORMULA_NAME
    csv_path = site.write_csv(rows)
    site.server.set_faults([Fault("signature_corrupt", first=1)])  # concurrency 1: P1's POST gets it
    first = run_bookings(csv_path, site.mapping, load_config(site.config), sleep=lambda _: None)
    site.server.set_faults([])
    second = run_bookings(csv_path, site.mapping, load_config(site.config), sleep=lambda _: None)
    assert first.counts["delivered"] == 6 and first.counts["rejected"] == 1 and first.counts["invalid"] == 1
    return MixedLedger(site, csv_path, first.run_id, second.run_id)
