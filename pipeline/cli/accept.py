"""`cws-pipeline accept`: a person settles a held correction (or a refused row) they took care of in CorEMR."""

from __future__ import annotations

import click

from ..delivery import accept_row
from . import cli
from ._ledger_options import LedgerChoice, ledger_options

__all__ = ["accept"]


@cli.command()
@ledger_options()
@click.option("-k", "--key", "key", required=True, help="The row's key, as `run` and `report` name it.")
def accept(choice: LedgerChoice, key: str) -> None:
    """Accept a row's latest body as what CorEMR holds: the next run counts it as delivered.

    For a held correction (state changed, with on_change = "hold") that you entered in CorEMR by hand,
    a row CorEMR refused that you settled there yourself (a v1 re-booking), or a row left ambiguous or
    unverified that you found there. Recorded as a chained `accepted` entry with your login name;
    nothing is sent. Exit 2 if the row is in another state.

    Example: cws-pipeline accept -c cws.toml --key J0412/B23-1187
    """
    accepted = accept_row(choice.ledger, key)
    click.echo(
        f"Accepted key {accepted.key} (line {accepted.line}, {accepted.was}): its body {accepted.body_sha256[:12]}"
        f" counts as delivered from the next run on (entry {accepted.seq})"
    )
