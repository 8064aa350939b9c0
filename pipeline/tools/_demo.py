"""`cws-pipeline demo`: two nights of the whole job against a local CWS server, with nothing to set up.

Night 1 delivers the sample export; night 2 delivers the next night's export: the same bookings (skipped:
nothing is sent twice), two of them corrected (sent as updates: the sample mappings say on_change =
"update"), three people booked again (their bookings added to the patients CorEMR holds, one exported on
three lines, one per charge) and one new person. The run configuration says whether the site has the
bookings routes, as the local server plays them: v2 has them (an older v2 page lists them); v3 has none
(its page lists none), so its returning people are held for a person, saying what to do in CorEMR.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .._errors import UserInputError
from ..delivery import RowOutcome, RunProgress, RunResult, load_config, run_bookings, summary_lines
from ..ledger import ACTIONS
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


NIGHT_2 = (
    "the same bookings, two of them corrected, three people booked again (one booking on three lines, one per"
    " charge) and one new person"
)


@dataclass(frozen=True)
class DemoResult:
    """The demo's two nights, how night 2's delivered rows got there, what the server stored, and where."""

    directory: Path
    first: RunResult
    second: RunResult
    creates: dict[str, int]  # patients stored, by external_id
    actions: dict[str, int]  # night 2's delivered rows by action (created, booking added, updated...)
    bookings: dict[str, dict[str, int]]  # bookings stored, by external_id and booking number


def find_sample_files(api: ApiVersion = DEFAULT_API) -> tuple[Path, Path, Path]:
    """The repository's two sample exports (nights 1 and 2) and their mapping for API (from a source checkout)."""
    root = Path(__file__).resolve().parents[2]
    csv = root / "sample_data" / "bookings.csv"
    night2 = root / "sample_data" / "bookings-night2.csv"
    mapping = root / "mappings" / SAMPLE_MAPPINGS[api]
    for path in (csv, night2, mapping):
        if not path.is_file():
            raise UserInputError(f"{path}: demo file not found; run the demo from a source checkout (pip install -e .)")
    return csv, night2, mapping


def run_demo(
    directory: Path, *, bits: int = 4096, api: ApiVersion = DEFAULT_API, echo: Callable[[str], None] = print
) -> DemoResult:
    """Make keys, start a local CWS server speaking API, deliver the sample's two nights, print what happened."""
    csv, night2, mapping = find_sample_files(api)
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
        routes = None if api == "v1" else server.api.routes.has_bookings  # as the local server plays them
        config_path = site.write_config(server.url, 8, directory / "ledger.sqlite", algorithm=algorithm,
                                        bookings_routes=routes)  # fmt: skip
        config = load_config(config_path)
        echo(f"Local CWS server (CorEMR API {api}, {server.api.coremr}) listening on {server.url}")
        echo(f"Night 1: delivering {csv.name} through {mapping.name} ...")
        first = run_bookings(csv, mapping, config)
        for line in summary_lines(first):
            echo(line)
        echo(f"Night 2: delivering {night2.name}: {NIGHT_2} ...")
        night_2 = _Outcomes()
        second = run_bookings(night2, mapping, config, progress=night_2)
        actions = _night_2_lines(second, night_2.outcomes, echo)
        counters = server.counters()
    creates, bookings = dict(counters.creates), counters.booking_creates
    twice = sorted(k for k, n in creates.items() if n > 1)
    booked_twice = sum(1 for numbers in bookings.values() for n in numbers.values() if n > 1)
    stored = sum(len(numbers) for numbers in bookings.values())
    echo(f"The server created {len(creates)} patients, {len(twice)} of them more than once, and stored {stored}"
         f" bookings, {booked_twice} of them more than once.")  # fmt: skip
    echo(f"Ledger: {config.ledger}")
    echo(f"Next: cws-pipeline report --ledger {config.ledger}    cws-pipeline audit --ledger {config.ledger}"
         f" --config {config_path}")  # fmt: skip
    return DemoResult(directory, first, second, creates, actions, bookings)


class _Outcomes(RunProgress):
    """Every row's outcome in a run, kept to say how night 2's rows got there."""

    def __init__(self) -> None:
        self.outcomes: list[RowOutcome] = []

    def row(self, outcome: RowOutcome) -> None:
        self.outcomes.append(outcome)  # one thread-safe step: the run's workers call this at once


def _night_2_lines(result: RunResult, outcomes: list[RowOutcome], echo: Callable[[str], None]) -> dict[str, int]:
    """Night 2's counts, how its delivered rows got there, and its rows needing a person (night 1 showed the
    invalid ones); return the actions."""
    for line in summary_lines(result)[: 1 + sum(1 for v in result.counts.values() if v)]:
        echo(line)
    actions: dict[str, int] = {a: n for a in ACTIONS if (n := sum(1 for o in outcomes if o.action == a))}
    if actions:
        echo("  delivered by: " + ", ".join(f"{action} {n}" for action, n in actions.items()))
    for o in sorted(outcomes, key=lambda o: o.line):
        if o.state not in ("delivered", "skipped", "invalid", "duplicate", "excluded"):
            echo(f"  line {o.line} key {o.key}: {o.state}: {o.reason or ''}")
    return actions
