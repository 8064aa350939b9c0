"""Runs as the ledger records them: RunRecord, the one record of a run (a row of the runs table), and its statuses.

A run's record must be true: a run that crashed, was interrupted or was killed says so, with the exit
code its process really ended with (none for a killed one: it could not say).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal, get_args

__all__ = ["RUN_COLUMNS", "RUN_STATUSES", "RUN_STATUS_MEANING", "RunInfo", "RunRecord", "RunStatus"]

RunStatus = Literal["running", "finished", "stopped", "interrupted", "crashed", "killed"]
RUN_STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)

RUN_STATUS_MEANING: dict[RunStatus, str] = {
    "running": "in progress, or its process died without a word (the next run records it as killed)",
    "finished": "every row got a state (exit 0 when all were delivered or skipped, 1 when some were not)",
    "stopped": "a security stop (exit 3) or the delivery window's end (exit 5) ended sending; the rows not sent go"
    " next run",
    "interrupted": "a signal stopped it (Ctrl-C: exit 130, SIGTERM: 143); the rows not reached go next run",
    "crashed": "an error ended it early, with the exit code stored; the rows not reached go next run",
    "killed": "its process died without recording its end (SIGKILL, power loss); a later run found and recorded it",
}

# Ends a run records itself, with its time and exit code (a killed run's is recorded by the next run, with no
# code; versions before 0.2 marked a run found dead `interrupted`, with neither).
_ENDED_WITH_CODE: frozenset[str] = frozenset({"finished", "stopped", "crashed"})

# The runs table's columns, in order (pid and counts as stored: counts is JSON text).
RUN_COLUMNS = (
    "run_id", "started_at", "finished_at", "status", "source", "source_sha256", "mapping", "mapping_sha256",
    "base_url", "endpoint", "access", "algorithm", "program_version", "pid", "counts", "exit_code", "concurrency",
    "user", "host",
)  # fmt: skip


@dataclass(frozen=True)
class RunInfo:
    """What a run is about, written to the runs table and the chain when it starts."""

    source: str
    source_sha256: str
    mapping: str
    mapping_sha256: str
    base_url: str
    endpoint: str
    access: str
    algorithm: str
    program_version: str
    user: str | None = None  # the operating-system user who runs it
    host: str | None = None  # the host it runs on


@dataclass(frozen=True)
class RunRecord:
    """One row of the runs table, as stored (an edited table shows as edited: audit compares it with the chain).

    The one class that declares a run: when it started and ended, its status, exit code and counts, and (INFO)
    what it was about. A report's run summary and a run's result wrap or point to it.
    """

    run_id: int
    started_at: str
    finished_at: str | None
    status: str  # a RunStatus, unless the table was edited (or an older version wrote it)
    info: RunInfo
    pid: int
    counts_json: str | None
    exit_code: int | None
    concurrency: int | None = None  # the requests in flight it settled at (None: it sent nothing, or before 0.3)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> RunRecord:
        """The record of a runs-table row read in RUN_COLUMNS order."""
        values = dict(zip(RUN_COLUMNS, row, strict=True))
        info = RunInfo(**{f.name: values.pop(f.name) for f in fields(RunInfo)})
        values["counts_json"] = values.pop("counts")
        return cls(info=info, **values)

    def damage(self) -> str | None:
        """What in this row no run could have written (NULL or garbage where a time, status or code belongs), or None.

        A reader that does arithmetic on the row (status: ages, verdicts) asks first; audit reads edited rows
        as they are and compares them with the chain.
        """
        found = []
        if _time(self.started_at) is None:
            found.append(f"started_at is {_shown(self.started_at)}, not a time")
        if self.finished_at is not None and _time(self.finished_at) is None:
            found.append(f"finished_at is {_shown(self.finished_at)}, not a time")
        elif self.finished_at is None and self.status in _ENDED_WITH_CODE:
            found.append(f"finished_at is NULL, but the run is {self.status}")
        if self.exit_code is None and self.status in _ENDED_WITH_CODE:
            found.append(f"exit_code is NULL, but the run is {self.status}")
        if self.status not in RUN_STATUSES:
            found.append(f"status is {_shown(self.status)}, not one of {', '.join(RUN_STATUSES)}")
        if self.exit_code is not None and not isinstance(self.exit_code, int):
            found.append(f"exit_code is {_shown(self.exit_code)}, not a number")
        if not isinstance(self.pid, int):
            found.append(f"pid is {_shown(self.pid)}, not a number")
        return "; ".join(found) or None

    @property
    def counts(self) -> dict[str, int]:
        """Rows per state as the run recorded them at its end ({} while running, or when unreadable)."""
        try:
            value = json.loads(self.counts_json or "{}")
        except ValueError:
            return {}
        return {str(k): v for k, v in value.items() if isinstance(v, int)} if isinstance(value, dict) else {}


def _time(value: object) -> datetime | None:
    """An ISO time with its UTC offset (as runs record them), or None."""
    try:
        found = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return found if found is not None and found.tzinfo is not None else None


def _shown(value: object) -> str:
    """A stored value as a person reads it in one line: NULL, or its first characters quoted."""
    return "NULL" if value is None else repr(str(value)[:40])
