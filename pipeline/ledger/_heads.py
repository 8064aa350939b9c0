"""Chain heads kept elsewhere: what catches a full rewrite of the ledger, which the chain alone cannot.

Someone who can write the ledger file could remove rows and recompute every later hash with nothing but
hashlib; the chain would verify. A copy of the head hash kept where they cannot write catches it. Each run
can append its final head to a head log the site names (`head_log` in the config: another disk or host,
write-once storage), one JSON line per run:

    {"hash": "5f0c…", "ledger": "/srv/cws/ledger.sqlite", "recorded_at": "2026-11-29T02:15:03.268+00:00",
     "run_id": 12, "seq": 48213}

and `audit --heads FILE` checks that every head recorded there is still in the chain, at that seq, with
that hash. Keep one head log per ledger.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .._errors import HeadLogError, UserInputError
from ._entries import now_iso
from ._reads import ChainHead, LedgerReads

__all__ = ["RecordedHead", "check_heads", "read_head_log", "record_chain_head"]


@dataclass(frozen=True)
class RecordedHead:
    """One line of a head log: the chain's head after a run, and where in the file it was written."""

    line: int
    run_id: int
    seq: int
    hash: str
    recorded_at: str


def record_chain_head(log: Path, ledger: LedgerReads, run_id: int) -> ChainHead | None:
    """Append the ledger's current chain head to the head log (created 0600; appended and fsync'd); return it.

    Call it at the end of a run, after finish_run. HeadLogError (the run stays recorded) when it cannot.
    """
    head = ledger.head()
    if head is None:
        return None
    line = json.dumps(
        {"hash": head.hash, "ledger": str(ledger.path.resolve()), "recorded_at": now_iso(), "run_id": run_id,
         "seq": head.seq},
        sort_keys=True,
    ) + "\n"  # fmt: skip
    try:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise HeadLogError(
            f"{log}: cannot append the chain head ({exc.strerror}); run {run_id} is recorded in the ledger:"
            f" append this line to the head log by hand: {line.strip()}"
        ) from None
    return head


def read_head_log(log: Path) -> list[RecordedHead]:
    """The heads a head log records, in file order; a line that is not one is a one-line error naming it."""
    try:
        text = log.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserInputError(f"{log}: no such head log") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{log}: cannot read the head log ({getattr(exc, 'strerror', None) or exc})") from None
    heads = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            head = RecordedHead(number, data["run_id"], data["seq"], data["hash"], data["recorded_at"])
        except (ValueError, TypeError, KeyError):
            head = None
        if head is None or not isinstance(head.seq, int) or not isinstance(head.hash, str):
            raise UserInputError(f"{log}: line {number}: not a chain head line written by a run")
        heads.append(head)
    return heads


def check_heads(ledger: LedgerReads, heads: list[RecordedHead]) -> list[str]:
    """What does not hold: each recorded head must still be in the chain at its seq, with its hash and run."""
    last = ledger.head()
    end = last.seq if last else 0
    problems = []
    for head in heads:
        recorded = f"line {head.line}: the head after run {head.run_id} (entry {head.seq}, recorded {head.recorded_at})"
        entry = ledger.entry_at(head.seq)
        if entry is None:
            problems.append(f"{recorded} is not in the chain, which ends at entry {end} (entries were removed)")
        elif entry.hash != head.hash:
            problems.append(f"{recorded} has hash {head.hash}, but entry {head.seq} now has {entry.hash}"
                            " (the chain was rewritten)")  # fmt: skip
        elif entry.run_id != head.run_id:
            problems.append(f"{recorded} is entry {head.seq} of run {entry.run_id} in the ledger")
    return problems
