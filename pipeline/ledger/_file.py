"""The ledger as a file: who may read it, opening it for writing or read-only, and turning SQLite's errors into ours.

The ledger holds patient data. Like a private key, a ledger (or its -wal/-shm) that group or others can
read is refused with the `chmod 600` to run; the one exception is a write-protected copy (no write
permission: an archive) opened read-only by report, audit or status. A run refuses a write-protected
ledger before SQLite touches it, so it never leaves a -shm that later runs cannot write.

Read-only opens use SQLite's mode=ro, and immutable=1 when the file or its directory cannot be written
(SQLite could not create the -shm) and no -wal holds entries not yet in the file (immutable ignores a WAL).

Every sqlite3 error met while using the ledger leaves this package as a LedgerError (LedgerDamaged for corrupt
pages), as httpx's map_httpcore_exceptions does for httpcore: nothing above the ledger imports sqlite3.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from .._errors import LedgerDamaged, LedgerError, UserInputError
from .._logging import logger

__all__ = [
    "IntegrityCheck",
    "check_integrity",
    "check_private",
    "connect_read_only",
    "damage",
    "is_damage",
    "ledger_error",
    "not_a_ledger",
    "side_files",
    "sqlite_errors",
]

_log = logger(__name__)

# SQLITE_NOTADB (no database header) is not counted: more often another kind of file than a damaged ledger.
_DAMAGE = frozenset({"SQLITE_CORRUPT"})
_SHOW_PROBLEMS = 3
_MMAP_BYTES = 1 << 30


def side_files(path: Path) -> tuple[Path, Path]:
    """The ledger's write-ahead log and shared-memory index: LEDGER-wal, LEDGER-shm."""
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def _writable(path: Path) -> bool:
    # The mode bit as well as access(): root may write anything, but a write-protected file is meant read-only.
    try:
        return bool(path.stat().st_mode & stat.S_IWUSR) and os.access(path, os.W_OK)
    except OSError:
        return False


def check_private(path: Path, *, writing: bool) -> None:
    """Refuse a ledger (or -wal/-shm) others can read, or, when writing, one this process may not write."""
    archive = not writing and not _writable(path)
    for file in (path, *side_files(path)):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise UserInputError(f"{file}: cannot read the ledger ({exc.strerror})") from None
        if mode & 0o077 and not archive:
            raise UserInputError(
                f"{file}: group or others can read it (mode {mode:04o}), and the ledger holds patient data;"
                f" run `chmod 600 {file}`"
            )
        if writing and not _writable(file):
            raise UserInputError(
                f"{file}: write-protected (mode {mode:04o}), and a run adds to the ledger; if this is the live"
                f" ledger, run `chmod 600 {file}`"
            )


def connect_read_only(path: Path) -> sqlite3.Connection:
    """Open the ledger read-only (mode=ro; immutable=1 when nothing can be written beside it and no WAL is pending)."""
    wal, _ = side_files(path)
    pending = _size(wal) > 0  # one look: SQLite may remove the -wal at any moment (the last writer closing)
    immutable = not pending and not (_writable(path) and _writable(path.parent))
    uri = path.resolve().as_uri() + ("?mode=ro&immutable=1" if immutable else "?mode=ro")
    try:
        db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise UserInputError(f"{path}: cannot open the ledger ({exc})") from None
    try:
        db.execute("PRAGMA busy_timeout=10000")
        db.execute(f"PRAGMA mmap_size={_MMAP_BYTES}")  # checks and reports read whole tables: less CPU per page
        db.execute("SELECT COUNT(*) FROM sqlite_schema").fetchone()
    except sqlite3.Error as exc:
        db.close()
        if not_a_ledger(exc):
            raise UserInputError(f"{path}: not a cws-pipeline ledger ({exc})") from None
        if pending and not is_damage(exc):
            raise UserInputError(
                f"{path}: cannot be read read-only ({exc}): {wal.name} holds entries not yet in the file and"
                f" {path.parent} cannot be written; copy both files to a directory you can write"
            ) from None
        raise ledger_error(path, exc, "read") from None
    return db


def not_a_ledger(exc: sqlite3.Error) -> bool:
    """True when SQLite finds no database at all in the file (another kind of file given as the ledger)."""
    return getattr(exc, "sqlite_errorname", "") == "SQLITE_NOTADB"


def _size(file: Path) -> int:
    """The file's size, 0 when it is not there."""
    try:
        return file.stat().st_size
    except FileNotFoundError:
        return 0


def ledger_error(path: Path, exc: sqlite3.Error, doing: Literal["read", "write"]) -> LedgerError:
    """The one-line LedgerError for an sqlite3 error met reading or writing the ledger (LedgerDamaged for damage)."""
    error = damage(path, exc) if is_damage(exc) else LedgerError(f"{path}: cannot {doing} the ledger ({exc})")
    _log.error("%s", error)
    return error


@contextmanager
def sqlite_errors(path: Path, doing: Literal["read", "write"]) -> Iterator[None]:
    """Turn any sqlite3 error raised inside into the ledger's own LedgerError."""
    try:
        yield
    except sqlite3.Error as exc:
        raise ledger_error(path, exc, doing) from None


def is_damage(exc: sqlite3.Error) -> bool:
    """True when SQLite reports the file damaged (corrupt pages) rather than busy, missing or not a database."""
    return getattr(exc, "sqlite_errorname", "") in _DAMAGE


def damage(path: Path, what: object) -> LedgerDamaged:
    """The one-line error for a damaged ledger file."""
    return LedgerDamaged(
        f"{path}: the ledger file is damaged (SQLite: {what}); nothing was changed: keep this file for"
        " investigation, restore the ledger from a backup, and run `cws-pipeline audit` on it"
    )


def check_integrity(db: sqlite3.Connection, path: Path, *, full: bool) -> None:
    """Run SQLite's own check of the whole file (quick_check; integrity_check when full): LedgerDamaged if it fails."""
    pragma = "integrity_check" if full else "quick_check"
    try:
        problems = [str(r[0]) for r in db.execute(f"PRAGMA {pragma}({_SHOW_PROBLEMS + 1})")]
    except sqlite3.DatabaseError as exc:
        raise damage(path, exc) from None
    if problems != ["ok"]:
        more = " (and more)" if len(problems) > _SHOW_PROBLEMS else ""
        raise damage(path, "; ".join(problems[:_SHOW_PROBLEMS]) + more)


class IntegrityCheck:
    """SQLite's quick_check of the whole file on a connection of its own, run beside the reader's own work.

    SQLite runs the check without holding the GIL, so on a second core it costs a report next to nothing
    in wall-clock time; `wait` gives its verdict (LedgerDamaged), which a reader takes before using what it read.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ledger-check", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            db = connect_read_only(self._path)
            try:
                check_integrity(db, self._path, full=False)
            finally:
                db.close()
        except BaseException as exc:  # handed to whoever waits: a thread cannot raise to its caller
            self._error = exc

    def wait(self) -> None:
        """Return once the check is done; raise what it found (LedgerDamaged for a damaged file)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
