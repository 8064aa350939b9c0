"""CorEMR's documents followed literally: the security walkthrough with openssl and curl, and v1's field table.

For each API version: write the version's example body to body.txt, sign it with `openssl dgst -sha1 -sign`
and with `-sha256`, base64 it with `openssl enc -A -base64`, send it with curl, then verify the answer the
walkthrough's way (`openssl enc -d -A -base64`, `openssl dgst -verify`); then a GET with an empty signed
body. v2's body is the walkthrough's own text; v1's and v3's are derived from CorEMR's field facts.

Then one test per rule of the v1 field table (docs.coremr.com /ws/v1/patients/: the Add column's required
fields, each length, type and value list), for the client's `validate` checks and the local server both:
a value the rule allows passes both, one it refuses is refused by both, citing the documented rule.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import pipeline
from pipeline import CWSAuth, Keyring, MappingError
from pipeline.mapping import MappedRow, load_mapping, map_csv
from pipeline.simulator import CWSServer

from ..sites import BOOKING_HEADER, CLIENT_ACCESS, SERVER_ACCESS, SITE_MAPPING, KeyPair, booking_rows
from .examples import V1_BODY as V1_FIELDS_BODY
from .examples import WALKTHROUGH, compact

# The walkthrough's "Example Request" body, as it prints it (with its trailing space), inside braces.
V2_BODY = """{
  "external_id": "FakeExternalID",
  "facility": 10000,
  "agency": 2,
  "billing_agency": 1, 
  "fname": "First",
  "lname": "Name",
  "dob": "2000-04-12 10:00:00.000",
  "sex": "M",
  "booking_no": "EthanBooking14",
  "booking_date": "2023-04-07 10:00:00.00"
}"""  # noqa: W291  # the walkthrough's own trailing space, kept
# v1 (CorEMR 5.3+): facility is a String(32) code, no agency, sex a word, booking_number, dob a Date.
V1_BODY = """{
  "external_id": "FakeExternalID",
  "facility": "MAIN",
  "fname": "First",
  "lname": "Name",
  "dob": "2000-04-12",
  "sex": "Male",
  "booking_number": "EthanBooking14",
  "booking_date": "2023-04-07 10:00:00.00"
}"""
# v3 (CorEMR 6.4.0+): v2's body; agency is optional and left out.
V3_BODY = V2_BODY.replace('  "agency": 2,\n', "")
EXAMPLES = {"v1": V1_BODY, "v2": V2_BODY, "v3": V3_BODY}
COLLECTIONS = {"v1": "/ws/patients/", "v2": "/ws/patients/", "v3": "/ws/v3/patients/"}


@dataclass
class Walkthrough:
    """A working directory with the walkthrough's files, a running simulate, and the keys of both sides."""

    api: str
    dir: Path
    url: str
    client: KeyPair
    coremr_public: Path

    def run(self, *args: str) -> str:
        done = subprocess.run(args, cwd=self.dir, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, f"{args[0]} failed: {done.stderr}"
        return done.stdout

    def sign(self, body: str, digest: str) -> str:
        """Steps 1-3 of "Sending a Request": body.txt, openssl dgst -sign, openssl enc -A -base64."""
        (self.dir / "body.txt").write_bytes(body.encode())  # no trailing newline: it would break the signature
        self.run("openssl", "dgst", f"-{digest}", "-sign", str(self.client.private), "-out", "sign.bin", "body.txt")
        self.run("openssl", "enc", "-A", "-base64", "-in", "sign.bin", "-out", "sign.txt")
        return (self.dir / "sign.txt").read_text()

    def send(self, method: str, path: str, digest: str, body: str) -> int:
        """Step 4-5: the Authorization header, sent with curl (a GET sends no body); returns the status."""
        header = f"Authorization: CWS-{digest.upper()} Access={CLIENT_ACCESS}, Signature={self.sign(body, digest)}"
        data = ["--data-binary", "@body.txt", "-H", "Content-Type: application/json"] if method != "GET" else []
        status = self.run("curl", "-sS", "-X", method, self.url + path, "-H", header, *data,
                          "-D", "headers.txt", "-o", "response.txt", "-w", "%{http_code}")  # fmt: skip
        return int(status)

    def verify_answer(self) -> str:
        """ "Verifying CorEMR's Response", steps 1-6: what `openssl dgst -verify` prints for the answer."""
        headers = (self.dir / "headers.txt").read_text()
        found = re.search(r"^authorization: (CWS-SHA\d+) Access=(\S+), Signature=(\S+)\r?$", headers, re.I | re.M)
        assert found, headers
        algorithm, username, signature = found.groups()
        assert username == SERVER_ACCESS
        (self.dir / "response_sign.txt").write_text(signature)
        self.run("openssl", "enc", "-d", "-A", "-base64", "-in", "response_sign.txt", "-out", "response_sign.bin")
        digest = "-" + algorithm.removeprefix("CWS-").lower()
        verified = self.run("openssl", "dgst", digest, "-verify", str(self.coremr_public), "-signature",
                            "response_sign.bin", "response.txt")  # fmt: skip
        return algorithm, verified

    def answer(self) -> object:
        return json.loads((self.dir / "response.txt").read_bytes())


def _simulate(api: str, server_keys: KeyPair, client_keyring_dir: Path, *options: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(pipeline.__file__).parents[1])}
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "simulate", "--api", api, "--port", "0",
         "--server-key", str(server_keys.private), "--client-keys", str(client_keyring_dir), *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


@pytest.fixture
def walkthrough(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    server_keys: KeyPair,
    client_keys: KeyPair,
    client_keyring_dir: Path,
) -> Iterator[Walkthrough]:
    api, *options = request.param.split()  # "v3 --bookings-routes no": a version and simulate's options
    proc = _simulate(api, server_keys, client_keyring_dir, *options)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("CWS simulator listening on "), line
        yield Walkthrough(api, tmp_path, line.rsplit(" ", 1)[1].strip(), client_keys, server_keys.public)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err


@pytest.mark.parametrize(
    ("walkthrough", "digest", "status"),
    [("v1", "sha1", 201), ("v1", "sha256", 401), ("v2", "sha1", 201), ("v2", "sha256", 201),
     ("v3", "sha1", 201), ("v3", "sha256", 201)],
    indirect=["walkthrough"],
)  # fmt: skip
def test_the_walkthrough_example_is_created_and_every_answer_verifies_with_openssl(
    walkthrough: Walkthrough, digest: str, status: int
) -> None:
    api = walkthrough.api
    collection = COLLECTIONS[api]
    # Answers are signed with the request's algorithm (simulate's default, --answer-algorithm request).
    signed_ok = (f"CWS-{digest.upper()}", "Verified OK\n")
    assert walkthrough.send("POST", collection, digest, EXAMPLES[api]) == status
    assert walkthrough.verify_answer() == signed_ok
    if status != 201:  # v1 takes CWS-SHA1 only; the refusal is signed all the same
        assert walkthrough.answer() == {"error": "unsupported algorithm 'CWS-SHA256': use CWS-SHA1", "fields": {}}
        digest, signed_ok = "sha1", ("CWS-SHA1", "Verified OK\n")
        assert walkthrough.send("POST", collection, digest, EXAMPLES[api]) == 201
        assert walkthrough.verify_answer() == signed_ok
    # "if the request is a GET request or the body is otherwise empty, create an empty file called body.txt"
    assert walkthrough.send("GET", collection + "FakeExternalID", digest, "") == 200
    assert walkthrough.verify_answer() == signed_ok
    read = walkthrough.answer()
    assert isinstance(read, dict) and read["external_id"] == "FakeExternalID"
    assert read["dob"] == "2000-04-12 00:00:00.000"  # v2 docs: dates come back as YYYY-MM-DD 00:00:00.000
    assert read["facility"] == ("MAIN" if api == "v1" else "10000")  # v2 docs: facility comes back as a string


@pytest.mark.parametrize("walkthrough", ["v3 --bookings-routes no --exists-status 422"], indirect=True)
def test_simulate_plays_a_site_without_bookings_routes_that_answers_422_for_an_existing_patient(
    walkthrough: Walkthrough,
) -> None:
    """The v3 page lists no bookings routes, and no doc gives the status of a duplicate create: simulate plays both."""
    collection = COLLECTIONS["v3"]
    assert walkthrough.send("POST", collection, "sha256", EXAMPLES["v3"]) == 201
    assert walkthrough.send("POST", collection, "sha256", EXAMPLES["v3"]) == 422
    assert walkthrough.verify_answer() == ("CWS-SHA256", "Verified OK\n")
    assert walkthrough.answer() == {"error": "a patient with this external_id already exists",
                                    "fields": {"external_id": "already exists"}}  # fmt: skip
    assert walkthrough.send("GET", collection + "FakeExternalID/bookings/", "sha256", "") == 404
    assert walkthrough.answer() == {"error": "no such route", "fields": {}}
    assert walkthrough.send("GET", collection + "NoSuchPatient", "sha256", "") == 404
    assert walkthrough.answer() == {"error": "no such patient", "fields": {}}
    assert walkthrough.send("GET", collection + "FakeExternalID", "sha256", "") == 200


# --- v1's field table (docs.coremr.com /ws/v1/patients/), one rule per test, client and local server ---

V1_DOCS = "CorEMR v1 docs"
# The Add column of the v1 field table: what a create must hold.
V1_REQUIRED = ("external_id", "facility", "fname", "lname", "dob", "sex", "booking_number", "booking_date")
_RACES = ("American Indian or Alaskan Native", "Asian", "Black or African American",
          "Native Hawaiian or Other Pacific Islander", "White")  # fmt: skip


def _length(field: str, words: str, n: int, letter: str = "A") -> tuple[str, str, str, str]:
    return (field, words, letter * n, letter * (n + 1))


# (field, what the v1 field table says of it, a value it allows, a value it refuses): one row per rule.
V1_RULES = [
    _length("external_id", "String(17), at least 1 character", 17),
    _length("facility", "String(32), required to add", 32),
    _length("agency", "String(255)", 255),
    _length("agency_id", "String(50)", 50),
    _length("fname", "String(255)", 255),
    _length("lname", "String(255)", 255),
    _length("mname", "String(255)", 255),
    ("sex", "String(7), required to add", "Unknown", "M"),
    _length("booking_number", "String(32)", 32, "B"),
    _length("ssn", "String(11)", 11, "1"),
    *(("race", "the five listed race values", race, "Martian") for race in _RACES),
    ("ethnicity", "Hispanic or Non-Hispanic", "Hispanic", "Latino"),
    ("ethnicity", "Hispanic or Non-Hispanic", "Non-Hispanic", "non-hispanic"),
    ("height", "Integer (inches)", "70", "70.5"),
    ("weight", "Float (pounds)", "180.5", "heavy"),
    _length("eye_color", "String(64)", 64),
    _length("hair_color", "String(64)", 64),
    _length("address1", "String(128)", 128),
    _length("address2", "String(128)", 128),
    _length("city", "String(32)", 32),
    _length("state", "String(16)", 16),
    _length("zipcode", "String(16)", 16, "9"),
    ("dob", "Date, required to add", "1990-01-02", "1990-02-30"),
    ("booking_date", "Datetime", "2023-04-07 10:00:00", "2023-04-07"),
]
_IDS = [f"{field}:{words}:{good[:12]}" for field, words, good, _ in V1_RULES]
_TYPES = {"height": 'type = "integer"', "weight": 'type = "number"', "dob": 'type = "datetime"\nformats = ["%Y-%m-%d"]',
          "booking_date": 'type = "datetime"\nformats = ["%Y-%m-%d %H:%M:%S"]'}  # fmt: skip
_COLUMNS = {"external_id": "ID", "facility": "Facility", "fname": "First", "lname": "Last", "dob": "DOB",
            "sex": "Sex", "booking_number": "Booking", "booking_date": "Booked"}  # fmt: skip
_GOOD_ROW = {"ID": "P1", "Facility": "MAIN", "First": "Ann", "Last": "Lee", "DOB": "1990-01-02", "Sex": "Female",
             "Booking": "B1", "Booked": "2023-04-07 10:00:00"}  # fmt: skip


def _v1_mapping(tmp_path: Path, tested: str | None, leave_out: str | None = None) -> Path:
    """A v1 mapping of every required field from its column, and TESTED (if any) from the column "Value"."""
    tables = [f'[fields.{name}]\ncolumn = "{column}"\n' + (_TYPES.get(name, "") + "\n" if name in _TYPES else "")
              for name, column in _COLUMNS.items() if name not in (tested, leave_out)]  # fmt: skip
    if tested is not None:
        tables.append(f'[fields.{tested}]\ncolumn = "Value"\n{_TYPES.get(tested, "")}\n')
    path = tmp_path / "v1.toml"
    path.write_text('[target]\napi = "v1"\n' + "".join(tables), encoding="utf-8")
    return path


def _client_rows(tmp_path: Path, field: str, *values: str) -> list[MappedRow]:
    """The client's validate checks over one row per value of FIELD (the other fields valid)."""
    mapping = load_mapping(_v1_mapping(tmp_path, field))
    lines = []
    for i, value in enumerate(values):
        row = {**_GOOD_ROW, "ID": f"P{i}", "Booking": f"B{i}", "Value": value}
        lines.append(",".join(f'"{row[c]}"' for c in [*_GOOD_ROW, "Value"]))
    export = tmp_path / "in.csv"
    export.write_text(",".join([*_GOOD_ROW, "Value"]) + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return [row for chunk in map_csv(export, mapping) for row in chunk]


@pytest.mark.parametrize(("field", "words", "good", "bad"), V1_RULES, ids=_IDS)
def test_the_client_holds_a_v1_row_to_the_documented_rule(
    tmp_path: Path, field: str, words: str, good: str, bad: str
) -> None:
    allowed, refused = _client_rows(tmp_path, field, good, bad)
    assert allowed.valid, allowed.problems
    assert [p.field for p in refused.problems] == [field]
    if field not in ("dob", "booking_date"):  # a date problem names the mapping's formats, not the docs
        assert f"({V1_DOCS}: {words}" in refused.problems[0].expected


@pytest.mark.parametrize("field", V1_REQUIRED)
def test_the_client_refuses_a_v1_mapping_without_a_field_the_add_column_requires(tmp_path: Path, field: str) -> None:
    with pytest.raises(MappingError) as refused:
        load_mapping(_v1_mapping(tmp_path, None, leave_out=field))
    assert f"fields.{field}: missing; CorEMR API v1 requires " in str(refused.value)
    assert f"({V1_DOCS}: the field table's Add column; missing: {field})" in str(refused.value)


@pytest.fixture
def v1_server(
    server_keys: KeyPair, client_keyring_dir: Path, client_keys: KeyPair, server_keyring_dir: Path
) -> Iterator[tuple[CWSServer, httpx.Client]]:
    auth = CWSAuth(client_keys.key, CLIENT_ACCESS, Keyring(server_keyring_dir), "CWS-SHA1")
    server = CWSServer(server_keys.key, Keyring(client_keyring_dir), api="v1")
    with server, httpx.Client(base_url=server.url, auth=auth, timeout=30) as client:
        yield server, client


def _json_value(field: str, text: str) -> object:
    """A value as the client would send it: height and weight as JSON numbers when they read as numbers."""
    if field in ("height", "weight"):
        try:
            return int(text) if text.isdigit() else float(text)
        except ValueError:
            return text
    return text


@pytest.mark.parametrize(("field", "words", "good", "bad"), V1_RULES, ids=_IDS)
def test_the_local_server_holds_a_v1_create_to_the_documented_rule(
    v1_server: tuple[CWSServer, httpx.Client], field: str, words: str, good: str, bad: str
) -> None:
    server, client = v1_server
    body = {**V1_FIELDS_BODY, "external_id": "P1", field: _json_value(field, good)}
    created = client.post("/ws/patients/", content=compact(body))
    assert created.status_code == 201, created.text
    external_id = str(body["external_id"])
    kept = server.bookings()[external_id][body["booking_number"]] if field.startswith("booking") else \
        server.patients()[external_id]  # fmt: skip
    assert field in kept  # kept, not dropped (v1's agency and agency_id too)
    other = {**body, "external_id": "P2", field: _json_value(field, bad)}
    refused = client.post("/ws/patients/", content=compact(other))
    assert refused.status_code == 400
    assert refused.json()["fields"][field].endswith(f"({V1_DOCS}: {words})")
    assert set(server.patients()) == {external_id}


@pytest.mark.parametrize("field", V1_REQUIRED)
def test_the_local_server_refuses_a_v1_create_without_a_field_the_add_column_requires(
    v1_server: tuple[CWSServer, httpx.Client], field: str
) -> None:
    server, client = v1_server
    refused = client.post("/ws/patients/", content=compact({k: v for k, v in V1_FIELDS_BODY.items() if k != field}))
    assert refused.status_code == 400 and refused.json()["fields"] == {field: "required"}
    assert server.patients() == {}


def test_v1_limits_are_not_applied_to_v2_where_its_docs_do_not_give_them(
    tmp_path: Path, server_keys: KeyPair, client_keyring_dir: Path, client_keys: KeyPair, server_keyring_dir: Path
) -> None:
    """Assumption v2-optional-fields: v2/v3 keep v1's optional field names, not v1's race values or lengths."""
    auth = CWSAuth(client_keys.key, CLIENT_ACCESS, Keyring(server_keyring_dir), "CWS-SHA256")
    body = {**WALKTHROUGH, "race": "Martian", "fname": "A" * 300, "height": 70.5, "city": "C" * 40}
    server = CWSServer(server_keys.key, Keyring(client_keyring_dir), api="v2")
    with server, httpx.Client(base_url=server.url, auth=auth, timeout=30) as client:
        assert client.post("/ws/patients/", content=compact(body)).status_code == 201
        assert server.patients()["FakeExternalID"]["race"] == "Martian"
    mapping = tmp_path / "v2.toml"
    mapping.write_text(SITE_MAPPING + '[fields.race]\ncolumn = "Race"\n[fields.city]\ncolumn = "City"\n')
    export = tmp_path / "in.csv"
    export.write_text(",".join([*BOOKING_HEADER, "Race", "City"]) + "\n"
                      + ",".join([*booking_rows(1)[0], "Martian", "C" * 40]) + "\n")  # fmt: skip
    [row] = [row for chunk in map_csv(export, load_mapping(mapping)) for row in chunk]
    assert row.valid, row.problems
