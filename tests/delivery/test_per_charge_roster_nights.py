"""Five cron nights of an export shaped like the Hennepin roster (issue 21): one line per charge, a tail of lines
in a longer layout (28 cells under a 23-cell header, the mapped columns at the same places), malformed lines
with no key, a booking whose every line is bad, and on night 2 one of a booking's five charge lines corrected.

Nights that bring nothing new needing a person print nothing and exit 0; the long lines are delivered because
the mapping says `extra_cells = "ignore"`; the run summary, `status --json` and `report --all --format json` give
the same count of bookings needing a person."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ..sites import BOOKING_HEADER, SITE_MAPPING, Site, booking_rows

pytestmark = pytest.mark.slow  # six real `run` processes

MAPPING = SITE_MAPPING.replace('delimiter = ","', 'delimiter = ","\nextra_cells = "ignore"')
HEADER = [*BOOKING_HEADER, "Charge", *(f"Col{i}" for i in range(9, 24))]  # 23 cells
CORRECTED = 4  # booking 4: five charge lines; on night 2 one of them has a corrected first name
ALL_BAD = 6  # booking 6: three charge lines, each with a birth date that is not a date
LONG = (20, 21, 22)  # bookings in the export's tail, two lines each, in the 28-cell layout


def charge_lines(booking: list[str], charges: int, width_extra: int = 0) -> list[list[str]]:
    """One line per charge: the booking's cells, the charge, the header's other cells, then any extra cells."""
    return [[*booking, f"CH{c}", *("x" * 15), *(f"more{i}" for i in range(width_extra))] for c in range(charges)]


def export(site: Site, night: int) -> Path:
    """Night N: bookings 1..10 (4 on five charge lines, 6 on three bad ones, the rest on one or two), two malformed
    lines with no key, the long tail; night 2 on corrects one charge line of booking 4; night 4 on has a new
    booking at the top (every later line moves down one: lines are not what makes a row known)."""
    bookings = booking_rows(10)
    bookings[ALL_BAD - 1][4] = "not a date"
    lines: list[list[str]] = []
    if night >= 4:
        lines += charge_lines(booking_rows(1, start=30)[0], 1)
    for i, booking in enumerate(bookings, start=1):
        lines += charge_lines(booking, {CORRECTED: 5, ALL_BAD: 3}.get(i, 1 + i % 2))
        if i == 7:  # malformed lines a jail system wrote with no booking columns
            lines += [
                ["", "", "", "", "", "", "", "CH9", *("y" * 15)],
                ["", "", "", "", "", "", "", "CH8", *("z" * 15)],
            ]
    if night >= 2:
        at = next(n for n, line in enumerate(lines) if line[0] == f"P{CORRECTED:06d}") + 2
        lines[at][2] = "Corrected"  # one of booking 4's five lines now names the person otherwise
    for booking in booking_rows(len(LONG), start=LONG[0]):
        lines += charge_lines(booking, 2, width_extra=5)
    path = site.dir / f"roster-{night}.csv"
    path.write_text("\n".join(",".join(f'"{c}"' for c in line) for line in [HEADER, *lines]) + "\n", encoding="utf-8")
    return path


def cron(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """`cws-pipeline ARGS` as cron runs it: a child process whose output is not a terminal."""
    return subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)], capture_output=True, text=True,
                          check=False)  # fmt: skip


def needs_person_in(summary: str) -> int:
    found = re.search(r"^  (\d+) bookings? needs? a person", summary, re.M)
    assert found is not None, summary
    return int(found[1])


def test_five_nights_of_a_per_charge_roster_are_quiet_when_nothing_is_new(site: Site) -> None:
    mapping = site.dir / "roster.toml"
    mapping.write_text(MAPPING, encoding="utf-8")
    heard = {}
    for night in range(1, 6):
        done = cron("run", export(site, night), "-m", mapping, "-c", site.config)
        heard[night] = (done.returncode, done.stdout + done.stderr)

    first, second = heard[1][1], heard[2][1]
    assert heard[1][0] == 1 and f"key P{ALL_BAD:06d}/B{ALL_BAD:06d}: invalid" in first
    assert first.count("key (no key): invalid") == 2 and needs_person_in(first) == 3
    assert heard[2][0] == 1  # the corrected charge line is news, and only it
    assert f"key P{CORRECTED:06d}/B{CORRECTED:06d}: invalid" in second and "(no key)" not in second
    assert f"P{ALL_BAD:06d}" not in second and "5 more row(s) still need a person as reported before" in second
    # Nights 3 and 5: the same export as the night before; night 4: a new booking moves every line down one.
    assert {n: heard[n] for n in (3, 4, 5)} == dict.fromkeys((3, 4, 5), (0, ""))

    patients = set(site.server.patients())
    assert {f"P{b:06d}" for b in LONG} <= patients  # the 28-cell lines were delivered
    assert f"P{ALL_BAD:06d}" not in patients and "P000030" in patients

    status = json.loads(cron("status", "-c", site.config, "--json").stdout)
    report = json.loads(cron("report", "-c", site.config, "--all", "--format", "json").stdout)
    told = cron("run", export(site, 5), "-m", mapping, "-c", site.config, "-v")  # the summary, asked for
    assert told.returncode == 0
    # Booking 4 (one bad line of five), booking 6 (three bad lines), two malformed lines: 4 bookings, 6 lines.
    assert status["needs_person"] == report["needs_person"] == needs_person_in(told.stdout) == 4
    assert needs_person_in(second) == 4
    assert len([r for r in report["rows"] if r["state"] == "invalid"]) == 4
    assert len({r["key"] for r in report["rows"] if r["key"]}) == 10 + len(LONG) + 1  # bookings, not lines


def test_without_extra_cells_the_long_lines_are_row_problems(site: Site) -> None:
    mapping = site.dir / "default.toml"
    mapping.write_text(SITE_MAPPING, encoding="utf-8")
    said = cron("validate", export(site, 1), "-m", mapping, "--show", "0")
    assert said.returncode == 1 and "invalid:   11" in said.stdout  # 6 long lines, 3 of booking 6, 2 malformed
    mapping.write_text(MAPPING, encoding="utf-8")
    said = cron("validate", export(site, 1), "-m", mapping, "--show", "0")
    assert "invalid:   5" in said.stdout and '6 lines had extra cells (ignored: extra_cells = "ignore")' in said.stdout
