"""Bad nights and the fixed nights after them, against the local CWS server over loopback: a refusal of our site
(wrong key, wrong base_url, a redirecting front end) stops the run and loses no row; hostile answers (a replayed
201, another patient's 201, an error body with 201, a lookup naming another patient) never make a row
`delivered` that CorEMR does not hold; a corrected external_id never makes a second patient."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.delivery import RunResult, load_config, run_bookings
from pipeline.delivery._engine import final_records
from pipeline.ledger import Ledger, LedgerWrite, RunInfo, sha256_hex
from pipeline.mapping import load_mapping, map_csv
from pipeline.simulator import Fault
from pipeline.source import take_snapshot

from ..sites import CLIENT_ACCESS, SITE_MAPPING, V1_SITE_MAPPING, V3_SITE_MAPPING, KeyPair, Site, booking_rows

ROWS = 6


def run(site: Site, csv: Path) -> RunResult:
    return run_bookings(csv, site.mapping, load_config(site.config), sleep=lambda _: None)


def night(site: Site, csv: Path) -> tuple[int, str]:
    """A cron night through the CLI: its exit code and what it printed."""
    result = CliRunner().invoke(cli, ["run", str(csv), "--mapping", str(site.mapping), "--config", str(site.config)])
    return result.exit_code, result.output


def row_states(site: Site, run_id: int) -> dict[str, str]:
    with Ledger.open(site.ledger, create=False) as ledger:
        return {e.key or "": e.state or "" for e in ledger.row_states(run_id)}


def held_by_server(site: Site) -> set[str]:
    """The row keys (external_id/booking number) the server holds."""
    return {f"{patient}/{number}" for patient, bookings in site.server.bookings().items() for number in bookings}


def assert_fixed_night_delivers_every_row_once(site: Site, csv: Path) -> None:
    site.server.set_faults([])
    site.write_config()
    fixed = run(site, csv)
    assert fixed.exit_code == 0, fixed.attention
    assert fixed.counts["delivered"] + fixed.counts["skipped"] == ROWS and not fixed.security_stop
    counters = site.server.counters()
    assert counters.creates == {f"P{i:06d}": 1 for i in range(1, ROWS + 1)}
    assert held_by_server(site) == {f"P{i:06d}/B{i:06d}" for i in range(1, ROWS + 1)}


def test_a_wrong_key_night_stops_naming_the_key_and_the_fixed_night_delivers_every_row_once(
    site: Site, other_keys: KeyPair
) -> None:
    csv = site.write_csv(booking_rows(ROWS))
    site.write_config(private_key=str(other_keys.private))
    code, output = night(site, csv)
    assert code == 3
    assert "HTTP 401" in output and "check access and private_key" in output
    with Ledger.open(site.ledger, create=False) as ledger:
        bad = ledger.latest_run_id()
    assert bad is not None and set(row_states(site, bad).values()) == {"failed"}  # never "rejected"
    assert_fixed_night_delivers_every_row_once(site, csv)


def test_a_wrong_base_url_night_stops_naming_base_url_and_the_fixed_night_delivers_every_row_once(site: Site) -> None:
    csv = site.write_csv(booking_rows(ROWS))
    site.write_config(base_url=site.server.url + "/cws")  # the server answers 404 "no such route"
    bad = run(site, csv)
    assert bad.exit_code == 3 and bad.security_stop is not None
    assert "HTTP 404" in bad.security_stop and "check base_url" in bad.security_stop
    assert bad.counts["failed"] == ROWS and bad.counts["rejected"] == 0
    assert not site.server.counters().creates
    assert_fixed_night_delivers_every_row_once(site, csv)


def test_a_redirecting_night_stops_naming_base_url_and_the_fixed_night_delivers_every_row_once(site: Site) -> None:
    csv = site.write_csv(booking_rows(ROWS))
    site.server.set_faults([Fault("redirect_302", methods=("GET", "POST"))])  # signed, like any answer
    bad = run(site, csv)
    assert bad.exit_code == 3 and bad.security_stop is not None
    assert "HTTP 302" in bad.security_stop and "check base_url" in bad.security_stop
    assert bad.counts["failed"] == ROWS
    assert_fixed_night_delivers_every_row_once(site, csv)


def assert_delivered_only_what_the_server_holds(site: Site, result: RunResult) -> None:
    states = row_states(site, result.run_id)
    delivered = {key for key, state in states.items() if state == "delivered"}
    assert delivered <= held_by_server(site)
    assert all(state in ("delivered", "ambiguous") for state in states.values()), states


def test_a_replayed_201_delivers_no_row_the_server_does_not_hold(site: Site) -> None:
    csv = site.write_csv(booking_rows(ROWS))
    site.write_config(concurrency=1)
    site.server.set_faults([Fault("replay_2xx")])  # the first create is served; every later one gets its answer
    hostile = run(site, csv)
    assert hostile.counts["delivered"] == 1 and hostile.counts["ambiguous"] == ROWS - 1
    assert_delivered_only_what_the_server_holds(site, hostile)
    assert_fixed_night_delivers_every_row_once(site, csv)


@pytest.mark.parametrize(
    "fault",
    [Fault("created_other"), Fault("created_error")],
    ids=["another patient's 201", "an error body with status 201"],
)
def test_a_201_not_bound_to_its_request_delivers_nothing(site: Site, fault: Fault) -> None:
    csv = site.write_csv(booking_rows(ROWS))
    site.server.set_faults([fault])
    hostile = run(site, csv)
    assert hostile.counts["delivered"] == 0 and hostile.counts["ambiguous"] == ROWS
    assert_delivered_only_what_the_server_holds(site, hostile)
    assert_fixed_night_delivers_every_row_once(site, csv)


def test_a_lookup_naming_another_patient_with_the_asked_booking_number_finds_nothing(site: Site) -> None:
    csv = site.write_csv(booking_rows(ROWS))
    site.server.set_faults([Fault("created_error"), Fault("lookup_other", methods=("GET",))])
    hostile = run(site, csv)  # each create in doubt; each booking lookup answers B... of patient OTHER-P...
    assert hostile.counts["delivered"] == 0 and hostile.counts["ambiguous"] == ROWS
    assert site.server.counters().lookups >= ROWS
    assert_delivered_only_what_the_server_holds(site, hostile)
    assert_fixed_night_delivers_every_row_once(site, csv)


def test_a_corrected_external_id_under_a_booking_number_key_makes_no_second_patient(site: Site) -> None:
    site.mapping.write_text(
        SITE_MAPPING.replace('key = ["external_id", "booking_no"]', 'key = ["booking_no"]\non_change = "update"')
    )
    rows = booking_rows(2)
    assert run(site, site.write_csv(rows)).counts["delivered"] == 2
    corrected = [["X000001", *rows[0][1:]], rows[1]]  # the jail system renumbered patient P000001
    csv = site.write_csv(corrected, name="corrected.csv")
    for _ in range(2):  # held every night, never sent, whatever on_change says
        held = run(site, csv)
        assert held.counts["changed"] == 1 and held.counts["skipped"] == 1 and held.exit_code in (0, 1)
        [outcome] = held.attention
        assert outcome.state == "changed" and outcome.reason is not None
        assert "the external_id changed from P000001 to X000001" in outcome.reason
        assert "cws-pipeline accept" in outcome.reason
    counters = site.server.counters()
    assert set(counters.create_attempts) == {"P000001", "P000002"}  # no X000001: no second patient
    assert not counters.updates
    assert set(site.server.patients()) == {"P000001", "P000002"}


@pytest.mark.parametrize(
    ("reason", "sent_again"),
    [("HTTP 401: bad signature: it does not match the body bytes for Access=jail-a", True),
     ("rejected earlier with the same body (run 1): HTTP 404: no such route: /cws/ws/patients/", True),
     ("HTTP 302: moved", True),
     ("HTTP 405: CorEMR's words are kept in the ledger, not printed", True),
     ("HTTP 400: invalid patient (sex: must be one of M, F, U)", False)],
)  # fmt: skip
def test_rows_an_older_version_recorded_rejected_for_a_refusal_of_our_site_are_sent_by_the_next_run(
    site: Site, reason: str, sent_again: bool
) -> None:
    csv = site.write_csv(booking_rows(ROWS))
    rows = [r for chunk in map_csv(take_snapshot(csv), load_mapping(site.mapping)) for r in chunk]
    with Ledger.open(site.ledger) as ledger:  # what an older version left after a bad night
        info = RunInfo(str(csv), "0" * 64, str(site.mapping), "0" * 64, site.server.url, "/ws/patients/",
                       CLIENT_ACCESS, "CWS-SHA256", "old")  # fmt: skip
        run_id = ledger.begin_run(info, os.getpid())
        write = LedgerWrite()
        for r in rows:
            write.add(final_records(run_id, r, "rejected", reason, sha256_hex(r.body or b""), None, 1))
        ledger.append(write)
        ledger.finish_run(run_id, {"rejected": ROWS}, "finished", 1)
    if sent_again:
        assert_fixed_night_delivers_every_row_once(site, csv)
    else:  # a refusal of the row's data stays one: not sent again unchanged
        again = run(site, csv)
        assert again.counts["rejected"] == ROWS and not site.server.counters().create_attempts


def test_an_unsigned_redirect_night_stops_naming_server_keys_and_base_url_and_loses_no_row(site: Site) -> None:
    csv = site.write_csv(booking_rows(ROWS))
    site.server.set_faults(
        [Fault("redirect_302", methods=("GET", "POST")), Fault("signature_missing", methods=("GET", "POST"))]
    )
    bad = run(site, csv)  # a front end redirecting to https does not sign its 302
    assert bad.exit_code == 3 and bad.security_stop is not None
    assert "unverified answers in a row" in bad.security_stop and "check server_keys and base_url" in bad.security_stop
    assert bad.counts["delivered"] == 0 and bad.counts["rejected"] == 0
    assert_fixed_night_delivers_every_row_once(site, csv)


def test_a_row_in_doubt_stays_in_doubt_through_a_wrong_base_url_night(site: Site) -> None:
    csv = site.write_csv(booking_rows(ROWS))
    site.write_config(concurrency=1, max_attempts=1)
    site.server.set_faults([Fault("drop_after_processing", first=1)])  # line 2's create is stored, its answer lost
    first = run(site, csv)
    assert first.counts["ambiguous"] == 1 and first.counts["delivered"] == ROWS - 1
    site.server.set_faults([])
    site.write_config(base_url=site.server.url + "/cws")  # its lookup answers 404 "no such route", as does the create
    bad = run(site, csv)
    assert bad.exit_code == 3 and row_states(site, bad.run_id)["P000001/B000001"] == "ambiguous"
    assert_fixed_night_delivers_every_row_once(site, csv)


def test_a_night_of_429s_stops_the_run_and_the_fixed_night_delivers_every_row_once(site: Site) -> None:
    csv = site.write_csv(booking_rows(ROWS))
    site.write_config(circuit_breaker=2, max_attempts=3)  # 5 x 2 = 10 busy answers in a row stop the run
    site.server.set_faults([Fault.parse("status_429:retry_after=none,methods=GET+POST")])
    bad = run(site, csv)
    assert bad.exit_code == 3 and bad.security_stop is not None
    assert "answers in a row refusing to process (last: HTTP 429)" in bad.security_stop
    assert bad.counts["failed"] == ROWS
    assert site.server.counters().requests <= 10 + 4  # the stop, and what was already in flight
    assert_fixed_night_delivers_every_row_once(site, csv)


def test_a_coremr_whose_creates_answer_naming_nothing_still_delivers_each_row_once_by_lookup(site: Site) -> None:
    # Assumption "answer-shape" answered otherwise: CorEMR stores the patient but its 201 names nobody.
    csv = site.write_csv(booking_rows(ROWS))
    site.server.set_faults([Fault("answer_bare")])
    first = run(site, csv)
    assert first.counts["delivered"] == ROWS and first.exit_code == 0  # settled by a lookup in the same run
    counters = site.server.counters()
    assert counters.creates == {f"P{i:06d}": 1 for i in range(1, ROWS + 1)}
    assert counters.create_attempts == counters.creates  # the lookup found it: no create sent twice
    again = run(site, csv)
    assert again.counts["skipped"] == ROWS and again.exit_code == 0


def test_a_row_in_doubt_whose_external_id_changed_is_held_never_created_under_the_new_number(site: Site) -> None:
    site.mapping.write_text(SITE_MAPPING.replace('key = ["external_id", "booking_no"]', 'key = ["booking_no"]'))
    site.write_config(circuit_breaker=100)
    site.server.set_faults([Fault("drop_after_processing", first=1), Fault("status_503", methods=("GET",))])
    rows = booking_rows(1)
    assert run(site, site.write_csv(rows)).counts["ambiguous"] == 1  # P000001 stored, its answer lost, no lookup
    site.server.set_faults([])
    renumbered = site.write_csv([["X000001", *rows[0][1:]]], name="renumbered.csv")
    first, second = run(site, renumbered), run(site, renumbered)  # the create of P000001 may have landed (it did)
    for night in (first, second):  # held in doubt every night, never sent under the new number
        [outcome] = night.attention
        assert outcome.state == "ambiguous" and outcome.reason is not None
        assert "from P000001 to X000001" in outcome.reason and "cws-pipeline accept" in outcome.reason
    assert (first.exit_code, second.exit_code, second.attention[0].known) == (1, 0, True)  # cron hears it once
    assert set(site.server.counters().create_attempts) == {"P000001"}  # no X000001: no second patient
    assert set(site.server.patients()) == {"P000001"}
    back = run(site, site.write_csv(rows, name="back.csv"))  # the export names P000001 again: a lookup settles it
    assert back.counts["delivered"] == 1 and set(site.server.counters().create_attempts) == {"P000001"}


@pytest.mark.parametrize(
    ("api", "mapping", "settings"),
    [("v1", V1_SITE_MAPPING, {"algorithm": "CWS-SHA1"}),  # a second create is refused as an existing patient
     ("v2", SITE_MAPPING, {}),  # with bookings routes: the booking is looked up
     ("v3", V3_SITE_MAPPING, {"bookings_routes": "no"})],  # as documented, none: the patient is looked up
    ids=["v1", "v2 with bookings routes", "v3 without"],
)  # fmt: skip
def test_a_create_coremr_stored_before_answering_500_is_found_by_lookup_never_sent_twice(
    site: Site, api: str, mapping: str, settings: dict[str, str]
) -> None:
    site.restart_server(api=api)
    site.mapping.write_text(mapping)
    site.write_config(concurrency=1, **settings)
    site.server.set_faults([Fault("error_after_store", first=1)])  # the first create is stored, then answered 500
    result = run(site, site.write_csv(booking_rows(2)))
    assert (result.counts["delivered"], result.exit_code) == (2, 0), result.attention
    counters = site.server.counters()
    assert counters.create_attempts == {"P000001": 1, "P000002": 1}  # the stored one looked up, not POSTed again
    assert counters.requests == 3  # two creates and the lookup that found the first
