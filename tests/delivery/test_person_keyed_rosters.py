"""Rosters without a booking number (Multnomah's is keyed by the person's id alone): a booking is told by its date.

Through the real CLI against the real local server (v2, with and without the bookings routes): keyed by person and
booking date, with a booking number made by a template, a returning person is a re-booking and a corrected name an
update; keyed by person alone, a changed booking date is a new booking too, never an update that overwrites the
delivered booking's date, and `validate` warns about that key.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from click.testing import CliRunner, Result

from pipeline.cli import cli
from pipeline.delivery._decisions import Target
from pipeline.simulator import ServerOptions

from ..sites import Site
from .test_no_bookings_routes import HELD

HEADER = ["Person ID", "First", "Last", "DOB", "Sex", "Book Date"]
FIRST, RETURN = "11/28/2026 22:15", "12/05/2026 03:40"
FIRST_BODY, RETURN_BODY = "2026-11-28 22:15:00.000", "2026-12-05 03:40:00.000"  # as the mapping writes them

PERSON_AND_DATE = """\
[target]
endpoint = "/ws/patients/"
key = ["external_id", "booking_date"]
on_change = "update"

[fields.external_id]
column = "Person ID"

[fields.facility]
value = 10000

[fields.agency]
value = 2

[fields.fname]
column = "First"

[fields.lname]
column = "Last"

[fields.dob]
column = "DOB"
type = "datetime"
formats = ["%Y-%m-%d"]
not_future = true

[fields.sex]
column = "Sex"

[fields.booking_no]
template = "{Person ID}-{Book Date}"   # no booking number in the export: the person and the booking's date
transform = ["digits"]                 # 812345-11/28/2026 22:15 -> 812345112820262215: safe in a URL path

[fields.booking_date]
column = "Book Date"
type = "datetime"
formats = ["%m/%d/%Y %H:%M"]
"""
PERSON_ONLY = PERSON_AND_DATE.replace('key = ["external_id", "booking_date"]', 'key = ["external_id"]')


def person(i: int, booked: str, first: str | None = None) -> list[str]:
    return [f"{812340 + i}", first or f"First{i}", f"Last{i}", f"19{60 + i}-0{i}-1{i}", "MF"[i % 2], booked]


def write_roster(site: Site, rows: list[list[str]], night: int) -> Path:
    path = site.dir / f"roster-{night}.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([HEADER, *rows])
    return path


def run(site: Site, roster: Path) -> Result:
    return CliRunner().invoke(cli, ["run", str(roster), "-m", str(site.mapping), "-c", str(site.config)])


def records(site: Site) -> dict[str, dict[str, Any]]:
    """The latest run's records by key, as `report --format json` gives them."""
    r = CliRunner().invoke(cli, ["report", "-c", str(site.config), "--format", "json"])
    assert r.exit_code == 0, r.output
    return {rec["key"]: rec for rec in json.loads(r.output)["records"]}


def the(recs: dict[str, dict[str, Any]], external_id: str) -> dict[str, Any]:
    """The one record of a person (keys start with the external_id)."""
    (found,) = [rec for key, rec in recs.items() if key.split("/")[0] == external_id]
    return found


SiteMode = Literal["bookings-routes", "no-bookings-routes", "update-adds-booking"]


@pytest.fixture(params=["bookings-routes", "no-bookings-routes", "update-adds-booking"])
def roster_site(request: pytest.FixtureRequest, site: Site) -> Iterator[tuple[Site, SiteMode]]:
    """The site against a real local v2 server with the bookings routes, or without them (and then, once more, with
    update_adds_booking = true), its run configuration saying which."""
    mode: SiteMode = request.param
    routes = mode == "bookings-routes"
    site.restart_server(options=ServerOptions(bookings_routes=routes))
    site.write_config(bookings_routes="yes" if routes else "no", update_adds_booking=mode == "update-adds-booking")
    yield site, mode


def three_nights(site: Site, mapping: str) -> tuple[Result, dict[str, dict[str, Any]], Result]:
    """Night 1: three people booked; night 2: person 1 back with a new booking (a new date, its first booking
    released), person 2's first name corrected, person 3 unchanged; night 3: night 2's export again. Returns night
    2's run, its records by key, and night 3's run."""
    site.mapping.write_text(mapping, encoding="utf-8")
    first = run(site, write_roster(site, [person(1, FIRST), person(2, FIRST), person(3, FIRST)], 1))
    assert first.exit_code == 0, first.output
    night_2 = [person(1, RETURN), person(2, FIRST, "Jon"), person(3, FIRST)]
    second = run(site, write_roster(site, night_2, 2))
    recs = records(site)
    before = site.server.counters().requests
    third = run(site, write_roster(site, night_2, 3))
    assert site.server.counters().requests - before == 0, "an unchanged export sent requests"
    return second, recs, third


def assert_returning_person(site: Site, mode: SiteMode, second: Result, rec: dict[str, Any]) -> None:
    """Person 1 came back: a new booking where the site can take one, else held saying what to do; never a second
    patient, never an update of the first booking."""
    counters = site.server.counters()
    assert counters.creates == {"812341": 1, "812342": 1, "812343": 1}
    assert counters.booking_updates == {}, "a booking was updated: the first booking's date overwritten"
    bookings = site.server.bookings()["812341"]
    assert bookings["812341112820262215"]["booking_date"] == FIRST_BODY  # the first booking keeps its date
    if mode == "bookings-routes":
        assert (rec["state"], rec["action"]) == ("delivered", "booking added")
        assert bookings["812341120520260340"]["booking_date"] == RETURN_BODY
        assert "812341" not in counters.updates  # a re-booking adds the booking, not the patient's details again
        assert second.exit_code == 0, second.output
    elif mode == "update-adds-booking":
        assert (rec["state"], rec["action"]) == ("delivered", "booking added")
        assert counters.updates.get("812341") == 1  # sent as a patient update (the local server adds no booking)
        assert second.exit_code == 0, second.output
    else:
        assert rec["state"] == "changed" and HELD.search(rec["error"]), rec
        assert set(bookings) == {"812341112820262215"} and "812341" not in counters.updates
        assert second.exit_code == 1 and "812341" in second.output


def assert_corrected_name(site: Site, rec: dict[str, Any]) -> None:
    """Person 2's corrected first name is an update of the patient, the booking untouched."""
    assert (rec["state"], rec["action"]) == ("delivered", "updated")
    assert site.server.patients()["812342"]["fname"] == "Jon"
    assert site.server.bookings()["812342"] == {
        "812342112820262215": {"facility": "10000", "booking_no": "812342112820262215", "booking_date": FIRST_BODY}
    }


def test_keyed_by_person_and_booking_date_a_returning_person_is_a_rebooking_and_a_corrected_name_an_update(
    roster_site: tuple[Site, SiteMode],
) -> None:
    site, mode = roster_site
    second, recs, third = three_nights(site, PERSON_AND_DATE)
    assert_returning_person(site, mode, second, the(recs, "812341"))
    assert_corrected_name(site, the(recs, "812342"))
    assert the(recs, "812343")["state"] == "skipped"
    assert (third.exit_code, third.output) == (0, "")  # night 3, the same export: quiet


def test_keyed_by_person_alone_a_changed_booking_date_is_a_new_booking_never_an_update(
    roster_site: tuple[Site, SiteMode],
) -> None:
    site, mode = roster_site
    second, recs, third = three_nights(site, PERSON_ONLY)
    assert_returning_person(site, mode, second, recs["812341"])
    assert_corrected_name(site, recs["812342"])
    assert recs["812343"]["state"] == "skipped"
    assert (third.exit_code, third.output) == (0, "")


def test_keyed_by_person_alone_a_new_booking_date_under_the_delivered_booking_number_is_held_never_overwrites(
    roster_site: tuple[Site, SiteMode],
) -> None:
    site, _ = roster_site
    constant_number = PERSON_ONLY.replace('template = "{Person ID}-{Book Date}"', 'template = "{Person ID}"')
    second, recs, third = three_nights(site, constant_number)
    held = recs["812341"]
    assert held["state"] == "changed" and second.exit_code == 1, second.output
    assert held["error"].startswith("patient 812341 has a new booking date under booking 812341, the number of the"
                                    " booking delivered in run 1:")  # fmt: skip
    assert "make booking_no from the person and the booking date" in held["error"]
    counters = site.server.counters()
    assert counters.booking_updates == {} and "812341" not in counters.updates
    assert site.server.bookings()["812341"]["812341"]["booking_date"] == FIRST_BODY  # not overwritten
    assert (recs["812342"]["action"], site.server.patients()["812342"]["fname"]) == ("updated", "Jon")
    assert (third.exit_code, third.output) == (0, "")  # reported once


def test_validate_warns_about_a_key_without_a_booking_field_and_still_passes(site: Site) -> None:
    roster = write_roster(site, [person(1, FIRST), person(2, FIRST)], 1)
    site.mapping.write_text(PERSON_ONLY, encoding="utf-8")
    warned = CliRunner().invoke(cli, ["validate", str(roster), "-m", str(site.mapping)])
    assert warned.exit_code == 0, warned.output
    (line,) = [x for x in warned.output.splitlines() if x.startswith("warning: ")]
    assert str(site.mapping) in line and '[target] key = ["external_id"] names no booking field' in line
    assert "add the booking date to the key" in line and "docs/returning-patients.md" in line
    site.mapping.write_text(PERSON_AND_DATE, encoding="utf-8")
    quiet = CliRunner().invoke(cli, ["validate", str(roster), "-m", str(site.mapping)])
    assert quiet.exit_code == 0 and "warning" not in quiet.output, quiet.output


@pytest.mark.parametrize(
    ("key_names_booking", "delivered", "changes", "new"),
    [
        (False, True, {"booking_date": RETURN_BODY}, True),
        (False, True, {"booking_no": "B2"}, True),
        (False, True, {"fname": "Jon"}, False),  # a correction
        (False, True, {"facility": 2}, False),  # a booking field, but not what tells one booking from another
        (False, False, {"booking_date": RETURN_BODY}, False),  # the delivered body pruned: cannot be told
        (True, True, {"booking_date": RETURN_BODY}, False),  # the key names the booking: another key, another row
    ],
)
def test_a_new_booking_is_a_changed_booking_number_or_date_under_a_key_naming_the_person(
    key_names_booking: bool, delivered: bool, changes: dict[str, Any], new: bool
) -> None:
    target = Target.default("http://127.0.0.1:1/ws/patients/")
    target = dataclasses.replace(target, key_names_booking=key_names_booking)
    before = {"external_id": "812341", "facility": 1, "fname": "John", "booking_no": "B1", "booking_date": FIRST_BODY}
    body = json.dumps({**before, **changes}).encode()
    assert target.new_booking(json.dumps(before).encode() if delivered else None, body) is new
