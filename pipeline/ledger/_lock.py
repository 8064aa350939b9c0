"""One run per ledger at a time: an advisory lock file next to the ledger, released by the OS on any exit."""

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
    """An exclusive lock on `LEDGER.lock` holding the holder's pid and start time.

    flock is released by the kernel when the process dies, even by SIGKILL, so a crashed run never
    leaves a stale lock behind.
    """

    def __init__(self, ledger_path: Path) -> None:
        self.path = ledger_path.with_name(ledger_path.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise LedgerLocked naming the holder."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise UserInputError(f"{self.path}: cannot create the ledger's lock file ({exc.strerror})") from None
        if not self._take(fd):
            holder = self._holder(fd)
            os.close(fd)
            raise LedgerLocked(
                f"{self.path.with_suffix('')}: another run holds the ledger (pid {holder.get('pid', '?')},"
                f" started {holder.get('started_at', '?')}); wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "started_at": now_iso()}).encode())
        os.fsync(fd)
        self._fd = fd

    @staticmethod
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

    def release(self) -> None:
        """Release the lock (closing the descriptor releases the flock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @classmethod
    def holder(cls, ledger_path: Path) -> dict[str, object] | None:
        """Who holds the lock now ({"pid", "started_at"}), or None; writes nothing, holds a shared lock an instant."""
        path = ledger_path.with_name(ledger_path.name + ".lock")
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None  # no lock file (no run yet), or one we may not read: nothing to say
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return cls._holder(fd)
        finally:
            os.close(fd)  # closing releases a lock we took
        return None

    @staticmethod
    def _holder(fd: int) -> dict[str, object]:
        try:
            data = os.pread(fd, 4096, 0)
            found = json.loads(data or b"{}")
            return found if isinstance(found, dict) else {}
        except (OSError, ValueError):
            return {}

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
