"""Dates in cells: parse them in a mapping's formats and write them in the target format.

Zero-padded numeric formats are read by numpy and ISO 8601 targets written by numpy, a whole chunk at a
time; strptime and strftime only handle what those fast paths cannot.
"""

from __future__ import annotations

import functools
import re
import string
from datetime import datetime
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["ISO_FORMATS", "format_datetimes", "iso_strings", "parse_dates"]


def parse_dates(cells: list[str], fmt: str, two_digit_year: str, now: datetime) -> npt.NDArray[np.datetime64]:
    """Parse CELLS in FMT (NaT where they do not match): zero-padded numbers by numpy, the rest by pandas."""
    result = np.full(len(cells), np.datetime64("NaT"), dtype="datetime64[us]")
    fixed = _parse_fixed_width(cells, fmt)
    rest = np.arange(len(cells)) if fixed is None else np.flatnonzero(np.isnat(fixed))
    if fixed is not None:
        result[:] = fixed
        # A numeric format cannot match a cell holding other characters (say "30-Aug-1955" for
        # %m/%d/%Y): leave those NaT rather than let strptime fail on each of them.
        foreign = _foreign_characters(fmt)
        rest = np.asarray([i for i in rest.tolist() if not foreign.search(cells[i])], dtype=np.intp)
    if len(rest):
        others = pd.Series([cells[i] for i in rest.tolist()], dtype=object)
        result[rest] = pd.to_datetime(others, format=fmt, errors="coerce").to_numpy(dtype="datetime64[us]")
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
    """Characters no cell matching the numeric FMT can hold: letters, and punctuation FMT does not use."""
    punctuation = set(string.punctuation) - set(re.sub(r"%.", "", fmt))
    return re.compile(r"[^\W\d_]" + (f"|[{re.escape(''.join(sorted(punctuation)))}]" if punctuation else ""))


_FIXED_WIDTH = {"Y": 4, "y": 2, "m": 2, "d": 2, "H": 2, "M": 2, "S": 2}
_LIMITS = {"m": (1, 12), "d": (1, 31), "H": (0, 23), "M": (0, 59), "S": (0, 59), "Y": (1, 9999), "y": (0, 99)}


def _parse_fixed_width(cells: list[str], fmt: str) -> npt.NDArray[np.datetime64] | None:
    """Vectorised parse of zero-padded numeric dates such as 04/03/2025 20:49 (NaT for any other shape).

    None when FMT has a directive other than %Y %y %m %d %H %M %S; cells this cannot read (e.g. 4/3/2025)
    are left NaT for strptime to try.
    """
    layout: dict[str, int] = {}
    literals: list[tuple[int, str]] = []
    width = 0
    for directive, literal in re.findall(r"%(.)|([^%]+)", fmt):
        if literal:
            literals.extend((width + k, ch) for k, ch in enumerate(literal))
            width += len(literal)
        elif directive in _FIXED_WIDTH and directive not in layout:
            layout[directive] = width
            width += _FIXED_WIDTH[directive]
        else:
            return None
    if "m" not in layout or "d" not in layout or ("Y" in layout) == ("y" in layout):
        return None
    n = len(cells)
    ok = np.fromiter(map(len, cells), dtype=np.int64, count=n) == width
    chars = np.array(cells, dtype=f"<U{width}").view(np.uint32).reshape(n, width)
    for at, ch in literals:
        ok &= chars[:, at] == ord(ch)
    numbers: dict[str, npt.NDArray[np.int64]] = {}
    for directive, at in layout.items():
        digits = chars[:, at : at + _FIXED_WIDTH[directive]] - np.uint32(ord("0"))  # below "0" wraps to huge
        ok &= (digits <= 9).all(axis=1)
        value = np.zeros(n, dtype=np.int64)
        for k in range(digits.shape[1]):
            value = value * 10 + digits[:, k]
        low, high = _LIMITS[directive]
        ok &= (value >= low) & (value <= high)
        numbers[directive] = value
    year = numbers["Y"] if "Y" in numbers else np.where(numbers["y"] < 69, 2000, 1900) + numbers["y"]
    months = np.where(ok, (year - 1970) * 12 + numbers["m"] - 1, 0).astype("datetime64[M]")
    days = months.astype("datetime64[D]") + np.where(ok, numbers["d"] - 1, 0)
    ok &= days.astype("datetime64[M]") == months  # 02/30 rolls into March: not a date
    stamps = days.astype("datetime64[us]")
    for directive, unit in (("H", "h"), ("M", "m"), ("S", "s")):
        if directive in numbers:
            stamps = stamps + numbers[directive].astype(f"timedelta64[{unit}]")
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


def format_datetimes(stamps: npt.NDArray[np.datetime64], fmt: str) -> list[str]:
    """Format dates in FMT, %f written as milliseconds (CWS: 2000-04-12 10:00:00.000)."""
    unit = ISO_FORMATS.get(fmt)
    if unit is not None and len(stamps):
        return iso_strings(stamps, unit, "T" if "T" in fmt else " ")
    out: list[str] = []
    for stamp in stamps.astype("datetime64[us]").tolist():
        out.append(stamp.strftime(fmt.replace("%f", f"{stamp.microsecond // 1000:03d}")))
    return out


def iso_strings(stamps: npt.NDArray[np.datetime64], unit: Literal["ms", "s", "D"], separator: str) -> list[str]:
    """ISO 8601 text for years 1-9999, written digit by digit into a code-point matrix (4x datetime_as_string)."""
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
        return [t.replace("T", separator) for t in iso]
    hour, rest = np.divmod(in_day, 3_600_000)
    minute, rest = np.divmod(rest, 60_000)
    second, milli = np.divmod(rest, 1000)
    parts: list[tuple[str, npt.NDArray[np.int64] | None, int]] = [
        ("", year, 4), ("-", month, 2), ("-", day, 2),
        (separator, hour, 2), (":", minute, 2), (":", second, 2), (".", milli, 3),
    ]  # fmt: skip
    parts = parts[: {"D": 3, "s": 6, "ms": 7}[unit]]
    width = sum(len(sep) + digits for sep, _, digits in parts)
    chars = np.empty((len(stamps), width), dtype=np.uint32)
    at = 0
    for sep, value, digits in parts:
        if sep:
            chars[:, at] = ord(sep)
            at += 1
        assert value is not None
        for k in range(digits - 1, -1, -1):
            value, digit = np.divmod(value, 10)
            chars[:, at + k] = digit + ord("0")
        at += digits
    written: list[str] = chars.view(f"<U{width}").ravel().tolist()
    return written
