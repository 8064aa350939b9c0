"""Tools beside the pipeline: the demo, the benchmarks and the synthetic exports they run on."""

from ._bench import BenchOptions, run_bench
from ._bench_table import print_bench
from ._demo import run_demo

__all__ = [
    "BenchOptions",
    "print_bench",
    "run_bench",
    "run_demo",
]
