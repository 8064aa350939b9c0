"""Dates in cells: parse them in a mapping's formats and write them in the target format.

Zero-padded numeric formats are read by numpy and ISO 8601 targets written by numpy, a whole chunk at a
time; pandas' strptime and strftime only handle what those fast paths cannot.

Both parsing paths read numeric parts at strict widths (strptime alone is lenient: `%Y%m%d` would read
the seven digits `1985123` as 1985-12-03). `%Y` is always four digits and `%y` two; a part written next
to another number (`%Y%m%d`, `%H%M`) must have its full width; a part between separators may drop its
leading zero (`4/3/2025` for `%m/%d/%Y`).
"""

from __future__ import annotations

import functools
import re
import string
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["ISO_FORMATS", "date_format_problem", "format_datetimes", "iso_strings", "parse_dates"]

_DIRECTIVES = set("aAbBcdfHIjmMpSUwWyYzZGuVxX%")
# Numeric directives: (fewest, most) digits. %Y and %y have no short form; nor has any part next to a number.
_DIGITS = {
    "Y": (4, 4), "y": (2, 2), "G": (4, 4), "m": (1, 2), "d": (1, 2), "H": (1, 2), "I": (1, 2), "M": (1, 2),
    "S": (1, 2), "j": (1, 3), "f": (1, 6), "U": (1, 2), "W": (1, 2), "V": (1, 2), "u": (1, 1), "w": (1, 1),
}  # fmt: skip
_WORDS = {"a", "A", "b", "B", "p"}


def date_format_problem(fmt: str, *, target: bool = False) -> str | None:
    """Why FMT cannot read (or, for the TARGET, write) whole dates, in words; None when it can."""
    directives = re.findall(r"%(.?)", fmt)
    if not directives:
        return 'has no %-directives; expected e.g. "%m/%d/%Y"'
    for d in directives:
        if d not in _DIRECTIVES:
            return f"'%{d}' is not a date directive (use %Y %m %d %H %M %S %f %y %b ...)"
    twice = sorted({d for d in directives if d != "%" and directives.count(d) > 1})
    if twice:
        return f"uses %{twice[0]} more than once"
    sample = datetime(2001, 2, 3, 16, 5, 6, 7000)
    try:
        back = datetime.strptime(sample.strftime(fmt), fmt)
    except ValueError as exc:
        return f"is not a usable date format ({exc})"
    if (back.year, back.month, back.day) != (2001, 2, 3):
        return "cannot hold a whole date: it needs the year, month and day (e.g. %Y-%m-%d)"
    if ("H" in directives or "I" in directives) and back.hour != 16:
        return "gives no way to tell morning from afternoon: use %H, or %I with %p"
    if target and "y" in directives:
        return "writes a two-digit year, which CorEMR cannot place in a century: use %Y"
    if target and any(d in "cxX" for d in directives):
        return "writes what the machine's locale says; spell the format out, e.g. %Y-%m-%d %H:%M:%S"
    return None


@functools.cache
def _strict_shape(fmt: str) -> re.Pattern[str] | None:
    """What a cell in FMT may look like, numeric parts at strict widths (None: a locale format, not checked)."""
    parts: list[tuple[str, str]] = re.findall(r"%(.)|([^%]+)", fmt)
    if any(d in "cxXzZ" for d, _ in parts if d):
        return None
    pattern = ""
    for i, (directive, literal) in enumerate(parts):
        if literal:
            pattern += r"\s+".join(re.escape(piece) for piece in re.split(r"\s+", literal))
        elif directive in _WORDS:
            pattern += r"[^\W\d_]+"
        elif directive == "%":
            pattern += "%"
        else:
            fewest, most = _DIGITS[directive]
            neighbours = [parts[j][0] for j in (i - 1, i + 1) if 0 <= j < len(parts)]
            if any(n in _DIGITS for n in neighbours):
                fewest = most  # next to another number: only the full width tells where one ends
            pattern += rf"\d{{{fewest},{most}}}"
    return re.compile(pattern, re.IGNORECASE | re.ASCII)


def _strptime_dates(cells: list[str], fmt: str) -> npt.NDArray[np.datetime64]:
    """Parse CELLS with pandas' strptime, after refusing (NaT) any whose numbers are not at strict widths."""
    import pandas as pd  # here, not at the top: loading this stage (status does) loads no pandas

    result = np.full(len(cells), np.datetime64("NaT"), dtype="datetime64[us]")
    shape = _strict_shape(fmt)
    keep = np.arange(len(cells)) if shape is None else np.flatnonzero([bool(shape.fullmatch(c)) for c in cells])
    if len(keep):
        others = pd.Series([cells[i] for i in keep.tolist()], dtype=object)
        result[keep] = pd.to_datetime(others, format=fmt, errors="coerce").to_numpy(dtype="datetime64[us]")
    return result


def parse_dates(cells: list[str], fmt: str, two_digit_year: str, now: datetime) -> npt.NDArray[np.datetime64]:
    """Parse CELLS in FMT (NaT where they do not match): zero-padded numbers by numpy, the rest by pandas."""
    result = np.full(len(cells), np.datetime64("NaT"), dtype="datetime64[us]")
    fixed = _parse_fixed_width(cells, fmt)
    rest = np.arange(len(cells)) if fixed is None else np.flatnonzero(np.isnat(fixed))
    if fixed is not None:
        result[:] = fixed
        # A numeric format cannot match a cell holding other characters (say "30-Aug-1955" for
        # %m/%d/%Y): leave those NaT rather than let strptime fail on each of them.
        rest = rest[~_has_foreign_characters([cells[i] for i in rest.tolist()], fmt)]
    if len(rest):
        result[rest] = _strptime_dates([cells[i] for i in rest.tolist()], fmt)
    if "%y" in fmt and two_digit_year == "past":
        # %y reads 00-68 as 2000-2068; a year in the future is taken a century earlier.
        years = result.astype("datetime64[Y]").astype(np.int64) + 1970
        future = ~np.isnat(result) & (years > now.year)
        if future.any():
            months = result[future].astype("datetime64[M]")
            offset = result[future] - months.astype("datetime64[us]")
            result[future] = (months - np.timedelta64(1200, "M")).astype("datetime64[us]") + offset
    return result


@functools.cache
def _foreign_characters(fmt: str) -> re.Pattern[str]:
    """Characters no cell matching the numeric FMT can hold: letters and punctuation FMT's own text does not use."""
    literal = re.sub(r"%.", "", fmt)
    punctuation = set(string.punctuation) - set(literal)
    own_letters = "".join(sorted({c for c in literal if c.isalpha()}))
    letters = (f"(?![{re.escape(own_letters)}])" if own_letters else "") + r"[^\W\d_]"
    return re.compile(letters + (f"|[{re.escape(''.join(sorted(punctuation)))}]" if punctuation else ""))


@functools.cache
def _foreign_ascii(fmt: str) -> npt.NDArray[np.bool_]:
    """_foreign_characters(FMT) as a table over the 128 ASCII codes."""
    foreign = _foreign_characters(fmt)
    return np.array([foreign.search(chr(code)) is not None for code in range(128)])


def _has_foreign_characters(cells: list[str], fmt: str) -> npt.NDArray[np.bool_]:
    """Whether each cell holds a character of _foreign_characters(FMT); ASCII text by table lookup."""
    if not cells:
        return np.zeros(0, dtype=bool)
    joined = "\n".join(cells) + "\n"  # "\n" is never foreign, and closes every cell's span
    if not joined.isascii():
        foreign = _foreign_characters(fmt)
        return np.fromiter((foreign.search(c) is not None for c in cells), dtype=bool, count=len(cells))
    flags = _foreign_ascii(fmt)[np.frombuffer(joined.encode("ascii"), dtype=np.uint8)]
    ends = np.cumsum(np.fromiter(map(len, cells), dtype=np.int64, count=len(cells)) + 1)
    return np.logical_or.reduceat(flags, np.concatenate(([0], ends[:-1])))


_FIXED_WIDTH = {"Y": 4, "y": 2, "m": 2, "d": 2, "H": 2, "M": 2, "S": 2}
_LIMITS = {"m": (1, 12), "d": (1, 31), "H": (0, 23), "M": (0, 59), "S": (0, 59), "Y": (1, 9999), "y": (0, 99)}
_DAYS_IN_MONTH = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


@dataclass(frozen=True)
class _Layout:
    """A numeric format as a byte pattern, checked eight bytes at a time (the cell's UTF-8, padded with NULs).

    A cell fits when, for every 64-bit word, `word & mask == pattern` (digits 0x30-0x3F, literals exact)
    and `(word + six) & high == digits` (0x30-0x3F plus 6 stays in 0x30-0x3F only for "0"-"9"; the add
    carries between bytes only where the first test already failed).
    """

    size: int  # bytes in a matching cell
    padded: int  # size rounded up to whole words
    fields: tuple[tuple[str, int, int], ...]  # per directive: its letter, first byte, digit count
    mask: npt.NDArray[np.uint64]
    pattern: npt.NDArray[np.uint64]
    six: npt.NDArray[np.uint64]
    high: npt.NDArray[np.uint64]
    digits: npt.NDArray[np.uint64]


@functools.cache
def _fixed_layout(fmt: str) -> _Layout | None:
    """FMT's layout, or None when it has a directive other than %Y %y %m %d %H %M %S or lacks a date."""
    fields: list[tuple[str, int, int]] = []
    literals: list[tuple[int, int]] = []  # (offset, byte)
    size = 0
    for directive, literal in re.findall(r"%(.)|([^%]+)", fmt):
        if literal:
            literals.extend((size + k, byte) for k, byte in enumerate(literal.encode("utf-8")))
            size += len(literal.encode("utf-8"))
        elif directive in _FIXED_WIDTH and directive not in [f[0] for f in fields]:
            fields.append((directive, size, _FIXED_WIDTH[directive]))
            size += _FIXED_WIDTH[directive]
        else:
            return None
    letters = [f[0] for f in fields]
    if "m" not in letters or "d" not in letters or ("Y" in letters) == ("y" in letters):
        return None
    padded = -(-size // 8) * 8
    masks = {name: np.zeros(padded, dtype=np.uint8) for name in ("mask", "pattern", "six", "high", "digits")}
    for _, first, count in fields:
        for name, byte in (("mask", 0xF0), ("pattern", 0x30), ("six", 6), ("high", 0xF0), ("digits", 0x30)):
            masks[name][first : first + count] = byte
    for at, byte in literals:
        masks["mask"][at], masks["pattern"][at] = 0xFF, byte
    words = {name: array.view("<u8").astype(np.uint64) for name, array in masks.items()}
    return _Layout(size=size, padded=padded, fields=tuple(fields), **words)


def _parse_fixed_width(cells: list[str], fmt: str) -> npt.NDArray[np.datetime64] | None:
    """Vectorised parse of zero-padded numeric dates such as 04/03/2025 20:49 (NaT for any other shape).

    None when FMT has a directive other than %Y %y %m %d %H %M %S; cells this cannot read (e.g. 4/3/2025)
    are left NaT for strptime to try.
    """
    layout = _fixed_layout(fmt)
    if layout is None:
        return None
    n, padded = len(cells), layout.padded
    try:  # ASCII (nearly always): numpy writes the bytes itself
        sizes = np.fromiter(map(len, cells), dtype=np.int64, count=n)
        matrix = np.array(cells, dtype=f"S{padded}")
    except UnicodeEncodeError:
        encoded = [cell.encode("utf-8") for cell in cells]
        sizes = np.fromiter(map(len, encoded), dtype=np.int64, count=n)
        matrix = np.array(encoded, dtype=f"S{padded}")
    chars = matrix.view(np.uint8).reshape(n, padded)
    words = matrix.view("<u8").reshape(n, padded // 8)
    ok = sizes == layout.size
    for k in range(padded // 8):
        word = words[:, k]
        ok &= (word & layout.mask[k]) == layout.pattern[k]
        ok &= ((word + layout.six[k]) & layout.high[k]) == layout.digits[k]
    number: dict[str, npt.NDArray[np.int64]] = {}
    for directive, first, count in layout.fields:
        value = np.zeros(n, dtype=np.int64)
        for at in range(first, first + count):
            value = value * 10 + chars[:, at]
        value -= ord("0") * int("1" * count)
        low, high = _LIMITS[directive]
        ok &= (value >= low) & (value <= high)
        number[directive] = value
    for value in number.values():
        value *= ok  # rows that failed hold garbage that could overflow below
    year = number["Y"] if "Y" in number else np.where(number["y"] < 69, 2000, 1900) + number["y"]
    month, day = number["m"], number["d"]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    ok &= day <= _DAYS_IN_MONTH[np.maximum(month - 1, 0)] + (leap & (month == 2))  # no 02/30
    # Days since 1970-01-01 from the civil date (H. Hinnant's days_from_civil).
    y = year - (month <= 2)
    era = y // 400
    year_of_era = y - era * 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    days = era * 146_097 + year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year - 719_468
    seconds = days * 86_400
    for directive, scale in (("H", 3600), ("M", 60), ("S", 1)):
        if directive in number:
            seconds += number[directive] * scale
    stamps: npt.NDArray[np.datetime64] = (seconds * 1_000_000).view("datetime64[us]")
    stamps[~ok] = np.datetime64("NaT")
    return stamps


# Formats numpy writes itself (ISO 8601 at a unit), far faster than strftime per value.
ISO_FORMATS: dict[str, Literal["ms", "s", "D"]] = {
    "%Y-%m-%d %H:%M:%S.%f": "ms",
    "%Y-%m-%dT%H:%M:%S.%f": "ms",
    "%Y-%m-%d %H:%M:%S": "s",
    "%Y-%m-%dT%H:%M:%S": "s",
    "%Y-%m-%d": "D",
}


def format_datetimes(stamps: npt.NDArray[np.datetime64], fmt: str, *, prefix: str = "", suffix: str = "") -> list[str]:
    """Format dates in FMT, %f written as milliseconds (CWS: 2000-04-12 10:00:00.000), between PREFIX and SUFFIX."""
    unit = ISO_FORMATS.get(fmt)
    if unit is not None and len(stamps):
        return iso_strings(stamps, unit, "T" if "T" in fmt else " ", prefix=prefix, suffix=suffix)
    out: list[str] = []
    for stamp in stamps.astype("datetime64[us]").tolist():
        out.append(prefix + stamp.strftime(fmt.replace("%f", f"{stamp.microsecond // 1000:03d}")) + suffix)
    return out


def iso_strings(
    stamps: npt.NDArray[np.datetime64],
    unit: Literal["ms", "s", "D"],
    separator: str,
    *,
    prefix: str = "",
    suffix: str = "",
) -> list[str]:
    """ISO 8601 text for years 1-9999 between PREFIX and SUFFIX, written into a code-point matrix.

    4x faster than datetime_as_string, and the prefix and suffix (a JSON name and quotes) cost nothing.
    A SUFFIX must not end in NUL: numpy drops trailing NULs from the strings it returns.
    """
    ms = stamps.astype("datetime64[ms]").astype(np.int64)
    days, in_day = np.divmod(ms, 86_400_000)
    # Civil date from days since 1970-01-01 (H. Hinnant's days_from_civil, inverted).
    z = days + 719_468
    era = z // 146_097
    day_of_era = z - era * 146_097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted_month = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * shifted_month + 2) // 5 + 1
    month = np.where(shifted_month < 10, shifted_month + 3, shifted_month - 9)
    year = year_of_era + era * 400 + (month <= 2)
    if year.min() < 1 or year.max() > 9999:
        iso = np.datetime_as_string(stamps, unit=unit).tolist()
        return [prefix + t.replace("T", separator) + suffix for t in iso]
    hour, rest = np.divmod(in_day, 3_600_000)
    minute, rest = np.divmod(rest, 60_000)
    second, milli = np.divmod(rest, 1000)
    parts: list[tuple[str, npt.NDArray[np.int64] | None, int]] = [
        ("", year, 4), ("-", month, 2), ("-", day, 2),
        (separator, hour, 2), (":", minute, 2), (":", second, 2), (".", milli, 3),
    ]  # fmt: skip
    parts = parts[: {"D": 3, "s": 6, "ms": 7}[unit]]
    template = prefix + "".join(sep + "0" * digits for sep, _, digits in parts) + suffix
    width = len(template)
    chars = np.empty((len(stamps), width), dtype=np.uint32)
    chars[:] = np.frombuffer(template.encode("utf-32-le"), dtype="<u4")  # digits are added to its "0"s
    at = len(prefix)
    for sep, value, digits in parts:
        at += len(sep)
        assert value is not None
        value = value.astype(np.int32)  # int32 division is markedly faster, and these fit
        for k in range(digits - 1, -1, -1):
            value, digit = np.divmod(value, 10)
            chars[:, at + k] += digit.astype(np.uint32)
        at += digits
    written: list[str] = chars.view(f"<U{width}").ravel().tolist()
    return written
