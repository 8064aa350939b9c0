"""Delivery: the run configuration, one signed exchange, retries, the per-row engine and the run."""

from ._config import RunConfig, load_config
from ._engine import RowOutcome
from ._run import RunResult, run_bookings
from ._summary import print_summary, summary_lines

__all__ = [
    "RowOutcome",
    "RunConfig",
    "RunResult",
    "load_config",
    "print_summary",
    "run_bookings",
    "summary_lines",
]
