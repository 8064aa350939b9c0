"""Benchmark of reporting: build a synthetic ledger of N delivered-or-not rows, then time each report format.

The ledger is written through the Ledger API (no HTTP, no signing: the headers are fixed strings, which
reports never verify), with the entries a real run writes per row: sending, attempt and state; then a
second run of the same rows, the delivered ones listed as skipped (skipped_rows entries) as a re-run does.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..ledger import (
    ROW_STATES,
    Entry,
    Ledger,
    LedgerWrite,
    RunInfo,
    SkippedRow,
    StatusUpdate,
    sha256_hex,
    skipped_rows_entries,
)
from ..review import gather_report, open_private_text, select_runs, write_csv, write_html, write_json, write_text

__all__ = ["bench_report", "build_synthetic_ledger"]

_BATCH = 5000
_SIGNATURE = "A" * 342 + "=="  # the length of a base64 RSA-2048 signature


def build_synthetic_ledger(path: Path, rows: int) -> tuple[int, int]:
    """Write a ledger of `rows` rows (1 in 20 rejected) and a re-run of them at path; return both run ids."""
    info = RunInfo("bookings.csv", "0" * 64, "mapping.toml", "0" * 64, "https://coremr.example.org",
                   "/ws/patients/", "county-jms", "CWS-SHA256", "bench")  # fmt: skip
    request_auth = f"CWS-SHA256 Access=county-jms, Signature={_SIGNATURE}"
    response_auth = f"CWS-SHA256 Access=coremr, Signature={_SIGNATURE}"
    counts: dict[str, int] = dict.fromkeys(ROW_STATES, 0)
    skipped: list[SkippedRow] = []
    with Ledger.open(path) as ledger:
        run_id = ledger.begin_run(info, 0)
        for start in range(0, rows, _BATCH):
            entries: list[Entry] = []
            bodies: list[tuple[str, bytes]] = []
            updates: list[StatusUpdate] = []
            for i in range(start, min(start + _BATCH, rows)):
                line, key, ext = i + 2, f"P{i:07d}/B{i:07d}", f"P{i:07d}"
                cells = {"Inmate ID": ext, "Booking": f"B{i:07d}", "First": f"First{i}", "Last": f"Last{i}",
                         "DOB": "1970-01-01", "Sex": "F", "Booked": "2026-11-28 22:15"}  # fmt: skip
                request = json.dumps({"external_id": ext, "fname": f"First{i}", "lname": f"Last{i}"}).encode()
                rejected = i % 20 == 0
                status = 409 if rejected else 201
                response = b'{"error": "already exists"}' if rejected else json.dumps({"id": i}).encode()
                cells_bytes = json.dumps(cells).encode()
                req_sha, resp_sha, cells_sha = sha256_hex(request), sha256_hex(response), sha256_hex(cells_bytes)
                bodies += [(req_sha, request), (resp_sha, response), (cells_sha, cells_bytes)]
                exchange = {"method": "POST", "url": "https://coremr.example.org/ws/patients/", "http_status": status,
                            "request_sha256": req_sha, "request_authorization": request_auth,
                            "response_sha256": resp_sha, "response_authorization": response_auth,
                            "response_signer": "coremr", "verification": "ok"}  # fmt: skip
                state = "rejected" if rejected else "delivered"
                counts[state] += 1
                entries += [
                    Entry(run_id, "sending", line=line, key=key, external_id=ext, attempt=1, method="POST",
                          request_sha256=req_sha),
                    Entry(run_id, "attempt", line=line, key=key, external_id=ext, attempt=1, **exchange),  # type: ignore[arg-type]
                    Entry(run_id, "state", line=line, key=key, external_id=ext, attempt=1, state=state,
                          cells_sha256=cells_sha, error="HTTP 409: already exists" if rejected else None,
                          **exchange),  # type: ignore[arg-type]
                ]  # fmt: skip
                updates.append(StatusUpdate(key, ext, state, req_sha, run_id, line, delivered=not rejected))
                if not rejected:
                    skipped.append(SkippedRow(line, key, ext, req_sha, cells_sha))
            ledger.append(LedgerWrite(entries, bodies, updates))
        ledger.finish_run(run_id, counts, "finished", 1)
        rerun_id = ledger.begin_run(info, 0)
        ledger.append(
            LedgerWrite(skipped_rows_entries(rerun_id, skipped))
        )  # the rejected rows' states are left out here
        ledger.finish_run(rerun_id, {**dict.fromkeys(ROW_STATES, 0), "skipped": len(skipped)}, "finished", 0)
    return run_id, rerun_id


def bench_report(rows: int, workdir: Path) -> dict[str, float]:
    """Build a synthetic ledger of `rows` rows in workdir and time each report format (seconds)."""
    workdir.mkdir(parents=True, exist_ok=True)
    ledger_path = workdir / "bench-ledger.sqlite"
    for stale in workdir.glob("bench-ledger.sqlite*"):
        stale.unlink()
    started = time.perf_counter()
    first, rerun = build_synthetic_ledger(ledger_path, rows)
    figures: dict[str, float] = {"rows": float(rows), "build_s": time.perf_counter() - started}
    writers = {"text": write_text, "json": write_json, "csv": write_csv, "html": write_html}
    for run_id, suffix in ((first, ""), (rerun, "_rerun")):
        for fmt, write in writers.items():
            started = time.perf_counter()
            with Ledger.open_read_only(ledger_path) as ledger:
                report = gather_report(ledger, select_runs(ledger, run_id), with_cells=fmt == "csv")
            with open_private_text(workdir / f"bench-report{suffix}.{fmt}") as out:
                write(report, out)
            figures[f"{fmt}{suffix}_s"] = time.perf_counter() - started
    return figures
