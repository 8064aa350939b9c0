"""cws-pipeline: send county-jail bookings to CorEMR Web Services (CWS).

The package reads as the data flows: source (CSV) → mapping → signing → delivery → ledger → review.
The names exported here are the documented library interface (README, "Library use").

They are loaded on first use (PEP 562): `import pipeline` loads no stage, and so none of pandas, httpx
or cryptography, until a name from one is used; `cws-pipeline --help` pays for none of them.
"""

from __future__ import annotations

import importlib
from types import FunctionType
from typing import TYPE_CHECKING, Any

from ._errors import (
    ConfigError,
    CWSPipelineError,
    ExitCode,
    KeyFileError,
    LedgerLocked,
    MalformedHeader,
    MappingError,
    OutsideWindow,
    SourceError,
    UserInputError,
)
from ._version import __version__

if TYPE_CHECKING:
    from .delivery import (
        CWSTransport,
        NoAnswer,
        RowOutcome,
        RunConfig,
        RunProgress,
        RunResult,
        load_config,
        run_bookings,
    )
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
    "ExitCode",
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
    "RunProgress",
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

# The stage each exported name is loaded from on first use; the TYPE_CHECKING imports above say the same.
_STAGES = {
    ".delivery": (
        "CWSTransport",
        "NoAnswer",
        "RowOutcome",
        "RunConfig",
        "RunProgress",
        "RunResult",
        "load_config",
        "run_bookings",
    ),
    ".ledger": ("ROW_STATES", "ChainBreak", "Ledger", "RowState", "verify_chain"),
    ".mapping": ("MappedRow", "Mapping", "RowProblem", "ValidationReport", "load_mapping", "map_csv", "validate_csv"),
    ".protocol": (
        "ALGORITHMS",
        "Algorithm",
        "AuthorizationHeader",
        "CWSAuth",
        "Keyring",
        "Verification",
        "VerificationStatus",
        "generate_private_key",
        "load_private_key",
        "load_public_key",
        "sign",
        "signature_matches",
        "verification_of",
        "verify_body",
        "write_key_pair",
    ),
    ".review": ("AuditResult", "Report", "audit_ledger", "gather_report", "prune_bodies"),
    ".simulator": ("Capacity", "CWSServer", "Fault", "ServerCounters"),
}
_STAGE_OF = {name: stage for stage, names in _STAGES.items() for name in names}


def _as_pipeline_name(value: object) -> None:
    """Show a documented class or function as pipeline.X in reprs, help() and docs (httpx does the same)."""
    if isinstance(value, type | FunctionType):
        value.__module__ = "pipeline"


def __getattr__(name: str) -> Any:
    """Load an exported name from its stage the first time it is asked for, then keep it here."""
    stage = _STAGE_OF.get(name)
    if stage is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(stage, __name__), name)
    _as_pipeline_name(value)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, including the exported ones not loaded yet."""
    return sorted(set(globals()) | set(__all__))


# The errors are here already: show them as pipeline.X now (the stages' names are when first loaded).
for _name in __all__:
    if _name not in _STAGE_OF:
        _as_pipeline_name(globals()[_name])
del _name
