"""LedgerWriter: grouped commits, a durable submit that returns only once committed, and a failure (a real
"file too large" from the kernel) that reaches every waiter and stops every later write."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from pipeline.ledger import Entry, Ledger, LedgerWrite, LedgerWriter, RunInfo, verify_chain

INFO = RunInfo("b.csv", "0" * 64, "m.toml", "0" * 64, "https://coremr.example.org", "/ws/patients/", "county-jms",
               "CWS-SHA256", "test")  # fmt: skip


class GatedLedger(Ledger):
    """A real ledger whose appends can be held at a gate, counting each transaction and what it held."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.appends: list[tuple[int, bool]] = []  # (entries, durable) per transaction

    def append(self, write: LedgerWrite, *, durable: bool = True) -> None:
        self.entered.set()
        self.gate.wait(10)
        super().append(write, durable=durable)
        self.appends.append((len(write.entries), durable))


def state(run_id: int, line: int) -> LedgerWrite:
    return LedgerWrite([Entry(run_id, "state", line=line, key=f"K{line}", state="delivered")])


def committed(path: Path) -> int:
    """Entries another connection sees: only what is committed."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])


@pytest.fixture
def gated(tmp_path: Path) -> GatedLedger:
    path = tmp_path / "ledger.sqlite"
    Ledger.open(path).close()
    opened = Ledger.open(path)
    ledger = GatedLedger(opened.path, opened._db)
    assert ledger.begin_run(INFO, 1) == 1
    return ledger


def test_a_durable_submit_returns_only_once_its_write_is_committed(gated: GatedLedger) -> None:
    writer = LedgerWriter(gated)
    before = committed(gated.path)
    gated.gate.clear()
    returned = threading.Event()
    submitter = threading.Thread(target=lambda: (writer.submit(state(1, 2), durable=True), returned.set()))
    submitter.start()
    assert gated.entered.wait(5)
    assert not returned.wait(0.3), "submit returned before its commit"
    assert committed(gated.path) == before
    gated.gate.set()
    assert returned.wait(5)
    assert committed(gated.path) == before + 1  # visible to another connection the moment submit returned
    writer.close()


def test_writes_queued_while_a_commit_is_under_way_go_in_one_transaction(gated: GatedLedger) -> None:
    writer = LedgerWriter(gated)
    gated.gate.clear()
    first = threading.Thread(target=writer.submit, args=(state(1, 2),), kwargs={"durable": True})
    first.start()
    assert gated.entered.wait(5)  # the writer is inside the first transaction
    for line in range(3, 53):
        writer.submit(state(1, line))  # fire and forget: returns at once
    last = threading.Thread(target=writer.submit, args=(state(1, 53),), kwargs={"durable": True})
    last.start()
    gated.gate.set()
    first.join(5)
    last.join(5)
    assert gated.appends == [(1, True), (51, True)]  # 50 fire-and-forget writes rode on the durable one's commit
    writer.close()
    assert verify_chain(gated.entries()) is None


def test_close_commits_what_is_queued(gated: GatedLedger) -> None:
    writer = LedgerWriter(gated)
    for line in range(2, 12):
        writer.submit(state(1, line))
    writer.close()
    assert committed(gated.path) == 1 + 10  # run_started and the ten states
    assert all(not durable for _, durable in gated.appends)  # nobody waited: no fsync was asked for


_DISK_FULL = textwrap.dedent("""
    import json, resource, signal, sys, threading
    from pathlib import Path
    from pipeline.ledger import Entry, Ledger, LedgerWrite, LedgerWriter, RunInfo

    path = Path(sys.argv[1])
    ledger = Ledger.open(path)
    run_id = ledger.begin_run(RunInfo(*"abcdefghi"), 1)
    writer = LedgerWriter(ledger)
    writer.submit(LedgerWrite([Entry(run_id, "state", line=1, key="K1")]), durable=True)
    # From here the file system refuses to let any file grow past its size (EFBIG, as on a full disk).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    size = path.stat().st_size + path.with_name(path.name + "-wal").stat().st_size
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 4096, resource.RLIM_INFINITY))
    big = b"x" * 200_000
    errors = []
    def durable(line):
        try:
            writer.submit(LedgerWrite([Entry(run_id, "state", line=line, key=f"K{line}")],
                                      [(f"{line:064d}", big)]), durable=True)
            errors.append(None)
        except Exception as exc:
            errors.append(type(exc).__name__ + ": " + str(exc))
    threads = [threading.Thread(target=durable, args=(line,)) for line in range(2, 6)]
    for t in threads: t.start()
    for t in threads: t.join()
    try:
        writer.submit(LedgerWrite([Entry(run_id, "state", line=9, key="K9")]), durable=True)
        later = None
    except Exception as exc:
        later = type(exc).__name__
    try:
        writer.close()
        closed = None
    except Exception as exc:
        closed = type(exc).__name__
    print(json.dumps({"errors": errors, "later": later, "closed": closed}))
""")


def test_a_failed_commit_reaches_every_waiter_and_nothing_later_is_written(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    done = subprocess.run([sys.executable, "-c", _DISK_FULL, str(path)], capture_output=True, text=True, timeout=60,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert len(found["errors"]) == 4 and all(found["errors"]), found  # every durable waiter learned it
    # the kernel's EFBIG, as SQLite says it, turned into the ledger's own error at its boundary
    assert set(found["errors"]) == {f"LedgerError: {path}: cannot write the ledger (disk I/O error)"}, found
    assert found["later"] is not None and found["closed"] is not None  # and so does every later caller
    with Ledger.open_read_only(path) as ledger:
        entries = list(ledger.entries())
    assert [e.event for e in entries] == ["run_started", "state"]  # nothing after the failure was written
    assert verify_chain(entries) is None
