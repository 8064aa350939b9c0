"""`cws-pipeline audit`: a real ledger passes; each kind of tampering with the SQLite file is caught and named."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pipeline.cli import cli
from pipeline.delivery import load_config
from pipeline.ledger import Ledger
from pipeline.review import audit_ledger, our_public_key

from ..sites import KeyPair, Site
from .mixed_ledger import MixedLedger, make_mixed_ledger


@pytest.fixture
def mixed(site: Site) -> MixedLedger:
    """A ledger of two real runs with rows in several states (see test_report)."""
    return make_mixed_ledger(site)


def audit(mixed: MixedLedger, *args: str) -> Result:
    """Invoke `cws-pipeline audit --ledger LEDGER --config CONFIG ARGS`."""
    site = mixed.site
    return CliRunner().invoke(cli, ["audit", "--ledger", str(site.ledger), "--config", str(site.config), *args])


def seq_of(ledger: Path, where: str, args: tuple[object, ...] = ()) -> int:
    """The seq of the first entry matching a WHERE clause."""
    with sqlite3.connect(ledger) as db:
        row = db.execute(f"SELECT seq FROM entries WHERE {where} ORDER BY seq LIMIT 1", args).fetchone()  # noqa: S608
    assert row is not None, where
    return int(row[0])


def tamper(ledger: Path, sql: str, args: tuple[object, ...] = ()) -> None:
    """Edit the ledger file directly, as someone with file access could."""
    db = sqlite3.connect(ledger)
    with db:
        assert db.execute(sql, args).rowcount >= 1, sql
    db.close()


def test_untouched_ledger_passes_and_counts_answers_unverified_at_the_time(mixed: MixedLedger) -> None:
    result = audit(mixed)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "chain intact" in out
    with Ledger.open_read_only(mixed.site.ledger) as ledger:
        head = ledger.head()
    assert head is not None
    assert out.splitlines()[-1] == (
        f"Audit passed: everything that could be checked holds ({head.seq} entries;"
        f" chain head: entry {head.seq} hash {head.hash})."
    )
    first = re.search(rf"Run {mixed.first}: (\d+) entries: (\d+) proven, 0 not checkable .*?, 1 with answers", out)
    assert first is not None, out
    # run 1: 7 POSTs + 1 lookup, each with our signature; 7 answers verified then (the 8th was the corrupt one)
    assert "re-verified 8 request and 7 response signatures" in out.splitlines()[2]
    assert "Answers recorded as unverified when they arrived are counted, not failed" in out


def test_audit_library_result_names_counts_per_run(mixed: MixedLedger) -> None:
    config = load_config(mixed.site.config)
    with Ledger.open(mixed.site.ledger, create=False) as ledger:
        result = audit_ledger(ledger, config)
        total = sum(1 for _ in ledger.entries())
    assert result.ok and result.exit_code == 0 and result.entries == total
    run = result.runs[mixed.first]
    assert run.unverified == 1 and run.failed == 0 and run.proven == run.entries - 1


def test_changed_byte_in_a_stored_signature_header_is_caught(mixed: MixedLedger) -> None:
    ledger = mixed.site.ledger
    seq = seq_of(ledger, "event='attempt' AND http_status=201")
    with sqlite3.connect(ledger) as db:
        header = db.execute("SELECT request_authorization FROM entries WHERE seq=?", (seq,)).fetchone()[0]
    i = len(header) - 10
    edited = header[:i] + ("A" if header[i] != "A" else "B") + header[i + 1 :]
    tamper(ledger, "UPDATE entries SET request_authorization=? WHERE seq=?", (edited, seq))
    result = audit(mixed)
    assert result.exit_code == 1
    assert f"entry {seq}: its contents do not match its hash (the entry was edited)" in result.output
    assert f"FAILED entry {seq} of run {mixed.first}: (attempt, line " in result.output
    assert "our request signature does not match the stored request body" in result.output


def test_changed_state_is_caught(mixed: MixedLedger) -> None:
    ledger = mixed.site.ledger
    seq = seq_of(ledger, "event='state' AND state='invalid'")
    tamper(ledger, "UPDATE entries SET state='delivered' WHERE seq=?", (seq,))
    result = audit(mixed)
    assert result.exit_code == 1
    assert f"BROKEN at entry {seq}: its contents do not match its hash" in result.output


def test_deleted_entry_is_caught(mixed: MixedLedger) -> None:
    ledger = mixed.site.ledger
    seq = seq_of(ledger, "event='state' AND state='rejected'")
    tamper(ledger, "DELETE FROM entries WHERE seq=?", (seq,))
    result = audit(mixed)
    assert result.exit_code == 1
    assert f"entry {seq + 1}: entry {seq} is missing before it (deleted or reordered entries)" in result.output


def test_deleted_last_entries_are_caught_by_the_runs_table(mixed: MixedLedger) -> None:
    ledger = mixed.site.ledger
    finished = seq_of(ledger, "event='run_finished' AND run_id=?", (mixed.second,))
    tamper(ledger, "DELETE FROM entries WHERE seq>=?", (finished,))  # the tail has no successor to break
    result = audit(mixed)
    assert result.exit_code == 1 and "chain intact" in result.output
    assert f"FAILED run {mixed.second}: the runs table says finished" in result.output
    assert "but the chain has no run_finished entry" in result.output


def test_swapped_entries_are_caught(mixed: MixedLedger) -> None:
    ledger = mixed.site.ledger
    a = seq_of(ledger, "event='attempt'")
    b = seq_of(ledger, "event='attempt' AND seq>?", (a,))
    db = sqlite3.connect(ledger)
    names = [r[1] for r in db.execute("PRAGMA table_info(entries)") if r[1] != "seq"]
    columns = ", ".join(names)
    row_a = db.execute(f"SELECT {columns} FROM entries WHERE seq=?", (a,)).fetchone()  # noqa: S608
    row_b = db.execute(f"SELECT {columns} FROM entries WHERE seq=?", (b,)).fetchone()  # noqa: S608
    # Exchange every column but seq: each entry keeps its own hash, so only its place in the chain is wrong.
    assignments = ", ".join(f"{n}=?" for n in names)
    with db:
        db.execute(f"UPDATE entries SET {assignments} WHERE seq=?", (*row_b, a))  # noqa: S608
        db.execute(f"UPDATE entries SET {assignments} WHERE seq=?", (*row_a, b))  # noqa: S608
    db.close()
    result = audit(mixed)
    assert result.exit_code == 1
    assert f"BROKEN at entry {a}: does not follow the entry before it" in result.output


def test_replaced_response_body_is_caught_naming_the_entries(mixed: MixedLedger) -> None:
    ledger = mixed.site.ledger
    seq = seq_of(ledger, "event='attempt' AND http_status=201 AND verification='ok'")
    with sqlite3.connect(ledger) as db:
        sha = db.execute("SELECT response_sha256 FROM entries WHERE seq=?", (seq,)).fetchone()[0]
    tamper(ledger, "UPDATE bodies SET body=? WHERE sha256=?", (b'{"id": "forged"}', sha))
    result = audit(mixed)
    assert result.exit_code == 1 and "chain intact" in result.output  # the entries are untouched; the body is not
    assert f"FAILED entry {seq} of run {mixed.first}: (attempt, line " in result.output
    assert "the stored response body was replaced" in result.output
    state_seq = seq_of(ledger, "event='state' AND response_sha256=?", (sha,))
    assert f"FAILED entry {state_seq} of run {mixed.first}: (state, line " in result.output


def test_edited_runs_row_is_caught(mixed: MixedLedger) -> None:
    ledger = mixed.site.ledger
    tamper(ledger, "UPDATE runs SET source_sha256=? WHERE run_id=?", ("f" * 64, mixed.first))
    tamper(ledger, "UPDATE runs SET counts=? WHERE run_id=?", ('{"delivered": 8}', mixed.second))
    result = audit(mixed)
    assert result.exit_code == 1
    started = seq_of(ledger, "event='run_started' AND run_id=?", (mixed.first,))
    finished = seq_of(ledger, "event='run_finished' AND run_id=?", (mixed.second,))
    assert f"FAILED entry {started} of run {mixed.first}: the runs table differs from this run_started entry in" \
           " source_sha256 (the runs table was edited)" in result.output  # fmt: skip
    assert f"FAILED entry {finished} of run {mixed.second}: the runs table differs from this run_finished entry in" \
           " counts" in result.output  # fmt: skip


def test_answer_signed_by_another_key_is_caught(mixed: MixedLedger, other_keys: KeyPair, tmp_path: Path) -> None:
    impostor = tmp_path / "impostor-keyring"
    impostor.mkdir()
    (impostor / "coremr.pem").write_bytes(other_keys.public.read_bytes())
    mixed.site.write_config(server_keys=str(impostor))
    result = audit(mixed)
    assert result.exit_code == 1
    assert "recorded as verified, but CorEMR's signature over the stored response now fails: bad signature" in (
        result.output
    )


def test_request_signatures_are_checked_with_our_public_key(mixed: MixedLedger, other_keys: KeyPair) -> None:
    result = audit(mixed, "--public-key", str(other_keys.public))
    assert result.exit_code == 1
    assert "our request signature does not match the stored request body with our public key" in result.output


def test_our_public_key_is_the_file_beside_the_private_key_or_derived_from_it(site: Site, tmp_path: Path) -> None:
    beside = our_public_key(load_config(site.config))  # conftest writes rsa.public beside rsa.private
    alone = tmp_path / "alone"
    alone.mkdir()
    private = alone / "county.private"
    private.write_bytes(site.client_keys.private.read_bytes())
    private.chmod(0o600)
    derived = our_public_key(load_config(site.write_config(private_key=str(private))))
    expected = site.client_keys.key.public_key().public_numbers()
    assert beside.public_numbers() == derived.public_numbers() == expected


def test_audit_usage_errors_are_one_line(mixed: MixedLedger, tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(cli, ["audit", "--ledger", str(mixed.site.ledger), "--config", str(tmp_path / "x.toml")])
    assert missing.exit_code == 2 and "x.toml: no such config file" in missing.output
    nope = runner.invoke(cli, ["audit", "--ledger", str(tmp_path / "n.sqlite"), "--config", str(mixed.site.config)])
    assert nope.exit_code == 2 and "n.sqlite: no such ledger file" in nope.output
    assert "Traceback" not in missing.output + nope.output
