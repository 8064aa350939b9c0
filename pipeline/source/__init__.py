"""Reading a bookings export: its bytes once (a snapshot), then a CSV as text cells in chunks, with lines."""

from ._csv import CsvFormat, RaggedRow, SourceChunk, SourceFile, open_source
from ._export import ExportBytes, Snapshot, take_snapshot

__all__ = [
    "CsvFormat",
    "ExportBytes",
    "RaggedRow",
    "Snapshot",
    "SourceChunk",
    "SourceFile",
    "open_source",
    "take_snapshot",
]
