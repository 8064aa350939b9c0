"""Docs check: every `cws-pipeline ...` command in the code blocks of the README and docs/ names a real command,
real options, values its choices allow and the arguments it takes (the sections that can run on a real site also
run them: tests/review/test_readme_examples.py, tests/delivery/test_cron_line.py, tests/tools/test_demo.py,
tests/cli/test_readme_rehearsal.py)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from pipeline.cli import cli

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def readme_commands(text: str) -> list[tuple[int, str]]:
    """(line number, command) for each cws-pipeline command in a fenced block; comments and `\\` joins handled."""
    found: list[tuple[int, str]] = []
    inside, held, start = False, "", 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            inside, held = not inside, ""
            continue
        if not inside:
            continue
        code = line.split("  #", 1)[0].rstrip()
        if held:
            code, held = f"{held} {code.strip()}", ""
        else:
            start = number
        if code.endswith("\\"):
            held = code[:-1]
            continue
        match = re.search(r"(?:^|&& |\$ )(?:\.venv/bin/)?(cws-pipeline(?:\s.*)?)$", code.strip())
        if match:
            found.append((start, match.group(1)))
    return found


def problems(command: str) -> list[str]:
    """What is wrong with COMMAND as the CLI would read it (optional parts in [brackets] included)."""
    args = shlex.split(command.replace("[", " ").replace("]", " "))[1:]
    cmd: click.Command = cli
    ctx = click.Context(cli, info_name="cws-pipeline")
    while isinstance(cmd, click.Group):
        if not args:
            return [f"{ctx.info_name} needs a command"]
        name = args.pop(0)
        sub = cmd.get_command(ctx, name)
        if sub is None:
            return [f"no command {name!r}"]
        cmd, ctx = sub, click.Context(sub, info_name=name, parent=ctx)
    options = {opt: p for p in cmd.params if isinstance(p, click.Option) for opt in (*p.opts, *p.secondary_opts)}
    positional: list[str] = []
    found: list[str] = []
    while args:
        token = args.pop(0)
        if not token.startswith("-") or token == "-":
            positional.append(token)
            continue
        name, _, inline = token.partition("=")
        option = options.get(name)
        if option is None:
            found.append(f"{cmd.name}: no option {name}")
            continue
        if option.is_flag or option.count:
            continue
        value = inline or (args.pop(0) if args else None)
        if value is None:
            found.append(f"{cmd.name}: {name} needs a value")
        elif isinstance(option.type, click.Choice) and value not in option.type.choices:
            found.append(f"{cmd.name}: {name} {value!r} is not one of {list(option.type.choices)}")
    arguments = [p for p in cmd.params if isinstance(p, click.Argument)]
    most = None if any(a.nargs == -1 for a in arguments) else sum(a.nargs for a in arguments)
    least = sum(a.nargs for a in arguments if a.required and a.nargs > 0)
    if (most is not None and len(positional) > most) or len(positional) < least:
        found.append(f"{cmd.name}: takes {least} to {most} arguments, given {positional}")
    return found


COMMANDS = [
    (f"{page.relative_to(ROOT)}:{line}", command)
    for page in PAGES
    for line, command in readme_commands(page.read_text(encoding="utf-8"))
]


def test_the_readme_runs_its_first_command_from_the_virtual_environment() -> None:
    readme = [command for where, command in COMMANDS if where.startswith("README.md:")]
    assert readme[0] == "cws-pipeline demo"  # `.venv/bin/cws-pipeline demo`, read as the CLI reads it


def test_the_docs_show_the_commands_a_user_types() -> None:
    shown = {shlex.split(c.replace("[", " "))[1] for _, c in COMMANDS}
    assert {"demo", "run", "validate", "report", "audit", "status", "accept", "sign", "verify", "keygen"} <= shown


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[where for where, _ in COMMANDS])
def test_every_docs_command_is_one_the_cli_accepts(where: str, command: str) -> None:
    assert problems(command) == [], f"{where}: {command}"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("cws-pipeline runn bookings.csv", "no command 'runn'"),
        ("cws-pipeline run bookings.csv --mapings m.toml", "run: no option --mapings"),
        ("cws-pipeline report -c cws.toml --format pdf", "report: --format 'pdf' is not one of"),
        ("cws-pipeline status -c", "status: -c needs a value"),
        ("cws-pipeline ledger", "ledger needs a command"),
        ("cws-pipeline sign a.json b.json c.json --key k", "sign: takes"),
    ],
)
def test_the_check_catches_a_wrong_command(command: str, expected: str) -> None:
    assert any(p.startswith(expected) for p in problems(command)), problems(command)
