"""A throw-away site for `bench`: keys, a synthetic export, a mapping, a run config, and the local CWS
server in its own process (so its CPU is never counted as the client's).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from .._errors import BenchFailed
from ..simulator import Capacity
from ._local_site import SERVER_ACCESS, LocalSite, make_local_site
from ._synthetic import SAMPLE_MAPPING_TOML, write_export

__all__ = ["BenchSite", "SimulatorProcess", "make_site"]

CLIENT_ACCESS = "bench-client"
_READY = "CWS simulator listening on "


@dataclass(frozen=True)
class BenchSite(LocalSite):
    """A local site plus the synthetic export and mapping one bench works with."""

    export: Path
    mapping: Path


def make_site(directory: Path, rows: int, bits: int) -> BenchSite:
    """Generate both key pairs (BITS each), an export of ROWS rows and its mapping in DIRECTORY."""
    site = make_local_site(directory, bits, CLIENT_ACCESS)
    export = write_export(directory / f"bookings-{rows}.csv", rows)
    mapping = directory / "mapping.toml"
    mapping.write_text(SAMPLE_MAPPING_TOML, encoding="utf-8")
    return BenchSite(**vars(site), export=export, mapping=mapping)


class SimulatorProcess:
    """`cws-pipeline simulate` as a child process on a free loopback port; stopped with SIGTERM on exit."""

    def __init__(self, site: LocalSite, latency_ms: float = 0.0, capacity: Capacity | None = None) -> None:
        self._args = [
            sys.executable, "-m", "pipeline", "simulate", "--port", "0",
            "--server-key", str(site.server_key), "--client-keys", str(site.client_keyring),
            "--access", SERVER_ACCESS, "--latency-ms", repr(latency_ms),
        ]  # fmt: skip
        if capacity is not None:
            self._args += ["--capacity", str(capacity.capacity), "--service-ms", repr(capacity.service_ms)]
            self._args += ["--queue", str(capacity.waiting_room)]
        self._log = site.directory / "simulator.log"
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""

    @property
    def pid(self) -> int:
        """The server process's id."""
        assert self._proc is not None, "the simulator is not started"
        return self._proc.pid

    def start(self) -> SimulatorProcess:
        """Start the process and wait for its one 'listening' line."""
        with self._log.open("w") as log:  # a file, not a pipe: a full pipe would block the server
            self._proc = subprocess.Popen(self._args, stdout=subprocess.PIPE, stderr=log, text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.startswith(_READY):
            self.stop()
            raise BenchFailed(f"the local CWS server did not start: {self._log.read_text().strip() or line!r}")
        self.url = line[len(_READY) :].strip()
        return self

    def cpu_seconds(self) -> float:
        """User + system CPU the server process has used so far (Linux /proc; 0.0 elsewhere)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        # After the ")" that ends the command name, utime and stime are fields 12 and 13 (0-based).
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """SIGTERM the server and wait for it; SIGKILL it if it does not go within 10 s."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
        else:
            proc.communicate()

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
