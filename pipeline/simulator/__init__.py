"""The local CWS server: CorEMR's patient routes from memory, signatures checked, answers signed, faults.

A test double for the demo, the tests and the benchmarks. It uses only the protocol stage.
"""

from ._server import CWSServer, Fault, ServerCounters, fetch_counters

__all__ = [
    "CWSServer",
    "Fault",
    "ServerCounters",
    "fetch_counters",
]
