"""What the tests share besides fixtures: key pairs as files, a site's mapping, booking rows, the Site."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pipeline import RowOutcome, RunProgress
from pipeline.ledger import ROW_STATES, Ledger, RunInfo, RunRecord, verify_chain
from pipeline.protocol import Keyring
from pipeline.protocol._keys import public_key_pem, write_private_file
from pipeline.simulator import CWSServer

CLIENT_ACCESS = "county-jms"
SERVER_ACCESS = "coremr"


@dataclass(frozen=True)
class KeyPair:
    """A key and its two PEM files (private 0600, public SPKI)."""

    key: rsa.RSAPrivateKey
    private: Path
    public: Path


def write_pair(directory: Path, key: rsa.RSAPrivateKey) -> KeyPair:
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / "rsa.private"
    write_private_file(
        private,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    public = directory / "rsa.public"
    public.write_bytes(public_key_pem(key))
    return KeyPair(key, private, public)


SITE_MAPPING = """\
[source]
encoding = "utf-8"
delimiter = ","

[target]
endpoint = "/ws/patients/"
key = ["external_id", "booking_no"]

[fields.external_id]
column = "Inmate ID"

[fields.facility]
value = 10000

[fields.agency]
value = 2

[fields.billing_agency]
value = 1

[fields.fname]
column = "First"

[fields.lname]
column = "Last"

[fields.dob]
column = "DOB"
type = "datetime"
formats = ["%Y-%m-%d"]
not_future = true

[fields.sex]
column = "Sex"

[fields.booking_no]
column = "Booking"

[fields.booking_date]
column = "Booked"
type = "datetime"
formats = ["%Y-%m-%d %H:%M"]
"""

# The same site speaking CorEMR API v1: booking_number, facility as text, sex as Male/Female.
V1_SITE_MAPPING = (
    SITE_MAPPING.replace('"booking_no"]', '"booking_number"]')
    .replace("[fields.booking_no]", "[fields.booking_number]")
    .replace("[target]\n", '[target]\napi = "v1"\n')
    .replace("value = 10000", 'value = "MAIN"')
    .replace("[fields.agency]\nvalue = 2", '[fields.agency]\nvalue = "COUNTY"')  # v1 docs: agency is String(255)
    .replace('column = "Sex"', 'column = "Sex"\nlookup = { M = "Male", F = "Female" }')
)

# The same site speaking CorEMR API v3 (its own prefix; as documented, no bookings routes).
V3_SITE_MAPPING = SITE_MAPPING.replace('endpoint = "/ws/patients/"', 'api = "v3"\nendpoint = "/ws/v3/patients/"')

BOOKING_HEADER = ["Inmate ID", "Booking", "First", "Last", "DOB", "Sex", "Booked"]


def booking_rows(n: int, start: int = 1) -> list[list[str]]:
    """n valid, distinct booking rows."""
    return [
        [f"P{i:06d}", f"B{i:06d}", f"First{i}", f"Last{i}", f"19{50 + i % 50:02d}-0{1 + i % 9}-1{i % 10}",
         "MF"[i % 2], "2026-11-28 22:15"]
        for i in range(start, start + n)
    ]  # fmt: skip


BIRTH_DATE = "1986-11-08"  # a birth date found nowhere else in the tests' data


def people(n: int) -> list[list[str]]:
    """N booking rows whose names and birth date are tokens found nowhere else."""
    rows = booking_rows(n)
    for i, row in enumerate(rows):
        row[2], row[3], row[4] = f"Aishaqz{i}", f"Davisqz{i}", BIRTH_DATE
    return rows


class RecordedProgress(RunProgress):
    """Everything a run tells its progress, kept in lists (each append is one thread-safe step)."""

    def __init__(self, outcomes: list[RowOutcome] | None = None) -> None:
        self.outcomes = outcomes if outcomes is not None else []
        self.read: list[int] = []
        self.lines: list[int] = []
        self.limits: list[int] = []

    def row(self, outcome: RowOutcome) -> None:
        self.outcomes.append(outcome)

    def rows_read(self, rows: int) -> None:
        self.read.append(rows)

    def expected(self, lines: int) -> None:
        self.lines.append(lines)

    def concurrency(self, limit: int) -> None:
        self.limits.append(limit)


@dataclass
class Site:
    """One jail's set-up in a temp dir, talking to a real local CWS server."""

    dir: Path
    server: Any
    client_keys: KeyPair
    server_keyring: Path
    mapping: Path
    config: Path
    ledger: Path
    server_key: Any = None  # CorEMR's private key: a server started in place of the first signs with it too
    client_keyring: Path | None = None  # the public keys such a server trusts

    def restart_server(self, server_class: type[CWSServer] = CWSServer, **options: Any) -> Any:
        """Stop the site's server and start SERVER_CLASS(**OPTIONS) on the same keys, a CorEMR told to answer
        otherwise; the configuration is rewritten to point at it. The site fixture stops it at the end."""
        self.server.stop()
        self.server = server_class(self.server_key, Keyring(self.client_keyring), **options).start()
        self.write_config()
        return self.server

    def write_csv(self, rows: list[list[str]], name: str = "bookings.csv") -> Path:
        """Write an export with the standard header."""
        path = self.dir / name
        with path.open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows([BOOKING_HEADER, *rows])
        return path

    def write_config(self, **overrides: Any) -> Path:
        """(Re)write cws.toml; overrides replace or add keys."""
        values: dict[str, Any] = {
            "base_url": self.server.url,
            "access": CLIENT_ACCESS,
            "private_key": str(self.client_keys.private),
            "server_keys": str(self.server_keyring),
            "ledger": str(self.ledger),
            "concurrency": 4,
            "max_attempts": 4,
            "retry_initial_wait": 0.01,
            "retry_max_wait": 0.05,
            "timeout": 5,
            "settle_seconds": 0.01,  # a real settle, short: a test of a file still being written sets more
            "bookings_routes": "yes",  # the local v2 server plays them (an older v2 page lists them)
        }
        values.update(overrides)
        lines = []
        for k, v in values.items():
            if v is None:  # an override of None leaves the key out
                continue
            if isinstance(v, bool):
                lines.append(f"{k} = {'true' if v else 'false'}")
            elif isinstance(v, int | float):
                lines.append(f"{k} = {v}")
            elif isinstance(v, list):
                lines.append(f"{k} = [{', '.join(repr(x).replace(chr(39), chr(34)) for x in v)}]")
            else:
                lines.append(f'{k} = "{v}"')
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return self.config


def run_process(site: Site, csv: Path, config: Path | None = None, **popen: Any) -> subprocess.Popen[bytes]:
    """`cws-pipeline run CSV` for SITE (with CONFIG, else its own) in a child process, as cron starts one; POPEN
    may replace its stdout and stderr (pipes by default)."""
    args = [sys.executable, "-m", "pipeline", "run", str(csv), "--mapping", str(site.mapping),
            "--config", str(config or site.config)]  # fmt: skip
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    popen.setdefault("preexec_fn", ctrl_c_as_a_terminal_sends_it)
    return subprocess.Popen(args, **popen)


def ctrl_c_as_a_terminal_sends_it() -> None:
    """In the child: SIGINT acts as it does in a terminal, even when the tests run in a background job (a
    shell without job control starts those with SIGINT ignored, and Python keeps an ignored SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_creates(site: Site, proc: subprocess.Popen[bytes], n: int) -> None:
    """Wait until the site's server has seen N creates from the run PROC: it is caught mid-way."""
    deadline = time.monotonic() + 60
    while len(site.server.counters().creates) < n and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be caught mid-way"


def run_endings(ledger_path: Path) -> list[tuple[int, str, int | None]]:
    """Each run's (id, status, exit code) as the ledger recorded them, once the chain is checked."""
    with Ledger.open_read_only(ledger_path) as ledger:
        assert verify_chain(ledger.entries()) is None
        return [(run.run_id, run.status, run.exit_code) for run in ledger.runs()]


def recorded_run(run_id: int, status: str, exit_code: int) -> RunRecord:
    """The ledger's record of a run that ended so, with no rows, as `Ledger.runs` reads it back."""
    info = RunInfo("bookings.csv", "0" * 64, "mapping.toml", "0" * 64, "https://coremr.test", "/ws/patients/",
                   CLIENT_ACCESS, "CWS-SHA256", "test")  # fmt: skip
    counts = json.dumps(dict.fromkeys(ROW_STATES, 0))
    return RunRecord(
        run_id, "2026-12-07T01:00:00+00:00", "2026-12-07T01:05:00+00:00", status, info, 1, counts, exit_code
    )


def assert_every_patient_created_once(site: Site, n: int) -> None:
    """The local server created P000001 ... P{n} once each, and nobody else."""
    creates = site.server.counters().creates
    assert sorted(creates) == [f"P{i:06d}" for i in range(1, n + 1)]
    assert set(creates.values()) == {1}
