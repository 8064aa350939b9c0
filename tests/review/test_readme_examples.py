"""Every command the "Audit review" and "Status" sections of docs/audit.md show runs, as written, on a real site."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli

from .mixed_ledger import MixedLedger

AUDIT_PAGE = Path(__file__).resolve().parents[2] / "docs" / "audit.md"


def section_commands(title: str) -> list[str]:
    """The `cws-pipeline ...` lines of the sh blocks in one section of the page, comments removed."""
    section = AUDIT_PAGE.read_text(encoding="utf-8").split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [line.split("  #", 1)[0].strip() for block in blocks for line in block.splitlines()
            if line.startswith("cws-pipeline ")]  # fmt: skip


@pytest.mark.parametrize("title", ["Audit review", "Status"])
def test_audit_page_examples_run(mixed: MixedLedger, tmp_path: Path, title: str) -> None:
    site = mixed.site
    commands = section_commands(title)
    assert len(commands) >= 2
    for command in commands:
        args = shlex.split(command)[1:]
        args = [str(site.config) if a == "cws.toml" else str(site.ledger) if a.endswith("ledger.sqlite") else a
                for a in args]  # fmt: skip
        if "--run" in args:  # the page's run number, as the first run of this ledger
            args[args.index("--run") + 1] = str(mixed.first)
        if "--output" in args:
            i = args.index("--output") + 1
            args[i] = str(tmp_path / Path(args[i]).name)
        result = CliRunner().invoke(cli, args)
        assert result.exit_code in (0, 1), (command, result.output)  # 1: rows need attention in this ledger
        assert "Error" not in result.output and "Traceback" not in result.output, (command, result.output)
