"""Rows skipped as already delivered: listed in chained skipped_rows entries, and read back row by row by the
report, the audit and prune exactly as if each had its own state entry."""

from __future__ import annotations

import csv
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

from pipeline.cli import cli
from pipeline.delivery import load_config, run_bookings
from pipeline.delivery._engine import cells_json as _cells_json
from pipeline.ledger import Ledger, SkippedRow, skipped_rows, skipped_rows_entries, verify_chain
from pipeline.ledger._entries import SKIPPED_ROWS_PER_ENTRY
from pipeline.mapping import MappedRow

from ..sites import Site, booking_rows

ROWS = 120


@dataclass
class Rerun:
    site: Site
    first: int
    second: int


@pytest.fixture
def rerun(site: Site) -> Rerun:
    """A real run of ROWS rows, then the same file again: every row skipped."""
    csv_path = site.write_csv(booking_rows(ROWS))
    config = load_config(site.config)
    first = run_bookings(csv_path, site.mapping, config)
    second = run_bookings(csv_path, site.mapping, config)
    assert first.counts["delivered"] == ROWS and second.counts["skipped"] == ROWS
    return Rerun(site, first.run_id, second.run_id)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_a_rerun_lists_its_skipped_rows_in_one_chained_entry_read_back_row_by_row(rerun: Rerun) -> None:
    with Ledger.open(rerun.site.ledger, create=False) as ledger:
        events = [e.event for e in ledger.entries(rerun.second)]
        delivered = {e.key: e for e in ledger.row_states(rerun.first)}
        skipped = list(ledger.row_states(rerun.second))
        assert verify_chain(ledger.entries()) is None
    assert events == ["run_started", "skipped_rows", "run_finished"]  # no per-row entry for a skip
    assert [e.line for e in skipped] == list(range(2, ROWS + 2))  # file order, header on line 1
    assert {e.state for e in skipped} == {"skipped"}
    for e in skipped:  # the body delivered before, and the cells it was delivered from
        assert e.request_sha256 == delivered[e.key].request_sha256
        assert e.cells_sha256 == delivered[e.key].cells_sha256
        assert e.external_id == delivered[e.key].external_id


def test_skipped_rows_are_split_into_entries_of_at_most_the_limit_and_read_back_exactly() -> None:
    rows = [
        SkippedRow(i + 2, f'K{i}/\u00e9"x', None if i % 3 else f"E{i}", f"{i:064x}", f"{i + 1:064x}")
        for i in range(2 * SKIPPED_ROWS_PER_ENTRY + 1)
    ]
    entries = skipped_rows_entries(7, rows)
    assert [len(skipped_rows(e)) for e in entries] == [SKIPPED_ROWS_PER_ENTRY, SKIPPED_ROWS_PER_ENTRY, 1]
    assert [r for e in entries for r in skipped_rows(e)] == rows
    assert {(e.run_id, e.event, e.state) for e in entries} == {(7, "skipped_rows", "skipped")}


def test_the_report_counts_and_lists_every_skipped_row_with_its_original_cells(rerun: Rerun, tmp_path: Path) -> None:
    ledger = str(rerun.site.ledger)
    as_json = invoke("report", "--ledger", ledger, "--format", "json")
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["runs"][0]["counts"]["skipped"] == ROWS
    assert [(r["line"], r["state"], r["attempts"]) for r in data["records"]] == [
        (line, "skipped", 0) for line in range(2, ROWS + 2)
    ]
    out = tmp_path / "report.csv"
    as_csv = invoke("report", "--ledger", ledger, "--format", "csv", "--output", str(out))
    assert as_csv.exit_code == 0, as_csv.output
    with out.open(encoding="utf-8", newline="") as fh:
        records = list(csv.DictReader(fh))
    assert len(records) == ROWS
    assert records[0]["state"] == "skipped" and records[0]["Inmate ID"] == "P000001"
    assert records[-1]["Booking"] == f"B{ROWS:06d}"
    text = invoke("report", "--ledger", ledger)
    assert f"rows      {ROWS}: delivered 0, skipped {ROWS}," in text.output
    only = invoke("report", "--ledger", ledger, "--format", "json", "--state", "skipped")
    assert len(json.loads(only.output)["records"]) == ROWS
    none = invoke("report", "--ledger", ledger, "--format", "json", "--state", "invalid")
    assert json.loads(none.output)["records"] == []
    both = invoke("report", "--ledger", ledger, "--format", "json", "--all")
    assert [r["run_id"] for r in json.loads(both.output)["records"]] == [rerun.first] * ROWS + [rerun.second] * ROWS


def test_audit_names_the_skipped_row_whose_stored_cells_were_replaced(rerun: Rerun) -> None:
    site = rerun.site
    with Ledger.open(site.ledger, create=False) as ledger:
        victim = next(e for e in ledger.row_states(rerun.second) if e.line == 10)
        seq = victim.seq
    db = sqlite3.connect(site.ledger)
    with db:
        db.execute("UPDATE bodies SET body=? WHERE sha256=?", (b'{"Inmate ID":"P999999"}', victim.cells_sha256))
    db.close()
    result = invoke("audit", "--ledger", str(site.ledger), "--config", str(site.config))
    assert result.exit_code == 1, result.output
    failed = [line for line in result.output.splitlines() if line.startswith("FAILED") and f"entry {seq}" in line]
    assert failed, result.output
    assert f"line 10, key {victim.key}" in failed[0] and "original cells body was replaced" in failed[0]


def test_audit_names_an_edited_skipped_rows_entry(rerun: Rerun) -> None:
    site = rerun.site
    db = sqlite3.connect(site.ledger)
    with db:
        seq = db.execute("SELECT seq FROM entries WHERE event='skipped_rows'").fetchone()[0]
        db.execute("UPDATE entries SET detail=replace(detail, 'P000007', 'P000070') WHERE seq=?", (seq,))
    db.close()
    result = invoke("audit", "--ledger", str(site.ledger), "--config", str(site.config))
    assert result.exit_code == 1
    expected = f"FAILED entry {seq} of run {rerun.second}: the hash chain breaks here: its contents do not match"
    assert expected in result.output, result.output


def test_prune_keeps_the_cells_that_a_later_skipped_rows_entry_names(rerun: Rerun) -> None:
    site = rerun.site
    with sqlite3.connect(site.ledger) as db:
        cutoff = db.execute("SELECT started_at FROM runs WHERE run_id=?", (rerun.second,)).fetchone()[0]
    result = invoke("ledger", "prune", "--ledger", str(site.ledger), "--before", cutoff)
    assert result.exit_code == 0, result.output
    with Ledger.open(site.ledger, create=False) as ledger:
        answers = [e.response_sha256 for e in ledger.entries(rerun.first) if e.event == "attempt"]
        assert answers and all(ledger.body(sha) is None for sha in answers)  # run 1's own answers: pruned
        skipped = list(ledger.row_states(rerun.second))
        assert all(ledger.body(e.cells_sha256) is not None for e in skipped)  # named by run 2: kept
        assert all(ledger.body(e.request_sha256) is not None for e in skipped)
    audited = invoke("audit", "--ledger", str(site.ledger), "--config", str(site.config))
    assert audited.exit_code == 0, audited.output


def test_a_malformed_skipped_rows_entry_is_a_one_line_report_error(rerun: Rerun) -> None:
    db = sqlite3.connect(rerun.site.ledger)
    with db:
        seq = db.execute("SELECT seq FROM entries WHERE event='skipped_rows'").fetchone()[0]
        db.execute("UPDATE entries SET detail='{}' WHERE seq=?", (seq,))
    db.close()
    result = invoke("report", "--ledger", str(rerun.site.ledger))
    assert result.exit_code == 2
    assert f"entry {seq}: its detail is not a list of skipped rows" in result.output
    assert "cws-pipeline audit" in result.output and "Traceback" not in result.output
    with sqlite3.connect(rerun.site.ledger) as db:
        cutoff = db.execute("SELECT started_at FROM runs WHERE run_id=?", (rerun.second,)).fetchone()[0]
        kept = db.execute("SELECT COUNT(*) FROM bodies WHERE body IS NOT NULL").fetchone()[0]
    pruned = invoke("ledger", "prune", "--ledger", str(rerun.site.ledger), "--before", cutoff)
    assert pruned.exit_code == 2 and f"entry {seq}: its detail is not a list of skipped rows" in pruned.output
    with sqlite3.connect(rerun.site.ledger) as db:  # it cannot tell which bodies the entry names: prunes none
        assert db.execute("SELECT COUNT(*) FROM bodies WHERE body IS NOT NULL").fetchone()[0] == kept


_names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6)


@given(header=st.lists(_names, min_size=1, max_size=6), data=st.data())
def test_cells_json_is_byte_for_byte_what_json_dumps_writes(header: list[str], data: st.DataObject) -> None:
    width = data.draw(st.integers(len(header) - 1 if len(header) > 1 else 1, len(header) + 1))
    cells = tuple(data.draw(st.lists(_names, min_size=width, max_size=width)))
    row = MappedRow(2, "k", None, None, (), tuple(header), cells)
    expected = json.dumps(row.cells, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert _cells_json(row) == expected
