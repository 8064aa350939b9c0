"""cws-pipeline: send county-jail bookings to CorEMR Web Services (CWS).

The package reads as the data flows: source (CSV) → mapping → signing → delivery → ledger → review.
The names exported here are the documented library interface (README, "Library use").
"""

from types import FunctionType

from ._errors import (
    ConfigError,
    CWSPipelineError,
    KeyFileError,
    LedgerLocked,
    MalformedHeader,
    MappingError,
    OutsideWindow,
    SourceError,
    UserInputError,
)
from ._version import __version__
from .delivery import CWSTransport, NoAnswer, RowOutcome, RunConfig, RunResult, load_config, run_bookings
from .ledger import ROW_STATES, ChainBreak, Ledger, RowState, verify_chain
from .mapping import MappedRow, Mapping, RowProblem, ValidationReport, load_mapping, map_csv, validate_csv
from .protocol import (
    ALGORITHMS,
    Algorithm,
    AuthorizationHeader,
    CWSAuth,
    Keyring,
    Verification,
    VerificationStatus,
    generate_private_key,
    load_private_key,
    load_public_key,
    sign,
    signature_matches,
    verification_of,
    verify_body,
    write_key_pair,
)
from .review import AuditResult, Report, audit_ledger, gather_report, prune_bodies
from .simulator import Capacity, CWSServer, Fault, ServerCounters

__all__ = [
    "ALGORITHMS",
    "ROW_STATES",
    "Algorithm",
    "AuditResult",
    "AuthorizationHeader",
    "CWSAuth",
    "CWSPipelineError",
    "CWSServer",
    "CWSTransport",
    "Capacity",
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
    "NoAnswer",
    "OutsideWindow",
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

# Show the documented classes and functions as pipeline.X in reprs, help() and docs, not the private module
# they live in (httpx does the same). Type aliases and constants keep theirs.
for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type | FunctionType):
        _value.__module__ = "pipeline"
del _name, _value
