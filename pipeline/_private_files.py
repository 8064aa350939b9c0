"""Files we write that hold patient data or keys: private from the first byte, and safe to open in a spreadsheet."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["neutralise_cell", "open_private"]

# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def open_private(path: Path) -> int:
    """Open PATH for writing (created or truncated) with mode 0600 from the first byte; return the descriptor."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file that already existed
    return fd


def neutralise_cell(cell: str) -> str:
    """Prefix a cell a spreadsheet would run as a formula with an apostrophe."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell
