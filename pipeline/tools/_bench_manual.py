"""The manual method `bench --baseline` compares against: the walkthrough's way, one row at a time.

Per row: write the body to a file, `openssl dgst -sha256 -sign KEY body | openssl enc -A -base64`,
then one POST with `curl` (or Python's `http.client` when curl is not installed). The response's
signature is not checked, which flatters the manual method.
"""

from __future__ import annotations

import http.client
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .._errors import BenchFailed

__all__ = ["ManualResult", "manual_method"]


@dataclass(frozen=True)
class ManualResult:
    """How the manual method did on a sample of rows."""

    rows: int
    accepted: int  # answers with a 2xx status
    seconds: float
    http_client: str

    @property
    def rows_per_second(self) -> float:
        """Rows sent per wall-clock second."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def manual_method(bodies: Sequence[bytes], url: str, key: Path, access: str, workdir: Path) -> ManualResult:
    """POST each body to URL the walkthrough's way (openssl sign + base64, then curl), sequentially."""
    workdir.mkdir(parents=True, exist_ok=True)
    body_file = workdir / "body.json"
    curl = shutil.which("curl")
    accepted = 0
    started = time.perf_counter()
    for body in bodies:
        body_file.write_bytes(body)
        signature = _openssl_signature(key, body_file)
        header = f"CWS-SHA256 Access={access}, Signature={signature}"
        status = _curl_post(curl, url, header, body_file, workdir) if curl else _http_client_post(url, header, body)
        accepted += 200 <= status < 300
    seconds = time.perf_counter() - started
    return ManualResult(len(bodies), accepted, seconds, "curl" if curl else "http.client")


def _openssl_signature(key: Path, body_file: Path) -> str:
    dgst = subprocess.Popen(["openssl", "dgst", "-sha256", "-sign", str(key), str(body_file)], stdout=subprocess.PIPE)
    encoded = subprocess.run(["openssl", "enc", "-A", "-base64"], stdin=dgst.stdout, capture_output=True, check=True)
    assert dgst.stdout is not None
    dgst.stdout.close()
    if dgst.wait() != 0:
        raise BenchFailed("openssl dgst -sign failed")
    return encoded.stdout.decode("ascii").strip()


def _curl_post(curl: str, url: str, header: str, body_file: Path, workdir: Path) -> int:
    done = subprocess.run(
        [curl, "-sS", "-X", "POST", "-H", "Content-Type: application/json", "-H", f"Authorization: {header}",
         "--data-binary", f"@{body_file}", "-o", str(workdir / "response.json"), "-w", "%{http_code}", url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(done.stdout.strip() or 0)


def _http_client_post(url: str, header: str, body: bytes) -> int:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        conn.request("POST", parts.path or "/", body, {"Content-Type": "application/json", "Authorization": header})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()
