"""Exceptions a user can cause, each with the exit code the CLI turns it into, and the one table of exit codes.

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

Every command ends with an `ExitCode`: one number, one meaning, for every command, except that `status`
answers a monitoring check as Nagios plugins do, where 2 is a problem (CRITICAL) and 3 "no run yet"
(UNKNOWN): those two are named PROBLEM and UNKNOWN in the same table, beside the meaning they share a number
with. docs/running.md's table of exit codes is generated from `EXIT_CODE_MEANINGS`.

Every `sqlite3` error is turned into a LedgerError inside the ledger package, as httpx turns httpcore's
errors into its own: nothing above the ledger imports sqlite3.

Messages never contain key material, patient names or birth dates: rows are named by line and key.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "EXIT_CODE_MEANINGS",
    "BenchFailed",
    "CWSPipelineError",
    "ConfigError",
    "ExitCode",
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


class ExitCode(IntEnum):
    """How a command ended: the number a shell, cron, systemd or a monitoring check sees."""

    OK = 0  # all went well; nothing (new) needs a person
    ATTENTION = 1  # something needs a person: a row, a failed check, a failed audit; or an error with no code
    USAGE = 2  # a usage, configuration or input problem; nothing was sent
    SECURITY_STOP = 3  # a site-level stop: our key or base_url refused, a redirect, unverified answers, 429/5xx
    LOCKED = 4  # another run holds the ledger's lock
    OUTSIDE_WINDOW = 5  # outside the delivery window, or it closed (or max_run_seconds passed) mid-run
    LEDGER = 6  # the ledger cannot be read or written, or is damaged
    INTERRUPTED = 130  # 128 + SIGINT: Ctrl-C, as a shell reports it
    TERMINATED = 143  # 128 + SIGTERM: systemd stopping the run, `kill`, a cron timeout
    # `status` only (the Nagios plugin convention a monitoring check reads): the same numbers as USAGE and
    # SECURITY_STOP, so the same members under a second name.
    PROBLEM = 2  # status: the last run did not finish, or is too old
    UNKNOWN = 3  # status: no run recorded yet


EXIT_CODE_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "`run`: nothing new needs a person (every row delivered, skipped, excluded or duplicate, or"
    " needing a person as reported before and unchanged since); `status`: the last run finished with every row"
    " delivered or skipped, nothing outstanding; `check`: ready (warnings allowed); `audit`: everything"
    " checkable holds",
    ExitCode.ATTENTION: "`run`: a row newly needs a person, or changed since it was reported, or the chain head"
    " could not be appended to the head log; `status`: rows need a person, or the last run is dated in the"
    " future (a clock was wrong); `check`: a check failed; `audit`: something does not hold; `validate`: rows"
    " are invalid; `verify`: the signature does not verify; `bench`: a step failed",
    ExitCode.USAGE: "usage, configuration or input error, or an export still being written (nothing sent);"
    " `status` (PROBLEM): the last run did not finish (security stop, crash, interrupt, killed), or is older"
    " than `--max-age`",
    ExitCode.SECURITY_STOP: "`run`: site-level stop (our key or `base_url` refused, a redirect, unverified"
    " answers, a long run of 429/5xx: the rows touched are `failed`, sent by the next run once the setting is"
    " fixed);"
    " `status` (UNKNOWN): no run recorded yet",
    ExitCode.LOCKED: "another run holds the ledger (the line names its pid and start time)",
    ExitCode.OUTSIDE_WINDOW: "outside the delivery window (`window`): nothing sent, one line says when it opens;"
    " or the window closed, or the run reached `max_run_seconds`, before every row was sent (those rows are"
    " `failed` and the next run sends them)",
    ExitCode.LEDGER: "the ledger cannot be read or written (disk full: the run stops sending, everything"
    " recorded before is kept), or is damaged",
    ExitCode.INTERRUPTED: "`run`: interrupted by Ctrl-C (recorded as `interrupted` in the ledger)",
    ExitCode.TERMINATED: "`run`: ended by SIGTERM (recorded as `interrupted` in the ledger)",
}


class CWSPipelineError(Exception):
    """An error the CLI prints as one line and turns into an exit code."""

    exit_code: ExitCode = ExitCode.ATTENTION


class UserInputError(CWSPipelineError):
    """A usage, configuration or input problem the user can fix; nothing was sent."""

    exit_code = ExitCode.USAGE


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

    exit_code = ExitCode.LEDGER


class LedgerDamaged(LedgerError):
    """A damaged ledger file (corrupt pages, an edited runs table): restoring a backup helps, retrying does not."""


class LedgerLocked(CWSPipelineError):
    """Another run holds the ledger's lock."""

    exit_code = ExitCode.LOCKED


class OutsideWindow(CWSPipelineError):
    """A run started outside its delivery window: nothing was sent; run again when the window opens."""

    exit_code = ExitCode.OUTSIDE_WINDOW


class HeadLogError(CWSPipelineError):
    """The run is recorded in the ledger, but its chain head could not be appended to the head log."""


class BenchFailed(CWSPipelineError):
    """A step of `cws-pipeline bench` failed: the figures would be wrong, so none are printed."""
