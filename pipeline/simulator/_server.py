"""A local CWS server: CorEMR v2 patient routes, request signatures checked, every response signed.

It is a test double the demo, tests and benchmarks run against, not CorEMR: it stores patients in
memory, answers errors as signed JSON `{"error": ..., "fields": {...}}`, and injects seeded faults.
`GET /_simulator/counters` (unsigned request, not a CorEMR route) reports its counters to another
process. Each response is one write with Nagle off; writing headers and body separately on a
keep-alive connection stalls ~40 ms per request on Linux (delayed ACK).
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any
from urllib.parse import unquote

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from ..protocol import AuthorizationHeader, Keyring, Verification, verify_body
from ._faults import Fault, FaultKind, FaultPlan
from ._http import Answer, HTTPServer, error_payload
from ._patients import PatientStore, invalid_new_patient_fields, invalid_update_fields

__all__ = ["COUNTERS_PATH", "CWSServer", "Fault", "FaultKind", "ServerCounters", "fetch_counters"]

COUNTERS_PATH = "/_simulator/counters"
IMPOSTOR_ACCESS = "impostor"
_COLLECTION = "/ws/patients/"
_EXISTS = {"external_id": "already exists"}


@dataclass
class ServerCounters:
    """What the server has seen; `creates` counts patients stored, so a duplicate shows as 2."""

    requests: int = 0
    creates: dict[str, int] = field(default_factory=dict)
    create_attempts: dict[str, int] = field(default_factory=dict)
    lookups: int = 0
    rejected_signatures: int = 0
    faults_applied: dict[str, int] = field(default_factory=dict)

    def copy(self) -> ServerCounters:
        """An independent copy."""
        return ServerCounters.from_dict(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """The counters as plain JSON-able data."""
        return {
            "requests": self.requests,
            "creates": dict(self.creates),
            "create_attempts": dict(self.create_attempts),
            "lookups": self.lookups,
            "rejected_signatures": self.rejected_signatures,
            "faults_applied": dict(self.faults_applied),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServerCounters:
        """Counters from `to_dict()` output (as served at /_simulator/counters)."""
        return cls(
            requests=int(data["requests"]),
            creates={str(k): int(v) for k, v in data["creates"].items()},
            create_attempts={str(k): int(v) for k, v in data["create_attempts"].items()},
            lookups=int(data["lookups"]),
            rejected_signatures=int(data["rejected_signatures"]),
            faults_applied={str(k): int(v) for k, v in data["faults_applied"].items()},
        )


def fetch_counters(url: str, timeout: float = 10.0) -> ServerCounters:
    """Read a running server's counters over HTTP (for a server in another process)."""
    response = httpx.get(url.rstrip("/") + COUNTERS_PATH, timeout=timeout)
    response.raise_for_status()
    return ServerCounters.from_dict(response.json())


def _refusal(v: Verification) -> str:
    """The 401 message naming what is wrong with a request's signature."""
    if v.status == "missing_header":
        return "missing Authorization header"
    if v.status == "malformed_header":
        return v.detail or "malformed Authorization header"
    if v.status == "unknown_signer":
        return f"unknown Access name {v.signer!r}: no public key under that username"
    if v.status == "algorithm_not_accepted":
        return f"unsupported algorithm {v.algorithm!r}: use CWS-SHA256 or CWS-SHA1"
    return f"bad signature: it does not match the body bytes for Access={v.signer}"


def _corrupt(signature: str) -> str:
    """Flip one base64 character in the middle, so the signature stays well-formed but wrong."""
    i = len(signature) // 2
    return signature[:i] + ("B" if signature[i] == "A" else "A") + signature[i + 1 :]


def _not_allowed(allow: str) -> Answer:
    return Answer(405, error_payload("method not allowed"), (("Allow", allow),))


def _fault_answer(fault: Fault) -> Answer:
    if fault.kind == "status_429":
        headers = () if fault.retry_after is None else (("Retry-After", fault.retry_after),)
        return Answer(429, error_payload("too many requests (simulated)"), headers)
    if fault.kind == "status_503":
        return Answer(503, error_payload("service unavailable (simulated)"))
    return Answer(500, error_payload("internal server error (simulated)"))


def _parse_json(body: bytes) -> tuple[object, str | None]:
    try:
        return json.loads(body), None
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    except ValueError:
        return None, "invalid JSON: the body is not UTF-8 text"


class CWSServer:
    """The local CWS server: start it on a port (0 = any free one), send it signed requests, read its counters."""

    def __init__(
        self,
        server_key: rsa.RSAPrivateKey,
        client_keyring: Keyring,
        *,
        access: str = "coremr",
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Sequence[Fault] = (),
        seed: int = 0,
        latency_ms: float = 0.0,
        access_log: bool = False,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._key = server_key
        self.client_keyring = client_keyring
        self.access = access
        self.host = host
        self._requested_port = port
        self.latency_s = max(latency_ms, 0.0) / 1000.0
        self.access_log = access_log
        self._tls = tls
        self._plan = FaultPlan(faults, seed)
        self._store = PatientStore()
        self._lock = threading.Lock()
        self._counters = ServerCounters()
        self._stopping = threading.Event()
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:  # never show the key
        return f"CWSServer(access={self.access!r}, url={self.url!r})"

    @property
    def port(self) -> int:
        """The port it listens on (the real one once started with port 0)."""
        return int(self._httpd.server_address[1]) if self._httpd is not None else self._requested_port

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:8765."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self._tls else 'http'}://{host}:{self.port}"

    def start(self) -> CWSServer:
        """Bind and serve in background threads; raises OSError if the address cannot be bound."""
        if self._httpd is not None:
            raise RuntimeError("the server is already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._httpd = HTTPServer((self.host.strip("[]"), self._requested_port), self, family)
        if self._tls is not None:  # HTTPS, for proving the client verifies certificates
            self._httpd.socket = self._tls.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="cws-simulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and wait for the handler threads."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        # Keep the real port readable after stopping, for messages and logs.
        self._requested_port = int(httpd.server_address[1])

    def __enter__(self) -> CWSServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def counters(self) -> ServerCounters:
        """A snapshot copy of the counters."""
        with self._lock:
            return self._counters.copy()

    def set_faults(self, faults: Sequence[Fault]) -> None:
        """Replace the faults at runtime; each fault's `first` count starts again."""
        self._plan.replace(faults)

    def patients(self) -> dict[str, dict[str, object]]:
        """Copies of the stored patients by external_id."""
        return self._store.all()

    def respond(self, method: str, path: str, body: bytes, authorization: str | None) -> Answer | None:
        """Answer one request: counters hook, faults, signature check, then the patient routes."""
        if path == COUNTERS_PATH:
            return Answer(200, self.counters().to_dict()) if method == "GET" else _not_allowed("GET")
        drawn = self._plan.draw(method)
        self._count_received(method, path, body, drawn.kinds)
        delay = self.latency_s + drawn.latency_s
        if delay > 0:
            self._stopping.wait(delay)  # only this connection's thread waits; stop() wakes it
        if drawn.status is not None:
            return replace(_fault_answer(drawn.status), signature_fault=drawn.signature)
        verification = verify_body(body, authorization, self.client_keyring)
        if not verification.ok:
            with self._lock:
                self._counters.rejected_signatures += 1
            return Answer(401, error_payload(_refusal(verification)), signature_fault=drawn.signature)
        answer = self._route(method, path, body)
        if drawn.drop:
            return None  # processed, but the client never hears back
        return replace(answer, signature_fault=drawn.signature)

    def authorization_for(self, body: bytes, signature_fault: str | None) -> str | None:
        """The response Authorization value for these exact bytes, spoiled as the fault says."""
        if signature_fault == "signature_missing":
            return None
        if signature_fault == "signature_sha1":
            return str(AuthorizationHeader.for_body(body, self._key, self.access, "CWS-SHA1"))
        header = AuthorizationHeader.for_body(body, self._key, self.access)
        if signature_fault == "signature_unknown_signer":
            header = AuthorizationHeader(header.algorithm, IMPOSTOR_ACCESS, header.signature)
        elif signature_fault == "signature_corrupt":
            header = AuthorizationHeader(header.algorithm, header.access, _corrupt(header.signature))
        return str(header)

    def _count_received(self, method: str, path: str, body: bytes, faults: Sequence[FaultKind]) -> None:
        attempt: str | None = None
        if method == "POST" and path in (_COLLECTION, _COLLECTION.rstrip("/")):
            parsed, _ = _parse_json(body)
            if isinstance(parsed, dict) and isinstance(parsed.get("external_id"), str):
                attempt = parsed["external_id"]
        with self._lock:
            c = self._counters
            c.requests += 1
            if attempt is not None:
                c.create_attempts[attempt] = c.create_attempts.get(attempt, 0) + 1
            if method == "GET" and path.startswith(_COLLECTION.rstrip("/")):
                c.lookups += 1
            for kind in faults:
                c.faults_applied[kind] = c.faults_applied.get(kind, 0) + 1

    def _route(self, method: str, path: str, body: bytes) -> Answer:
        if path in (_COLLECTION, _COLLECTION.rstrip("/")):
            if method == "GET":
                return Answer(200, list(self._store.all().values()))
            if method == "POST":
                return self._create(body)
            return _not_allowed("GET, POST")
        if path.startswith(_COLLECTION):
            external_id = unquote(path[len(_COLLECTION) :])
            if not external_id or "/" in external_id:
                return Answer(404, error_payload(f"no such route: {path}"))
            if method == "GET":
                found = self._store.get(external_id)
                if found is None:
                    return Answer(404, error_payload(f"no patient with external_id {external_id!r}"))
                return Answer(200, found)
            if method == "POST":
                return self._update(external_id, body)
            return _not_allowed("GET, POST")
        return Answer(404, error_payload(f"no such route: {path}"))

    def _create(self, body: bytes) -> Answer:
        parsed, problem = _parse_json(body)
        if problem is not None:
            return Answer(400, error_payload(problem))
        fields = invalid_new_patient_fields(parsed)
        if fields:
            return Answer(400, error_payload("invalid patient", fields))
        assert isinstance(parsed, dict)  # invalid_new_patient_fields refuses anything else
        stored = self._store.create(parsed)
        if stored is None:
            return Answer(409, error_payload("a patient with this external_id already exists", _EXISTS))
        with self._lock:
            creates = self._counters.creates
            creates[parsed["external_id"]] = creates.get(parsed["external_id"], 0) + 1
        return Answer(201, stored)

    def _update(self, external_id: str, body: bytes) -> Answer:
        parsed, problem = _parse_json(body)
        if problem is not None:
            return Answer(400, error_payload(problem))
        fields = invalid_update_fields(parsed, external_id)
        if fields:
            return Answer(400, error_payload("invalid patient", fields))
        assert isinstance(parsed, dict)
        updated = self._store.update(external_id, parsed)
        if updated is None:
            return Answer(404, error_payload(f"no patient with external_id {external_id!r}"))
        return Answer(200, updated)
