"""CorEMR's API versions as data: routes, date and path rules, algorithms, and the assumptions the docs list."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline import ConfigError
from pipeline.cli.reference import ASSUMPTIONS_BEGIN, ASSUMPTIONS_END, assumption_table
from pipeline.protocol import (
    API_PROFILES,
    ASSUMPTIONS,
    answer_date,
    date_problem,
    path_segment_problem,
    unsafe_path_segments,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize(
    ("kind", "text", "ok"),
    [
        ("timestamp", "2023-04-07 10:00:00.00", True),  # the walkthrough's booking_date
        ("date", "2000-04-12 10:00:00.000", True),  # the walkthrough's dob
        ("timestamp", "2023-04-07 10:00:00", True),
        ("timestamp", "2023-04-07 10:00:00.5", True),
        ("timestamp", "2023-04-07 10:00:00.0000", False),
        ("timestamp", "2023-04-07", False),
        ("date", "2023-04-07", True),
        ("date", "2023-02-30", False),
        ("timestamp", "2023-04-07 24:00:00", False),
        ("timestamp", "2023-04-07T10:00:00", False),
        ("date", "04/07/2023", False),
    ],
)
def test_dates_are_read_with_zero_to_three_fractional_digits(kind: str, text: str, ok: bool) -> None:
    assert (date_problem(kind, text) is None) is ok  # type: ignore[arg-type]


def test_dates_are_answered_with_three_fractional_digits_and_days_at_midnight() -> None:
    assert answer_date("timestamp", "2023-04-07 10:00:00.00") == "2023-04-07 10:00:00.000"
    assert answer_date("timestamp", "2023-04-07 10:00:01") == "2023-04-07 10:00:01.000"
    assert answer_date("date", "2000-04-12 10:00:00.000") == "2000-04-12 00:00:00.000"
    assert answer_date("date", "2000-04-12") == "2000-04-12 00:00:00.000"


@pytest.mark.parametrize("value", [".", "..", "a/b", "a?b", "a#b", "100%", "a b", "a\u00a0b", "a\nb", "\x00", "a\x85"])
def test_values_unsafe_in_a_url_path_are_named(value: str) -> None:
    assert path_segment_problem(value) is not None


@pytest.mark.parametrize("value", ["J0000001", "A.B", "...", ".a", "Ünï-_~+"])
def test_ordinary_ids_are_safe_in_a_url_path(value: str) -> None:
    assert path_segment_problem(value) is None


_SEGMENTS = st.sampled_from([".", "..", "...", "a/b", "J1", "A.B", "a b", "\x85", "Ünï", "", "%"])


@given(st.lists(_SEGMENTS | st.text()))
def test_one_scan_of_a_chunk_names_exactly_the_values_one_at_a_time_would(values: list[str]) -> None:
    assert unsafe_path_segments(values) == [i for i, v in enumerate(values) if path_segment_problem(v)]


def test_routes_quote_ids_and_booking_numbers_into_one_segment_each() -> None:
    v3 = API_PROFILES["v3"].routes
    assert v3.patient("A B") == "/ws/v3/patients/A%20B"
    assert v3.booking("J1", "B/1") == "/ws/v3/patients/J1/bookings/B%2F1"
    assert v3.at("/coremr/ws/v3/patients").patient("J1") == "/coremr/ws/v3/patients/J1"
    with pytest.raises(ValueError, match="no bookings routes"):
        API_PROFILES["v1"].routes.bookings("J1")


def test_v1_accepts_sha1_only_and_says_what_to_set() -> None:
    API_PROFILES["v1"].require_algorithm("CWS-SHA1", "cws.toml: algorithm")
    API_PROFILES["v2"].require_algorithm("CWS-SHA256", "cws.toml: algorithm")
    with pytest.raises(ConfigError) as refused:
        API_PROFILES["v1"].require_algorithm("CWS-SHA256", "cws.toml: algorithm")
    assert str(refused.value) == (
        "cws.toml: algorithm: CorEMR API v1 (CorEMR 5.3+) accepts CWS-SHA1 only, not CWS-SHA256;"
        ' set algorithm = "CWS-SHA1"'
    )
    assert refused.value.exit_code == 2


def test_every_assumption_is_listed_in_the_docs_with_its_reason() -> None:
    page = (DOCS / "local-server.md").read_text(encoding="utf-8")
    names = [a.name for a in ASSUMPTIONS]
    assert len(set(names)) == len(names)
    section = page[page.index(ASSUMPTIONS_BEGIN) : page.index(ASSUMPTIONS_END) + len(ASSUMPTIONS_END) + 1]
    assert section == assumption_table(), "run: python -m pipeline.cli.reference docs/local-server.md"
    for a in ASSUMPTIONS:
        assert f"| `{a.name}` | {', '.join(a.versions)} | {a.assumed} | {a.why} |" in page, a.name


def test_the_docs_version_table_holds_every_route() -> None:
    page = (DOCS / "mapping.md").read_text(encoding="utf-8")
    section = page.split("## CorEMR API versions", 1)[1].split("\n## ", 1)[0]
    cells = section.replace("{id}", "{external_id}")
    for api, profile in API_PROFILES.items():
        for action, method, path in profile.routes.table():
            if "bookings" in path:
                assert re.search(rf"`GET`/`POST {re.escape(path.replace('/ws/v3/', '/ws/'))}`", cells), (api, action)
            else:
                assert f"`{method} {path}`" in cells, (api, action)


# The v1 field table's Add column (docs.coremr.com /ws/v1/patients/).
V1_ADD_COLUMN = {"external_id", "facility", "fname", "lname", "dob", "sex", "booking_number", "booking_date"}


def test_v1_requires_what_its_add_column_marks_and_every_limited_rule_cites_the_v1_docs() -> None:
    v1 = API_PROFILES["v1"]
    assert set(v1.required) == V1_ADD_COLUMN
    for rule in v1.fields:
        if rule.max_length or rule.choices or rule.kind != "text" or rule.required:
            assert rule.source.startswith("CorEMR v1 docs: "), rule.name
    assert v1.rule("race").choices == ("American Indian or Alaskan Native", "Asian",  # type: ignore[union-attr]
                                       "Black or African American", "Native Hawaiian or Other Pacific Islander",
                                       "White")  # fmt: skip
    assert (v1.rule("height").kind, v1.rule("weight").kind) == ("integer", "number")  # type: ignore[union-attr]


def test_a_v2_or_v3_rule_cites_its_own_docs_or_a_named_assumption_never_v1s_as_if_documented() -> None:
    names = {a.name for a in ASSUMPTIONS}
    for api in ("v2", "v3"):
        for rule in API_PROFILES[api].fields:
            if rule.source.startswith("assumption "):
                assert rule.source.removeprefix("assumption ").split(":")[0] in names, (api, rule.name)
            else:
                assert rule.source == "" or rule.source.startswith(("CorEMR v2 docs: ", "CorEMR v3 docs: ")), (
                    api, rule.name,
                )  # fmt: skip
        race = API_PROFILES[api].rule("race")
        assert race is not None and race.choices == () and race.kind == "text"  # "v2-optional-fields": names only


def test_every_guess_is_named_and_the_v1_table_is_no_longer_read_as_silent() -> None:
    names = {a.name for a in ASSUMPTIONS}
    named = {"url-path-safety", "update-keeps-external-id", "access-name-characters", "key-floor-2048",
             "bookings-routes", "exists-status", "not-found-body"}  # fmt: skip
    assert named <= names
    assert "v1-unmarked-optional" not in names
    assert all(a.assumed and a.why and a.versions for a in ASSUMPTIONS)
