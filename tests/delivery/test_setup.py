"""A run that cannot be set up safely is refused in one line, exit 2, before anything is locked or sent."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.protocol import generate_private_key

from ..sites import Site, booking_rows


def run_cli(site: Site) -> Any:
    csv = site.write_csv(booking_rows(2))
    return CliRunner().invoke(cli, ["run", str(csv), "--mapping", str(site.mapping), "--config", str(site.config)])


def assert_refused_in_one_line(site: Site, result: Any, *needles: str) -> str:
    """Exit 2, one line on stderr naming the problem, no traceback, nothing sent, no ledger."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]
    assert "Traceback" not in result.output
    assert not site.server.counters().create_attempts and not site.ledger.exists()
    return str(lines[0])


@pytest.mark.parametrize(
    ("base_url", "needle"),
    [
        ("http://127.0.0.1:99999", "the port must be a number from 1 to 65535"),
        ("https://coremr.example.org/?token=abc", "without a ?query or #fragment"),
        ("https://coremr.example.org/#frag", "without a ?query or #fragment"),
        ("https://jail:hunter2@coremr.example.org", "holds a user name or password"),
    ],
)
def test_a_base_url_that_cannot_be_used_is_refused(site: Site, base_url: str, needle: str) -> None:
    site.write_config(base_url=base_url)
    line = assert_refused_in_one_line(site, run_cli(site), "base_url", needle)
    assert "hunter2" not in line  # a password in base_url is never printed


@pytest.mark.parametrize("access", ["", "x, Signature=AAAA", "county\\r\\nX-Injected: 1"])
def test_an_access_a_header_cannot_carry_is_refused_when_the_config_loads(site: Site, access: str) -> None:
    site.write_config(access=access)  # TOML's "\r\n" escape: a real CR/LF in the value
    assert_refused_in_one_line(site, run_cli(site), "access", "cannot be empty or contain spaces or commas")


@pytest.mark.parametrize(("content", "needle"), [(None, "no such CA bundle file"), (b"garbage\n", "not a PEM bundle")])
def test_a_missing_or_garbage_ca_bundle_is_refused(site: Site, content: bytes | None, needle: str) -> None:
    bundle = site.dir / "ca.pem"
    if content is not None:
        bundle.write_bytes(content)
    site.write_config(ca_bundle=str(bundle))
    assert_refused_in_one_line(site, run_cli(site), "ca_bundle", needle)


def test_an_empty_server_keys_directory_is_refused(site: Site) -> None:
    empty = site.dir / "no-keys"
    empty.mkdir()
    site.write_config(server_keys=str(empty))
    assert_refused_in_one_line(site, run_cli(site), "server_keys", "holds no <USERNAME>.pem")


@pytest.mark.parametrize("bits", [512, 1024])
def test_a_private_key_shorter_than_2048_bits_is_refused(site: Site, tmp_path: Path, bits: int) -> None:
    short = tmp_path / f"short-{bits}.private"
    subprocess.run(["openssl", "genrsa", "-out", str(short), str(bits)], check=True, capture_output=True)
    short.chmod(0o600)
    site.write_config(private_key=str(short))
    assert_refused_in_one_line(site, run_cli(site), f"a {bits}-bit private key", "at least 2048 bits")


def test_a_socks_proxy_from_the_environment_is_refused(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    assert_refused_in_one_line(site, run_cli(site), "not an http or https proxy URL")


def test_generating_a_key_of_more_than_16384_bits_is_refused_at_once() -> None:
    with pytest.raises(Exception, match="at most 16384 bits"):
        generate_private_key(99_999_999)
