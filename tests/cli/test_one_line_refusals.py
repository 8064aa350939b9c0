"""What used to end in a traceback is one line and exit 2: an Access name with a NUL, an age past any date."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner

from pipeline import UserInputError
from pipeline.cli import cli
from pipeline.review import parse_age

from ..sites import Site, booking_rows


def invoke(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output


@pytest.mark.parametrize("access", ["county\\u0000jms", "county\\u0007jms", "county\\u007fjms"])
def test_an_access_name_with_a_control_character_is_one_line_and_nothing_is_sent(site: Site, access: str) -> None:
    text = site.config.read_text(encoding="utf-8").splitlines()
    site.config.write_text("\n".join([k for k in text if not k.startswith("access")] + [f'access = "{access}"'])
                           + "\n", encoding="utf-8")  # fmt: skip
    code, output = invoke("run", site.write_csv(booking_rows(1)), "-m", site.mapping, "-c", site.config)
    assert code == 2 and len(output.splitlines()) == 1, output
    assert output.startswith(f"Error: {site.config}: access: ") and "nor control characters" in output
    assert site.server.counters().requests == 0 and not site.ledger.exists()


@pytest.mark.parametrize("age", ["999999999999999d", "36501d", "876001h", "9" * 5000 + "d"])
def test_status_max_age_past_any_date_is_one_line_exit_2(site: Site, age: str) -> None:
    assert invoke("run", site.write_csv(booking_rows(1)), "-m", site.mapping, "-c", site.config)[0] == 0
    code, output = invoke("status", "-c", site.config, "--max-age", age)
    assert (code, output) == (2, f"Error: --max-age {age!r}: at most 36500d (876000h)\n")


def test_report_since_an_age_past_any_date_is_one_line_exit_2(site: Site) -> None:
    assert invoke("run", site.write_csv(booking_rows(1)), "-m", site.mapping, "-c", site.config)[0] == 0
    code, output = invoke("report", "-c", site.config, "--since", "999999999999999d")
    assert (code, output) == (2, "Error: --since '999999999999999d': at most 36500d (876000h)\n")


def test_ages_in_hours_and_days_up_to_a_century_are_read() -> None:
    assert parse_age("26h", "--max-age") == timedelta(hours=26)
    assert parse_age(" 2d ", "--max-age") == timedelta(days=2)
    assert parse_age("36500d", "--max-age") == timedelta(days=36500)
    with pytest.raises(UserInputError, match="give hours or days"):
        parse_age("2w", "--max-age")
