"""Reading a TOML settings file (a run config or a mapping) with one-line errors naming the file and key path.

Both loaders check their files with the same reader, so every refusal reads the same way:
`cws.toml: timeout: expected a finite number of seconds, got nan`.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from ._errors import UserInputError

_Choice = TypeVar("_Choice", bound=str)  # a Literal of settings values, e.g. OnChange

__all__ = ["TomlFile", "kind_of"]


def kind_of(value: object) -> str:
    """How a TOML value reads in a message: 'a string', 'an integer', 'a table', ..."""
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class TomlFile:
    """A parsed TOML file and the error type its problems raise (ConfigError, MappingError, ...)."""

    path: Path
    data: dict[str, Any]
    error_type: type[UserInputError]

    @classmethod
    def parse(cls, data: bytes, path: Path, error_type: type[UserInputError], what: str) -> TomlFile:
        """Decode and parse the bytes of WHAT ("config file", "mapping file"), or raise error_type in one line."""
        try:
            doc = tomllib.loads(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise error_type(f"{path}: a {what} must be UTF-8 ({exc.reason} at byte {exc.start})") from None
        except tomllib.TOMLDecodeError as exc:
            raise error_type(f"{path}: not valid TOML: {exc}") from None
        return cls(path, doc, error_type)

    @classmethod
    def read(cls, path: Path, error_type: type[UserInputError], what: str) -> tuple[TomlFile, bytes]:
        """Read and parse the file at PATH; also return its bytes (for hashing)."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise error_type(f"{path}: no such {what}") from None
        except OSError as exc:
            raise error_type(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
        return cls.parse(data, path, error_type, what), data

    def error(self, key_path: str, problem: str) -> UserInputError:
        """The one-line error for a problem at KEY_PATH ('' for the file as a whole)."""
        return self.error_type(f"{self.path}: {key_path}: {problem}" if key_path else f"{self.path}: {problem}")

    def table(self, key_path: str, value: object) -> dict[str, Any]:
        """VALUE as a table, or an error saying what it is instead."""
        if not isinstance(value, dict):
            raise self.error(key_path, f"expected a table ([{key_path}]), got {kind_of(value)}")
        return cast(dict[str, Any], value)

    def only(self, key_path: str, table: dict[str, Any], allowed: Iterable[str]) -> None:
        """Refuse any key of TABLE not in ALLOWED, naming the ones that are."""
        known = set(allowed)
        for key in table:
            if key not in known:
                where = f"{key_path}.{key}" if key_path else key
                raise self.error(where, f"unknown key; expected one of {', '.join(sorted(known))}")

    def require(self, key_path: str, table: dict[str, Any], required: Iterable[str]) -> None:
        """Refuse a table missing any of the REQUIRED keys."""
        for key in required:
            if key not in table:
                raise self.error(f"{key_path}.{key}" if key_path else key, "required key is missing")

    def string(self, key_path: str, value: object) -> str:
        """VALUE as a string."""
        if not isinstance(value, str):
            raise self.error(key_path, f"expected a string, got {kind_of(value)}")
        return value

    def choice(self, key_path: str, value: object, choices: tuple[_Choice, ...], why: str) -> _Choice:
        """VALUE as one of CHOICES (a Literal's values); WHY says, in the refusal, what the setting decides."""
        text = self.string(key_path, value)
        chosen = next((c for c in choices if c == text), None)
        if chosen is None:
            raise self.error(key_path, f"{text!r} is not one of {', '.join(choices)} ({why})")
        return chosen

    def boolean(self, key_path: str, value: object) -> bool:
        """VALUE as true or false."""
        if not isinstance(value, bool):
            raise self.error(key_path, f"expected true or false, got {kind_of(value)}")
        return value

    def integer(self, key_path: str, value: object, *, minimum: int | None = None, maximum: int | None = None) -> int:
        """VALUE as an integer within [minimum, maximum]."""
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(key_path, f"expected an integer, got {kind_of(value)}")
        if minimum is not None and value < minimum:
            raise self.error(key_path, f"must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise self.error(key_path, f"must be at most {maximum}")
        return value

    def number(
        self,
        key_path: str,
        value: object,
        *,
        positive: bool = False,
        unit: str = "",
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        """VALUE as a finite number (0 or more; above 0 when positive) within [minimum, maximum], its unit named."""
        what = f"a {'positive' if positive else 'non-negative'} number" + (f" of {unit}" if unit else "")
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.error(key_path, f"expected {what}, got {kind_of(value)}")
        try:
            number = float(value)
        except OverflowError:  # an integer too large for a float
            number = math.inf
        shown = f"{number:.6g}" if math.isfinite(number) or isinstance(value, float) else "an integer too large"
        if not math.isfinite(number) or number < 0 or (positive and number == 0):
            raise self.error(key_path, f"expected {what}, got {shown}")
        in_unit = f" {unit}" if unit else ""
        if minimum is not None and number < minimum:
            raise self.error(key_path, f"must be at least {minimum:g}{in_unit}, got {shown}")
        if maximum is not None and number > maximum:
            raise self.error(key_path, f"must be at most {maximum:g}{in_unit}, got {shown}")
        return number

    def strings(self, key_path: str, value: object, *, example: str) -> list[str]:
        """VALUE as a non-empty list of strings."""
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise self.error(key_path, f"expected a non-empty list of strings, e.g. {example}")
        return cast(list[str], value)
