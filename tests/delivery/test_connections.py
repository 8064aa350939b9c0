"""The engine's lean HTTP client: TLS verified, no redirects, exact bytes, and what it says when the network fails."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pipeline.delivery._connections import CWSConnections, NotSent, SentButLost

_RAW = {
    "/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nAuthorization: a\r\n\r\n"
    b'4;ext=1\r\n{"ok\r\n5\r\n":1}\n\r\n0\r\nX-Trailer: t\r\n\r\n',
    "/continue": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n"
    b"Retry-After: 3\r\nAuthorization: one\r\nAuthorization: two\r\n\r\n{}",
    "/close-delimited": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nto the end",
    "/garbage": b"SMTP ready\r\n\r\n",
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
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.server.seen.append((self.command, self.path, dict(self.headers.items()), body))
        if self.path == "/drop":
            self.close_connection = True
            return
        if self.path in _RAW:  # answers written byte for byte
            self.wfile.write(_RAW[self.path])
            self.close_connection = self.path in ("/close-delimited", "/garbage")
            return
        if self.path == "/redirect":
            self._send(302, b"", [("Location", "http://elsewhere.example/ws/patients/")])
            return
        self._send(201, b'{"ok":true}', [("Authorization", "CWS-SHA256 Access=coremr, Signature=AAAA")])
        if self.path == "/then-close":  # keep-alive promised, then closed while idle
            self.close_connection = True

    def _send(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.connections = 0
        if context is not None:
            self.socket = context.wrap_socket(self.socket, server_side=True)

    def get_request(self) -> tuple[Any, Any]:
        self.connections += 1
        return super().get_request()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that refuses our certificate is expected here."""

    @property
    def port(self) -> int:
        return int(self.server_address[1])


def _serve(server: _Server) -> Iterator[_Server]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def plain() -> Iterator[_Server]:
    """A local HTTP/1.1 keep-alive server."""
    yield from _serve(_Server())


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
def tls(certificate: tuple[Path, Path]) -> Iterator[_Server]:
    """A local HTTPS server with the self-signed certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    yield from _serve(_Server(context))


def test_request_sends_the_exact_body_once_and_returns_status_headers_and_bytes(plain: _Server) -> None:
    body = '{"fname":"Zoë"}'.encode()
    with CWSConnections(f"http://127.0.0.1:{plain.port}", timeout=5) as pool:
        answer = pool.request("POST", f"http://127.0.0.1:{plain.port}/ws/patients/", body, {"X-Test": "1"})
    assert answer.status == 201 and answer.body == b'{"ok":true}'
    assert answer.authorization == "CWS-SHA256 Access=coremr, Signature=AAAA"
    [(method, path, headers, received)] = plain.seen
    assert (method, path, received) == ("POST", "/ws/patients/", body)
    assert headers["Content-Length"] == str(len(body)) and headers["Host"] == f"127.0.0.1:{plain.port}"


def test_keep_alive_reuses_one_connection(plain: _Server) -> None:
    with CWSConnections(f"http://127.0.0.1:{plain.port}", timeout=5) as pool:
        for _ in range(3):
            assert pool.request("GET", f"http://127.0.0.1:{plain.port}/x", b"", {}).status == 201
    assert plain.connections == 1


def test_an_idle_connection_the_server_closed_is_replaced_before_sending(plain: _Server) -> None:
    url = f"http://127.0.0.1:{plain.port}"
    with CWSConnections(url, timeout=5) as pool:
        assert pool.request("GET", url + "/then-close", b"", {}).status == 201
        time.sleep(0.2)  # let the server's close arrive
        assert pool.request("POST", url + "/ws/patients/", b"{}", {}).status == 201
    assert plain.connections == 2 and len(plain.seen) == 2


def test_a_redirect_is_an_answer_not_followed(plain: _Server) -> None:
    url = f"http://127.0.0.1:{plain.port}"
    with CWSConnections(url, timeout=5) as pool:
        answer = pool.request("POST", url + "/redirect", b"{}", {})
    assert answer.status == 302
    assert len(plain.seen) == 1


def test_another_origin_or_a_control_character_is_refused_before_connecting(plain: _Server) -> None:
    url = f"http://127.0.0.1:{plain.port}"
    with CWSConnections(url, timeout=5) as pool:
        with pytest.raises(ValueError, match="is not on"):
            pool.request("GET", "http://elsewhere.example/ws/patients/", b"", {})
        with pytest.raises(ValueError, match="control character"):
            pool.request("GET", url + "/x", b"", {"Authorization": "a\r\nX-Injected: 1"})
    assert plain.connections == 0


def test_a_refused_connection_was_not_sent() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        with CWSConnections(f"http://127.0.0.1:{port}", timeout=5) as pool, pytest.raises(NotSent, match="Connect"):
            pool.request("POST", f"http://127.0.0.1:{port}/ws/patients/", b"{}", {})


def test_a_connection_dropped_after_sending_may_have_landed(plain: _Server) -> None:
    url = f"http://127.0.0.1:{plain.port}"
    with CWSConnections(url, timeout=5) as pool, pytest.raises(SentButLost, match="RemoteProtocolError"):
        pool.request("POST", url + "/drop", b"{}", {})
    assert len(plain.seen) == 1


def test_tls_certificate_not_trusted_is_refused_before_sending(tls: _Server) -> None:
    url = f"https://127.0.0.1:{tls.port}"
    with CWSConnections(url, timeout=5) as pool, pytest.raises(NotSent, match="CERTIFICATE_VERIFY_FAILED"):
        pool.request("POST", url + "/ws/patients/", b"{}", {})
    assert tls.seen == []


def test_tls_with_the_configured_ca_bundle_is_verified_and_answers(
    tls: _Server, certificate: tuple[Path, Path]
) -> None:
    url = f"https://127.0.0.1:{tls.port}"
    with CWSConnections(url, timeout=5, ca_bundle=certificate[0]) as pool:
        answer = pool.request("POST", url + "/ws/patients/", b"{}", {})
    assert answer.status == 201 and tls.seen[0][3] == b"{}"


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
    url = f"http://127.0.0.1:{plain.port}"
    with CWSConnections(url, timeout=5) as pool:
        answer = pool.request("GET", url + path, b"", {})
        assert (answer.status, answer.body, answer.authorization, answer.retry_after) == (
            status, body, authorization, retry_after
        )  # fmt: skip
        assert pool.request("GET", url + "/x", b"", {}).status == 201  # the connection is reused unless closed
    assert plain.connections == connections


def test_an_answer_that_is_not_http_may_have_landed(plain: _Server) -> None:
    url = f"http://127.0.0.1:{plain.port}"
    with CWSConnections(url, timeout=5) as pool, pytest.raises(SentButLost, match="RemoteProtocolError"):
        pool.request("POST", url + "/garbage", b"{}", {})
