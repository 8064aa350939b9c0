"""A week of a jail's nightly exports through `cws-pipeline run` against the local server with faults on: 40% of
bookings are people booked before (some entered in CorEMR by hand before the first night), rows are corrected
on later nights, one night's export has a line per charge. Afterwards CorEMR holds every patient and every
booking once, nothing was sent again blindly, no row needs a person but those the policy holds, and the audit
passes."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.simulator import Fault

from ..sites import SITE_MAPPING, Site

NIGHTS = 7
NEW_BOOKINGS = 20  # each night
RETURNING = 8  # of them, people booked before: 40%
WINDOW = 3  # an export holds the bookings of its night and the two before
BY_HAND = 8  # people entered in CorEMR by hand before the first night
PER_CHARGE_NIGHT = 4
FAULTS = [
    Fault("status_503", rate=0.05, methods=("GET", "POST", "PUT")),
    Fault("status_429", rate=0.05, methods=("GET", "POST", "PUT"), retry_after="0"),
    Fault("drop_after_processing", rate=0.1, methods=("GET", "POST", "PUT")),
    Fault("signature_corrupt", rate=0.03, methods=("GET", "POST", "PUT")),  # an answer that cannot be trusted
]


@dataclass
class Person:
    """Someone the jail books: their ID and what the export says of them (corrected as the week goes)."""

    number: int
    first: str = ""
    by_hand: bool = False

    @property
    def external_id(self) -> str:
        return f"W{self.number:05d}"


@dataclass
class Week:
    """The week's bookings as the jail's system holds them: (night, person, booking number, booked at)."""

    rng: random.Random
    people: list[Person] = field(default_factory=list)
    bookings: list[tuple[int, Person, str, str]] = field(default_factory=list)
    corrected: set[str] = field(default_factory=set)  # keys of rows delivered and then corrected

    def person(self, by_hand: bool = False) -> Person:
        p = Person(len(self.people) + 1, by_hand=by_hand)
        p.first = f"First{p.number}"
        self.people.append(p)
        return p

    def night(self, night: int) -> None:
        """Book this night's people: new ones, and returning ones (hand-entered or from earlier nights)."""
        booked_before = {p.number for _, p, _, _ in self.bookings}
        returning = [p for p in self.people if p.number in booked_before or p.by_hand]
        chosen = self.rng.sample(returning, RETURNING)
        for j, p in enumerate(chosen + [self.person() for _ in range(NEW_BOOKINGS - RETURNING)]):
            self.bookings.append((night, p, f"N{night}-{j:02d}", f"2026-11-{night:02d} 2{j % 4}:15"))

    def correct(self, night: int) -> None:
        """Fix two earlier people's first names (every row of theirs from now on) and one booking's time."""
        earlier = [(p, b) for n, p, b, _ in self.bookings if night - WINDOW < n < night]
        for p, _ in self.rng.sample(earlier, 2):
            p.first = f"First{p.number}-fixed{night}"
        self.corrected |= {f"{p.external_id}/{b}" for p, b in earlier if p.first.endswith(f"-fixed{night}")}
        i = self.rng.choice([i for i, (n, _, _, _) in enumerate(self.bookings) if night - WINDOW < n < night])
        n, p, b, _ = self.bookings[i]
        self.bookings[i] = (n, p, b, f"2026-11-{n:02d} 23:59")
        self.corrected.add(f"{p.external_id}/{b}")

    def export(self, site: Site, night: int) -> Path:
        rows = [[p.external_id, b, p.first, f"Last{p.number}", f"19{50 + p.number % 40}-0{1 + p.number % 9}-11",
                 "MF"[p.number % 2], at] for n, p, b, at in self.bookings if night - WINDOW < n <= night]  # fmt: skip
        if night == PER_CHARGE_NIGHT:  # one line per charge: each booking on 1 to 3 identical lines
            rows = [r for r in rows for _ in range(self.rng.randint(1, 3))]
        return site.write_csv(rows, f"bookings-night{night}.csv")


def enter_by_hand(site: Site, p: Person) -> None:
    site.server.enter_by_hand({
        "external_id": p.external_id, "facility": 10000, "agency": 2, "fname": p.first, "lname": f"Last{p.number}",
        "dob": "1970-01-01", "sex": "F", "booking_no": f"OLD-{p.number}", "booking_date": "2025-06-01 10:00:00.000",
    })  # fmt: skip


def cli_json(*args: str) -> tuple[int, Any]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, json.loads(result.output)


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["update", "hold"])
def test_a_week_of_nights_holds_every_patient_and_booking_once_and_leaves_only_held_rows(
    site: Site, policy: str
) -> None:
    site.mapping.write_text(SITE_MAPPING.replace("[target]\n", f'[target]\non_change = "{policy}"\n'))
    site.write_config(max_attempts=10, circuit_breaker=1000)  # faults are rare; 10 tries settle every row
    week = Week(random.Random(12))
    for _ in range(BY_HAND):
        enter_by_hand(site, week.person(by_hand=True))
    site.server.set_faults(FAULTS)
    runner = CliRunner()
    for night in range(1, NIGHTS + 1):
        week.night(night)
        if night in (3, 5, 6):
            week.correct(night)
        csv = week.export(site, night)
        result = runner.invoke(cli, ["run", str(csv), "--mapping", str(site.mapping), "--config", str(site.config)])
        assert result.exit_code in (0, 1), result.output
        assert "Traceback" not in result.output
    site.server.set_faults([])

    counters = site.server.counters()
    every_booking = {(p.external_id, b) for _, p, b, _ in week.bookings}
    held = {(eid, b) for eid, nums in site.server.bookings().items() for b in nums}
    assert every_booking <= held and len(held) == len(every_booking) + BY_HAND  # plus the hand-entered OLD-n
    assert counters.creates == {p.external_id: 1 for p in week.people}
    assert all(n == 1 for nums in counters.booking_creates.values() for n in nums.values())
    assert counters.resent_creates == {} and counters.resent_booking_creates == {}  # nothing sent again blindly
    assert counters.faults_applied.get("drop_after_processing", 0) >= 5, "the faults never bit: nothing proven"

    code, status = cli_json("status", "-c", str(site.config), "--json")
    outstanding = {(r["key"], r["state"]) for r in status["outstanding"]}
    if policy == "update":
        assert outstanding == set() and code == 0
        fixed = [p for p in week.people if "-fixed" in p.first]
        assert fixed and all(site.server.patients()[p.external_id]["fname"] == p.first for p in fixed)
    else:
        assert {state for _, state in outstanding} == {"changed"}
        assert {key for key, _ in outstanding} <= week.corrected and counters.updates == {}
    code, report = cli_json("report", "-c", str(site.config), "--run", str(PER_CHARGE_NIGHT), "--format", "json")
    assert report["runs"][0]["counts"]["duplicate"] > 0
    audit = runner.invoke(cli, ["audit", "-c", str(site.config)])
    assert audit.exit_code == 0 and "Audit passed" in audit.output, audit.output
