"""Measure `validate` on a generated export against a bare `pandas.read_csv` of the same file.

Each measurement runs in a fresh child process so its peak memory (max RSS) is its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from .._errors import BenchFailed
from ._synthetic import SAMPLE_MAPPING_TOML, write_export

__all__ = ["bench_validate"]

_VALIDATE = """
import json, resource, sys, time
from pipeline.mapping import load_mapping
from pipeline.mapping import validate_csv
mapping = load_mapping(sys.argv[2])
start = time.perf_counter()
report = validate_csv(sys.argv[1], mapping)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "rows": report.rows, "invalid": report.invalid, "peak_rss_mb": peak}))
"""

_READ_CSV = """
import json, resource, sys, time
import pandas as pd
start = time.perf_counter()
frame = pd.read_csv(sys.argv[1], dtype=str, keep_default_na=False)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "rows": len(frame), "peak_rss_mb": peak}))
"""


def _child(script: str, *args: str) -> dict[str, Any]:
    """Run a measuring script in a fresh interpreter (its own peak memory); its JSON line, or BenchFailed."""
    done = subprocess.run([sys.executable, "-c", script, *args], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise BenchFailed(f"bench: a measuring child process failed: {why}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def bench_validate(rows: int, workdir: Path, *, repeats: int = 3) -> dict[str, Any]:
    """Validate a generated ROWS-row, 12-column export in WORKDIR; return speed, peak memory and the read_csv ratio.

    Each side runs REPEATS times, alternating, and the fastest run of each counts: on a shared
    machine the slow runs measure the neighbours, not the code.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    export = workdir / f"bookings-{rows}.csv"
    if not export.exists():
        write_export(export, rows)
    mapping = workdir / "bench-mapping.toml"
    mapping.write_text(SAMPLE_MAPPING_TOML, encoding="utf-8")
    validated: list[dict[str, Any]] = []
    bare: list[dict[str, Any]] = []
    for _ in range(max(1, repeats)):
        validated.append(_child(_VALIDATE, str(export), str(mapping)))
        bare.append(_child(_READ_CSV, str(export)))
    best = min(validated, key=lambda run: float(run["seconds"]))
    best_bare = min(bare, key=lambda run: float(run["seconds"]))
    return {
        "rows": best["rows"],
        "invalid": best["invalid"],
        "repeats": len(validated),
        "seconds": round(best["seconds"], 3),
        "all_seconds": [round(run["seconds"], 3) for run in validated],
        "rows_per_second": round(best["rows"] / best["seconds"]),
        "peak_rss_mb": round(max(run["peak_rss_mb"] for run in validated), 1),
        "read_csv_seconds": round(best_bare["seconds"], 3),
        "read_csv_all_seconds": [round(run["seconds"], 3) for run in bare],
        "read_csv_peak_rss_mb": round(max(run["peak_rss_mb"] for run in bare), 1),
        "ratio_to_read_csv": round(best["seconds"] / best_bare["seconds"], 2),
        "file_mb": round(export.stat().st_size / 1e6, 1),
    }
