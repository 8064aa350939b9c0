"""Reading a bookings export: its bytes once (a snapshot), then a CSV as text cells in chunks, with lines."""

from ._csv import (
    EXTRA_CELLS_CHOICES,
    MISSING_CELLS_CHOICES,
    CsvFormat,
    ExtraCells,
    MissingCells,
    RaggedRow,
    SourceChunk,
    SourceFile,
    open_source,
)
from ._export import ExportBytes, Snapshot, take_snapshot

__all__ = [
    "EXTRA_CELLS_CHOICES",
    "MISSING_CELLS_CHOICES",
    "CsvFormat",
    "ExportBytes",
    "ExtraCells",
    "MissingCells",
    "RaggedRow",
    "Snapshot",
    "SourceChunk",
    "SourceFile",
    "open_source",
    "take_snapshot",
]
