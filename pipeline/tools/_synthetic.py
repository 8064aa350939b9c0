"""Synthetic jail-management bookings exports: realistic 12-column CSVs for samples, tests and benchmarks.

No real person is in them: names are drawn from short lists and combined at random with a fixed seed.
"""

from __future__ import annotations

import csv
import random
from datetime import date, datetime, timedelta
from pathlib import Path

__all__ = ["EXPORT_COLUMNS", "SAMPLE_MAPPING_TOML", "write_export"]

EXPORT_COLUMNS = (
    "Inmate ID",
    "Booking Number",
    "Booking Date",
    "Name",
    "Middle Name",
    "DOB",
    "Sex",
    "Race",
    "Height",
    "Weight",
    "Facility",
    "Housing",
)

# The mapping that reads what `write_export` writes; mappings/sample-jms.toml is the commented copy.
SAMPLE_MAPPING_TOML = """\
[source]
encoding = "utf-8"
delimiter = ","
header_line = 1

[target]
endpoint = "/ws/patients/"
key = ["external_id", "booking_no"]
datetime_format = "%Y-%m-%d %H:%M:%S.%f"
profile = "cws-patient"

[fields.external_id]
column = "Inmate ID"
transform = ["strip", "upper"]
max_length = 17

[fields.facility]
column = "Facility"
type = "integer"
transform = ["strip", "upper"]
lookup = { MAIN = 10000, ANNEX = 10001, WORK-RELEASE = 10002 }

[fields.agency]
value = 2

[fields.billing_agency]
value = 1

[fields.fname]
column = "Name"
extract = ',\\s*(?P<value>.+?)\\s*$'
transform = ["strip", "collapse_spaces", "title"]

[fields.mname]
column = "Middle Name"
transform = ["strip", "collapse_spaces", "title"]
required = false

[fields.lname]
column = "Name"
extract = '^\\s*(?P<value>[^,]+?)\\s*,'
transform = ["collapse_spaces", "title"]

[fields.dob]
column = "DOB"
type = "datetime"
formats = ["%m/%d/%Y", "%Y-%m-%d", "%m/%d/%y", "%d-%b-%Y"]
two_digit_year = "past"
not_future = true

[fields.sex]
column = "Sex"
transform = ["strip", "upper"]
lookup = { M = "M", MALE = "M", F = "F", FEMALE = "F", U = "U", UNKNOWN = "U" }
default = "U"

[fields.booking_no]
column = "Booking Number"
transform = ["strip"]
max_length = 32

[fields.booking_date]
column = "Booking Date"
type = "datetime"
formats = ["%m/%d/%Y %H:%M", "%Y-%m-%d %H:%M:%S"]
not_future = true

[fields.height]
column = "Height"
type = "integer"
transform = ["digits"]
required = false

[fields.weight]
column = "Weight"
type = "integer"
transform = ["digits"]
required = false
"""

_LAST = (
    "Garcia", "GARCÍA", "smith", "Johnson", "NGUYEN", "O'Brien", "Müller", "de la Cruz", "Peña", "Washington",
    "Brown", "Núñez", "Kowalski", "Lefèvre", "WILLIAMS", "Davis", "St. John", "Olsen", "Ramírez", "Lee",
)  # fmt: skip
_FIRST = (
    "José", "maria", "JAMES", "Zoë", "André", "Li", "Mary Ann", "robert", "Siobhán", "DeShawn",
    "Chloé", "Tomás", "linda", "KEVIN", "Renée", "Ahmed", "Björn", "Patricia", "Jean-Luc", "Ana",
)  # fmt: skip
_MIDDLE = ("", "", "", "Lee", "marie", "J", "ANN", "Ángel", "", "Thomas")
_SEX = ("M", "F", "Male", "female", "m", "F ", "U", "MALE")
_RACE = ("W", "B", "H", "A", "I", "U")
_FACILITY = ("MAIN", "Main", "ANNEX", "work-release")
_DOB_STYLES = ("%m/%d/%Y", "%Y-%m-%d", "%m/%d/%y", "%d-%b-%Y")


def _row(rng: random.Random, number: int) -> list[str]:
    last, first = rng.choice(_LAST), rng.choice(_FIRST)
    name = f"{last}, {first}" if rng.random() < 0.9 else f"{last.upper()},{first.upper()}  "
    born = date(1950, 1, 1) + timedelta(days=rng.randrange(0, 365 * 55))
    booked = datetime(2025, 1, 1, 0, 0) + timedelta(minutes=rng.randrange(0, 60 * 24 * 300))
    booked_text = booked.strftime("%m/%d/%Y %H:%M" if rng.random() < 0.8 else "%Y-%m-%d %H:%M:%S")
    return [
        f"J{number:07d}",
        f"B{booked:%y}-{number:06d}",
        booked_text,
        name,
        rng.choice(_MIDDLE),
        born.strftime(rng.choice(_DOB_STYLES)),
        rng.choice(_SEX),
        rng.choice(_RACE),
        str(rng.randrange(58, 80)),
        f"{rng.randrange(100, 320)}",
        rng.choice(_FACILITY),
        f"{rng.choice('ABCD')}-POD {rng.randrange(1, 40)}",
    ]


def write_export(path: Path, rows: int, *, seed: int = 1) -> Path:
    """Write a synthetic bookings export of ROWS data rows (plus header) to PATH, all of them valid."""
    rng = random.Random(seed)  # noqa: S311  -- reproducible fake data, not cryptography
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(EXPORT_COLUMNS)
        batch: list[list[str]] = []
        for number in range(1, rows + 1):
            batch.append(_row(rng, number))
            if len(batch) == 10_000:
                writer.writerows(batch)
                batch.clear()
        writer.writerows(batch)
    return path
