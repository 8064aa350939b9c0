"""The local CWS server: one CorEMR API version's routes from memory, signatures checked, answers signed, faults.

A test double for the demo, the tests and the benchmarks. It uses only the protocol stage.
"""

from ._capacity import Capacity, CapacityReport
from ._server import (
    ANSWER_ALGORITHMS,
    AnswerAlgorithm,
    CWSServer,
    Fault,
    ServerCounters,
    ServerOptions,
    fetch_counters,
)

__all__ = [
    "ANSWER_ALGORITHMS",
    "AnswerAlgorithm",
    "CWSServer",
    "Capacity",
    "CapacityReport",
    "Fault",
    "ServerCounters",
    "ServerOptions",
    "fetch_counters",
]
