"""A fake CorEMR for engine unit tests: scripted answers signed with the server's real key, a real ledger file.

Only the network is scripted; `make_engine` (a fixture, see conftest) builds a Delivery on it with the run's
own constructor, `Delivery`, wired as `run_bookings` wires it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from pipeline.delivery import NoAnswer, RowOutcome, RunConfig
from pipeline.delivery._decisions import Target
from pipeline.delivery._engine import Delivery
from pipeline.delivery._pacing import CircuitBreaker, ConcurrencyLimiter, RunStop
from pipeline.delivery._transport import Answer
from pipeline.ledger import Ledger, LedgerWriter, PriorRows, RunInfo, sha256_hex
from pipeline.mapping import MappedRow
from pipeline.protocol import AuthorizationHeader, CWSAuth, Keyring

from ..sites import CLIENT_ACCESS, SERVER_ACCESS, KeyPair

ECHO = object()  # as an answer's payload: the request's own body, as a CorEMR that stored it answers it
BASE = "https://coremr.test"
ENDPOINT = BASE + "/ws/patients/"
Script = Callable[[str, str, bytes], "tuple[int, object] | NoAnswer"]


def body_of(external_id: str, **fields: str) -> bytes:
    data = {"external_id": external_id, "fname": "Aisha", "lname": "Davis", "dob": "1986-11-08 00:00:00.000"}
    data.update(fields)
    return json.dumps(data, separators=(",", ":")).encode()


def row(external_id: str, line: int = 2, **fields: str) -> MappedRow:
    return MappedRow(
        line, f"{external_id}/B1", external_id, body_of(external_id, **fields), (), ("ID",), (external_id,)
    )


@dataclass
class FakeCorEMR:
    """A scripted CorEMR: each request gets what SCRIPT says, signed with the server's key (or NoAnswer)."""

    key: rsa.RSAPrivateKey
    script: Script
    access: str = SERVER_ACCESS
    headers: tuple[tuple[str, str], ...] = ()  # added to every answer (a Retry-After, say)
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)
    seen: threading.Event = field(default_factory=threading.Event)

    def send(self, method: str, url: str, body: bytes = b"", headers: Mapping[str, str] | None = None) -> Answer:
        self.requests.append((method, url, body))
        self.seen.set()
        result = self.script(method, url, body)
        if isinstance(result, NoAnswer):
            raise result
        status, payload = result
        if payload is ECHO:
            payload = body
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        signature = AuthorizationHeader.for_body(raw, self.key, self.access)
        fields = [(b"Authorization", str(signature).encode()), *((k.encode(), v.encode()) for k, v in self.headers)]
        return Answer(status, fields, raw)


@dataclass
class Engine:
    """A Delivery wired to a fake CorEMR, a real ledger file and recorded sleeps."""

    delivery: Delivery
    fake: FakeCorEMR
    stop: RunStop
    writer: LedgerWriter
    ledger: Ledger
    sleeps: list[float]

    def entries(self) -> list[Any]:
        self.writer.flush()
        return list(self.ledger.entries())


def engine_factory(
    tmp_path: Path, client_keys: KeyPair, server_keys: KeyPair, server_keyring_dir: Path
) -> Iterator[Callable[..., Engine]]:
    """Make Engines (a Delivery on a fake CorEMR and a real ledger); close them all at the end."""
    made: list[Engine] = []

    def make(script: Script, prior: dict[str, tuple[Any, ...]] | None = None, record_sleeps: bool = True,
             target: Target | None = None, limiter: ConcurrencyLimiter | None = None,
             answer_headers: tuple[tuple[str, str], ...] = (), **settings: Any) -> Engine:  # fmt: skip
        config = RunConfig(path=tmp_path / "cws.toml", base_url=BASE, access=CLIENT_ACCESS,
                           private_key=client_keys.private, server_keys=server_keyring_dir,
                           ledger=tmp_path / f"ledger{len(made)}.sqlite", **settings)  # fmt: skip
        ledger = Ledger.open(config.ledger)
        info = RunInfo("x.csv", "0" * 64, "m.toml", "0" * 64, BASE, "/ws/patients/", CLIENT_ACCESS, "CWS-SHA256", "t")
        run_id = ledger.begin_run(info, 1)
        stop = RunStop()
        writer = LedgerWriter(ledger)
        fake = FakeCorEMR(server_keys.key, script, headers=answer_headers)
        sleeps: list[float] = []
        auth = CWSAuth(client_keys.key, CLIENT_ACCESS, Keyring(server_keyring_dir))
        delivery = Delivery(config, run_id=run_id, transport=fake, auth=auth, writer=writer,
                            prior=PriorRows(prior or {}), target=target or Target.default(ENDPOINT),
                            breaker=CircuitBreaker(config.circuit_breaker, stop), limiter=limiter,
                            sleep=sleeps.append if record_sleeps else None)  # fmt: skip
        engine = Engine(delivery, fake, stop, writer, ledger, sleeps)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.writer.close()
        engine.ledger.close()


def in_doubt(r: MappedRow, state: str = "ambiguous") -> dict[str, tuple[Any, ...]]:
    """What an earlier run left for a row whose POST may have landed."""
    assert r.body is not None
    return {r.key: (r.key, r.external_id, state, sha256_hex(r.body), None, 1, r.line, "lost", None)}


def deliver(engine: Engine, r: MappedRow) -> RowOutcome:
    plan, sha = engine.delivery.plan(r)
    assert sha is not None and plan in ("send", "settle")
    return engine.delivery.deliver(r, plan, sha)
