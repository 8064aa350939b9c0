"""Rows the mapping excludes (training records): recorded as excluded with their reason, never sent, no alarm."""

from __future__ import annotations

import json

from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.delivery import load_config, run_bookings
from pipeline.ledger import Ledger

from ..sites import SITE_MAPPING, Site, booking_rows

EXCLUDE = '\n[[exclude]]\ncolumn = "First"\nmatch = \'^TRAINING\'\nreason = "training record"\n'


def test_excluded_rows_are_recorded_never_sent_and_keep_the_run_quiet(site: Site) -> None:
    site.mapping.write_text(SITE_MAPPING + EXCLUDE, encoding="utf-8")
    rows = booking_rows(5)
    rows[1][2] = rows[3][2] = "TRAINING"
    rows[3][4] = "not a date"  # a training record's bad cells are no problem: it is never sent
    csv = site.write_csv(rows)
    result = run_bookings(csv, site.mapping, load_config(site.write_config()))
    assert (result.counts["delivered"], result.counts["excluded"], result.exit_code) == (3, 2, 0)
    assert result.attention == []
    assert sorted(site.server.counters().creates) == ["P000001", "P000003", "P000005"]
    with Ledger.open(site.ledger, create=False) as ledger:
        recorded = {e.key: (e.state, e.error) for e in ledger.row_states(result.run_id)}
    assert recorded["P000002/B000002"] == ("excluded", "training record")
    assert recorded["P000004/B000004"] == ("excluded", "training record")
    again = run_bookings(csv, site.mapping, load_config(site.config))  # the next night: still excluded, still quiet
    assert (again.counts["skipped"], again.counts["excluded"], again.exit_code) == (3, 2, 0)
    report = CliRunner().invoke(
        cli, ["report", "--ledger", str(site.ledger), "--state", "excluded", "--format", "json"]
    )
    listed = json.loads(report.output)["records"]
    assert sorted((r["line"], r["state"], r["error"]) for r in listed) == [
        (3, "excluded", "training record"), (5, "excluded", "training record"),
    ]  # fmt: skip
