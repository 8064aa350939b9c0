"""A mapping's lookup_file is a regular file of at most 16 MiB: /dev/zero, a FIFO or a huge file is refused unread."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.mapping import _tables, load_mapping
from pipeline.mapping._tables import MAX_LOOKUP_BYTES

from .test_mapping_file import MINIMAL, refused, write_mapping

FIELD = '[fields.x]\ncolumn = "A"\nlookup_file = { path = "t.csv", key = "Code", value = "ID" }\n'
KEY_PATH = "fields.x.lookup_file.path"


def test_a_symlink_to_dev_zero_is_refused_without_reading_it(tmp_path: Path) -> None:
    (tmp_path / "t.csv").symlink_to("/dev/zero")
    message = refused(tmp_path, MINIMAL + FIELD)
    assert message == f"{tmp_path / 'site.toml'}: {KEY_PATH}: {tmp_path / 't.csv'} is not a regular file" \
                      " (a FIFO, device or directory); give a table file"  # fmt: skip


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "t.csv")
    assert "is not a regular file" in refused(tmp_path, MINIMAL + FIELD)


def test_a_39_mb_table_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "t.csv"
    with big.open("wb") as out:
        out.write(b"Code,ID\nMAIN,1\n")
        out.truncate(39_000_000)  # sparse: nothing to write, as big as the one the review fed in
    message = refused(tmp_path, MINIMAL + FIELD)
    assert message.endswith(f"{KEY_PATH}: {big} is larger than a lookup table may be (16 MiB)"), message
    assert MAX_LOOKUP_BYTES == 16 << 20


def test_a_table_at_the_limit_is_read_and_one_byte_more_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = b"Code,ID\nMAIN,1\n"
    monkeypatch.setattr(_tables, "MAX_LOOKUP_BYTES", len(table) + 4)  # (16 MiB of CSV would only be slower)
    (tmp_path / "t.csv").write_bytes(table + b"\n" * 4)
    assert load_mapping(write_mapping(tmp_path, MINIMAL + FIELD)).sha256
    (tmp_path / "t.csv").write_bytes(table + b"\n" * 5)
    assert "is larger than a lookup table may be" in refused(tmp_path, MINIMAL + FIELD)


@pytest.mark.parametrize("name", ["t.csv", "t.toml"])
def test_a_directory_named_like_a_table_is_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / name).mkdir()
    field = FIELD.replace("t.csv", name).replace(', key = "Code", value = "ID"', "") if name.endswith("toml") else FIELD
    message = refused(tmp_path, MINIMAL + field)
    assert f"{KEY_PATH}: " in message and "is not a regular file" in message, message
