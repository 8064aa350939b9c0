"""The ledger's read methods and run records, on real SQLite files written through the Ledger API."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from pipeline.ledger import (
    STATE_ROW_FIELDS,
    Entry,
    Ledger,
    LedgerWrite,
    RunInfo,
    SkippedRow,
    StatusUpdate,
    sha256_hex,
    skipped_rows_entries,
    verify_chain,
)

INFO = RunInfo("/data/b.csv", "0" * 64, "/etc/m.toml", "1" * 64, "https://coremr.example.org", "/ws/patients/",
               "county-jms", "CWS-SHA256", "test")  # fmt: skip


def night(ledger: Ledger, states: dict[str, str], skipped: tuple[str, ...] = ()) -> int:
    """One run: a state entry (and row_status change) per key, the skipped keys listed, then its end."""
    run_id = ledger.begin_run(INFO, 4242)
    write = LedgerWrite()
    for line, (key, state) in enumerate(states.items(), 2):
        cells = json.dumps({"ID": key}).encode()
        body = json.dumps({"external_id": key}).encode()
        write.bodies += [(sha256_hex(cells), cells), (sha256_hex(body), body)]
        write.entries.append(Entry(run_id, "state", line=line, key=key, state=state, error=f"{state} reason",
                                   request_sha256=sha256_hex(body), cells_sha256=sha256_hex(cells)))  # fmt: skip
        write.updates.append(StatusUpdate(key, key, state, sha256_hex(body), run_id, line, f"{state} reason",
                                          delivered=state == "delivered"))  # fmt: skip
    rows = [SkippedRow(100 + i, key, key, "a" * 64, "b" * 64) for i, key in enumerate(skipped)]
    if rows:
        write.entries += skipped_rows_entries(run_id, rows)
    ledger.append(write)
    ledger.finish_run(run_id, ledger.state_counts(run_id), "finished", 1)
    return run_id


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    opened = Ledger.open(tmp_path / "ledger.sqlite")
    night(opened, {"A": "delivered", "B": "rejected", "C": "invalid"})
    night(opened, {"B": "rejected", "C": "delivered", "D": "failed"}, skipped=("A",))
    night(opened, {"B": "rejected", "D": "delivered", "E": "invalid", "C": "changed"}, skipped=("A",))
    return opened


def test_outstanding_rows_are_each_row_once_with_the_run_since_which_it_needs_a_person(ledger: Ledger) -> None:
    found = {row.key: (row.state, row.since_run_id, row.run_id) for row in ledger.outstanding_rows()}
    # B outstanding since run 1; C settled in run 2 and outstanding again from run 3; D settled; E new in run 3
    assert found == {"B": ("rejected", 1, 3), "C": ("changed", 3, 3), "E": ("invalid", 3, 3)}
    assert ledger.outstanding_rows()[0].key == "B"  # longest outstanding first


def test_runs_and_state_counts_read_back_what_was_recorded(ledger: Ledger) -> None:
    runs = ledger.runs()
    assert [r.run_id for r in runs] == [1, 2, 3] and ledger.run_ids() == [1, 2, 3] and ledger.latest_run_id() == 3
    assert {(r.status, r.exit_code, r.pid) for r in runs} == {("finished", 1, 4242)}
    assert runs[1].counts == {**dict.fromkeys(runs[1].counts, 0), "rejected": 1, "delivered": 1, "failed": 1,
                              "skipped": 1}  # fmt: skip
    assert ledger.state_counts(2) == runs[1].counts
    tally = {(t.run_id, t.state): t.rows for t in ledger.state_tally([1, 3])}
    assert tally == {(1, "delivered"): 1, (1, "rejected"): 1, (1, "invalid"): 1, (3, "rejected"): 1,
                     (3, "delivered"): 1, (3, "invalid"): 1, (3, "changed"): 1}  # fmt: skip
    assert ledger.runs([2])[0].run_id == 2
    later = ledger.run_ids(since=runs[1].started_at)
    assert later == [2, 3] and ledger.run_ids(until=runs[1].started_at) == [1]


def test_state_rows_filter_by_state_and_carry_the_stored_cells(ledger: Ledger) -> None:
    rows = [
        dict(zip(STATE_ROW_FIELDS, r, strict=True)) for r in ledger.state_rows([1, 2], ["rejected"], with_cells=True)
    ]
    assert [(r["run_id"], r["key"], r["state"]) for r in rows] == [(1, "B", "rejected"), (2, "B", "rejected")]
    assert all(json.loads(r["cells"]) == {"ID": "B"} and r["error"] == "rejected reason" for r in rows)
    assert {r[-1] for r in ledger.state_rows([1])} == {None}  # without with_cells nothing is read from bodies
    assert len(ledger.skipped_rows(run_ids=[2, 3])) == 2


def test_head_entry_at_bodies_and_size(ledger: Ledger) -> None:
    head = ledger.head()
    entries = list(ledger.entries())
    assert head is not None and (head.seq, head.hash, head.run_id) == (entries[-1].seq, entries[-1].hash, 3)
    assert ledger.entry_at(2) == entries[1] and ledger.entry_at(head.seq + 1) is None
    cells = json.dumps({"ID": "E"}).encode()
    assert ledger.bodies({sha256_hex(cells), "f" * 64}) == {sha256_hex(cells): cells}
    stored = ledger.stored_body(sha256_hex(cells))
    assert stored is not None and stored.body == cells and stored.pruned_at is None
    assert ledger.stored_body("f" * 64) is None
    size = ledger.size()
    assert size.entries == len(entries) and size.bodies_pruned == 0
    assert size.bodies_stored == len(dict(ledger.stored_bodies()))
    assert size.file_bytes >= ledger.path.stat().st_size > 0


def test_a_run_left_running_is_recorded_as_killed_with_no_exit_code_and_its_counts(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger.open(path) as ledger:
        first = night(ledger, {"A": "delivered"})
        dead = ledger.begin_run(INFO, 31337)  # the process dies here: no finish_run
        ledger.append(LedgerWrite([Entry(dead, "state", line=2, key="B", state="delivered")]))
    with Ledger.open(path) as ledger:
        left = ledger.runs_left_running()
        assert [(r.run_id, r.pid) for r in left] == [(dead, 31337)]
        assert ledger.close_abandoned_runs() == left
        assert ledger.runs_left_running() == [] and ledger.close_abandoned_runs() == []
        record = ledger.runs([dead])[0]
        assert (record.status, record.exit_code) == ("killed", None)
        assert record.counts["delivered"] == 1 and sum(record.counts.values()) == 1
        assert record.finished_at is not None and ledger.runs([first])[0].status == "finished"
        assert verify_chain(ledger.entries()) is None
        finished = [e for e in ledger.entries(dead) if e.event == "run_finished"]
    assert len(finished) == 1 and json.loads(finished[0].detail or "")["status"] == "killed"


def test_an_older_ledger_without_since_run_id_is_upgraded_on_open_and_read_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger.open(path) as ledger:
        night(ledger, {"A": "rejected"})
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE row_status DROP COLUMN since_run_id")  # as version 0.1.0 left it
    db.commit()
    db.close()
    with Ledger.open_read_only(path) as ledger:  # read-only: not upgraded, read with the last run instead
        assert [(r.key, r.since_run_id) for r in ledger.outstanding_rows()] == [("A", 1)]
    with Ledger.open(path) as ledger:
        night(ledger, {"A": "rejected"})
        assert [(r.key, r.since_run_id, r.run_id) for r in ledger.outstanding_rows()] == [("A", 1, 2)]
