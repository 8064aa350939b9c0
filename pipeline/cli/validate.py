"""`cws-pipeline validate`: the dry run of the mapping stage."""

from __future__ import annotations

from pathlib import Path

import click

from .._errors import ExitCode
from ..mapping import load_mapping, validate_csv
from . import cli

__all__ = ["validate"]


@cli.command()
@click.argument("csv_path", metavar="CSV", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--mapping", "-m", "mapping_path", required=True, type=click.Path(path_type=Path, dir_okay=False),
    help="The site's mapping file (TOML), e.g. mappings/sample-jms.toml.",
)  # fmt: skip
@click.option(
    "--bodies", type=click.Path(path_type=Path, dir_okay=False),
    help="Write each valid row's body here, one per line: exactly the bytes that would be signed (mode 0600).",
)  # fmt: skip
@click.option(
    "--rejects", type=click.Path(path_type=Path, dir_okay=False),
    help="Write the invalid rows here as CSV with their original cells plus line and error (mode 0600).",
)  # fmt: skip
@click.option("--show", default=10, show_default=True, help="How many problems to print.")
@click.pass_context
def validate(
    ctx: click.Context, csv_path: Path, mapping_path: Path, bodies: Path | None, rejects: Path | None, show: int
) -> None:
    """Check a bookings CSV against a mapping and show what would be sent, without sending anything.

    Prints rows read, valid, invalid and excluded, and the first problems by line, field and column
    (names and birth dates are never printed). Exit 0 when every row is valid or excluded, 1 when some
    are invalid, 2 when the mapping or the file cannot be used (nothing is written then).

    \b
    Example:
        cws-pipeline validate sample_data/bookings.csv --mapping mappings/sample-jms.toml --rejects rejects.csv
    """
    mapping = load_mapping(mapping_path)
    report = validate_csv(csv_path, mapping, bodies=bodies, rejects=rejects, max_problems=show)
    click.echo(f"rows read: {report.rows}")
    click.echo(f"valid:     {report.valid}")
    click.echo(f"invalid:   {report.invalid}")
    if report.excluded:
        click.echo(f"excluded:  {report.excluded} (by the mapping's [[exclude]] rules; never sent)")
    if report.duplicates:
        click.echo(f"duplicate: {report.duplicates} (the same key and body as an earlier line: one booking, sent once)")
    if report.extra_cells:
        click.echo(f'{report.extra_cells} lines had extra cells (ignored: extra_cells = "ignore")')
    if report.missing_cells:
        click.echo(f'{report.missing_cells} lines had missing cells (padded with blanks: missing_cells = "blank")')
    for warning in report.warnings:
        click.echo(f"warning: {warning}")
    if report.problems:
        click.echo(f"first {len(report.problems)} problem(s):")
        for problem in report.problems:
            click.echo(f"  {problem}")
    if bodies is not None:
        click.echo(f"bodies:    {bodies} ({report.valid} line(s))")
    if rejects is not None:
        click.echo(f"rejects:   {rejects} ({report.invalid} row(s))")
    if not report.all_valid:
        ctx.exit(ExitCode.ATTENTION)
