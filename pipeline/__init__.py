"""cws-pipeline: send county-jail bookings to CorEMR Web Services (CWS).

The package reads as the data flows: source (CSV) → mapping → signing → delivery → ledger → report.
"""

from ._auth import CWSAuth, verification_of
from ._errors import (
    ConfigError,
    CWSPipelineError,
    KeyFileError,
    LedgerLocked,
    MalformedHeader,
    MappingError,
    SecurityStop,
    SourceError,
    UserInputError,
)
from ._keyring import Keyring
from ._keys import KeyPairFiles, generate_private_key, load_private_key, load_public_key, write_key_pair
from ._signing import ALGORITHMS, Algorithm, AuthorizationHeader, sign, signature_matches
from ._verification import Verification, VerificationStatus, verify_body
from ._version import __version__

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "AuthorizationHeader",
    "CWSAuth",
    "CWSPipelineError",
    "ConfigError",
    "KeyFileError",
    "KeyPairFiles",
    "Keyring",
    "LedgerLocked",
    "MalformedHeader",
    "MappingError",
    "SecurityStop",
    "SourceError",
    "UserInputError",
    "Verification",
    "VerificationStatus",
    "__version__",
    "generate_private_key",
    "load_private_key",
    "load_public_key",
    "sign",
    "signature_matches",
    "verification_of",
    "verify_body",
    "write_key_pair",
]
