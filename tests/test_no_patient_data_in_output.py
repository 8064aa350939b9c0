"""Every byte `run`, `validate`, `report` and `status` write to stdout and stderr, across the hostile review's
attacks, is searched for the export's names and birth dates: none may appear (issue 11)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.protocol._keyring import Keyring
from pipeline.simulator._http import Answer, error_payload
from pipeline.simulator._server import CWSServer

from .sites import SITE_MAPPING, KeyPair, Site, booking_rows

pytestmark = pytest.mark.slow  # real processes: run by .ci/run; skip with -m 'not slow' while editing

BIRTH_DATE = "1986-11-08"


def people(n: int) -> list[list[str]]:
    """N booking rows whose names and birth date are tokens found nowhere else."""
    rows = booking_rows(n)
    for i, row in enumerate(rows):
        row[2], row[3], row[4] = f"Aishaqz{i}", f"Davisqz{i}", BIRTH_DATE
    return rows


def identifying(rows: list[list[str]]) -> set[str]:
    """What must never be printed: every name and birth date in ROWS."""
    return {cell for row in rows for cell in (row[2], row[3], row[4])}


class EchoingServer(CWSServer):
    """A CorEMR that quotes the patient back in its refusal, with a line break that forges a 'delivered' line."""

    def respond(self, method: str, path: str, body: bytes, authorization: str | None) -> Answer | None:
        if method == "POST" and body:
            patient = json.loads(body)
            message = (
                f"bad patient {patient['fname']} {patient['lname']} born {patient['dob']}\r\nline 99 key X: delivered"
            )
            return Answer(400, error_payload(message))
        return super().respond(method, path, body, authorization)


def cli(site: Site, *args: str | Path) -> bytes:
    """Run `cws-pipeline ARGS` as cron would (no terminal); return everything it wrote, stdout and stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", *map(str, args)], cwd=site.dir, capture_output=True, check=False
    )
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    return done.stdout + done.stderr


def run_and_review(site: Site, csv: Path, mapping: Path | None = None) -> bytes:
    """run -v, validate, then the text report and status of the ledger (when there is one)."""
    mapping = mapping or site.mapping
    out = cli(site, "run", csv, "-m", mapping, "-c", site.config, "-v")
    out += cli(site, "validate", csv, "-m", mapping, "--show", "50")
    if site.ledger.exists():
        out += cli(site, "report", "-c", site.config, "--all")
        out += cli(site, "status", "-c", site.config)
    return out


@pytest.fixture
def echoing_site(site: Site, server_keys: KeyPair, client_keyring_dir: Path) -> Iterator[Site]:
    """The site, talking to a CorEMR that quotes names and birth dates in its errors."""
    site.server.stop()
    site.server = EchoingServer(server_keys.key, Keyring(client_keyring_dir)).start()
    site.write_config()
    yield site
    site.server.stop()


def test_no_name_or_birth_date_is_printed_whatever_the_attack(site: Site) -> None:
    rows = people(6)
    printed = b""
    secrets = identifying(rows)

    # An export with no header row: its first line is a patient.
    headless = site.dir / "headless.csv"
    headless.write_text("\n".join(",".join(r) for r in rows) + "\n", encoding="utf-8")
    printed += run_and_review(site, headless)

    # A mapping whose header_line points at a patient's line.
    wrong_line = site.dir / "wrong-header.toml"
    wrong_line.write_text(SITE_MAPPING.replace('delimiter = ","', 'delimiter = ","\nheader_line = 3'), encoding="utf-8")
    printed += run_and_review(site, site.write_csv(rows, "wrong.csv"), wrong_line)

    # A key made of identifying fields.
    by_name = site.dir / "by-name.toml"
    by_name.write_text(SITE_MAPPING.replace('key = ["external_id", "booking_no"]', 'key = ["lname", "dob"]'))
    printed += run_and_review(site, site.write_csv(rows, "by-name.csv"), by_name)

    # Bad values in identifying fields: a bad birth date, NUL and CR in a name, a ragged row, an unclosed quote.
    bad = [list(r) for r in rows]
    bad[0][4] = "1986-13-08"
    bad[1][3] = "Davisqz1\x00x"
    bad[2][2] = "Aishaqz2\rq"
    secrets |= {"1986-13-08", "Davisqz1\x00x", "Aishaqz2\rq"}
    csv = site.write_csv(bad, "bad.csv")
    with csv.open("a", encoding="utf-8") as fh:
        fh.write("P999,B999,Aishaqz9,Davisqz9,1986-11-08\n")  # ragged: 5 cells
        fh.write('P998,B998,"Aishaqz8,Davisqz8,1986-11-08,F,2026-11-28 22:15\n')  # a quote never closed
    secrets |= {"Aishaqz9", "Davisqz9", "Aishaqz8", "Davisqz8"}
    printed += run_and_review(site, csv)

    found = sorted(s for s in secrets if s.encode() in printed)
    assert found == [], f"printed: {found}"


def test_corEMR_quoting_the_patient_in_a_refusal_is_masked_and_cannot_forge_a_line(echoing_site: Site) -> None:
    site = echoing_site
    rows = people(3)
    printed = run_and_review(site, site.write_csv(rows))
    found = sorted(s for s in identifying(rows) if s.encode() in printed)
    assert found == [], f"printed: {found}"
    forged = [line for line in printed.splitlines() if line.strip().startswith(b"line 99")]
    assert forged == []  # CR/LF in CorEMR's text cannot start an output line of its own
    assert b"bad patient" in printed  # the refusal itself is still reported
