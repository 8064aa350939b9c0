"""The sample mappings, one per CorEMR API version, each checked against sample_data/bookings.csv."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pipeline.mapping import load_mapping, validate_csv
from pipeline.mapping._mapping_file import parse_mapping
from pipeline.protocol import API_PROFILES

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data" / "bookings.csv"
MAPPINGS = {"v1": "sample-jms-v1.toml", "v2": "sample-jms.toml", "v3": "sample-jms-v3.toml"}
# The sample's deliberately bad rows (bad date, bad sex twice, no name, a repeated key, a future birth
# date, a ragged row): every version's mapping must catch the same ones.
BAD_LINES = [12, 32, 57, 57, 82, 122, 163, 214]
# SHA-256 of the 233 bodies mappings/sample-jms.toml gave before API versions existed (validate --bodies
# on commit a33f502): a mapping without [target] api must keep giving these exact bytes.
V2_BODIES_SHA256 = "d6f98d075bed0430d0733bbdc5936f2ca8df67e78b0b255a5612b4889099a613"


def bodies(tmp_path: Path, mapping_path: Path) -> bytes:
    out = tmp_path / f"{mapping_path.stem}.jsonl"
    validate_csv(SAMPLE, load_mapping(mapping_path), bodies=out, max_problems=100)
    return out.read_bytes()


@pytest.mark.parametrize("api", ["v1", "v2", "v3"])
def test_each_sample_mapping_maps_the_sample_export_in_its_versions_fields(tmp_path: Path, api: str) -> None:
    mapping = load_mapping(ROOT / "mappings" / MAPPINGS[api])
    assert mapping.api == api and mapping.endpoint == API_PROFILES[api].routes.collection  # type: ignore[index]
    report = validate_csv(SAMPLE, mapping, bodies=tmp_path / "bodies.jsonl", max_problems=100)
    assert (report.rows, report.valid, report.invalid) == (240, 233, 7)
    assert [p.line for p in report.problems] == BAD_LINES
    profile = API_PROFILES[api]  # type: ignore[index]
    for line in (tmp_path / "bodies.jsonl").read_text(encoding="utf-8").splitlines():
        body = json.loads(line)
        assert set(profile.required) <= set(body)
        assert set(body) <= {rule.name for rule in profile.fields}
        assert body["sex"] in profile.rule("sex").choices  # type: ignore[union-attr]


def test_the_v2_sample_gives_the_same_bytes_as_before_api_versions(tmp_path: Path) -> None:
    sample = ROOT / "mappings" / "sample-jms.toml"
    assert "api =" not in sample.read_text(encoding="utf-8")  # an existing mapping, written before versions
    before = bodies(tmp_path, sample)
    assert hashlib.sha256(before).hexdigest() == V2_BODIES_SHA256
    explicit = tmp_path / "explicit.toml"
    explicit.write_text(sample.read_text(encoding="utf-8").replace("[target]\n", '[target]\napi = "v2"\n'))
    assert bodies(tmp_path, explicit) == before


def test_the_versions_differ_where_the_docs_say(tmp_path: Path) -> None:
    first = {api: json.loads(bodies(tmp_path, ROOT / "mappings" / name).splitlines()[0]) for api, name in
             MAPPINGS.items()}  # fmt: skip
    v1, v2 = first["v1"], first["v2"]
    assert (v1["facility"], v1["sex"], v1["booking_number"]) == ("MAIN", "Male", "B25-000001")
    assert (v2["facility"], v2["sex"], v2["booking_no"]) == (10000, "M", "B25-000001")
    assert "agency" in first["v2"] and "agency" not in first["v3"] and "agency" not in first["v1"]


def test_a_mapping_is_parsed_the_same_from_bytes(tmp_path: Path) -> None:
    path = ROOT / "mappings" / MAPPINGS["v1"]
    assert parse_mapping(path.read_bytes(), path) == load_mapping(path)


def test_the_bench_and_demo_mapping_is_the_commented_sample_without_its_comments(tmp_path: Path) -> None:
    """tools/_synthetic.py carries the sample mapping for an installed package; it must read like the file."""
    from pipeline.tools._synthetic import SAMPLE_MAPPING_TOML

    built_in = parse_mapping(SAMPLE_MAPPING_TOML.encode(), tmp_path / "built-in.toml")
    sample = load_mapping(ROOT / "mappings" / "sample-jms.toml")
    assert (built_in.api, built_in.key_fields, built_in.source, built_in.endpoint) == (
        sample.api, sample.key_fields, sample.source, sample.endpoint,
    )  # fmt: skip
    assert built_in.fields == sample.fields
