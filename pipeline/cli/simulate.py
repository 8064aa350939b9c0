"""`cws-pipeline simulate`: run the local CWS server until Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from .._errors import KeyFileError, UserInputError
from ..protocol import PASSPHRASE_ENV, Keyring, is_loopback, load_private_key, passphrase_from_environment
from ..simulator import CWSServer, Fault
from . import cli

__all__ = ["simulate"]


@cli.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0 picks a free port.")
@click.option(
    "--server-key",
    type=click.Path(path_type=Path),
    required=True,
    help="Private key the server signs its responses with (plays CorEMR's key).",
)
@click.option(
    "--client-keys",
    type=click.Path(path_type=Path),
    required=True,
    help="Keyring directory of trusted client public keys, one <USERNAME>.pem per Access name.",
)
@click.option("--access", default="coremr", show_default=True, help="Access name in the server's response headers.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback unless --public).")
@click.option("--public", is_flag=True, help="Allow listening on a non-loopback address (it is a test server).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the fault dice: same seed, same faults.")
@click.option("--latency-ms", type=click.FloatRange(min=0), default=0.0, help="Delay added to every answer.")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="SPEC",
    help="KIND[:key=value,...], e.g. status_503:first=2 or status_429:rate=0.1,retry_after=2. Repeatable.",
)
@click.option(
    "--passphrase-env",
    metavar="VAR",
    help=f"Environment variable holding an encrypted server key's passphrase [default: {PASSPHRASE_ENV}, if set].",
)
@click.option("--access-log", is_flag=True, help="Print method, path and status of each request to stderr.")
def simulate(
    port: int,
    server_key: Path,
    client_keys: Path,
    access: str,
    host: str,
    public: bool,
    seed: int,
    latency_ms: float,
    faults: tuple[str, ...],
    passphrase_env: str | None,
    access_log: bool,
) -> None:
    """Run a local CWS server that checks request signatures and signs its answers.

    It serves CorEMR's patient routes (POST/GET /ws/patients/, GET/POST /ws/patients/ID) from
    memory, refuses unsigned or badly signed requests with 401, and can inject seeded faults.
    It prints one line, `CWS simulator listening on http://HOST:PORT`, and serves until Ctrl-C.
    It is a test server, not CorEMR.

    \b
    Example:
        cws-pipeline simulate --port 8765 --server-key sim/rsa.private \\
            --client-keys sim/clients --fault status_503:first=2

    \b
    Fault kinds: status_500, status_503, status_429 (retry_after=SECONDS|none), latency
    (latency_ms=MS), drop_after_processing, signature_corrupt, signature_missing, signature_sha1,
    signature_unknown_signer. Every kind takes rate=0..1, first=N and methods=GET+POST
    (default POST).
    """
    if not is_loopback(host) and not public:
        raise UserInputError(f"--host {host}: not a loopback address; this is a test server, add --public to allow it")
    parsed_faults = [Fault.parse(spec) for spec in faults]
    key = load_private_key(server_key, passphrase_from_environment(passphrase_env))
    keyring = Keyring(client_keys)
    if not keyring.usernames():
        raise KeyFileError(f"{client_keys}: no <USERNAME>.pem public keys in the client keyring directory")
    server = CWSServer(
        key,
        keyring,
        access=access,
        host=host,
        port=port,
        faults=parsed_faults,
        seed=seed,
        latency_ms=latency_ms,
        access_log=access_log,
    )
    # Block the stop signals before any server thread starts (threads inherit the mask), then wait
    # for one with sigwait: no Python signal handler runs, so none can interrupt a lock mid-way.
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    try:
        try:
            server.start()
        except OSError as exc:
            raise UserInputError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})") from None
        click.echo(f"CWS simulator listening on {server.url}")
        sys.stdout.flush()
        signal.sigwait(stop_signals)
    finally:
        server.stop()
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
