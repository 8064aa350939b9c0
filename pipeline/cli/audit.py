"""Audit review: `report` (text, JSON, CSV, HTML), `audit` (offline proof) and `ledger prune` (retention)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import click

from .._errors import UserInputError
from ..delivery import load_config
from ..ledger import ROW_STATES, Ledger, RunLock
from ..review import (
    REPORT_FORMATS,
    audit_ledger,
    audit_lines,
    gather_report,
    open_private_text,
    our_public_key,
    parse_before,
    prune_bodies,
    select_runs,
    write_csv,
    write_html,
    write_json,
    write_text,
)
from . import cli

__all__ = ["audit", "ledger", "prune", "report"]

_PATH = click.Path(path_type=Path, dir_okay=False)  # existence is checked by us: one line, not click's usage block


@cli.command()
@click.option("--ledger", "ledger_path", required=True, type=_PATH, help="The ledger file (SQLite).")
@click.option("--run", "run_id", type=int, help="Report this run (default: the latest).")
@click.option("--all", "all_runs", is_flag=True, help="Report every run in the ledger.")
@click.option(
    "--state", "states", multiple=True, type=click.Choice(ROW_STATES), help="Only rows in this state (repeatable)."
)
@click.option(
    "--format", "fmt", type=click.Choice(REPORT_FORMATS), default="text", show_default=True, help="Report format."
)
@click.option("--output", type=_PATH, help="Write to this file (created mode 0600) instead of stdout.")
def report(
    ledger_path: Path, run_id: int | None, all_runs: bool, states: tuple[str, ...], fmt: str, output: Path | None
) -> None:
    """Show what a run did: counts per state and every row needing attention, from the ledger.

    Formats: text (for a terminal or a cron mail), json ({"runs": [...], "records": [...]}), csv (one
    row per record; with --output it adds the original CSV cells, so it holds patient data) and html
    (one self-contained file with charts that opens from a mail attachment and prints well).
    Rows are named by line and key.

    Example: cws-pipeline report --ledger ledger.sqlite --all --format html --output report.html
    """
    if run_id is not None and all_runs:
        raise click.UsageError("give --run ID or --all, not both")
    with Ledger.open(ledger_path, create=False) as ledger:
        run_ids = select_runs(ledger, run_id, all_runs)
        # Original cells (names, birth dates) only ever go to a private file, never to stdout.
        data = gather_report(ledger, run_ids, states, with_cells=fmt == "csv" and output is not None)
    out: TextIO = open_private_text(output) if output is not None else sys.stdout
    try:
        if fmt == "json":
            write_json(data, out)
        elif fmt == "csv":
            write_csv(data, out)
        elif fmt == "html":
            write_html(data, out)
        else:
            write_text(data, out)
    finally:
        if output is not None:
            out.close()
    if output is not None:
        click.echo(f"Wrote {output} ({fmt}, {len(data.runs)} run(s), {len(data.records)} rows; mode 0600).", err=True)


@cli.command()
@click.option("--ledger", "ledger_path", required=True, type=_PATH, help="The ledger file (SQLite).")
@click.option("--config", "config_path", required=True, type=_PATH, help="Run config: our key, CorEMR's keyring.")
@click.option("--public-key", type=_PATH, help="Our public key (default: rsa.public beside private_key, or derived).")
def audit(ledger_path: Path, config_path: Path, public_key: Path | None) -> None:
    """Prove offline that the ledger is unaltered and every stored signature still verifies.

    Walks the hash chain and names the first broken entry; checks the runs table against the chain
    and every stored body against its SHA-256; re-verifies every request signature with our public
    key and every answer recorded as verified with CorEMR's key from the keyring. Entries whose
    bodies were pruned are counted as not checkable. Exit 0 only when everything checkable holds,
    1 when anything fails, 2 for usage errors.

    Example: cws-pipeline audit --ledger ledger.sqlite --config cws.toml
    """
    config = load_config(config_path)
    key = our_public_key(config, public_key)
    with Ledger.open(ledger_path, create=False) as ledger:
        result = audit_ledger(ledger, config, key)
    for line in audit_lines(result):
        click.echo(line)
    sys.exit(result.exit_code)


@cli.group()
def ledger() -> None:
    """Look after the ledger file: retention of patient data.

    Example: cws-pipeline ledger prune --ledger ledger.sqlite --before 90d
    """


@ledger.command()
@click.option("--ledger", "ledger_path", required=True, type=_PATH, help="The ledger file (SQLite).")
@click.option("--before", required=True, help="Cut-off: 2026-01-31 (midnight UTC), an ISO time, or an age like 90d.")
@click.option("--dry-run", is_flag=True, help="Only say how many bodies would be deleted.")
@click.option("--vacuum", is_flag=True, help="Also shrink the file (VACUUM; rewrites it, needs free space).")
def prune(ledger_path: Path, before: str, dry_run: bool, vacuum: bool) -> None:
    """Delete stored bodies (patient data) older than a date; keep states, hashes and signatures.

    The chain still verifies and `audit` counts the pruned entries as not checkable. Bodies a later
    entry still names are kept. Deleted bytes are overwritten, not left in free pages.

    Example: cws-pipeline ledger prune --ledger ledger.sqlite --before 2026-01-01
    """
    cutoff = parse_before(before)
    if not ledger_path.exists():
        raise UserInputError(f"{ledger_path}: no such ledger file")
    with RunLock(ledger_path), Ledger.open(ledger_path, create=False) as opened:
        result = prune_bodies(opened, cutoff, dry_run=dry_run, vacuum=vacuum)
    verb = "Would delete" if result.dry_run else "Deleted"
    click.echo(f"{verb} {result.bodies} stored bodies ({result.bytes} bytes) stored before {result.before}.")
