"""Mapping an export to CWS patient bodies through a site's declarative mapping file (TOML).

`load_mapping` reads and checks the file; `map_csv` turns each row into the exact body bytes to sign
(or its problems); `validate_csv` is the dry run.
"""

from ._mapped_rows import MappedRow, RowProblem, map_csv
from ._mapping_file import ON_CHANGE_POLICIES, Mapping, OnChange, load_mapping
from ._validate import ValidationReport, validate_csv

__all__ = [
    "ON_CHANGE_POLICIES",
    "MappedRow",
    "Mapping",
    "OnChange",
    "RowProblem",
    "ValidationReport",
    "load_mapping",
    "map_csv",
    "validate_csv",
]
