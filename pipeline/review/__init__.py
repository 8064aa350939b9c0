"""Review of a ledger: reports (text, JSON, CSV, HTML), the offline audit, and retention (prune)."""

from ._audit import AuditResult, audit_ledger, audit_lines, our_public_key
from ._report import (
    REPORT_FORMATS,
    Report,
    gather_report,
    open_private_text,
    select_runs,
    write_csv,
    write_json,
    write_text,
)
from ._report_html import write_html
from ._retention import parse_before, prune_bodies

__all__ = [
    "REPORT_FORMATS",
    "AuditResult",
    "Report",
    "audit_ledger",
    "audit_lines",
    "gather_report",
    "open_private_text",
    "our_public_key",
    "parse_before",
    "prune_bodies",
    "select_runs",
    "write_csv",
    "write_html",
    "write_json",
    "write_text",
]
