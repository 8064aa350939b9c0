"""End-to-end delivery against the local CWS server over loopback: every state, every fault, no duplicates."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.delivery import RunResult, load_config, run_bookings
from pipeline.ledger import Ledger, verify_chain
from pipeline.simulator import Fault

from ..sites import SITE_MAPPING, Site, booking_rows


def run(site: Site, csv: Path, sleeps: list[float] | None = None) -> RunResult:
    """Run the library entry point the CLI uses; record requested sleeps instead of losing them."""
    recorded = sleeps if sleeps is not None else []

    def sleep(seconds: float) -> None:
        recorded.append(seconds)

    return run_bookings(csv, site.mapping, load_config(site.config), sleep=sleep)


def states(site: Site, run_id: int) -> dict[str, str]:
    """key -> state of each row in one run, read back from the ledger file."""
    with Ledger.open(site.ledger, create=False) as ledger:
        return {e.key or "": e.state or "" for e in ledger.row_states(run_id)}


def assert_no_patient_created_twice(site: Site) -> None:
    creates = site.server.counters().creates
    assert creates, "the server created nothing"
    assert max(creates.values()) == 1, {k: v for k, v in creates.items() if v > 1}


def test_first_run_delivers_every_row_and_rerun_sends_nothing(site: Site) -> None:
    csv = site.write_csv(booking_rows(30))
    first = run(site, csv)
    assert first.counts["delivered"] == 30 and first.exit_code == 0
    second = run(site, csv)
    assert second.counts["skipped"] == 30 and second.exit_code == 0
    assert site.server.counters().create_attempts == dict.fromkeys((f"P{i:06d}" for i in range(1, 31)), 1)
    assert_no_patient_created_twice(site)


def test_ledger_is_private_and_chained_and_records_what_was_signed(site: Site, server_keyring_dir: Path) -> None:
    csv = site.write_csv(booking_rows(3))
    result = run(site, csv)
    assert stat.S_IMODE(site.ledger.stat().st_mode) == 0o600
    with Ledger.open(site.ledger, create=False) as ledger:
        entries = list(ledger.entries())
        assert verify_chain(entries) is None
        attempts = [e for e in entries if e.event == "attempt"]
        assert len(attempts) == 3
        for e in attempts:
            assert e.request_authorization and e.request_authorization.startswith("CWS-SHA256 Access=county-jms, ")
            assert e.response_authorization and e.response_signer == "coremr" and e.verification == "ok"
            assert e.http_status == 201
            body = ledger.body(e.request_sha256)
            assert body is not None and json.loads(body)["external_id"] == e.external_id
        (run_row,) = ledger.runs([result.run_id])
    assert (run_row.info.access, run_row.info.algorithm, run_row.status) == ("county-jms", "CWS-SHA256", "finished")
    assert run_row.counts["delivered"] == 3
    assert result.record == run_row and run_row.exit_code == result.exit_code  # the result holds the one record


def test_changed_row_is_reported_and_not_sent_again(site: Site) -> None:
    rows = booking_rows(3)
    run(site, site.write_csv(rows))
    rows[1][2] = "Renamed"
    result = run(site, site.write_csv(rows))
    assert result.counts["changed"] == 1 and result.counts["skipped"] == 2 and result.exit_code == 1
    assert site.server.counters().create_attempts["P000002"] == 1


def test_invalid_row_is_never_sent_and_is_sent_once_fixed(site: Site) -> None:
    rows = booking_rows(3)
    good_dob = rows[2][4]
    rows[2][4] = "not a date"
    first = run(site, site.write_csv(rows))
    assert first.counts["invalid"] == 1 and first.counts["delivered"] == 2 and first.exit_code == 1
    assert "P000003" not in site.server.counters().create_attempts
    [attention] = first.attention
    assert attention.state == "invalid" and attention.line == 4 and "dob" in (attention.reason or "")
    rows[2][4] = good_dob
    second = run(site, site.write_csv(rows))
    assert second.counts["delivered"] == 1 and second.counts["skipped"] == 2
    assert_no_patient_created_twice(site)


def refused_by_coremr(site: Site, rows: list[list[str]]) -> None:
    """Map sex as written, without CorEMR's patient checks: CorEMR itself refuses "X" with a signed 400."""
    site.mapping.write_text(SITE_MAPPING.replace("[target]\n", '[target]\nprofile = "none"\n'), encoding="utf-8")
    for row in rows:
        row[5] = "X"


def test_a_row_coremr_refuses_is_rejected_with_its_message_and_not_resent_unchanged(site: Site) -> None:
    rows = booking_rows(2)
    refused_by_coremr(site, rows[:1])
    csv = site.write_csv(rows)
    result = run(site, csv)
    assert (result.counts["rejected"], result.counts["delivered"], result.exit_code) == (1, 1, 1)
    said = "HTTP 400: CorEMR named fields sex; its words are kept in the ledger, not printed"  # never its own words
    assert result.attention[0].reason == said
    again = run(site, csv)
    assert again.counts["rejected"] == 1 and again.counts["skipped"] == 1
    assert site.server.counters().create_attempts["P000001"] == 1  # not sent a second time


def test_503_then_success_is_delivered_with_every_attempt_recorded(site: Site) -> None:
    site.server.set_faults([Fault("status_503", first=2)])
    result = run(site, site.write_csv(booking_rows(1)))
    assert result.counts["delivered"] == 1
    with Ledger.open(site.ledger, create=False) as ledger:
        statuses = [e.http_status for e in ledger.entries(result.run_id) if e.event == "attempt"]
    assert statuses == [503, 503, 201]


def test_429_retry_after_is_honoured(site: Site) -> None:
    site.server.set_faults([Fault("status_429", first=1, retry_after="3")])
    sleeps: list[float] = []
    result = run(site, site.write_csv(booking_rows(1)), sleeps)
    assert result.counts["delivered"] == 1
    assert sleeps == [3.0]


def test_retry_after_is_capped_and_zero_is_ignored(site: Site) -> None:
    site.write_config(retry_after_cap=2)
    site.server.set_faults([Fault("status_429", first=1, retry_after="600")])
    sleeps: list[float] = []
    run(site, site.write_csv(booking_rows(1)), sleeps)
    assert sleeps == [2.0]
    site.server.set_faults([Fault("status_429", first=1, retry_after="0")])
    sleeps.clear()
    run(site, site.write_csv(booking_rows(1, start=2), name="b2.csv"), sleeps)
    assert len(sleeps) == 1 and sleeps[0] < 1.0  # backoff, not Retry-After's zero


def test_transient_errors_outlasting_retries_fail_and_the_next_run_sends(site: Site) -> None:
    site.server.set_faults([Fault("status_503", retry_after=None)])
    csv = site.write_csv(booking_rows(2))
    first = run(site, csv)
    assert first.counts["failed"] == 2 and first.exit_code == 1
    assert site.server.counters().create_attempts["P000001"] == 4  # max_attempts
    site.server.set_faults([])
    second = run(site, csv)
    assert second.counts["delivered"] == 2
    assert_no_patient_created_twice(site)


def test_creates_answered_500_all_night_stay_in_doubt_and_the_next_run_looks_them_up_first(site: Site) -> None:
    site.server.set_faults([Fault("status_500")])  # POSTs only: each attempt's lookup answers "absent"
    csv = site.write_csv(booking_rows(2))
    first = run(site, csv)
    assert first.counts["ambiguous"] == 2 and first.exit_code == 1  # a 500 may come after CorEMR stored it
    assert site.server.counters().create_attempts["P000001"] == 4  # max_attempts, each after a lookup
    site.server.set_faults([])
    second = run(site, csv)
    assert second.counts["delivered"] == 2
    assert_no_patient_created_twice(site)


def test_bad_request_400_is_rejected_without_retry(site: Site) -> None:
    mapping = SITE_MAPPING.replace("[target]\n", '[target]\nprofile = "none"\n')
    site.mapping.write_text(mapping.replace("value = 10000", 'value = "ten thousand"'), encoding="utf-8")
    result = run(site, site.write_csv(booking_rows(1)))
    assert result.counts["rejected"] == 1
    assert site.server.counters().create_attempts["P000001"] == 1
    assert "HTTP 400" in (result.attention[0].reason or "") and "facility" in (result.attention[0].reason or "")


def test_dropped_connection_after_processing_is_settled_by_lookup_not_resent(site: Site) -> None:
    site.server.set_faults([Fault("drop_after_processing", first=3)])
    result = run(site, site.write_csv(booking_rows(5)))
    assert result.counts["delivered"] == 5
    counters = site.server.counters()
    assert counters.lookups >= 3
    assert counters.create_attempts == dict.fromkeys((f"P{i:06d}" for i in range(1, 6)), 1)


@pytest.mark.parametrize("kind", ["signature_corrupt", "signature_missing", "signature_unknown_signer"])
def test_unverified_answer_is_settled_by_a_verified_lookup(site: Site, kind: str) -> None:
    site.server.set_faults([Fault(kind, first=1)])  # POST only: the lookup is answered properly
    result = run(site, site.write_csv(booking_rows(1)))
    assert result.counts["delivered"] == 1
    with Ledger.open(site.ledger, create=False) as ledger:
        events = [(e.event, e.verification) for e in ledger.entries(result.run_id) if e.event in ("attempt", "lookup")]
    assert events[0][0] == "attempt" and events[0][1] != "ok"
    assert events[1] == ("lookup", "ok")
    assert_no_patient_created_twice(site)


@pytest.mark.parametrize("kind", ["signature_corrupt", "signature_missing", "signature_unknown_signer"])
def test_unverified_everywhere_ends_unverified_then_the_next_run_settles_it(site: Site, kind: str) -> None:
    site.write_config(circuit_breaker=100)
    site.server.set_faults([Fault(kind, methods=("GET", "POST"))])
    csv = site.write_csv(booking_rows(1))
    first = run(site, csv)
    assert first.counts["unverified"] == 1 and first.exit_code == 1
    site.server.set_faults([])
    second = run(site, csv)
    assert second.counts["delivered"] == 1
    assert site.server.counters().create_attempts["P000001"] == 1  # settled by lookup, never resent
    assert states(site, second.run_id) == {"P000001/B000001": "delivered"}


def test_sha1_answer_is_refused_when_only_sha256_is_accepted(site: Site) -> None:
    site.write_config(accept_algorithms=["CWS-SHA256"], circuit_breaker=100)
    site.server.set_faults([Fault("signature_sha1", methods=("GET", "POST"))])
    result = run(site, site.write_csv(booking_rows(1)))
    assert result.counts["unverified"] == 1


def test_sha1_answer_is_accepted_by_default(site: Site) -> None:
    site.server.set_faults([Fault("signature_sha1")])
    assert run(site, site.write_csv(booking_rows(1))).counts["delivered"] == 1


def test_ambiguous_when_no_verified_lookup_settles_a_dropped_request(site: Site) -> None:
    site.write_config(circuit_breaker=100)
    site.server.set_faults([Fault("drop_after_processing", first=1), Fault("status_503", methods=("GET",))])
    csv = site.write_csv(booking_rows(1))
    first = run(site, csv)
    assert first.counts["ambiguous"] == 1
    site.server.set_faults([])
    second = run(site, csv)
    assert second.counts["delivered"] == 1
    assert site.server.counters().create_attempts["P000001"] == 1


def test_a_rebooking_of_a_known_person_in_doubt_is_settled_by_its_booking_lookup(site: Site) -> None:
    rows = booking_rows(1)
    run(site, site.write_csv(rows))
    rebooking = [[rows[0][0], "B999999", *rows[0][2:]]]  # same person (external_id), new booking key
    site.write_config(circuit_breaker=100)
    site.server.set_faults([Fault("drop_after_processing", first=1)])
    csv = site.write_csv(rebooking, name="rebook.csv")
    first = run(site, csv)  # the booking is stored, its answer lost: GET .../bookings/B999999 finds it
    assert first.counts["delivered"] == 1, first.attention
    assert states(site, first.run_id) == {"P000001/B999999": "delivered"}
    counters = site.server.counters()
    assert counters.booking_creates == {"P000001": {"B000001": 1, "B999999": 1}}
    assert counters.create_attempts == {"P000001": 1}  # the ledger knew the person: no doomed create
    assert run(site, csv).counts["skipped"] == 1


def test_wrong_key_is_stopped_by_the_circuit_breaker(site: Site, other_keys: object) -> None:
    site.write_config(private_key=str(other_keys.private), concurrency=2)  # type: ignore[attr-defined]
    result = run(site, site.write_csv(booking_rows(200)))
    assert result.security_stop and result.exit_code == 3
    assert "HTTP 401" in result.security_stop and "check access and private_key" in result.security_stop
    # The first 401 stops the run: what was in flight, or took a place its answer freed, is all that went.
    assert site.server.counters().rejected_signatures <= 2 * 2
    assert result.counts["failed"] == 200  # refused for our key, not for their data: all sendable next time
    assert not site.server.counters().creates
    with Ledger.open(site.ledger, create=False) as ledger:
        sending = sum(1 for e in ledger.entries(result.run_id) if e.event == "sending")
        failed = [e.error or "" for e in ledger.entries(result.run_id) if e.state == "failed"]
    assert sending < 100  # rows after the stop are recorded as not sent, not as about to be sent
    assert len(failed) == result.counts["failed"]
    assert all(r.startswith(("not sent: ", "not sent again (HTTP 401): ")) for r in failed)
    assert all(r.endswith(result.security_stop) for r in failed)


def test_cli_run_is_silent_when_all_is_well_and_loud_when_not(site: Site) -> None:
    rows = booking_rows(3)
    csv = site.write_csv(rows)
    ok = CliRunner().invoke(cli, ["run", str(csv), "--mapping", str(site.mapping), "--config", str(site.config)])
    assert ok.exit_code == 0, ok.output
    assert ok.output == ""
    rows.append(["P000009", "B000009", "Ann", "Lee", "bad", "F", "2026-11-28 22:15"])
    bad = CliRunner().invoke(cli, ["run", str(site.write_csv(rows)), "--mapping", str(site.mapping),
                                   "--config", str(site.config)])  # fmt: skip
    assert bad.exit_code == 1
    assert "skipped" in bad.output and "invalid" in bad.output and "line 5 key P000009/B000009" in bad.output
    assert "Ann" not in bad.output and "Lee" not in bad.output


def test_second_concurrent_run_is_refused_with_exit_4(site: Site) -> None:
    site.server.latency_s = 0.05  # the first run takes seconds: long enough to overlap
    site.write_config(concurrency=1)
    csv = site.write_csv(booking_rows(100))
    args = ["run", str(csv), "--mapping", str(site.mapping), "--config", str(site.config)]
    first = subprocess.Popen([sys.executable, "-m", "pipeline", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not site.server.counters().create_attempts and time.monotonic() < deadline:
            time.sleep(0.02)  # wait until the first run is sending
        second = CliRunner().invoke(cli, args)
    finally:
        first.kill()
        first.communicate()
    assert second.exit_code == 4
    assert f"another run holds the ledger (pid {first.pid}, started 20" in second.output
    with Ledger.open(site.ledger, create=False) as ledger:
        assert ledger.latest_run_id() == 1  # the refused run recorded nothing


def test_config_errors_exit_2_and_send_nothing(site: Site) -> None:
    site.config.write_text(site.config.read_text() + "colour = 'blue'\n")
    csv = site.write_csv(booking_rows(1))
    result = CliRunner().invoke(cli, ["run", str(csv), "--mapping", str(site.mapping), "--config", str(site.config)])
    assert result.exit_code == 2
    assert "colour: unknown key" in result.output
    assert not site.ledger.exists()


def test_plain_http_to_a_remote_host_is_refused(site: Site) -> None:
    site.write_config(base_url="http://coremr.example.org")
    with pytest.raises(Exception, match="allow_insecure_http"):
        load_config(site.config)


def test_ledger_entries_cannot_be_edited_without_detection(site: Site) -> None:
    run(site, site.write_csv(booking_rows(2)))
    db = sqlite3.connect(site.ledger)
    db.execute("UPDATE entries SET state='delivered' WHERE seq=(SELECT MAX(seq) FROM entries WHERE event='state')")
    db.execute("UPDATE entries SET http_status=200 WHERE event='attempt' AND seq=(SELECT MIN(seq) FROM entries"
               " WHERE event='attempt')")  # fmt: skip
    db.commit()
    db.close()
    with Ledger.open(site.ledger, create=False) as ledger:
        broken = verify_chain(ledger.entries())
    assert broken is not None and "edited" in broken.problem


def test_a_ledger_path_that_cannot_be_created_is_one_line_and_exit_2(site: Site) -> None:
    blocker = site.dir / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    site.write_config(ledger=str(blocker / "ledger.sqlite"))
    csv = site.write_csv(booking_rows(1))
    result = CliRunner().invoke(cli, ["run", str(csv), "--mapping", str(site.mapping), "--config", str(site.config)])
    assert result.exit_code == 2
    assert "not-a-dir/ledger.sqlite" in result.output and "Traceback" not in result.output
    assert not site.server.counters().create_attempts


def test_run_reads_the_passphrase_by_the_one_rule(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.hazmat.primitives import serialization

    from pipeline.protocol._keys import write_private_file

    encrypted = site.dir / "encrypted.private"
    write_private_file(
        encrypted,
        site.client_keys.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"jail passphrase"),
        ),
    )
    csv = site.write_csv(booking_rows(2))
    args = ["run", str(csv), "--mapping", str(site.mapping), "--config", str(site.config)]
    site.write_config(private_key=str(encrypted), passphrase_env="SITE_KEY_PASS")
    monkeypatch.delenv("SITE_KEY_PASS", raising=False)
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 2
    assert f"{site.config}: passphrase_env: environment variable SITE_KEY_PASS is not set" in refused.output
    assert not site.ledger.exists()

    site.write_config(private_key=str(encrypted))  # no passphrase_env: CWS_KEY_PASSPHRASE, as the README says
    monkeypatch.setenv("CWS_KEY_PASSPHRASE", "jail passphrase")
    delivered = CliRunner().invoke(cli, args)
    assert delivered.exit_code == 0, delivered.output
    assert sorted(site.server.patients()) == ["P000001", "P000002"]


def test_a_servers_message_cannot_forge_output_lines_or_print_the_patients_name(site: Site) -> None:
    from pipeline.simulator._http import Answer

    answer = site.server.respond

    def respond(method: str, path: str, body: bytes, authorization: str | None) -> Any:
        if method != "POST":
            return answer(method, path, body, authorization)
        sent = json.loads(body)
        message = (f"{sent['lname']}, {sent['fname']} born {sent['dob'][:10]} is refused\r\n"
                   "  line 99 key P000099/B000099: delivered\x1b[2K")  # fmt: skip
        return Answer(400, {"error": message})

    site.server.respond = respond  # type: ignore[method-assign]
    csv = site.write_csv(booking_rows(1))
    runner = CliRunner()
    result = runner.invoke(cli, ["run", str(csv), "--mapping", str(site.mapping), "--config", str(site.config)])
    report = runner.invoke(cli, ["report", "--ledger", str(site.ledger)])
    assert result.exit_code == 1 and report.exit_code in (0, 1), report.output
    for output in (result.output, report.output):
        assert "HTTP 400: CorEMR's words are kept in the ledger, not printed" in output
        assert "is refused" not in output  # the server's own words are not printed at all
        assert not [line for line in output.splitlines() if line.lstrip().startswith("line 99")]
        assert "First1" not in output and "Last1" not in output and "1951-02-11" not in output
        assert "\x1b" not in output


def test_a_row_that_stays_rejected_keeps_the_same_message_every_night(site: Site) -> None:
    rows = booking_rows(1)
    refused_by_coremr(site, rows)
    csv = site.write_csv(rows)
    first = run(site, csv)
    nights = [run(site, csv) for _ in range(3)]
    reasons = [r.attention[0].reason for r in nights]
    expected = f"rejected earlier with the same body (run {first.run_id}): {first.attention[0].reason}"
    assert reasons == [expected] * 3
    assert site.server.counters().create_attempts["P000001"] == 1  # the rejected row was not sent again
