"""A delivery run: lock the ledger, map the export, deliver rows with bounded concurrency, record and count."""

from __future__ import annotations

import hashlib
import os
import ssl
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from .._errors import SourceError
from .._gc import cycle_collector_paused
from .._version import __version__
from ..ledger import (
    NOT_DELIVERED,
    ROW_STATES,
    Ledger,
    LedgerWriter,
    RowState,
    RunInfo,
    RunLock,
    RunStatus,
    record_chain_head,
)
from ..mapping import MappedRow, load_mapping, map_csv
from ..protocol import CWSAuth, Keyring, load_private_key
from ._config import RunConfig
from ._connections import CWSConnections
from ._engine import CircuitBreaker, Delivery, Plan, RowOutcome
from ._exchange import SignedConnections

__all__ = ["RunResult", "run_bookings"]

_KEEP_PROBLEMS = 1000  # rows kept in memory for the end-of-run listing; the ledger has them all
# Rows whose "about to send" entries share one durable commit (at least; twice the concurrency when larger).
_MIN_INTENT_WINDOW = 32
_NEEDS_REQUEST: tuple[Plan, ...] = ("send", "settle")


@dataclass
class RunResult:
    """What a run did: counts per state, the rows needing attention, and the exit code it earns."""

    run_id: int
    ledger: Path
    counts: dict[RowState, int]
    attention: list[RowOutcome] = field(default_factory=list)
    security_stop: str | None = None

    @property
    def rows(self) -> int:
        """How many input rows the run gave a state."""
        return sum(self.counts.values())

    @property
    def exit_code(self) -> int:
        """0 all delivered or skipped; 1 some not delivered; 3 security stop."""
        if self.security_stop:
            return 3
        return 1 if any(self.counts[s] for s in NOT_DELIVERED) else 0


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror})") from None
    return digest.hexdigest()


def open_client(config: RunConfig, auth: CWSAuth) -> SignedConnections | httpx.Client:
    """The engine's client for CWS: the lean one, or httpx when a proxy from the environment applies."""
    if proxy_applies(config.base_url):
        return build_client(config, auth)  # httpx honours HTTP(S)_PROXY and NO_PROXY; the lean client does not
    return open_connections(config, auth)


def proxy_applies(url: str) -> bool:
    """True when HTTP_PROXY, HTTPS_PROXY or ALL_PROXY covers this URL and NO_PROXY does not exempt its host."""
    proxies = urllib.request.getproxies_environment()
    parts = urlsplit(url)
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")  # NO_PROXY, as urllib reads it


def open_connections(config: RunConfig, auth: CWSAuth) -> SignedConnections:
    """The engine's lean client for CWS: keep-alive connections, TLS verified, no redirects, CWSAuth signing."""
    connections = CWSConnections(config.base_url, timeout=config.timeout, ca_bundle=config.ca_bundle)
    return SignedConnections(connections, auth, f"cws-pipeline/{__version__}")


def build_client(config: RunConfig, auth: httpx.Auth) -> httpx.Client:
    """An httpx client for CWS: TLS verified, no redirects, one connection per worker."""
    verify: ssl.SSLContext | bool = (
        ssl.create_default_context(cafile=str(config.ca_bundle)) if config.ca_bundle else True
    )
    return httpx.Client(
        auth=auth,
        verify=verify,
        follow_redirects=False,  # httpx drops Authorization on cross-origin redirects; CWS never redirects
        timeout=httpx.Timeout(config.timeout),
        limits=httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=config.concurrency),
        headers={"User-Agent": f"cws-pipeline/{__version__}"},
    )


def run_bookings(
    csv_path: Path | str,
    mapping_path: Path | str,
    config: RunConfig,
    *,
    on_row: Callable[[RowOutcome], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RunResult:
    """Deliver every row of a bookings export; return the run's counts. Raises UserInputError before sending."""
    csv_path = Path(csv_path)
    mapping = load_mapping(mapping_path)
    key = load_private_key(config.private_key, config.passphrase())
    keyring = Keyring(config.server_keys)
    for signer in keyring.usernames():  # a broken .pem is a set-up error: say so before sending anything
        keyring.public_key(signer)
    source_sha = file_sha256(csv_path)
    rows = map_csv(csv_path, mapping)
    first_chunk: list[MappedRow] = next(rows, [])  # file-level problems surface here, before anything is locked or sent

    with RunLock(config.ledger), Ledger.open(config.ledger) as ledger:
        ledger.close_abandoned_runs()
        info = RunInfo(
            source=str(csv_path.resolve()),
            source_sha256=source_sha,
            mapping=str(mapping.path.resolve()),
            mapping_sha256=mapping.sha256,
            base_url=config.base_url,
            endpoint=mapping.endpoint,
            access=config.access,
            algorithm=config.algorithm,
            program_version=__version__,
        )
        run_id = ledger.begin_run(info, os.getpid())
        result = RunResult(run_id, config.ledger, dict.fromkeys(ROW_STATES, 0))
        counts: Counter[RowState] = Counter()
        lock = threading.Lock()
        breaker = CircuitBreaker(config.circuit_breaker)
        writer = LedgerWriter(ledger)
        auth = CWSAuth(key, config.access, keyring, config.algorithm, config.accept_algorithms)
        status: RunStatus = "finished"
        try:
            with open_client(config, auth) as client:
                delivery = Delivery(
                    run_id=run_id,
                    client=client,
                    writer=writer,
                    config=config,
                    endpoint_url=config.base_url + mapping.endpoint,
                    prior=ledger.prior_rows(),
                    breaker=breaker,
                    sleep=sleep,
                )

                def done(outcome: RowOutcome) -> None:
                    done_many([outcome])

                def done_many(outcomes: list[RowOutcome]) -> None:
                    with lock:
                        counts.update(o.state for o in outcomes)
                        for outcome in outcomes:
                            if outcome.state in NOT_DELIVERED and len(result.attention) < _KEEP_PROBLEMS:
                                result.attention.append(outcome)
                    if on_row is not None:
                        for outcome in outcomes:
                            on_row(outcome)

                in_flight = threading.BoundedSemaphore(config.concurrency * 4)
                window = max(_MIN_INTENT_WINDOW, 2 * config.concurrency)

                def work(row: MappedRow, plan: Plan, sha: str, intent_recorded: bool) -> None:
                    try:
                        done(delivery.deliver(row, plan, sha, intent_recorded=intent_recorded))
                    finally:
                        in_flight.release()

                futures: list[Future[None]] = []
                with ThreadPoolExecutor(config.concurrency, thread_name_prefix="deliver") as pool:

                    def dispatch(batch: list[tuple[MappedRow, str]], plan: Plan, intent_recorded: bool) -> None:
                        for row, sha in batch:
                            in_flight.acquire()
                            futures.append(pool.submit(work, row, plan, sha, intent_recorded))

                    to_send: list[tuple[MappedRow, str]] = []
                    chunks = _chain(first_chunk, rows)
                    while True:
                        # Mapping a chunk, deciding each row and recording the rows that need no request make
                        # 100,000s of objects with no cycles: pause the collector (nothing in here waits on the
                        # network), and let those rows go before it resumes so that it finds nothing to do.
                        with cycle_collector_paused():
                            chunk = next(chunks, None)
                            if chunk is None:
                                break
                            if on_total is not None:
                                on_total(len(chunk))
                            planned = [(row, *delivery.plan(row)) for row in chunk]
                            quiet = [p for p in planned if p[1] not in _NEEDS_REQUEST or p[2] is None]
                            done_many(delivery.record_many_without_sending(quiet))
                            requests = [(r, plan, sha) for r, plan, sha in planned if plan in _NEEDS_REQUEST and sha]
                            chunk.clear()
                            del planned, quiet
                        stopped: list[tuple[MappedRow, Plan, str | None]] = []
                        for row, plan, sha in requests:
                            if plan == "settle":
                                dispatch([(row, sha)], plan, False)
                            elif breaker.tripped:
                                stopped.append((row, "stopped", sha))  # recorded as not sent, with no "sending" first
                            else:
                                to_send.append((row, sha))
                                if len(to_send) >= window:
                                    delivery.record_intents(to_send)  # one fsync for the window
                                    dispatch(to_send, "send", True)
                                    to_send = []
                        if stopped:
                            done_many(delivery.record_many_without_sending(stopped))
                        futures = [f for f in futures if not f.done() or f.result() is not None]
                    if to_send:
                        delivery.record_intents(to_send)
                        dispatch(to_send, "send", True)
                    for f in futures:
                        f.result()
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            writer.close()
            result.counts.update(counts)
            result.security_stop = breaker.reason or None
            if status == "finished" and breaker.tripped:
                status = "stopped"
            ledger.finish_run(run_id, {str(k): v for k, v in result.counts.items()}, status, result.exit_code)
            if config.head_log is not None:
                record_chain_head(config.head_log, ledger, run_id)
        return result


def _chain(first: list[MappedRow], rest: Iterator[list[MappedRow]]) -> Iterator[list[MappedRow]]:
    yield first
    yield from rest
