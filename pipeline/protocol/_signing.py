"""CWS signatures: RSASSA-PKCS1-v1_5 over the exact body bytes, and the `Authorization` header that carries them.

Byte-identical to `openssl dgst -sha256 -sign KEY body | openssl enc -A -base64` (PKCS#1 v1.5 is
deterministic; PSS would not be, and CWS does not use it).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Literal, get_args

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .._errors import MalformedHeader, UserInputError

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "AuthorizationHeader",
    "check_access",
    "sign",
    "signature_matches",
]

Algorithm = Literal["CWS-SHA256", "CWS-SHA1"]
ALGORITHMS: tuple[Algorithm, ...] = get_args(Algorithm)

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"CWS-SHA256": hashes.SHA256, "CWS-SHA1": hashes.SHA1}

# By position: ALGORITHM, one space, Access=NAME, comma and one space, Signature=BASE64, nothing after.
# The base64 alphabet includes + / =, so the value is never split on "=".
_HEADER = re.compile(
    r"(?P<algorithm>CWS-[A-Za-z0-9]+) Access=(?P<access>[^\s,]+), Signature=(?P<signature>[A-Za-z0-9+/]+={0,2})"
)


def check_access(access: str) -> str:
    """Return the username if a header can carry it (no whitespace, comma or control character such as NUL);
    raise UserInputError if not."""
    if not re.fullmatch(r"[^\s,\x00-\x1f\x7f-\x9f]+", access):
        raise UserInputError(
            f"access {access!r}: a CWS username cannot be empty or contain spaces or commas, nor control characters;"
            " use the username shown in CorEMR under Administration → Public Keys"
        )
    return access


def _hash_for(algorithm: str) -> hashes.HashAlgorithm:
    try:
        return _HASHES[algorithm]()
    except KeyError:
        raise ValueError(f"unknown algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}") from None


def sign(body: bytes, key: rsa.RSAPrivateKey, algorithm: Algorithm = "CWS-SHA256") -> str:
    """Sign the exact body bytes and return the signature as one line of base64."""
    raw = key.sign(body, padding.PKCS1v15(), _hash_for(algorithm))
    return base64.b64encode(raw).decode("ascii")


def signature_matches(body: bytes, signature: str, key: rsa.RSAPublicKey, algorithm: str) -> bool:
    """True when the base64 signature is the key's PKCS#1 v1.5 signature of the exact body bytes."""
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, body, padding.PKCS1v15(), _hash_for(algorithm))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


@dataclass(frozen=True)
class AuthorizationHeader:
    """The value of a CWS `Authorization` header: `CWS-SHA256 Access=USERNAME, Signature=BASE64`."""

    algorithm: str
    access: str
    signature: str

    def __str__(self) -> str:
        return f"{self.algorithm} Access={self.access}, Signature={self.signature}"

    @classmethod
    def for_body(
        cls, body: bytes, key: rsa.RSAPrivateKey, access: str, algorithm: Algorithm = "CWS-SHA256"
    ) -> AuthorizationHeader:
        """Sign the body and build the header that carries the signature."""
        return cls(algorithm=algorithm, access=access, signature=sign(body, key, algorithm))

    @classmethod
    def parse(cls, value: str) -> AuthorizationHeader:
        """Parse a header value strictly; raise MalformedHeader saying what is wrong."""
        match = _HEADER.fullmatch(value)
        if match is None:
            raise MalformedHeader(f"malformed Authorization header: {_why_malformed(value)}")
        signature = match["signature"]
        try:
            base64.b64decode(signature, validate=True)
        except binascii.Error:
            raise MalformedHeader("malformed Authorization header: Signature is not valid base64") from None
        return cls(algorithm=match["algorithm"], access=match["access"], signature=signature)


def _why_malformed(value: str) -> str:
    if not value.strip():
        return "it is empty"
    if "\n" in value or "\r" in value:
        return "it spans more than one line (the signature must be one line of base64)"
    if not value.startswith("CWS-"):
        if value.upper().startswith("CWS-"):
            return "the algorithm is case-sensitive: write CWS-SHA256 or CWS-SHA1 in capitals"
        return "expected it to start with CWS-SHA256 or CWS-SHA1"
    if " Access=" not in value:
        return "expected ' Access=USERNAME' after the algorithm"
    if ", Signature=" not in value:
        return "expected ', Signature=BASE64' after the username"
    return "expected exactly 'ALGORITHM Access=USERNAME, Signature=BASE64' with base64 characters only"
