"""Delivering one mapped row: settle doubt by lookup, send with retries, verify, record it all.

The promise: every row ends in exactly one recorded state; nothing is created twice. A request that
may have landed (connection lost after sending, read timeout, unverified answer, a crash between
the "sending" record and the outcome) is never sent again before a signed lookup says it is not there.

The pieces, each reusable by later flows: `exchange` (one signed request), `retrying` (the retry
policy), `judge_lookup` (what a lookup found), and `_records` (the ledger records of a row).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from ..ledger import (
    LedgerWrite,
    LedgerWriter,
    PriorRow,
    PriorRows,
    RowState,
    SkippedRow,
    StatusUpdate,
    sha256_hex,
    skipped_rows_entries,
)
from ..mapping import MappedRow
from ..protocol import CWSAuth
from ._circuit_breaker import CircuitBreaker
from ._concurrency import ConcurrencyLimiter, FixedLimit, answer_kind
from ._config import RunConfig
from ._exchange import Exchange, exchange
from ._lookup import judge_lookup, patient_url
from ._messages import reason_text, server_message
from ._plan import Plan, Rebookings, already_reported, keeps_recorded_status, plan, rejected_again_reason
from ._records import cells_json, exchange_record, final_records, intent_record
from ._retry import RETRYABLE_STATUSES, RunStop, TransientFailure, retrying
from ._transport import Transport

__all__ = ["Delivery", "RowOutcome"]

Doubt = Literal["ambiguous", "unverified"]
_REBOOKED = (
    "external_id {} was delivered earlier under another key; a lookup cannot tell whether this booking landed:"
    " check it in CorEMR"
)


@dataclass(frozen=True)
class RowOutcome:
    """The one state a row ended in, and why; `known` when an earlier run left it so, unchanged since."""

    line: int
    key: str
    state: RowState
    reason: str | None = None
    known: bool = False


@dataclass
class _Progress:
    """One row on its way: its body, any doubt about an earlier request, and its attempts so far."""

    row: MappedRow
    body: bytes
    sha: str
    intent_recorded: bool
    doubt: Doubt | None = None
    doubt_sha: str | None = None  # the body that may have landed
    attempts: int = 0
    last: Exchange | None = None


class _Final(Exception):
    """A verified answer (or a rule) that ends the row without more tries."""

    def __init__(self, state: RowState, reason: str) -> None:
        super().__init__(reason)
        self.state: RowState = state
        self.reason = reason


class _Stopped(Exception):
    """The run was told to stop (circuit breaker, interruption): send nothing more."""


class Delivery:
    """Decides, sends and records rows for one run; `deliver` is safe to call from many threads."""

    def __init__(
        self,
        *,
        run_id: int,
        transport: Transport,
        auth: CWSAuth,
        writer: LedgerWriter,
        config: RunConfig,
        endpoint_url: str,
        prior: PriorRows,
        breaker: CircuitBreaker,
        sleep: Callable[[float], None] | None = None,
        limiter: ConcurrencyLimiter | None = None,
    ) -> None:
        self.run_id = run_id
        self._transport = transport
        self._auth = auth
        self._writer = writer
        self._endpoint = endpoint_url if endpoint_url.endswith("/") else endpoint_url + "/"
        self._prior = prior
        self._breaker = breaker
        self._stop: RunStop = breaker.stop
        self._rebookings = Rebookings(prior)
        self._limiter = limiter or ConcurrencyLimiter(FixedLimit(config.concurrency))
        self._retry_after_cap = config.retry_after_cap
        self._retrying = retrying(
            max_attempts=config.max_attempts,
            initial_wait=config.retry_initial_wait,
            max_wait=config.retry_max_wait,
            retry_after_cap=config.retry_after_cap,
            stop=self._stop,
            sleep=sleep,
        )

    # -- rows that need no request ---------------------------------------------------------------

    def plan(self, row: MappedRow) -> tuple[Plan, str | None]:
        """What this row needs (from its validity and earlier runs) and its body's SHA-256."""
        return plan(row, self._prior)

    def record_many_without_sending(self, planned: Sequence[tuple[MappedRow, Plan, str | None]]) -> list[RowOutcome]:
        """Record the states of rows that need no request, in one ledger submission (re-runs are mostly these)."""
        write = LedgerWrite()
        outcomes: list[RowOutcome] = []
        skipped: list[SkippedRow] = []
        for row, row_plan, sha in planned:
            if row_plan == "skipped" and sha is not None:  # the re-run's common case, kept lean
                skipped.append(self._skipped(row, sha, write))
                outcomes.append(RowOutcome(row.line, row.key, "skipped"))
            else:
                outcomes.append(self._quiet_outcome(row, row_plan, sha, write))
        if skipped:  # listed in chained skipped_rows entries, not one entry each: a re-run is mostly these
            write.entries += skipped_rows_entries(self.run_id, skipped)
        self._writer.submit(write)
        return outcomes

    def _skipped(self, row: MappedRow, sha: str, write: LedgerWrite) -> SkippedRow:
        cells = cells_json(row)
        cells_sha = sha256_hex(cells)
        if not keeps_recorded_status(self._prior.get(row.key), sha, cells_sha):
            write.bodies.append((cells_sha, cells))
            write.updates.append(
                StatusUpdate(row.key, row.external_id, "skipped", sha, self.run_id, row.line, cells_sha256=cells_sha)
            )
        # else row_status already holds this body and these cells (stored with the entry that set them):
        # leave it, and the run that delivered it, as it is
        return SkippedRow(row.line, row.key, row.external_id, sha, cells_sha)

    def _quiet_outcome(self, row: MappedRow, row_plan: Plan, sha: str | None, write: LedgerWrite) -> RowOutcome:
        p = self._prior.get(row.key)
        state: RowState = "failed"
        reason: str | None = None
        if row_plan == "invalid":
            state, reason = "invalid", "; ".join(str(problem) for problem in row.problems)
        elif row_plan == "excluded":
            state, reason = "excluded", row.excluded
        elif row_plan == "skipped":
            state = "skipped"
        elif row_plan == "changed":
            state = "changed"
            reason = f"delivered in run {p.run_id if p else '?'} with a different body; not sent again"
        elif row_plan == "stopped":  # would have been sent, but the run had stopped
            reason = f"not sent: {self._stop.reason}"
        else:
            state = "rejected"
            reason = rejected_again_reason(p)  # the same words every night, naming the run that was refused
        reason = reason_text(reason, row.body) if reason else None
        records = final_records(self.run_id, row, state, reason, sha, None, 0)
        write.add(records)
        return RowOutcome(row.line, row.key, state, reason, _known(p, records))

    # -- rows that need requests -----------------------------------------------------------------

    def record_intents(self, rows: Sequence[tuple[MappedRow, str]]) -> None:
        """Durably record that each row's first POST is about to leave, in one commit for all of them.

        `deliver(row, "send", intent_recorded=True)` then sends attempt 1 without a commit of its own.
        One fsync for a window of rows instead of one per row; a row whose request never leaves (a
        crash, a stop) is settled by lookup or recorded as not sent, as for any "sending".
        """
        write = LedgerWrite()
        for row, sha in rows:
            assert row.body is not None
            write.add(intent_record(self.run_id, row, row.body, sha, 1, self._endpoint))
        self._writer.submit(write, durable=True)

    def deliver(self, row: MappedRow, row_plan: Plan, sha: str, *, intent_recorded: bool = False) -> RowOutcome:
        """Settle any doubt, send with retries, verify, and record the row's final state (sha: the body's)."""
        assert row.body is not None
        r = _Progress(row, row.body, sha, intent_recorded)
        prior = self._prior.get(row.key)
        if row_plan == "settle" and prior is not None:
            r.doubt = "unverified" if prior.state == "unverified" else "ambiguous"
            r.doubt_sha = prior.body_sha256
            if why := self._cannot_settle(row):
                return self._finish(r, r.doubt, why)
        try:
            for attempt in self._retrying:
                with attempt:
                    r.attempts += 1
                    outcome = self._try_once(r)
        except _Final as final:
            return self._finish(r, final.state, final.reason)
        except _Stopped:
            return self._stopped(r)
        except TransientFailure as exc:
            return self._gave_up(r, exc)
        return outcome

    def _cannot_settle(self, row: MappedRow) -> str | None:
        """Why a lookup cannot settle this row's doubt, or None when it can."""
        if patient_url(self._endpoint, row.external_id) is None:
            return "an earlier attempt may have landed and the row has no external_id a lookup can name safely"
        if self._rebookings.under_another_key(row):
            return _REBOOKED.format(row.external_id)
        return None

    def _try_once(self, r: _Progress) -> RowOutcome:
        """One attempt: a lookup first while in doubt, then (unless it settled the row) the POST."""
        if r.doubt:
            settled = self._settle(r)
            if settled is not None:
                return settled
        return self._send(r)

    def _settle(self, r: _Progress) -> RowOutcome | None:
        """Look the row up: an outcome when found, None when absent (send it), raise when neither is known."""
        assert r.doubt is not None
        if why := self._cannot_settle(r.row):
            raise _Final(r.doubt, why)
        ex = self._lookup(r)
        finding = judge_lookup(ex, r.row.external_id or "")
        if finding == "found":
            if r.doubt_sha is not None and r.doubt_sha != r.sha:
                reason = "an earlier body landed (found by lookup); this one differs: not sent"
                self._finish(r, "delivered", None, r.doubt_sha, record=False)
                return self._finish(r, "changed", reason, r.doubt_sha, keep=True)
            return self._finish(r, "delivered", "settled by lookup", r.sha)
        if finding == "absent":
            r.doubt, r.doubt_sha = None, None
            return None
        if finding == "try_again":
            raise TransientFailure(ex.describe(), ex.retry_after)
        if finding == "someone_else":
            raise _Final(r.doubt, f"lookup answered HTTP 200 with another patient than {r.row.external_id}")
        raise _Final(r.doubt, f"lookup answered HTTP {ex.status}: {server_message(ex.response_body)}")

    def _send(self, r: _Progress) -> RowOutcome:
        """POST the body once: an outcome when CorEMR answered for sure, else raise to retry (or settle) it."""
        ex = self._post(r)
        if ex.verified and ex.status is not None:
            if 200 <= ex.status < 300:
                return self._finish(r, "delivered", None, r.sha)
            if ex.status not in RETRYABLE_STATUSES:
                return self._finish(r, "rejected", f"HTTP {ex.status}: {server_message(ex.response_body)}", r.sha)
        elif ex.reached == "yes":
            r.doubt, r.doubt_sha = "unverified", r.sha
        elif ex.reached == "maybe":
            r.doubt, r.doubt_sha = "ambiguous", r.sha
        raise TransientFailure(ex.describe(), ex.retry_after)

    def _lookup(self, r: _Progress) -> Exchange:
        if self._stop.stopped:
            raise _Stopped
        url = patient_url(self._endpoint, r.row.external_id)
        assert url is not None  # _cannot_settle refused the rest
        ex = self._request("GET", url)
        self._breaker.observe(ex)
        self._writer.submit(exchange_record(self.run_id, r.row, "lookup", ex, r.attempts))
        r.last = ex
        return ex

    def _post(self, r: _Progress) -> Exchange:
        if self._stop.stopped:
            raise _Stopped
        if not (r.intent_recorded and r.attempts == 1):
            # Durable before the request leaves: after a crash the next run sees "sending" and settles it.
            self._writer.submit(intent_record(self.run_id, r.row, r.body, r.sha, r.attempts, self._endpoint),
                                durable=True)  # fmt: skip
        ex = self._request("POST", self._endpoint, r.body)
        self._breaker.observe(ex)
        self._writer.submit(exchange_record(self.run_id, r.row, "attempt", ex, r.attempts, request_stored=True))
        r.last = ex
        return ex

    def _request(self, method: str, url: str, body: bytes = b"") -> Exchange:
        """Every request of the run leaves here, once the run's limiter gives it a place; its answer frees it."""
        slot = self._limiter.slot(self._stop.event)
        if slot is None:  # the run stopped while this request waited for a place
            raise _Stopped
        try:
            ex = exchange(self._transport, self._auth, method, url, body)
        except BaseException:  # a crash in here must not keep the place taken
            slot.done("failed")
            raise
        pause = min(ex.retry_after, self._retry_after_cap) if ex.retry_after and ex.retry_after > 0 else None
        slot.done(answer_kind(ex.status, pause), pause, ex.round_trip_ms / 1000)
        return ex

    # -- ending a row ----------------------------------------------------------------------------

    def _stopped(self, r: _Progress) -> RowOutcome:
        """The run stopped before this row was done: say what is true of it."""
        if r.doubt:
            when = r.last.describe() if r.last else "in an earlier run"
            reason = (
                f"may have reached CorEMR ({when}); {self._stop.reason} before a lookup settled it:"
                " the next run looks it up first"
            )
            return self._finish(r, r.doubt, reason)
        if r.last is None:
            return self._finish(r, "failed", f"not sent: {self._stop.reason}", r.sha)
        # The last answer was a verified refusal to process (429, 5xx): nothing landed.
        return self._finish(r, "failed", f"not sent again ({r.last.describe()}): {self._stop.reason}", r.sha)

    def _gave_up(self, r: _Progress, exc: TransientFailure) -> RowOutcome:
        """Retries ran out (or the run stopped while the row waited to retry)."""
        if self._stop.stopped:
            return self._stopped(r)
        if r.doubt:
            return self._finish(r, r.doubt, f"may have reached CorEMR and no verified lookup settled it ({exc})")
        return self._finish(r, "failed", f"gave up after {r.attempts} attempts: {exc}", r.sha)

    def _finish(
        self,
        r: _Progress,
        state: RowState,
        reason: str | None,
        body_sha: str | None = None,
        *,
        record: bool = True,
        keep: bool = False,
    ) -> RowOutcome:
        """Record the row's final state entry and its row_status (record=False: status only).

        BODY_SHA: the body the state is about; by default the one in doubt, else this row's.
        """
        reason = reason_text(reason, r.body) if reason else None
        sha = body_sha or r.doubt_sha or r.sha
        write = final_records(self.run_id, r.row, state, reason, sha, r.last, r.attempts, keep=keep)
        self._writer.submit(write if record else LedgerWrite(updates=write.updates))
        return RowOutcome(r.row.line, r.row.key, state, reason, _known(self._prior.get(r.row.key), write))


def _known(p: PriorRow | None, write: LedgerWrite) -> bool:
    """Whether the row's new status repeats what an earlier run left (same state, body and input cells)."""
    return already_reported(p, write.updates[-1] if write.updates else None)
