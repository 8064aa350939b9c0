"""Reading a bookings export: a CSV file as text cells, in chunks, with the physical line of every row."""

from ._csv import CsvFormat, RaggedRow, SourceChunk, SourceFile, open_source

__all__ = [
    "CsvFormat",
    "RaggedRow",
    "SourceChunk",
    "SourceFile",
    "open_source",
]
