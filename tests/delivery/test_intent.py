"""The speed work keeps the engine's promise: a row's "sending" entry is committed before its POST arrives."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from pipeline.delivery import load_config, run_bookings
from pipeline.ledger import Ledger, verify_chain

from ..sites import BOOKING_HEADER, Site, booking_rows


def test_every_post_finds_its_sending_entry_already_committed(site: Site) -> None:
    server = site.server
    answer = server.respond
    missing: list[str] = []

    def respond(method: str, path: str, body: bytes, authorization: str | None) -> Any:
        if method == "POST":
            external_id = json.loads(body)["external_id"]
            # A second connection sees committed data only: the intent must be there before we answer.
            db = sqlite3.connect(f"file:{site.ledger}?mode=ro", uri=True, timeout=10)
            try:
                found = db.execute(
                    "SELECT COUNT(*) FROM entries WHERE event='sending' AND external_id=?", (external_id,)
                ).fetchone()[0]
            finally:
                db.close()
            if not found:
                missing.append(external_id)
        return answer(method, path, body, authorization)

    server.respond = respond  # type: ignore[method-assign]
    site.write_config(concurrency=8)
    result = run_bookings(site.write_csv(booking_rows(150)), site.mapping, load_config(site.config))
    assert result.counts["delivered"] == 150
    assert missing == []


def test_a_rerun_of_delivered_rows_records_one_skipped_state_each_and_keeps_the_chain(site: Site) -> None:
    csv = site.write_csv(booking_rows(120))
    config = load_config(site.config)
    first = run_bookings(csv, site.mapping, config)
    second = run_bookings(csv, site.mapping, config)
    assert first.counts["delivered"] == 120 and second.counts["skipped"] == 120
    with Ledger.open(site.ledger, create=False) as ledger:
        assert verify_chain(ledger.entries()) is None
        states = list(ledger.row_states(second.run_id))
        first_states = {e.key: e for e in ledger.row_states(first.run_id)}
        status = {row.key: row.state for row in ledger.prior_rows().values()}
    assert len(states) == 120 and {e.state for e in states} == {"skipped"}
    for e in states:  # the same body and the same input cells as when it was delivered
        assert e.request_sha256 == first_states[e.key].request_sha256
        assert e.cells_sha256 == first_states[e.key].cells_sha256
    assert set(status.values()) == {"delivered"}  # a skip leaves the delivered status as it was


def test_a_rerun_with_new_input_cells_stores_them_and_keeps_the_chain(site: Site) -> None:
    rows = booking_rows(10)
    config = load_config(site.config)
    run_bookings(site.write_csv(rows), site.mapping, config)
    with Ledger.open(site.ledger, create=False) as ledger:
        before = ledger.size().bodies_stored
    again = run_bookings(site.write_csv(rows), site.mapping, config)
    # The same bookings with an extra column the mapping ignores: the bodies are the same, the cells are not.
    rows_extra = [[*r, "note"] for r in rows]
    with (site.dir / "extra.csv").open("w", encoding="utf-8") as fh:
        fh.write(",".join([*BOOKING_HEADER, "Note"]) + "\n")
        fh.writelines(",".join(r) + "\n" for r in rows_extra)
    third = run_bookings(site.dir / "extra.csv", site.mapping, config)
    assert again.counts["skipped"] == 10 and third.counts["skipped"] == 10
    with Ledger.open(site.ledger, create=False) as ledger:
        stored = ledger.size().bodies_stored
        third_cells = {e.cells_sha256 for e in ledger.row_states(third.run_id)}
        assert all(ledger.body(sha) is not None for sha in third_cells)  # the new cells were stored
        assert verify_chain(ledger.entries()) is None
    assert stored == before + 10  # the second run stored nothing; the third, one cells body per row


def test_a_ledger_from_before_cells_in_row_status_opens_and_reruns(site: Site) -> None:
    csv = site.write_csv(booking_rows(5))
    config = load_config(site.config)
    run_bookings(csv, site.mapping, config)
    db = sqlite3.connect(site.ledger)
    db.execute("ALTER TABLE row_status DROP COLUMN cells_sha256")  # as an earlier version left it
    db.commit()
    db.close()
    second = run_bookings(csv, site.mapping, config)
    third = run_bookings(csv, site.mapping, config)
    assert second.counts["skipped"] == third.counts["skipped"] == 5
    with Ledger.open(site.ledger, create=False) as ledger:
        assert None not in {row.cells_sha256 for row in ledger.prior_rows().values()}
