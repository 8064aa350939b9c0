"""Verifying a CWS signature over received bytes, with the outcome as data the ledger can record."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from .._errors import MalformedHeader
from ._keyring import Keyring
from ._signing import ALGORITHMS, AuthorizationHeader, signature_matches

__all__ = ["Verification", "VerificationStatus", "fails_only_by_trailing_newline", "verify_body"]

VerificationStatus = Literal[
    "ok", "missing_header", "malformed_header", "unknown_signer", "algorithm_not_accepted", "bad_signature"
]

_REASONS: dict[str, str] = {
    "ok": "verified",
    "missing_header": "no Authorization header",
    "malformed_header": "malformed Authorization header",
    "unknown_signer": "unknown signer",
    "algorithm_not_accepted": "algorithm not accepted",
    "bad_signature": "bad signature",
}


@dataclass(frozen=True)
class Verification:
    """What checking one signed body found: a status, and the header pieces that were read."""

    status: VerificationStatus
    header: str | None = None
    algorithm: str | None = None
    signer: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        """True only for a good signature by a signer in the keyring with an accepted algorithm."""
        return self.status == "ok"

    @property
    def reason(self) -> str:
        """A short human sentence: 'verified', 'unknown signer: acme (no keys/acme.pem)', 'bad signature', ..."""
        text = _REASONS[self.status]
        if self.status in ("unknown_signer", "algorithm_not_accepted"):
            text += f": {self.signer if self.status == 'unknown_signer' else self.algorithm}"
        if self.detail and self.status == "malformed_header":
            return self.detail
        if self.detail and self.status == "unknown_signer":
            text += f" ({self.detail})"
        return text


def verify_body(
    body: bytes,
    header: str | None,
    keyring: Keyring,
    accept: Iterable[str] = ALGORITHMS,
) -> Verification:
    """Check an `Authorization` header value against the exact body bytes it claims to sign."""
    if header is None or header == "":
        return Verification("missing_header")
    try:
        parsed = AuthorizationHeader.parse(header)
    except MalformedHeader as exc:
        return Verification("malformed_header", header=header, detail=str(exc))
    found = Verification("ok", header=header, algorithm=parsed.algorithm, signer=parsed.access)
    if parsed.algorithm not in tuple(accept):
        return _with_status(found, "algorithm_not_accepted")
    key = keyring.public_key(parsed.access)
    if key is None:
        return _with_status(found, "unknown_signer", keyring.why_unknown(parsed.access))
    if not signature_matches(body, parsed.signature, key, parsed.algorithm):
        return _with_status(found, "bad_signature")
    return found


def _with_status(v: Verification, status: VerificationStatus, detail: str = "") -> Verification:
    return Verification(status, header=v.header, algorithm=v.algorithm, signer=v.signer, detail=detail)


def fails_only_by_trailing_newline(
    body: bytes, header: str | None, keyring: Keyring, accept: Iterable[str] = ALGORITHMS
) -> bool:
    """True when the body does not verify but would without its trailing newline (an editor added one)."""
    trimmed = body.removesuffix(b"\n").removesuffix(b"\r")
    if trimmed == body:
        return False
    accepted = tuple(accept)
    return not verify_body(body, header, keyring, accepted).ok and verify_body(trimmed, header, keyring, accepted).ok
