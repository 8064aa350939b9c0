"""The local CWS server over a real loopback socket: routes, signatures both ways, validation, faults, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

import pipeline
from pipeline import AuthorizationHeader, CWSAuth, Keyring, UserInputError, verification_of
from pipeline.cli import cli
from pipeline.simulator import CWSServer, Fault, ServerCounters, fetch_counters
from pipeline.simulator._server import COUNTERS_PATH

from ..sites import CLIENT_ACCESS, SERVER_ACCESS, KeyPair
from .examples import WALKTHROUGH

PATIENT: dict[str, Any] = {**WALKTHROUGH, "booking_date": "2023-04-07 10:00:00.000"}  # 3 fractional digits


def patient(external_id: str = "FakeExternalID", **changes: Any) -> dict[str, Any]:
    """The walkthrough's example body, with a given external_id and any field changed."""
    return {**PATIENT, "external_id": external_id, **changes}


def body_bytes(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


@pytest.fixture
def server(server_keys: KeyPair, client_keyring_dir: Path) -> Iterator[CWSServer]:
    with CWSServer(server_keys.key, Keyring(client_keyring_dir)) as s:
        yield s


def signed_client(
    server: CWSServer, key: KeyPair, server_keyring_dir: Path, access: str = CLIENT_ACCESS, **auth: Any
) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, auth=CWSAuth(key.key, access, Keyring(server_keyring_dir), **auth), timeout=30
    )


@pytest.fixture
def client(server: CWSServer, client_keys: KeyPair, server_keyring_dir: Path) -> Iterator[httpx.Client]:
    with signed_client(server, client_keys, server_keyring_dir) as c:
        yield c


def test_signed_create_then_signed_get_returns_the_patient_in_the_documented_v2_form(
    server: CWSServer, client: httpx.Client
) -> None:
    created = client.post("/ws/patients/", json=PATIENT)
    assert created.status_code == 201
    assert verification_of(created).ok and verification_of(created).signer == SERVER_ACCESS
    assert created.headers["content-type"] == "application/json"
    # v2's GET form: facility as a string, dates as YYYY-MM-DD 00:00:00.000, no fields of our own, and
    # the booking under the bookings routes (assumption "answer-shape").
    documented = {
        "external_id": "FakeExternalID",
        "facility": "10000",
        "agency": 2,
        "billing_agency": 1,
        "fname": "First",
        "lname": "Name",
        "dob": "2000-04-12 00:00:00.000",
        "sex": "M",
    }
    assert created.json() == documented
    fetched = client.get("/ws/patients/FakeExternalID")
    assert fetched.status_code == 200 and verification_of(fetched).ok
    assert fetched.json() == documented
    assert server.patients() == {"FakeExternalID": documented}
    booking = {"facility": "10000", "booking_no": "EthanBooking14", "booking_date": "2023-04-07 10:00:00.000"}
    assert server.bookings() == {"FakeExternalID": {"EthanBooking14": booking}}


def test_second_create_for_the_same_external_id_is_409_and_stores_nothing_more(
    server: CWSServer, client: httpx.Client
) -> None:
    assert client.post("/ws/patients/", json=PATIENT).status_code == 201
    again = client.post("/ws/patients/", json=patient(fname="Other", booking_no="Other"))
    assert again.status_code == 409 and verification_of(again).ok
    assert again.json()["fields"] == {"external_id": "already exists"}
    counters = server.counters()
    assert counters.creates == {"FakeExternalID": 1}
    assert counters.create_attempts == {"FakeExternalID": 2}
    assert counters.booking_creates == {"FakeExternalID": {"EthanBooking14": 1}}
    assert server.patients()["FakeExternalID"]["fname"] == "First"


def test_update_list_and_missing_patient_routes(server: CWSServer, client: httpx.Client) -> None:
    client.post("/ws/patients/", json=PATIENT)
    updated = client.post("/ws/patients/FakeExternalID", json={"lname": "Changed", "booking_no": "ignored"})
    assert updated.status_code == 200 and updated.json()["lname"] == "Changed"
    assert list(server.bookings()["FakeExternalID"]) == ["EthanBooking14"]  # booking fields are ignored on update
    assert server.counters().updates == {"FakeExternalID": 1}
    listed = client.get("/ws/patients/")
    assert listed.status_code == 200 and [p["external_id"] for p in listed.json()] == ["FakeExternalID"]
    for method, path in [("GET", "/ws/patients/nobody"), ("POST", "/ws/patients/nobody"), ("GET", "/ws/other")]:
        missing = client.request(method, path, json={} if method == "POST" else None)
        assert missing.status_code == 404 and verification_of(missing).ok
        assert set(missing.json()) == {"error", "fields"}
    not_allowed = client.delete("/ws/patients/FakeExternalID")
    assert not_allowed.status_code == 405 and not_allowed.headers["allow"] == "GET, POST"
    assert verification_of(not_allowed).ok
    assert server.counters().lookups == 2


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (patient(external_id=""), {"external_id"}),
        (patient(external_id="X" * 18), {"external_id"}),
        (patient(facility="10000"), {"facility"}),
        (patient(agency=True), {"agency"}),
        (patient(billing_agency=1.5), {"billing_agency"}),
        (patient(dob="04/12/2000"), {"dob"}),
        (patient(booking_date="2023-04-07"), {"booking_date"}),  # a booking date has a time
        (patient(booking_date="2023-04-07 10:00:00.0000"), {"booking_date"}),  # at most 3 fractional digits
        (patient(dob="2000-02-30 00:00:00.000"), {"dob"}),
        (patient(fname=" "), {"fname"}),
        (patient(sex="Male"), {"sex"}),  # v1's word; v2 takes M, F, U
        (patient(height="seventy"), {"height"}),
        (patient(weight=True), {"weight"}),
        (patient(booking_no="B" * 33), {"booking_no"}),
        ({k: v for k, v in PATIENT.items() if k not in ("agency", "dob", "sex")}, {"agency", "dob", "sex"}),
        ({"external_id": "A"}, {"facility", "agency", "fname", "lname", "dob", "sex", "booking_no", "booking_date"}),
        ([PATIENT], {"body"}),
    ],
)
def test_invalid_patient_is_400_naming_each_bad_field(
    server: CWSServer, client: httpx.Client, body: object, fields: set[str]
) -> None:
    r = client.post("/ws/patients/", json=body)
    assert r.status_code == 400 and verification_of(r).ok
    assert r.json()["error"] == "invalid patient"
    assert set(r.json()["fields"]) == fields
    assert server.patients() == {} and server.counters().creates == {}


def test_invalid_json_is_400(client: httpx.Client) -> None:
    r = client.post("/ws/patients/", content=b'{"external_id": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"].startswith("invalid JSON")
    assert verification_of(r).ok


def test_error_messages_never_echo_patient_values(client: httpx.Client) -> None:
    r = client.post("/ws/patients/", json=patient(fname="", dob="1999-13-45 00:00:00.000", lname="Zyxwvut"))
    assert r.status_code == 400 and "Zyxwvut" not in r.text and "1999-13-45" not in r.text


def test_unknown_access_name_is_401(server: CWSServer, other_keys: KeyPair, server_keyring_dir: Path) -> None:
    with signed_client(server, other_keys, server_keyring_dir, access="stranger") as c:
        r = c.post("/ws/patients/", json=PATIENT)
    assert r.status_code == 401 and verification_of(r).ok
    assert r.json() == {"error": "unknown Access name 'stranger': no public key under that username", "fields": {}}
    assert server.counters().rejected_signatures == 1 and server.patients() == {}


def test_wrong_key_under_a_known_name_is_401_bad_signature(
    server: CWSServer, other_keys: KeyPair, server_keyring_dir: Path
) -> None:
    with signed_client(server, other_keys, server_keyring_dir) as c:
        r = c.get("/ws/patients/")
    assert r.status_code == 401 and r.json()["error"].startswith("bad signature")


def test_body_tampered_after_signing_is_401_bad_signature(server: CWSServer, client_keys: KeyPair) -> None:
    signed = body_bytes(PATIENT)
    header = AuthorizationHeader.for_body(signed, client_keys.key, CLIENT_ACCESS)
    tampered = signed.replace(b"First", b"Forst")
    r = httpx.post(server.url + "/ws/patients/", content=tampered, headers={"Authorization": str(header)})
    assert r.status_code == 401 and r.json()["error"].startswith("bad signature")
    trailing_newline = httpx.post(
        server.url + "/ws/patients/", content=signed + b"\n", headers={"Authorization": str(header)}
    )
    assert trailing_newline.status_code == 401
    assert server.patients() == {} and server.counters().rejected_signatures == 2


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, "missing Authorization header"),
        ({"Authorization": "CWS-SHA256 Access=county-jms Signature=AAAA"}, "malformed Authorization header"),
        ({"Authorization": "Bearer abc"}, "malformed Authorization header"),
        ({"Authorization": "CWS-SHA512 Access=county-jms, Signature=AAAA"}, "unsupported algorithm 'CWS-SHA512'"),
    ],
)
def test_missing_malformed_or_unsupported_header_is_401_saying_so(
    server: CWSServer, headers: dict[str, str], error: str
) -> None:
    r = httpx.get(server.url + "/ws/patients/", headers=headers)
    assert r.status_code == 401 and r.json()["error"].startswith(error)


def test_sha1_requests_are_accepted(server: CWSServer, client_keys: KeyPair, server_keyring_dir: Path) -> None:
    with signed_client(server, client_keys, server_keyring_dir, algorithm="CWS-SHA1") as c:
        assert c.post("/ws/patients/", json=PATIENT).status_code == 201


def test_unknown_method_gets_a_signed_json_405(server: CWSServer) -> None:
    r = httpx.request("BREW", server.url + "/ws/patients/")
    assert r.status_code == 405 and r.headers["content-type"] == "application/json"
    assert r.headers["authorization"].startswith(f"CWS-SHA256 Access={SERVER_ACCESS}, Signature=")


def test_status_503_for_the_first_two_then_success_stores_once(server: CWSServer, client: httpx.Client) -> None:
    server.set_faults([Fault("status_503", first=2)])
    statuses = [client.post("/ws/patients/", json=PATIENT).status_code for _ in range(3)]
    assert statuses == [503, 503, 201]
    counters = server.counters()
    assert counters.faults_applied == {"status_503": 2}
    assert counters.creates == {"FakeExternalID": 1} and counters.create_attempts == {"FakeExternalID": 3}


def test_status_500_is_a_signed_json_error_and_stores_nothing(server: CWSServer, client: httpx.Client) -> None:
    server.set_faults([Fault("status_500")])
    r = client.post("/ws/patients/", json=PATIENT)
    assert r.status_code == 500 and verification_of(r).ok and "error" in r.json()
    assert server.patients() == {}


def test_status_429_carries_retry_after_or_none(server: CWSServer, client: httpx.Client) -> None:
    server.set_faults([Fault("status_429", first=1, retry_after="2"), Fault("status_429", retry_after=None)])
    first = client.post("/ws/patients/", json=PATIENT)
    second = client.post("/ws/patients/", json=PATIENT)
    assert first.status_code == 429 and first.headers["retry-after"] == "2" and verification_of(first).ok
    assert second.status_code == 429 and "retry-after" not in second.headers
    assert server.patients() == {}


def test_faults_apply_only_to_their_methods(server: CWSServer, client: httpx.Client) -> None:
    server.set_faults([Fault("status_503", methods=("GET",))])
    assert client.post("/ws/patients/", json=PATIENT).status_code == 201
    assert client.get("/ws/patients/FakeExternalID").status_code == 503


def test_latency_delays_one_connection_without_blocking_another(
    server: CWSServer, client: httpx.Client, client_keys: KeyPair, server_keyring_dir: Path
) -> None:
    server.set_faults([Fault("latency", latency_ms=60_000)])  # POSTs wait a minute (stop() wakes them)
    outcome: list[object] = []

    def slow_post() -> None:
        with signed_client(server, client_keys, server_keyring_dir) as c:
            try:
                outcome.append(c.post("/ws/patients/", json=PATIENT).status_code)
            except httpx.HTTPError as exc:
                outcome.append(exc)

    waiting = threading.Thread(target=slow_post)
    waiting.start()
    try:
        while server.counters().faults_applied.get("latency") != 1:
            threading.Event().wait(0.01)
        assert client.get("/ws/patients/").status_code == 200  # answered while the POST still sleeps
        assert waiting.is_alive() and outcome == []
    finally:
        server.stop()
        waiting.join()


def test_dropped_connection_after_processing_stores_the_create_but_sends_nothing(
    server: CWSServer, client: httpx.Client
) -> None:
    server.set_faults([Fault("drop_after_processing", first=1)])
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.post("/ws/patients/", json=PATIENT)
    assert server.counters().creates == {"FakeExternalID": 1}
    assert server.counters().faults_applied == {"drop_after_processing": 1}
    assert client.post("/ws/patients/", json=PATIENT).status_code == 409  # it did land


@pytest.mark.parametrize(
    ("kind", "status", "accept"),
    [
        ("signature_corrupt", "bad_signature", ("CWS-SHA256", "CWS-SHA1")),
        ("signature_missing", "missing_header", ("CWS-SHA256", "CWS-SHA1")),
        ("signature_unknown_signer", "unknown_signer", ("CWS-SHA256", "CWS-SHA1")),
        ("signature_sha1", "ok", ("CWS-SHA256", "CWS-SHA1")),
        ("signature_sha1", "algorithm_not_accepted", ("CWS-SHA256",)),
    ],
)
def test_signature_faults_show_as_the_matching_verification(
    server: CWSServer,
    client_keys: KeyPair,
    server_keyring_dir: Path,
    kind: str,
    status: str,
    accept: tuple[str, ...],
) -> None:
    server.set_faults([Fault(kind, methods=("GET", "POST"))])  # type: ignore[arg-type]
    with signed_client(server, client_keys, server_keyring_dir, accept_algorithms=accept) as c:
        created = c.post("/ws/patients/", json=PATIENT)
        listed = c.get("/ws/patients/")
    assert created.status_code == 201 and listed.status_code == 200
    assert verification_of(created).status == status and verification_of(listed).status == status
    if kind == "signature_sha1":
        assert verification_of(created).algorithm == "CWS-SHA1"
    if kind == "signature_unknown_signer":
        assert verification_of(created).signer == "impostor"
    assert server.counters().faults_applied == {kind: 2}


def test_faults_at_a_rate_repeat_with_the_same_seed(
    server_keys: KeyPair, client_keyring_dir: Path, client_keys: KeyPair, server_keyring_dir: Path
) -> None:
    def statuses(seed: int) -> list[int]:
        faults = [Fault("status_500", rate=0.5, methods=("GET",))]
        with (
            CWSServer(server_keys.key, Keyring(client_keyring_dir), faults=faults, seed=seed) as s,
            signed_client(s, client_keys, server_keyring_dir) as c,
        ):
            return [c.get("/ws/patients/").status_code for _ in range(24)]

    first = statuses(7)
    assert first == statuses(7)
    assert {200, 500} == set(first)


def test_set_faults_starts_first_counts_again(server: CWSServer, client: httpx.Client) -> None:
    server.set_faults([Fault("status_503", first=1, methods=("GET",))])
    assert [client.get("/ws/patients/").status_code for _ in range(2)] == [503, 200]
    server.set_faults([Fault("status_503", first=1, methods=("GET",))])
    assert [client.get("/ws/patients/").status_code for _ in range(2)] == [503, 200]
    server.set_faults([])
    assert client.get("/ws/patients/").status_code == 200


def test_counters_are_a_snapshot_and_readable_over_http(server: CWSServer, client: httpx.Client) -> None:
    client.post("/ws/patients/", json=PATIENT)
    client.get("/ws/patients/FakeExternalID")
    httpx.get(server.url + "/ws/patients/")  # unsigned: refused
    snapshot = server.counters()
    snapshot.creates["FakeExternalID"] = 99
    expected = ServerCounters(
        requests=3,
        creates={"FakeExternalID": 1},
        create_attempts={"FakeExternalID": 1},
        lookups=2,
        rejected_signatures=1,
        faults_applied={},
    )
    expected.booking_creates = {"FakeExternalID": {"EthanBooking14": 1}}
    assert server.counters() == expected
    assert fetch_counters(server.url) == expected
    raw = httpx.get(server.url + COUNTERS_PATH)
    assert raw.status_code == 200 and raw.json() == expected.to_dict()


@pytest.mark.parametrize(
    ("spec", "fault"),
    [
        ("status_503:first=2", Fault("status_503", first=2)),
        ("status_429:rate=0.1,retry_after=2", Fault("status_429", rate=0.1, retry_after="2")),
        ("status_429:retry_after=none", Fault("status_429", retry_after=None)),
        ("latency:latency_ms=100,methods=GET+POST", Fault("latency", latency_ms=100, methods=("GET", "POST"))),
        ("signature_sha1", Fault("signature_sha1")),
    ],
)
def test_fault_spec_parses(spec: str, fault: Fault) -> None:
    assert Fault.parse(spec) == fault


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("status_502", "unknown fault kind 'status_502'"),
        ("status_503:rate=2", "rate must be between 0 and 1"),
        ("status_503:first=x", "invalid literal"),
        ("status_503:retry_after=2", "retry_after applies to status_429 only"),
        ("status_503:often", "expected key=value"),
        ("latency:methods=get;post", "methods must be upper-case"),
    ],
)
def test_bad_fault_spec_is_one_line_naming_it(spec: str, says: str) -> None:
    with pytest.raises(UserInputError) as caught:
        Fault.parse(spec)
    message = str(caught.value)
    assert message.startswith(f"--fault {spec!r}: ") and says in message and "\n" not in message


def test_repr_does_not_show_the_key(server: CWSServer) -> None:
    assert repr(server) == f"CWSServer(api='v2', access='coremr', url={server.url!r})"


def _simulate(*args: str) -> subprocess.Popen[str]:
    # Run the same code this test imported, whatever the current directory.
    env = {**os.environ, "PYTHONPATH": str(Path(pipeline.__file__).parents[1])}
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "simulate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_simulate_cli_serves_signed_requests_and_stops_cleanly_on_a_signal(
    server_keys: KeyPair,
    client_keys: KeyPair,
    client_keyring_dir: Path,
    server_keyring_dir: Path,
    stop_signal: signal.Signals,
) -> None:
    proc = _simulate(
        "--port", "0", "--server-key", str(server_keys.private), "--client-keys", str(client_keyring_dir),
        "--fault", "status_503:first=1",
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("CWS simulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1].strip()
        auth = CWSAuth(client_keys.key, CLIENT_ACCESS, Keyring(server_keyring_dir))
        with httpx.Client(base_url=url, auth=auth, timeout=30) as c:
            assert c.post("/ws/patients/", json=PATIENT).status_code == 503
            created = c.post("/ws/patients/", json=PATIENT)
        assert created.status_code == 201 and verification_of(created).ok
        assert fetch_counters(url).creates == {"FakeExternalID": 1}
    finally:
        proc.send_signal(stop_signal)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert out == "" and "Traceback" not in err


def test_simulate_cli_refuses_a_missing_key_file_with_one_line(tmp_path: Path, client_keyring_dir: Path) -> None:
    r = CliRunner().invoke(
        cli, ["simulate", "--server-key", str(tmp_path / "nope"), "--client-keys", str(client_keyring_dir)]
    )
    assert r.exit_code == 2 and r.output == f"Error: {tmp_path / 'nope'}: no such private key file\n"


def test_simulate_cli_refuses_a_public_key_as_the_server_key(server_keys: KeyPair, client_keyring_dir: Path) -> None:
    r = CliRunner().invoke(
        cli, ["simulate", "--server-key", str(server_keys.public), "--client-keys", str(client_keyring_dir)]
    )
    assert r.exit_code == 2 and "this is a public key" in r.output and len(r.output.splitlines()) == 1


def test_simulate_cli_refuses_an_empty_client_keyring(server_keys: KeyPair, tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["simulate", "--server-key", str(server_keys.private), "--client-keys", str(tmp_path)])
    assert r.exit_code == 2 and "no <USERNAME>.pem public keys" in r.output


def test_simulate_cli_refuses_a_non_loopback_host_without_public(
    server_keys: KeyPair, client_keyring_dir: Path
) -> None:
    args = ["simulate", "--server-key", str(server_keys.private), "--client-keys", str(client_keyring_dir)]
    r = CliRunner().invoke(cli, [*args, "--host", "0.0.0.0"])  # noqa: S104  # refused, never bound
    assert r.exit_code == 2 and r.output == "Error: --host 0.0.0.0: not a loopback address; this is a test server," \
        " add --public to allow it\n"  # fmt: skip


def test_simulate_cli_refuses_a_bad_fault_spec(server_keys: KeyPair, client_keyring_dir: Path) -> None:
    args = ["simulate", "--server-key", str(server_keys.private), "--client-keys", str(client_keyring_dir)]
    r = CliRunner().invoke(cli, [*args, "--fault", "status_999"])
    assert r.exit_code == 2 and r.output.startswith("Error: --fault 'status_999': unknown fault kind")


def test_simulate_cli_reports_a_port_in_use(server: CWSServer, server_keys: KeyPair, client_keyring_dir: Path) -> None:
    args = ["simulate", "--server-key", str(server_keys.private), "--client-keys", str(client_keyring_dir)]
    r = CliRunner().invoke(cli, [*args, "--port", str(server.port)])
    assert r.exit_code == 2 and "cannot listen there" in r.output and len(r.output.splitlines()) == 1
