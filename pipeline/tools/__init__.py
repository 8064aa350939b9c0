"""Tools beside the pipeline: the demo, the benchmarks and the synthetic exports they run on."""

from ._bench import BenchOptions, run_bench
from ._bench_bulk import BulkOptions, bench_bulk
from ._bench_table import print_bench, print_bulk
from ._demo import run_demo

__all__ = [
    "BenchOptions",
    "BulkOptions",
    "bench_bulk",
    "print_bench",
    "print_bulk",
    "run_bench",
    "run_demo",
]
