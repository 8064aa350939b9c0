"""A local CWS server: one CorEMR API version's routes, request signatures checked, every answer signed.

It is a test double the demo, tests and benchmarks run against, not CorEMR: it stores patients and
their bookings in memory, checks requests against the version's field table (protocol.API_PROFILES),
checks a GET's signature over the empty string (CorEMR's security page: "If GET verb, use empty
string"), answers errors as signed JSON `{"error": ..., "fields": {...}}`, and injects seeded faults.
`GET /_simulator/counters` (unsigned request, not a CorEMR route) reports its counters to another
process. Each response is one write with Nagle off; writing headers and body separately on a
keep-alive connection stalls ~40 ms per request on Linux (delayed ACK).
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, Literal, get_args

from cryptography.hazmat.primitives.asymmetric import rsa

from .._errors import MalformedHeader
from ..protocol import (
    ALGORITHMS,
    API_PROFILES,
    DEFAULT_API,
    Algorithm,
    ApiVersion,
    AuthorizationHeader,
    Keyring,
    Verification,
    verify_body,
)
from ._answers import booking_answer, patient_answer
from ._capacity import Capacity, CapacityModel
from ._counters import COUNTERS_PATH, CounterBook, ServerCounters, fetch_counters
from ._faults import Fault, FaultKind, FaultPlan, FaultsDrawn
from ._http import Answer, HTTPServer, error_payload
from ._patients import PatientStore
from ._routes import PatientRoutes, ServerOptions, parse_json

__all__ = [
    "ANSWER_ALGORITHMS",
    "COUNTERS_PATH",
    "AnswerAlgorithm",
    "CWSServer",
    "Capacity",
    "Fault",
    "FaultKind",
    "ServerCounters",
    "ServerOptions",
    "fetch_counters",
]

IMPOSTOR_ACCESS = "impostor"
# Which algorithm answers are signed with: the request's (assumption "answer-algorithm"), or a fixed one.
AnswerAlgorithm = Literal["request", "CWS-SHA256", "CWS-SHA1"]
ANSWER_ALGORITHMS: tuple[AnswerAlgorithm, ...] = get_args(AnswerAlgorithm)


def _refusal(v: Verification, accepted: Sequence[str], method: str) -> str:
    """The 401 message naming what is wrong with a request's signature."""
    if v.status == "missing_header":
        return "missing Authorization header"
    if v.status == "malformed_header":
        return v.detail or "malformed Authorization header"
    if v.status == "unknown_signer":
        return f"unknown Access name {v.signer!r}: no public key under that username"
    if v.status == "algorithm_not_accepted":
        return f"unsupported algorithm {v.algorithm!r}: use {' or '.join(accepted)}"
    signed = "the empty string (a GET is signed over the empty string)" if method == "GET" else "the body bytes"
    return f"bad signature: it does not match {signed} for Access={v.signer}"


def _request_algorithm(authorization: str | None) -> Algorithm | None:
    """The algorithm a request's Authorization header names, if it is one we can sign with."""
    try:
        named = AuthorizationHeader.parse(authorization or "").algorithm
    except MalformedHeader:
        return None
    return next((a for a in ALGORITHMS if a == named), None)


def _corrupt(signature: str) -> str:
    """Flip one base64 character in the middle, so the signature stays well-formed but wrong."""
    i = len(signature) // 2
    return signature[:i] + ("B" if signature[i] == "A" else "A") + signature[i + 1 :]


def _fault_answer(fault: Fault) -> Answer:
    if fault.kind == "status_429":
        headers = () if fault.retry_after is None else (("Retry-After", fault.retry_after),)
        return Answer(429, error_payload("too many requests (simulated)"), headers)
    if fault.kind == "status_503":
        return Answer(503, error_payload("service unavailable (simulated)"))
    return Answer(500, error_payload("internal server error (simulated)"))


class CWSServer:
    """The local CWS server: start it on a port (0 = any free one), send it signed requests, read its counters."""

    def __init__(
        self,
        server_key: rsa.RSAPrivateKey,
        client_keyring: Keyring,
        *,
        api: ApiVersion = DEFAULT_API,
        answer_algorithm: AnswerAlgorithm = "request",
        access: str = "coremr",
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Sequence[Fault] = (),
        seed: int = 0,
        latency_ms: float = 0.0,
        access_log: bool = False,
        tls: ssl.SSLContext | None = None,
        capacity: Capacity | None = None,
        options: ServerOptions | None = None,
    ) -> None:
        self._key = server_key
        self.client_keyring = client_keyring
        self.answer_algorithm: AnswerAlgorithm = answer_algorithm
        self.access = access
        self.host = host
        self._requested_port = port
        self.latency_s = max(latency_ms, 0.0) / 1000.0
        self.access_log = access_log
        self._tls = tls
        self._plan = FaultPlan(faults, seed)
        self._store = PatientStore()
        self._counters = CounterBook()
        self._routes = PatientRoutes(API_PROFILES[api], self._store, self._counters, options)
        self.api = self._routes.api  # the version as this server plays it (with or without bookings routes)
        self.options = self._routes.options
        self._stopping = threading.Event()
        self._capacity = CapacityModel(capacity, self._stopping) if capacity is not None else None
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._last_2xx: Answer | None = None  # what fault replay_2xx answers: the last 2xx to a POST

    def __repr__(self) -> str:  # never show the key
        return f"CWSServer(api={self.api.version!r}, access={self.access!r}, url={self.url!r})"

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
        """A snapshot copy of the counters (with the capacity model's report, when it has one)."""
        counters = self._counters.snapshot()
        if self._capacity is not None:
            counters.capacity = self._capacity.report()
        return counters

    def set_faults(self, faults: Sequence[Fault]) -> None:
        """Replace the faults at runtime; each fault's `first` count starts again."""
        self._plan.replace(faults)

    def set_facilities(self, facilities: tuple[object, ...] | None) -> None:
        """Replace at runtime the facilities this CorEMR has (None: any), as a site adding one in CorEMR would."""
        self._routes.options = replace(self._routes.options, facilities=facilities)
        self.options = self._routes.options

    def enter_by_hand(self, body: dict[str, Any]) -> None:
        """Store a patient with its first booking directly, as if entered in CorEMR by hand (not through CWS).

        BODY is a create body of the server's API version; ValueError when the server would refuse it.
        """
        answer = self._routes.enter_by_hand(json.dumps(body).encode("utf-8"))
        if answer.status != 201:
            raise ValueError(f"not stored: HTTP {answer.status} {answer.payload}")

    def patients(self) -> dict[str, dict[str, Any]]:
        """The stored patients by external_id, as a read answers them."""
        return {k: patient_answer(self.api, v) for k, v in self._store.all().items()}

    def bookings(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Each stored patient's bookings by booking number, as a booking read answers them."""
        found = {k: self._store.bookings(k) or {} for k in self._store.all()}
        return {k: {n: booking_answer(self.api, b) for n, b in v.items()} for k, v in found.items()}

    def respond(self, method: str, path: str, body: bytes, authorization: str | None) -> Answer | None:
        """Answer one request: counters hook, faults, signature check, then the version's routes."""
        if path == COUNTERS_PATH:
            if method != "GET":
                return Answer(405, error_payload("method not allowed"), (("Allow", "GET"),))
            return Answer(200, self.counters().to_dict())
        drawn = self._plan.draw(method)
        self._counters.received(drawn.kinds, lookup=method == "GET" and self._routes.target(path) is not None)
        self._routes.count_attempt(method, path, body)
        if self._capacity is None:
            return self._answer(method, path, body, authorization, drawn)
        served, answer = self._capacity.serve(lambda: self._answer(method, path, body, authorization, drawn))
        if served:
            return answer
        s = self._capacity.settings
        busy = f"too many requests: {s.capacity} being served and {s.waiting_room} waiting (simulated capacity)"
        return Answer(
            429, error_payload(busy), (("Retry-After", s.retry_after),), algorithm=self._algorithm(authorization)
        )

    def _answer(
        self, method: str, path: str, body: bytes, authorization: str | None, drawn: FaultsDrawn
    ) -> Answer | None:
        """The answer once the request is being served: latency and faults, the signature check, the routes."""
        algorithm = self._algorithm(authorization)

        def signed(answer: Answer) -> Answer:
            return replace(answer, signature_fault=drawn.signature, algorithm=algorithm)

        delay = self.latency_s + drawn.latency_s
        if delay > 0:
            self._stopping.wait(delay)  # only this connection's thread waits; stop() wakes it
        if drawn.status is not None:
            return signed(_fault_answer(drawn.status))
        if drawn.hostile is not None and (hostile := self._hostile(drawn.hostile, path, body)) is not None:
            return hostile if drawn.hostile == "replay_2xx" else signed(hostile)
        # CorEMR's security page: "If GET verb, use empty string", whatever a GET carries.
        verification = verify_body(b"" if method == "GET" else body, authorization, self.client_keyring,
                                   self.api.algorithms)  # fmt: skip
        if not verification.ok:
            self._counters.rejected_signature()
            refusal = _refusal(verification, self.api.algorithms, method)
            return signed(Answer(401, error_payload(refusal)))
        answer = signed(self._routes.answer(method, path, body))
        if drawn.hostile == "answer_bare" and 200 <= answer.status < 300:
            answer = replace(answer, payload={})  # served and stored, answered without naming what it holds
        if drawn.hostile == "error_after_store" and 200 <= answer.status < 300:  # stored, then failed answering
            answer = replace(answer, status=500, payload=error_payload("internal error (simulated, after storing)"))
        if method == "POST" and 200 <= answer.status < 300:
            self._last_2xx = answer
        if drawn.drop:
            return None  # processed, but the client never hears back
        return answer

    def _hostile(self, kind: FaultKind, path: str, body: bytes) -> Answer | None:
        """A hostile answer (see _faults), stored nowhere; None: nothing to replay yet, so serve the request."""
        if kind in ("answer_bare", "error_after_store"):
            return None  # not an answer in place of serving: the request is served, its answer replaced
        if kind == "replay_2xx":
            return self._last_2xx  # signed as before: the same bytes, the same signature
        if kind == "redirect_302":
            return Answer(302, error_payload("moved: sign in first"), (("Location", "/login"),))
        if kind == "created_error":
            return Answer(201, error_payload("the patient could not be stored (simulated)"))
        sent, _ = parse_json(body)
        other = {"external_id": "OTHER-" + str(sent.get("external_id") if isinstance(sent, dict) else "")}
        if kind == "created_other":
            return Answer(201, {**(sent if isinstance(sent, dict) else {}), **other})
        target = self._routes.target(path) or ()
        if len(target) == 3:  # a booking read: the asked number, of another patient
            return Answer(200, {self.api.booking_number: target[2], "external_id": "OTHER-" + target[0]})
        return Answer(200, {"external_id": "OTHER-" + (target[0] if target else "")})

    def _algorithm(self, authorization: str | None) -> Algorithm:
        """The algorithm an answer is signed with: the setting, or the request's (else the version's first)."""
        if self.answer_algorithm != "request":
            return self.answer_algorithm
        return _request_algorithm(authorization) or self.api.algorithms[0]

    def authorization_for(self, body: bytes, answer: Answer) -> str | None:
        """The response Authorization value for these exact bytes, spoiled as the answer's fault says."""
        fault = answer.signature_fault
        if fault == "signature_missing":
            return None
        algorithm = "CWS-SHA1" if fault == "signature_sha1" else (answer.algorithm or self.api.algorithms[0])
        header = AuthorizationHeader.for_body(body, self._key, self.access, algorithm)
        if fault == "signature_unknown_signer":
            header = AuthorizationHeader(header.algorithm, IMPOSTOR_ACCESS, header.signature)
        elif fault == "signature_corrupt":
            header = AuthorizationHeader(header.algorithm, header.access, _corrupt(header.signature))
        return str(header)
