"""A run reads the export once: what it sends is exactly what it hashed, even while the export job still writes."""

from __future__ import annotations

import csv
import hashlib
import io
import subprocess
import sys
import time
from pathlib import Path

from pipeline import load_config, run_bookings
from pipeline.ledger import Ledger

from ..sites import BOOKING_HEADER, RecordedProgress, Site, booking_rows

FILLER = "x" * 100_000  # an unmapped column: a 10 MB export of 100 rows takes a while to copy


def csv_lines(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def test_export_still_being_written_when_the_run_starts_is_refused_or_read_whole(site: Site) -> None:
    export = site.dir / "bookings.csv"
    export.write_bytes(csv_lines([[*BOOKING_HEADER, "Notes"]] + [[*r, FILLER] for r in booking_rows(100)]))
    row = csv_lines(booking_rows(1, start=101))  # the export job appends booking rows, each a complete line
    appender = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys, time\nwith open(sys.argv[1], 'ab', buffering=0) as f:\n"
            f"    for _ in range(60_000): f.write({row!r}); time.sleep(0.0005)",
            str(export),
        ]
    )  # fmt: skip  (at most ~4 MB, over half a minute)
    config = site.write_config(settle_seconds=0)  # the snapshot's own check, without the settle before it
    args = ["run", str(export), "--mapping", str(site.mapping), "--config", str(config)]
    outcomes: list[tuple[int, str]] = []
    try:
        size = export.stat().st_size
        while export.stat().st_size == size:
            time.sleep(0.01)
        for _ in range(5):  # on a busy machine one copy may fall between two appends: then it must be whole
            done = subprocess.run(
                [sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, check=False
            )
            outcomes.append((done.returncode, done.stderr))
            if done.returncode == 2:
                break
            assert_run_sent_exactly_its_hashed_rows(site, export)
    finally:
        appender.kill()
        appender.wait()
    code, stderr = outcomes[-1]
    assert code == 2 and stderr.count("\n") == 1, outcomes
    assert stderr.endswith(
        f"{export}: the file changed while it was being read (is the export still being written?);"
        " nothing was sent: run again once the export is complete\n"
    )
    assert "rows could not be matched to lines" not in stderr


def assert_run_sent_exactly_its_hashed_rows(site: Site, export: Path) -> None:
    """The last run's recorded source hash covers exactly the rows it sent (a header and N whole lines)."""
    with Ledger.open(site.ledger, create=False) as ledger:
        last = ledger.runs()[-1]
        run_id, source_sha256, counts = last.run_id, last.info.source_sha256, last.counts
        rows = len(list(ledger.row_states(run_id)))
    lines = export.read_bytes().split(b"\n")
    assert hashlib.sha256(b"\n".join(lines[: rows + 1]) + b"\n").hexdigest() == source_sha256, counts


def test_the_progress_bar_is_told_the_exports_rows_counted_in_the_one_read(site: Site) -> None:
    export = site.write_csv(booking_rows(7))
    progress = RecordedProgress()
    result = run_bookings(export, site.mapping, load_config(site.write_config()), progress=progress)
    assert progress.lines == [7] and result.rows == 7  # 8 line breaks, less the header's
