"""RunLock: one run per ledger; `status` can ask who holds it without ever making a run fail to start."""

from __future__ import annotations

import fcntl
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from pipeline import LedgerLocked, UserInputError
from pipeline.ledger import RunLock


def test_holder_names_the_run_holding_the_lock_and_none_otherwise(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    assert RunLock.holder(ledger) is None  # no lock file yet
    with RunLock(ledger, create=True):
        held = RunLock.holder(ledger)
        assert held is not None and held["pid"] == os.getpid() and str(held["started_at"]).endswith("+00:00")
    assert RunLock.holder(ledger) is None


def test_a_run_starting_while_status_looks_at_the_lock_still_gets_it(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    with RunLock(ledger, create=True):  # an earlier run left the lock file
        pass
    fd = os.open(ledger.with_name("ledger.sqlite.lock"), os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)  # what holder() takes for an instant
    threading.Timer(0.2, os.close, (fd,)).start()
    with RunLock(ledger, create=True):
        assert RunLock.holder(ledger) is not None


def test_a_second_run_is_refused_naming_the_first(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    with RunLock(ledger, create=True):
        started = time.monotonic()
        with pytest.raises(LedgerLocked, match=rf"another run holds the ledger \(pid {os.getpid()}, started "):
            RunLock(ledger, create=True).acquire()
    assert time.monotonic() - started < 5


def test_the_lock_belongs_to_the_ledger_file_whatever_name_reaches_it(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    other_dir = tmp_path / "elsewhere"
    other_dir.mkdir()
    hard_link, symlink = other_dir / "copy.sqlite", other_dir / "alias.sqlite"
    with RunLock(ledger, create=True):
        assert stat.S_IMODE(ledger.stat().st_mode) == 0o600  # created for the run, private from the start
        os.link(ledger, hard_link)
        symlink.symlink_to(ledger)
        for name in (hard_link, symlink, tmp_path / "." / "ledger.sqlite"):
            with pytest.raises(LedgerLocked, match="another run holds the ledger"):
                RunLock(name).acquire()
    with RunLock(hard_link), pytest.raises(LedgerLocked, match="through another name for the same file"):
        RunLock(ledger).acquire()  # released, any name takes it again: here the hard link


def test_a_missing_ledger_is_not_created_unless_asked(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    with pytest.raises(UserInputError, match=r"ledger\.sqlite: no such ledger file"):
        RunLock(ledger).acquire()
    assert not ledger.exists()
