"""Delivery: the run configuration, the transport, the pure decisions, the row engine, pacing, the run, and what
a person does between runs (accept, resend) or before the first (check)."""

from .._masking import printable_reason
from ._by_hand import RESEND_STATE, AcceptedRow, ResendChoice, RowToResend, accept_row, resend_rows
from ._check import CheckLine, SiteCheck, check_site
from ._config import DEFAULT_CEILING, DEFAULT_FIXED, RunConfig, load_config
from ._decisions import RowOutcome
from ._run import RunInterrupted, RunProgress, RunResult, print_summary, run_bookings, summary_lines
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
    "RunProgress",
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
