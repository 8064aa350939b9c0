"""Audit review: `report` (text, JSON, CSV, HTML), `audit` (offline proof) and `ledger prune` (retention)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import click

from .._errors import LedgerDamaged, UserInputError
from ..ledger import ROW_STATES, Ledger, RunLock
from ..review import (
    REPORT_FORMATS,
    AuditResult,
    Report,
    audit_ledger,
    audit_lines,
    gather_report,
    open_private_text,
    our_public_key,
    parse_before,
    parse_when,
    prune_bodies,
    select_runs,
    write_csv,
    write_html,
    write_json,
    write_text,
)
from . import cli
from ._ledger_options import LEDGER_PATH, LedgerChoice, ledger_options

__all__ = ["audit", "ledger", "prune", "report"]

_WRITERS = {"text": write_text, "json": write_json, "csv": write_csv, "html": write_html}


@cli.command()
@ledger_options(config_help="Run config (TOML): names the ledger, and our key and CorEMR's keyring for --audit.")
@click.option("-r", "--run", "run_id", type=int, help="Report this run (default: the latest).")
@click.option("-a", "--all", "all_runs", is_flag=True, help="Report every run, each row counted once.")
@click.option("--since", help="Report the runs started at or after: 2026-11-01, an ISO time, or an age like 30d.")
@click.option("--until", help="Report the runs started up to: 2026-11-30 (that whole day), or an ISO time.")
@click.option(
    "-s", "--state", "states", multiple=True, type=click.Choice(ROW_STATES),
    help="Only rows in this state (repeatable).",
)  # fmt: skip
@click.option(
    "-f", "--format", "fmt", type=click.Choice(REPORT_FORMATS), default="text", show_default=True,
    help="Report format.",
)  # fmt: skip
@click.option("-o", "--output", type=LEDGER_PATH, help="Write to this file (created mode 0600) instead of stdout.")
@click.option("--audit", "with_audit", is_flag=True, help="Audit the ledger too and show the verdict and chain head.")
@click.option(
    "--show-values", is_flag=True, help="Show a held change's old and new values (names, birth dates) on stdout too."
)
def report(
    choice: LedgerChoice, run_id: int | None, all_runs: bool, since: str | None, until: str | None,
    states: tuple[str, ...], fmt: str, output: Path | None, with_audit: bool, show_values: bool,
) -> None:  # fmt: skip
    """Show what runs did: counts per state and every row needing attention, from the ledger.

    One run (the latest, or --run) lists its rows needing attention. Several runs (--all, or --since and
    --until) count each row once by its latest state, list each outstanding row once with the runs it
    has been outstanding in, and add a line per run. Formats: text (for a terminal or a cron mail), json
    ({"runs": [...], "rows": [...], "records": [...]}), csv (one row per record; with --output it adds the
    original CSV cells, so it holds patient data) and html (one self-contained file with charts that opens
    from a mail attachment and prints well). Rows are named by line and key. A held change (state changed)
    names the fields that changed and whether each lives on the patient or the booking in CorEMR; their old
    and new values are shown in csv and html written with --output (a private file), or with --show-values.
    The ledger is opened read-only, so a write-protected copy can be reported on.

    Example: cws-pipeline report -c cws.toml --all --format html --audit --output report.html
    """
    if run_id is not None and (all_runs or since or until):
        raise click.UsageError("give --run ID, or --all / --since / --until, not both")
    if with_audit and fmt == "csv":
        raise click.UsageError("--audit shows in text, json and html reports, not csv")
    since_at = parse_when(since, "--since") if since else None
    until_at = parse_when(until, "--until", end_of_day=True) if until else None
    with Ledger.open_read_only(choice.ledger) as ledger:
        run_ids = select_runs(ledger, run_id, all_runs, since=since_at, until=until_at)
        # Original cells (names, birth dates) only ever go to a private file, never to stdout.
        private = output is not None and fmt in ("csv", "html")
        data = gather_report(ledger, run_ids, states, with_cells=fmt == "csv" and output is not None,
                             with_values=show_values or private)  # fmt: skip
        if with_audit:
            data.audit = _audit(ledger, choice, None)
    _write(data, fmt, output)


def _write(data: Report, fmt: str, output: Path | None) -> None:
    out: TextIO = open_private_text(output) if output is not None else sys.stdout
    try:
        _WRITERS[fmt](data, out)
    finally:
        if output is not None:
            out.close()
    if output is not None:
        click.echo(f"Wrote {output.resolve()} ({fmt}, {len(data.runs)} run(s), {len(data.records)} records;"
                   " mode 0600).", err=True)  # fmt: skip


def _audit(ledger: Ledger, choice: LedgerChoice, heads: Path | None) -> AuditResult:
    """Audit with the config's keys, checking the head log given, else the config's (a missing one fails)."""
    if choice.config_path is None:
        raise click.UsageError("--audit needs --config CONFIG (our public key and CorEMR's keyring)")
    config = choice.config
    return audit_ledger(ledger, config, our_public_key(config), head_log=heads or config.head_log)


@cli.command()
@ledger_options(config_help="Run config (TOML): our key, CorEMR's keyring, and the ledger.")
@click.option(
    "--public-key", type=LEDGER_PATH, help="Our public key (default: rsa.public beside private_key, or derived)."
)
@click.option("--heads", type=LEDGER_PATH, help="A head log: every head it recorded must still be in the chain"
              " (default: the config's head_log; a missing one fails the audit).")  # fmt: skip
@click.option("--no-head-log", is_flag=True, help="This site keeps no head log: check none, and do not fail for"
              " the config's head_log being missing.")  # fmt: skip
def audit(choice: LedgerChoice, public_key: Path | None, heads: Path | None, no_head_log: bool) -> None:
    """Prove offline that the ledger is unaltered and every stored signature still verifies.

    Runs SQLite's integrity check (a damaged file fails in one line), walks the hash chain and names the
    first broken entry; checks the runs table against the chain and every stored body against its
    SHA-256; re-verifies every request signature with our public key and every answer recorded as
    verified with CorEMR's key from the keyring; and checks that every chain head a head log recorded
    is still in the chain (which catches a rewrite of the whole file; a head log that is missing fails
    the audit, unless --no-head-log says the site keeps none). Entries whose bodies were pruned are
    counted as not checkable. The ledger is opened read-only. Exit 0 only when everything checkable
    holds, 1 when anything fails, 2 for usage errors.

    Example: cws-pipeline audit -c cws.toml --heads /mnt/worm/cws-heads.log
    """
    if heads is not None and no_head_log:
        raise click.UsageError("give --heads FILE or --no-head-log, not both")
    config = choice.config
    key = our_public_key(config, public_key)
    if heads is None and not no_head_log:
        heads = config.head_log
    try:
        with Ledger.open_read_only(choice.ledger, check=False) as ledger:
            result = audit_ledger(ledger, config, key, head_log=heads)
    except LedgerDamaged as exc:
        result = AuditResult(choice.ledger, damaged=str(exc))
    for line in audit_lines(result):
        click.echo(line)
    sys.exit(result.exit_code)


@cli.group()
def ledger() -> None:
    """Look after the ledger file: retention of patient data.

    Example: cws-pipeline ledger prune -c cws.toml --before 90d
    """


@ledger.command()
@ledger_options()
@click.option("--before", required=True, help="Cut-off: 2026-01-31 (midnight UTC), an ISO time, or an age like 90d.")
@click.option("--dry-run", is_flag=True, help="Only say how many bodies would be deleted.")
@click.option("--vacuum", is_flag=True, help="Also shrink the file (VACUUM; rewrites it, needs free space).")
def prune(choice: LedgerChoice, before: str, dry_run: bool, vacuum: bool) -> None:
    """Delete stored bodies (patient data) older than a date; keep states, hashes and signatures.

    The chain still verifies and `audit` counts the pruned entries as not checkable. Bodies a later
    entry still names are kept. Deleted bytes are overwritten, not left in free pages.

    Example: cws-pipeline ledger prune -c cws.toml --before 2026-01-01
    """
    cutoff = parse_before(before)
    path = choice.ledger
    if not path.exists():
        raise UserInputError(f"{path}: no such ledger file")
    with RunLock(path), Ledger.open(path, create=False) as opened:
        result = prune_bodies(opened, cutoff, dry_run=dry_run, vacuum=vacuum)
    verb = "Would delete" if result.dry_run else "Deleted"
    click.echo(f"{verb} {result.bodies} stored bodies ({result.bytes} bytes) stored before {result.before}.")
