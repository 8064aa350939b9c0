"""The local server plays a site that differs from our guesses: bookings routes there or not, another "exists" status.

CorEMR documents the bookings routes only on an older v2 page (assumption "bookings-routes") and gives no
status for a duplicate create (assumption "exists-status"): ServerOptions makes each a setting, and a 404
says in its body whether the route, the patient or the booking is missing (assumption "not-found-body").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from pipeline import CWSAuth, Keyring
from pipeline.cli import cli
from pipeline.protocol import ApiVersion
from pipeline.simulator import CWSServer, ServerOptions

from ..sites import CLIENT_ACCESS, KeyPair
from .examples import V1_BODY, WALKTHROUGH, compact, example_body

NO_ROUTE = {"error": "no such route", "fields": {}}
NO_PATIENT = {"error": "no such patient", "fields": {}}
NO_BOOKING = {"error": "no such booking", "fields": {}}


class Site:
    """A running local server told how to play, and a client signing with the version's first algorithm."""

    def __init__(self, server: CWSServer, client: httpx.Client) -> None:
        self.server, self.client = server, client
        self.collection = server.api.routes.collection

    def post(self, path: str, body: object) -> httpx.Response:
        return self.client.post(self.collection + path, content=compact(body))

    def get(self, path: str) -> httpx.Response:
        return self.client.get(self.collection + path)


Play = Callable[..., Site]  # play(api, options=None): a started site


@pytest.fixture
def play(
    server_keys: KeyPair, client_keyring_dir: Path, client_keys: KeyPair, server_keyring_dir: Path
) -> Iterator[Play]:
    started: list[tuple[CWSServer, httpx.Client]] = []

    def start(api: ApiVersion, options: ServerOptions | None = None) -> Site:
        server = CWSServer(server_keys.key, Keyring(client_keyring_dir), api=api, options=options).start()
        algorithm = server.api.algorithms[0]
        auth = CWSAuth(client_keys.key, CLIENT_ACCESS, Keyring(server_keyring_dir), algorithm)
        client = httpx.Client(base_url=server.url, auth=auth, timeout=30)
        started.append((server, client))
        return Site(server, client)

    yield start
    for server, client in started:
        client.close()
        server.stop()


@pytest.mark.parametrize("api", ["v1", "v2", "v3"])
def test_each_version_has_the_bookings_routes_its_docs_list_by_default(play: Play, api: ApiVersion) -> None:
    """v2 has bookings routes by default (an older v2 page lists them); v3's page lists none, nor v1's."""
    site = play(api)
    assert site.server.api.routes.has_bookings is (api == "v2")
    assert site.post("", example_body(api)).status_code == 201
    assert site.get("FakeExternalID/bookings/").status_code == (200 if api == "v2" else 404)


@pytest.mark.parametrize("api", ["v2", "v3"])
def test_without_bookings_routes_every_bookings_path_is_no_such_route(play: Play, api: ApiVersion) -> None:
    site = play(api, ServerOptions(bookings_routes=False))
    assert site.post("", example_body(api)).status_code == 201
    booking = {"booking_no": "B-2", "booking_date": "2024-01-02 03:04:05", "facility": 10000}
    for answer in (site.get("FakeExternalID/bookings/"), site.post("FakeExternalID/bookings/", booking),
                   site.get("FakeExternalID/bookings/EthanBooking14"),
                   site.post("FakeExternalID/bookings/EthanBooking14", booking)):  # fmt: skip
        assert (answer.status_code, answer.json()) == (404, NO_ROUTE)
    read = site.get("FakeExternalID")  # the patient routes are all there
    assert read.status_code == 200 and read.json()["external_id"] == "FakeExternalID"
    assert list(site.server.bookings()["FakeExternalID"]) == ["EthanBooking14"]  # the create's own booking
    assert site.server.counters().booking_creates == {"FakeExternalID": {"EthanBooking14": 1}}


def test_v1_can_be_given_bookings_routes(play: Play) -> None:
    site = play("v1", ServerOptions(bookings_routes=True))
    assert site.post("", V1_BODY).status_code == 201
    booking = {"booking_number": "B-2", "booking_date": "2024-01-02 03:04:05", "facility": "ANNEX"}
    assert site.post("FakeExternalID/bookings/", booking).status_code == 201
    listed = site.get("FakeExternalID/bookings/")
    assert listed.status_code == 200 and [b["booking_number"] for b in listed.json()] == ["EthanBooking14", "B-2"]


@pytest.mark.parametrize("status", [400, 422])
def test_a_second_create_answers_the_status_the_site_is_told(play: Play, status: int) -> None:
    site = play("v2", ServerOptions(exists_status=status))
    assert site.post("", WALKTHROUGH).status_code == 201
    again = site.post("", WALKTHROUGH)
    assert again.status_code == status and again.json()["fields"] == {"external_id": "already exists"}
    booking = {"booking_no": "EthanBooking14", "booking_date": "2024-01-02 03:04:05", "facility": 10000}
    refused = site.post("FakeExternalID/bookings/", booking)
    assert refused.status_code == status and refused.json()["fields"] == {"booking_no": "already exists"}
    counters = site.server.counters()
    assert counters.creates == {"FakeExternalID": 1} and counters.refused_creates == {"FakeExternalID": 1}
    assert counters.refused_booking_creates == {"FakeExternalID": {"EthanBooking14": 1}}


def test_the_default_exists_status_is_409(play: Play) -> None:
    site = play("v3")
    assert site.post("", example_body("v3")).status_code == 201
    assert site.post("", example_body("v3")).status_code == 409


@pytest.mark.parametrize("api", ["v1", "v2", "v3"])
def test_a_missing_route_a_missing_patient_and_a_missing_booking_differ_in_their_404(
    play: Play, api: ApiVersion
) -> None:
    site = play(api, ServerOptions(bookings_routes=True))
    assert site.post("", example_body(api)).status_code == 201
    answers = {
        "route": site.client.get("/ws/no-such-collection/X"),
        "route below a patient": site.get("FakeExternalID/charges/"),
        "patient": site.get("Nobody"),
        "patient's bookings": site.get("Nobody/bookings/"),
        "booking": site.get("FakeExternalID/bookings/NoSuchBooking"),
    }
    assert {what: (a.status_code, a.json()) for what, a in answers.items()} == {
        "route": (404, NO_ROUTE), "route below a patient": (404, NO_ROUTE), "patient": (404, NO_PATIENT),
        "patient's bookings": (404, NO_PATIENT), "booking": (404, NO_BOOKING),
    }  # fmt: skip


def test_an_exists_status_that_is_not_a_refusal_is_refused() -> None:
    with pytest.raises(ValueError, match="exists_status 201: a refusal is a 4xx status"):
        ServerOptions(exists_status=201)


@pytest.mark.parametrize(
    ("option", "says"),
    [(["--exists-status", "201"], "--exists-status"), (["--bookings-routes", "maybe"], "--bookings-routes")],
)
def test_simulate_refuses_a_bad_site_option_in_one_line(tmp_path: Path, option: list[str], says: str) -> None:
    args = ["simulate", "--server-key", str(tmp_path / "k"), "--client-keys", str(tmp_path), *option]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and says in result.stderr and "Traceback" not in result.output
