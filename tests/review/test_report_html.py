"""The HTML report: self-contained, and rendered by a real headless browser (Debian's chromium)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli

from ..sites import Site
from .mixed_ledger import MixedLedger, make_mixed_ledger

WIDTH, HEIGHT = 1200, 1600


@pytest.fixture
def mixed(site: Site) -> MixedLedger:
    """A ledger of two real runs with rows in several states (see test_report)."""
    return make_mixed_ledger(site)


@pytest.fixture
def chromium() -> str:
    """The chromium binary; CI (CWS_REQUIRE_CHROMIUM=1) fails without it, a developer's machine skips."""
    found = shutil.which("chromium")
    if found is None:
        message = "chromium is not installed: apt-get install chromium (Debian) to run the browser test"
        if os.environ.get("CWS_REQUIRE_CHROMIUM") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


def html_report(mixed: MixedLedger, out: Path, *args: str) -> str:
    """Write the HTML report with the CLI and return its text."""
    cmd = ["report", "--ledger", str(mixed.site.ledger), "--format", "html", "--output", str(out), *args]
    result = CliRunner().invoke(cli, cmd)
    assert result.exit_code == 0, result.output
    return out.read_text(encoding="utf-8")


def browse(chromium: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless chromium with no network, no profile and no background services."""
    profile = tmp_path / "chromium-profile"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}", *args]  # fmt: skip
    env = {**os.environ, "HOME": str(tmp_path)}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def png_pixels(path: Path) -> tuple[int, int, bytes]:
    """Width, height and the decompressed (still filtered) scanlines of a PNG, read with the standard library."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    return width, height, zlib.decompress(idat)


def test_html_report_is_one_self_contained_private_file(mixed: MixedLedger, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    html = html_report(mixed, out, "--all")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    for fetches in ("<script", "<link", "<img", "<iframe", "src=", "href=", "url(", "@import", "@font-face"):
        assert fetches not in html, fetches
    assert "default-src 'none'" in html  # and the browser is told not to fetch anything
    assert "@media print" in html
    assert 'id="outcome-chart"' in html and 'id="runs-chart"' in html and 'id="attention-table"' in html
    for i in range(1, 9):
        assert f"First{i}" not in html and f"Last{i}" not in html


def test_single_run_report_has_metadata_and_no_history_chart(mixed: MixedLedger, tmp_path: Path) -> None:
    html = html_report(mixed, tmp_path / "one.html", "--run", str(mixed.first))
    assert "CWS delivery report: run 1" in html and 'id="runs-chart"' not in html
    assert mixed.csv.name in html and "county-jms (CWS-SHA256)" in html and "/ws/patients/" in html
    assert '<rect class="bar" data-state="delivered" data-count="6"' in html
    assert "7 answers carried a good CorEMR signature; 0 did not" in html


def test_browser_renders_the_charts_and_the_attention_table(mixed: MixedLedger, tmp_path: Path, chromium: str) -> None:
    out = tmp_path / "report.html"
    html_report(mixed, out, "--all")
    dom = browse(chromium, tmp_path, "--dump-dom", out.as_uri()).stdout
    bars = dict(re.findall(r'<rect class="bar" data-state="(\w+)" data-count="(\d+)"', dom))
    assert bars == {"delivered": "6", "skipped": "6", "changed": "0", "invalid": "2", "rejected": "2",
                    "failed": "0", "unverified": "0", "ambiguous": "0", "excluded": "0"}  # fmt: skip
    segments = re.findall(r'<rect class="segment" data-run="(\d+)" data-state="(\w+)"', dom)
    assert {run for run, _ in segments} == {str(mixed.first), str(mixed.second)}
    table = dom[dom.index('id="attention-table"') :]
    rows = re.findall(r'<tr class="row" data-state="(\w+)">', table)
    assert sorted(rows) == ["invalid", "invalid", "rejected", "rejected"]
    assert "P000004/B000004" in table and "HTTP 409" in table
    assert "Rows needing attention (4)" in dom

    shot = tmp_path / "shot.png"
    browse(chromium, tmp_path, f"--screenshot={shot}", out.as_uri())
    width, height, pixels = png_pixels(shot)
    assert (width, height) == (WIDTH, HEIGHT)
    assert len(set(pixels)) > 64, "the screenshot is blank"  # text, bars and badges in many shades

    pdf = tmp_path / "printed.pdf"
    browse(chromium, tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer", out.as_uri())
    printed = pdf.read_bytes()
    assert printed.startswith(b"%PDF") and len(printed) > 10_000
