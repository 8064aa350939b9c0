"""Chain heads kept elsewhere: each run appends its head to the site's head log, and `audit` checks the ledger
against it, which catches a full rewrite of the file that the chain alone cannot."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import fields
from pathlib import Path

from click.testing import CliRunner, Result

from pipeline.cli import cli
from pipeline.delivery import load_config, run_bookings
from pipeline.ledger import Entry, Ledger, verify_chain
from pipeline.review import audit_ledger

from ..sites import Site, booking_rows


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def three_runs(site: Site, head_log: Path) -> None:
    site.write_config(head_log=str(head_log))
    csv = site.write_csv(booking_rows(6))
    for _ in range(3):
        assert run_bookings(csv, site.mapping, load_config(site.config)).exit_code == 0


def rewrite_without(ledger: Path, key: str) -> None:
    """The attack: delete every trace of one row and recompute the chain, with nothing but sqlite3 and hashlib."""
    hashed = [f.name for f in fields(Entry) if f.name != "hash"]  # how entries are hashed, as the source shows
    db = sqlite3.connect(ledger)
    columns = [r[1] for r in db.execute("PRAGMA table_info(entries)")]
    rows = [dict(zip(columns, r, strict=True)) for r in db.execute("SELECT * FROM entries ORDER BY seq")]
    db.execute("DELETE FROM entries")
    prev = "0" * 64
    for seq, row in enumerate((r for r in rows if r["key"] != key), 1):
        if row["event"] == "skipped_rows":
            listed = json.loads(row["detail"])
            listed["rows"] = [r for r in listed["rows"] if r[1] != key]
            row["detail"] = json.dumps(listed, ensure_ascii=False, separators=(",", ":"))
        row["seq"], row["prev_hash"] = seq, prev
        canonical = json.dumps([row[n] for n in hashed], ensure_ascii=False, separators=(",", ":"))
        row["hash"] = prev = hashlib.sha256(canonical.encode()).hexdigest()
        db.execute(f"INSERT INTO entries ({','.join(row)}) VALUES ({','.join('?' * len(row))})", list(row.values()))  # noqa: S608
    db.execute("DELETE FROM row_status WHERE key=?", (key,))
    db.commit()
    db.close()


def test_each_run_appends_its_final_chain_head_to_the_head_log(site: Site, tmp_path: Path) -> None:
    head_log = tmp_path / "worm" / "cws-heads.log"
    head_log.parent.mkdir()
    three_runs(site, head_log)
    lines = [json.loads(line) for line in head_log.read_text(encoding="utf-8").splitlines()]
    assert [line["run_id"] for line in lines] == [1, 2, 3]
    with Ledger.open_read_only(site.ledger) as ledger:
        for line in lines:
            entry = ledger.entry_at(line["seq"])
            assert entry is not None and entry.hash == line["hash"] and entry.event == "run_finished"
            assert entry.run_id == line["run_id"] and line["ledger"] == str(site.ledger)
        head = ledger.head()
    assert head is not None and (lines[-1]["seq"], lines[-1]["hash"]) == (head.seq, head.hash)
    audit = invoke("audit", "-c", str(site.config))  # the config's head log is checked by default
    assert audit.exit_code == 0, audit.output
    assert f"head log {head_log}: 3 recorded heads checked, 0 not in the chain" in audit.output


def test_a_full_rewrite_passes_the_chain_but_not_the_head_log(site: Site, tmp_path: Path) -> None:
    head_log = tmp_path / "cws-heads.log"
    three_runs(site, head_log)
    rewrite_without(site.ledger, "P000003/B000003")
    config = load_config(site.config)
    with Ledger.open_read_only(site.ledger) as ledger:
        assert verify_chain(ledger.entries()) is None
        assert all(e.key != "P000003/B000003" for e in ledger.row_states())
        assert audit_ledger(ledger, config).ok  # without a head kept elsewhere, the rewrite cannot be seen
    result = invoke("audit", "-c", str(site.config), "--heads", str(head_log))
    assert result.exit_code == 1, result.output
    assert "chain intact" in result.output
    assert f"FAILED ledger: head log {head_log}, line 1: the head after run 1 (entry " in result.output
    assert "(the chain was rewritten)" in result.output
    assert "line 3: the head after run 3" in result.output and "(entries were removed)" in result.output
    assert result.output.splitlines()[-1].startswith("Audit FAILED: 3 problem(s)")


def test_a_head_log_that_cannot_be_written_is_one_line_and_the_run_stays_recorded(site: Site, tmp_path: Path) -> None:
    blocked = tmp_path / "a-directory"
    blocked.mkdir()
    site.write_config(head_log=str(blocked))  # a directory where the file should be
    csv = site.write_csv(booking_rows(2))
    result = invoke("run", str(csv), "--mapping", str(site.mapping), "--config", str(site.config))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"Error: {blocked}: cannot append the chain head (Is a directory); run 1 is recorded" in result.output
    assert '"run_id": 1, "seq": ' in result.output  # the line to append by hand
    with Ledger.open_read_only(site.ledger) as ledger:
        assert ledger.runs()[0].status == "finished"


def test_a_head_log_in_a_missing_directory_is_refused_before_anything_is_sent(site: Site, tmp_path: Path) -> None:
    site.write_config(head_log=str(tmp_path / "not-mounted" / "heads.log"))
    csv = site.write_csv(booking_rows(1))
    result = invoke("run", str(csv), "--mapping", str(site.mapping), "--config", str(site.config))
    assert result.exit_code == 2
    assert f"{site.config}: head_log: the directory {tmp_path / 'not-mounted'} does not exist" in result.output
    assert not site.server.counters().create_attempts


def test_a_head_log_line_that_is_not_a_head_is_named(site: Site, tmp_path: Path) -> None:
    head_log = tmp_path / "heads.log"
    three_runs(site, head_log)
    head_log.write_text(head_log.read_text() + "not json\n")
    result = invoke("audit", "-c", str(site.config))
    assert result.exit_code == 2 and f"{head_log}: line 4: not a chain head line written by a run" in result.output


def test_a_missing_head_log_fails_the_audit_unless_the_site_keeps_none(site: Site, tmp_path: Path) -> None:
    head_log = tmp_path / "cws-heads.log"
    three_runs(site, head_log)
    head_log.unlink()  # what someone who rewrote the whole ledger would do next
    for args in (["audit", "-c", str(site.config)], ["audit", "-c", str(site.config), "--heads", str(head_log)]):
        result = invoke(*args)
        assert result.exit_code == 1, result.output
        failed = [line for line in result.output.splitlines() if line.startswith("FAILED")]
        assert failed == [
            f"FAILED ledger: the head log {head_log} is missing, so a rewrite of the whole ledger would go unnoticed:"
            " restore it from where it is kept (or, if this site keeps none, audit with --no-head-log)"
        ]
        assert result.output.splitlines()[-1].startswith("Audit FAILED: 1 problem(s)")
        assert "recorded heads checked" not in result.output
    report = invoke("report", "-c", str(site.config), "--audit")
    assert "Audit FAILED: 1 problem(s)" in report.output  # the report's verdict says the same
    told = invoke("audit", "-c", str(site.config), "--no-head-log")
    assert told.exit_code == 0, told.output
    assert told.output.splitlines()[-1].startswith("Audit passed")
    both = invoke("audit", "-c", str(site.config), "--no-head-log", "--heads", str(head_log))
    assert both.exit_code == 2 and "give --heads FILE or --no-head-log, not both" in both.output


def test_a_head_log_not_yet_written_is_no_failure_while_the_ledger_is_empty(site: Site, tmp_path: Path) -> None:
    site.write_config(head_log=str(tmp_path / "cws-heads.log"))  # no run has ended yet: nothing to record
    Ledger.open(site.ledger).close()
    result = invoke("audit", "-c", str(site.config))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith("Audit passed")
