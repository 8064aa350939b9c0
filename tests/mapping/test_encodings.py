"""`[source] encoding`: every Python codec either reads a plain CSV written in it or is refused at load in one line."""

from __future__ import annotations

import encodings.aliases
from pathlib import Path

import pytest

from pipeline import MappingError
from pipeline.mapping import load_mapping, map_csv

CODECS = sorted(
    set(encodings.aliases.aliases.values())
    | {"utf-8-sig", "utf-16", "utf-32", "idna", "punycode", "unicode_escape", "raw_unicode_escape", "undefined"}
)
TEXT = 'id;name\r\n1;Ann Lee\r\n2;"Bob; Jr"\r\n'


@pytest.mark.parametrize("encoding", CODECS)
def test_every_codec_reads_a_csv_written_in_it_or_is_refused_at_load(tmp_path: Path, encoding: str) -> None:
    mapping = tmp_path / "m.toml"
    mapping.write_text(
        f'[source]\nencoding = "{encoding}"\ndelimiter = ";"\n[target]\nprofile = "none"\nkey = ["id"]\n'
        '[fields.id]\ncolumn = "id"\n[fields.name]\ncolumn = "name"\n',
        encoding="utf-8",
    )
    try:
        loaded = load_mapping(mapping)
    except MappingError as exc:
        assert "\n" not in str(exc) and ": source.encoding: " in str(exc)
        return
    export = tmp_path / "in.csv"
    export.write_bytes(TEXT.encode(encoding))
    rows = [row for chunk in map_csv(export, loaded) for row in chunk]
    assert [row.body for row in rows] == [b'{"id":"1","name":"Ann Lee"}', b'{"id":"2","name":"Bob; Jr"}'], encoding
