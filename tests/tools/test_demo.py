"""The README's first command: `cws-pipeline demo` runs the whole job twice with no set-up."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.tools import run_demo
from pipeline.tools._demo import SAMPLE_MAPPINGS

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def test_demo_delivers_the_sample_then_a_second_night_sending_nothing_twice(tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_demo(tmp_path / "demo", bits=2048, echo=lines.append)
    first, second = result.first, result.second
    assert first.counts["delivered"] >= 200
    assert first.counts["invalid"] >= 1  # the sample's deliberately bad rows are caught, never sent
    # Night 2: the unchanged bookings skipped, two corrections sent as updates, three re-bookings added to the
    # patients CorEMR holds (one exported on three lines: one booking), one new person.
    assert second.counts["skipped"] == first.counts["delivered"] - 2
    assert (second.counts["delivered"], second.counts["duplicate"]) == (6, 2)
    assert result.actions == {"created": 1, "booking added": 3, "updated": 2}
    assert len(result.creates) == first.counts["delivered"] + 1
    assert set(result.creates.values()) == {1}
    assert {n for numbers in result.bookings.values() for n in numbers.values()} == {1}
    text = "\n".join(lines)
    assert f"created {len(result.creates)} patients, 0 of them more than once, and stored 237 bookings, 0 of" in text
    assert "  delivered by: created 1, booking added 3, updated 2" in text
    ledger = tmp_path / "demo" / "ledger.sqlite"
    assert f"Ledger: {ledger}" in text
    assert stat.S_IMODE(ledger.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "demo" / "keys" / "rsa.private").stat().st_mode) == 0o600


@pytest.mark.parametrize("api", ["v1", "v2", "v3"])
def test_demo_delivers_the_sample_at_each_api_version_and_audit_passes(tmp_path: Path, api: str) -> None:
    lines: list[str] = []
    result = run_demo(tmp_path / "demo", bits=2048, api=api, echo=lines.append)  # type: ignore[arg-type]
    assert (result.first.counts["delivered"], result.first.counts["invalid"]) == (233, 7)
    assert result.second.counts["skipped"] == 231 and result.second.counts["duplicate"] == 2
    assert len(result.creates) == 234 and set(result.creates.values()) == {1}
    if api == "v1":  # no bookings routes: a re-booking cannot be added through CWS, and says so
        assert (result.second.counts["delivered"], result.second.counts["rejected"]) == (3, 3)
        assert "CorEMR API v1 has no bookings routes" in "\n".join(lines)
    elif api == "v3":  # its page lists no bookings routes: the re-bookings are held, saying what to do in CorEMR
        assert (result.second.counts["delivered"], result.second.counts["changed"]) == (3, 3)
        assert result.actions == {"created": 1, "updated": 2}
        held = [line for line in lines if ": changed: patient " in line]
        assert len(held) == 3 and all("in CorEMR by hand, then `cws-pipeline accept` the row" in h for h in held)
    else:
        assert result.actions == {"created": 1, "booking added": 3, "updated": 2}
    assert f"Local CWS server (CorEMR API {api}, " in lines[2 if "Making" in lines[0] else 0]
    assert f"through {SAMPLE_MAPPINGS[api]} ..." in "\n".join(lines)  # type: ignore[index]
    demo = tmp_path / "demo"
    audit = CliRunner().invoke(
        cli, ["audit", "--ledger", str(demo / "ledger.sqlite"), "--config", str(demo / "cws.toml")]
    )
    assert audit.exit_code == 0, audit.output
    assert "Audit passed" in audit.output
    assert "re-verified 233 request and 233 response signatures" in audit.output  # night 1: one create each
    # v1: creates (3 refused), a create, updates; v2: a create, bookings, updates (no booking update: neither
    # correction changed a booking field); v3: a create, updates (the re-bookings held)
    night_2 = {"v1": 3 + 1 + 2, "v2": 1 + 3 + 2, "v3": 1 + 2}[api]
    assert f"re-verified {night_2} request and " in audit.output


def test_demo_refuses_an_unknown_api_version(tmp_path: Path) -> None:
    refused = CliRunner().invoke(cli, ["demo", str(tmp_path / "demo"), "--api", "v4"])
    assert refused.exit_code == 2 and "'v4' is not one of 'v1', 'v2', 'v3'" in refused.output
    assert not (tmp_path / "demo").exists()


def test_demo_runs_again_in_the_same_directory_and_refuses_a_foreign_one(tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "demo"
    assert runner.invoke(cli, ["demo", str(target), "--bits", "2048"]).exit_code == 0
    again = runner.invoke(cli, ["demo", str(target), "--bits", "2048"])
    assert again.exit_code == 0, again.output
    assert "Making our key pair" not in again.output  # keys are reused
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("mine")
    refused = runner.invoke(cli, ["demo", str(foreign)])
    assert refused.exit_code == 2 and "not empty and not an earlier demo" in refused.output
    assert (foreign / "thesis.txt").read_text() == "mine"


def test_every_command_is_documented_in_the_readme_or_a_topic_page() -> None:
    topics = [page for page in sorted((ROOT / "docs").glob("*.md")) if page.name != "reference.md"]  # generated
    readme = "\n".join(page.read_text(encoding="utf-8") for page in [README, *topics])
    names = []
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):  # commands load on first use: ask the group, not what it has loaded
        command = cli.get_command(ctx, name)
        sub = getattr(command, "commands", None)
        names += [f"{name} {s}" for s in sub] if sub else [name]
    missing = [n for n in names if not re.search(rf"cws-pipeline {re.escape(n)}\b", readme)]
    assert not missing, f"commands missing from README.md and docs/: {missing}"


def test_readme_starts_with_the_demo_and_test_commands() -> None:
    commands = re.findall(r"^(python3 -m venv .*?)\s+#", README.read_text(encoding="utf-8"), re.M)
    assert commands[:2] == [
        "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/cws-pipeline demo",
        "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/pytest",
    ]


def test_ci_runs_the_readme_test_command_as_written() -> None:
    test_command = re.findall(r"^(python3 -m venv .*?)\s+#", README.read_text(encoding="utf-8"), re.M)[1]
    ci_lines = [line.split("  #", 1)[0].strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines
