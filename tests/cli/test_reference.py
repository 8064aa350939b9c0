"""The command reference (docs/reference.md) is what the commands' --help says: generated, and checked not to drift."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.cli.reference import BEGIN, END, command_reference, commands, replace_reference

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference.md"


def test_the_docs_reference_is_the_generated_one() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    section = text[text.index(BEGIN) : text.index(END) + len(END) + 1]
    assert section == command_reference(), "run: python -m pipeline.cli.reference docs/reference.md"


def test_every_command_and_option_is_in_the_reference() -> None:
    reference = command_reference()
    for name, command in commands():
        assert f"#### `cws-pipeline {name}" in reference
        help_text = CliRunner().invoke(cli, [*name.split(), "--help"], terminal_width=200).output
        for param in command.params:
            for flag in param.opts:
                if flag.startswith("-") and flag != "--help":
                    assert flag in help_text and flag in reference, (name, flag)


def test_regenerating_replaces_only_the_section() -> None:
    text = f"before\n{BEGIN}\nstale\n{END}\nafter\n"
    assert replace_reference(text) == "before\n" + command_reference() + "after\n"
