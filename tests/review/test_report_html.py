"""The HTML report: self-contained, and rendered by a real headless browser (Debian's chromium)."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import struct
import subprocess
import zlib
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.delivery import load_config, run_bookings
from pipeline.ledger import Ledger

from ..sites import Site, booking_rows
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
    # 8 rows over 2 runs, each counted once by its latest state (run 2 skipped the 6 that run 1 delivered)
    assert bars == {"delivered": "0", "skipped": "6", "changed": "0", "invalid": "1", "rejected": "1",
                    "failed": "0", "unverified": "0", "ambiguous": "0", "excluded": "0",
                    "duplicate": "0"}  # fmt: skip
    segments = re.findall(r'<rect class="segment" data-run="(\d+)" data-state="(\w+)"', dom)
    assert {run for run, _ in segments} == {str(mixed.first), str(mixed.second)}
    table = dom[dom.index('id="attention-table"') :]
    rows = re.findall(r'<tr class="row" data-state="(\w+)" data-key="([^"]*)">', table)
    assert sorted(rows) == [("invalid", "P000004/B000004"), ("rejected", "P000002/B000002")]  # each row once
    assert "HTTP 400" in table
    assert "Rows needing attention (2)" in dom

    shot = tmp_path / "shot.png"
    browse(chromium, tmp_path, f"--screenshot={shot}", out.as_uri())
    width, height, pixels = png_pixels(shot)
    assert (width, height) == (WIDTH, HEIGHT)
    assert len(set(pixels)) > 64, "the screenshot is blank"  # text, bars and badges in many shades

    pdf = tmp_path / "printed.pdf"
    browse(chromium, tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer", out.as_uri())
    printed = pdf.read_bytes()
    assert printed.startswith(b"%PDF") and len(printed) > 10_000


# -- thirty nightly runs, measured in the browser ---------------------------------------------------

_MEASURE = """<pre id="measured"></pre><script>
const found = {};
for (const svg of document.querySelectorAll("svg")) {
  found[svg.id] = Array.from(svg.querySelectorAll("text")).map((t) => {
    const r = t.getBoundingClientRect();
    return [t.textContent, r.left, r.top, r.right, r.bottom, parseFloat(getComputedStyle(t).fontSize)];
  });
}
// Each table's right edge, and the right edge of what the window shows (nothing may be cut there).
found.tables = Array.from(document.querySelectorAll("table")).map((t) => {
  const r = t.getBoundingClientRect();
  return [t.id, r.left, r.top, r.right, r.bottom, document.documentElement.clientWidth];
});
document.getElementById("measured").textContent = JSON.stringify(found);
</script>"""


def measured_text_boxes(chromium: str, tmp_path: Path, html: str) -> dict[str, list[list[Any]]]:
    """Every SVG text element's box as the real browser lays it out (a copy of the report with a measuring script:
    the report itself forbids scripts)."""
    probe = tmp_path / "probe.html"
    csp = re.search(r'<meta http-equiv="Content-Security-Policy"[^>]*>', html)
    assert csp is not None
    probe.write_text(html.replace(csp[0], "").replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
    dom = browse(chromium, tmp_path, "--dump-dom", probe.as_uri()).stdout
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S)
    assert found is not None and found[1], dom[-2000:]
    boxes: dict[str, list[list[Any]]] = json.loads(unescape(found[1]))
    return boxes


def overlapping(boxes: list[list[Any]]) -> list[tuple[str, str]]:
    """Pairs of text boxes that overlap by more than half a pixel."""
    pairs = []
    for i, (a, a_left, a_top, a_right, a_bottom, _) in enumerate(boxes):
        for b, b_left, b_top, b_right, b_bottom, _ in boxes[i + 1 :]:
            if a_left < b_right - 0.5 and b_left < a_right - 0.5 and a_top < b_bottom - 0.5 and b_top < a_bottom - 0.5:
                pairs.append((a, b))
    return pairs


@pytest.mark.slow
def test_thirty_nightly_runs_have_a_readable_axis_distinct_rows_and_the_audit(
    site: Site, tmp_path: Path, chromium: str
) -> None:
    for night in range(1, 31):  # a cumulative export: one new booking a night, row 2 never valid
        rows = booking_rows(2 + night)
        rows[1][4] = "not a date"
        run_bookings(site.write_csv(rows, f"bookings-{night:02d}.csv"), site.mapping, load_config(site.config))
    out = tmp_path / "month.html"
    args = ["report", "-c", str(site.config), "--all", "--format", "html", "--audit", "--output", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")

    boxes = measured_text_boxes(chromium, tmp_path, html)
    axis = boxes["runs-chart"]
    labels = [b[0] for b in axis if b[0].isdigit() and int(b[0]) <= 30 and b[2] > 200]  # run ids under the bars
    assert "30" in labels and len(labels) >= 8  # the latest run is always labelled; enough to read the axis by
    assert overlapping(axis) == [], overlapping(axis)
    assert overlapping(boxes["outcome-chart"]) == []
    assert min(b[5] for b in axis) >= 11  # px: readable, not shrunk to fit
    tables = boxes["tables"]
    assert {t[0] for t in tables} >= {"runs-table", "attention-table"}
    assert [t[0] for t in tables if t[3] > t[5]] == [], tables  # no table runs past the 1,200 px window

    dom = browse(chromium, tmp_path, "--dump-dom", out.as_uri()).stdout
    bars = {state: int(n) for state, n in re.findall(r'<rect class="bar" data-state="(\w+)" data-count="(\d+)"', dom)}
    assert sum(bars.values()) == 32 and bars["invalid"] == 1 and bars["delivered"] == 1 and bars["skipped"] == 30
    assert "31 of 32 distinct bookings over 30 runs" in dom
    # Row 2 was reported on night 1 and is unchanged since: the last night exited 0, so the headline is green.
    assert '<p id="outcome-status" data-exit="0"><span class="ok">31 of 32' in dom
    assert '<span id="needs-person">1 booking needs a person</span>' in dom
    assert len(re.findall(r'<tr class="run" data-run="\d+">', dom)) == 30
    assert re.findall(r'<tr class="row" data-state="(\w+)" data-key="([^"]*)">', dom) == [
        ("invalid", "P000002/B000002")
    ]
    with Ledger.open_read_only(site.ledger) as ledger:
        head = ledger.head()
    assert head is not None
    verdict = re.search(r'<p id="audit-verdict"><span class="(\w+)">([^<]*)</span>', dom)
    assert verdict is not None and verdict[1] == "ok" and verdict[2].startswith("Audit passed")
    assert f"entry {head.seq}, hash {head.hash}" in dom


def test_nothing_sent_is_never_shown_as_good(site: Site, tmp_path: Path) -> None:
    rows = booking_rows(2)
    for row in rows:
        row[4] = "not a date"
    run_bookings(site.write_csv(rows), site.mapping, load_config(site.config))  # every row invalid: nothing sent
    out = tmp_path / "nothing.html"
    assert CliRunner().invoke(cli, ["report", "-c", str(site.config), "-f", "html", "-o", str(out)]).exit_code == 0
    html = out.read_text(encoding="utf-8")
    signatures = html[html.index('id="verification-status"') :].split("</p>", 1)[0]
    assert 'class="ok"' not in signatures and "0 answers" not in signatures
    assert "No answers came back in this run, so no CorEMR signature was checked" in signatures
    assert '<span class="bad">0 of 2 rows delivered or already delivered</span>' in html
