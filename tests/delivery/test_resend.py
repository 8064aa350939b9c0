"""Sending again on purpose, through the CLI against the local CWS server: a row CorEMR refused until a facility
was added there is marked by `resend` (who asked, where, in the chain) and delivered once by the next run."""

from __future__ import annotations

import getpass
import json
import socket
from pathlib import Path

from click.testing import CliRunner, Result

from pipeline.cli import cli
from pipeline.delivery import RESEND_STATE
from pipeline.delivery._decisions import plan
from pipeline.ledger import Ledger, PriorRows, sha256_hex
from pipeline.mapping import MappedRow

from ..sites import Site, booking_rows


def cws(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def night(site: Site, csv: Path) -> Result:
    return cws("run", str(csv), "-m", str(site.mapping), "-c", str(site.config))


def refused_until_the_facility_is_added(site: Site) -> tuple[Path, list[list[str]]]:
    """Two rows; CorEMR knows none of the facilities yet, so both are refused for the facility (a signed 400)."""
    rows = booking_rows(2)
    site.server.set_facilities((20000,))
    return site.write_csv(rows), rows


def test_a_refused_row_resent_after_the_cause_is_fixed_is_delivered_once_by_the_next_run(site: Site) -> None:
    csv, rows = refused_until_the_facility_is_added(site)
    assert night(site, csv).exit_code == 1
    again = night(site, csv)  # unchanged: not sent again, however often cron runs
    assert again.exit_code == 0 and site.server.counters().create_attempts == {rows[0][0]: 1, rows[1][0]: 1}
    site.server.set_facilities(None)  # the facility is added in CorEMR
    with Ledger.open_read_only(site.ledger) as ledger:
        before = ledger.head()
    dry = cws("resend", "-c", str(site.config), "--reason", "FACILITY", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert (
        dry.output.splitlines()[-1]
        == "2 row(s) would be marked to be sent again by the next run (dry run: nothing written)"
    )
    with Ledger.open_read_only(site.ledger) as ledger:
        assert ledger.head() == before
    marked = cws("resend", "-c", str(site.config), "--reason", "facility")
    assert marked.exit_code == 0, marked.output
    assert marked.output.splitlines()[0] == (
        "  line      2  P000001/B000001  rejected (run 2): rejected earlier with the same body (run 1): HTTP 400:"
        " CorEMR named fields facility; its words are kept in the ledger, not printed"
    )
    third = night(site, csv)
    assert third.exit_code == 0, third.output
    assert site.server.counters().create_attempts == {rows[0][0]: 2, rows[1][0]: 2}
    assert set(site.server.patients()) == {rows[0][0], rows[1][0]}
    fourth = night(site, csv)
    assert fourth.exit_code == 0 and site.server.counters().create_attempts == {rows[0][0]: 2, rows[1][0]: 2}
    with Ledger.open_read_only(site.ledger) as ledger:
        entries = [e for e in ledger.entries() if e.event == "resend"]
        states = {e.key: e.state for e in ledger.row_states(3)}
    assert states == {"P000001/B000001": "delivered", "P000002/B000002": "delivered"}
    assert [e.key for e in entries] == ["P000001/B000001", "P000002/B000002"]
    detail = json.loads(entries[0].detail or "")
    assert (detail["by"], detail["host"], detail["was"]) == (getpass.getuser(), socket.gethostname(), "rejected")
    audit = cws("audit", "-c", str(site.config), "--no-head-log")
    assert audit.exit_code == 0, audit.output


def test_resend_by_key_marks_that_row_only_and_the_other_stays_refused(site: Site) -> None:
    csv, rows = refused_until_the_facility_is_added(site)
    night(site, csv)
    site.server.set_facilities(None)
    marked = cws("resend", "-c", str(site.config), "--key", "P000002/B000002")
    assert marked.exit_code == 0, marked.output
    status = cws("status", "-c", str(site.config))
    assert "resend" in status.output and "marked by " in status.output
    night(site, csv)
    assert site.server.counters().create_attempts == {rows[0][0]: 1, rows[1][0]: 2}
    assert set(site.server.patients()) == {rows[1][0]}


def test_every_run_records_the_user_and_host_that_ran_it_and_the_report_shows_them(site: Site) -> None:
    night(site, site.write_csv(booking_rows(1)))
    with Ledger.open_read_only(site.ledger) as ledger:
        [run] = ledger.runs()
    assert (run.info.user, run.info.host) == (getpass.getuser(), socket.gethostname())
    report = cws("report", "-c", str(site.config))
    assert f"  run by    {getpass.getuser()}@{socket.gethostname()}" in report.output.splitlines()
    page = site.dir / "report.html"
    assert cws("report", "-c", str(site.config), "--format", "html", "--output", str(page)).exit_code == 0
    assert f"<dt>Run by</dt><dd>{getpass.getuser()}@{socket.gethostname()}</dd>" in page.read_text(encoding="utf-8")
    as_json = json.loads(cws("report", "-c", str(site.config), "--format", "json").output)
    assert (as_json["runs"][0]["user"], as_json["runs"][0]["host"]) == (getpass.getuser(), socket.gethostname())


def test_a_choice_naming_no_rejected_row_is_one_line_and_writes_nothing(site: Site) -> None:
    csv, _ = refused_until_the_facility_is_added(site)
    night(site, csv)
    with Ledger.open_read_only(site.ledger) as ledger:
        before = ledger.head()
    for args, said in (
        (["--key", "NOPE/1"], "no row has the key 'NOPE/1'"),
        (["--reason", "no such words"], "no rejected row matches (reason containing 'no such words')"),
        (["--line", "9"], "no rejected row was last seen on line 9"),
    ):
        refused = cws("resend", "-c", str(site.config), *args)
        assert refused.exit_code == 2 and said in refused.output and len(refused.output.splitlines()) == 1, args
    both = cws("resend", "-c", str(site.config), "--line", "2", "--state", "rejected")
    assert both.exit_code == 2 and "choose the rows one way" in both.output
    with Ledger.open_read_only(site.ledger) as ledger:
        assert ledger.head() == before


def test_a_delivered_row_cannot_be_marked_for_resending(site: Site) -> None:
    night(site, site.write_csv(booking_rows(1)))
    refused = cws("resend", "-c", str(site.config), "--key", "P000001/B000001")
    assert refused.exit_code == 2 and "is delivered (run 1); resend takes a row CorEMR rejected" in refused.output


def test_the_plan_sends_a_row_marked_for_resending_even_with_the_body_refused_before() -> None:
    body = b'{"external_id":"P1","facility":20000}'
    sha, delivered = sha256_hex(body), sha256_hex(b'{"external_id":"P1","facility":10000}')
    row = MappedRow(2, "P1/B1", "P1", body, (), ("ID",), ("P1",))
    reason = "HTTP 400: CorEMR named fields facility"

    def prior(state: str, delivered_sha: str | None = None) -> PriorRows:
        return PriorRows({"P1/B1": ("P1/B1", "P1", state, sha, delivered_sha, 1, 2, reason, None, None, None, None)})

    assert plan(row, prior("rejected")) == ("rejected_again", sha)
    assert plan(row, prior(RESEND_STATE)) == ("send", sha)
    # A refused correction of a delivered row, marked: sent as an update, or held again, as on_change says.
    assert plan(row, prior("rejected", delivered), "update") == ("rejected_again", sha)
    assert plan(row, prior(RESEND_STATE, delivered), "update") == ("send", sha)
    assert plan(row, prior(RESEND_STATE, delivered), "hold") == ("changed", sha)
