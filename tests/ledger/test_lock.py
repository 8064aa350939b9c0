"""RunLock: one run per ledger; `status` can ask who holds it without ever making a run fail to start."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

import pytest

from pipeline._errors import LedgerLocked
from pipeline.ledger._lock import RunLock


def test_holder_names_the_run_holding_the_lock_and_none_otherwise(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    assert RunLock.holder(ledger) is None  # no lock file yet
    with RunLock(ledger):
        held = RunLock.holder(ledger)
        assert held is not None and held["pid"] == os.getpid() and str(held["started_at"]).endswith("+00:00")
    assert RunLock.holder(ledger) is None


def test_a_run_starting_while_status_looks_at_the_lock_still_gets_it(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    with RunLock(ledger):  # an earlier run left the lock file
        pass
    fd = os.open(ledger.with_name("ledger.sqlite.lock"), os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)  # what holder() takes for an instant
    threading.Timer(0.2, os.close, (fd,)).start()
    with RunLock(ledger):
        assert RunLock.holder(ledger) is not None


def test_a_second_run_is_refused_naming_the_first(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    with RunLock(ledger):
        started = time.monotonic()
        with pytest.raises(LedgerLocked, match=rf"another run holds the ledger \(pid {os.getpid()}, started "):
            RunLock(ledger).acquire()
    assert time.monotonic() - started < 5
