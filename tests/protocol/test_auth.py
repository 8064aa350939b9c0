"""CWSAuth over httpx.MockTransport: what it signs, what it sends, and how it reports each response check.

The same flow against the real local server over loopback is tested with the simulator.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pipeline.protocol import ALGORITHMS, Algorithm, AuthorizationHeader, CWSAuth, Keyring, verification_of, verify_body

from ..sites import CLIENT_ACCESS, SERVER_ACCESS, KeyPair

BASE = "https://coremr.example/ws/patients/"
# Deliberately not what httpx's json= would produce (it is compact): the signed bytes must be these.
BODY = json.dumps({"external_id": "A1", "facility": 10000, "agency": 2}, indent=1).encode()
RESPONSE = b'{"id": 7, "external_id": "A1"}'

Handler = Callable[[httpx.Request], httpx.Response]


@dataclass(frozen=True)
class SigningKeys:
    """The private keys a fake CorEMR may sign its responses with: its own, or a stranger's."""

    server: rsa.RSAPrivateKey
    other: rsa.RSAPrivateKey


def signed_response(
    key: rsa.RSAPrivateKey,
    access: str = SERVER_ACCESS,
    algorithm: Algorithm = "CWS-SHA256",
    body: bytes = RESPONSE,
    signed_body: bytes | None = None,
    status: int = 200,
) -> httpx.Response:
    """A response carrying a CWS signature of `signed_body` (default: the body itself)."""
    header = AuthorizationHeader.for_body(body if signed_body is None else signed_body, key, access, algorithm)
    return httpx.Response(status, content=body, headers={"Authorization": str(header)})


@pytest.fixture
def auth(client_keys: KeyPair, server_keyring_dir: Path) -> CWSAuth:
    """Our client's auth: signs as county-jms, trusts coremr.pem."""
    return CWSAuth(client_keys.key, CLIENT_ACCESS, Keyring(server_keyring_dir))


def client_with(auth: CWSAuth, handler: Handler, seen: list[httpx.Request]) -> httpx.Client:
    """An httpx client (default follow_redirects=False) whose transport records each request it gets."""

    def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    return httpx.Client(auth=auth, transport=httpx.MockTransport(recording))


def test_request_carries_a_signature_of_the_exact_bytes_sent(
    auth: CWSAuth, server_keys: KeyPair, client_keyring_dir: Path
) -> None:
    seen: list[httpx.Request] = []
    with client_with(auth, lambda r: signed_response(server_keys.key), seen) as client:
        response = client.post(BASE, content=BODY, headers={"Content-Type": "application/json"})

    (sent,) = seen
    assert sent.content == BODY
    assert sent.headers["Authorization"].startswith(f"CWS-SHA256 Access={CLIENT_ACCESS}, Signature=")
    assert verify_body(sent.content, sent.headers["Authorization"], Keyring(client_keyring_dir)).ok
    assert not verify_body(BODY + b"\n", sent.headers["Authorization"], Keyring(client_keyring_dir)).ok
    assert verification_of(response).ok


def test_request_asks_for_identity_encoding_so_verified_bytes_are_the_signed_bytes(
    auth: CWSAuth, server_keys: KeyPair
) -> None:
    seen: list[httpx.Request] = []
    with client_with(auth, lambda r: signed_response(server_keys.key), seen) as client:
        client.post(BASE, content=BODY)

    assert seen[0].headers["Accept-Encoding"] == "identity"


def test_get_signs_the_empty_body(auth: CWSAuth, server_keys: KeyPair, client_keyring_dir: Path) -> None:
    seen: list[httpx.Request] = []
    with client_with(auth, lambda r: signed_response(server_keys.key), seen) as client:
        client.get(BASE + "A1")

    (sent,) = seen
    assert sent.content == b""
    assert verify_body(b"", sent.headers["Authorization"], Keyring(client_keyring_dir)).ok


def test_sha1_signing_is_configurable(client_keys: KeyPair, server_keys: KeyPair, server_keyring_dir: Path) -> None:
    auth = CWSAuth(client_keys.key, CLIENT_ACCESS, Keyring(server_keyring_dir), algorithm="CWS-SHA1")
    seen: list[httpx.Request] = []
    with client_with(auth, lambda r: signed_response(server_keys.key), seen) as client:
        client.post(BASE, content=BODY)

    assert AuthorizationHeader.parse(seen[0].headers["Authorization"]).algorithm == "CWS-SHA1"


@pytest.mark.parametrize(
    ("make_response", "accept", "status"),
    [
        pytest.param(lambda k: signed_response(k.server), None, "ok", id="ok"),
        pytest.param(lambda k: signed_response(k.server, algorithm="CWS-SHA1"), None, "ok", id="sha1-accepted"),
        pytest.param(lambda k: httpx.Response(200, content=RESPONSE), None, "missing_header", id="missing"),
        pytest.param(
            lambda k: httpx.Response(200, content=RESPONSE, headers={"Authorization": "CWS-SHA256 Access=coremr"}),
            None,
            "malformed_header",
            id="malformed",
        ),
        pytest.param(lambda k: signed_response(k.server, access="impostor"), None, "unknown_signer", id="unknown"),
        pytest.param(
            lambda k: signed_response(k.server, algorithm="CWS-SHA1"),
            ("CWS-SHA256",),
            "algorithm_not_accepted",
            id="sha1-refused",
        ),
        pytest.param(lambda k: signed_response(k.other), None, "bad_signature", id="wrong-key"),
        pytest.param(
            lambda k: signed_response(k.server, signed_body=RESPONSE + b"\n"), None, "bad_signature", id="other-bytes"
        ),
        pytest.param(
            lambda k: signed_response(k.server, status=500, body=b'{"error": "boom"}'), None, "ok", id="signed-error"
        ),
    ],
)
def test_each_verification_outcome_is_recorded_on_the_response(
    client_keys: KeyPair,
    server_keys: KeyPair,
    other_keys: KeyPair,
    server_keyring_dir: Path,
    make_response: Callable[[SigningKeys], httpx.Response],
    accept: tuple[str, ...] | None,
    status: str,
) -> None:
    keys = SigningKeys(server=server_keys.key, other=other_keys.key)
    auth = CWSAuth(client_keys.key, CLIENT_ACCESS, Keyring(server_keyring_dir), accept_algorithms=accept or ALGORITHMS)
    with client_with(auth, lambda r: make_response(keys), []) as client:
        response = client.post(BASE, content=BODY)

    found = verification_of(response)
    assert found.status == status
    assert found.ok is (status == "ok")


def test_verification_of_a_response_cwsauth_never_saw_is_missing_header() -> None:
    response = httpx.Response(
        200, content=RESPONSE, headers={"Authorization": "CWS-SHA256 Access=coremr, Signature=QQ=="}
    )

    assert verification_of(response).status == "missing_header"


def test_redirect_is_not_followed_so_the_signature_never_leaves_for_another_origin(
    auth: CWSAuth, server_keys: KeyPair
) -> None:
    # The delivery engine must build its clients with follow_redirects=False (httpx's default):
    # httpx would drop Authorization on a cross-origin redirect, and a re-sent POST is a second create.
    seen: list[httpx.Request] = []
    with client_with(auth, lambda r: _redirect(server_keys.key), seen) as client:
        assert client.follow_redirects is False
        response = client.post(BASE, content=BODY)

    assert response.status_code == 302
    assert len(seen) == 1
    assert response.next_request is not None and response.next_request.url.host == "elsewhere.example"
    assert verification_of(response).ok


def _redirect(key: rsa.RSAPrivateKey) -> httpx.Response:
    header = AuthorizationHeader.for_body(b"", key, SERVER_ACCESS)
    return httpx.Response(
        302, content=b"", headers={"Location": "https://elsewhere.example/x", "Authorization": str(header)}
    )


def test_auth_repr_never_shows_the_private_key(auth: CWSAuth, client_keys: KeyPair) -> None:
    text = repr(auth)

    assert text == "CWSAuth(access='county-jms', algorithm='CWS-SHA256')"
    assert "PRIVATE" not in text and "RSAPrivateKey" not in text
