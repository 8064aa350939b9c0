"""What cron hears from `run`: a row once, when it newly needs a person or changed since; silence otherwise."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from pipeline.cli import cli

from ..sites import Site, booking_rows


def night(site: Site, rows: list[list[str]], *flags: str) -> Result:
    """One cron run (CliRunner's stdout is not a terminal) of an export holding ROWS."""
    csv: Path = site.write_csv(rows)
    return CliRunner().invoke(cli, ["run", str(csv), "-m", str(site.mapping), "-c", str(site.config), *flags])


def test_cron_hears_of_a_bad_row_once_then_again_only_when_it_changes(site: Site) -> None:
    rows = booking_rows(6)
    rows[2][4] = "not a date"  # line 4
    first = night(site, rows)
    assert first.exit_code == 1
    assert "line 4 key P000003/B000003: invalid" in first.output

    second = night(site, rows)
    assert (second.exit_code, second.output) == (0, "")  # the same row, unchanged: nothing to say

    rows[2][4] = "31/02/1990"  # still bad, but the clerk touched it: a changed row is news
    third = night(site, rows)
    assert third.exit_code == 1 and "line 4 key P000003/B000003: invalid" in third.output

    rows[4][4] = "soon"  # a new bad row, line 6
    fourth = night(site, rows)
    assert fourth.exit_code == 1
    assert "line 6 key P000005/B000005: invalid" in fourth.output
    assert "line 4" not in fourth.output  # reported before, unchanged since: one summary line instead
    assert "1 more row(s) still need a person as reported before, unchanged since" in fourth.output


def test_on_request_every_row_is_shown_and_rows_reported_before_are_marked(site: Site) -> None:
    rows = booking_rows(4)
    rows[1][4] = "not a date"
    assert night(site, rows).exit_code == 1
    verbose = night(site, rows, "-v")
    assert verbose.exit_code == 0
    assert "line 3 key P000002/B000002: invalid" in verbose.output and "(reported before)" in verbose.output


def test_a_security_stop_always_speaks(site: Site, other_keys: object) -> None:
    from ..sites import KeyPair

    assert isinstance(other_keys, KeyPair)
    site.write_config(private_key=str(other_keys.private), circuit_breaker=2)
    stopped = night(site, booking_rows(5))
    assert stopped.exit_code == 3 and "SECURITY STOP" in stopped.output
