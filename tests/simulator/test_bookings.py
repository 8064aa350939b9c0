"""The local CWS server's bookings routes (v2, v3): list, read, create, update, signed, counted, with faults."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline import CWSAuth, Keyring, verification_of
from pipeline.simulator import CWSServer, Fault, ServerOptions

from ..sites import CLIENT_ACCESS, KeyPair
from .examples import WALKTHROUGH, compact


@pytest.fixture(params=["v2", "v3"])
def server(request: pytest.FixtureRequest, server_keys: KeyPair, client_keyring_dir: Path) -> Iterator[CWSServer]:
    # v3's page documents no bookings routes: the server plays them when told (a site that has them)
    with CWSServer(server_keys.key, Keyring(client_keyring_dir), api=request.param,
                   options=ServerOptions(bookings_routes=True)) as s:  # fmt: skip
        yield s


@pytest.fixture
def client(server: CWSServer, client_keys: KeyPair, server_keyring_dir: Path) -> Iterator[httpx.Client]:
    base = server.url + server.api.routes.collection.rstrip("/")
    with httpx.Client(base_url=base, auth=CWSAuth(client_keys.key, CLIENT_ACCESS, Keyring(server_keyring_dir))) as c:
        assert c.post("/", content=compact(WALKTHROUGH)).status_code == 201
        yield c


def booking(number: str, **changes: Any) -> bytes:
    return compact({"booking_no": number, "booking_date": "2024-01-02 03:04:05.6", "facility": 10001, **changes})


def test_a_patient_create_adds_its_first_booking(client: httpx.Client) -> None:
    listed = client.get("/FakeExternalID/bookings/")
    assert listed.status_code == 200 and verification_of(listed).ok
    assert listed.json() == [
        {"facility": "10000", "booking_no": "EthanBooking14", "booking_date": "2023-04-07 10:00:00.000"}
    ]
    read = client.get("/FakeExternalID/bookings/EthanBooking14")
    assert read.status_code == 200 and read.json() == listed.json()[0]


def test_a_booking_is_created_once_and_a_second_create_is_409(server: CWSServer, client: httpx.Client) -> None:
    created = client.post("/FakeExternalID/bookings/", content=booking("B-2"))
    assert created.status_code == 201 and verification_of(created).ok
    assert created.json() == {"facility": "10001", "booking_no": "B-2", "booking_date": "2024-01-02 03:04:05.600"}
    again = client.post("/FakeExternalID/bookings/", content=booking("B-2", facility=10002))
    assert again.status_code == 409 and again.json()["fields"] == {"booking_no": "already exists"}
    counters = server.counters()
    assert counters.booking_creates == {"FakeExternalID": {"EthanBooking14": 1, "B-2": 1}}
    assert counters.booking_create_attempts == {"FakeExternalID": {"B-2": 2}}
    assert [b["booking_no"] for b in client.get("/FakeExternalID/bookings").json()] == ["EthanBooking14", "B-2"]


def test_a_booking_update_changes_it_but_never_its_number(server: CWSServer, client: httpx.Client) -> None:
    updated = client.post("/FakeExternalID/bookings/EthanBooking14", content=compact({"facility": 10002}))
    assert updated.status_code == 200 and updated.json()["facility"] == "10002"
    renamed = client.post("/FakeExternalID/bookings/EthanBooking14", content=compact({"booking_no": "Other"}))
    assert renamed.status_code == 400 and set(renamed.json()["fields"]) == {"booking_no"}
    assert list(server.bookings()["FakeExternalID"]) == ["EthanBooking14"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/nobody/bookings/", None, 404),
        ("POST", "/nobody/bookings/", booking("B-9"), 404),
        ("GET", "/FakeExternalID/bookings/none", None, 404),
        ("POST", "/FakeExternalID/bookings/none", compact({"facility": 1}), 404),
        ("POST", "/FakeExternalID/bookings/", compact({"booking_no": "B-3"}), 400),  # no booking_date
        ("POST", "/FakeExternalID/bookings/", booking("B-3", booking_date="03/04/2024"), 400),
        ("POST", "/FakeExternalID/bookings/", booking("B-3", facility="MAIN"), 400),
        ("DELETE", "/FakeExternalID/bookings/", None, 405),
        ("GET", "/FakeExternalID/charges/", None, 404),
    ],
)
def test_bookings_refusals_are_signed_and_store_nothing(
    server: CWSServer, client: httpx.Client, method: str, path: str, body: bytes | None, status: int
) -> None:
    answer = client.request(method, path, content=body)
    assert answer.status_code == status and verification_of(answer).ok
    assert set(answer.json()) == {"error", "fields"}
    assert server.counters().booking_creates == {"FakeExternalID": {"EthanBooking14": 1}}


def test_faults_apply_to_booking_creates_and_a_dropped_one_is_stored_once(
    server: CWSServer, client: httpx.Client
) -> None:
    server.set_faults([Fault("status_503", first=1), Fault("drop_after_processing", first=2)])
    assert client.post("/FakeExternalID/bookings/", content=booking("B-2")).status_code == 503
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.post("/FakeExternalID/bookings/", content=booking("B-2"))
    assert client.post("/FakeExternalID/bookings/", content=booking("B-2")).status_code == 409  # it did land
    counters = server.counters()
    assert counters.booking_creates["FakeExternalID"]["B-2"] == 1
    assert counters.booking_create_attempts == {"FakeExternalID": {"B-2": 3}}
    assert counters.faults_applied == {"status_503": 1, "drop_after_processing": 1}


def test_a_patient_update_is_counted_and_faults_apply_to_it(server: CWSServer, client: httpx.Client) -> None:
    server.set_faults([Fault("status_429", first=1, retry_after="1")])
    assert client.post("/FakeExternalID", content=compact({"weight": 180})).status_code == 429
    updated = client.post("/FakeExternalID", content=compact({"weight": 180}))
    assert updated.status_code == 200 and updated.json()["weight"] == 180
    assert server.counters().updates == {"FakeExternalID": 1}
    assert json.loads(client.get("/FakeExternalID").content)["weight"] == 180


def test_creates_refused_as_existing_are_counted_so_a_blind_resend_shows(
    server: CWSServer, client: httpx.Client
) -> None:
    assert client.post("/", content=compact(WALKTHROUGH)).status_code == 409  # the patient again
    assert client.post("/FakeExternalID/bookings/", content=booking("EthanBooking14")).status_code == 409
    counters = server.counters()
    assert counters.refused_creates == {"FakeExternalID": 1}
    assert counters.refused_booking_creates == {"FakeExternalID": {"EthanBooking14": 1}}
    assert counters.creates == {"FakeExternalID": 1}
    assert counters.resent_creates == {"FakeExternalID": 1}  # the very bytes that created it: a blind resend
    assert counters.resent_booking_creates == {}  # the booking was stored by the patient's create, not by these
    assert client.post("/", content=compact({**WALKTHROUGH, "fname": "Other"})).status_code == 409
    assert server.counters().resent_creates == {"FakeExternalID": 1}  # another body: refused, not a resend
    assert client.post("/FakeExternalID/bookings/", content=booking("B-9")).status_code == 201
    assert client.post("/FakeExternalID/bookings/", content=booking("B-9")).status_code == 409
    assert server.counters().resent_booking_creates == {"FakeExternalID": {"B-9": 1}}


def test_a_booking_update_is_counted(server: CWSServer, client: httpx.Client) -> None:
    assert client.post("/FakeExternalID/bookings/EthanBooking14", content=booking("EthanBooking14")).status_code == 200
    assert server.counters().booking_updates == {"FakeExternalID": {"EthanBooking14": 1}}


def test_a_patient_entered_by_hand_is_held_as_if_created_with_its_first_booking(
    server: CWSServer, client: httpx.Client
) -> None:
    server.enter_by_hand({**WALKTHROUGH, "external_id": "BYHAND1", "booking_no": "H-1"})
    assert client.get("/BYHAND1/bookings/H-1").status_code == 200
    counters = server.counters()
    assert counters.creates["BYHAND1"] == 1 and "BYHAND1" not in counters.create_attempts
    with pytest.raises(ValueError, match="HTTP 409"):
        server.enter_by_hand({**WALKTHROUGH, "external_id": "BYHAND1"})
