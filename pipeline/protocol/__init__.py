"""The CWS protocol: keys, signatures, the Authorization header, keyrings, verification, httpx auth, API versions.

Everything that makes a request a CWS request and proves an answer came from CorEMR, and nothing about
exports, mappings or the ledger. The lowest stage: every other stage may use it; it uses none of them.
"""

from ._api import (
    API_PROFILES,
    API_VERSIONS,
    ASSUMPTIONS,
    DEFAULT_API,
    EXISTS_STATUS,
    PATH_SEGMENT_RULE,
    ApiProfile,
    ApiVersion,
    Assumption,
    FieldKind,
    FieldRule,
    Routes,
    answer_date,
    date_problem,
    path_segment_problem,
    unsafe_path_segments,
)
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
    "API_PROFILES",
    "API_VERSIONS",
    "ASSUMPTIONS",
    "DEFAULT_API",
    "DEFAULT_BITS",
    "EXISTS_STATUS",
    "PASSPHRASE_ENV",
    "PATH_SEGMENT_RULE",
    "RAW_BODY",
    "Algorithm",
    "ApiProfile",
    "ApiVersion",
    "Assumption",
    "AuthorizationHeader",
    "CWSAuth",
    "FieldKind",
    "FieldRule",
    "Keyring",
    "Routes",
    "Verification",
    "VerificationStatus",
    "answer_date",
    "check_access",
    "date_problem",
    "fails_only_by_trailing_newline",
    "generate_private_key",
    "is_loopback",
    "load_private_key",
    "load_public_key",
    "passphrase_from_environment",
    "path_segment_problem",
    "sign",
    "signature_matches",
    "unsafe_path_segments",
    "verification_of",
    "verify_body",
    "write_key_pair",
]
