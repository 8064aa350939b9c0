"""A ledger written before row_status knew the delivering run, the action and the step is brought up to date when
a run opens it: columns added (the delivering run filled in from the chain), the chain untouched, the audit passing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.delivery._config import load_config
from pipeline.delivery._run import run_bookings
from pipeline.ledger._entries import verify_chain
from pipeline.ledger._ledger import Ledger
from pipeline.ledger._schema import columns

from ..sites import Site, booking_rows

NEW_COLUMNS = ("delivered_run_id", "action", "step")


def as_an_older_version_left_it(ledger: Path) -> None:
    """Drop what this version added to row_status, as a ledger from before it was written."""
    with sqlite3.connect(ledger) as db:
        for column in NEW_COLUMNS:
            db.execute(f"ALTER TABLE row_status DROP COLUMN {column}")


def test_an_older_ledger_gets_the_new_columns_and_still_passes_audit(site: Site) -> None:
    rows = booking_rows(3)
    first = run_bookings(site.write_csv(rows[:2]), site.mapping, load_config(site.config))
    second = run_bookings(site.write_csv(rows), site.mapping, load_config(site.config))
    as_an_older_version_left_it(site.ledger)
    with sqlite3.connect(site.ledger) as db:
        assert not set(NEW_COLUMNS) & columns(db, "row_status")
        hashes = db.execute("SELECT seq, hash FROM entries ORDER BY seq").fetchall()
    audit = CliRunner().invoke(cli, ["audit", "-c", str(site.config)])  # read-only: the old shape is fine
    assert audit.exit_code == 0, audit.output

    with Ledger.open(site.ledger, create=False) as ledger:  # what a run does first
        assert verify_chain(ledger.entries()) is None
        delivered_in = {key: ledger.row_status(key).delivered_run_id for key in ("P000001/B000001", "P000003/B000003")}  # type: ignore[union-attr]
    assert delivered_in == {"P000001/B000001": first.run_id, "P000003/B000003": second.run_id}
    with sqlite3.connect(site.ledger) as db:
        assert set(NEW_COLUMNS) <= columns(db, "row_status")
        assert db.execute("SELECT seq, hash FROM entries ORDER BY seq").fetchall() == hashes

    rows[0][2] = "Corrected"  # the next night holds the change, naming the run that delivered the body
    third = run_bookings(site.write_csv(rows), site.mapping, load_config(site.config))
    assert third.attention[0].reason is not None
    assert third.attention[0].reason.startswith(f"delivered in run {first.run_id} with a different body")
    audit = CliRunner().invoke(cli, ["audit", "-c", str(site.config)])
    assert audit.exit_code == 0, audit.output
