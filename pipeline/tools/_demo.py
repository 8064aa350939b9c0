"""`cws-pipeline demo`: the whole job end to end against a local CWS server, with nothing to set up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .._errors import UserInputError
from ..delivery import RunResult, load_config, run_bookings, summary_lines
from ..protocol import API_PROFILES, DEFAULT_API, ApiVersion, Keyring, load_private_key
from ..simulator import CWSServer
from ._local_site import SERVER_ACCESS, make_local_site

__all__ = ["DemoResult", "find_sample_files", "run_demo"]

CLIENT_ACCESS = "county-jms"
_MARKER = ".cws-demo"
# The sample mapping for each CorEMR API version (the same export, each version's fields).
SAMPLE_MAPPINGS: dict[ApiVersion, str] = {
    "v1": "sample-jms-v1.toml",
    "v2": "sample-jms.toml",
    "v3": "sample-jms-v3.toml",
}


@dataclass(frozen=True)
class DemoResult:
    """The demo's two runs and where it left its files."""

    directory: Path
    first: RunResult
    second: RunResult
    creates: dict[str, int]


def find_sample_files(api: ApiVersion = DEFAULT_API) -> tuple[Path, Path]:
    """The repository's sample export and its mapping for API (the demo runs from a source checkout)."""
    root = Path(__file__).resolve().parents[2]
    csv = root / "sample_data" / "bookings.csv"
    mapping = root / "mappings" / SAMPLE_MAPPINGS[api]
    for path in (csv, mapping):
        if not path.is_file():
            raise UserInputError(f"{path}: demo file not found; run the demo from a source checkout (pip install -e .)")
    return csv, mapping


def run_demo(
    directory: Path, *, bits: int = 4096, api: ApiVersion = DEFAULT_API, echo: Callable[[str], None] = print
) -> DemoResult:
    """Make keys, start a local CWS server speaking API, deliver the sample export twice, print what happened."""
    csv, mapping = find_sample_files(api)
    directory = directory.resolve()
    if directory.exists() and any(directory.iterdir()) and not (directory / _MARKER).exists():
        raise UserInputError(f"{directory}: not empty and not an earlier demo; choose another DIRECTORY")
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    (directory / _MARKER).touch()

    site = make_local_site(directory, bits, CLIENT_ACCESS, reuse_keys=True, echo=echo)
    for stale in directory.glob("ledger.sqlite*"):  # each demo starts a fresh ledger, like a fresh server
        stale.unlink()

    server = CWSServer(load_private_key(site.server_key), Keyring(site.client_keyring), access=SERVER_ACCESS, api=api)
    with server:
        algorithm = API_PROFILES[api].algorithms[0]  # v1 takes CWS-SHA1 only
        config_path = site.write_config(server.url, 8, directory / "ledger.sqlite", algorithm=algorithm)
        config = load_config(config_path)
        echo(f"Local CWS server (CorEMR API {api}, {server.api.coremr}) listening on {server.url}")
        echo(f"Delivering {csv.name} through {mapping.name} ...")
        first = run_bookings(csv, mapping, config)
        for line in summary_lines(first):
            echo(line)
        echo("Running the same file again: nothing is sent twice ...")
        second = run_bookings(csv, mapping, config)
        for line in summary_lines(second)[: 1 + sum(1 for v in second.counts.values() if v)]:
            echo(line)
        creates = dict(server.counters().creates)
    twice = sorted(k for k, n in creates.items() if n > 1)
    echo(f"The server created {len(creates)} patients, {len(twice)} of them more than once.")
    echo(f"Ledger: {config.ledger}")
    echo(f"Next: cws-pipeline report --ledger {config.ledger}    cws-pipeline audit --ledger {config.ledger}"
         f" --config {config_path}")  # fmt: skip
    return DemoResult(directory, first, second, creates)
