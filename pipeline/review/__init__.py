"""Review of a ledger: reports (text, JSON, CSV, HTML), the offline audit, retention (prune) and the site's status."""

from ._audit import AuditResult, audit_ledger, our_public_key
from ._audit_output import audit_json, audit_lines, audit_verdict
from ._changes import name_held_fields
from ._report import REPORT_FORMATS, Report, gather_report, select_runs
from ._report_html import write_html
from ._report_text import open_private_text, write_csv, write_error_file, write_json, write_text
from ._retention import parse_before, prune_bodies
from ._status import STATUS_EXIT_CODES, SiteStatus, StatusVerdict, site_status, status_json, status_lines
from ._times import parse_age, parse_when

__all__ = [
    "REPORT_FORMATS",
    "STATUS_EXIT_CODES",
    "AuditResult",
    "Report",
    "SiteStatus",
    "StatusVerdict",
    "audit_json",
    "audit_ledger",
    "audit_lines",
    "audit_verdict",
    "gather_report",
    "name_held_fields",
    "open_private_text",
    "our_public_key",
    "parse_age",
    "parse_before",
    "parse_when",
    "prune_bodies",
    "select_runs",
    "site_status",
    "status_json",
    "status_lines",
    "write_csv",
    "write_error_file",
    "write_html",
    "write_json",
    "write_text",
]
