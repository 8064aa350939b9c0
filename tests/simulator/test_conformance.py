"""CorEMR's security walkthrough followed literally, with the real openssl and curl, against `cws-pipeline simulate`.

For each API version: write the version's example body to body.txt, sign it with `openssl dgst -sha1 -sign`
and with `-sha256`, base64 it with `openssl enc -A -base64`, send it with curl, then verify the answer the
walkthrough's way (`openssl enc -d -A -base64`, `openssl dgst -verify`); then a GET with an empty signed
body. v2's body is the walkthrough's own text; v1's and v3's are derived from CorEMR's field facts.
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

import pytest

import pipeline

from ..sites import CLIENT_ACCESS, SERVER_ACCESS, KeyPair

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


def _simulate(api: str, server_keys: KeyPair, client_keyring_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(pipeline.__file__).parents[1])}
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "simulate", "--api", api, "--port", "0",
         "--server-key", str(server_keys.private), "--client-keys", str(client_keyring_dir)],
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
    proc = _simulate(request.param, server_keys, client_keyring_dir)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("CWS simulator listening on "), line
        yield Walkthrough(request.param, tmp_path, line.rsplit(" ", 1)[1].strip(), client_keys, server_keys.public)
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
