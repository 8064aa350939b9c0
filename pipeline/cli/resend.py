"""`cws-pipeline resend`: a person marks rows CorEMR refused to be sent again by the next run."""

from __future__ import annotations

import click

from ..delivery import ResendChoice, printable_reason, resend_rows
from . import cli
from ._ledger_options import LedgerChoice, ledger_options

__all__ = ["resend"]


@cli.command()
@ledger_options()
@click.option("-k", "--key", "keys", multiple=True, help="A rejected row's key, as `report` names it (repeatable).")
@click.option("--line", "lines", type=int, multiple=True, help="The line a rejected row was last seen on (repeatable).")
@click.option("--reason", help="Every rejected row whose reason contains this text (any case).")
@click.option("--state", type=click.Choice(["rejected"]), help="Every row whose latest state is rejected.")
@click.option("--dry-run", is_flag=True, help="List the rows that would be marked; mark nothing.")
def resend(
    choice: LedgerChoice, keys: tuple[str, ...], lines: tuple[int, ...], reason: str | None, state: str | None,
    dry_run: bool,
) -> None:  # fmt: skip
    """Mark rows CorEMR rejected to be sent again by the next run, once the cause is fixed in CorEMR.

    An unchanged row CorEMR refused is never sent again on its own: after fixing the cause in CorEMR
    (a facility added there, say), choose the rows by --key, --line, --reason TEXT (every rejected row whose
    reason contains TEXT) or --state rejected (every one). Each is recorded as a chained `resend` entry with
    your operating-system user and host; nothing is sent now. Exit 2 if the choice names no rejected row.

    Example: cws-pipeline resend -c cws.toml --dry-run --reason "unknown facility"
    """
    chosen = [bool(keys), bool(lines), reason is not None, state is not None]
    if sum(chosen) != 1:
        raise click.UsageError("choose the rows one way: --key, --line, --reason or --state rejected")
    rows = resend_rows(choice.ledger, ResendChoice(keys, lines, reason, state is not None), dry_run=dry_run)
    for row in rows:
        line = "?" if row.line is None else row.line
        reason = " ".join(printable_reason(row.reason or "").split())
        click.echo(f"  line {line:>6}  {row.key}  rejected (run {row.run_id}): {reason}".rstrip())
    what = "would be marked" if dry_run else "marked"
    click.echo(
        f"{len(rows)} row(s) {what} to be sent again by the next run"
        + (" (dry run: nothing written)" if dry_run else "")
    )
