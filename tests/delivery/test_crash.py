"""Crash safety: SIGKILL a real `run` process at seeded moments; re-runs finish the job with no duplicates."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import time

import pytest

from pipeline.ledger import Ledger, verify_chain

from ..sites import SITE_MAPPING, Site, booking_rows, run_process

ROWS = 500


def sending_entries(site: Site) -> int:
    """How many requests the ledger has recorded as about to leave, across runs (0 before it exists)."""
    if not site.ledger.exists():
        return 0
    db = sqlite3.connect(f"file:{site.ledger}?mode=ro", uri=True, timeout=5)
    try:
        return int(db.execute("SELECT COUNT(*) FROM entries WHERE event='sending'").fetchone()[0])
    except sqlite3.OperationalError:  # schema not written yet
        return 0
    finally:
        db.close()


def kill_at_seeded_moments(site: Site, csv: object, rng: random.Random, times: int, low: int, high: int) -> int:
    """Start runs and SIGKILL each after LOW to HIGH more requests were recorded as leaving; return the kills.

    Moments are counted in "sending" entries rather than seconds (a loaded machine slows the run, not the
    test's aim), with a little seeded jitter so that kills land between the record, the request and its outcome.
    """
    kills, sent = 0, sending_entries(site)
    for _ in range(times):
        sent += rng.randint(low, high)
        proc = run_process(site, csv)
        while proc.poll() is None and sending_entries(site) < sent:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.01))
        if proc.poll() is not None:
            proc.communicate()
            break
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        kills += 1
    return kills


def finish(site: Site, csv: object) -> tuple[subprocess.Popen[bytes], bytes, bytes]:
    """Run again (at most three times) until a run exits 0: every row delivered or skipped."""
    for _ in range(3):
        proc = run_process(site, csv)
        out, err = proc.communicate(timeout=120)
        assert b"Traceback" not in err, err.decode()
        if proc.returncode == 0:
            break
    return proc, out, err


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_resume_after_kill_creates_no_duplicates_and_loses_no_row(site: Site, seed: int) -> None:
    rng = random.Random(seed)
    site.server.latency_s = 0.003  # requests in flight when the kill lands
    site.write_config(concurrency=8)
    csv = site.write_csv(booking_rows(ROWS))
    kills = kill_at_seeded_moments(site, csv, rng, times=4, low=40, high=110)
    proc, out, err = finish(site, csv)
    assert proc.returncode == 0, (out + err).decode()

    creates = site.server.counters().creates
    assert sorted(creates) == [f"P{i:06d}" for i in range(1, ROWS + 1)]
    assert set(creates.values()) == {1}, "a patient was created twice"
    with Ledger.open(site.ledger, create=False) as ledger:
        assert verify_chain(ledger.entries()) is None
        latest = ledger.latest_run_id()
        finals = list(ledger.row_states(latest))
        killed = sum(run.status == "killed" for run in ledger.runs())  # recorded by the run that found it
    assert kills >= 1 and killed >= 1, "no kill landed mid-run: the test proved nothing"
    assert sorted(e.key or "" for e in finals) == sorted(f"P{i:06d}/B{i:06d}" for i in range(1, ROWS + 1))
    assert {e.state for e in finals} <= {"delivered", "skipped"}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3, 4])
def test_kills_inside_the_multi_step_flow_never_create_a_second_patient_or_booking(site: Site, seed: int) -> None:
    rng = random.Random(seed)
    known = booking_rows(150)
    site.mapping.write_text(SITE_MAPPING.replace("[target]\n", '[target]\non_change = "update"\n'))
    first = run_process(site, site.write_csv(known, "night1.csv"))
    first.communicate(timeout=120)
    assert first.returncode == 0
    by_hand = booking_rows(100, start=501)
    for row in by_hand:  # people in CorEMR already, entered by hand: their create is refused, the booking added
        site.server.enter_by_hand({"external_id": row[0], "facility": 10000, "agency": 2, "fname": row[2],
                                   "lname": row[3], "dob": row[4], "sex": row[5], "booking_no": "OLD",
                                   "booking_date": "2025-01-01 10:00:00.000"})  # fmt: skip
    rebooked = [[r[0], "R" + r[1], *r[2:]] for r in known[:100]]  # known people: the booking only
    # An update; where the booking's date changed too (every other one), then its booking's.
    corrected = [[*r[:2], r[2] + "-fixed", *r[3:6], r[6] if i % 2 else "2026-11-29 01:00"]
                 for i, r in enumerate(known[100:])]  # fmt: skip
    rows = rebooked + by_hand + corrected
    rng.shuffle(rows)
    csv = site.write_csv(rows, "night2.csv")
    site.server.latency_s = 0.003  # requests in flight when the kill lands
    site.write_config(concurrency=8)
    kills = kill_at_seeded_moments(site, csv, rng, times=5, low=30, high=90)
    proc, out, err = finish(site, csv)
    assert proc.returncode == 0, (out + err).decode()

    counters = site.server.counters()
    assert counters.creates == {r[0]: 1 for r in known + by_hand}
    assert all(n == 1 for nums in counters.booking_creates.values() for n in nums.values())
    assert {(e, b) for e, nums in counters.booking_creates.items() for b in nums} == (
        {(r[0], r[1]) for r in known + rebooked} | {(r[0], r[1]) for r in by_hand} | {(r[0], "OLD") for r in by_hand}
    )
    assert counters.resent_creates == {} and counters.resent_booking_creates == {}, "something was sent twice"
    assert {p["fname"] for e, p in site.server.patients().items() if e in {r[0] for r in corrected}} == {
        r[2] for r in corrected
    }
    with Ledger.open(site.ledger, create=False) as ledger:
        assert verify_chain(ledger.entries()) is None
        finals = list(ledger.row_states(ledger.latest_run_id()))
        killed = sum(run.status == "killed" for run in ledger.runs())
        steps = {json.loads(e.detail or "{}").get("step") for e in ledger.entries() if e.event == "sending"}
    assert kills >= 1 and killed >= 1, "no kill landed mid-run: the test proved nothing"
    assert steps == {"create", "booking", "update", "booking update"}
    assert sorted(e.key or "" for e in finals) == sorted(f"{r[0]}/{r[1]}" for r in rows)
    assert {e.state for e in finals} <= {"delivered", "skipped"}
