"""`bench` times the command's start-up (`cws-pipeline --help`) beside the interpreter's own (`python -c pass`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline._errors import BenchFailed
from pipeline.tools._bench_startup import measure_startup


def test_start_up_figures_are_medians_of_real_runs_and_their_ratio() -> None:
    figures = measure_startup(3)
    assert figures.runs == 3
    assert figures.help_seconds > 0 and figures.python_seconds > 0
    assert figures.ratio == pytest.approx(figures.help_seconds / figures.python_seconds, rel=0.05, abs=0.051)


def test_a_command_that_cannot_start_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "pipeline"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise RuntimeError('this copy is broken')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # the fresh interpreter finds this package first
    with pytest.raises(BenchFailed, match=r"measuring start-up: cws-pipeline --help exited 1: .*this copy is broken\Z"):
        measure_startup(1)
