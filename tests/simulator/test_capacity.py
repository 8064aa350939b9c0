"""The local server's capacity model: N served at once, the rest wait in line, beyond the queue 429; its report."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from pipeline import CWSAuth, Keyring, verification_of
from pipeline.cli import cli
from pipeline.simulator import Capacity, CapacityReport, CWSServer, ServerCounters, fetch_counters

from ..sites import CLIENT_ACCESS, KeyPair
from .test_server import PATIENT, _simulate, patient

SERVICE_MS = 1000.0  # long enough that three requests sent together overlap in the server, even on a busy machine


@pytest.fixture
def busy_server(server_keys: KeyPair, client_keyring_dir: Path) -> Iterator[CWSServer]:
    """A server that serves one request at a time, lets one more wait, and turns the rest away."""
    capacity = Capacity(1, SERVICE_MS, queue=1, spread=0.0)
    with CWSServer(server_keys.key, Keyring(client_keyring_dir), capacity=capacity) as s:
        yield s


def send_together(server: CWSServer, auth: CWSAuth, bodies: list[dict[str, object]]) -> list[httpx.Response]:
    """POST every body at once, each on its own connection; the answers in the order they were given."""
    answers: list[httpx.Response | None] = [None] * len(bodies)
    start = threading.Barrier(len(bodies))

    def post(i: int) -> None:
        with httpx.Client(base_url=server.url, auth=auth, timeout=30) as client:
            start.wait()
            answers[i] = client.post("/ws/patients/", json=bodies[i])

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(a is not None for a in answers)
    return [a for a in answers if a is not None]


def test_beyond_capacity_requests_wait_in_line_and_beyond_the_queue_get_a_signed_429(
    busy_server: CWSServer, client_keys: KeyPair, server_keyring_dir: Path
) -> None:
    auth = CWSAuth(client_keys.key, CLIENT_ACCESS, Keyring(server_keyring_dir))
    answers = send_together(busy_server, auth, [patient(f"P{i}") for i in range(3)])
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201, 201, 429]  # one served, one waited its turn, one turned away
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.headers["Retry-After"] == "1" and verification_of(refused).ok
    assert "1 being served and 1 waiting" in refused.json()["error"]
    counters = busy_server.counters()
    assert len(counters.creates) == 2 and counters.requests == 3
    report = counters.capacity
    assert report is not None and (report.served, report.throttled) == (2, 1)
    # Served one after the other, and the second waited for the first (sleeps never end early).
    assert report.busy_seconds >= 2 * SERVICE_MS / 1000
    half = report.busy_seconds / 2  # the second answer left in the second half; the first, about halfway
    assert 1 / half - 0.01 <= report.second_half_per_second <= 2 / half + 0.01
    assert report.p50_ms >= SERVICE_MS and report.p95_ms > SERVICE_MS


def test_the_capacity_report_travels_through_the_counters_route(
    busy_server: CWSServer, client_keys: KeyPair, server_keyring_dir: Path
) -> None:
    auth = CWSAuth(client_keys.key, CLIENT_ACCESS, Keyring(server_keyring_dir))
    with httpx.Client(base_url=busy_server.url, auth=auth, timeout=30) as client:
        assert client.post("/ws/patients/", json=PATIENT).status_code == 201
    fetched = fetch_counters(busy_server.url)
    assert fetched.capacity == busy_server.counters().capacity
    assert fetched.capacity is not None and fetched.capacity.served == 1 and fetched.capacity.queue == 1
    plain = ServerCounters.from_dict(json.loads(json.dumps(ServerCounters().to_dict())))
    assert plain.capacity is None  # a server without the model reports none


def test_a_server_without_a_capacity_model_never_throttles(
    server_keys: KeyPair, client_keyring_dir: Path, client_keys: KeyPair, server_keyring_dir: Path
) -> None:
    auth = CWSAuth(client_keys.key, CLIENT_ACCESS, Keyring(server_keyring_dir))
    with CWSServer(server_keys.key, Keyring(client_keyring_dir), latency_ms=100) as server:
        answers = send_together(server, auth, [patient(f"P{i}") for i in range(6)])
    assert [a.status_code for a in answers] == [201] * 6


@pytest.mark.parametrize(
    ("capacity", "why"),
    [
        (dict(capacity=0, service_ms=1.0), "capacity must be 1 or more"),
        (dict(capacity=1, service_ms=-1.0), "service_ms must be 0 or more"),
        (dict(capacity=1, service_ms=1.0, queue=-1), "queue must be 0 or more"),
    ],
)
def test_a_capacity_model_that_cannot_be_is_refused_saying_why(capacity: dict[str, float], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        Capacity(**capacity)  # type: ignore[arg-type]


def test_the_default_queue_is_twice_the_capacity_and_the_report_line_says_what_it_saw() -> None:
    assert Capacity(16, 50.0).waiting_room == 32 and Capacity(16, 50.0).per_second == 320.0
    report = CapacityReport(16, 50.0, 32, 900, 12, 51.0, 88.5, 3.0, 310.0)
    assert report.line() == (
        "capacity 16 at once, 50 ms each, queue 32: served 900, throttled 12 (429);"
        " time in the server p50 51.0 ms, p95 88.5 ms"
    )


def test_simulate_cli_serves_with_a_capacity_model_and_prints_what_it_saw_when_stopped(
    server_keys: KeyPair, client_keys: KeyPair, client_keyring_dir: Path, server_keyring_dir: Path
) -> None:
    proc = _simulate(
        "--port", "0", "--server-key", str(server_keys.private), "--client-keys", str(client_keyring_dir),
        "--capacity", "2", "--service-ms", "10", "--queue", "3",
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().rsplit(" ", 1)[1].strip()
        auth = CWSAuth(client_keys.key, CLIENT_ACCESS, Keyring(server_keyring_dir))
        with httpx.Client(base_url=url, auth=auth, timeout=30) as client:
            assert client.post("/ws/patients/", json=PATIENT).status_code == 201
        report = fetch_counters(url).capacity
        assert report is not None and (report.capacity, report.service_ms, report.queue) == (2, 10.0, 3)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert err.startswith("CWS simulator stopped: capacity 2 at once, 10 ms each, queue 3: served 1, throttled 0")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--queue", "3"], "--service-ms and --queue belong to the capacity model: add --capacity N"),
        (["--capacity", "4"], "--capacity 4: add --service-ms M"),
    ],
)
def test_simulate_cli_refuses_half_a_capacity_model(
    server_keys: KeyPair, client_keyring_dir: Path, args: list[str], message: str
) -> None:
    base = ["simulate", "--server-key", str(server_keys.private), "--client-keys", str(client_keyring_dir)]
    r = CliRunner().invoke(cli, [*base, *args])
    assert r.exit_code == 2 and r.output.startswith(f"Error: {message}")
