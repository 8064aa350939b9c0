"""One count of bookings needing a person: the run's result, `status` and `report` (one run and `--all`) agree,
over real runs against the local CWS server, whatever the order of a booking's lines and states."""

from __future__ import annotations

from pipeline.delivery import RunResult, load_config, run_bookings
from pipeline.ledger import Ledger
from pipeline.review import gather_report, select_runs, site_status

from ..sites import BOOKING_HEADER, SITE_MAPPING, Site, booking_rows

MAPPING = SITE_MAPPING + '\n[[exclude]]\ncolumn = "RecordType"\nmatch = "^TRAINING$"\nreason = "training record"\n'


def night(site: Site, rows: list[list[str]], name: str) -> RunResult:
    path = site.dir / name
    lines = [",".join([*BOOKING_HEADER, "RecordType"]), *(",".join(row) for row in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return run_bookings(path, site.mapping, load_config(site.config))


def counts(site: Site) -> tuple[int, int, int]:
    """needs_person as `status`, `report` (the latest run) and `report --all` give it."""
    with Ledger.open_read_only(site.ledger) as ledger:
        status = site_status(ledger).needs_person
        latest = gather_report(ledger, select_runs(ledger)).needs_person
        every = gather_report(ledger, select_runs(ledger, all_runs=True)).needs_person
    return status, latest, every


def test_every_count_agrees_whatever_line_of_a_booking_comes_last(site: Site) -> None:
    site.mapping.write_text(MAPPING, encoding="utf-8")
    rows = [[*row, "LIVE"] for row in booking_rows(4)]
    rows[0][4] = "not a date"  # booking 1's first line is bad...
    training = [*rows[0][:4], "1980-01-01", *rows[0][5:7], "TRAINING"]  # ...and its last line is left out
    keyless = ["", "", "First9", "Last9", "1980-01-01", "M", "2026-11-28 22:15", "LIVE"]
    first = night(site, [*rows, training, keyless], "night-1.csv")
    # Booking 1 (its later, excluded line leaves row_status settled) and the line with no key: 2 bookings.
    assert (first.counts["invalid"], first.counts["excluded"], first.needs_person) == (2, 1, 2)
    assert counts(site) == (2, 2, 2)

    # Night 2: the line with no key is corrected into booking 9 (delivered): it no longer waits for anyone.
    keyed = ["P000009", "B000009", *keyless[2:]]
    second = night(site, [*rows, training, keyed], "night-2.csv")
    assert (second.exit_code, second.needs_person) == (0, 1)  # booking 1 was reported on night 1
    assert counts(site) == (1, 1, 1)

    # Night 3: booking 1 is gone from the export (released): every count still agrees.
    third = night(site, [*rows[1:], keyed], "night-3.csv")
    assert third.exit_code == 0 and counts(site) == (third.needs_person,) * 3


def test_a_report_of_an_earlier_run_counts_the_bookings_that_run_left(site: Site) -> None:
    site.mapping.write_text(MAPPING, encoding="utf-8")
    rows = [[*row, "LIVE"] for row in booking_rows(3)]
    rows[1][4] = "not a date"
    night(site, [*rows, rows[1]], "night-1.csv")  # booking 2 bad, on two lines
    rows[1][4] = "1980-01-01"
    night(site, rows, "night-2.csv")  # corrected and delivered
    with Ledger.open_read_only(site.ledger) as ledger:
        assert gather_report(ledger, [1]).needs_person == 1
        assert gather_report(ledger, select_runs(ledger)).needs_person == 0
        assert site_status(ledger).needs_person == 0
