"""Masking in reasons: a server's words never recorded, the row's own values masked in any spelling, whole tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline._masking import (
    KNOWN_FIELDS,
    PatientValues,
    decode_escapes,
    mask_patient_values,
    one_line,
    reason_text,
    server_message,
    withhold_server_tokens,
)
from pipeline.delivery import RunResult, summary_lines
from pipeline.delivery._decisions import rejected_again_reason
from pipeline.ledger import PriorRow

from .sites import recorded_run

W = "[withheld]"


def body(**fields: str) -> bytes:
    return json.dumps({"external_id": "P1", **fields}, ensure_ascii=True).encode()


ZOE = body(fname="Zoë", lname="Ñúñez-Obi", dob="2002-05-02 00:00:00.000", ssn="123-45-6789")
LI = body(fname="Li", lname="Wu", dob="1986-11-08")


@pytest.mark.parametrize(
    "spelling",
    ["Zoë", "ZOË", "zoë", "Zoe", "ZOE", "Zo\\u00eb", "Zo\\u00EB", "Zoe\u0308", "Ｚｏë", "ñúñez", "NUNEZ", "Obi",
     "ÑúñezObi", "nunezobi", "\\u00d1\\u00fa\\u00f1ez"],
)  # fmt: skip
def test_a_name_is_masked_in_any_case_escape_accent_or_compatibility_form(spelling: str) -> None:
    assert reason_text(f"the answer named patient {spelling}: refused", ZOE) == f"the answer named patient {W}: refused"


@pytest.mark.parametrize(
    "written",
    ["2002-05-02", "05/02/2002", "5/2/2002", "20020502", "02.05.2002", "2.5.2002", "02-05-2002", "05/02/02",
     "020502", "050202", "2002/05/02", "May 2, 2002", "2 May 2002", "02-May-2002", "May 2nd 2002",
     "2002-05-02T00:00:00Z", "2002-05-02 00:00:00.000"],
)  # fmt: skip
def test_the_birth_date_is_masked_in_every_format_a_mapping_can_read(written: str) -> None:
    masked = reason_text(f"born {written} here", ZOE)
    assert masked.startswith(f"born {W}") and masked.endswith(" here")
    assert "2002" not in masked and "May" not in masked


def test_other_dates_and_numbers_of_our_own_words_are_left_alone() -> None:
    text = "run 12 (2026-11-28): 3 attempts, booking B000123, line 20020503"
    assert reason_text(text, ZOE) == text


def test_the_ssn_is_masked_with_or_without_separators() -> None:
    for written in ("123-45-6789", "123456789", "123 45 6789"):
        assert reason_text(f"ssn {written}.", ZOE) == f"ssn {W}."
    assert reason_text("ssn 123-45-6780", ZOE) == "ssn 123-45-6780"  # another number: ours to say, not the row's


def test_names_are_masked_as_whole_tokens_never_inside_words() -> None:
    text = "delivered earlier; Li's booking, LI, li2, Wu-Li, Liam, Wuhan, Olive"
    assert reason_text(text, LI) == f"delivered earlier; {W}'s booking, {W}, {W}2, {W}-{W}, Liam, Wuhan, Olive"


def test_a_patient_named_li_keeps_the_rejected_earlier_reason_from_nesting_night_after_night() -> None:
    first = reason_text("HTTP 400: " + server_message(b'{"error": "Li Wu is refused", "fields": {"fname": "Li"}}'), LI)
    assert W not in first and "Li" not in first
    reason = first
    nights = []
    for run_id in range(2, 6):
        prior = PriorRow("P1/B1", "P1", "rejected", "sha", None, run_id - 1, 2, reason, None, None, None, None)
        reason = reason_text(rejected_again_reason(prior), LI)
        nights.append(reason)
    assert nights == [f"rejected earlier with the same body (run 1): {first}"] * 4
    assert all(n.count("rejected earlier") == 1 for n in nights)


def test_one_letter_tokens_and_values_that_are_not_names_are_not_masked() -> None:
    values = PatientValues.of(body(fname="J", lname="O'Neil", dob="not a date"))
    assert mask_patient_values("J. O'Neil, born not a date", values) == f"J. O'{W}, born {W}"


def test_a_body_that_is_not_json_masks_nothing_and_still_makes_one_line() -> None:
    assert reason_text("a\r\nb\x1b[2J", b"not json") == "a b[2J"


def test_json_escapes_are_decoded_including_surrogate_pairs_and_lone_ones() -> None:
    assert decode_escapes("Zo\\u00eb \\ud83d\\ude00 \\ud800x") == "Zoë \U0001f600 \ufffdx"


@pytest.mark.parametrize(
    "token",
    ["1979-03-14", "03/14/1979", "14.03.1979", "19790314", "March 14, 1979", "14 Mar 79", "987-65-4321",
     "987654321", "987 65 4321"],
)  # fmt: skip
def test_server_words_withhold_every_ssn_or_date_like_token_whoever_it_belongs_to(token: str) -> None:
    assert withhold_server_tokens(f"signer {token}; ok") == f"signer {W}; ok"


def test_a_signer_name_with_another_patients_dob_and_ssn_is_withheld_in_a_reason() -> None:
    reason = reason_text("gave up after 3 attempts: HTTP 201 with unknown signer: Kim 1979-03-14 987-65-4321", LI)
    assert reason == f"gave up after 3 attempts: HTTP 201 with unknown signer: Kim {W} {W}"


def test_server_message_names_only_fields_the_api_profiles_know_and_never_its_words() -> None:
    answer = {"error": "Marcus Holloway 987-65-4321 exists", "fields": {"dob": "x", "Holloway": "y", "sex": "z"}}
    said = server_message(json.dumps(answer).encode())
    assert said == "CorEMR named fields dob, sex (and others); its words are kept in the ledger, not printed"
    assert server_message(b'{"fields": {"Marcus": 1, "987654321": 2}}') == (
        "CorEMR named fields the API profiles do not know; its words are kept in the ledger, not printed"
    )
    assert server_message(b'{"fields": [{"field": "lname"}, "booking_no"]}').startswith(
        "CorEMR named fields lname, booking_no;"
    )
    for answer_body in (b'{"error": "Marcus Holloway"}', b"Marcus Holloway <html>", b"[1, 2]"):
        assert server_message(answer_body) == "CorEMR's words are kept in the ledger, not printed"
    for empty in (b"", None, b"{}", b"null"):
        assert server_message(empty) == "CorEMR's answer has no message"


def test_known_fields_are_the_api_profiles_fields() -> None:
    assert {"external_id", "fname", "dob", "booking_no", "booking_number", "custom9"} <= KNOWN_FIELDS
    assert "Holloway" not in KNOWN_FIELDS


def test_a_security_stop_quoting_a_signer_name_withholds_its_dates_and_ssns_in_the_run_summary(tmp_path: Path) -> None:
    stop = "stopped after 5 refused or unverified answers in a row (last: unverified response (unknown signer:"
    stop += " Holloway_03/14/1979_987654321 (no keys/x.pem)))"
    result = RunResult(recorded_run(7, "stopped", 3), tmp_path / "ledger.sqlite", security_stop=stop)
    [line] = [line for line in summary_lines(result) if line.startswith("SECURITY STOP")]
    assert "03/14/1979" not in line and "987654321" not in line
    assert f"unknown signer: Holloway_{W}_{W} (no keys/x.pem)" in line  # the name a person needs, less the rest


@pytest.mark.parametrize(
    ("text", "line"),
    [("  a  b ", "a b"), ("a\tb\u00a0c\u2028d\x1b[2J\u202e", "a b c d[2J"), ("x" * 30, "x" * 19 + "…")],
)
def test_one_line_gives_the_same_line_whether_or_not_the_text_has_control_characters(text: str, line: str) -> None:
    assert one_line(text, 20) == line
