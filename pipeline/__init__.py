"""cws-pipeline: send county-jail bookings to CorEMR Web Services (CWS).

The package reads as the data flows: source (CSV) → mapping → signing → delivery → ledger → review.
The names exported here are the documented library interface (README, "Library use").
"""

from ._audit import AuditResult, audit_ledger
from ._auth import CWSAuth, verification_of
from ._config import RunConfig, load_config
from ._delivery import RowOutcome
from ._entries import ChainBreak, verify_chain
from ._errors import (
    ConfigError,
    CWSPipelineError,
    KeyFileError,
    LedgerLocked,
    MalformedHeader,
    MappingError,
    SourceError,
    UserInputError,
)
from ._keyring import Keyring
from ._keys import generate_private_key, load_private_key, load_public_key, write_key_pair
from ._ledger import Ledger
from ._mapper import MappedRow, RowProblem, map_csv
from ._mapping import Mapping, load_mapping
from ._report import Report, gather_report
from ._retention import prune_bodies
from ._run import RunResult, run_bookings
from ._server import CWSServer, Fault, ServerCounters
from ._signing import ALGORITHMS, Algorithm, AuthorizationHeader, sign, signature_matches
from ._states import ROW_STATES, RowState
from ._validate import ValidationReport, validate_csv
from ._verification import Verification, VerificationStatus, verify_body
from ._version import __version__

__all__ = [
    "ALGORITHMS",
    "ROW_STATES",
    "Algorithm",
    "AuditResult",
    "AuthorizationHeader",
    "CWSAuth",
    "CWSPipelineError",
    "CWSServer",
    "ChainBreak",
    "ConfigError",
    "Fault",
    "KeyFileError",
    "Keyring",
    "Ledger",
    "LedgerLocked",
    "MalformedHeader",
    "MappedRow",
    "Mapping",
    "MappingError",
    "Report",
    "RowOutcome",
    "RowProblem",
    "RowState",
    "RunConfig",
    "RunResult",
    "ServerCounters",
    "SourceError",
    "UserInputError",
    "ValidationReport",
    "Verification",
    "VerificationStatus",
    "__version__",
    "audit_ledger",
    "gather_report",
    "generate_private_key",
    "load_config",
    "load_mapping",
    "load_private_key",
    "load_public_key",
    "map_csv",
    "prune_bodies",
    "run_bookings",
    "sign",
    "signature_matches",
    "validate_csv",
    "verification_of",
    "verify_body",
    "verify_chain",
    "write_key_pair",
]
