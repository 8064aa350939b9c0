"""Real `cws-pipeline run` processes: one lock per ledger file, SIGTERM's handler, the progress bar on a terminal."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ..sites import Site, assert_every_patient_created_once, booking_rows, run_endings, run_process, wait_for_creates

pytestmark = pytest.mark.slow  # real processes: run by .ci/run; skip with -m 'not slow' while editing


def test_two_runs_on_two_hard_links_of_one_ledger_the_second_exits_4(site: Site, tmp_path: Path) -> None:
    first_csv = site.write_csv(booking_rows(1))
    made = run_process(site, first_csv)  # the ledger exists once a run has made it
    _, err = made.communicate(timeout=120)
    assert made.returncode == 0, err.decode()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = elsewhere / "same-ledger.sqlite"
    os.link(site.ledger, link)
    second_config = elsewhere / "cws.toml"
    second_config.write_text(site.config.read_text().replace(str(site.ledger), str(link)), encoding="utf-8")

    site.server.latency_s = 0.1  # 30 s at this pace: the second run starts long before the first ends
    site.write_config(concurrency=1)
    csv = site.write_csv(booking_rows(300))
    first = run_process(site, csv)
    try:
        wait_for_creates(site, first, 3)
        second = run_process(site, csv, second_config)
        _, err = second.communicate(timeout=60)
        assert second.returncode == 4, err.decode()
        assert err.decode().splitlines() == [
            f"Error: {link}: another run holds the ledger, through another name for the same file (a hard link or"
            " another path); wait for it to finish"
        ]
    finally:
        site.server.latency_s = 0
        _, first_err = first.communicate(timeout=120)
    assert first.returncode == 0, first_err.decode()
    assert_every_patient_created_once(site, 300)
    assert run_endings(link) == [(1, "finished", 0), (2, "finished", 0)]  # the refused run recorded nothing
    audit = subprocess.run([sys.executable, "-m", "pipeline", "audit", "-c", str(second_config)], capture_output=True,
                           text=True, timeout=120, check=False)  # fmt: skip
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "Audit passed" in audit.stdout


def test_sigterm_is_handled_only_while_a_recorded_run_sends_and_the_old_handler_comes_back() -> None:
    from pipeline.delivery._run import _SigtermEndsLikeCtrlC

    seen: list[int] = []
    before = signal.signal(signal.SIGTERM, lambda signum, _: seen.append(signum))
    try:
        with _SigtermEndsLikeCtrlC() as sigterm:
            os.kill(os.getpid(), signal.SIGTERM)  # not armed: the handler in place gets it
            assert seen == [signal.SIGTERM]
            sigterm.arm()
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)  # a second one while the end is recorded: ignored
        os.kill(os.getpid(), signal.SIGTERM)
        assert seen == [signal.SIGTERM, signal.SIGTERM]  # restored once the run is over
    finally:
        signal.signal(signal.SIGTERM, before)


def run_on_a_terminal(site: Site, csv: Path) -> tuple[int, str]:
    """`cws-pipeline run` with its stdout and stderr on a pseudo-terminal, as a person runs it: exit code, output."""
    primary, secondary = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160"}
    proc = run_process(site, csv, stdin=subprocess.DEVNULL, stdout=secondary, stderr=secondary, env=env)
    os.close(secondary)
    shown = bytearray()
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # Linux: EIO once the process has closed its end
            break
        if not chunk:
            break
        shown += chunk
    os.close(primary)
    return proc.wait(timeout=120), shown.decode(errors="replace")


def test_on_a_terminal_a_run_draws_its_progress_bar_then_lists_every_row_needing_a_person(site: Site) -> None:
    rows = booking_rows(40)
    rows[4][4] = "not a date"  # line 6
    site.write_config(adaptive=False, concurrency=3)
    code, shown = run_on_a_terminal(site, site.write_csv(rows))
    assert code == 1, shown
    assert "Delivering" in shown and "40/40" in shown and "concurrency 3" in shown  # the bar, at its last refresh
    assert "Run 1: 40 rows" in shown and "line 6 key P000005/B000005: invalid" in shown
    assert len(site.server.counters().creates) == 39  # every row but the invalid one, once
