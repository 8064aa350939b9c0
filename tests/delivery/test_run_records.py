"""Every run record is true: a crashed, interrupted, killed or disk-full run says so, and the next run notices.

Real runs: the library entry point for a crash, real `cws-pipeline run` processes for Ctrl-C, SIGKILL
and a file-size limit standing in for a full disk.
"""

from __future__ import annotations

import resource
import signal
from collections import Counter

import pytest

from pipeline import ROW_STATES, ExitCode
from pipeline.delivery import RowOutcome, RunProgress, load_config, run_bookings
from pipeline.ledger import Ledger, verify_chain

from ..sites import (
    SITE_MAPPING,
    KeyPair,
    RecordedProgress,
    Site,
    assert_every_patient_created_once,
    booking_rows,
    ctrl_c_as_a_terminal_sends_it,
    run_endings,
    run_process,
    wait_for_creates,
)

pytestmark = pytest.mark.slow  # real processes: run by .ci/run; skip with -m 'not slow' while editing


def test_a_crash_mid_run_is_recorded_as_crashed_with_its_counts_and_the_next_run_says_so(site: Site) -> None:
    csv = site.write_csv(booking_rows(40))
    config = load_config(site.config)

    class CrashAfterFive(RunProgress):
        def __init__(self) -> None:
            self.seen: list[RowOutcome] = []

        def row(self, outcome: RowOutcome) -> None:
            self.seen.append(outcome)
            if len(self.seen) == 5:
                raise RuntimeError("a bug in the caller's progress hook")

    with pytest.raises(RuntimeError, match="progress hook"):
        run_bookings(csv, site.mapping, config, progress=CrashAfterFive())
    [(run_id, status, code)] = run_endings(site.ledger)
    assert (run_id, status, code) == (1, "crashed", 1)
    with Ledger.open(site.ledger, create=False) as ledger:
        counted = sum(1 for _ in ledger.row_states(1))
    assert counted >= 5  # the rows recorded before the crash, not "all counts 0"

    again = run_bookings(csv, site.mapping, config)
    assert again.notices == [
        "Note: earlier run 1 crashed (exit code 1); rows it left in doubt are settled by lookup in this run"
    ]
    assert again.exit_code == 0
    assert_every_patient_created_once(site, 40)


@pytest.mark.parametrize(
    ("signal_sent", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["Ctrl-C", "SIGTERM"]
)
def test_ctrl_c_or_sigterm_ends_a_run_recorded_interrupted_and_the_next_run_says_so(
    site: Site, signal_sent: signal.Signals, exit_code: int
) -> None:
    site.server.latency_s = 0.1  # 10 s or more to send them all: a signal sent on a busy machine still lands mid-run
    site.write_config(concurrency=2)
    csv = site.write_csv(booking_rows(300))
    proc = run_process(site, csv)
    wait_for_creates(site, proc, 10)
    proc.send_signal(signal_sent)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == exit_code, err.decode()
    assert err.decode().splitlines() == [
        f"Interrupted: run 1 was interrupted and is recorded so in {site.ledger}; the next run settles rows left"
        " in flight"
    ]
    assert out == b""
    assert run_endings(site.ledger) == [(1, "interrupted", exit_code)]
    assert len(site.server.counters().creates) < 300  # it stopped sending

    site.server.latency_s = 0
    again = run_process(site, csv)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err.decode()
    assert err.decode().splitlines() == [
        f"Note: earlier run 1 was interrupted (exit code {exit_code}); rows it left in doubt are settled by lookup in"
        " this run"
    ]
    assert run_endings(site.ledger)[1] == (2, "finished", 0)
    assert_every_patient_created_once(site, 300)


def test_a_killed_run_is_found_by_the_next_run_and_named_in_one_line(site: Site) -> None:
    site.server.latency_s = 0.1  # 10 s or more to send them all: a signal sent on a busy machine still lands mid-run
    site.write_config(concurrency=2)
    csv = site.write_csv(booking_rows(200))
    proc = run_process(site, csv)
    wait_for_creates(site, proc, 10)
    proc.kill()
    proc.communicate()
    site.server.latency_s = 0
    again = run_process(site, csv)
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err.decode()
    assert err.decode().splitlines() == [
        "Note: earlier run 1 ended without recording its end (killed?); rows it left in doubt are settled by lookup"
        " in this run"
    ]
    assert [(r, s) for r, s, _ in run_endings(site.ledger)] == [(1, "killed"), (2, "finished")]
    assert_every_patient_created_once(site, 200)


def _small_files() -> None:
    """In the child: files may not grow past 400 kB, as if the disk were full (Python ignores SIGXFSZ)."""
    ctrl_c_as_a_terminal_sends_it()
    resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))


def test_a_full_disk_mid_run_is_one_line_exit_6_and_loses_nothing_recorded(site: Site) -> None:
    csv = site.write_csv(booking_rows(300))
    proc = run_process(site, csv, preexec_fn=_small_files)
    _, err = proc.communicate(timeout=120)
    lines = err.decode().splitlines()
    assert proc.returncode == 6, err.decode()  # a ledger error, not "usage error, nothing sent"
    assert len(lines) == 1 and lines[0].startswith(f"Error: {site.ledger}: cannot write the ledger ("), lines
    assert "stopped sending and everything recorded before is kept" in lines[0]
    sent = len(site.server.counters().creates)
    assert 0 < sent < 300  # the disk filled mid-run

    again = run_process(site, csv)  # space again: the next run finishes the job
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err.decode()
    assert "Note: earlier run 1 crashed (exit code 6)" in err.decode()
    assert run_endings(site.ledger) == [(1, "crashed", 6), (2, "finished", 0)]
    with Ledger.open(site.ledger, create=False) as ledger:
        assert verify_chain(ledger.entries()) is None
        finals = {e.key: e.state for e in ledger.row_states(ledger.latest_run_id())}
    assert len(finals) == 300 and set(finals.values()) <= {"delivered", "skipped"}
    assert_every_patient_created_once(site, 300)


def refused_by_coremr(site: Site, rows: list[list[str]]) -> None:
    """Sex as written, without CorEMR's patient checks in the mapping: CorEMR itself refuses "X" (a signed 400)."""
    site.mapping.write_text(SITE_MAPPING.replace("[target]\n", '[target]\nprofile = "none"\n'), encoding="utf-8")
    for row in rows:
        row[5] = "X"


@pytest.mark.parametrize(
    ("night", "status", "exit_code", "counted"),
    [("clean", "finished", 0, {"delivered": 6}),
     ("one row refused", "finished", 1, {"delivered": 5, "rejected": 1}),
     ("wrong key", "stopped", 3, {"failed": 6})],
)  # fmt: skip
def test_a_runs_result_is_its_record_in_the_ledger(
    site: Site, other_keys: KeyPair, night: str, status: str, exit_code: int, counted: dict[str, int]
) -> None:
    run_bookings(site.write_csv(booking_rows(3, start=100)), site.mapping, load_config(site.config))  # run 1
    rows = booking_rows(6)
    if night == "one row refused":
        refused_by_coremr(site, rows[2:3])
    if night == "wrong key":
        site.write_config(private_key=str(other_keys.private), circuit_breaker=2)
    result = run_bookings(site.write_csv(rows), site.mapping, load_config(site.config), sleep=lambda _: None)

    with Ledger.open_read_only(site.ledger) as ledger:
        [record] = ledger.runs([ledger.latest_run_id() or 0])
        from_entries = ledger.state_counts(record.run_id)
    assert result.record == record and result.run_id == record.run_id == 2
    assert (record.status, record.exit_code, result.exit_code) == (status, exit_code, exit_code)
    assert isinstance(result.exit_code, ExitCode)
    every_state = {**dict.fromkeys(ROW_STATES, 0), **counted}
    assert result.counts == record.counts == from_entries == every_state
    assert result.rows == 6


def test_a_run_tells_its_progress_every_row_once_the_rows_read_the_lines_expected_and_its_limit(site: Site) -> None:
    rows = booking_rows(9)
    rows[3][4] = "not a date"  # recorded without a request
    csv = site.write_csv(rows)
    site.write_config(adaptive=False, concurrency=3)
    for night in ("first", "again"):  # again: every row needs no request (skipped, or invalid as before)
        progress = RecordedProgress()
        result = run_bookings(csv, site.mapping, load_config(site.config), progress=progress)
        assert sorted(o.line for o in progress.outcomes) == list(range(2, 11)), night  # each of the 9 rows once
        assert Counter(o.state for o in progress.outcomes) == {s: n for s, n in result.counts.items() if n}, night
        assert (progress.read, progress.lines, progress.limits) == ([9], [9], [3]), night
    assert result.counts["skipped"] == 8 and result.counts["invalid"] == 1
