"""The local CWS server follows CorEMR's documents per API version: routes, checks, GET signatures, answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline import AuthorizationHeader, CWSAuth, Keyring, verification_of
from pipeline.protocol import API_PROFILES
from pipeline.simulator import CWSServer

from ..sites import CLIENT_ACCESS, KeyPair
from .examples import V1_BODY, WALKTHROUGH, compact, example_body


def start(server_keys: KeyPair, client_keyring_dir: Path, **options: Any) -> CWSServer:
    return CWSServer(server_keys.key, Keyring(client_keyring_dir), **options).start()


@pytest.fixture(params=["v1", "v2", "v3"])
def versioned(request: pytest.FixtureRequest, server_keys: KeyPair, client_keyring_dir: Path) -> Iterator[CWSServer]:
    server = start(server_keys, client_keyring_dir, api=request.param)
    try:
        yield server
    finally:
        server.stop()


def client_for(
    server: CWSServer, client_keys: KeyPair, server_keyring_dir: Path, algorithm: str | None = None
) -> httpx.Client:
    algorithm = algorithm or server.api.algorithms[0]
    auth = CWSAuth(client_keys.key, CLIENT_ACCESS, Keyring(server_keyring_dir), algorithm)  # type: ignore[arg-type]
    return httpx.Client(base_url=server.url, auth=auth, timeout=30)


def test_each_version_takes_its_example_body_at_its_collection_and_refuses_the_others(
    versioned: CWSServer, client_keys: KeyPair, server_keyring_dir: Path
) -> None:
    api = versioned.api.version
    collection = versioned.api.routes.collection
    with client_for(versioned, client_keys, server_keyring_dir) as c:
        created = c.post(collection, content=compact(example_body(api)))
        assert created.status_code == 201 and verification_of(created).ok, created.text
        other = "/ws/v3/patients/" if api != "v3" else "/ws/patients/"
        assert c.get(other).status_code == 404
        wrong_dialect = example_body("v2" if api == "v1" else "v1") | {"external_id": "Other"}
        refused = c.post(collection, content=compact(wrong_dialect))
    assert refused.status_code == 400 and verification_of(refused).ok
    assert "sex" in refused.json()["fields"]  # "Male" is v1's word, "M" v2's
    assert list(versioned.patients()) == ["FakeExternalID"]


def test_v1_updates_by_put_and_has_no_bookings_routes(
    server_keys: KeyPair, client_keyring_dir: Path, client_keys: KeyPair, server_keyring_dir: Path
) -> None:
    server = start(server_keys, client_keyring_dir, api="v1")
    try:
        with client_for(server, client_keys, server_keyring_dir) as c:
            assert c.post("/ws/patients/", content=compact(V1_BODY)).status_code == 201
            posted = c.post("/ws/patients/FakeExternalID", content=compact({"lname": "Changed"}))
            assert posted.status_code == 405 and posted.headers["allow"] == "GET, PUT"
            put = c.put("/ws/patients/FakeExternalID", content=compact({"lname": "Changed", "booking_number": "X"}))
            assert put.status_code == 200 and put.json()["lname"] == "Changed"
            assert c.get("/ws/patients/FakeExternalID/bookings/").status_code == 404
        assert server.counters().updates == {"FakeExternalID": 1}
        assert server.bookings() == {
            "FakeExternalID": {"EthanBooking14": {"facility": "MAIN", "booking_number": "EthanBooking14",
                                                  "booking_date": "2023-04-07 10:00:00.000"}}
        }  # fmt: skip
    finally:
        server.stop()


def test_v1_refuses_sha256_signatures_and_answers_in_sha1(
    server_keys: KeyPair, client_keyring_dir: Path, client_keys: KeyPair, server_keyring_dir: Path
) -> None:
    server = start(server_keys, client_keyring_dir, api="v1")
    try:
        with client_for(server, client_keys, server_keyring_dir, "CWS-SHA256") as c:
            refused = c.post("/ws/patients/", content=compact(V1_BODY))
        assert refused.status_code == 401 and verification_of(refused).ok
        assert refused.json()["error"] == "unsupported algorithm 'CWS-SHA256': use CWS-SHA1"
        assert server.patients() == {}
    finally:
        server.stop()


def test_v2_requires_agency_and_v3_does_not(
    server_keys: KeyPair, client_keyring_dir: Path, client_keys: KeyPair, server_keyring_dir: Path
) -> None:
    without_agency = {k: v for k, v in WALKTHROUGH.items() if k != "agency"}
    for api, status in (("v2", 400), ("v3", 201)):
        server = start(server_keys, client_keyring_dir, api=api)
        try:
            with client_for(server, client_keys, server_keyring_dir) as c:
                answer = c.post(server.api.routes.collection, content=compact(without_agency))
            assert answer.status_code == status, (api, answer.text)
        finally:
            server.stop()


def test_a_get_is_signed_over_the_empty_string_whatever_it_carries(versioned: CWSServer, client_keys: KeyPair) -> None:
    url = versioned.url + versioned.api.routes.collection
    algorithm = versioned.api.algorithms[0]
    carried = compact(WALKTHROUGH)
    over_empty = AuthorizationHeader.for_body(b"", client_keys.key, CLIENT_ACCESS, algorithm)
    over_body = AuthorizationHeader.for_body(carried, client_keys.key, CLIENT_ACCESS, algorithm)
    assert httpx.get(url, headers={"Authorization": str(over_empty)}).status_code == 200
    with_body = httpx.request("GET", url, content=carried, headers={"Authorization": str(over_empty)})
    assert with_body.status_code == 200  # what CorEMR's security page says: "If GET verb, use empty string"
    signed_body = httpx.request("GET", url, content=carried, headers={"Authorization": str(over_body)})
    assert signed_body.status_code == 401
    assert signed_body.json()["error"] == (
        f"bad signature: it does not match the empty string (a GET is signed over the empty string) for"
        f" Access={CLIENT_ACCESS}"
    )


@pytest.mark.parametrize(
    ("setting", "request_algorithm", "answer_algorithm"),
    [
        ("request", "CWS-SHA1", "CWS-SHA1"),
        ("request", "CWS-SHA256", "CWS-SHA256"),
        ("CWS-SHA256", "CWS-SHA1", "CWS-SHA256"),
        ("CWS-SHA1", "CWS-SHA256", "CWS-SHA1"),
    ],
)
def test_answers_are_signed_with_the_requests_algorithm_unless_set(
    server_keys: KeyPair,
    client_keyring_dir: Path,
    client_keys: KeyPair,
    server_keyring_dir: Path,
    setting: str,
    request_algorithm: str,
    answer_algorithm: str,
) -> None:
    server = start(server_keys, client_keyring_dir, answer_algorithm=setting)
    try:
        with client_for(server, client_keys, server_keyring_dir, request_algorithm) as c:
            answers = [c.post("/ws/patients/", content=compact(WALKTHROUGH)), c.get("/ws/patients/FakeExternalID"),
                       c.get("/ws/patients/nobody")]  # fmt: skip
        assert [a.status_code for a in answers] == [201, 200, 404]
        assert {(verification_of(a).status, verification_of(a).algorithm) for a in answers} == {
            ("ok", answer_algorithm)
        }
    finally:
        server.stop()


def test_an_unsigned_request_is_answered_with_the_versions_algorithm(
    server_keys: KeyPair, client_keyring_dir: Path
) -> None:
    server = start(server_keys, client_keyring_dir, api="v1")
    try:
        refused = httpx.get(server.url + "/ws/patients/")
        assert refused.status_code == 401
        assert refused.headers["authorization"].startswith("CWS-SHA1 Access=coremr, Signature=")
    finally:
        server.stop()


def test_unknown_fields_are_accepted_and_not_answered(
    server_keys: KeyPair, client_keyring_dir: Path, client_keys: KeyPair, server_keyring_dir: Path
) -> None:
    server = start(server_keys, client_keyring_dir)
    try:
        with client_for(server, client_keys, server_keyring_dir) as c:
            created = c.post("/ws/patients/", content=compact({**WALKTHROUGH, "favourite_colour": "blue"}))
        assert created.status_code == 201 and "favourite_colour" not in created.json()
    finally:
        server.stop()


def test_every_version_documents_its_routes() -> None:
    tables = {api: {(m, p) for _, m, p in API_PROFILES[api].routes.table()} for api in ("v1", "v2", "v3")}
    assert ("PUT", "/ws/patients/{external_id}") in tables["v1"]
    assert ("POST", "/ws/patients/{external_id}/bookings/{booking}") in tables["v2"]
    assert ("GET", "/ws/v3/patients/{external_id}/bookings/") in tables["v3"]
    assert not any("bookings" in p for _, p in tables["v1"])
