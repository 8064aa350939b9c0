"""The CWS protocol: RSA keys, signatures and the Authorization header, keyrings, verification, httpx auth.

Everything that makes a request a CWS request and proves an answer came from CorEMR, and nothing about
exports, mappings or the ledger. The lowest stage: every other stage may use it; it uses none of them.
"""

from ._auth import RAW_BODY, CWSAuth, verification_of
from ._keyring import Keyring
from ._keys import (
    DEFAULT_BITS,
    PASSPHRASE_ENV,
    generate_private_key,
    load_private_key,
    load_public_key,
    passphrase_from_environment,
    write_key_pair,
)
from ._loopback import is_loopback
from ._signing import ALGORITHMS, Algorithm, AuthorizationHeader, check_access, sign, signature_matches
from ._verification import Verification, VerificationStatus, fails_only_by_trailing_newline, verify_body

__all__ = [
    "ALGORITHMS",
    "DEFAULT_BITS",
    "PASSPHRASE_ENV",
    "RAW_BODY",
    "Algorithm",
    "AuthorizationHeader",
    "CWSAuth",
    "Keyring",
    "Verification",
    "VerificationStatus",
    "check_access",
    "fails_only_by_trailing_newline",
    "generate_private_key",
    "is_loopback",
    "load_private_key",
    "load_public_key",
    "passphrase_from_environment",
    "sign",
    "signature_matches",
    "verification_of",
    "verify_body",
    "write_key_pair",
]
