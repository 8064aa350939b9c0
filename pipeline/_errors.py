"""Exceptions a user can cause, each with the exit code the CLI turns it into.

    CWSPipelineError            anything the pipeline reports as one line, no traceback
    ├── UserInputError          exit 2: usage, config, mapping, key or input-file problem; nothing sent
    │   ├── KeyFileError        a key file is missing, unreadable, too open, or not the right kind
    │   ├── MalformedHeader     an Authorization value that is not `ALG Access=NAME, Signature=B64`
    │   ├── MappingError        a mapping file that cannot be used (names the file and TOML key path)
    │   ├── SourceError         a bookings CSV that cannot be read at all
    │   └── ConfigError         a run configuration that cannot be used
    ├── LedgerLocked            exit 4: another run holds the ledger's lock
    ├── OutsideWindow           exit 5: started outside the delivery window; nothing sent (says when it opens)
    ├── LedgerError             exit 6: SQLite could not read or write the ledger (disk full, I/O error, busy);
    │   │                       what was committed before is kept; mid-run, requests may have been sent
    │   └── LedgerDamaged       the ledger file is damaged (corrupt pages, or a runs table holding what no run
    │                           wrote): nothing read from it is trusted
    ├── HeadLogError            exit 1: the chain head could not be appended to the site's head log
    └── BenchFailed             exit 1: a step of `bench` failed (names the step and why)

A security stop (exit 3) and a delivery window that closes mid-run (exit 5) are not exceptions: the
run records every row and returns a RunResult whose exit_code says so.

Every `sqlite3` error is turned into a LedgerError inside the ledger package, as httpx turns httpcore's
errors into its own: nothing above the ledger imports sqlite3.

Messages never contain key material, patient names or birth dates: rows are named by line and key.
"""

from __future__ import annotations

__all__ = [
    "BenchFailed",
    "CWSPipelineError",
    "ConfigError",
    "HeadLogError",
    "KeyFileError",
    "LedgerDamaged",
    "LedgerError",
    "LedgerLocked",
    "MalformedHeader",
    "MappingError",
    "OutsideWindow",
    "SourceError",
    "UserInputError",
]


class CWSPipelineError(Exception):
    """An error the CLI prints as one line and turns into an exit code."""

    exit_code = 1


class UserInputError(CWSPipelineError):
    """A usage, configuration or input problem the user can fix; nothing was sent."""

    exit_code = 2


class KeyFileError(UserInputError):
    """A key file that is missing, unreadable, too open, encrypted without a passphrase, or the wrong kind."""


class MalformedHeader(UserInputError):
    """An Authorization header value that does not follow `ALGORITHM Access=NAME, Signature=BASE64`."""


class MappingError(UserInputError):
    """A mapping file that is refused before any row is read."""


class SourceError(UserInputError):
    """A bookings CSV that cannot be read at all (missing, empty, undecodable, missing columns)."""


class ConfigError(UserInputError):
    """A run configuration file that is refused before anything is sent."""


class LedgerError(CWSPipelineError):
    """SQLite could not read or write the ledger (disk full, I/O error); what was committed before is kept."""

    exit_code = 6


class LedgerDamaged(LedgerError):
    """A damaged ledger file (corrupt pages, an edited runs table): restoring a backup helps, retrying does not."""


class LedgerLocked(CWSPipelineError):
    """Another run holds the ledger's lock."""

    exit_code = 4


class OutsideWindow(CWSPipelineError):
    """A run started outside its delivery window: nothing was sent; run again when the window opens."""

    exit_code = 5


class HeadLogError(CWSPipelineError):
    """The run is recorded in the ledger, but its chain head could not be appended to the head log."""


class BenchFailed(CWSPipelineError):
    """A step of `cws-pipeline bench` failed: the figures would be wrong, so none are printed."""
