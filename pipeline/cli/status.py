"""`cws-pipeline status`: the site at a glance, for a person or a monitoring check."""

from __future__ import annotations

import json
import sys

import click

from ..ledger import Ledger
from ..review import parse_age, site_status, status_json, status_lines
from . import cli
from ._ledger_options import LedgerChoice, ledger_options

__all__ = ["status"]


@cli.command()
@ledger_options()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for monitoring instead of text.")
@click.option("--max-age", help="How old the last run may be, like 26h or 2d; older is a problem (exit 2).")
def status(choice: LedgerChoice, as_json: bool, max_age: str | None) -> None:
    """Show the site at a glance: last run, last good run, rows outstanding, ledger size, chain head.

    Each row that needs a person is listed once, with the run since which it has. The ledger is opened
    read-only. Exit codes, for a monitoring check (as Nagios plugins use them): 0 ok (the last run
    delivered or skipped every row, nothing outstanding); 1 attention (rows need a person, or the last
    run is dated in the future: a clock was wrong); 2 problem (the last run did not finish, or is older
    than --max-age; or the ledger cannot be read, or a usage error); 3 unknown (no run recorded yet);
    6 the ledger is damaged (corrupt pages, or an edited runs table) or cannot be read.

    Example: cws-pipeline status -c cws.toml --json --max-age 26h
    """
    age = parse_age(max_age, "--max-age") if max_age else None
    with Ledger.open_read_only(choice.ledger) as ledger:
        found = site_status(ledger, max_age=age)
    if as_json:
        click.echo(json.dumps(status_json(found), indent=2, ensure_ascii=False))
    else:
        for line in status_lines(found):
            click.echo(line)
    sys.exit(found.exit_code)
