"""`cws-pipeline simulate`: run the local CWS server until Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .._errors import KeyFileError, UserInputError
from ..protocol import (
    API_VERSIONS,
    DEFAULT_API,
    EXISTS_STATUS,
    PASSPHRASE_ENV,
    Keyring,
    is_loopback,
    load_private_key,
    passphrase_from_environment,
)
from ..simulator import ANSWER_ALGORITHMS, Capacity, CWSServer, Fault, ServerOptions
from . import cli

__all__ = ["simulate"]

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = (
    click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0 picks a free port."),
    click.option(
        "--server-key",
        type=click.Path(path_type=Path),
        required=True,
        help="Private key the server signs its responses with (plays CorEMR's key).",
    ),
    click.option(
        "--client-keys",
        type=click.Path(path_type=Path),
        required=True,
        help="Keyring directory of trusted client public keys, one <USERNAME>.pem per Access name.",
    ),
    click.option(
        "--api",
        type=click.Choice(API_VERSIONS),
        default=DEFAULT_API,
        show_default=True,
        help="CorEMR API version to serve: v1 (5.3+), v2 (6.2.0+) or v3 (6.4.0+, under /ws/v3/patients/).",
    ),
    click.option(
        "--answer-algorithm",
        type=click.Choice(ANSWER_ALGORITHMS),
        default="request",
        show_default=True,
        help="Sign answers with the request's algorithm (an assumption: CorEMR does not say) or a fixed one.",
    ),
    click.option(
        "--bookings-routes",
        type=click.Choice(["yes", "no"]),
        help="Serve the bookings routes or not, whatever the version [default: v2 yes (an older v2 page lists them);"
        " v1, v3 no].",
    ),
    click.option(
        "--exists-status",
        type=click.IntRange(400, 499),
        default=EXISTS_STATUS,
        show_default=True,
        help="The status a second create of an external_id (or booking number) is refused with.",
    ),
    click.option("--access", default="coremr", show_default=True, help="Access name in the server's response headers."),
    click.option(
        "--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback unless --public)."
    ),
    click.option("--public", is_flag=True, help="Allow listening on a non-loopback address (it is a test server)."),
    click.option(
        "--seed", type=int, default=0, show_default=True, help="Seed for the fault dice: same seed, same faults."
    ),
    click.option("--latency-ms", type=click.FloatRange(min=0), default=0.0, help="Delay added to every answer."),
    click.option(
        "--capacity",
        type=click.IntRange(min=1),
        help="Requests served at once (with --service-ms); more wait in line, and beyond --queue get 429.",
    ),
    click.option(
        "--service-ms", type=click.FloatRange(min=0), help="Time each request takes to serve, with --capacity."
    ),
    click.option(
        "--queue",
        type=click.IntRange(min=0),
        help="Requests that may wait for --capacity before 429 with Retry-After: 1 [default: 2 x capacity].",
    ),
    click.option(
        "--fault",
        "faults",
        multiple=True,
        metavar="SPEC",
        help="KIND[:key=value,...], e.g. status_503:first=2 or status_429:rate=0.1,retry_after=2. Repeatable.",
    ),
    click.option(
        "--passphrase-env",
        metavar="VAR",
        help=f"Environment variable holding an encrypted server key's passphrase [default: {PASSPHRASE_ENV}, if set].",
    ),
    click.option("--access-log", is_flag=True, help="Print method, path and status of each request to stderr."),
)


def _server_options(command: F) -> F:
    """Every option of `simulate`, in the order --help lists them."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


@cli.command()
@_server_options
def simulate(
    server_key: Path,
    client_keys: Path,
    host: str,
    port: int,
    public: bool,
    faults: tuple[str, ...],
    passphrase_env: str | None,
    capacity: int | None,
    service_ms: float | None,
    queue: int | None,
    bookings_routes: str | None,
    exists_status: int,
    **options: Any,  # api, answer_algorithm, access, seed, latency_ms, access_log: CWSServer's own keywords
) -> None:
    """Run a local CWS server that checks request signatures and signs its answers.

    It serves one CorEMR API version's routes from memory (--api): create, read, list and update
    patients (v1 updates by PUT, v2 and v3 by POST) and, for v2, a patient's bookings (which CorEMR
    documents only on an older v2 page; v3's lists none: --bookings-routes no plays a site without them,
    yes gives them to any version). It checks each body against the version's fields (400 naming each field and
    the documented rule), a GET's signature over the empty string and any other request's over its body
    (401 naming the problem), and signs every answer. A 404 says which is missing: {"error": "no such
    route"}, "no such patient" or "no such booking". Where CorEMR's documents are silent it follows named
    assumptions, each listed with its reason in the README ("The local CWS server"); --exists-status and
    --bookings-routes play a site that differs. It prints one line, `CWS simulator listening on
    http://HOST:PORT`, and serves until Ctrl-C. It is a test server, not CorEMR.

    \b
    Example:
        cws-pipeline simulate --port 8765 --server-key sim/rsa.private \\
            --client-keys sim/clients --api v1 --fault status_503:first=2

    \b
    Fault kinds: status_500, status_503, status_429 (retry_after=SECONDS|none), latency
    (latency_ms=MS), drop_after_processing, signature_corrupt, signature_missing, signature_sha1,
    signature_unknown_signer. Every kind takes rate=0..1, first=N and methods=GET+POST+PUT
    (default POST).

    A capacity model plays a busy CorEMR: `--capacity 16 --service-ms 50` serves 16 requests at once,
    50 ms each; more wait in line (their answers come later), and beyond `--queue` waiting (default 32)
    the server answers 429 with Retry-After: 1. It counts requests served and throttled and the time
    served ones spent in the server (p50, p95): in GET /_simulator/counters, and in one line on
    stderr when it stops.
    """
    if not is_loopback(host) and not public:
        raise UserInputError(f"--host {host}: not a loopback address; this is a test server, add --public to allow it")
    parsed_faults = [Fault.parse(spec) for spec in faults]
    options["capacity"] = _capacity(capacity, service_ms, queue)
    routes = None if bookings_routes is None else bookings_routes == "yes"
    options["options"] = ServerOptions(bookings_routes=routes, exists_status=exists_status)
    key = load_private_key(server_key, passphrase_from_environment(passphrase_env))
    keyring = Keyring(client_keys)
    if not keyring.usernames():
        raise KeyFileError(f"{client_keys}: no <USERNAME>.pem public keys in the client keyring directory")
    _serve_until_stopped(CWSServer(key, keyring, host=host, port=port, faults=parsed_faults, **options))


def _capacity(capacity: int | None, service_ms: float | None, queue: int | None) -> Capacity | None:
    """The capacity model the options ask for, or None; --service-ms and --queue need --capacity."""
    if capacity is None:
        if service_ms is not None or queue is not None:
            raise UserInputError("--service-ms and --queue belong to the capacity model: add --capacity N")
        return None
    if service_ms is None:
        raise UserInputError(f"--capacity {capacity}: add --service-ms M, the time each request takes to serve")
    return Capacity(capacity, service_ms, queue)


def _serve_until_stopped(server: CWSServer) -> None:
    """Start SERVER, print where it listens, and serve until SIGINT or SIGTERM."""
    # Block the stop signals before any server thread starts (threads inherit the mask), then wait
    # for one with sigwait: no Python signal handler runs, so none can interrupt a lock mid-way.
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    try:
        try:
            server.start()
        except OSError as exc:
            where = f"--host {server.host} --port {server.port}"
            raise UserInputError(f"{where}: cannot listen there ({exc.strerror or exc})") from None
        click.echo(f"CWS simulator listening on {server.url}")
        sys.stdout.flush()
        signal.sigwait(stop_signals)
    finally:
        server.stop()
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
    report = server.counters().capacity
    if report is not None:
        click.echo(f"CWS simulator stopped: {report.line()}", err=True)
