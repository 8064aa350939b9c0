"""The mapping's regular expressions (extract, exclude, footer_match), run by RE2: linear time, whatever the cell.

Python's `re` backtracks: `^(a+)+$` on a 35-character cell takes hours. RE2 (google-re2) never
backtracks, so a pattern's cost grows with the cell's length only; what RE2 cannot express
(backreferences, lookahead and lookbehind) is refused when the mapping loads.

The package's Python wrapper costs ~10 µs a call (it maps byte offsets to characters in Python); its
compiled core costs ~1.3 µs, so cells are matched through the core as UTF-8 bytes.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

import re2

__all__ = ["UserRegex", "regex_problem"]

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print the pattern and its error to stderr; we say it in one line
# The compiled RE2 class and its match call, without the per-call Python wrapper.
_CORE: Any = importlib.import_module("re2._re2")
_UNANCHORED = _CORE.RE2.Anchor.UNANCHORED
_NO_SPAN = (-1, -1)


def regex_problem(pattern: str) -> str | None:
    """Why RE2 cannot use PATTERN, in words (None when it can)."""
    try:
        re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        return f"bad regular expression (RE2 syntax): {reason}{_hint(reason, pattern)}"
    return None


def _hint(reason: str, pattern: str) -> str:
    if re.search(r"\\[1-9]|\(\?P=", pattern):
        return " (backreferences are not supported: RE2 runs in linear time)"
    if re.search(r"perl operator: \(\?<?[=!]", reason):
        return " (lookahead and lookbehind are not supported: RE2 runs in linear time)"
    if "\\Z" in reason:
        return " (use $ or \\z for the end of the text)"
    return ""


class UserRegex:
    """A pattern from the mapping file, compiled once by RE2."""

    def __init__(self, pattern: str) -> None:
        problem = regex_problem(pattern)
        if problem is not None:
            raise ValueError(problem)
        self.pattern = pattern
        self._core = _CORE.RE2(pattern.encode("utf-8"), _OPTIONS)
        names = dict((name.decode("utf-8"), index) for name, index in self._core.NamedCapturingGroups())
        self.group = names.get("value", 0)  # the group named value, else the whole match

    def __repr__(self) -> str:
        return f"UserRegex({self.pattern!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UserRegex) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def search(self, text: str) -> bool:
        """True when the pattern matches somewhere in TEXT."""
        data = text.encode("utf-8", "surrogatepass")
        return bool(self._core.Match(_UNANCHORED, data, 0, len(data))[0] != _NO_SPAN)

    def extract(self, values: list[str]) -> list[str]:
        """For each value, the text of the group named value (or of the whole match); "" when none matches."""
        match, group = self._core.Match, self.group
        out: list[str] = []
        for value in values:
            data = value.encode("utf-8", "surrogatepass")
            spans = match(_UNANCHORED, data, 0, len(data))
            start, end = spans[group] if spans[0] != _NO_SPAN else _NO_SPAN
            out.append(data[start:end].decode("utf-8", "surrogatepass") if start >= 0 else "")
        return out

    def matches(self, values: list[str]) -> list[bool]:
        """For each value, whether the pattern matches somewhere in it."""
        match = self._core.Match
        out: list[bool] = []
        for value in values:
            data = value.encode("utf-8", "surrogatepass")
            out.append(match(_UNANCHORED, data, 0, len(data))[0] != _NO_SPAN)
        return out
