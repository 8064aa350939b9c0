"""The command starts at once: `--help` and `status` load no pandas (nor, for --help, any other heavy library),
each in a fresh interpreter; the --help listing, read from a table, is what the commands themselves say."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

import pipeline
from pipeline.cli import cli
from pipeline.cli._commands import COMMANDS

from ..sites import Site, booking_rows

HEAVY = ("pandas", "numpy", "httpx", "cryptography", "rich", "tenacity", "re2")
STAGES = ("delivery", "ledger", "mapping", "protocol", "review", "simulator", "source", "tools")

# Run the command as the console script does, in a fresh interpreter, then say which modules it had loaded.
_REPORT_MODULES = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))
from pipeline.cli import main
sys.argv[0] = "cws-pipeline"
main()
"""


def fresh_command(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `cws-pipeline ARGS` in a fresh interpreter; its result and the modules it loaded."""
    done = subprocess.run([sys.executable, "-P", "-c", _REPORT_MODULES, *args], capture_output=True, text=True)
    return done, set(json.loads(done.stderr.splitlines()[-1]))


def fresh_import(module: str) -> set[str]:
    """The modules `import MODULE` loads, read from `python -X importtime` as the Done-when says."""
    done = subprocess.run(
        [sys.executable, "-P", "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True, check=True
    )
    return {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}


def loaded(modules: set[str], names: tuple[str, ...]) -> set[str]:
    """Which of NAMES (top-level packages, or pipeline's stages) are among MODULES."""
    return {n for n in names if n in modules or f"pipeline.{n}" in modules}


def test_importing_the_cli_loads_no_pandas_nor_any_stage() -> None:
    modules = fresh_import("pipeline.cli")
    assert "pipeline.cli" in modules and "click" in modules  # the measurement sees what it should
    assert loaded(modules, HEAVY) == set()
    assert loaded(modules, STAGES) == set()


def test_importing_pipeline_loads_a_stage_only_when_a_name_from_it_is_used() -> None:
    modules = fresh_import("pipeline")
    assert loaded(modules, HEAVY) == set() and loaded(modules, STAGES) == set()
    done = subprocess.run(
        [sys.executable, "-P", "-c", "import sys, pipeline; pipeline.Ledger; print('pipeline.ledger' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "True"


def test_help_lists_every_command_and_loads_no_heavy_library() -> None:
    done, modules = fresh_command("--help")
    assert done.returncode == 0, done.stderr
    for name, (_, summary) in COMMANDS.items():
        assert f"  {name} " in done.stdout and summary[:20] in done.stdout
    assert loaded(modules, HEAVY) == set()
    assert loaded(modules, STAGES) == set()


def test_status_and_its_help_load_no_pandas(site: Site) -> None:
    result = pipeline.run_bookings(site.write_csv(booking_rows(3)), site.mapping, pipeline.load_config(site.config))
    assert result.counts["delivered"] == 3
    done, modules = fresh_command("status", "-c", str(site.config))
    assert done.returncode == 0, done.stdout + done.stderr  # ok: the last run delivered every row
    assert "delivered" in done.stdout
    assert {"pipeline.review", "pipeline.ledger", "pipeline.delivery"} <= modules  # it read the config and ledger
    assert "pandas" not in modules
    done, modules = fresh_command("status", "--help")
    assert done.returncode == 0 and "--max-age" in done.stdout
    assert "pandas" not in modules


def test_the_help_listing_is_what_click_says_from_the_commands_themselves() -> None:
    ctx = click.Context(cli, info_name="cws-pipeline", **cli.context_settings)
    listed = ctx.make_formatter()
    cli.format_commands(ctx, listed)  # from the table: loads nothing
    own = ctx.make_formatter()
    click.Group.format_commands(cli, ctx, own)  # click's own: loads every command and asks it
    assert listed.getvalue() == own.getvalue()


def test_a_mistyped_command_is_still_answered_with_the_near_one() -> None:
    done, _ = fresh_command("stat")
    assert done.returncode == 2 and "No such command 'stat'." in done.stderr
    if hasattr(click, "NoSuchCommand"):  # click 8.4 and later suggest a near name
        assert "Did you mean 'status'?" in done.stderr


def test_every_command_module_registers_exactly_the_commands_the_table_names() -> None:
    ctx = click.Context(cli)
    for name, (module, _) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None and command.callback is not None, name
        assert command.callback.__module__ == f"pipeline.cli.{module}", name
    for path in sorted((Path(pipeline.__file__).parent / "cli").glob("[!_]*.py")):
        __import__(f"pipeline.cli.{path.stem}")  # every command module, the table's or not
    assert set(cli.commands) == set(COMMANDS), "name each command in pipeline/cli/_commands.py"
