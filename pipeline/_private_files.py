"""Files we write that hold patient data or keys: private from the first byte, and safe to open in a spreadsheet.

An output file is never written through a symbolic link (a link planted at `--errors` or `--output`
would otherwise have us overwrite its target), nor into a FIFO or a device: such a path is refused in
one line and left as it is.
"""

from __future__ import annotations

import csv
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ._errors import UserInputError

if TYPE_CHECKING:
    from _csv import Writer

__all__ = ["check_output_path", "neutralise_cell", "open_private", "spreadsheet_csv"]

# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def open_private(path: Path) -> int:
    """Open PATH for writing (created, or a regular file emptied) with mode 0600 from the first byte; return the
    descriptor. A symbolic link, FIFO or device at PATH is refused (UserInputError), its target untouched."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
    except OSError:
        if os.path.islink(path):  # ELOOP from O_NOFOLLOW
            raise _symlink_refused(path) from None
        if os.path.exists(path) and not os.path.isfile(path):  # ENXIO: a FIFO no one reads
            raise _not_a_file(path) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _not_a_file(path)
        os.set_blocking(fd, True)  # O_NONBLOCK only kept the open of a FIFO from waiting for a reader
        os.ftruncate(fd, 0)
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file that already existed
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_output_path(path: Path) -> None:
    """Refuse, before any work is done, an output path that could not be written: its directory missing, or a
    symbolic link, FIFO or directory in its place."""
    if os.path.islink(path):
        raise _symlink_refused(path)
    if not path.parent.is_dir():
        raise UserInputError(f"{path}: the directory {path.parent} does not exist; create it or give another path")
    if path.exists() and not path.is_file():
        raise _not_a_file(path)
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise UserInputError(f"{path}: cannot write in {path.parent} (permission denied); give another path")


def spreadsheet_csv(out: TextIO) -> Writer:
    """The one CSV writer for files a person opens in a spreadsheet: CRLF line ends, so a cell holding a bare CR or
    LF is quoted and can never start a row of its own (callers neutralise formulas with neutralise_cell)."""
    return csv.writer(out, lineterminator="\r\n")


def neutralise_cell(cell: str) -> str:
    """Prefix a cell a spreadsheet would run as a formula with an apostrophe."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def _symlink_refused(path: Path) -> UserInputError:
    return UserInputError(
        f"{path}: is a symbolic link; not writing through it (its target is left untouched): give another path"
    )


def _not_a_file(path: Path) -> UserInputError:
    return UserInputError(f"{path}: is not a regular file (a directory, FIFO or device); give the path of a file")
