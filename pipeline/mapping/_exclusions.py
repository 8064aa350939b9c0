"""Row filters (`[[exclude]]`): rows that are not bookings to send, such as training or voided records.

An excluded row is counted and recorded with its reason, never sent, and never an alarm. The first
rule that matches gives the reason; a rule matches when its pattern is found in the row's cell, as
written in the export (before any field's transform).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from .._toml import TomlFile
from ._field_spec import control_character
from ._regex import UserRegex, regex_problem

if TYPE_CHECKING:  # pandas is imported in the functions that use it: loading this stage (status does) costs none
    import pandas as pd

__all__ = ["ExcludeRule", "excluded_rows", "parse_exclusions"]

_RULE_KEYS = {"column", "match", "reason"}
_MAX_REASON = 200


@dataclass(frozen=True)
class ExcludeRule:
    """Rows whose cell in COLUMN matches PATTERN are excluded for REASON."""

    column: str
    pattern: UserRegex
    reason: str


def parse_exclusions(where: TomlFile, value: object) -> tuple[ExcludeRule, ...]:
    """Check the [[exclude]] tables of a mapping file."""
    example = '[[exclude]] with column = "Status" and match = "^VOID$"'
    if not isinstance(value, list) or not value:
        raise where.error("exclude", f"expected one or more [[exclude]] tables, e.g. {example}")
    rules: list[ExcludeRule] = []
    for i, item in enumerate(value):
        base = f"exclude[{i}]"
        rule = where.table(base, item)
        where.only(base, rule, _RULE_KEYS)
        where.require(base, rule, ("column", "match"))
        column = where.string(f"{base}.column", rule["column"]).strip()
        if not column:
            raise where.error(f"{base}.column", "expected a column name from the header row")
        pattern = where.string(f"{base}.match", rule["match"])
        problem = regex_problem(pattern)
        if problem:
            raise where.error(f"{base}.match", problem)
        reason = where.string(f"{base}.reason", rule.get("reason", f"column {column!r} matches {pattern!r}"))
        if not reason.strip() or len(reason) > _MAX_REASON or control_character(reason):
            raise where.error(f"{base}.reason", f"expected one line of at most {_MAX_REASON} characters")
        rules.append(ExcludeRule(column, UserRegex(pattern), reason))
    return tuple(rules)


def excluded_rows(
    rules: tuple[ExcludeRule, ...], frame: pd.DataFrame, positions: dict[str, int]
) -> tuple[npt.NDArray[np.bool_], dict[int, str]]:
    """Which rows of FRAME the RULES exclude, and each excluded row's reason (that of the first rule matching)."""
    import pandas as pd

    n = len(frame)
    excluded = np.zeros(n, dtype=bool)
    reasons: dict[int, str] = {}
    for rule in rules:
        cells = frame[positions[rule.column]].to_numpy(dtype=object)
        distinct = pd.unique(cells)  # a status column holds a handful of values: match each once
        hits = np.asarray(rule.pattern.matches(distinct.tolist()), dtype=bool)
        if not hits.any():
            continue
        matched = hits[pd.Index(distinct).get_indexer(cells)] & ~excluded
        for i in np.flatnonzero(matched).tolist():
            reasons[i] = rule.reason
        excluded |= matched
    return excluded, reasons
