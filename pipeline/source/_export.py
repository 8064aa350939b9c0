"""An export's bytes, read once: a private snapshot hashed while it is copied, or the file itself held open.

A run reads the export through a `Snapshot`: one pass copies the file into an unnamed 0600 temporary
file (unlinked from the start, so nothing is left behind even after `kill -9`) while hashing it, and
every later read is of that copy. The rows delivered are exactly the bytes whose SHA-256 the run
records, whatever the jail's export job does to the file meanwhile; a file that changes while it is
being copied is refused. `validate` reads the file in place, never past the size it had when opened.

Exports in encodings whose bytes are not ASCII-transparent (UTF-16, UTF-32, EBCDIC, Shift-JIS...) are
re-encoded to UTF-8 once, into another unnamed copy, so the CSV readers only ever meet ASCII delimiters.

The copy's own check misses a writer that pauses between lines: the copy would hold a half-written file
(a name cut short, or only the rows written so far). So a run first requires the file to stay unchanged,
in size and modification time, over a settle interval (`settle_seconds` in the run configuration), from
a first look until the file is opened for the copy.
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import io
import os
import tempfile
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .._errors import SourceError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["ExportBytes", "Snapshot", "open_export", "reads_in_place", "take_snapshot", "transcoded"]

_COPY_BLOCK = 1 << 20


class _Window(io.RawIOBase):
    """Reads bytes [start, end) of an open file by position (pread), independent of any other reader."""

    def __init__(self, fd: int, start: int, end: int) -> None:
        super().__init__()
        self._fd, self._start, self._end, self._pos = fd, start, end, start

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos - self._start

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: self._start, io.SEEK_CUR: self._pos, io.SEEK_END: self._end}[whence]
        self._pos = max(self._start, base + offset)
        return self._pos - self._start

    def readinto(self, buffer: WriteableBuffer) -> int:
        target = memoryview(buffer).cast("B")
        want = min(len(target), max(0, self._end - self._pos))
        if want == 0:
            return 0
        data = os.pread(self._fd, want, self._pos)
        target[: len(data)] = data
        self._pos += len(data)
        return len(data)


class ExportBytes:
    """An export's bytes as they were when opened: any number of readers, none reading past that size."""

    def __init__(self, path: Path, file: BinaryIO, size: int, encoding: str | None = None) -> None:
        self.path = path  # the export as the user named it, for messages
        self.size = size
        self.encoding = encoding  # the encoding the bytes are in, when they were re-encoded here
        self._file = file
        self._closer = weakref.finalize(self, file.close)  # the fd is closed with this object, warning-free

    def reader(self, start: int = 0, end: int | None = None) -> BinaryIO:
        """A buffered reader of the bytes from START to END (default: all), with its own position (seek 0 = START)."""
        stop = self.size if end is None else min(end, self.size)
        window = _Window(self._file.fileno(), min(start, stop), stop)
        return io.BufferedReader(window, buffer_size=_COPY_BLOCK)

    def close(self) -> None:
        """Let the bytes go (an unnamed copy is freed by the system)."""
        self._closer()

    def __enter__(self) -> ExportBytes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Snapshot(ExportBytes):
    """A private copy of an export taken in one read, with the SHA-256 of exactly the bytes copied and
    their line breaks (about the rows, for a progress bar's ETA, counted in the same read)."""

    def __init__(self, path: Path, file: BinaryIO, size: int, sha256: str, line_breaks: int = 0) -> None:
        super().__init__(path, file, size)
        self.sha256 = sha256
        self.line_breaks = line_breaks

    def __enter__(self) -> Snapshot:
        return self


def _private_copy(path: Path, directory: Path | None) -> BinaryIO:
    """An unnamed temporary file (0600, unlinked from the start) for a copy of PATH's bytes."""
    try:
        return tempfile.TemporaryFile(dir=directory)  # the ExportBytes that holds it closes it
    except OSError as exc:
        where = directory or tempfile.gettempdir()
        raise SourceError(f"{path}: cannot make a private copy in {where} ({exc.strerror or exc}); set TMPDIR") from exc


def _write(path: Path, copy: BinaryIO, data: bytes, where: Path | str) -> None:
    """Add DATA to the private copy in WHERE (b"": flush it); SourceError saying there is no room there."""
    try:
        if data:
            copy.write(data)
        else:
            copy.flush()
    except OSError as exc:
        raise SourceError(
            f"{path}: cannot copy the bookings file to a private snapshot in {where} ({exc.strerror or exc});"
            " free space there or set TMPDIR to a disk with room"
        ) from None


def _wait_until_settled(
    path: Path, seconds: float, sleep: Callable[[float], None] = time.sleep
) -> os.stat_result | None:
    """Look at PATH, wait SECONDS and return what was seen then (None when SECONDS is 0: no settling).

    The caller compares it with the file it then opens (`_unchanged_since`), so a change in between is seen too.
    """
    if seconds <= 0:
        return None
    try:
        seen = os.stat(path)
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read the bookings file ({exc.strerror or exc})") from None
    sleep(seconds)
    return seen


def _unchanged_since(seen: os.stat_result | None, now: os.stat_result) -> bool:
    """True when the file's size and modification time are still what they were (or nothing was seen)."""
    return seen is None or (seen.st_size, seen.st_mtime_ns) == (now.st_size, now.st_mtime_ns)


def _still_changing(path: Path, seconds: float) -> SourceError:
    return SourceError(
        f"{path}: the file changed within the {seconds:g} s it must stay unchanged (settle_seconds): the export"
        " is still being written; nothing was sent: run again once the export is complete"
    )


def take_snapshot(path: Path | str, *, directory: Path | None = None, settle_seconds: float = 0.0) -> Snapshot:
    """Copy the export once into a private unnamed file while hashing it; SourceError if it changes meanwhile.

    With SETTLE_SECONDS, the file must also be unchanged over that long before the copy starts.
    """
    path = Path(path)
    seen = _wait_until_settled(path, settle_seconds)
    copy = _private_copy(path, directory)
    where = directory or tempfile.gettempdir()
    digest = hashlib.sha256()
    copied = line_breaks = 0
    try:
        with path.open("rb") as source:
            before = os.fstat(source.fileno())
            if not _unchanged_since(seen, before):
                raise _still_changing(path, settle_seconds)
            while block := source.read(_COPY_BLOCK):
                digest.update(block)
                _write(path, copy, block, where)
                copied += len(block)
                line_breaks += block.count(b"\n")
            after = os.fstat(source.fileno())
        _write(path, copy, b"", where)
    except FileNotFoundError:
        copy.close()
        raise SourceError(f"{path}: no such file") from None
    except OSError as exc:
        copy.close()
        raise SourceError(f"{path}: cannot read the bookings file ({exc.strerror or exc})") from None
    except SourceError:
        copy.close()
        raise
    if copied != before.st_size or (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        copy.close()
        raise SourceError(
            f"{path}: the file changed while it was being read (is the export still being written?);"
            " nothing was sent: run again once the export is complete"
        )
    return Snapshot(path, copy, copied, digest.hexdigest(), line_breaks)


def open_export(path: Path | str) -> ExportBytes:
    """The export itself, held open: reads stop at the size it had now, whatever is appended later."""
    path = Path(path)
    try:
        file = path.open("rb")
    except OSError as exc:
        raise SourceError(f"{path}: cannot read the bookings file ({exc.strerror or exc})") from exc
    return ExportBytes(path, file, os.fstat(file.fileno()).st_size)


@functools.cache
def reads_in_place(encoding: str) -> bool:
    """True when every byte below 0x80 of ENCODING means that ASCII character (UTF-8, Latin-1, cp1252, ...)."""
    if codecs.lookup(encoding).name in ("utf-8", "utf-8-sig", "ascii"):
        return True
    try:
        decoded = bytes(range(256)).decode(encoding, errors="replace")
    except (UnicodeError, LookupError, ValueError):
        return False
    return len(decoded) == 256 and decoded[:128] == "".join(map(chr, range(128)))


def transcoded(export: ExportBytes, encoding: str) -> ExportBytes:
    """EXPORT re-encoded from ENCODING to UTF-8 into a private unnamed copy; SourceError naming a bad line."""
    copy = _private_copy(export.path, None)
    decoder = codecs.getincrementaldecoder(encoding)()
    lines = 1  # the line the next decoded text starts on
    size = 0
    with export.reader() as raw:
        while True:
            block = raw.read(_COPY_BLOCK)
            try:
                text = decoder.decode(block, final=not block)
                data = text.encode("utf-8")
            except UnicodeDecodeError as exc:
                copy.close()
                good = exc.object[: max(exc.start, 0)]
                at = lines + codecs.decode(good, encoding, "replace").count("\n")
                raise SourceError(
                    f"{export.path}, line {at}: bytes that are not {encoding} ({exc.reason});"
                    ' set [source] encoding in the mapping (e.g. "cp1252")'
                ) from None
            except (UnicodeError, ValueError) as exc:
                copy.close()
                raise SourceError(f"{export.path}: cannot be read as {encoding} ({exc})") from None
            copy.write(data)
            size += len(data)
            lines += text.count("\n")
            if not block:
                break
    copy.flush()
    return ExportBytes(export.path, copy, size, "utf-8")
