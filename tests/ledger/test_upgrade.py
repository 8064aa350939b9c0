"""A ledger written before row_status knew the delivering run, the action and the step is brought up to date when
a run opens it: columns added (the delivering run filled in from the chain), the chain untouched, the audit passing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.delivery import load_config, run_bookings
from pipeline.ledger import Ledger, verify_chain
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


def test_a_ledger_from_before_runs_kept_the_user_and_host_is_read_as_is_and_upgraded_by_the_next_run(
    site: Site,
) -> None:
    first = run_bookings(site.write_csv(booking_rows(2)), site.mapping, load_config(site.config))
    with sqlite3.connect(site.ledger) as db:
        for column in ("user", "host"):
            db.execute(f"ALTER TABLE runs DROP COLUMN {column}")
    report = CliRunner().invoke(cli, ["report", "-c", str(site.config)])  # read-only: the old shape is read as is
    assert report.exit_code == 0, report.output
    assert "run by" not in report.output
    second = run_bookings(site.write_csv(booking_rows(3)), site.mapping, load_config(site.config))
    with Ledger.open_read_only(site.ledger) as ledger:
        users = {run.run_id: (run.info.user is None, run.info.host is None) for run in ledger.runs()}
    assert users == {first.run_id: (True, True), second.run_id: (False, False)}
    # This version's run_started entries name the user and host: audit sees the dropped values as an edit.
    audit = CliRunner().invoke(cli, ["audit", "-c", str(site.config)])
    assert audit.exit_code == 1
    assert f"entry 1 of run {first.run_id}: the runs table differs from this run_started entry in user, host" in (
        audit.output
    )
    assert f"of run {second.run_id}:" not in audit.output
