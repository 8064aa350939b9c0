"""Every byte `run`, `validate`, `report` and `status` write to stdout and stderr, across the hostile review's
attacks, is searched for the export's names and birth dates: none may appear (issue 11), nor, whatever a
server writes in its refusals, this patient's values in another spelling or another patient's (issue 19)."""

from __future__ import annotations

import csv as csv_files
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.simulator import CWSServer
from pipeline.simulator._http import Answer, error_payload

from .sites import SITE_MAPPING, Site, people

pytestmark = pytest.mark.slow  # real processes: run by .ci/run; skip with -m 'not slow' while editing


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
def echoing_site(site: Site) -> Site:
    """The site, talking to a CorEMR that quotes names and birth dates in its errors."""
    site.restart_server(EchoingServer)
    return site


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
    assert b"HTTP 400: CorEMR's words are kept in the ledger, not printed" in printed  # the refusal is reported
    assert b"bad patient" not in printed  # in our words: the server's own are never printed


# Another patient, named in a refusal of this one: CorEMR's words about them must never be printed either.
OTHER_PATIENT = ("Marcusqz", "Hollowayqz", "1979-03-14", "987-65-4321")


def spellings_of_the_birth_date(dob: str) -> list[str]:
    """A birth date YYYY-MM-DD as a server might print it instead."""
    year, month, day = dob[:4], dob[5:7], dob[8:10]
    return [f"{month}/{day}/{year}", f"{int(month)}/{int(day)}/{year}", f"{year}{month}{day}", f"{day}.{month}.{year}"]


class HostileServer(CWSServer):
    """A CorEMR whose refusals quote the patient escaped (JSON `\\u` escapes left in the text, as a server that
    escapes twice does), their birth date in other formats, and another patient's name, birth date and SSN."""

    def respond(self, method: str, path: str, body: bytes, authorization: str | None) -> Answer | None:
        if method != "POST" or not body:
            return super().respond(method, path, body, authorization)
        sent = json.loads(body)
        escaped = [json.dumps(sent[name]).strip('"') for name in ("fname", "lname")]  # "Zo\u00ebqz1"
        name, surname, dob, ssn = OTHER_PATIENT
        message = (
            f"patient {' '.join(escaped)} born {' or '.join(spellings_of_the_birth_date(sent['dob']))} is already"
            f" held as {name} {surname} (born {dob}, SSN {ssn}, {ssn.replace('-', '')})"
        )
        fields = {"fname": escaped[0], surname: ssn, ssn: dob, f"{sent['fname']}": "taken"}
        return Answer(400, error_payload(message, fields))


@pytest.fixture
def hostile_site(site: Site) -> Site:
    """The site, talking to a CorEMR whose refusals quote patients in every spelling."""
    site.restart_server(HostileServer)
    return site


def must_never_print(rows: list[list[str]]) -> set[str]:
    """This export's names in every spelling a refusal used, its birth dates in other formats, and the other
    patient's name, birth date and SSN (with and without separators)."""
    secrets = {*OTHER_PATIENT, OTHER_PATIENT[3].replace("-", ""), "\\u00eb"}
    for row in rows:
        for value in (row[2], row[3]):
            secrets |= {value, value.casefold(), json.dumps(value).strip('"')}
        secrets |= {row[4], *spellings_of_the_birth_date(row[4])}
    return secrets


def test_whatever_a_refusal_says_no_patients_values_are_printed_by_run_status_or_report(hostile_site: Site) -> None:
    site = hostile_site
    rows = people(3)
    for i, row in enumerate(rows):
        row[2], row[3], row[4] = f"Zoëqz{i}", f"Ñúñezqz{i}", f"2002-05-0{i + 2}"
    export = site.write_csv(rows)
    errors = site.dir / "errors.csv"
    printed = cli(site, "run", export, "-m", site.mapping, "-c", site.config, "-v", "--errors", errors)
    printed += cli(site, "run", export, "-m", site.mapping, "-c", site.config, "-v")  # rejected again
    printed += cli(site, "status", "-c", site.config)
    printed += cli(site, "report", "-c", site.config)
    printed += cli(site, "report", "-c", site.config, "--all")
    text = printed.decode("utf-8")

    found = sorted(s for s in must_never_print(rows) if s in text or s.casefold() in text.casefold())
    assert found == [], f"printed: {found}"
    refusal = "HTTP 400: CorEMR named fields fname (and others); its words are kept in the ledger, not printed"
    assert text.count(refusal) >= 3 * 4  # each row, in the run, status and both reports
    with errors.open(encoding="utf-8", newline="") as fh:
        reasons = [record["reason"] for record in csv_files.DictReader(fh)]
    assert reasons == [refusal] * 3  # the clerk's file: the export's own cells, and our words for the refusal
