"""The engine's lean client and httpx with CWSAuth make the same signed exchange, answer for answer."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from pipeline.delivery._config import load_config
from pipeline.delivery._connections import CWSConnections
from pipeline.delivery._exchange import Exchange, SignedConnections, exchange
from pipeline.delivery._run import open_client
from pipeline.protocol._auth import CWSAuth
from pipeline.protocol._keyring import Keyring
from pipeline.simulator._server import Fault

from ..sites import CLIENT_ACCESS, KeyPair, Site

BODY = (
    b'{"external_id":"P000001","facility":10000,"agency":2,"billing_agency":1,"fname":"Zo\xc3\xab","lname":"Lee",'
    b'"dob":"1970-01-01 00:00:00.000","sex":"F","booking_no":"B000001","booking_date":"2026-11-28 22:15:00.000"}'
)


def both(site: Site, client_keys: KeyPair, server_keyring_dir: Path, method: str, path: str, body: bytes) -> tuple[
    Exchange, Exchange
]:  # fmt: skip
    """The same request through httpx + CWSAuth, then through the lean client."""
    auth = CWSAuth(client_keys.key, CLIENT_ACCESS, Keyring(server_keyring_dir))
    url = site.server.url + path
    with httpx.Client(auth=auth, follow_redirects=False) as client:
        via_httpx = exchange(client, method, url, body)
    with SignedConnections(CWSConnections(site.server.url, timeout=5), auth, "cws-pipeline/test") as lean:
        via_lean = exchange(lean, method, url, body)
    return via_httpx, via_lean


@pytest.mark.parametrize(
    ("method", "path", "body", "fault"),
    [
        ("POST", "/ws/patients/", BODY, None),  # 201, then 409 for the second create
        ("GET", "/ws/patients/P404", b"", None),  # 404
        ("POST", "/ws/patients/", BODY.replace(b"P000001", b"P000002"), "signature_corrupt"),
        ("POST", "/ws/patients/", BODY.replace(b"P000001", b"P000003"), "signature_missing"),
    ],
)
def test_lean_client_records_what_httpx_records(
    site: Site, client_keys: KeyPair, server_keyring_dir: Path, method: str, path: str, body: bytes, fault: str | None
) -> None:
    if fault:
        site.server.set_faults([Fault(fault)])  # type: ignore[arg-type]
    via_httpx, via_lean = both(site, client_keys, server_keyring_dir, method, path, body)
    assert via_lean.request_authorization == via_httpx.request_authorization  # the same bytes signed
    assert via_lean.reached == via_httpx.reached == "yes"
    assert via_lean.verified == via_httpx.verified == (fault is None)
    assert via_lean.verification is not None and via_httpx.verification is not None
    assert via_lean.verification.status == via_httpx.verification.status
    if method == "POST":
        assert (via_httpx.status, via_lean.status) == (201, 409)  # the second create of the same patient
    else:
        assert via_lean.status == via_httpx.status
        assert via_lean.response_body == via_httpx.response_body
    assert site.server.counters().rejected_signatures == 0  # the server accepted both signatures


def test_a_server_that_is_not_there_is_not_sent_to_by_either(client_keys: KeyPair, server_keyring_dir: Path) -> None:
    auth = CWSAuth(client_keys.key, CLIENT_ACCESS, Keyring(server_keyring_dir))
    url = "http://127.0.0.1:9/ws/patients/"  # the discard port: nothing listens there
    with httpx.Client(auth=auth) as client:
        via_httpx = exchange(client, "POST", url, BODY)
    with SignedConnections(CWSConnections("http://127.0.0.1:9", timeout=5), auth, "test") as lean:
        via_lean = exchange(lean, "POST", url, BODY)
    assert via_httpx.reached == via_lean.reached == "no"
    assert via_httpx.error and via_lean.error and via_lean.error.startswith("ConnectError")


@pytest.mark.parametrize(
    ("env", "lean"),
    [
        ({}, True),
        ({"HTTP_PROXY": "http://proxy.example:3128"}, False),
        ({"HTTP_PROXY": "http://proxy.example:3128", "NO_PROXY": "127.0.0.1"}, True),
        ({"ALL_PROXY": "http://proxy.example:3128"}, False),
    ],
)
def test_a_proxy_from_the_environment_is_honoured_through_httpx(
    site: Site, client_keys: KeyPair, server_keyring_dir: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
    lean: bool,
) -> None:  # fmt: skip
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    auth = CWSAuth(client_keys.key, CLIENT_ACCESS, Keyring(server_keyring_dir))
    with open_client(load_config(site.config), auth) as client:
        assert isinstance(client, SignedConnections) == lean
        assert isinstance(client, httpx.Client) != lean
