"""CWS signatures and the `Authorization` header: exact format, strict parsing, verification outcomes."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import MalformedHeader, UserInputError
from pipeline.protocol import (
    ALGORITHMS,
    AuthorizationHeader,
    Keyring,
    check_access,
    fails_only_by_trailing_newline,
    sign,
    signature_matches,
    verify_body,
)

from ..sites import CLIENT_ACCESS, KeyPair

BODY = b'{"external_id": "A1", "facility": 10000}'
# A valid header whose signature holds all three awkward base64 characters: + / =
AWKWARD = "CWS-SHA256 Access=coremr, Signature=ab+/cd+/ef=="


def test_header_is_exactly_one_line_in_the_documented_form(client_keys: KeyPair) -> None:
    header = str(AuthorizationHeader.for_body(BODY, client_keys.key, CLIENT_ACCESS))

    assert re.fullmatch(r"CWS-SHA256 Access=county-jms, Signature=[A-Za-z0-9+/]{342}==", header)
    assert "\n" not in header and "\r" not in header


def test_signature_is_deterministic_pkcs1_v15_over_the_exact_bytes(client_keys: KeyPair) -> None:
    first = sign(BODY, client_keys.key)

    assert sign(BODY, client_keys.key) == first
    # Raises if the padding were PSS or the hash were not SHA-256.
    client_keys.key.public_key().verify(base64.b64decode(first), BODY, padding.PKCS1v15(), hashes.SHA256())


def test_sha1_and_sha256_signatures_differ_and_each_matches_only_its_algorithm(client_keys: KeyPair) -> None:
    public = client_keys.key.public_key()
    sha1 = sign(BODY, client_keys.key, "CWS-SHA1")
    sha256 = sign(BODY, client_keys.key, "CWS-SHA256")

    assert sha1 != sha256
    assert signature_matches(BODY, sha1, public, "CWS-SHA1")
    assert not signature_matches(BODY, sha1, public, "CWS-SHA256")
    assert signature_matches(BODY, sha256, public, "CWS-SHA256")


def test_signature_matches_is_false_for_wrong_key_other_body_and_non_base64(
    client_keys: KeyPair, other_keys: KeyPair
) -> None:
    signature = sign(BODY, client_keys.key)

    assert not signature_matches(BODY, signature, other_keys.key.public_key(), "CWS-SHA256")
    assert not signature_matches(BODY + b" ", signature, client_keys.key.public_key(), "CWS-SHA256")
    assert not signature_matches(BODY, "not*base64", client_keys.key.public_key(), "CWS-SHA256")


def test_get_signs_the_empty_body(client_keys: KeyPair) -> None:
    signature = sign(b"", client_keys.key)

    assert signature_matches(b"", signature, client_keys.key.public_key(), "CWS-SHA256")
    assert not signature_matches(b"\n", signature, client_keys.key.public_key(), "CWS-SHA256")


def test_parser_reads_by_position_and_keeps_plus_slash_and_equals() -> None:
    parsed = AuthorizationHeader.parse(AWKWARD)

    assert parsed == AuthorizationHeader("CWS-SHA256", "coremr", "ab+/cd+/ef==")
    assert str(parsed) == AWKWARD


def test_parser_accepts_sha1_and_a_username_with_equals_signs() -> None:
    parsed = AuthorizationHeader.parse("CWS-SHA1 Access=core=mr, Signature=QUJD")

    assert (parsed.algorithm, parsed.access, parsed.signature) == ("CWS-SHA1", "core=mr", "QUJD")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("CWS-SHA256  Access=coremr, Signature=QUJD", id="two-spaces-after-algorithm"),
        pytest.param("CWS-SHA256 Access=coremr,  Signature=QUJD", id="two-spaces-after-comma"),
        pytest.param("CWS-SHA256 Access=coremr,Signature=QUJD", id="no-space-after-comma"),
        pytest.param(" CWS-SHA256 Access=coremr, Signature=QUJD", id="leading-space"),
        pytest.param("CWS-SHA256 Access=coremr, Signature=QUJD ", id="trailing-space"),
        pytest.param("CWS-SHA256\tAccess=coremr, Signature=QUJD", id="tab"),
        pytest.param("cws-sha256 Access=coremr, Signature=QUJD", id="lowercase-algorithm"),
        pytest.param("Cws-SHA256 Access=coremr, Signature=QUJD", id="mixed-case-prefix"),
        pytest.param("SHA256 Access=coremr, Signature=QUJD", id="no-CWS-prefix"),
        pytest.param("CWS-SHA256 access=coremr, Signature=QUJD", id="lowercase-access"),
        pytest.param("CWS-SHA256 Access=coremr, signature=QUJD", id="lowercase-signature"),
        pytest.param("CWS-SHA256 Access=coremr, Signature=QU\nJD", id="two-lines"),
        pytest.param("CWS-SHA256 Access=coremr, Signature=QUJD\r\n", id="crlf-at-end"),
        pytest.param("CWS-SHA256 Access=coremr, Signature=QUJD\n", id="newline-at-end"),
        pytest.param("CWS-SHA256 Signature=QUJD", id="missing-access"),
        pytest.param("CWS-SHA256 Access=coremr", id="missing-signature"),
        pytest.param("CWS-SHA256 Access=, Signature=QUJD", id="empty-access"),
        pytest.param("CWS-SHA256 Access=coremr, Signature=", id="empty-signature"),
        pytest.param("CWS-SHA256 Access=core mr, Signature=QUJD", id="space-in-access"),
        pytest.param("CWS-SHA256 Access=a,b, Signature=QUJD", id="comma-in-access"),
        pytest.param("CWS-SHA256 Access=coremr, Signature=QU*D", id="non-base64-character"),
        pytest.param("CWS-SHA256 Access=coremr, Signature=QUJ", id="base64-bad-length"),
        pytest.param("CWS-SHA256 Access=coremr, Signature=QU==JD", id="padding-in-the-middle"),
        pytest.param("CWS-SHA256 Access=coremr, Signature=QUJD, Extra=1", id="extra-part"),
        pytest.param("CWS-SHA256 Signature=QUJD, Access=coremr", id="parts-swapped"),
    ],
)
def test_parser_rejects_anything_but_the_exact_format(value: str) -> None:
    with pytest.raises(MalformedHeader) as raised:
        AuthorizationHeader.parse(value)

    message = str(raised.value)
    assert message.startswith("malformed Authorization header: ")
    assert "\n" not in message


def test_lowercase_algorithm_message_says_the_token_is_case_sensitive() -> None:
    with pytest.raises(MalformedHeader, match="case-sensitive"):
        AuthorizationHeader.parse("cws-sha256 Access=coremr, Signature=QUJD")


def test_algorithm_token_is_case_sensitive_so_wrong_case_never_verifies(
    client_keys: KeyPair, client_keyring_dir: Path
) -> None:
    signature = sign(BODY, client_keys.key)

    found = verify_body(BODY, f"CWS-sha256 Access={CLIENT_ACCESS}, Signature={signature}", Keyring(client_keyring_dir))

    assert found.status == "algorithm_not_accepted"
    assert not found.ok


_USERNAME_CHARS = st.characters(exclude_categories=("Zs", "Zl", "Zp", "Cc", "Cs"), exclude_characters=",")


@settings(max_examples=200)
@given(
    algorithm=st.sampled_from(ALGORITHMS),
    access=st.text(_USERNAME_CHARS, min_size=1, max_size=40),
    raw=st.binary(min_size=1, max_size=600),
)
def test_format_then_parse_round_trips_for_any_username_without_whitespace_or_comma(
    algorithm: str, access: str, raw: bytes
) -> None:
    header = AuthorizationHeader(algorithm, access, base64.b64encode(raw).decode("ascii"))

    assert check_access(access) == access
    assert AuthorizationHeader.parse(str(header)) == header


@settings(max_examples=25, deadline=None)
@given(body=st.binary(max_size=2000))
def test_any_body_verifies_and_the_same_body_plus_newline_does_not(
    client_keys: KeyPair, client_keyring_dir: Path, body: bytes
) -> None:
    header = str(AuthorizationHeader.for_body(body, client_keys.key, CLIENT_ACCESS))
    keyring = Keyring(client_keyring_dir)

    assert verify_body(body, header, keyring).ok
    assert verify_body(body + b"\n", header, keyring).status == "bad_signature"


@pytest.mark.parametrize(
    "access", ["", "county jms", "county,jms", "county\tjms", "county-jms\n", "county\x00jms", "county\x7f"]
)
def test_check_access_refuses_usernames_a_header_cannot_carry(access: str) -> None:
    with pytest.raises(UserInputError, match="cannot be empty or contain spaces or commas"):
        check_access(access)


def test_verification_statuses_and_reasons(client_keys: KeyPair, other_keys: KeyPair, client_keyring_dir: Path) -> None:
    keyring = Keyring(client_keyring_dir)
    good = str(AuthorizationHeader.for_body(BODY, client_keys.key, CLIENT_ACCESS))
    sha1 = str(AuthorizationHeader.for_body(BODY, client_keys.key, CLIENT_ACCESS, "CWS-SHA1"))
    forged = str(AuthorizationHeader.for_body(BODY, other_keys.key, CLIENT_ACCESS))
    stranger = str(AuthorizationHeader.for_body(BODY, other_keys.key, "stranger"))

    results = {
        "ok": verify_body(BODY, good, keyring),
        "missing": verify_body(BODY, None, keyring),
        "empty": verify_body(BODY, "", keyring),
        "malformed": verify_body(BODY, "Bearer abc", keyring),
        "not-accepted": verify_body(BODY, sha1, keyring, accept=["CWS-SHA256"]),
        "sha1-by-default": verify_body(BODY, sha1, keyring),
        "forged": verify_body(BODY, forged, keyring),
        "stranger": verify_body(BODY, stranger, keyring),
    }

    assert {k: v.status for k, v in results.items()} == {
        "ok": "ok",
        "missing": "missing_header",
        "empty": "missing_header",
        "malformed": "malformed_header",
        "not-accepted": "algorithm_not_accepted",
        "sha1-by-default": "ok",
        "forged": "bad_signature",
        "stranger": "unknown_signer",
    }
    assert [k for k, v in results.items() if v.ok] == ["ok", "sha1-by-default"]
    assert results["ok"].signer == CLIENT_ACCESS and results["ok"].algorithm == "CWS-SHA256"
    assert results["not-accepted"].reason == "algorithm not accepted: CWS-SHA1"
    assert results["forged"].reason == "bad signature"
    assert results["stranger"].reason == f"unknown signer: stranger (no {client_keyring_dir / 'stranger.pem'})"
    assert results["malformed"].reason.startswith("malformed Authorization header: ")


def test_a_failure_caused_only_by_a_trailing_newline_is_recognised(
    client_keys: KeyPair, client_keyring_dir: Path
) -> None:
    keyring = Keyring(client_keyring_dir)
    header = str(AuthorizationHeader.for_body(BODY, client_keys.key, CLIENT_ACCESS))

    assert fails_only_by_trailing_newline(BODY + b"\n", header, keyring)
    assert fails_only_by_trailing_newline(BODY + b"\r\n", header, keyring)
    assert not fails_only_by_trailing_newline(BODY, header, keyring)  # it verifies: nothing to explain
    assert not fails_only_by_trailing_newline(BODY + b" \n", header, keyring)  # more than a newline differs
    signed_with_newline = str(AuthorizationHeader.for_body(BODY + b"\n", client_keys.key, CLIENT_ACCESS))
    assert not fails_only_by_trailing_newline(BODY + b"\n", signed_with_newline, keyring)
