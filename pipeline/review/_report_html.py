"""The HTML report: one self-contained file (inline CSS and SVG, no scripts, no network) that prints well.

It opens from a mail attachment: nothing is fetched, and a Content-Security-Policy forbids fetching.
Rows are named by line and key; no original cells, names or birth dates are written.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import TextIO

from ..ledger import NOT_DELIVERED, ROW_STATES, STATE_ADVICE
from ._audit_output import audit_verdict
from ._changes import changes_text, where_text
from ._report import Report, RowRecord, RunSummary
from ._report_text import actions_text

__all__ = ["STATE_COLOURS", "write_html"]

MAX_TABLE_ROWS = 5000
_CSP = "default-src 'none'; style-src 'unsafe-inline'"  # nothing may be fetched, not even an image
MAX_HISTORY_RUNS = 60
# A generous width of one character of SVG text at 12px (digits and lower case are narrower): labels are
# spaced by it, so that no two overlap however many runs the chart shows.
_CHAR_PX = 7.5
_LABEL_GAP = 8

STATE_COLOURS: dict[str, str] = {
    "delivered": "#2e7d32",
    "skipped": "#81c784",
    "changed": "#f9a825",
    "invalid": "#8e24aa",
    "rejected": "#c62828",
    "failed": "#ef6c00",
    "unverified": "#1565c0",
    "ambiguous": "#6d4c41",
    "excluded": "#9e9e9e",
    "duplicate": "#bdbdbd",
}

_CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1b1b1b;
       margin: 2rem auto; max-width: 72rem; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; } h2 { font-size: 1.15rem; margin: 1.75rem 0 .5rem;
       border-bottom: 1px solid #ccc; padding-bottom: .2rem; }
.muted { color: #555; } code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .85em;
       overflow-wrap: anywhere; }
td.mono { white-space: nowrap; }
#runs-table { font-size: .8em; } #runs-table th, #runs-table td { padding: .2rem .3rem; }
#runs-table td.mono { white-space: normal; } /* a long source name wraps: the table fits 1,200 px */
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; vertical-align: top;
       padding: .25rem .5rem; border-bottom: 1px solid #e2e2e2; } th { background: #f3f3f3; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: .5rem 0; }
dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0; }
.state { display: inline-block; padding: 0 .4rem; border-radius: .25rem; color: #fff; font-size: .85em; }
.ok { color: #2e7d32; font-weight: 600; } .bad { color: #c62828; font-weight: 600; }
.none { color: #555; font-weight: 600; }
svg text { font: 12px system-ui, "DejaVu Sans", sans-serif; fill: #1b1b1b; }
.advice li { margin: .2rem 0; }
@page { margin: 1.5cm; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  section, tr, svg { break-inside: avoid; }
  h2 { break-after: avoid; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def write_html(report: Report, out: TextIO, generated_at: datetime | None = None) -> None:
    """Write the HTML report: metadata, outcome chart, runs over time, rows needing attention, signatures,
    and the audit's verdict when the report was made with one."""
    when = (generated_at or datetime.now(UTC)).isoformat(timespec="seconds")
    runs = report.runs
    title = f"CWS delivery report: {len(runs)} runs"
    if len(runs) == 1:
        title = f"CWS delivery report: run {runs[0].record.run_id}"
    out.write('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n')
    out.write(f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n')
    out.write('<meta name="viewport" content="width=device-width, initial-scale=1">\n')
    out.write(f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n")
    out.write(f"<header>\n<h1>{escape(title)}</h1>\n")
    out.write(f'<p class="muted">Ledger <code>{escape(str(report.ledger))}</code>; report made {escape(when)}.</p>\n')
    out.write("</header>\n")
    if report.audit is not None:
        out.write(_audit(report))
    if not report.across_runs:
        out.write(f'<section id="runs">\n{_run_meta(runs[0])}</section>\n')
    out.write(_outcome(report))
    if report.across_runs:
        out.write('<section id="history">\n<h2>Runs over time</h2>\n')
        out.write(_history_chart(runs[-MAX_HISTORY_RUNS:]))
        shown = runs[-MAX_HISTORY_RUNS:]
        more = f"the last {len(shown)} of {len(runs)} runs: " if len(runs) > len(shown) else ""
        first, last = shown[0].record, shown[-1].record
        out.write(
            f'<p class="muted">Rows per state in each run ({more}runs {first.run_id} to {last.run_id},'
            f" started {escape(first.started_at[:10])} to {escape(last.started_at[:10])}).</p>\n"
        )
        out.write(_runs_table(runs))
        out.write("</section>\n")
    out.write('<section id="attention">\n')
    _attention(report, out)
    out.write("</section>\n")
    out.write(f'<section id="verification">\n<h2>Signatures</h2>\n{_verification(runs)}</section>\n')
    if report.across_runs:
        out.write('<section id="runs">\n<h2>Run details</h2>\n')
        for run in reversed(runs[-MAX_HISTORY_RUNS:]):
            out.write(_run_meta(run))
        out.write("</section>\n")
    out.write("</body>\n</html>\n")


def _audit(report: Report) -> str:
    result = report.audit
    assert result is not None
    status = "ok" if result.ok and result.entries else "bad" if not result.ok else "none"
    head = f"entry {result.head_seq}, hash {result.head_hash}" if result.head_hash else "none (no entries)"
    log = ""
    if result.head_log is not None:
        log = (
            f"<dt>Head log</dt><dd class=mono>{escape(str(result.head_log))}: {result.heads_checked} heads checked</dd>"
        )
    return (
        f'<section id="audit">\n<h2>Audit</h2>\n<p id="audit-verdict"><span class="{status}">'
        f"{escape(audit_verdict(result))}</span></p>\n"
        f'<dl class="meta"><dt>Chain head</dt><dd class="mono" id="chain-head">{escape(head)}</dd>{log}</dl>\n'
        '<p class="muted">Keep the chain head elsewhere (a head log, the cron mail): only a copy the ledger\'s'
        " writers cannot reach shows that the whole file was not rewritten.</p>\n</section>\n"
    )


def _outcome(report: Report) -> str:
    counts = report.latest_counts()
    total = sum(counts.values())
    attention = sum(n for s, n in counts.items() if s in NOT_DELIVERED)
    what = f"{total} distinct bookings over {len(report.runs)} runs, each counted once by its latest state" if (
        report.across_runs) else f"{total} rows"  # fmt: skip
    if total == 0:
        verdict = (
            f'<p><span class="none">No rows were recorded in {"these runs" if report.across_runs else "this run"}.'
        )
        verdict += "</span></p>\n"
    else:
        # The colour is the last run's exit status: green when it exited 0, rows reported before and held or not.
        status = "ok" if report.runs[-1].record.exit_code == 0 else "bad"
        n = report.needs_person
        verdict = (f'<p id="outcome-status" data-exit="{report.runs[-1].record.exit_code}"><span class="{status}">'
                   f"{total - attention} of {what} delivered or already delivered</span>; {attention} need attention;"
                   f' <span id="needs-person">{n} booking{"s" if n != 1 else ""} need{"s" if n == 1 else ""} a'
                   " person</span>.</p>\n")  # fmt: skip
    return f'<section id="outcome">\n<h2>Outcome</h2>\n{verdict}{_outcome_chart(counts)}</section>\n'


def _outcome_chart(counts: dict[str, int]) -> str:
    label_w, bar_w, row_h = 110, 520, 26
    biggest = max(counts.values(), default=0) or 1
    height = row_h * len(ROW_STATES) + 10
    parts = [f'<svg id="outcome-chart" xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 80}"'
             f' height="{height}" role="img" aria-label="Rows per state">']  # fmt: skip
    for i, state in enumerate(ROW_STATES):
        n = counts.get(state, 0)
        y = 5 + i * row_h
        width = round(bar_w * n / biggest, 1) if n else 0
        parts.append(f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end">{state}</text>')
        colour = STATE_COLOURS.get(state, "#555")
        parts.append(f'<rect class="bar" data-state="{state}" data-count="{n}" x="{label_w}" y="{y + 3}"'
                     f' width="{max(width, 1 if n else 0)}" height="{row_h - 8}" fill="{colour}">'
                     f"<title>{state}: {n}</title></rect>")  # fmt: skip
        parts.append(f'<text x="{label_w + width + 6}" y="{y + 16}">{n}</text>')
    parts.append("</svg>\n")
    return "".join(parts)


def _history_chart(runs: list[RunSummary]) -> str:
    left, top, plot_w, plot_h = 50, 10, 640, 220
    biggest = max((run.rows for run in runs), default=0) or 1
    step = plot_w / len(runs)
    bar = max(min(step * 0.7, 40), 2)
    # Label every k-th run, counted back from the latest (always labelled), so that no two labels overlap.
    ids_every = _every(step, len(str(runs[-1].record.run_id)))
    days_every = _every(step, 5)  # MM-DD; the full dates are in the caption
    legend, legend_h = _legend(left, top + plot_h + 56, plot_w)
    parts = [f'<svg id="runs-chart" xmlns="http://www.w3.org/2000/svg" width="{left + plot_w + 20}"'
             f' height="{top + plot_h + 50 + legend_h}" role="img" aria-label="Rows per state in each run">',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#999"/>',
             f'<text x="{left - 6}" y="{top + 10}" text-anchor="end">{biggest}</text>',
             f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end">0</text>']  # fmt: skip
    for i, run in enumerate(runs):
        x = round(left + i * step + (step - bar) / 2, 1)
        parts += _segments(run, x, bar, top + plot_h, plot_h / biggest)
        label_x = round(x + bar / 2, 1)
        back = len(runs) - 1 - i
        if back % ids_every == 0:
            parts.append(f'<text class="run-label" x="{label_x}" y="{top + plot_h + 14}" text-anchor="middle">'
                         f"{run.record.run_id}</text>")  # fmt: skip
        if back % days_every == 0:
            day = escape(run.record.started_at[5:10])
            parts.append(f'<text class="day-label" x="{label_x}" y="{top + plot_h + 28}" text-anchor="middle"'
                         f' fill="#555">{day}</text>')  # fmt: skip
    parts += legend
    parts.append("</svg>\n")
    return "".join(parts)


def _every(step: float, chars: int) -> int:
    """Label every how-many-th bar so that labels of `chars` characters, `step` pixels apart, do not touch."""
    return max(1, math.ceil((chars * _CHAR_PX + _LABEL_GAP) / step))


def _segments(run: RunSummary, x: float, bar: float, base: float, scale: float) -> list[str]:
    parts, y = [], base
    for state in ROW_STATES:
        n = run.counts_from_entries.get(state, 0)
        if not n:
            continue
        h = n * scale
        y -= h
        parts.append(
            f'<rect class="segment" data-run="{run.record.run_id}" data-state="{state}" data-count="{n}"'
            f' x="{x}" y="{round(y, 1)}" width="{round(bar, 1)}" height="{round(h, 1)}"'
            f' fill="{STATE_COLOURS.get(state, "#555")}"><title>run {run.record.run_id}, {state}: {n}</title></rect>'
        )
    return parts


def _legend(left: int, y: int, width: int) -> tuple[list[str], int]:
    """The states' colour legend, wrapped onto as many lines as it needs; and the height it takes."""
    parts, x, line = [], float(left), 0
    for state in ROW_STATES:
        item = 14 + len(state) * _CHAR_PX + 2 * _LABEL_GAP
        if x + item > left + width and x > left:
            x, line = float(left), line + 1
        ly = y + line * 18
        parts.append(f'<rect x="{x}" y="{ly - 10}" width="10" height="10" fill="{STATE_COLOURS.get(state, "#555")}"/>')
        parts.append(f'<text class="legend-label" x="{x + 14}" y="{ly}">{state}</text>')
        x += item
    return parts, 18 * (line + 1) + 6


def _runs_table(runs: list[RunSummary]) -> str:
    headings = ("Run", "Started", "Status", "Exit", "Rows", *ROW_STATES, "Source")
    out = [f'<table id="runs-table">\n<thead><tr>{"".join(f"<th>{h}</th>" for h in headings)}</tr></thead>\n<tbody>\n']
    for run in runs:
        rec = run.record
        code = "" if rec.exit_code is None else str(rec.exit_code)
        counts = "".join(f"<td>{run.counts_from_entries.get(state, 0)}</td>" for state in ROW_STATES)
        out.append(f'<tr class="run" data-run="{rec.run_id}"><td>{rec.run_id}</td>'
                   f'<td class="mono">{escape(rec.started_at[:19])}</td><td>{escape(rec.status)}</td>'
                   f"<td>{code}</td><td>{run.rows}</td>{counts}"
                   f"<td class=mono>{escape(Path(rec.info.source).name)}</td></tr>\n")  # fmt: skip
    out.append("</tbody>\n</table>\n")
    return "".join(out)


def _badge(state: str) -> str:
    return f'<span class="state" style="background:{STATE_COLOURS.get(state, "#555")}">{escape(state)}</span>'


def _signature_cell(record: RowRecord) -> str:
    if record.response_verified is None:
        return '<span class="muted">no answer</span>'
    if record.response_verified:
        return f'<span class="ok">verified</span> ({escape(record.response_signer or "")})'
    return '<span class="bad">not verified</span>'


def _attention(report: Report, out: TextIO) -> None:
    if report.across_runs:
        _outstanding(report, out)
        return
    rows = report.attention
    heading = f"Rows in state {', '.join(report.states)}" if report.states else "Rows needing attention"
    out.write(f"<h2>{escape(heading)} ({len(rows)})</h2>\n")
    if not rows:
        out.write(_nothing_needed(report))
        return
    headings = ("Run", "Line", "Key", "State", "HTTP", "Attempts", "CorEMR signature", "Reason")
    out.write(f'<table id="attention-table">\n<thead><tr>{"".join(f"<th>{h}</th>" for h in headings)}</tr></thead>\n')
    out.write("<tbody>\n")
    for r in rows[:MAX_TABLE_ROWS]:
        out.write(
            f'<tr class="row" data-state="{escape(r.state)}"><td>{r.run_id}</td>'
            f'<td>{r.line if r.line is not None else ""}</td><td class="mono">{escape(r.key or "(no key)")}</td>'
            f"<td>{_badge(r.state)}</td>"
            f"<td>{r.http_status or ''}</td><td>{r.attempts}</td><td>{_signature_cell(r)}</td>"
            f"<td>{_reason_cell(r, report.values_shown)}</td></tr>\n"
        )
    out.write("</tbody>\n</table>\n")
    _more_and_advice(rows, out)


def _outstanding(report: Report, out: TextIO) -> None:
    rows = report.outstanding
    what = f"Rows whose latest state is {', '.join(report.states)}" if report.states else "Rows needing attention"
    out.write(f"<h2>{escape(what)} ({len(rows)})</h2>\n")
    if not rows:
        out.write(_nothing_needed(report))
        return
    out.write('<p class="muted">Each row once, with its latest state and the runs it has been in that state.</p>\n')
    headings = ("Line", "Key", "State", "Since run", "Last run", "HTTP", "Reason")
    out.write(f'<table id="attention-table">\n<thead><tr>{"".join(f"<th>{h}</th>" for h in headings)}</tr></thead>\n')
    out.write("<tbody>\n")
    for h in rows[:MAX_TABLE_ROWS]:
        r = h.latest
        out.write(
            f'<tr class="row" data-state="{escape(r.state)}" data-key="{escape(r.key or "")}">'
            f'<td>{r.line if r.line is not None else ""}</td><td class="mono">{escape(r.key or "(no key)")}</td>'
            f"<td>{_badge(r.state)}</td><td>{h.since_run}</td><td>{r.run_id}</td>"
            f"<td>{r.http_status or ''}</td><td>{_reason_cell(r, report.values_shown)}</td></tr>\n"
        )
    out.write("</tbody>\n</table>\n")
    _more_and_advice([h.latest for h in rows], out)


def _reason_cell(r: RowRecord, values: bool) -> str:
    """The reason, and under a held change what changed (old → new when values may be shown)."""
    reason = escape(r.error or "")
    if not r.changes:
        return reason
    return f'{reason}<br><span class="changes">What changed: {escape(changes_text(r.changes, values))}</span>'


def _nothing_needed(report: Report) -> str:
    if not sum(report.latest_counts().values()):
        return '<p class="none">No rows were recorded.</p>\n'
    return '<p class="ok">None: every row was delivered or had been delivered before.</p>\n'


def _more_and_advice(rows: list[RowRecord], out: TextIO) -> None:
    if len(rows) > MAX_TABLE_ROWS:
        out.write(f'<p class="muted">The first {MAX_TABLE_ROWS} of {len(rows)} rows; '
                  "<code>cws-pipeline report --format csv --output FILE</code> lists them all.</p>\n")  # fmt: skip
    out.write('<ul class="advice">\n')
    for state in _present(rows):
        if state in STATE_ADVICE:
            out.write(f"<li>{_badge(state)} {escape(STATE_ADVICE[state])}</li>\n")
        where = where_text(c for r in rows for c in r.changes) if state == "changed" else None
        if where:
            out.write(f"<li>Where in CorEMR: {escape(where)}</li>\n")
    out.write("</ul>\n")


def _present(rows: Iterable[RowRecord]) -> list[str]:
    """The states these rows are in, in report order."""
    seen = {r.state for r in rows}
    return [s for s in ROW_STATES if s in seen]


def _verification(runs: list[RunSummary]) -> str:
    verified = sum(r.responses_verified for r in runs)
    unverified = sum(r.responses_unverified for r in runs)
    if verified + unverified == 0:
        where = "these runs" if len(runs) > 1 else "this run"
        answers = f'<span class="none">No answers came back in {where}, so no CorEMR signature was checked</span>.'
    else:
        status = "ok" if unverified == 0 else "bad"
        answers = (f'<span class="{status}">{verified} answers carried a good CorEMR signature; {unverified} did not'
                   "</span> (checked when they arrived).")  # fmt: skip
    return (
        f'<p id="verification-status">{answers} Requests are signed with our key as'
        f" {escape(', '.join(sorted({r.record.info.access for r in runs})))}"
        f" ({escape(', '.join(sorted({r.record.info.algorithm for r in runs})))}).</p>\n"
        '<p class="muted">To prove offline that the ledger is unaltered and re-verify every stored signature, run '
        "<code>cws-pipeline audit --config CONFIG</code> (or make this report with <code>--audit</code>).</p>\n"
    )


def _run_meta(run: RunSummary) -> str:
    rec, info = run.record, run.record.info
    items = [
        ("Run", f"{rec.run_id} ({rec.status}{'' if rec.exit_code is None else f', exit {rec.exit_code}'})"),
        ("Started", rec.started_at),
        ("Finished", rec.finished_at or "not finished"),
        ("Source", f"{info.source}\nsha256 {info.source_sha256}"),
        ("Mapping", f"{info.mapping}\nsha256 {info.mapping_sha256}"),
        ("Endpoint", info.base_url + info.endpoint),
        ("Access", f"{info.access} ({info.algorithm})"),
        ("Program", f"cws-pipeline {info.program_version}"),
        ("Rows", f"{run.rows}: " + ", ".join(f"{s} {run.counts_from_entries.get(s, 0)}" for s in ROW_STATES)),
    ]
    if run.actions:
        items.append(("Delivered by", actions_text(run.actions)))
    if info.user or info.host:
        items.append(("Run by", f"{info.user or 'unknown'}@{info.host or 'unknown'}"))
    body = "".join(
        f"<dt>{escape(k)}</dt><dd{' class=mono' if k in ('Source', 'Mapping') else ''}>"
        f"{escape(v).replace(chr(10), '<br>')}</dd>"
        for k, v in items
    )
    return f'<dl class="meta run-meta" data-run="{rec.run_id}">{body}</dl>\n'
