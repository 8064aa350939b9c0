"""Bookings routes are a fact about the site, found out, never assumed: against the local server playing CorEMR v3
as its page documents it (no bookings routes), returning people are held saying what to do in CorEMR (or sent as a
patient update where the site says so), no row makes a second create in a run, a bookings route's 404 is read by
reading the patient, and the "already exists" status is the site's setting."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.delivery import RowOutcome, RunResult, load_config, run_bookings
from pipeline.simulator import ServerOptions

from ..sites import SITE_MAPPING, V3_SITE_MAPPING, RecordedProgress, Site, booking_rows
from .test_week_of_nights import BY_HAND, WINDOW, Week, enter_by_hand

V3_MAPPING = V3_SITE_MAPPING.replace("[target]\n", '[target]\non_change = "update"\n')
NIGHTS = 6
HELD = re.compile(
    r"patient (\S+) is already in CorEMR and this site has no bookings routes \(.*\): held, not sent; add booking"
    r" (\S+) to patient \1 in CorEMR by hand, then `cws-pipeline accept` the row"
)


@pytest.fixture
def v3_site(site: Site) -> Site:
    """The site against a local server speaking v3 as documented (no bookings routes), its config saying nothing of
    them; `serve(site, **options)` replaces the server."""
    site.restart_server(api="v3")
    site.mapping.write_text(V3_MAPPING, encoding="utf-8")
    site.write_config(bookings_routes=None)
    return site


def serve(site: Site, **options: object) -> None:
    """Replace the site's server with a v3 one told OPTIONS (ServerOptions)."""
    site.restart_server(api="v3", options=ServerOptions(**options))  # type: ignore[arg-type]


def run(site: Site, csv: Path, outcomes: list[RowOutcome] | None = None) -> RunResult:
    progress = RecordedProgress(outcomes)
    return run_bookings(csv, site.mapping, load_config(site.config), progress=progress, sleep=lambda _: None)


def creates_per_row_within(before: dict[str, int], after: dict[str, int], export: list[list[str]]) -> bool:
    """True when no external_id got more create requests this night than the export has rows (keys) for it."""
    keys: dict[str, set[str]] = {}
    for line in export:
        keys.setdefault(line[0], set()).add(line[1])
    return all(after.get(eid, 0) - before.get(eid, 0) <= len(keys.get(eid, ())) for eid in after)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("exists_status", "by_update"), [(409, False), (422, False), (409, True)], ids=["409", "422", "update-adds-booking"]
)
def test_a_week_against_v3_without_bookings_routes_creates_no_one_twice_and_holds_returning_people(
    v3_site: Site, exists_status: int, by_update: bool
) -> None:
    site = v3_site
    serve(site, exists_status=exists_status)
    site.write_config(bookings_routes=None, exists_status=[exists_status], update_adds_booking=by_update)
    week = Week(random.Random(7))
    for _ in range(BY_HAND):
        enter_by_hand(site, week.person(by_hand=True))
    held: list[RowOutcome] = []
    last: list[RowOutcome] = []
    for night in range(1, NIGHTS + 1):
        week.night(night)
        if night in (3, 5):
            week.correct(night)
        csv = week.export(site, night)
        export = [[p.external_id, b] for n, p, b, _ in week.bookings if night - WINDOW < n <= night]
        before = dict(site.server.counters().create_attempts)
        outcomes: list[RowOutcome] = []
        result = run(site, csv, outcomes)
        assert result.counts["rejected"] == 0 and result.counts["failed"] == 0, result.attention
        assert result.security_stop is None
        assert creates_per_row_within(before, site.server.counters().create_attempts, export)
        held += [o for o in outcomes if o.state == "changed"]
        last = outcomes

    counters = site.server.counters()
    assert set(counters.creates.values()) == {1}  # 0 patients created twice (the hand-entered count once)
    assert counters.resent_creates == {}
    assert counters.updates, "no correction (or re-booking by update) was sent as an update"
    people = {p.external_id: p for p in week.people}
    for o in last:  # every row CorEMR holds as delivered carries the person's name as the export has it now
        if o.state in ("delivered", "skipped"):
            assert site.server.patients()[o.key.split("/")[0]]["fname"] == people[o.key.split("/")[0]].first
    if by_update:
        assert held == [] and {o.state for o in last} <= {"delivered", "skipped"}
        assert any(o.action == "booking added" for o in last)
    else:
        assert held, "no returning person was held: nothing proven"
        for o in held:
            match = HELD.search(o.reason or "")
            assert match is not None, o.reason
            assert o.key == f"{match[1]}/{match[2]}"
        assert {o.state for o in last} <= {"delivered", "skipped", "changed"}


def test_a_bookings_route_that_answers_404_for_a_patient_that_is_there_stops_the_run_never_a_create(
    v3_site: Site,
) -> None:
    site = v3_site
    rows = booking_rows(3)
    assert run(site, site.write_csv(rows)).counts["delivered"] == 3
    site.write_config(bookings_routes="yes")  # a wrong setting: this CorEMR has none
    rebooked = [[r[0], "R" + r[1], *r[2:]] for r in rows]
    attempts = dict(site.server.counters().create_attempts)
    result = run(site, site.write_csv(rebooked, "night2.csv"))
    assert result.exit_code == 3 and result.counts["failed"] == 3 and result.counts["rejected"] == 0
    assert result.security_stop is not None
    assert result.security_stop.startswith(
        "CorEMR has no bookings routes: POST /ws/v3/patients/{external_id}/bookings/"
    )
    assert result.security_stop.endswith('set bookings_routes = "no" in the run configuration')
    assert site.server.counters().create_attempts == attempts  # never a create
    site.write_config(bookings_routes="no")
    again: list[RowOutcome] = []
    fixed = run(site, site.write_csv(rebooked, "night2.csv"), again)
    assert fixed.counts["changed"] == 3 and fixed.exit_code == 1
    assert all(HELD.search(o.reason or "") for o in again)
    assert site.server.counters().create_attempts == attempts


def test_a_returning_person_is_held_with_no_request_and_quietly_the_next_night(v3_site: Site) -> None:
    site = v3_site
    rows = booking_rows(2)
    run(site, site.write_csv(rows))
    requests = site.server.counters().requests
    rebooked = [[rows[0][0], "R1", *rows[0][2:]]]
    outcomes: list[RowOutcome] = []
    first = run(site, site.write_csv(rebooked, "night2.csv"), outcomes)
    assert (first.counts["changed"], first.exit_code) == (1, 1)
    assert outcomes[0].reason == (
        f"patient {rows[0][0]} is already in CorEMR and this site has no bookings routes (bookings_routes is not set"
        f" and `cws-pipeline check` has not found them): held, not sent; add booking R1 to patient {rows[0][0]} in"
        " CorEMR by hand, then `cws-pipeline accept` the row (or set update_adds_booking = true where a patient"
        " update adds a booking)"
    )
    second = run(site, site.write_csv(rebooked, "night2.csv"))
    assert (second.counts["changed"], second.exit_code) == (1, 0)  # reported once: cron hears of it once
    assert site.server.counters().requests == requests  # neither night sent anything for it


def test_a_person_entered_by_hand_is_sent_one_create_then_held_and_not_created_again(v3_site: Site) -> None:
    site = v3_site
    row = booking_rows(1)[0]
    site.server.enter_by_hand({"external_id": row[0], "facility": 10000, "agency": 2, "fname": "X", "lname": "Y",
                               "dob": "1970-01-01", "sex": "F", "booking_no": "OLD",
                               "booking_date": "2020-01-01 00:00:00.000"})  # fmt: skip
    for _ in range(3):
        result = run(site, site.write_csv([row]))
        assert result.counts["changed"] == 1 and result.counts["rejected"] == 0
    assert site.server.counters().create_attempts == {row[0]: 1}  # one refused create, then held without one


def test_what_check_recorded_is_the_sites_bookings_routes_when_the_config_says_nothing(site: Site) -> None:
    site.write_config(bookings_routes=None)
    rows = booking_rows(2)
    run(site, site.write_csv(rows))
    first = run(site, site.write_csv([[rows[0][0], "R1", *rows[0][2:]]], "n2.csv"))
    assert first.counts["changed"] == 1 and "bookings_routes is not set" in (first.attention[0].reason or "")
    checked = CliRunner().invoke(cli, ["check", "-c", str(site.config)])
    assert checked.exit_code == 0 and "CorEMR has bookings routes (API v2)" in checked.output, checked.output
    found: list[RowOutcome] = []
    second = run(site, site.write_csv([[rows[1][0], "R2", *rows[1][2:]]], "n3.csv"), found)
    assert second.counts["delivered"] == 1 and found[0].action == "booking added"
    assert site.server.counters().booking_creates[rows[1][0]] == {rows[1][1]: 1, "R2": 1}


def test_what_check_found_against_v3_names_it_in_the_held_rows_message(v3_site: Site) -> None:
    site = v3_site
    rows = booking_rows(1)
    run(site, site.write_csv(rows))
    checked = CliRunner().invoke(cli, ["check", "-c", str(site.config), "--mapping", str(site.mapping)])
    assert checked.exit_code == 0 and "CorEMR has no bookings routes (API v3)" in checked.output, checked.output
    held = run(site, site.write_csv([[rows[0][0], "R1", *rows[0][2:]]], "n2.csv"))
    assert held.counts["changed"] == 1
    assert "has no bookings routes (`cws-pipeline check` found none)" in (held.attention[0].reason or "")


def test_a_correction_sends_a_booking_update_only_when_a_booking_field_changed(site: Site) -> None:
    site.mapping.write_text(SITE_MAPPING.replace("[target]\n", '[target]\non_change = "update"\n'))
    rows = booking_rows(2)
    run(site, site.write_csv(rows))
    rows[0][2], rows[1][6] = "Annabel", "2026-11-28 23:40"  # a name only; a booking's date
    result = run(site, site.write_csv(rows, "corrected.csv"))
    assert result.counts["delivered"] == 2
    counters = site.server.counters()
    assert counters.updates == {rows[0][0]: 1, rows[1][0]: 1}
    assert counters.booking_updates == {rows[1][0]: {rows[1][1]: 1}}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("exists_status = [404]", "exists_status: 404 means no such patient"),
        ("exists_status = [200]", "exists_status: must be at least 400"),
        ("exists_status = []", "exists_status: expected a non-empty list of HTTP statuses"),
        ('bookings_routes = "maybe"', 'bookings_routes: \'maybe\': give "yes" or "no"'),
        ('update_adds_booking = "yes"', "update_adds_booking: expected true or false"),
    ],
)
def test_the_site_settings_are_checked_naming_the_key(site: Site, line: str, message: str) -> None:
    site.write_config(bookings_routes=None)
    site.config.write_text(site.config.read_text() + line + "\n")
    with pytest.raises(Exception) as refused:
        load_config(site.config)
    assert f"{site.config}: {message}" in str(refused.value)
    assert getattr(refused.value, "exit_code", None) == 2


def test_the_site_settings_default_to_409_not_assumed_routes_and_no_booking_by_update(site: Site) -> None:
    config = load_config(site.write_config(bookings_routes=None))
    assert (config.exists_status, config.bookings_routes, config.update_adds_booking) == ((409,), None, False)
