"""A run follows the mapping's CorEMR API version: a v1 site must sign with CWS-SHA1, or nothing is sent."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from pipeline.cli import cli

from ..sites import Site

ROOT = Path(__file__).resolve().parents[2]


def test_a_v1_mapping_with_a_sha256_config_is_refused_in_one_line_and_nothing_is_sent(site: Site) -> None:
    csv_path, mapping = ROOT / "sample_data" / "bookings.csv", ROOT / "mappings" / "sample-jms-v1.toml"
    site.write_config(algorithm="CWS-SHA256")
    refused = CliRunner().invoke(cli, ["run", str(csv_path), "--mapping", str(mapping), "--config", str(site.config)])
    assert refused.exit_code == 2
    assert refused.output == (
        f"Error: {site.config.resolve()}: algorithm: CorEMR API v1 (CorEMR 5.3+) accepts CWS-SHA1 only, not"
        ' CWS-SHA256; set algorithm = "CWS-SHA1"\n'
    )
    assert site.server.counters().requests == 0 and not site.ledger.exists()
