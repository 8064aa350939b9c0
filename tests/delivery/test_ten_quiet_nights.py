"""Ten nights of a real site from cron: a trailer line, training records, one line per charge and three rows
that stay bad. Nights with nothing new print nothing and exit 0; the night a new bad row appears prints it
and exits 1; `status --json` lists the 3 + 1 outstanding rows once each (issue 14)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ..sites import BOOKING_HEADER, SITE_MAPPING, Site, booking_rows

pytestmark = pytest.mark.slow  # ten real `run` processes: run by .ci/run

MAPPING = (
    SITE_MAPPING.replace('delimiter = ","', 'delimiter = ","\nfooter_lines = 1\nfooter_match = "^TRAILER,"')
    + '\n[[exclude]]\ncolumn = "RecordType"\nmatch = "(?i)^training$"\nreason = "training record"\n'
)
BAD = {3: ("DOB", "not a date"), 6: ("DOB", "31/02/1990"), 9: ("Sex", "")}  # persistently bad, by booking


def export(site: Site, night: int) -> Path:
    """Night N's cumulative export: 8 + N bookings, booking 2 on three lines (one per charge), two training
    records, the three bad bookings, from night 6 a fourth bad one, and a trailer line with the row count."""
    header = [*BOOKING_HEADER, "RecordType"]
    rows = [[*row, "LIVE"] for row in booking_rows(8 + night)]
    for booking, (column, value) in BAD.items():
        rows[booking - 1][header.index(column)] = value
    if night >= 6:
        rows[11][header.index("DOB")] = "2099-01-01"  # booking 12: a birth date in the future
    rows[2:2] = [list(rows[1]), list(rows[1])]  # booking 2 repeated for its second and third charges
    rows += [[f"T{i:06d}", f"TB{i:06d}", "Test", "Record", "", "", "", "TRAINING"] for i in (1, 2)]
    lines = [",".join(header), *(",".join(r) for r in rows), f"TRAILER,{len(rows)}"]
    path = site.dir / f"bookings-{night:02d}.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def cron(site: Site, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """`cws-pipeline ARGS` as cron runs it: a child process whose output is not a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *map(str, args)], capture_output=True, text=True, check=False
    )


def test_ten_nights_of_a_real_site_speak_only_when_something_is_new(site: Site) -> None:
    mapping = site.dir / "county.toml"
    mapping.write_text(MAPPING, encoding="utf-8")
    heard: dict[int, tuple[int, str]] = {}
    for night in range(1, 11):
        done = cron(site, "run", export(site, night), "-m", mapping, "-c", site.config)
        heard[night] = (done.returncode, done.stdout + done.stderr)

    for night in (1, 6):  # the first night (three bad rows) and the night booking 12 goes bad
        assert heard[night][0] == 1 and heard[night][1].startswith(f"Run {night}: "), heard[night]
    quiet = {night: said for night, said in heard.items() if night not in (1, 6)}
    assert quiet == dict.fromkeys(quiet, (0, ""))  # nothing new: cron mails nothing
    first, sixth = heard[1][1], heard[6][1]
    assert all(f"key P{b:06d}/B{b:06d}: invalid" in first for b in BAD)
    assert "key P000012/B000012: invalid" in sixth
    assert "key P000003" not in sixth and "3 more row(s) still need a person as reported before" in sixth
    for said in (first, sixth):
        assert "TRAILER" not in said and "T000001" not in said and "P000002" not in said  # never alarms

    status = cron(site, "status", "-c", site.config, "--json")
    assert status.returncode == 1  # rows outstanding: a monitoring check sees them every day, once each
    outstanding = json.loads(status.stdout)["outstanding"]
    assert sorted((r["key"], r["since_run"]) for r in outstanding) == [
        ("P000003/B000003", 1), ("P000006/B000006", 1), ("P000009/B000009", 1), ("P000012/B000012", 6),
    ]  # fmt: skip

    counts = json.loads(cron(site, "report", "-c", site.config, "--format", "json").stdout)["runs"][-1]["counts"]
    assert (counts["excluded"], counts["duplicate"], counts["invalid"]) == (2, 2, 4)
    assert sorted(site.server.patients()) == [f"P{i:06d}" for i in range(1, 19) if i not in BAD]  # 12: before
