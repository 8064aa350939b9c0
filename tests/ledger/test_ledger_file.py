"""The ledger file's rules, attacked as a hostile review did: write-protected copies, loose permissions and
damaged pages, against ledgers made by real runs with the real CLI."""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pipeline.cli import cli
from pipeline.delivery import load_config, run_bookings

from ..sites import Site, booking_rows

NOBODY = 65534


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def run_args(site: Site, csv: Path) -> list[str]:
    return ["run", str(csv), "--mapping", str(site.mapping), "--config", str(site.config)]


@pytest.fixture
def delivered(site: Site) -> Path:
    """A site whose ledger holds two real runs of 150 rows (so the entries table spans many pages)."""
    csv = site.write_csv(booking_rows(150))
    config = load_config(site.config)
    run_bookings(csv, site.mapping, config)
    run_bookings(csv, site.mapping, config)
    return csv


def as_someone_else(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI as an auditor who may read everything but write nothing here.

    Root ignores file modes, so as root the command runs as nobody keeping only the right to read and
    search (CAP_DAC_READ_SEARCH: the interpreter may live under /root), never the right to write.
    """
    command = [sys.executable, "-m", "pipeline", *args]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv is not None, "setpriv (util-linux) is needed to run as another user"
        command = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                   "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", *command]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, cwd="/")


@pytest.fixture
def archive_dir() -> Iterator[Path]:
    """A directory anyone may enter (an auditor's copy must be reachable by another user), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="cws-archive-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for p in [path, *path.rglob("*")]:
            p.chmod(0o700 if p.is_dir() else 0o600)
        shutil.rmtree(path)


def test_report_audit_and_status_read_a_write_protected_copy_in_a_read_only_directory(
    site: Site, delivered: Path, archive_dir: Path
) -> None:
    ledger = archive_dir / "ledger.sqlite"
    shutil.copy(site.ledger, ledger)
    keyring = archive_dir / "coremr"
    shutil.copytree(site.server_keyring, keyring)
    shutil.copy(site.client_keys.public, archive_dir / "rsa.public")
    config = archive_dir / "cws.toml"
    config.write_text(site.config.read_text().replace(str(site.server_keyring), str(keyring)))
    for p in archive_dir.rglob("*"):
        p.chmod(0o555 if p.is_dir() else 0o444)
    archive_dir.chmod(0o555)
    before = {p.name: p.read_bytes() for p in archive_dir.iterdir() if p.is_file()}

    report = as_someone_else(["report", "-l", str(ledger), "--all"])
    assert report.returncode == 0, report.stderr
    assert "Bookings: 150 distinct" in report.stdout
    audit = as_someone_else(
        ["audit", "-c", str(config), "-l", str(ledger), "--public-key", str(archive_dir / "rsa.public")]
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "Audit passed" in audit.stdout
    status = as_someone_else(["status", "-l", str(ledger), "--json"])
    assert status.returncode == 0, status.stderr
    assert '"status": "ok"' in status.stdout
    assert {p.name: p.read_bytes() for p in archive_dir.iterdir() if p.is_file()} == before  # no -shm, no change


def test_a_run_refuses_a_write_protected_ledger_and_leaves_no_shm_that_breaks_later_runs(
    site: Site, delivered: Path
) -> None:
    site.ledger.chmod(0o400)
    sent = site.server.counters().create_attempts
    csv = site.write_csv(booking_rows(151))
    refused = invoke(*run_args(site, csv))
    assert refused.exit_code == 2, refused.output
    assert f"{site.ledger}: write-protected (mode 0400)" in refused.output
    assert f"run `chmod 600 {site.ledger}`" in refused.output and "Traceback" not in refused.output
    assert not site.ledger.with_name("ledger.sqlite-shm").exists()
    assert site.server.counters().create_attempts == sent  # nothing was sent
    site.ledger.chmod(0o600)
    again = invoke(*run_args(site, csv))
    assert again.exit_code == 0, again.output  # the next run, once the mode is right, just works
    assert site.server.counters().create_attempts["P000151"] == 1


@pytest.mark.parametrize("suffix", ["", "-shm"])
def test_a_ledger_others_can_read_is_refused_with_the_chmod_to_run(site: Site, delivered: Path, suffix: str) -> None:
    loose = site.ledger.with_name(site.ledger.name + suffix)
    if not loose.exists():
        loose.write_bytes(b"")  # a -shm left behind by an earlier process with the common 022 umask
    loose.chmod(0o644)
    run = invoke(*run_args(site, delivered))
    report = invoke("report", "-c", str(site.config))
    status = invoke("status", "-c", str(site.config))
    for result in (run, report, status):
        assert result.exit_code == 2, result.output
        assert f"{loose}: group or others can read it (mode 0644)" in result.output
        assert f"run `chmod 600 {loose}`" in result.output and "Traceback" not in result.output
    loose.chmod(0o600)
    assert invoke("report", "-c", str(site.config)).exit_code == 0


def damage_pages(ledger: Path, table: str, count: int) -> list[int]:
    """Overwrite some of a table's leaf pages in the middle of the file with random bytes, as a failing disk does."""
    db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        pages = [r[0] for r in db.execute("SELECT pageno FROM dbstat WHERE name=? AND pagetype='leaf' ORDER BY pageno",
                                          (table,))]  # fmt: skip
    finally:
        db.close()
    chosen = pages[len(pages) // 3 : len(pages) // 3 + count]
    rng = random.Random(7)
    with ledger.open("r+b") as fh:
        for page in chosen:
            fh.seek((page - 1) * page_size)
            fh.write(bytes(rng.randrange(256) for _ in range(page_size)))
    return chosen


def test_a_damaged_ledger_fails_audit_in_one_line_and_stops_report_status_and_run(site: Site, delivered: Path) -> None:
    # Pages of the first run's entries: the latest run's report never reads them, and it used to carry on.
    assert len(damage_pages(site.ledger, "entries", 3)) == 3
    sent = dict(site.server.counters().create_attempts)
    recorded = site.ledger.read_bytes()
    audit = invoke("audit", "-c", str(site.config))
    assert audit.exit_code == 1
    assert audit.output.count("\n") == 1 and audit.output.startswith(f"Audit FAILED: {site.ledger}: the ledger file"
                                                                      " is damaged (SQLite: ")  # fmt: skip
    for args in (["report", "-c", str(site.config)], ["status", "-c", str(site.config)], run_args(site, delivered)):
        result = invoke(*args)
        assert result.exit_code == 6, (args, result.output)  # a damaged ledger's own exit code
        assert f"{site.ledger}: the ledger file is damaged" in result.output, result.output
        assert "Traceback" not in result.output and result.output.count("\n") == 1
    assert dict(site.server.counters().create_attempts) == sent  # the run sent nothing
    # and wrote nothing: the check runs beside the run's first reads, and its first write waits for the verdict
    assert site.ledger.read_bytes() == recorded
    wal = site.ledger.with_name(site.ledger.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0 or b"run_started" not in wal.read_bytes()


def test_the_ledger_and_its_side_files_are_created_private(site: Site, delivered: Path) -> None:
    for path in site.ledger.parent.glob(site.ledger.name + "*"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
