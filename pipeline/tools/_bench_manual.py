"""The manual method `bench --baseline` compares against: the walkthrough's way, one row at a time.

Per row: write the body to a file, `openssl dgst -sha256 -sign KEY body | openssl enc -A -base64`,
then one POST with `curl` (or httpx, one request per connection, when curl is not installed). The response's
signature is not checked, which flatters the manual method.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from .._errors import BenchFailed

__all__ = ["ManualResult", "manual_method"]


@dataclass(frozen=True)
class ManualResult:
    """How the manual method did on a sample of rows."""

    rows: int
    accepted: int  # answers with a 2xx status
    seconds: float
    sent_with: str  # "curl", or "httpx" when curl is not installed

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
        status = _curl_post(curl, url, header, body_file, workdir) if curl else _httpx_post(url, header, body)
        accepted += 200 <= status < 300
    seconds = time.perf_counter() - started
    return ManualResult(len(bodies), accepted, seconds, "curl" if curl else "httpx")


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


def _httpx_post(url: str, header: str, body: bytes) -> int:
    """One POST on a new connection, as a script run once per row would make it."""
    headers = {"Content-Type": "application/json", "Authorization": header}
    return httpx.post(url, content=body, headers=headers, timeout=60, follow_redirects=False).status_code
