"""Where each command lives and its one-line summary, so that `cws-pipeline --help` loads none of them.

A command's module is imported when the command is run (or its own --help asked for): `--help` loads
click and nothing of the pipeline. With every command module (and through them the whole library)
imported up front, `--help` took a median 3.24 s on a 2-core machine at load average 15; this way 0.26 s
(the two taking turns; 0.6 to 0.9 s and about 0.2 s when the machine was quieter).
"""

from __future__ import annotations

import importlib

import click

__all__ = ["COMMANDS", "LazyGroup"]

# name: (module in pipeline.cli, the first line of its docstring, which --help lists)
COMMANDS: dict[str, tuple[str, str]] = {
    "accept": ("accept", "Accept a row's latest body as what CorEMR holds: the next run counts it as delivered."),
    "audit": ("audit", "Prove offline that the ledger is unaltered and every stored signature still verifies."),
    "bench": ("bench", "Measure validate and run speed on this machine, against one RSA signature per row."),
    "check": ("check", "Check a site before its first night; sends no patient data."),
    "demo": ("run", "Run the whole job end to end against a local CWS server, twice, with no set-up."),
    "keygen": (
        "keys",
        "Create your key pair: DIR/rsa.private (keep it safe) and DIR/rsa.public (give it to CorEMR).",
    ),
    "ledger": ("audit", "Look after the ledger file: retention of patient data."),
    "report": ("audit", "Show what runs did: counts per state and every row needing attention, from the ledger."),
    "resend": (
        "resend",
        "Mark rows CorEMR rejected to be sent again by the next run, once the cause is fixed in CorEMR.",
    ),
    "run": ("run", "Deliver every booking in CSV to CorEMR: map, sign, send, verify, record."),
    "sign": ("keys", "Sign a request body exactly as CorEMR will check it; prints the base64 signature."),
    "simulate": ("simulate", "Run a local CWS server that checks request signatures and signs its answers."),
    "status": (
        "status",
        "Show the site at a glance: last run, last good run, rows outstanding, ledger size, chain head.",
    ),
    "validate": (
        "validate",
        "Check a bookings CSV against a mapping and show what would be sent, without sending anything.",
    ),
    "verify": (
        "keys",
        "Check a signed body (e.g. a CorEMR response) against the keys you trust; prints Verified OK.",
    ),
}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command is looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command, loaded or not, in the order --help lists them."""
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, importing the module that registers it on first use."""
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(f"{__package__}.{COMMANDS[cmd_name][0]}")
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """As click resolves it; a name that is no command loads them all, so that "Did you mean" knows each."""
        if args and args[0] not in COMMANDS and not args[0].startswith("-"):
            for module in sorted({module for module, _ in COMMANDS.values()}):
                importlib.import_module(f"{__package__}.{module}")
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The Commands section of --help, worded as click words it, from the summaries: loads no command."""
        limit = formatter.width - 6 - max(map(len, COMMANDS))
        rows = [
            (name, click.Command(name, help=summary).get_short_help_str(limit))
            for name, (_, summary) in sorted(COMMANDS.items())
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)
