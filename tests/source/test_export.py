"""Reading the export once: a private snapshot whose rows are exactly its hashed bytes, whatever the file does."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import SourceError
from pipeline.source import CsvFormat, open_source, take_snapshot
from pipeline.source._export import open_export, reads_in_place

from .test_csv import rows_of

HEADER = b"id,name\n"


def export_of(tmp_path: Path, rows: int, name: str = "bookings.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(HEADER + b"".join(b"%d,n%d\n" % (i, i) for i in range(rows)))
    return path


def test_rows_read_from_a_snapshot_are_exactly_the_bytes_hashed_while_the_file_grows(tmp_path: Path) -> None:
    path = export_of(tmp_path, 3)
    original = path.read_bytes()
    with take_snapshot(path) as snapshot:
        with path.open("ab") as export_job:  # the jail's export job is still appending
            export_job.write(b"".join(b"%d,late\n" % i for i in range(100, 180)))
        source = open_source(snapshot, CsvFormat())
        with path.open("ab") as export_job:  # ... and appends more while the rows are being read
            export_job.write(b"999,later\n")
        assert snapshot.sha256 == hashlib.sha256(original).hexdigest()
        assert snapshot.size == len(original)
        assert rows_of(source) == [(2, ["0", "n0"]), (3, ["1", "n1"]), (4, ["2", "n2"])]


def test_a_file_rewritten_after_the_snapshot_changes_nothing_read(tmp_path: Path) -> None:
    path = export_of(tmp_path, 2)
    with take_snapshot(path) as snapshot:
        path.write_bytes(b"something,else,entirely\n")
        assert rows_of(open_source(snapshot, CsvFormat())) == [(2, ["0", "n0"]), (3, ["1", "n1"])]


def test_a_file_still_being_written_while_it_is_copied_is_refused_in_one_line(tmp_path: Path) -> None:
    path = export_of(tmp_path, 1_000_000)  # ~12 MB: copying it takes long enough to overlap the appends
    size = path.stat().st_size
    appender = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\nwith open(sys.argv[1], 'ab', buffering=0) as f:\n"
            "    for _ in range(2_000_000): f.write(b'7,appended\\n')",
            str(path),
        ]
    )  # fmt: skip  (at most 22 MB)
    refusals: list[str] = []
    try:
        while path.stat().st_size == size:  # the export job is running
            time.sleep(0.01)
        for _ in range(20):  # on a busy machine one copy may fall between two appends; then it is whole
            try:
                with take_snapshot(path) as snapshot, snapshot.reader() as raw:
                    assert hashlib.sha256(raw.read()).hexdigest() == snapshot.sha256
            except SourceError as exc:
                refusals.append(str(exc))
                break
    finally:
        appender.kill()
        appender.wait()
    assert refusals == [
        f"{path}: the file changed while it was being read (is the export still being written?);"
        " nothing was sent: run again once the export is complete"
    ]


def test_the_snapshot_is_private_and_leaves_nothing_behind(tmp_path: Path) -> None:
    path = export_of(tmp_path, 2)
    copies = tmp_path / "copies"
    copies.mkdir()
    snapshot = take_snapshot(path, directory=copies)
    with snapshot, snapshot.reader() as raw:
        assert raw.read() == path.read_bytes()
        held = os.fstat(snapshot._file.fileno())
        assert stat.S_IMODE(held.st_mode) == 0o600
        assert held.st_nlink == 0  # unnamed from the start: nothing to find, nothing left after kill -9
        assert list(copies.iterdir()) == []


def test_a_missing_export_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"nope\.csv: no such file$"):
        take_snapshot(tmp_path / "nope.csv")


def test_reading_in_place_stops_at_the_size_the_file_had_when_opened(tmp_path: Path) -> None:
    path = export_of(tmp_path, 2)
    export = open_export(path)
    with path.open("ab") as export_job:
        export_job.write(b"2,n2\n")
    assert rows_of(open_source(export, CsvFormat())) == [(2, ["0", "n0"]), (3, ["1", "n1"])]
    export.close()


@pytest.mark.parametrize(
    ("encoding", "in_place"),
    [("utf-8", True), ("cp1252", True), ("latin-1", True), ("utf-16", False), ("cp037", False), ("shift_jis", False)],
)
def test_only_ascii_transparent_encodings_are_read_in_place(encoding: str, in_place: bool) -> None:
    assert reads_in_place(encoding) is in_place


def test_no_room_for_the_snapshot_is_one_line_naming_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = export_of(tmp_path, 20_000)
    full = Path("/dev/full")  # a real device on which every write fails with "No space left on device"
    if not full.exists():
        pytest.skip("no /dev/full on this system")
    monkeypatch.setattr("pipeline.source._export._private_copy", lambda *_: full.open("w+b", buffering=0))
    with pytest.raises(SourceError) as info:
        take_snapshot(path, directory=tmp_path)
    assert str(info.value) == (
        f"{path}: cannot copy the bookings file to a private snapshot in {tmp_path} (No space left on device);"
        " free space there or set TMPDIR to a disk with room"
    )
