"""`check`: a site's pre-flight before its first night."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..delivery import check_site
from . import cli

_PATH = click.Path(path_type=Path, dir_okay=False)


@cli.command()
@click.option("-c", "--config", "config_path", required=True, type=_PATH, help="Run config (TOML).")
@click.option(
    "-m",
    "--mapping",
    "mapping",
    type=_PATH,
    help="Mapping file (TOML): its [target] api and endpoint are checked. Without it, CorEMR API v2.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (checks, site facts, verdict, exit code).")
def check(config_path: Path, mapping: Path | None, as_json: bool) -> None:
    """Check a site before its first night; sends no patient data.

    One line per check: the config loads (and the API version: the mapping's, else v2); our private
    key loads (mode 0600, at least 2048 bits); server_keys holds CorEMR's key; the ledger and head_log
    are private (0600) and writable (nothing is created); then signed GETs of a patient that cannot
    exist (cwscheck-<8 hex>) prove TLS to base_url (with ca_bundle), that CorEMR knows our Access name
    and key, that the API version's prefix answers, and that CorEMR's signature verifies with
    server_keys (naming the signer); the clock is compared with the answer's Date (a warning past 5
    minutes). Where the ledger knows a patient we delivered, that patient and its bookings are read to
    find out whether CorEMR has bookings routes, and the finding is recorded in the ledger. Exit codes:
    0 ready (warnings allowed), 1 a check failed (the verdict names the first thing to fix), 2 the
    config or mapping cannot be read.

    Example: cws-pipeline check -c cws.toml --mapping mappings/sample-jms.toml
    """
    result = check_site(config_path, mapping)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        for line in result.lines:
            click.echo(str(line))
        click.echo(result.verdict)
    sys.exit(result.exit_code)
