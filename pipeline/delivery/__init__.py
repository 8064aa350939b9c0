"""Delivery: the run configuration, the transport, one signed exchange, retries, the per-row engine and the run."""

from ._config import DEFAULT_CEILING, DEFAULT_FIXED, RunConfig, load_config
from ._engine import RowOutcome
from ._run import RunInterrupted, RunResult, run_bookings
from ._summary import print_summary, summary_lines
from ._transport import CWSTransport, NoAnswer

__all__ = [
    "DEFAULT_CEILING",
    "DEFAULT_FIXED",
    "CWSTransport",
    "NoAnswer",
    "RowOutcome",
    "RunConfig",
    "RunInterrupted",
    "RunResult",
    "load_config",
    "print_summary",
    "run_bookings",
    "summary_lines",
]
