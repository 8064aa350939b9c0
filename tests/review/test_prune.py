"""`cws-pipeline ledger prune`: body bytes go, entries stay, the chain verifies, and audit still passes."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pipeline.cli import cli
from pipeline.ledger import Ledger, RunLock, verify_chain
from pipeline.review import parse_before

from ..sites import Site
from .mixed_ledger import MixedLedger, make_mixed_ledger


@pytest.fixture
def mixed(site: Site) -> MixedLedger:
    """A ledger of two real runs with rows in several states (see test_report)."""
    return make_mixed_ledger(site)


def prune(ledger: Path, *args: str) -> Result:
    """Invoke `cws-pipeline ledger prune --ledger LEDGER ARGS`."""
    return CliRunner().invoke(cli, ["ledger", "prune", "--ledger", str(ledger), *args])


def stored(ledger: Path) -> tuple[int, int]:
    """(bodies with bytes, bodies pruned)."""
    with sqlite3.connect(ledger) as db:
        kept = db.execute("SELECT COUNT(*) FROM bodies WHERE body IS NOT NULL").fetchone()[0]
        gone = db.execute("SELECT COUNT(*) FROM bodies WHERE body IS NULL AND pruned_at IS NOT NULL").fetchone()[0]
    return int(kept), int(gone)


def records(ledger: Path) -> list[dict[str, object]]:
    """Every record of every run, as the JSON report gives them."""
    result = CliRunner().invoke(cli, ["report", "--ledger", str(ledger), "--all", "--format", "json"])
    return list(json.loads(result.output)["records"])


def test_prune_deletes_bodies_keeps_entries_and_audit_counts_them_not_checkable(mixed: MixedLedger) -> None:
    ledger = mixed.site.ledger
    before = records(ledger)
    kept, _ = stored(ledger)
    result = prune(ledger, "--before", datetime.now(UTC).isoformat())
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Deleted {kept} stored bodies (")
    assert stored(ledger) == (0, kept)
    assert records(ledger) == before  # states, hashes, headers and reasons are all still there
    with Ledger.open(ledger, create=False) as opened:
        assert verify_chain(opened.entries()) is None
    audit = CliRunner().invoke(cli, ["audit", "--ledger", str(ledger), "--config", str(mixed.site.config)])
    assert audit.exit_code == 0, audit.output
    run1 = re.search(rf"Run {mixed.first}: (\d+) entries: (\d+) proven, (\d+) not checkable", audit.output)
    assert run1 is not None and int(run1[3]) > 0
    assert "Audit passed" in audit.output
    out = mixed.site.dir / "after.csv"
    CliRunner().invoke(cli, ["report", "--ledger", str(ledger), "--format", "csv", "--output", str(out)])
    assert "Last1" not in out.read_text(encoding="utf-8")  # the original cells are gone with the bodies


def test_prune_keeps_bodies_a_later_run_still_names(mixed: MixedLedger) -> None:
    ledger = mixed.site.ledger
    with sqlite3.connect(ledger) as db:
        second_started = db.execute("SELECT started_at FROM runs WHERE run_id=?", (mixed.second,)).fetchone()[0]
    assert prune(ledger, "--before", second_started).exit_code == 0
    with Ledger.open(ledger, create=False) as opened:
        first_attempt = next(e for e in opened.entries(mixed.first) if e.event == "attempt")
        later_state = next(opened.row_states(mixed.second))
        assert opened.body(first_attempt.response_sha256) is None  # run 1's answers are older than the cut-off
        assert opened.body(later_state.cells_sha256) is not None  # the same cells are named by run 2: kept


@pytest.mark.parametrize("vacuum", [[], ["--vacuum"]])
def test_pruned_patient_data_does_not_linger_in_the_file(mixed: MixedLedger, vacuum: list[str]) -> None:
    ledger = mixed.site.ledger
    result = prune(ledger, "--before", datetime.now(UTC).isoformat(), *vacuum)
    assert result.exit_code == 0, result.output
    raw = b"".join(p.read_bytes() for p in ledger.parent.glob(ledger.name + "*") if p.is_file())
    assert b"Last7" not in raw and b"First3" not in raw


def test_dry_run_counts_and_changes_nothing(mixed: MixedLedger) -> None:
    ledger = mixed.site.ledger
    kept = stored(ledger)
    result = prune(ledger, "--before", "0d", "--dry-run")
    assert result.exit_code == 0 and result.output.startswith(f"Would delete {kept[0]} stored bodies")
    assert stored(ledger) == kept


def test_prune_with_an_old_date_deletes_nothing(mixed: MixedLedger) -> None:
    result = prune(mixed.site.ledger, "--before", "2020-01-01")
    assert result.output.startswith("Deleted 0 stored bodies (0 bytes) stored before 2020-01-01T00:00:00.000+00:00")


@pytest.mark.parametrize(
    ("before", "message"),
    [("last week", "--before 'last week': give a date like"), ("2999-01-01", "is in the future")],
)
def test_bad_cut_off_is_a_one_line_error(mixed: MixedLedger, before: str, message: str) -> None:
    result = prune(mixed.site.ledger, "--before", before)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_prune_waits_for_no_run(mixed: MixedLedger) -> None:
    with RunLock(mixed.site.ledger):
        result = prune(mixed.site.ledger, "--before", "0d")
    assert result.exit_code == 4 and "another run holds the ledger" in result.output


def test_cut_off_forms() -> None:
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert parse_before("90d", now) == now - timedelta(days=90)
    assert parse_before("2026-01-31") == datetime(2026, 1, 31, tzinfo=UTC)
    assert parse_before("2026-01-31T08:00:00-05:00").astimezone(UTC) == datetime(2026, 1, 31, 13, tzinfo=UTC)
