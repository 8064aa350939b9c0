"""Start-up of the command: `cws-pipeline --help` in a fresh interpreter, beside a bare `python -c pass`.

A nightly cron job, a monitoring check calling `status` every minute and a person typing `--help` all
pay the start-up before any work; the interpreter's own start-up is the floor it is compared with.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from .._errors import BenchFailed

__all__ = ["StartupFigures", "measure_startup"]

# -P: the current directory is not put on sys.path, as for the console script (a checkout there is not imported)
_HELP = ("cws-pipeline --help", [sys.executable, "-P", "-c", "from pipeline.cli import main; main()", "--help"])
_PYTHON = ("python -c pass", [sys.executable, "-P", "-c", "pass"])


@dataclass(frozen=True)
class StartupFigures:
    """The median wall time of `cws-pipeline --help` and of `python -c pass` over the same number of runs."""

    runs: int
    help_seconds: float
    python_seconds: float
    ratio: float  # help_seconds / python_seconds: how many interpreter start-ups --help costs


def measure_startup(runs: int) -> StartupFigures:
    """Run --help and `python -c pass` RUNS times each, taking turns so that a busy moment hits both alike."""
    helps, pythons = [], []
    for _ in range(runs):
        helps.append(_wall_seconds(*_HELP))
        pythons.append(_wall_seconds(*_PYTHON))
    help_seconds, python_seconds = statistics.median(helps), statistics.median(pythons)
    return StartupFigures(
        runs, round(help_seconds, 4), round(python_seconds, 4), round(help_seconds / python_seconds, 1)
    )


def _wall_seconds(name: str, command: list[str]) -> float:
    """The wall time of COMMAND in a fresh process (the console script's own work: the same interpreter)."""
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        last = (done.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
        raise BenchFailed(f"measuring start-up: {name} exited {done.returncode}: {last}")
    return seconds
