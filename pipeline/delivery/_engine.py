"""Delivering one mapped row: settle doubt by lookup, send each step with retries, verify, record it all.

The promise: every row ends in exactly one recorded state; nothing is created twice, neither a patient nor
a booking. A request that may have landed (connection lost after sending, read timeout, unverified
answer, a crash between the "sending" record and the outcome) is never sent again before a signed lookup
says it is not there; an update, which creates nothing, is simply sent again.

A row may take several requests (see _steps): a patient CorEMR already holds gets its booking through the
bookings routes where the site has them (else the row is held for a person, or, where the site says a
patient update adds a booking, sent as one), and a correction is sent as an update (with a booking update
only when a booking field changed). A row makes at most one create request per run that CorEMR answers:
a second would be a loop of doomed creates. Every request that can change CorEMR is recorded
durably, naming its step, before it leaves, and every request with its answer after; every one goes
through `exchange`. The pieces: `exchange` (one signed request), `retrying` (the retry policy),
`judge_answer` (what an answer means), `judge_lookup` (what a lookup found), `_records` (ledger records).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..ledger import (
    STEPS,
    Action,
    LedgerWrite,
    LedgerWriter,
    PriorRows,
    RowState,
    Step,
)
from ..mapping import MappedRow
from ..protocol import CWSAuth
from ._circuit_breaker import CircuitBreaker
from ._concurrency import ConcurrencyLimiter, FixedLimit, answer_kind
from ._config import RunConfig
from ._exchange import Exchange, exchange
from ._lookup import holds_body, judge_lookup
from ._messages import reason_text, server_message
from ._outcome import RowOutcome, known_outcome
from ._plan import Plan, Rebookings, plan, same_number_reason, updated_reason
from ._quiet import quiet_records
from ._records import exchange_record, final_records, intent_record
from ._retry import RunStop, TransientFailure, capped_retry_after, retrying
from ._steps import (
    Doubt,
    Verdict,
    judge_answer,
    no_bookings_route_reason,
    rebooking_held_reason,
    site_setting,
)
from ._target import Booking, Target
from ._transport import Answer, Transport

__all__ = ["Delivery", "RowOutcome"]

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
class _Progress:
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
        target: Target | None = None,
        limiter: ConcurrencyLimiter | None = None,
        delivered_body: Callable[[str], bytes | None] | None = None,
    ) -> None:
        self.run_id = run_id
        self._transport = transport
        self._auth = auth
        self._writer = writer
        self._target = target or Target.default(endpoint_url)
        self._prior = prior
        self._breaker = breaker
        self._stop: RunStop = breaker.stop
        self._rebookings = Rebookings(prior)
        self._exists = config.exists_status
        self._delivered_body = delivered_body  # the ledger's stored body by SHA-256 (None: unknown, send both)
        self._answers: dict[bytes, bytes] = {}  # a 2xx answer's digest -> its request's: a second request is a replay
        self._answers_lock = threading.Lock()
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
        """What this row needs (from its validity, earlier runs and the corrections policy) and its body's SHA-256;
        "rebooked": a returning person this site cannot be sent (no bookings routes), held for a person."""
        row_plan, sha = plan(row, self._prior, self._target.on_change)
        if row_plan in ("send", "changed") and sha is not None and (delivered := self._new_booking(row)):
            held = self._cannot_add_booking() or self._same_number(delivered, row)
            return ("rebooked" if held else "send"), sha  # whatever on_change says
        if row_plan == "send" and sha is not None and self._held_rebooking(row, sha):
            return "rebooked", sha
        return row_plan, sha

    def _new_booking(self, row: MappedRow) -> bytes | None:
        """The delivered body of a row keyed by person alone whose booking number or date changed since: a new
        booking of a known patient (a re-booking), never an update that would overwrite the delivered booking."""
        if self._target.key_names_booking or row.body is None or self._delivered_body is None:
            return None
        delivered_sha = self._prior.delivered_sha256(row.key)
        if delivered_sha is None or self._prior.in_doubt(row.key):
            return None
        delivered = self._delivered_body(delivered_sha)
        return delivered if self._target.new_booking(delivered, row.body) else None

    def _same_number(self, delivered: bytes, row: MappedRow) -> bool:
        """True when a new booking has the DELIVERED booking's number: it cannot be added under it (nor sent as
        that booking's update, which would overwrite its date)."""
        assert row.body is not None
        number = self._target.booking_number_of(row.body)
        return number is not None and number == self._target.booking_number_of(delivered)

    def _held_reason(self, row: MappedRow) -> str:
        """Why a returning person is held: the new booking has the delivered one's number, or the site cannot add
        a booking through CWS."""
        assert row.body is not None
        number = self._target.booking_number_of(row.body)
        delivered = self._new_booking(row)
        if delivered is not None and self._same_number(delivered, row):
            return same_number_reason(row.external_id, number, self._prior.get(row.key))
        return rebooking_held_reason(row.external_id, number, self._target.routes_known)

    def _cannot_add_booking(self) -> bool:
        """True where a patient CorEMR holds cannot get a booking through CWS: no bookings routes (v1 has none),
        and no patient update that adds one."""
        t = self._target
        return t.api == "v1" or (not t.routes.has_bookings and not t.update_adds_booking)

    def _held_rebooking(self, row: MappedRow, sha: str) -> bool:
        """True for a returning person at a site without bookings routes that does not take bookings by update:
        one the ledger knows under another key, or one CorEMR refused as existing before (held, same body)."""
        t = self._target
        if t.api == "v1" or t.routes.has_bookings or t.update_adds_booking or self._prior.delivered_sha256(row.key):
            return False
        p = self._prior.get(row.key)
        if p is not None and p.state == "changed" and p.body_sha256 == sha:
            return True  # held before (a create answered "exists"): a create again would be refused again
        return self._rebookings.under_another_key(row)

    def record_many_without_sending(self, planned: Sequence[tuple[MappedRow, Plan, str | None]]) -> list[RowOutcome]:
        """Record the states of rows that need no request, in one ledger submission (re-runs are mostly these)."""
        held = [(row, sha) for row, row_plan, sha in planned if row_plan == "rebooked" and row.body and sha]
        write, outcomes = quiet_records(
            self.run_id, self._prior, [p for p in planned if p[1] != "rebooked"], self._stop.reason
        )
        for row, sha in held:
            assert row.body is not None and sha is not None
            reason = reason_text(self._held_reason(row), row.body)
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
            r = self._progress(row, sha, intent_pending=False)
            method, url, body = self._request_of(r)
            write.add(intent_record(self.run_id, row, sha, 1, r.step, method, url, body))
        self._writer.submit(write, durable=True)

    def deliver(self, row: MappedRow, row_plan: Plan, sha: str, *, intent_recorded: bool = False) -> RowOutcome:
        """Settle any doubt, send each step with retries, verify, and record the row's final state (sha: the body's)."""
        r = self._progress(row, sha, intent_pending=intent_recorded)
        prior = self._prior.get(row.key)
        if row_plan == "settle" and prior is not None:
            r.doubt = "unverified" if prior.state == "unverified" else "ambiguous"
            r.doubt_sha = prior.body_sha256
            r.doubt_step = _step(prior.step)
            r.doubt_before = r.doubt
            if why := self._cannot_settle(r):
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

    def _progress(self, row: MappedRow, sha: str, *, intent_pending: bool) -> _Progress:
        """A row about to be sent, with its first step: an update of a delivered row (a correction), a booking
        for a patient the ledger knows under another key or, keyed by person alone, under this one with another
        booking (a re-booking), else a create."""
        assert row.body is not None
        r = _Progress(row, row.body, sha, "create", intent_pending)
        delivered = self._prior.delivered_sha256(row.key) is not None
        if delivered and self._new_booking(row) is None:
            r.step = "update"
        elif delivered or self._rebookings.under_another_key(row):
            if self._booking(r) is not None:
                r.step = "booking"  # the create would be refused: the patient exists
            elif self._by_update():
                r.step, r.booking_by_update = "update", True  # no bookings routes: the site takes it this way
        return r

    def _by_update(self) -> bool:
        """True where a re-booking goes as a patient update: no bookings routes and update_adds_booking (v2, v3)."""
        t = self._target
        return t.update_adds_booking and not t.routes.has_bookings and t.api != "v1"

    def _booking(self, r: _Progress) -> Booking | None:
        """The row's booking, read from its body once and only when needed (a first create never needs it)."""
        if not r.booking_read:
            r.booking, r.booking_read = self._target.booking_of(r.body), True
        return r.booking

    def _cannot_settle(self, r: _Progress) -> str | None:
        """Why a lookup cannot settle this row's doubt, or None when it can."""
        if r.doubt_step in ("update", "booking update"):
            return None  # sent again, not looked up
        if self._booking_url(r) is not None:
            return None
        if self._target.patient_url(r.row.external_id) is None:
            return "an earlier attempt may have landed and the row has no external_id a lookup can name safely"
        if self._rebookings.under_another_key(r.row):
            return _REBOOKED.format(r.row.external_id)
        return None

    def _try_once(self, r: _Progress) -> RowOutcome:
        """One attempt: a lookup first while in doubt, then the row's requests until CorEMR's answers end it."""
        if r.doubt:
            settled = self._settle(r)
            if settled is not None:
                return settled
        for _ in range(_MAX_STEPS):
            ex = self._send(r)
            # Only a refused create and an accepted update depend on the booking: read it for those alone.
            asks = ex.status in self._exists or (r.step == "update" and self._booking_changed(r))
            verdict = self._judge(r, ex, asks)
            if r.step == "create" and verdict.kind not in ("doubt", "retry"):
                r.create_answered = True  # CorEMR decided on this row's create: a second one is never sent this run
            if verdict.kind == "done":
                return self._done(r, verdict)
            if verdict.kind == "next":
                assert verdict.step is not None
                r.step = verdict.step
            elif verdict.kind == "exists":
                if not self._by_update():
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
        raise _Final("rejected", f"CorEMR's answers contradict each other ({ex.describe()} to the {r.step})")

    def _done(self, r: _Progress, verdict: Verdict) -> RowOutcome:
        """The row is done: record its state, naming a correction's delivering run or a booking sent by update."""
        assert verdict.state is not None
        action, reason = verdict.action, verdict.reason
        if action == "updated" and r.booking_by_update:
            number = self._target.booking_number_of(r.body)
            action, reason = "booking added", _BY_UPDATE.format(number or "")
        elif action == "updated":
            reason = updated_reason(self._prior.get(r.row.key))
        return self._finish(r, verdict.state, reason, r.sha, action=action)

    def _hold_rebooking(self, r: _Progress) -> RowOutcome:
        """CorEMR holds the patient and the site has no bookings routes: held for a person, saying what to do."""
        t = self._target
        return self._finish(r, "changed", rebooking_held_reason(r.row.external_id, t.booking_number_of(r.body),
                                                                t.routes_known), r.sha)  # fmt: skip

    def _booking_changed(self, r: _Progress) -> bool:
        """True unless the body CorEMR was sent before (the ledger's, by SHA-256) holds this row's booking as is."""
        delivered = self._prior.delivered_sha256(r.row.key)
        if delivered is None or self._delivered_body is None:
            return True
        return self._target.booking_changed(self._delivered_body(delivered), r.body)

    def _after_booking_404(self, r: _Progress, ex: Exchange) -> Step:
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

    def _judge(self, r: _Progress, ex: Exchange, asks_booking: bool) -> Verdict:
        """What an answer to the row's step means, a replayed answer being no answer at all."""
        if self._replayed(ex):
            return Verdict("doubt", reason=_REPLAY, doubt="ambiguous")
        has_booking = asks_booking and self._booking(r) is not None
        return judge_answer(r.step, ex, has_booking=has_booking, api=self._target.api, external_id=r.row.external_id,
                            exists=self._exists, bookings_routes=self._target.routes.has_bookings)  # fmt: skip

    def _replayed(self, ex: Exchange) -> bool:
        """True when this verified 2xx is byte for byte one already received, in this run, for another request."""
        if not ex.verified or ex.status is None or not 200 <= ex.status < 300:
            return False
        answer = _digest(ex.response_body or b"", (ex.response_authorization or "").encode())
        request = _digest(ex.method.encode(), ex.url.encode(), ex.request_body)
        with self._answers_lock:
            return self._answers.setdefault(answer, request) != request

    def _settle(self, r: _Progress) -> RowOutcome | None:
        """Settle a doubt: an outcome when the request landed, None when not (send it), raise when neither is known."""
        assert r.doubt is not None
        if r.doubt_step in ("update", "booking update"):
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
        raise _Final(r.doubt, f"lookup answered HTTP {ex.status}: {server_message(ex.response_body)}")

    def _found(self, r: _Progress) -> RowOutcome | None:
        """The request in doubt landed: delivered; if it carried an older body, this one is a correction."""
        if r.doubt_sha is None or r.doubt_sha == r.sha:
            return self._finish(r, "delivered", "settled by lookup", r.sha, action="found")
        self._finish(r, "delivered", None, r.doubt_sha, record=False, action="found")
        if self._target.on_change == "update":
            r.step, r.doubt, r.doubt_sha = "update", None, None
            return None
        reason = "an earlier body landed (found by lookup); this one differs: held, not sent"
        return self._finish(r, "changed", reason, r.doubt_sha, keep=True)

    def _confirm_booking(self, r: _Progress) -> RowOutcome:
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

    def _booking_url(self, r: _Progress) -> str | None:
        booking = self._booking(r)
        return None if booking is None else self._target.booking_url(r.row.external_id, booking)

    def _request_of(self, r: _Progress) -> tuple[str, str, bytes]:
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

    def _look_up(self, r: _Progress, url: str) -> Exchange:
        if self._stop.stopped:
            raise _Stopped
        ex = self._request("GET", url)
        self._breaker.observe(ex, "lookup")
        self._writer.submit(exchange_record(self.run_id, r.row, "lookup", ex, r.attempts))
        r.last = ex
        if ex.verified and ex.status is not None and site_setting("lookup", ex.status) is not None:
            raise _Stopped  # a refusal of our site: the breaker stopped the run; the doubt stays
        return ex

    def _send(self, r: _Progress) -> Exchange:
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
            exchange_record(self.run_id, r.row, "attempt", ex, r.attempts, request_stored=True, step=r.step)
        )
        r.last = ex
        return ex

    def _request(self, method: str, url: str, body: bytes = b"") -> Exchange:
        """Every request of the run: signed, then sent once the limiter gives it a place; its answer frees it."""
        return exchange(self._transport, self._auth, method, url, body, self._in_place)

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
