"""The one HTTP path (CWSTransport) against real servers on loopback: what it sends, what it refuses, what it keeps.

Every guarantee of the hand-written client it replaced, plus an overall deadline and a size limit:
exact body bytes, no redirects, no decompression before verification, TLS always verified, no send
on a stale keep-alive connection, proxies from the environment, one error that says if it may have landed.
"""

from __future__ import annotations

import datetime
import email.utils
import gzip
import ipaddress
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from pipeline.delivery import CWSTransport, NoAnswer
from pipeline.delivery._transport import Answer
from pipeline.protocol import AuthorizationHeader, CWSAuth, Keyring, verification_of

from ..sites import CLIENT_ACCESS, SERVER_ACCESS, KeyPair

GZIPPED = gzip.compress(b'{"external_id":"P1"}', mtime=0)
_RAW = {
    "/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nAuthorization: a\r\n\r\n"
    b'4;ext=1\r\n{"ok\r\n5\r\n":1}\n\r\n0\r\nX-Trailer: t\r\n\r\n',
    "/continue": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n"
    b"Retry-After: 3\r\nAuthorization: one\r\nAuthorization: two\r\n\r\n{}",
    "/close-delimited": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nto the end",
    "/garbage": b"SMTP ready\r\n\r\n",
    "/huge": b"HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\n\r\n" + b"x" * 65536,
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        """Quiet."""

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.seen.append((self.command, self.path, dict(self.headers.items()), body))
        if self.path == "/drop":
            self.close_connection = True
        elif self.path in _RAW:  # answers written byte for byte
            self.wfile.write(_RAW[self.path])
            self.close_connection = self.path in ("/close-delimited", "/garbage", "/huge")
        elif self.path in ("/drip", "/drip-head"):
            self._drip(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" if self.path == "/drip" else b"")
        elif self.path == "/huge-chunked":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(40):
                self.wfile.write(b"10000\r\n" + b"x" * 65536 + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/redirect":
            self._send(302, b"", [("Location", "http://elsewhere.example/ws/patients/")])
        elif self.path == "/gzip":  # compressed although identity was asked for, signed over the bytes sent
            signature = AuthorizationHeader.for_body(GZIPPED, self.server.key, SERVER_ACCESS)
            self._send(200, GZIPPED, [("Content-Encoding", "gzip"), ("Authorization", str(signature))])
        else:
            self._send(201, b'{"ok":true}', [("Authorization", "CWS-SHA256 Access=coremr, Signature=AAAA")])
            self.close_connection = self.path == "/then-close"  # keep-alive promised, then closed while idle

    def _drip(self, head: bytes) -> None:
        """One byte every 0.2 s (the head first, if any), until the client gives up (or a minute passes)."""
        self.wfile.write(head)
        self.close_connection = True
        data = b"HTTP/1.1 200 OK\r\n" if not head else b"x" * 1000
        for i in range(300):
            try:
                self.wfile.write(data[i % len(data) : i % len(data) + 1])
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.2)

    def _send(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
        self.wfile.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, key: rsa.RSAPrivateKey, context: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.key = key
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.connections = 0
        if context is not None:
            self.socket = context.wrap_socket(self.socket, server_side=True)

    def get_request(self) -> tuple[Any, Any]:
        self.connections += 1
        return super().get_request()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that refuses our certificate, or gives up on a drip, is expected here."""

    @property
    def url(self) -> str:
        scheme = "https" if isinstance(self.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}"


def _serve(server: _Server) -> Iterator[_Server]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests set the proxy variables they mean; none leak in from the machine running them."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def plain(server_keys: KeyPair) -> Iterator[_Server]:
    """A local HTTP/1.1 keep-alive server."""
    yield from _serve(_Server(server_keys.key))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cws-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    d = tmp_path_factory.mktemp("tls")
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return d / "cert.pem", d / "key.pem"


@pytest.fixture
def tls(certificate: tuple[Path, Path], server_keys: KeyPair) -> Iterator[_Server]:
    """A local HTTPS server with the self-signed certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    yield from _serve(_Server(server_keys.key, context))


def test_the_exact_body_bytes_are_sent_once_with_the_headers_set_once(plain: _Server) -> None:
    body = '{"fname": "Zoë",\n "lname":"Lee"}'.encode()  # not what any JSON encoder would re-make
    with CWSTransport(timeout=5) as transport:
        answer = transport.send("POST", plain.url + "/ws/patients/", body, {"Authorization": "CWS-SHA256 x"})
    assert answer.status == 201 and answer.body == b'{"ok":true}'
    assert answer.header("authorization") == "CWS-SHA256 Access=coremr, Signature=AAAA"
    [(method, path, headers, received)] = plain.seen
    assert (method, path, received) == ("POST", "/ws/patients/", body)
    assert headers["Content-Length"] == str(len(body)) and headers["Host"] == plain.url.removeprefix("http://")
    assert headers["Content-Type"] == "application/json" and headers["Accept-Encoding"] == "identity"
    assert headers["User-Agent"].startswith("cws-pipeline/") and headers["Authorization"] == "CWS-SHA256 x"


def test_httpx_clients_get_the_same_headers_and_bytes(plain: _Server) -> None:
    body = b'{"a": 1}'
    with httpx.Client(transport=CWSTransport(timeout=5)) as client:
        response = client.post(plain.url + "/ws/patients/", content=body)
    assert response.status_code == 201 and response.content == b'{"ok":true}'
    [(_, _, headers, received)] = plain.seen
    assert received == body
    assert headers["Accept-Encoding"] == "identity" and headers["User-Agent"].startswith("cws-pipeline/")
    assert headers["Content-Type"] == "application/json"


def test_keep_alive_reuses_one_connection(plain: _Server) -> None:
    with CWSTransport(timeout=5) as transport:
        for _ in range(3):
            assert transport.send("GET", plain.url + "/x").status == 201
    assert plain.connections == 1


def test_an_idle_connection_the_server_closed_is_not_used_to_send(plain: _Server) -> None:
    with CWSTransport(timeout=5) as transport:
        assert transport.send("GET", plain.url + "/then-close").status == 201
        time.sleep(0.2)  # let the server's close arrive
        assert transport.send("POST", plain.url + "/ws/patients/", b"{}").status == 201
    assert plain.connections == 2 and [p for _, p, _, _ in plain.seen] == ["/then-close", "/ws/patients/"]


def test_a_redirect_is_an_answer_and_is_not_followed(
    plain: _Server, client_keys: KeyPair, server_keyring_dir: Path
) -> None:
    with CWSTransport(timeout=5) as transport:
        assert transport.send("POST", plain.url + "/redirect", b"{}").status == 302
        auth = CWSAuth(client_keys.key, CLIENT_ACCESS, Keyring(server_keyring_dir))
        with httpx.Client(transport=transport, auth=auth) as client:
            assert client.post(plain.url + "/redirect", content=b"{}").status_code == 302
    assert [p for _, p, _, _ in plain.seen] == ["/redirect", "/redirect"]


def test_a_compressed_answer_is_kept_and_verified_as_received(
    plain: _Server, client_keys: KeyPair, server_keyring_dir: Path
) -> None:
    with CWSTransport(timeout=5) as transport:
        assert transport.send("GET", plain.url + "/gzip").body == GZIPPED  # never decompressed
        auth = CWSAuth(client_keys.key, CLIENT_ACCESS, Keyring(server_keyring_dir))
        with httpx.Client(transport=transport, auth=auth) as client:
            response = client.get(plain.url + "/gzip")
    assert verification_of(response).ok  # checked over the gzip bytes CorEMR signed, not httpx's decoded copy
    assert response.content == b'{"external_id":"P1"}'


def test_an_untrusted_certificate_is_refused_before_anything_is_sent(tls: _Server) -> None:
    with CWSTransport(timeout=5) as transport, pytest.raises(NoAnswer, match="CERTIFICATE_VERIFY_FAILED") as refused:
        transport.send("POST", tls.url + "/ws/patients/", b"{}")
    assert refused.value.landed == "no" and tls.seen == []


def test_a_certificate_in_ca_bundle_is_trusted(tls: _Server, certificate: tuple[Path, Path]) -> None:
    with CWSTransport(timeout=5, ca_bundle=certificate[0]) as transport:
        assert transport.send("POST", tls.url + "/ws/patients/", b"{}").status == 201
    assert tls.seen[0][3] == b"{}"


@pytest.mark.parametrize("content", [None, b"not a certificate\n"])
def test_a_missing_or_garbage_ca_bundle_is_refused(tmp_path: Path, content: bytes | None) -> None:
    bundle = tmp_path / "ca.pem"
    if content is not None:
        bundle.write_bytes(content)
    with pytest.raises(ValueError, match="no such CA bundle" if content is None else "not a PEM bundle"):
        CWSTransport(ca_bundle=bundle)


def test_a_refused_connection_did_not_land(plain: _Server) -> None:
    url = plain.url
    plain.shutdown()
    plain.server_close()  # nothing listens there now
    with CWSTransport(timeout=5) as transport, pytest.raises(NoAnswer, match=r"^ConnectError") as refused:
        transport.send("POST", url + "/ws/patients/", b"{}")
    assert refused.value.landed == "no"


@pytest.mark.parametrize(("path", "why"), [("/drop", "RemoteProtocolError"), ("/garbage", "RemoteProtocolError")])
def test_a_request_with_no_answer_after_sending_may_have_landed(plain: _Server, path: str, why: str) -> None:
    with CWSTransport(timeout=5) as transport, pytest.raises(NoAnswer, match=why) as lost:
        transport.send("POST", plain.url + path, b"{}")
    assert lost.value.landed == "maybe" and len(plain.seen) == 1


@pytest.mark.parametrize("path", ["/drip", "/drip-head"])
def test_a_server_sending_one_byte_at_a_time_cannot_hold_a_request_past_its_deadline(plain: _Server, path: str) -> None:
    failures: list[NoAnswer] = []

    def send() -> None:
        with CWSTransport(timeout=1) as transport:
            try:
                transport.send("POST", plain.url + path, b"{}")
            except NoAnswer as exc:
                failures.append(exc)

    worker = threading.Thread(target=send, daemon=True)
    worker.start()
    worker.join(timeout=30)  # a hang bound, not a speed check: without a deadline this never returns
    assert not worker.is_alive()
    [failure] = failures
    assert failure.landed == "maybe" and str(failure) == "ReadTimeout: not done within the timeout of 1 s"


@pytest.mark.parametrize("path", ["/huge", "/huge-chunked"])
def test_an_answer_over_max_answer_bytes_is_refused_unread(plain: _Server, path: str) -> None:
    with CWSTransport(timeout=10, max_answer_bytes=1 << 20) as transport:
        with pytest.raises(NoAnswer, match=r"^AnswerTooLarge: an answer of .* bytes") as refused:
            transport.send("GET", plain.url + path)
        assert refused.value.landed == "maybe"
        assert transport.send("GET", plain.url + "/x").status == 201  # the transport carries on


@pytest.mark.parametrize(
    ("path", "status", "body", "authorization", "retry_after", "connections"),
    [
        ("/chunked", 200, b'{"ok":1}\n', "a", None, 1),
        ("/continue", 201, b"{}", "one, two", "3", 1),
        ("/close-delimited", 200, b"to the end", None, None, 2),
    ],
)
def test_answers_are_read_whole_whatever_their_framing(
    plain: _Server, path: str, status: int, body: bytes, authorization: str | None, retry_after: str | None,
    connections: int,
) -> None:  # fmt: skip
    with CWSTransport(timeout=5) as transport:
        answer = transport.send("GET", plain.url + path)
        assert (answer.status, answer.body, answer.header("Authorization"), answer.header("Retry-After")) == (
            status, body, authorization, retry_after
        )  # fmt: skip
        assert transport.send("GET", plain.url + "/x").status == 201  # the connection is reused unless closed
    assert plain.connections == connections


def test_a_control_character_in_a_header_is_refused_before_connecting(plain: _Server) -> None:
    with CWSTransport(timeout=5) as transport, pytest.raises(ValueError, match="control character"):
        transport.send("GET", plain.url + "/x", b"", {"Authorization": "a\r\nX-Injected: 1"})
    assert plain.connections == 0


def test_a_closed_transport_sends_nothing(plain: _Server) -> None:
    transport = CWSTransport(timeout=5)
    transport.close()
    with pytest.raises(NoAnswer) as refused:
        transport.send("GET", plain.url + "/x")
    assert refused.value.landed == "no" and plain.connections == 0


# -- proxies, from the environment ------------------------------------------------------------------


@pytest.fixture
def proxy(server_keys: KeyPair) -> Iterator[_Server]:
    """A forward proxy stand-in: it answers every request itself and records the target it was asked for."""
    yield from _serve(_Server(server_keys.key))


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_a_proxy_from_the_environment_carries_the_request(
    plain: _Server, proxy: _Server, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, proxy.url)
    with CWSTransport(timeout=5) as transport:
        assert transport.proxy_for(plain.url) is not None
        assert transport.send("POST", plain.url + "/ws/patients/", b"{}").status == 201
        with httpx.Client(transport=transport) as client:  # library users: the same transport, the same proxy
            assert client.post(plain.url + "/ws/patients/", content=b"{}").status_code == 201
    assert [(m, p, b) for m, p, _, b in proxy.seen] == [("POST", plain.url + "/ws/patients/", b"{}")] * 2
    assert plain.seen == []


def test_no_proxy_sends_directly(plain: _Server, proxy: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    with CWSTransport(timeout=5) as transport:
        assert transport.proxy_for(plain.url) is None
        assert transport.send("GET", plain.url + "/x").status == 201
    assert proxy.seen == [] and len(plain.seen) == 1


def test_a_proxy_that_is_not_http_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://user:secret@127.0.0.1:1080")
    with CWSTransport(timeout=5) as transport, pytest.raises(Exception, match="not an http or https proxy") as bad:
        transport.proxy_for("https://coremr.example.org")
    assert "secret" not in str(bad.value) and "\n" not in str(bad.value)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(b"3", 3.0), (b" 0.5 ", 0.5), (b"inf", None), (b"nan", None), (b"soon", None), (None, None)],
)
def test_an_answers_retry_after_is_read_as_seconds_or_none(value: bytes | None, seconds: float | None) -> None:
    headers = [] if value is None else [(b"Retry-After", value)]
    assert Answer(429, headers, b"").retry_after == seconds


def test_a_retry_after_given_as_an_http_date_is_the_seconds_until_then() -> None:
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=120)
    when = email.utils.format_datetime(later, usegmt=True).encode()
    waited = Answer(503, [(b"Retry-After", when)], b"").retry_after
    assert waited is not None and 100 < waited <= 120
