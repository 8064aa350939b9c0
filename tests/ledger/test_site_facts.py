"""Site facts: what `check` found out about a site, kept in the ledger beside (not in) the hash chain."""

from __future__ import annotations

from pathlib import Path

from pipeline.delivery import load_config, run_bookings
from pipeline.ledger import Ledger, created_patient, record_site_fact, site_facts, verify_chain

from ..sites import Site, booking_rows


def test_a_ledger_that_never_recorded_a_fact_knows_none(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "ledger.sqlite") as ledger:
        assert site_facts(ledger) == {}
        assert created_patient(ledger) is None


def test_a_fact_is_kept_and_a_later_finding_replaces_it(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger.open(path) as ledger:
        first = record_site_fact(ledger, "bookings_routes", "yes", "GET …/bookings/ answered 200")
        record_site_fact(ledger, "bookings_routes", "no", "GET …/bookings/ answered 404")
    with Ledger.open_read_only(path) as ledger:
        facts = site_facts(ledger)
    assert list(facts) == ["bookings_routes"]
    assert facts["bookings_routes"].value == "no" and facts["bookings_routes"].how.endswith("answered 404")
    assert facts["bookings_routes"].found_at >= first.found_at
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_fact_is_not_an_entry_of_the_chain(site: Site) -> None:
    run_bookings(site.write_csv(booking_rows(2)), site.mapping, load_config(site.config))
    with Ledger.open(site.ledger) as ledger:
        head = ledger.head()
        record_site_fact(ledger, "bookings_routes", "yes", "found")
        assert ledger.head() == head
        assert verify_chain(ledger.entries()) is None


def test_the_patient_known_is_one_a_run_delivered(site: Site) -> None:
    rows = booking_rows(2)
    rows[1][4] = "not a date"  # P000002 is invalid: never sent, never a patient of ours
    result = run_bookings(site.write_csv(rows), site.mapping, load_config(site.config))
    assert result.counts["delivered"] == 1
    with Ledger.open_read_only(site.ledger) as ledger:
        assert created_patient(ledger) == "P000001"
