"""The run: one composition root builds every part from the run configuration, feeds it rows, records the end."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from .._errors import ConfigError, CWSPipelineError, ExitCode, HeadLogError, LedgerDamaged, LedgerError, OutsideWindow
from .._gc import cycle_collector_paused
from .._logging import logger
from .._masking import withhold_server_words
from .._version import __version__
from ..ledger import (
    NOT_DELIVERED,
    ROW_STATES,
    Ledger,
    LedgerWriter,
    PriorRows,
    RowState,
    RunInfo,
    RunLock,
    RunRecord,
    RunStatus,
    operator,
    record_chain_head,
    site_facts,
)
from ..mapping import MappedRow, Mapping, load_mapping, map_csv
from ..protocol import API_PROFILES, CWSAuth, Keyring, load_private_key
from ..source import Snapshot, take_snapshot
from ._config import RunConfig
from ._decisions import Plan, Target
from ._engine import Delivery, RowOutcome
from ._pacing import AdaptiveLimit, CircuitBreaker, ConcurrencyLimiter, FixedLimit, RunStop, SendingWatch, settled_limit
from ._transport import CWSTransport

__all__ = [
    "Dispatcher",
    "RunInterrupted",
    "RunProgress",
    "RunResult",
    "Tally",
    "print_summary",
    "run_bookings",
    "summary_lines",
    "workers_for",
]


# -- run ------------------------------------------------------------------------------------------

WINDOW_CLOSED_EXIT = ExitCode.OUTSIDE_WINDOW  # the window closed (or time was up) before every row was sent

_log = logger(__name__)


class RunProgress:
    """What a run tells whoever shows its progress; a caller overrides the methods it needs (each does nothing here).

    `row` is called from the run's worker threads, several at once: an override that keeps state takes a lock
    (or does one thread-safe thing, as `list.append`). An exception raised in any of them ends the run as a
    crash, recorded as such.
    """

    def row(self, outcome: RowOutcome) -> None:
        """A row got its state in this run (every row once, in no particular order)."""

    def rows_read(self, rows: int) -> None:
        """A chunk of ROWS rows was read from the export (their sum is exact once it is read to its end)."""

    def expected(self, lines: int) -> None:
        """The export holds LINES lines after its header: about its rows, for an ETA (told once, before sending)."""

    def concurrency(self, limit: int) -> None:
        """The requests allowed in flight at once are now LIMIT (told at the start and whenever it changes)."""


@dataclass
class RunResult:
    """What a run did: the ledger's record of it (counts, exit code), and what only the live run knows.

    RECORD is the one description of the run (started, finished, status, exit code, counts); the run id,
    counts, exit code and concurrency here are read from it. The rest is what the ledger does not keep:
    the rows needing a person as this run saw them, notices about earlier runs, how it was paced.
    """

    record: RunRecord
    ledger: Path
    attention: list[RowOutcome] = field(default_factory=list)
    security_stop: str | None = None
    notices: list[str] = field(default_factory=list)  # one line each: an earlier run that did not finish
    new_attention: int = 0  # rows that newly need a person, or changed since they were reported
    known_attention: int = 0  # rows that need a person as reported before, unchanged since
    # Bookings needing a person once the run ended (each key or line without one once, whatever its lines; rows
    # of earlier runs still outstanding included): the count `status` and `report --all` give too.
    needs_person: int = 0
    adaptive: bool = False
    peak_in_flight: int = 0
    stopped_early: str | None = None  # why sending stopped early: the delivery window closed, or time was up

    def __post_init__(self) -> None:
        if self.record.exit_code is None:  # a run's result wraps only a run whose end is recorded
            raise ValueError(f"run {self.record.run_id} is {self.record.status}: its end is not recorded")

    @property
    def run_id(self) -> int:
        """The run's id in the ledger."""
        return self.record.run_id

    @property
    def counts(self) -> dict[RowState, int]:
        """Rows per state (every state, 0 when none), as the ledger recorded them at the run's end."""
        recorded = self.record.counts
        return {state: recorded.get(state, 0) for state in ROW_STATES}

    @property
    def exit_code(self) -> ExitCode:
        """The exit code the run earned, as the ledger recorded it (see `_exit_code_earned`)."""
        code = self.record.exit_code
        assert code is not None  # checked when the result was made: its run's end is recorded
        return ExitCode(code)

    @property
    def concurrency(self) -> int:
        """Requests in flight the limit settled at (the fixed number when not adaptive); 0 when it sent nothing."""
        return self.record.concurrency or 0

    @property
    def rows(self) -> int:
        """How many input rows the run gave a state."""
        return sum(self.counts.values())


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (exit 130) or SIGTERM (exit 143) stopped a run; the ledger records it as interrupted."""

    def __init__(self, run_id: int, ledger: Path, exit_code: ExitCode = ExitCode.INTERRUPTED) -> None:
        super().__init__(f"run {run_id} was interrupted and is recorded so in {ledger}")
        self.run_id = run_id
        self.ledger = ledger
        self.exit_code = exit_code


class _Terminated(KeyboardInterrupt):
    """SIGTERM arrived (systemd stopping, `kill`, a cron timeout): the run ends as Ctrl-C ends it."""


class _SigtermEndsLikeCtrlC:
    """From `arm()` (the run is recorded) to the block's end, SIGTERM raises in the main thread as Ctrl-C does;
    once only, then it is ignored so that recording the run's end is not cut short. Before `arm()` SIGTERM
    keeps its default: the process ends with nothing of a run recorded. Other threads cannot handle signals."""

    def __init__(self) -> None:
        self._armed = False
        self._before: Any = None  # the handler to restore (None: one not set from Python, so the default)

    def arm(self) -> None:
        """Handle SIGTERM from now on (the main thread only)."""
        if threading.current_thread() is threading.main_thread():
            self._before = signal.signal(signal.SIGTERM, self._terminate)
            self._armed = True

    @staticmethod
    def _terminate(signum: int, _: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise _Terminated

    def __enter__(self) -> _SigtermEndsLikeCtrlC:
        return self

    def __exit__(self, *_: object) -> None:
        if self._armed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if self._before is None else self._before)


@dataclass(frozen=True)
class _SetUp:
    """Everything checked before the ledger is locked: a problem here is exit 2 with nothing sent."""

    mapping: Mapping
    auth: CWSAuth
    source_sha256: str
    chunks: Iterator[list[MappedRow]]
    snapshot: Snapshot


def run_bookings(
    csv_path: Path | str,
    mapping_path: Path | str,
    config: RunConfig,
    *,
    progress: RunProgress | None = None,
    sleep: Callable[[float], None] | None = None,
    now: Callable[[], datetime] | None = None,
) -> RunResult:
    """Deliver every row of a bookings export; return what the run did. Raises UserInputError before sending.

    PROGRESS is told each row's outcome, each chunk's rows as read, the export's lines (about its rows,
    for an ETA) and the concurrency limit whenever it changes. SLEEP replaces the waits between
    retries (tests record them); by default a wait ends early when the run stops. NOW replaces the
    clock the delivery window is read by. Outside the window raises OutsideWindow, nothing sent.
    Ctrl-C or SIGTERM raises RunInterrupted once the run is recorded as interrupted.

    The run record says what happened: `finished`, or `stopped` (a security stop, or the delivery window closed)
    with the exit code the counts earn, `interrupted` (Ctrl-C, exit 130; SIGTERM, exit 143), or `crashed` with
    the exit code the error gets. A run killed outright (SIGKILL, power loss) cannot record its end: the next
    run finds it still `running`, records it as `killed`, and says so in one line, as it does for an earlier
    crashed or interrupted run. Every request waits for a place from the run's one ConcurrencyLimiter (adaptive
    by default, `concurrency` its ceiling); a run started outside its delivery window sends nothing.
    """
    started = _started_inside_window(config, now)
    csv_path = Path(csv_path)
    setup = _set_up(csv_path, mapping_path, config)
    progress = progress if progress is not None else RunProgress()  # told everything; by default says nothing
    progress.expected(_lines_after_header(setup.snapshot))
    with (
        _SigtermEndsLikeCtrlC() as sigterm,
        _open_transport(config) as transport,
        RunLock(config.ledger, create=True),
        Ledger.open(config.ledger) as ledger,
        contextlib.closing(_DeliveredBodies(config.ledger)) as delivered_body,
    ):
        prior, run_id, notices = _begin(ledger, csv_path, setup, config)
        stop = RunStop()
        limiter = _limiter(config, progress)
        breaker = CircuitBreaker(config.circuit_breaker, stop)
        writer, tally = LedgerWriter(ledger), Tally(progress)
        failure: BaseException | None = None
        watch = SendingWatch(stop.stop, now, window=config.window, max_seconds=config.max_run_seconds, started=started,
                             limit_named=f"max_run_seconds = {config.max_run_seconds:g} in {config.path}")  # fmt: skip
        sigterm.arm()  # the run is recorded and its end will be: a SIGTERM from now on ends it as interrupted, 143
        try:
            delivery = Delivery(config, run_id=run_id, transport=transport, auth=setup.auth, writer=writer,
                                prior=prior, target=_site_target(config, ledger, setup.mapping), breaker=breaker,
                                limiter=limiter, delivered_body=delivered_body, sleep=sleep)  # fmt: skip
            with watch:
                Dispatcher(delivery, stop, limiter, tally, progress).run(setup.chunks)
        except BaseException as exc:  # Ctrl-C and crashes alike: the run record must say what happened
            failure = exc
        seen = _LiveRun(run_id, config.ledger, notices, tally, breaker, stopped_early=watch.stopped,
                        concurrency=settled_limit(limiter.limit), adaptive=config.adaptive,
                        peak_in_flight=limiter.peak)  # fmt: skip
        return _end_run(ledger, writer, seen, failure, config.head_log)


def _started_inside_window(config: RunConfig, now: Callable[[], datetime] | None) -> datetime | None:
    """When the run started, by the window's clock (None without a window); raise OutsideWindow outside it.

    The window's close is worked out from this moment, not from when sending begins: a set-up that
    outlasts the window's end must not make the watch look for the next day's close and send all night.
    """
    if config.window is None:
        return None
    started = (now or config.window.now)()
    if closed := config.window.not_open(started):
        raise OutsideWindow(closed)
    return started


def _begin(ledger: Ledger, csv_path: Path, setup: _SetUp, config: RunConfig) -> tuple[PriorRows, int, list[str]]:
    """Read what earlier runs left, note those that did not finish, and record this run's start (its id)."""
    with _ledger_errors():
        prior = ledger.prior_rows()  # read while SQLite checks the file beside it; the first write waits for that
        notices = _earlier_runs_not_finished(ledger)
        run_id = ledger.begin_run(_run_info(csv_path, setup, config), os.getpid())
    _log.info("run %d started: %s to %s", run_id, csv_path.name, config.base_url, extra={"run_id": run_id})
    return prior, run_id, notices


def _site_target(config: RunConfig, ledger: Ledger, mapping: Mapping) -> Target:
    """The mapping's target at this site, with the bookings routes only where the site is known to have them."""
    has, known = _bookings_routes(config, ledger)
    return Target.of(mapping, config.base_url, bookings_routes=has, update_adds_booking=config.update_adds_booking,
                     routes_known=known)  # fmt: skip


def _bookings_routes(config: RunConfig, ledger: Ledger) -> tuple[bool, str]:
    """Whether the site has the bookings routes, and where that is known from: the run configuration's
    `bookings_routes`, else what `check` found and recorded, else they are not assumed (no)."""
    if config.bookings_routes is not None:
        return config.bookings_routes == "yes", f'bookings_routes = "{config.bookings_routes}" in {config.path.name}'
    fact = site_facts(ledger).get("bookings_routes")
    if fact is not None:
        return fact.value == "yes", f"`cws-pipeline check` found {'them' if fact.value == 'yes' else 'none'}"
    return False, "bookings_routes is not set and `cws-pipeline check` has not found them"


class _DeliveredBodies:
    """The ledger's stored bodies by SHA-256 (a correction's delivered body), read through a read-only
    connection of its own, opened on first need: worker threads never share the writer's connection."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._ledger: Ledger | None = None
        self._lock = threading.Lock()

    def __call__(self, sha256: str) -> bytes | None:
        with self._lock:
            try:
                if self._ledger is None:
                    self._ledger = Ledger.open_read_only(self._path, check=False)
                return self._ledger.body(sha256)
            except CWSPipelineError:  # unreadable: the caller sends the booking update, as if it changed
                return None

    def close(self) -> None:
        with self._lock:
            if self._ledger is not None:
                self._ledger.close()
                self._ledger = None


def _run_info(csv_path: Path, setup: _SetUp, config: RunConfig) -> RunInfo:
    """What the runs table records of this run's set-up, and who runs it where."""
    user, host = operator()
    return RunInfo(
        source=str(csv_path.resolve()),
        source_sha256=setup.source_sha256,
        mapping=str(setup.mapping.path.resolve()),
        mapping_sha256=setup.mapping.sha256,
        base_url=config.base_url,
        endpoint=setup.mapping.endpoint,
        access=config.access,
        algorithm=config.algorithm,
        program_version=__version__,
        user=user,
        host=host,
    )


def _limiter(config: RunConfig, progress: RunProgress) -> ConcurrencyLimiter:
    """The run's one limiter: adaptive up to `concurrency` (TCP Vegas), or fixed at it; `max_rate` a second."""
    limit = AdaptiveLimit(config.concurrency) if config.adaptive else FixedLimit(config.concurrency)
    progress.concurrency(limit.allowed)
    return ConcurrencyLimiter(limit, max_rate=config.max_rate, on_change=progress.concurrency)


def _lines_after_header(snapshot: Snapshot) -> int:
    """The export's line breaks less the header's: its rows, unless cells hold line breaks or a footer follows."""
    return max(0, snapshot.line_breaks - 1)


def _set_up(csv_path: Path, mapping_path: Path | str, config: RunConfig) -> _SetUp:
    """Load and check the mapping, keys, keyring and export; map the first chunk (file-level problems show here)."""
    mapping = load_mapping(mapping_path)
    API_PROFILES[mapping.api].require_algorithm(config.algorithm, f"{config.path}: algorithm")  # v1: CWS-SHA1 only
    key = load_private_key(config.private_key, config.passphrase())
    keyring = Keyring(config.server_keys)
    signers = keyring.usernames()
    if not signers:
        raise ConfigError(
            f"{config.path}: server_keys: {config.server_keys} holds no <USERNAME>.pem: every answer would be"
            " unverified; save CorEMR's public key there"
        )
    for signer in signers:  # a broken .pem is a set-up error: say so before sending anything
        keyring.public_key(signer)
    auth = CWSAuth(key, config.access, keyring, config.algorithm, config.accept_algorithms)
    snapshot = take_snapshot(csv_path, settle_seconds=config.settle_seconds)  # read once: sent = hashed
    source_sha = snapshot.sha256
    rows = map_csv(snapshot, mapping)
    first_chunk: list[MappedRow] = next(rows, [])  # file-level problems surface here, before anything is locked or sent
    return _SetUp(mapping, auth, source_sha, _chain(first_chunk, rows), snapshot)


def _open_transport(config: RunConfig) -> CWSTransport:
    """The run's one transport, with its TLS trust and proxy checked before anything is locked or sent."""
    try:
        transport = CWSTransport(
            timeout=config.timeout,
            ca_bundle=config.ca_bundle,
            max_connections=config.concurrency,
            max_answer_bytes=config.max_answer_bytes,
        )
    except ValueError as exc:  # a ca_bundle that cannot be used (load_config checks it too)
        raise ConfigError(f"{config.path}: ca_bundle: {exc}") from None
    try:
        transport.proxy_for(config.base_url)
    except CWSPipelineError:
        transport.close()
        raise
    return transport


def _earlier_runs_not_finished(ledger: Ledger) -> list[str]:
    """One line about earlier runs that did not finish (killed, crashed, interrupted), or none."""
    killed = ledger.close_abandoned_runs()  # left "running" by a process that died: we hold the lock
    found = [f"run {run.run_id} ended without recording its end (killed?)" for run in killed]
    last = ledger.latest_run_id()
    ending = ledger.runs([last])[0] if last is not None and last not in {run.run_id for run in killed} else None
    if ending is not None and ending.status in ("interrupted", "crashed"):
        what = "crashed" if ending.status == "crashed" else "was interrupted"
        found.append(f"run {last} {what} (exit code {ending.exit_code})")
    if not found:
        return []
    for line in found:
        _log.warning("earlier %s", line)
    return [f"Note: earlier {'; '.join(found)}; rows it left in doubt are settled by lookup in this run"]


@dataclass
class _LiveRun:
    """What the live run saw by its end, beyond what the ledger keeps: its exit code is decided from this."""

    run_id: int
    ledger: Path
    notices: list[str]
    tally: Tally
    breaker: CircuitBreaker
    stopped_early: str | None  # the delivery window closed, or time was up, before every row was sent
    concurrency: int  # the limit it settled at
    adaptive: bool
    peak_in_flight: int

    @property
    def security_stop(self) -> str | None:
        """Why the circuit breaker stopped the run, or None."""
        return self.breaker.reason or None

    def counts(self) -> dict[str, int]:
        """Rows per state, every state (0 when none), in report order: what the ledger records at the end."""
        return {str(state): self.tally.counts[state] for state in ROW_STATES}

    def result(self, record: RunRecord, needs_person: int) -> RunResult:
        """The run's result: its recorded end, with what only the live run knows."""
        tally = self.tally
        return RunResult(record, self.ledger, attention=tally.kept_attention(), security_stop=self.security_stop,
                         notices=self.notices, new_attention=tally.new_attention,
                         known_attention=tally.known_attention, needs_person=needs_person, adaptive=self.adaptive,
                         peak_in_flight=self.peak_in_flight, stopped_early=self.stopped_early)  # fmt: skip


def _exit_code_earned(seen: _LiveRun) -> ExitCode:
    """The exit code a run that ended by itself earns, decided once from what it saw, before its end is recorded.

    3 security stop; 5 the delivery window closed (or max_run_seconds passed) before every row was sent;
    1 a row newly needs a person (or changed since it was reported); else 0. Rows reported by an earlier
    run and unchanged since do not make it 1 on their own: cron mails once about a row, not every night
    (`status` lists every row still outstanding).
    """
    if seen.security_stop:
        return ExitCode.SECURITY_STOP
    if seen.stopped_early and seen.tally.counts["failed"]:
        return WINDOW_CLOSED_EXIT
    return ExitCode.ATTENTION if seen.tally.new_attention else ExitCode.OK


def _ending(seen: _LiveRun, failure: BaseException | None) -> tuple[RunStatus, ExitCode]:
    """The run's status and exit code, as the ledger records them (and its result reads them back)."""
    if failure is None:
        earned = _exit_code_earned(seen)
        stopped = earned in (ExitCode.SECURITY_STOP, WINDOW_CLOSED_EXIT)
        return ("stopped" if stopped else "finished"), earned
    if isinstance(failure, KeyboardInterrupt):
        return "interrupted", ExitCode.TERMINATED if isinstance(failure, _Terminated) else ExitCode.INTERRUPTED
    return "crashed", failure.exit_code if isinstance(failure, CWSPipelineError) else ExitCode.ATTENTION


def _end_run(
    ledger: Ledger, writer: LedgerWriter, seen: _LiveRun, failure: BaseException | None, head_log: Path | None
) -> RunResult:
    """Commit what is queued, record the run's true ending, and return what it did (or raise what stopped it)."""
    try:
        writer.close()
    except BaseException as exc:  # the writer's own failure (disk full): the run's, unless one came first
        failure = failure or exc
    status, exit_code = _ending(seen, failure)
    record, needs_person = None, 0
    try:
        settled = seen.concurrency if seen.peak_in_flight else None  # no request, nothing to settle at
        ledger.finish_run(seen.run_id, seen.counts(), status, exit_code, settled)
        [record] = ledger.runs([seen.run_id])
        needs_person = len(ledger.bookings_needing_a_person())
        if head_log is not None:
            record_chain_head(head_log, ledger, seen.run_id)  # a copy of the head kept elsewhere
    except (LedgerError, HeadLogError) as exc:  # the end cannot be recorded; the next run finds it and says so
        failure = failure or exc
    _log_end(seen.run_id, seen.counts(), status, exit_code)
    if failure is not None:
        _raise_ending(seen, failure, exit_code)
    assert record is not None  # read back, or the failure to record the end was raised above
    return seen.result(record, needs_person)


def _raise_ending(seen: _LiveRun, failure: BaseException, exit_code: ExitCode) -> NoReturn:
    """Raise what ended the run: RunInterrupted for Ctrl-C or SIGTERM, a ledger that could not be written in one
    line saying what is kept, anything else as it came."""
    if isinstance(failure, KeyboardInterrupt):
        raise RunInterrupted(seen.run_id, seen.ledger, exit_code) from None
    if _cannot_write(failure):
        raise LedgerError(f"{failure}; run {seen.run_id} stopped sending and everything recorded before is kept:"
                          " free space (or fix the file) and run again") from None  # fmt: skip
    raise failure


def _log_end(run_id: int, counts: dict[str, int], status: RunStatus, exit_code: ExitCode) -> None:
    """Log the run's end: INFO when it finished with exit 0, WARNING otherwise (counts by state, never a row)."""
    counts = {state: n for state, n in counts.items() if n}
    level = logging.INFO if status == "finished" and exit_code == ExitCode.OK else logging.WARNING
    shown = ", ".join(f"{n} {state}" for state, n in counts.items()) or "no rows"
    fields = {"run_id": run_id, "status": status, "exit_code": int(exit_code), "counts": counts}
    _log.log(level, "run %d %s, exit %d: %s", run_id, status, exit_code, shown, extra=fields)


@contextlib.contextmanager
def _ledger_errors() -> Iterator[None]:
    """Say that nothing was sent when the ledger cannot be written (disk full, read-only) before the first row."""
    try:
        yield
    except LedgerError as exc:
        if not _cannot_write(exc):
            raise
        raise LedgerError(f"{exc}; nothing was sent: free space (or fix the file) and run again") from None


def _cannot_write(failure: BaseException) -> bool:
    """A ledger that could not be written (disk full, I/O error), as opposed to a damaged one."""
    return isinstance(failure, LedgerError) and not isinstance(failure, LedgerDamaged)


def _chain(first: list[MappedRow], rest: Iterator[list[MappedRow]]) -> Iterator[list[MappedRow]]:
    yield first
    yield from rest


# -- dispatch -------------------------------------------------------------------------------------

_KEEP_PROBLEMS = 1000  # rows kept in memory for the end-of-run listing; the ledger has them all
# Rows whose "about to send" entries share one durable commit (at least; twice the concurrency when larger).
_MIN_INTENT_WINDOW = 32
_NEEDS_REQUEST: tuple[Plan, ...] = ("send", "settle")
# Workers beyond the ceiling, as a share of it: each signs its next request while its place is taken by
# another, so a place freed is taken at once and not after a signature (~2 ms of each ~100 ms round trip).
_SPARE_SHARE = 8


def workers_for(ceiling: int) -> int:
    """Pool size for a limiter's ceiling: an eighth more (one at least), which wait with a request signed.

    A ceiling of 1 gets no spare: one request at a time goes in the file's order, and a spare worker
    could take the place before the row ahead of it.
    """
    return ceiling + (max(1, -(-ceiling // _SPARE_SHARE)) if ceiling > 1 else 0)


class Tally:
    """Counts per state and the rows needing attention, added to from many threads; PROGRESS is told each row."""

    def __init__(self, progress: RunProgress | None = None) -> None:
        self.counts: Counter[RowState] = Counter()
        self.attention: list[RowOutcome] = []  # new ones first when there are more than can be kept
        self.new_attention = 0  # rows that newly need a person (or changed since they were reported)
        self.known_attention = 0  # rows reported before, unchanged since
        self._known_kept: list[RowOutcome] = []
        self._progress = progress or RunProgress()
        self._lock = threading.Lock()

    def add(self, outcomes: list[RowOutcome]) -> None:
        """Count these outcomes and keep the first rows that need a person."""
        with self._lock:
            self.counts.update(o.state for o in outcomes)
            for outcome in outcomes:
                if outcome.state not in NOT_DELIVERED:
                    continue
                if outcome.known:
                    self.known_attention += 1
                    if len(self._known_kept) < _KEEP_PROBLEMS:
                        self._known_kept.append(outcome)
                else:
                    self.new_attention += 1
                    if len(self.attention) < _KEEP_PROBLEMS:
                        self.attention.append(outcome)
        for outcome in outcomes:
            self._progress.row(outcome)

    def kept_attention(self) -> list[RowOutcome]:
        """The rows kept for the listing: every new one kept, then known ones up to the same cap."""
        return self.attention + self._known_kept[: max(0, _KEEP_PROBLEMS - len(self.attention))]


class Dispatcher:
    """Feeds a run's rows to the engine: planned by chunk, sent by a pool of workers, counted in a Tally.

    PROGRESS is told each chunk's rows as it is read (the Tally tells it each row's outcome).

    Per chunk: plan every row, record at once the rows that need no request (a re-run is mostly these), then
    hand the rest to the workers. "About to send" records are committed a window of rows at a time (one fsync
    for the window), and at most two windows of rows wait in the pool, so a 100,000-row export never sits in
    memory as futures. The pool has `concurrency` workers (the ceiling) and an eighth more, which sign their
    next request while every place is taken; how many of them send at once is the limiter's to say, and a window
    is twice what it allows now (32 rows at least), so a slow CorEMR does not leave hundreds of rows recorded as
    "sending" that have not left. Once the run is told to stop (circuit breaker, the delivery window's end,
    Ctrl-C, a crash), rows not yet sent are recorded as not sent, and every worker's wait ends at once.
    """

    def __init__(
        self,
        delivery: Delivery,
        stop: RunStop,
        limiter: ConcurrencyLimiter,
        tally: Tally,
        progress: RunProgress | None = None,
    ) -> None:
        self._delivery = delivery  # its requests wait for a place from LIMITER
        self._stop = stop
        self._tally = tally
        self._progress = progress or RunProgress()
        self._limiter = limiter
        self._window: list[tuple[MappedRow, str]] = []
        self._queued = 0  # rows handed to the pool and not yet done
        self._room = threading.Condition()
        self._futures: list[Future[None]] = []

    def run(self, chunks: Iterator[list[MappedRow]]) -> None:
        """Deliver every row of every chunk; on any exception (Ctrl-C included) stop the run, then re-raise."""
        with ThreadPoolExecutor(workers_for(self._limiter.limit.ceiling), thread_name_prefix="deliver") as pool:
            try:
                while (requests := self._next_chunk(chunks)) is not None:
                    self._dispatch(pool, requests)
                    self._reap()
                self._send_window(pool)
                for future in self._futures:
                    future.result()
            except BaseException as exc:
                # Rows already queued end at once, recorded as not sent; the pool's exit waits for them.
                why = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                self._stop.stop(f"stopped because the run was {why}")
                raise

    def _next_chunk(self, chunks: Iterator[list[MappedRow]]) -> list[tuple[MappedRow, Plan, str]] | None:
        """Plan the next chunk, record its rows that need no request, return those that do (None at the end)."""
        # Mapping a chunk, planning each row and recording the rows that need no request make 100,000s of
        # objects with no cycles: pause the collector (nothing in here waits on the network), and let those
        # rows go before it resumes so that it finds nothing to do.
        with cycle_collector_paused():
            chunk = next(chunks, None)
            if chunk is None:
                return None
            self._progress.rows_read(len(chunk))
            planned = [(row, *self._delivery.plan(row)) for row in chunk]
            quiet = [p for p in planned if p[1] not in _NEEDS_REQUEST or p[2] is None]
            self._tally.add(self._delivery.record_many_without_sending(quiet))
            requests = [(row, plan, sha) for row, plan, sha in planned if plan in _NEEDS_REQUEST and sha]
            chunk.clear()
            del planned, quiet
        return requests

    def _dispatch(self, pool: ThreadPoolExecutor, requests: list[tuple[MappedRow, Plan, str]]) -> None:
        """Send rows in doubt at once, the rest in intent windows; once stopped, record the rest as not sent."""
        stopped: list[tuple[MappedRow, Plan, str | None]] = []
        for row, plan, sha in requests:
            if plan == "settle":
                self._submit(pool, row, plan, sha, intent_recorded=False)
            elif self._stop.stopped:
                stopped.append((row, "stopped", sha))  # recorded as not sent, with no "sending" first
            else:
                self._window.append((row, sha))
                if len(self._window) >= self._window_size():
                    self._send_window(pool)
        if stopped:
            self._tally.add(self._delivery.record_many_without_sending(stopped))

    def _window_size(self) -> int:
        """Rows whose intents share one commit: twice the requests allowed in flight now (32 at least)."""
        return max(_MIN_INTENT_WINDOW, 2 * self._limiter.limit.allowed)

    def _send_window(self, pool: ThreadPoolExecutor) -> None:
        """Record the window's intents in one durable commit, then hand its rows to the workers."""
        window, self._window = self._window, []
        if window:
            self._delivery.record_intents(window)
            for row, sha in window:
                self._submit(pool, row, "send", sha, intent_recorded=True)

    def _submit(self, pool: ThreadPoolExecutor, row: MappedRow, plan: Plan, sha: str, *, intent_recorded: bool) -> None:
        with self._room:  # back-pressure: at most four rows per request allowed in flight wait in the pool
            while self._queued >= 2 * self._window_size():
                self._room.wait()
            self._queued += 1
        self._futures.append(pool.submit(self._work, row, plan, sha, intent_recorded))

    def _work(self, row: MappedRow, plan: Plan, sha: str, intent_recorded: bool) -> None:
        try:
            self._tally.add([self._delivery.deliver(row, plan, sha, intent_recorded=intent_recorded)])
        finally:
            with self._room:
                self._queued -= 1
                self._room.notify()

    def _reap(self) -> None:
        """Forget finished rows; raise the first worker failure (a ledger that cannot be written) here."""
        alive = []
        for future in self._futures:
            if future.done():
                future.result()
            else:
                alive.append(future)
        self._futures = alive


# -- summary --------------------------------------------------------------------------------------

_SHOW_ROWS = 20


def summary_lines(result: RunResult, *, everything: bool = True) -> list[str]:
    """One line per state that occurred, then the rows that need a person.

    EVERYTHING (a terminal, or -v): every such row, those reported before marked so. Otherwise (cron):
    only the rows that newly need a person, and one line for those reported before, unchanged since.

    Rows are named by line and key only, never by names or birth dates; reasons are in our words (see
    pipeline/_masking.py).
    """
    lines = [f"Run {result.run_id}: {result.rows} rows; ledger {result.ledger}"]
    for state in ROW_STATES:
        if result.counts[state]:
            lines.append(f"  {state:<11}{result.counts[state]:>8}")
    if result.needs_person:
        n = result.needs_person
        lines.append(f"  {n} booking{'s' if n != 1 else ''} need{'s' if n == 1 else ''} a person (each once, whatever"
                     " its lines; `status` gives the same count)")  # fmt: skip
    if result.peak_in_flight:  # requests were sent: say how many went at once
        if result.adaptive:  # the peak came first, the limit it ended at after: say them in that order
            lines.append(f"  concurrency: adaptive, up to {result.peak_in_flight} in flight, ending at"
                         f" {result.concurrency}")  # fmt: skip
        else:
            lines.append(f"  concurrency: fixed at {result.concurrency} ({result.peak_in_flight} in flight at most)")
    if result.stopped_early and result.exit_code == WINDOW_CLOSED_EXIT:
        lines.append(f"Stopped sending: {result.stopped_early}; the rows not sent go in the next run.")
    if result.security_stop:
        stop = withhold_server_words(result.security_stop)  # it may quote the signer name the server chose
        lines.append(f"SECURITY STOP: {stop}.")  # the reason names the setting to check
    shown = [o for o in result.attention if everything or not o.known]
    for outcome in sorted(shown, key=lambda o: o.line)[:_SHOW_ROWS]:
        key = outcome.key or "(no key)"
        text = f"  line {outcome.line} key {key}: {outcome.state}: {outcome.reason or ''}".rstrip(": ")
        lines.append(text + (" (reported before)" if outcome.known else ""))
    listed = result.new_attention + (result.known_attention if everything else 0)
    if listed > _SHOW_ROWS:
        lines.append(f"  ... and {listed - _SHOW_ROWS} more; see: cws-pipeline report --ledger {result.ledger}")
    if result.known_attention and not everything:
        lines.append(
            f"  {result.known_attention} more row(s) still need a person as reported before, unchanged since;"
            f" see: cws-pipeline status --ledger {result.ledger}"
        )
    return lines


def print_summary(result: RunResult, echo: Callable[[str], None], *, everything: bool = True) -> None:
    """Print the summary through echo, one line at a time."""
    for line in summary_lines(result, everything=everything):
        echo(line)
