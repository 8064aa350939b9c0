"""Delivery: the run configuration, the transport, one signed exchange, retries, the per-row engine and the run."""

from ._accept import AcceptedRow, accept_row
from ._check import CheckLine, SiteCheck, check_site
from ._config import DEFAULT_CEILING, DEFAULT_FIXED, RunConfig, load_config
from ._messages import printable_reason
from ._outcome import RowOutcome
from ._resend import RESEND_STATE, ResendChoice, RowToResend, resend_rows
from ._run import RunInterrupted, RunResult, run_bookings
from ._summary import print_summary, summary_lines
from ._transport import CWSTransport, NoAnswer

__all__ = [
    "DEFAULT_CEILING",
    "DEFAULT_FIXED",
    "RESEND_STATE",
    "AcceptedRow",
    "CWSTransport",
    "CheckLine",
    "NoAnswer",
    "ResendChoice",
    "RowOutcome",
    "RowToResend",
    "RunConfig",
    "RunInterrupted",
    "RunResult",
    "SiteCheck",
    "accept_row",
    "check_site",
    "load_config",
    "print_summary",
    "printable_reason",
    "resend_rows",
    "run_bookings",
    "summary_lines",
]
