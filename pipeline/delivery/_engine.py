"""The row engine: one row's path (plan, send, judge, record), one request at a time, each recorded before it leaves."""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from .._masking import reason_text, server_message
from ..ledger import (
    STEPS,
    Action,
    Entry,
    LedgerWrite,
    LedgerWriter,
    PriorRows,
    RowState,
    SkippedRow,
    StatusUpdate,
    Step,
    booking_identity,
    sha256_hex,
    skipped_rows_entries,
)
from ..mapping import MappedRow
from ..protocol import CWSAuth
from ._config import RunConfig
from ._decisions import (
    CREATES,
    DOUBTFUL,
    Booking,
    Doubt,
    Plan,
    Rebookings,
    RowOutcome,
    Target,
    Verdict,
    changed_reason,
    holds_body,
    judge_answer,
    judge_lookup,
    keeps_recorded_status,
    known_outcome,
    no_bookings_route_reason,
    plan,
    rebooking_held_reason,
    rejected_again_reason,
    renumbered_reason,
    site_setting,
    updated_reason,
)
from ._pacing import (
    CircuitBreaker,
    ConcurrencyLimiter,
    FixedLimit,
    RunStop,
    TransientFailure,
    answer_kind,
    capped_retry_after,
    retrying,
)
from ._transport import Answer, Exchange, Transport, send_signed

__all__ = ["Delivery", "RowOutcome", "cells_json", "final_records", "intent_record", "quiet_records", "request_record"]


# -- engine ---------------------------------------------------------------------------------------

_REBOOKED = (
    "external_id {} was delivered earlier under another key; a lookup cannot tell whether this booking landed:"
    " check it in CorEMR"
)
_OTHER_DETAILS = (
    "a lookup found patient {} with other details than this row's: it may have been there before, and without"
    " bookings routes whether this booking landed cannot be told: check it in CorEMR"
)
_MAX_STEPS = 6  # requests one attempt may chain (create, booking, lookup...): more means answers that contradict
_REPLAY = "it is byte for byte (body and signature) an answer already received for another request: a replay"
_SECOND_CREATE = (
    "CorEMR's answers contradict each other: a create of this row was answered in this run, and a later answer"
    " ({}) would have it created again; not sent twice: check the patient in CorEMR"
)
_BY_UPDATE = (
    'booking {} sent in a patient update (update_adds_booking = true, assumption "update-adds-booking":'
    " unverified): check once in CorEMR that the patient holds it"
)


@dataclass
class _Underway:
    """One row on its way: its body, its next step, any doubt about an earlier request, its attempts so far."""

    row: MappedRow
    body: bytes
    sha: str
    step: Step  # the next request to send
    intent_pending: bool  # its first request's "sending" record was written with a window of rows
    booking: Booking | None = None  # read from the body when first needed (`Delivery._booking`)
    booking_read: bool = False
    doubt: Doubt | None = None
    doubt_sha: str | None = None  # the body that may have landed
    doubt_step: Step = "create"  # the request that may have landed
    attempts: int = 0
    last: Exchange | None = None
    doubt_before: Doubt | None = None  # the doubt an earlier run left, kept if the run stops before it is settled
    create_answered: bool = False  # a create of this row got CorEMR's verdict in this run: never another
    booking_by_update: bool = False  # a re-booking sent as a patient update (update_adds_booking)


class _Final(Exception):
    """A verified answer (or a rule) that ends the row without more tries."""

    def __init__(self, state: RowState, reason: str) -> None:
        super().__init__(reason)
        self.state: RowState = state
        self.reason = reason


class _Stopped(Exception):
    """The run was told to stop (circuit breaker, interruption): send nothing more."""


class Delivery:
    """Decides, sends and records rows for one run; `deliver` is safe to call from many threads.

    Built as the run builds it, in tests too: BREAKER (whose stop ends the run) and, without LIMITER, a fixed
    limit of `concurrency`; the stop also ends every wait for a place in the limiter.

    The promise: every row ends in exactly one recorded state; nothing is created twice, neither a patient nor a
    booking. A request that may have landed (connection lost after sending, read timeout, unverified answer, a
    crash between the "sending" record and the outcome) is never sent again before a signed lookup says it is
    not there; an update, which creates nothing, is simply sent again.

    A row may take several requests (see `judge_answer`): a patient CorEMR already holds gets its booking through the
    bookings routes where the site has them (else the row is held for a person, or, where the site says a
    patient update adds a booking, sent as one), and a correction is sent as an update (with a booking update
    only when a booking field changed). A row makes at most one create request per run that CorEMR answers: a
    second would be a loop of doomed creates. Every request that can change CorEMR is recorded durably, naming
    its step, before it leaves, and every request with its answer after; every one goes through `send_signed`.
    The pieces: `send_signed` (one signed request and its `Exchange`), `retrying` (the retry policy),
    `judge_answer` (what an answer means), `judge_lookup` (what a lookup found), `Rebookings` (a returning
    person), and the records (`intent_record`, `request_record`, `final_records`). A row's path is `deliver`.
    """

    def __init__(
        self,
        config: RunConfig,
        *,
        run_id: int,
        transport: Transport,
        auth: CWSAuth,
        writer: LedgerWriter,
        prior: PriorRows,
        target: Target,
        breaker: CircuitBreaker,
        limiter: ConcurrencyLimiter | None = None,
        delivered_body: Callable[[str], bytes | None] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.run_id = run_id
        self._transport = transport
        self._auth = auth
        self._writer = writer
        self._target = target
        self._rebookings = Rebookings(prior, self._target)
        self._prior = prior
        self._breaker = breaker
        self._stop: RunStop = breaker.stop
        self._exists = config.exists_status
        self._delivered_body = delivered_body  # the ledger's stored body by SHA-256 (None: unknown, send both)
        self._answers: dict[bytes, bytes] = {}  # a 2xx answer's digest -> its request's: a second request is a replay
        self._answers_lock = threading.Lock()
        self._limiter = limiter or ConcurrencyLimiter(FixedLimit(config.concurrency))
        self._stop.also_wake(self._limiter.wake)
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
        """What this row needs (from its validity, earlier runs and the corrections policy) and its body's SHA-256;
        "rebooked": a returning person this site cannot be sent (no bookings routes), held for a person."""
        row_plan, sha = plan(row, self._prior, self._target.on_change)
        if row_plan in ("send", "changed") and sha is not None:
            return self._rebookings.plan(row, row_plan, sha, self._delivered(row)), sha
        return row_plan, sha

    def _delivered(self, row: MappedRow) -> bytes | None:
        """The body delivered under this row's key, read from the ledger where a re-booking needs it: a key that
        names a person alone, a body delivered and not in doubt since; else None."""
        if self._target.key_names_booking or row.body is None or self._delivered_body is None:
            return None
        delivered_sha = self._prior.delivered_sha256(row.key)
        if delivered_sha is None or self._prior.in_doubt(row.key):
            return None
        return self._delivered_body(delivered_sha)

    def record_many_without_sending(self, planned: Sequence[tuple[MappedRow, Plan, str | None]]) -> list[RowOutcome]:
        """Record the states of rows that need no request, in one ledger submission (re-runs are mostly these)."""
        held = [(row, sha) for row, row_plan, sha in planned if row_plan == "rebooked" and row.body and sha]
        write, outcomes = quiet_records(
            self.run_id, self._prior, [p for p in planned if p[1] != "rebooked"], self._stop.reason
        )
        for row, sha in held:
            assert row.body is not None and sha is not None
            reason = reason_text(self._rebookings.held_reason(row, self._delivered(row)), row.body)
            records = final_records(self.run_id, row, "changed", reason, sha, None, 0)
            records.bodies.append((sha, row.body))  # kept for `accept` and a person reading the ledger
            write.add(records)
            known = known_outcome(self._prior.get(row.key), records)
            outcomes.append(RowOutcome(row.line, row.key, "changed", reason, known, body_sha256=sha))
        self._writer.submit(write)
        return outcomes

    # -- rows that need requests -----------------------------------------------------------------

    def record_intents(self, rows: Sequence[tuple[MappedRow, str]]) -> None:
        """Durably record that each row's first request is about to leave, in one commit for all of them.

        `deliver(row, "send", intent_recorded=True)` then sends that request without a commit of its own.
        One fsync for a window of rows instead of one per row; a row whose request never leaves (a
        crash, a stop) is settled by lookup or recorded as not sent, as for any "sending".
        """
        write = LedgerWrite()
        for row, sha in rows:
            r = self._start(row, "send", sha, intent_pending=False)
            method, url, body = self._request_of(r)
            write.add(intent_record(self.run_id, row, sha, 1, r.step, method, url, body))
        self._writer.submit(write, durable=True)

    def deliver(self, row: MappedRow, row_plan: Plan, sha: str, *, intent_recorded: bool = False) -> RowOutcome:
        """One row's whole path (SHA: its body's): its first request and any doubt an earlier run left (`_start`),
        then per attempt send → judge → follow (`_attempt`), until CorEMR's answers end it in one recorded state."""
        r = self._start(row, row_plan, sha, intent_pending=intent_recorded)
        if r.doubt and (why := self._cannot_settle(r)):
            return self._finish(r, r.doubt, why)
        try:
            for attempt in self._retrying:
                with attempt:
                    r.attempts += 1
                    outcome = self._attempt(r)
        except _Final as final:
            return self._finish(r, final.state, final.reason)
        except _Stopped:
            return self._stopped(r)
        except TransientFailure as exc:
            return self._gave_up(r, exc)
        return outcome

    def _start(self, row: MappedRow, row_plan: Plan, sha: str, *, intent_pending: bool) -> _Underway:
        """A row about to be sent, with its first step: an update of a delivered row (a correction), a booking
        for a patient the ledger knows under another key or, keyed by person alone, under this one with another
        booking (a re-booking), else a create; planned "settle", the doubt an earlier run left, to settle first."""
        assert row.body is not None
        r = _Underway(row, row.body, sha, "create", intent_pending)
        delivered = self._prior.delivered_sha256(row.key) is not None
        if delivered and self._rebookings.new_booking(row, self._delivered(row)) is None:
            r.step = "update"
        elif delivered or self._rebookings.under_another_key(row):
            if self._booking(r) is not None:
                r.step = "booking"  # the create would be refused: the patient exists
            elif self._rebookings.by_update:
                r.step, r.booking_by_update = "update", True  # no bookings routes: the site takes it this way
        prior = self._prior.get(row.key)
        if row_plan == "settle" and prior is not None:
            r.doubt = r.doubt_before = "unverified" if prior.state == "unverified" else "ambiguous"
            r.doubt_sha, r.doubt_step = prior.body_sha256, _step(prior.step)
        return r

    def _booking(self, r: _Underway) -> Booking | None:
        """The row's booking, read from its body once and only when needed (a first create never needs it)."""
        if not r.booking_read:
            r.booking, r.booking_read = self._target.booking_of(r.body), True
        return r.booking

    def _cannot_settle(self, r: _Underway) -> str | None:
        """Why a lookup cannot settle this row's doubt, or None when it can."""
        if r.doubt_step not in CREATES:
            return None  # sent again, not looked up
        if self._booking_url(r) is not None:
            return None
        if self._target.patient_url(r.row.external_id) is None:
            return "an earlier attempt may have landed and the row has no external_id a lookup can name safely"
        if self._rebookings.under_another_key(r.row):
            return _REBOOKED.format(r.row.external_id)
        return None

    def _attempt(self, r: _Underway) -> RowOutcome:
        """One attempt: a lookup first while in doubt, then send → judge → follow, one request at a time."""
        if r.doubt and (settled := self._settle(r)) is not None:
            return settled
        for _ in range(_MAX_STEPS):
            ex = self._send(r)  # recorded before it leaves, and again with its answer
            verdict = self._judge(r, ex)
            if (outcome := self._follow(r, ex, verdict)) is not None:
                return outcome  # recorded: the row's one final state
        raise _Final("rejected", f"CorEMR's answers contradict each other ({ex.describe()} to the {r.step})")

    def _follow(self, r: _Underway, ex: Exchange, verdict: Verdict) -> RowOutcome | None:
        """Do what the verdict says: end the row (recorded), set its next step (None), or raise to retry or stop."""
        if verdict.kind == "done":
            return self._done(r, verdict)
        if verdict.kind == "next":
            assert verdict.step is not None
            r.step = verdict.step
        elif verdict.kind == "exists":
            if not self._rebookings.by_update:
                return self._hold_rebooking(r)
            r.step, r.booking_by_update = "update", True
        elif verdict.kind == "read_patient":
            r.step = self._after_booking_404(r, ex)
        elif verdict.kind == "check":
            return self._confirm_booking(r)
        elif verdict.kind == "site":  # the breaker has stopped the run: the row stays sendable
            r.doubt = r.doubt or r.doubt_before
            raise _Stopped
        else:
            if verdict.kind == "doubt":
                r.doubt, r.doubt_sha, r.doubt_step = verdict.doubt, r.sha, r.step
            unbound = f" not bound to its request: {verdict.reason}" if verdict.reason else ""
            raise TransientFailure(ex.describe() + unbound, ex.retry_after)
        return None

    def _done(self, r: _Underway, verdict: Verdict) -> RowOutcome:
        """The row is done: record its state, naming a correction's delivering run or a booking sent by update."""
        assert verdict.state is not None
        action, reason = verdict.action, verdict.reason
        if action == "updated" and r.booking_by_update:
            number = self._target.booking_number_of(r.body)
            action, reason = "booking added", _BY_UPDATE.format(number or "")
        elif action == "updated":
            reason = updated_reason(self._prior.get(r.row.key))
        return self._finish(r, verdict.state, reason, r.sha, action=action)

    def _hold_rebooking(self, r: _Underway) -> RowOutcome:
        """CorEMR holds the patient and the site has no bookings routes: held for a person, saying what to do."""
        t = self._target
        return self._finish(r, "changed", rebooking_held_reason(r.row.external_id, t.booking_number_of(r.body),
                                                                t.routes_known), r.sha)  # fmt: skip

    def _booking_changed(self, r: _Underway) -> bool:
        """True unless the body CorEMR was sent before (the ledger's, by SHA-256) holds this row's booking as is."""
        delivered = self._prior.delivered_sha256(r.row.key)
        if delivered is None or self._delivered_body is None:
            return True
        return self._target.booking_changed(self._delivered_body(delivered), r.body)

    def _after_booking_404(self, r: _Underway, ex: Exchange) -> Step:
        """A bookings route answered 404: read the patient. There: the route is not (a stop of the run, the row
        sendable); absent: create it (once per run); anything else: try again or end the row."""
        url = self._target.patient_url(r.row.external_id)
        assert url is not None  # a bookings URL was made of the same external_id
        read = self._look_up(r, url)
        finding = judge_lookup(read, r.row.external_id or "")
        r.last = ex  # the row's last answer is the bookings route's
        if finding == "found":
            self._breaker.site_refused(no_bookings_route_reason(urlsplit(self._target.create_url).path))
            raise _Stopped
        if finding == "absent":
            return "create"
        if finding == "try_again":
            raise TransientFailure(read.describe(), read.retry_after)
        raise _Final("rejected", f"a bookings route answered HTTP 404 and a read of the patient answered"
                                 f" {read.describe()}: check the patient in CorEMR")  # fmt: skip

    def _judge(self, r: _Underway, ex: Exchange) -> Verdict:
        """What an answer to the row's step means, a replayed answer being no answer at all."""
        if self._replayed(ex):
            return Verdict("doubt", reason=_REPLAY, doubt="ambiguous")
        # Only a refused create and an accepted update depend on the booking: read it for those alone.
        asks_booking = ex.status in self._exists or (r.step == "update" and self._booking_changed(r))
        has_booking = asks_booking and self._booking(r) is not None
        verdict = judge_answer(r.step, ex, has_booking=has_booking, api=self._target.api,
                               external_id=r.row.external_id, exists=self._exists,
                               bookings_routes=self._target.routes.has_bookings)  # fmt: skip
        if r.step == "create" and verdict.kind not in ("doubt", "retry"):
            r.create_answered = True  # CorEMR decided on this row's create: a second one is never sent this run
        return verdict

    def _replayed(self, ex: Exchange) -> bool:
        """True when this verified 2xx is byte for byte one already received, in this run, for another request."""
        if not ex.verified or ex.status is None or not 200 <= ex.status < 300:
            return False
        answer = _digest(ex.response_body or b"", (ex.response_authorization or "").encode())
        request = _digest(ex.method.encode(), ex.url.encode(), ex.request_body)
        with self._answers_lock:
            return self._answers.setdefault(answer, request) != request

    def _settle(self, r: _Underway) -> RowOutcome | None:
        """Settle a doubt: an outcome when the request landed, None when not (send it), raise when neither is known."""
        assert r.doubt is not None
        if r.doubt_step not in CREATES:
            r.step, r.doubt, r.doubt_sha = r.doubt_step, None, None  # an update creates nothing: send it again
            return None
        if why := self._cannot_settle(r):
            raise _Final(r.doubt, why)
        booking_url = self._booking_url(r)
        if booking_url is not None:
            assert r.booking is not None and self._target.booking_number is not None
            ex = self._look_up(r, booking_url)
            finding = judge_lookup(ex, r.booking.number, self._target.booking_number, r.row.external_id)
        else:
            url = self._target.patient_url(r.row.external_id)
            assert url is not None  # _cannot_settle refused the rest
            ex = self._look_up(r, url)
            finding = judge_lookup(ex, r.row.external_id or "")
        if (
            finding == "found"
            and booking_url is None
            and not holds_body(ex.response_body, r.body, self._target.profile)
        ):
            # Found by patient alone (v1: no bookings routes), with other details than this row's: the patient
            # may have been there before, and whether this booking landed cannot be told.
            raise _Final(r.doubt, _OTHER_DETAILS.format(r.row.external_id))
        if finding == "found":
            return self._found(r)
        if finding == "absent":
            r.step, r.doubt, r.doubt_sha = r.doubt_step, None, None
            return None
        if finding == "try_again":
            raise TransientFailure(ex.describe(), ex.retry_after)
        if finding == "someone_else":
            asked = (
                f"booking than {r.booking.number}" if booking_url and r.booking else f"patient than {r.row.external_id}"
            )
            raise _Final(r.doubt, f"lookup answered HTTP 200 with another {asked}")
        if finding == "error":
            raise _Final(r.doubt, "lookup answered HTTP 200 with an error in its body: check the patient in CorEMR")
        raise _Final(r.doubt, f"lookup answered HTTP {ex.status}: {server_message(ex.response_body)}")

    def _found(self, r: _Underway) -> RowOutcome | None:
        """The request in doubt landed: delivered; if it carried an older body, this one is a correction."""
        if r.doubt_sha is None or r.doubt_sha == r.sha:
            return self._finish(r, "delivered", "settled by lookup", r.sha, action="found")
        self._finish(r, "delivered", None, r.doubt_sha, record=False, action="found")
        if self._target.on_change == "update":
            r.step, r.doubt, r.doubt_sha = "update", None, None
            return None
        reason = "an earlier body landed (found by lookup); this one differs: held, not sent"
        return self._finish(r, "changed", reason, r.doubt_sha, keep=True)

    def _confirm_booking(self, r: _Underway) -> RowOutcome:
        """CorEMR refused a booking create as existing: a lookup must find that booking to call the row delivered."""
        url = self._booking_url(r)
        assert url is not None and r.booking is not None and self._target.booking_number is not None
        ex = self._look_up(r, url)
        finding = judge_lookup(ex, r.booking.number, self._target.booking_number, r.row.external_id)
        if finding == "found":
            return self._finish(r, "delivered", None, r.sha, action="found")
        if finding == "try_again":
            raise TransientFailure(ex.describe(), ex.retry_after)
        raise _Final("rejected", f"CorEMR refused booking {r.booking.number} as existing, yet its lookup answered"
                                 f" {ex.describe()}: check the patient in CorEMR")  # fmt: skip

    # -- requests --------------------------------------------------------------------------------

    def _booking_url(self, r: _Underway) -> str | None:
        booking = self._booking(r)
        return None if booking is None else self._target.booking_url(r.row.external_id, booking)

    def _request_of(self, r: _Underway) -> tuple[str, str, bytes]:
        """The method, URL and body of the row's next step."""
        if r.step == "create":
            return "POST", self._target.create_url, r.body
        external_id, booking = r.row.external_id, self._booking(r)
        url: str | None
        if r.step == "update":
            url, method, body = self._target.patient_url(external_id), self._target.update_method, r.body
        elif booking is None:
            url, method, body = None, "POST", b""
        elif r.step == "booking":
            url, method, body = self._target.bookings_url(external_id), "POST", booking.body
        else:
            url, method, body = self._target.booking_url(external_id, booking), "POST", booking.body
        if url is None:
            raise _Final("rejected", f"the {r.step} cannot be sent: no URL path can name this row's external_id"
                                     " or booking number safely")  # fmt: skip
        return method, url, body

    def _look_up(self, r: _Underway, url: str) -> Exchange:
        if self._stop.stopped:
            raise _Stopped
        ex = self._request("GET", url)
        self._breaker.observe(ex, "lookup")
        self._writer.submit(request_record(self.run_id, r.row, "lookup", ex, r.attempts))
        r.last = ex
        if ex.verified and ex.status is not None and site_setting("lookup", ex.status) is not None:
            raise _Stopped  # a refusal of our site: the breaker stopped the run; the doubt stays
        return ex

    def _send(self, r: _Underway) -> Exchange:
        """Send the row's next step once, recorded durably (naming the step) before it leaves."""
        if self._stop.stopped:
            raise _Stopped
        if r.step == "create" and r.create_answered:
            raise _Final("rejected", _SECOND_CREATE.format(r.last.describe() if r.last else "none"))
        method, url, body = self._request_of(r)
        if not r.intent_pending:
            # Durable before the request leaves: after a crash the next run sees "sending" and settles it.
            self._writer.submit(intent_record(self.run_id, r.row, r.sha, r.attempts, r.step, method, url, body),
                                durable=True)  # fmt: skip
        r.intent_pending = False
        ex = self._request(method, url, body)
        self._breaker.observe(ex, r.step)
        self._writer.submit(
            request_record(self.run_id, r.row, "attempt", ex, r.attempts, request_stored=True, step=r.step)
        )
        r.last = ex
        return ex

    def _request(self, method: str, url: str, body: bytes = b"") -> Exchange:
        """Every request of the run: signed, then sent once the limiter gives it a place; its answer frees it."""
        return send_signed(self._transport, self._auth, method, url, body, self._in_place)

    def _in_place(self, send: Callable[[], Answer]) -> Answer:
        """Send while holding a place among the requests in flight: what CorEMR is working on, not our signing."""
        slot = self._limiter.slot(self._stop.event)
        if slot is None:  # the run stopped while this request waited for a place
            raise _Stopped
        sent = time.perf_counter()
        try:
            answer = send()
        except BaseException:  # no answer (or a crash in here): the place must not stay taken
            slot.done("failed")
            raise
        rtt = time.perf_counter() - sent
        pause = capped_retry_after(answer.retry_after, self._retry_after_cap)
        slot.done(answer_kind(answer.status, pause), pause, rtt)
        return answer

    # -- ending a row ----------------------------------------------------------------------------

    def _stopped(self, r: _Underway) -> RowOutcome:
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

    def _gave_up(self, r: _Underway, exc: TransientFailure) -> RowOutcome:
        """Retries ran out (or the run stopped while the row waited to retry)."""
        if self._stop.stopped:
            return self._stopped(r)
        if r.doubt:
            return self._finish(r, r.doubt, f"may have reached CorEMR and no verified lookup settled it ({exc})")
        return self._finish(r, "failed", f"gave up after {r.attempts} attempts: {exc}", r.sha)

    def _finish(
        self,
        r: _Underway,
        state: RowState,
        reason: str | None,
        body_sha: str | None = None,
        *,
        record: bool = True,
        keep: bool = False,
        action: Action | None = None,
    ) -> RowOutcome:
        """Record the row's final state entry and its row_status (record=False: status only).

        BODY_SHA: the body the state is about; by default the one in doubt, else this row's.
        """
        reason = reason_text(reason, r.body) if reason else None
        sha = body_sha or r.doubt_sha or r.sha
        step = r.doubt_step if state in ("ambiguous", "unverified") else None
        write = final_records(self.run_id, r.row, state, reason, sha, r.last, r.attempts, keep=keep, action=action,
                              step=step)  # fmt: skip
        self._writer.submit(write if record else LedgerWrite(updates=write.updates))
        known = known_outcome(self._prior.get(r.row.key), write)
        return RowOutcome(r.row.line, r.row.key, state, reason, known, action if state == "delivered" else None, sha)


def _step(recorded: str | None) -> Step:
    """A step as row_status recorded it; None (a ledger from before steps were recorded) was a create."""
    return next((s for s in STEPS if s == recorded), "create")


def _digest(*parts: bytes) -> bytes:
    """A short digest of PARTS, each length-prefixed (16 bytes: one per answer of a run is kept)."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.digest()


# -- records --------------------------------------------------------------------------------------

_CELLS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # one encoder, not one per row
_encode_str: Callable[[str], str] = (
    getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring
)


def intent_record(
    run_id: int, row: MappedRow, row_sha: str, attempt: int, step: Step, method: str, url: str, request: bytes
) -> LedgerWrite:
    """The record that a request of this row (STEP: its create, booking, update...) is about to leave: written
    durably before it does. Its row_status names the row's own body (ROW_SHA) and the step."""
    request_sha = row_sha if request == row.body else sha256_hex(request)
    entry = Entry(run_id, "sending", line=row.line, key=row.key, external_id=row.external_id, attempt=attempt,
                  method=method, url=url, request_sha256=request_sha, detail=_detail(step=step))  # fmt: skip
    status = StatusUpdate(row.key, row.external_id, "sending", row_sha, run_id, row.line, step=step)
    return LedgerWrite([entry], [(request_sha, request)], [status])


def request_record(
    run_id: int,
    row: MappedRow,
    event: Literal["attempt", "lookup"],
    ex: Exchange,
    attempt: int,
    *,
    request_stored: bool = False,
    step: Step | None = None,
) -> LedgerWrite:
    """One request and its answer: the entry, the answer's bytes, and the request's unless already stored."""
    entry = _exchange_entry(run_id, row, event, ex, attempt)
    if step is not None:
        entry.detail = _detail(step=step)
    bodies = [] if request_stored else [(entry.request_sha256 or "", ex.request_body)]
    if ex.response_body is not None:
        bodies.append((entry.response_sha256 or "", ex.response_body))
    return LedgerWrite([entry], bodies)


def final_records(
    run_id: int,
    row: MappedRow,
    state: RowState,
    reason: str | None,
    body_sha: str | None,
    last: Exchange | None,
    attempts: int,
    *,
    keep: bool = False,
    action: Action | None = None,
    step: Step | None = None,
    duplicate_of: int | None = None,
    external_id: str | None = None,
    differs_from: str | None = None,
) -> LedgerWrite:
    """The row's state entry, its input cells and its row_status change.

    keep=True: a 'changed' after a lookup keeps the delivered body recorded just before it. ACTION: how a
    delivered row got there; STEP: the request a doubt is about. A row repeating an earlier line's booking
    (DUPLICATE_OF) leaves row_status to that line. EXTERNAL_ID: the one row_status keeps, if not the row's.
    DIFFERS_FROM: for a held change, the delivered body's SHA-256; the held body is stored beside it, so that a
    report can say field by field what changed (both prunable, like any body).

    Pure functions from what happened to a `LedgerWrite`; the engine decides when each is submitted.
    """
    cells = cells_json(row)
    cells_sha = sha256_hex(cells)
    # The last exchange's bodies were stored with its own entry; the state entry only points at them.
    entry = _exchange_entry(run_id, row, "state", last, attempts)
    entry.state = state
    entry.error = reason
    entry.cells_sha256 = cells_sha
    entry.detail = _detail(action=action, duplicate_of=duplicate_of, differs_from=differs_from)
    if last is None:
        entry.request_sha256 = body_sha
    write = LedgerWrite([entry], [(cells_sha, cells)])
    if differs_from is not None and body_sha is not None and row.body is not None:
        write.bodies.append((body_sha, row.body))
    if row.key and duplicate_of is None:
        delivered = state == "delivered" and not keep
        write.updates.append(
            StatusUpdate(row.key, external_id or row.external_id, state, body_sha, run_id, row.line, reason,
                         delivered=delivered, cells_sha256=cells_sha, action=action if delivered else None, step=step)
        )  # fmt: skip
    return write


def _detail(**values: object) -> str | None:
    """An entry's detail: the given values that are set, as compact JSON (None when none is)."""
    kept = {name: value for name, value in values.items() if value is not None}
    return _CELLS.encode(kept) if kept else None


def _exchange_entry(
    run_id: int, row: MappedRow, event: Literal["attempt", "lookup", "state"], ex: Exchange | None, attempt: int
) -> Entry:
    entry = Entry(run_id, event, line=row.line, key=row.key, external_id=row.external_id, attempt=attempt)
    if ex is None:
        return entry
    entry.method = ex.method
    entry.url = ex.url
    entry.http_status = ex.status
    entry.elapsed_ms = round(ex.elapsed_ms, 3)
    entry.request_sha256 = sha256_hex(ex.request_body)
    entry.request_authorization = ex.request_authorization
    if ex.response_body is not None:
        entry.response_sha256 = sha256_hex(ex.response_body)
    entry.response_authorization = ex.response_authorization
    if ex.verification is not None:
        entry.response_signer = ex.verification.signer
        entry.verification = ex.verification.status
    if event != "state" and (ex.error or not ex.verified):
        entry.error = reason_text(ex.error or ex.describe(), row.body)
    return entry


def cells_json(row: MappedRow) -> bytes:
    """The row's original cells as a JSON object, byte for byte `json.dumps(row.cells)` compact, non-ASCII kept."""
    template = _cells_template(row.header) if len(row.row) == len(row.header) else None
    if template is not None:
        try:
            return (template % tuple(map(_encode_str, row.row))).encode()
        except TypeError:  # a cell that is not a string: let the encoder say how it looks
            pass
    return _CELLS.encode(row.cells).encode("utf-8")


@functools.lru_cache(maxsize=16)
def _cells_template(header: tuple[str, ...]) -> str | None:
    """'{"name":%s,...}' with each column name JSON-encoded, or None when names repeat (a dict keeps one of each).

    One %-format of the encoded cells: 1.5 µs a row where joining name+value pairs took 2.4.
    """
    if len(set(header)) != len(header):
        return None
    return "{" + ",".join(_encode_str(name).replace("%", "%%") + ":%s" for name in header) + "}"


# -- quiet ----------------------------------------------------------------------------------------


def quiet_records(
    run_id: int, prior: PriorRows, planned: Sequence[tuple[MappedRow, Plan, str | None]], stop_reason: str
) -> tuple[LedgerWrite, list[RowOutcome]]:
    """The records and outcomes of rows that need no request (STOP_REASON: why a run that stopped sent no more).

    entries), invalid, excluded, duplicate, held (changed), refused before with the same body, or not sent
    because the run had stopped. No I/O: one LedgerWrite for a chunk of them, which the engine submits.
    """
    write = LedgerWrite()
    outcomes: list[RowOutcome] = []
    skipped: list[SkippedRow] = []
    for row, row_plan, sha in planned:
        if row_plan == "skipped" and sha is not None:  # the re-run's common case, kept lean
            skipped.append(_skipped(run_id, prior, row, sha, write))
            outcomes.append(RowOutcome(row.line, row.key, "skipped", body_sha256=sha))
        else:
            outcomes.append(_quiet_outcome(run_id, prior, row, row_plan, sha, write, stop_reason))
    if skipped:  # listed in chained skipped_rows entries, not one entry each: a re-run is mostly these
        write.entries += skipped_rows_entries(run_id, skipped)
    return write, outcomes


def _skipped(run_id: int, prior: PriorRows, row: MappedRow, sha: str, write: LedgerWrite) -> SkippedRow:
    cells = cells_json(row)
    cells_sha = sha256_hex(cells)
    if not keeps_recorded_status(prior.recorded(row.key), sha, cells_sha):
        write.bodies.append((cells_sha, cells))
        write.updates.append(
            StatusUpdate(row.key, row.external_id, "skipped", sha, run_id, row.line, cells_sha256=cells_sha)
        )
    # else row_status already holds this body and these cells (stored with the entry that set them):
    # leave it, and the run that delivered it, as it is
    return SkippedRow(row.line, row.key, row.external_id, sha, cells_sha)


def _quiet_outcome(
    run_id: int,
    prior: PriorRows,
    row: MappedRow,
    row_plan: Plan,
    sha: str | None,
    write: LedgerWrite,
    stop_reason: str,
) -> RowOutcome:
    p = prior.get(row.key)
    state: RowState = "failed"
    reason: str | None = None
    step: Step | None = None
    if row_plan == "invalid":
        state, reason = "invalid", "; ".join(str(problem) for problem in row.problems)
    elif row_plan == "excluded":
        state, reason = "excluded", row.excluded
    elif row_plan == "duplicate":
        state, reason = "duplicate", f"the same booking as line {row.duplicate_of} (same key and body): not sent"
    elif row_plan == "skipped":
        state = "skipped"
    elif row_plan == "changed":
        state, reason = "changed", changed_reason(p)
    elif row_plan == "renumbered" and p is not None and p.state in DOUBTFUL:  # still in doubt, under its own id
        state, reason = ("unverified" if p.state == "unverified" else "ambiguous"), renumbered_reason(p, row)
        sha, step = p.body_sha256, _step(p.step)  # the body and request that may have landed, for a later lookup
    elif row_plan == "renumbered":
        state, reason = "changed", renumbered_reason(p, row)
    elif row_plan == "stopped":  # would have been sent, but the run had stopped
        reason = f"not sent: {stop_reason}"
    else:
        state = "rejected"
        reason = rejected_again_reason(p)  # the same words every night, naming the run that was refused
    reason = reason_text(reason, row.body) if reason else None
    # A renumbered row keeps the delivered external_id in row_status: the next night compares with it again.
    kept_id = p.external_id if row_plan == "renumbered" and p is not None else None
    # A held change names the body it differs from: a report says field by field what changed.
    differs_from = p.delivered_sha256 if row_plan in ("changed", "renumbered") and p is not None else None
    records = final_records(run_id, row, state, reason, sha, None, 0, duplicate_of=row.duplicate_of, step=step,
                            external_id=kept_id, differs_from=differs_from)  # fmt: skip
    write.add(records)
    cells_sha = records.entries[-1].cells_sha256
    # Reported before: this key's recorded status is this very line's (same state, body and cells), or the last
    # run left this line so (a line without a key, a per-charge sibling line of a key: known by their cells).
    known = known_outcome(p, records) or prior.reported(booking_identity(row.key, cells_sha), state, cells_sha)
    return RowOutcome(row.line, row.key, state, reason, known, body_sha256=sha, cells_sha256=cells_sha)
