"""An export still being written is not sent: the run waits for it to settle (settle_seconds) and refuses otherwise."""

from __future__ import annotations

import csv
import io
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline import ConfigError, SourceError
from pipeline.cli import cli
from pipeline.delivery import load_config
from pipeline.source import take_snapshot

from ..sites import Site, booking_rows


@contextmanager
def export_job(path: Path, *, start: int) -> Iterator[threading.Event]:
    """A jail export job writing a row to PATH every few milliseconds until the block ends."""
    done = threading.Event()

    def write() -> None:
        i = start
        while not done.is_set():
            text = io.StringIO()
            csv.writer(text).writerow(booking_rows(1, start=i)[0])
            with path.open("a", encoding="utf-8", newline="") as fh:
                fh.write(text.getvalue())
            i += 1
            done.wait(0.005)

    writer = threading.Thread(target=write, name="export-job")
    writer.start()
    try:
        yield done
    finally:
        done.set()
        writer.join()


def run_cli(site: Site, csv_path: Path) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["run", str(csv_path), "--mapping", str(site.mapping), "--config", str(site.config)])
    return r.exit_code, r.output


def test_a_file_appended_to_while_the_run_waits_is_refused_and_nothing_is_sent(site: Site) -> None:
    site.write_config(settle_seconds=0.3)
    export = site.write_csv(booking_rows(5))
    with export_job(export, start=100):
        code, output = run_cli(site, export)
    assert code == 2 and len(output.splitlines()) == 1, output
    assert output == (
        f"Error: {export}: the file changed within the 0.3 s it must stay unchanged (settle_seconds): the export is"
        " still being written; nothing was sent: run again once the export is complete\n"
    )
    assert site.server.counters().requests == 0 and not site.ledger.exists()

    code, output = run_cli(site, export)  # the job has finished: the whole export goes, once
    written = len(export.read_text(encoding="utf-8").splitlines()) - 1
    assert code == 0, output
    creates = site.server.counters().creates
    assert len(creates) == written > 5 and set(creates.values()) == {1}


def test_a_file_whose_time_changes_at_the_same_size_is_refused(tmp_path: Path) -> None:
    export = tmp_path / "bookings.csv"
    export.write_bytes(b"a,b\n1,2\n")
    done = threading.Event()

    def touch() -> None:  # a job rewriting the same bytes: only the modification time moves
        ns = os.stat(export).st_mtime_ns
        while not done.is_set():
            ns += 1_000_000
            os.utime(export, ns=(ns, ns))
            done.wait(0.005)

    toucher = threading.Thread(target=touch)
    toucher.start()
    try:
        with pytest.raises(SourceError, match="still being written"):
            take_snapshot(export, settle_seconds=0.2)
    finally:
        done.set()
        toucher.join()
    with take_snapshot(export, settle_seconds=0.01) as snapshot:  # left alone, it settles and is read whole
        assert snapshot.size == 8


def test_settle_seconds_is_three_by_default_zero_turns_it_off_and_it_is_range_checked(site: Site) -> None:
    site.config.write_text(site.config.read_text().replace("settle_seconds = 0.01\n", ""), encoding="utf-8")
    assert load_config(site.config).settle_seconds == 3
    site.write_config(settle_seconds=0)
    assert load_config(site.config).settle_seconds == 0
    site.write_config(settle_seconds=-1)
    with pytest.raises(ConfigError, match=r"cws.toml: settle_seconds: expected a non-negative number of seconds"):
        load_config(site.config)
