"""Per-charge exports (a booking on one line per charge): `validate` counts the repeats apart from valid and
invalid rows and writes each booking's body once, at any chunking; the CLI says so in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.mapping import load_mapping, validate_csv

ROOT = Path(__file__).resolve().parents[2]
NIGHT_2 = ROOT / "sample_data" / "bookings-night2.csv"
MAPPING = ROOT / "mappings" / "sample-jms.toml"


@pytest.mark.parametrize("chunk_rows", [1, 7, 20_000])
def test_validate_counts_repeated_bookings_and_writes_each_body_once(tmp_path: Path, chunk_rows: int) -> None:
    bodies = tmp_path / "bodies.jsonl"
    report = validate_csv(NIGHT_2, load_mapping(MAPPING), bodies=bodies, chunk_rows=chunk_rows)
    assert (report.rows, report.valid, report.invalid, report.duplicates) == (246, 237, 7, 2)
    written = bodies.read_bytes().splitlines()
    assert len(written) == 237 and len(set(written)) == 237
    assert sum(b'"booking_no":"B25-000242"' in line for line in written) == 1  # on three lines of the export


def test_the_validate_command_names_the_repeats_in_one_line() -> None:
    result = CliRunner().invoke(cli, ["validate", str(NIGHT_2), "-m", str(MAPPING), "--show", "0"])
    assert result.exit_code == 1  # the sample's seven bad rows
    assert "duplicate: 2 (the same key and body as an earlier line: one booking, sent once)\n" in result.output
