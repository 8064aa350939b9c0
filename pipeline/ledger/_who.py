"""Who asks: the operating-system user and host the ledger records for every run, acceptance and resend."""

from __future__ import annotations

import getpass
import socket
from typing import NamedTuple

__all__ = ["Operator", "operator"]


class Operator(NamedTuple):
    """The operating-system user and the host a command ran as and on."""

    user: str
    host: str

    def __str__(self) -> str:
        return f"{self.user}@{self.host}"


def operator() -> Operator:
    """This process's login name and host name; "unknown" for either where the system cannot say (a bare cron
    environment with no passwd entry for the uid, say)."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "unknown"
    return Operator(user, socket.gethostname() or "unknown")
