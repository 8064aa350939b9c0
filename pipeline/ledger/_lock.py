"""One run per ledger file at a time, whatever name it is reached by: an advisory lock on the ledger file itself.

The lock is an flock on the ledger file (so a hard link, a symlink or another path to the same file is the
same lock: locks belong to the file, not to its name), plus one on `LEDGER.lock` beside the name the run
was given, which holds the holder's pid and start time for `status` and for the refusal message. The
kernel releases both on any exit, even SIGKILL, so a crashed run never leaves a stale lock behind.

flock and SQLite's own (POSIX) locks are independent on Linux and the BSDs. The descriptor on the ledger
file is opened before the run's SQLite connection and closed only after it: closing any descriptor of a
file drops every POSIX lock the process holds on it, SQLite's included (which is also why `holder` reads
only `LEDGER.lock` and never opens the ledger: `status` asks while its own connection is open).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from types import TracebackType

from .._errors import LedgerLocked, UserInputError
from ._entries import now_iso

__all__ = ["RunLock"]

_PATIENCE_SECONDS = 1.0


class RunLock:
    """An exclusive lock on the ledger file itself, and on `LEDGER.lock` holding the holder's pid and start time."""

    def __init__(self, ledger_path: Path, *, create: bool = False) -> None:
        self.ledger = Path(ledger_path)
        self.path = _lock_file(self.ledger)
        self._create = create
        self._fds: list[int] = []

    def acquire(self) -> None:
        """Take the lock or raise LedgerLocked naming the holder; with create=True a missing ledger is created
        (empty, mode 0600), else it is a UserInputError."""
        if not self._create and not self.ledger.exists():
            raise UserInputError(f"{self.ledger}: no such ledger file")
        flags = os.O_RDONLY | (os.O_CREAT if self._create else 0)
        ledger_fd = self._open(self.ledger, flags, "open the ledger to lock it")
        if not _take(ledger_fd):
            os.close(ledger_fd)
            raise self._held()
        self._fds.append(ledger_fd)
        try:
            fd = self._open(self.path, os.O_RDWR | os.O_CREAT, "create the ledger's lock file")
            self._fds.append(fd)
            if not _take(fd):  # another run holds this name's lock file but not the ledger: a run ending now
                raise self._held()
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(), "started_at": now_iso()}).encode())
            os.fsync(fd)
        except BaseException:
            self.release()
            raise

    def _open(self, path: Path, flags: int, what: str) -> int:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(path, flags, 0o600)
        except OSError as exc:
            raise UserInputError(f"{path}: cannot {what} ({exc.strerror})") from None

    def _held(self) -> LedgerLocked:
        holder = self.holder(self.ledger)
        if holder is None:  # the holder reached the file by another name: its lock file is beside that name
            return LedgerLocked(f"{self.ledger}: another run holds the ledger, through another name for the same"
                                " file (a hard link or another path); wait for it to finish")  # fmt: skip
        return LedgerLocked(
            f"{self.ledger}: another run holds the ledger (pid {holder.get('pid', '?')},"
            f" started {holder.get('started_at', '?')}); wait for it to finish"
        )

    def release(self) -> None:
        """Release the lock (closing a descriptor releases its flock); the lock file's first, the ledger's last."""
        while self._fds:
            os.close(self._fds.pop())

    @classmethod
    def holder(cls, ledger_path: Path) -> dict[str, object] | None:
        """Who holds the lock now ({"pid", "started_at"}), or None; writes nothing, holds a shared lock an instant.

        It reads `LEDGER.lock` beside this name only: a run that reached the file by another name is not seen.
        """
        try:
            fd = os.open(_lock_file(Path(ledger_path)), os.O_RDONLY)
        except OSError:
            return None  # no lock file (no run yet), or one we may not read: nothing to say
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(fd)
        finally:
            os.close(fd)  # closing releases a lock we took
        return None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _lock_file(ledger: Path) -> Path:
    return ledger.with_name(ledger.name + ".lock")


def _take(fd: int) -> bool:
    """Take the exclusive lock; `status` may hold a shared one for an instant, so try for a moment first."""
    deadline = time.monotonic() + _PATIENCE_SECONDS
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def _holder(fd: int) -> dict[str, object]:
    try:
        data = os.pread(fd, 4096, 0)
        found = json.loads(data or b"{}")
        return found if isinstance(found, dict) else {}
    except (OSError, ValueError):
        return {}
