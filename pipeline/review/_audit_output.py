"""What an audit says: the lines `audit` prints, the one-line verdict a report carries, and its JSON."""

from __future__ import annotations

from typing import Any

from ._audit import AuditResult

__all__ = ["audit_json", "audit_lines", "audit_verdict"]

_SHOW_FAILURES = 50


def audit_lines(result: AuditResult) -> list[str]:
    """What `audit` prints: the chain, one line per run, each failure (the first 50), and the verdict."""
    if result.damaged is not None:
        return [f"Audit FAILED: {result.damaged}"]
    chain = "intact" if result.chain_break is None else f"BROKEN at {result.chain_break}"
    lines = [
        f"Ledger {result.ledger}: {result.entries} entries, chain {chain}",
        f"  head: entry {result.head_seq} hash {result.head_hash or '-'} (keep a copy elsewhere to detect a rewrite)",
    ]
    if result.head_log is not None and not result.head_log_missing:  # a missing one is a FAILED line below
        held = sum(1 for f in result.failures if f.problem.startswith(f"head log {result.head_log},"))
        lines.append(
            f"  head log {result.head_log}: {result.heads_checked} recorded heads checked, {held} not in the chain"
        )
    for run in sorted(result.runs.values(), key=lambda r: r.run_id):
        text = (
            f"Run {run.run_id}: {run.entries} entries: {run.proven} proven, {run.not_checkable} not checkable"
            f" (bodies pruned), {run.unverified} with answers unverified at the time, {run.failed} failed"
        )
        if run.unchained:
            text += f", {run.unchained} after the chain break"
        lines.append(text + f"; re-verified {run.request_signatures} request and {run.response_signatures}"
                     " response signatures")  # fmt: skip
    for failure in result.failures[:_SHOW_FAILURES]:
        lines.append(f"FAILED {failure}")
    if len(result.failures) > _SHOW_FAILURES:
        lines.append(f"... and {len(result.failures) - _SHOW_FAILURES} more failures")
    if any(run.unverified for run in result.runs.values()):
        lines.append(
            "Answers recorded as unverified when they arrived are counted, not failed: the run reported those rows"
            " as unverified then."
        )
    lines.append(audit_verdict(result))
    return lines


def audit_verdict(result: AuditResult) -> str:
    """The audit's verdict in one line, with the chain head to keep elsewhere."""
    if result.damaged is not None:
        return f"Audit FAILED: {result.damaged}"
    head = f"chain head: entry {result.head_seq} hash {result.head_hash or '-'}"
    if result.ok:
        return f"Audit passed: everything that could be checked holds ({result.entries} entries; {head})."
    return f"Audit FAILED: {len(result.failures)} problem(s) ({head}); `cws-pipeline audit` lists them."


def audit_json(result: AuditResult) -> dict[str, Any]:
    """The audit as the JSON report's "audit" object."""
    return {
        "ok": result.ok,
        "damaged": result.damaged,
        "entries": result.entries,
        "chain_intact": result.chain_break is None,
        "head": {"seq": result.head_seq, "hash": result.head_hash or None},
        "head_log": None if result.head_log is None else str(result.head_log),
        "heads_checked": result.heads_checked,
        "problems": [str(f) for f in result.failures[:_SHOW_FAILURES]],
        "problem_count": len(result.failures),
    }
