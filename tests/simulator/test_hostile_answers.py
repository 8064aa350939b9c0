"""The local server told to answer like a hostile site: signed answers that store nothing and are not bound to
their requests (a replay, another patient, an error with 201, a redirect, a lookup naming another patient)."""

from __future__ import annotations

import httpx
import pytest

from pipeline import UserInputError, verification_of
from pipeline.simulator import CWSServer, Fault

from .test_server import client, patient, server  # noqa: F401  # fixtures


def test_a_replayed_2xx_is_the_same_bytes_and_signature_and_stores_nothing(
    server: CWSServer,  # noqa: F811
    client: httpx.Client,  # noqa: F811
) -> None:
    server.set_faults([Fault("replay_2xx")])
    first = client.post("/ws/patients/", json=patient("P1"))  # nothing to replay yet: served
    second = client.post("/ws/patients/", json=patient("P2"))
    assert first.status_code == second.status_code == 201 and verification_of(second).ok
    assert second.content == first.content and second.headers["Authorization"] == first.headers["Authorization"]
    assert set(server.patients()) == {"P1"}


@pytest.mark.parametrize(
    ("kind", "status", "names"),
    [("created_other", 201, "OTHER-P1"), ("created_error", 201, None), ("redirect_302", 302, None)],
)
def test_a_hostile_answer_to_a_create_is_signed_and_stores_nothing(
    server: CWSServer,  # noqa: F811
    client: httpx.Client,  # noqa: F811
    kind: str,
    status: int,
    names: str | None,
) -> None:
    server.set_faults([Fault.parse(kind)])
    answer = client.post("/ws/patients/", json=patient("P1"))
    assert answer.status_code == status and verification_of(answer).ok
    assert answer.json().get("external_id") == names
    assert ("error" in answer.json()) == (kind != "created_other")
    assert server.patients() == {} and not server.counters().creates


def test_a_hostile_lookup_names_another_patient_with_the_asked_booking_number(
    server: CWSServer,  # noqa: F811
    client: httpx.Client,  # noqa: F811
) -> None:
    server.set_faults([Fault.parse("lookup_other:methods=GET")])
    answer = client.get("/ws/patients/P1/bookings/B1")
    assert answer.status_code == 200 and verification_of(answer).ok
    assert answer.json() == {"booking_no": "B1", "external_id": "OTHER-P1"}


def test_hostile_kinds_take_no_retry_after() -> None:
    with pytest.raises(UserInputError, match="retry_after applies to status_429 only"):
        Fault.parse("replay_2xx:retry_after=1")
