"""Words safe to print or log: a server's words withheld, and a row's names, birth date and SSN masked.

CorEMR's answer goes into a row's reason, which the ledger keeps and `run`, `status` and `report` print.
A server (or something pretending to be one) chooses those bytes: they may quote this patient in
another spelling (JSON escapes, another date format), another patient's name, birth date or SSN, a
CR/LF that forges a line of output, or an escape sequence that rewrites a terminal. No masking can
recognise every one of those, so a server's words are never put in a reason at all: only the names of
the fields it names that the API profiles know (any other is counted as "others"). The answer itself
stays in the ledger, with the exchange that brought it; a reason an earlier version recorded with
CorEMR's words is printed with ours (`printable_reason`).

Every reason is then cut to one line, stripped of control and format characters, shortened, and has
the row's own identifying values masked as whole tokens in any spelling.

A name or a date comes back from a server, or out of a cell, in many spellings: JSON escapes
(`Zo\u00eb`), another case, compatibility forms (NFKC), accents dropped, the birth date as
05/02/2002, 2.5.2002, 20020502 or May 2, 2002. So the text and the values are compared in one
normal form, and only whole tokens are masked, never letters inside a word: a patient named "Li"
must not turn "delivered" into "de[withheld]vered" (which tells the name, and breaks our own words).

Text a server wrote is never printed as is. Where a few of its words still reach a
reason (a signer's name, a transport error), `withhold_server_tokens` also withholds every token
that looks like an SSN or a date, whoever's it is.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .protocol import API_PROFILES

__all__ = [
    "IDENTIFYING_FIELDS",
    "KNOWN_FIELDS",
    "MAX_REASON",
    "MAX_SERVER_MESSAGE",
    "WITHHELD",
    "PatientValues",
    "decode_escapes",
    "mask_patient_values",
    "one_line",
    "printable_reason",
    "reason_text",
    "server_message",
    "withhold_server_tokens",
    "withhold_server_words",
]

WITHHELD = "[withheld]"
_NAME_FIELDS = ("fname", "mname", "lname")
_MIN_NAME = 2  # a one-letter token names nobody; masking it would only spoil our words

# A run of letters (with any combining marks NFKC leaves): a token, never part of one.
_WORD = re.compile(r"(?:[^\W\d_][\u0300-\u036f]*)+")
_ESCAPES = re.compile(r"(?:\\u[0-9a-fA-F]{4})+")
_MONTH = (
    r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
# Dates with separators (2002-05-02, 05/02/2002, 2.5.2002, 02-05-02), eight digits, month names either way.
_NUMERIC_DATE = re.compile(r"(?<![\d.])(\d{1,4})([-/.])(\d{1,2})\2(\d{1,4})(?!\d|\.\d)")
_EIGHT_DIGITS = re.compile(r"(?<!\d)(\d{8})(?!\d)")
_SIX_DIGITS = re.compile(r"(?<!\d)(\d{6})(?!\d)")
_DAY_MONTH = re.compile(
    rf"(?<!\w)(\d{{1,2}})(?:st|nd|rd|th)?[ .-]*{_MONTH}(?!\w)[ ,.-]*(\d{{4}}|\d{{2}})(?!\d)", re.IGNORECASE
)
_MONTH_DAY = re.compile(
    rf"(?<!\w){_MONTH}(?!\w)[ .-]*(\d{{1,2}})(?:st|nd|rd|th)?(?!\d)[ ,.-]*(\d{{4}}|\d{{2}})(?!\d)", re.IGNORECASE
)
_SSN_LIKE = re.compile(r"(?<![\d-])(?:\d{3}-\d{2}-\d{4}|\d{3} \d{2} \d{4}|\d{9})(?![\d-])")
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")

_Day = tuple[int, int, int]  # year (four digits, or two when written so), month, day
_Reading = tuple[_Day, int]  # a day and how many digits its year was written with


def decode_escapes(text: str) -> str:
    """TEXT with JSON `\\uXXXX` escapes decoded (surrogate pairs joined; a lone surrogate becomes U+FFFD)."""

    def decode(match: re.Match[str]) -> str:
        units = bytes.fromhex(match.group().replace("\\u", ""))
        return units.decode("utf-16-be", "replace")

    return _ESCAPES.sub(decode, text) if "\\u" in text else text


def _normal(text: str) -> str:
    """TEXT as it is compared and printed: escapes decoded, Unicode NFKC."""
    return unicodedata.normalize("NFKC", decode_escapes(text))


@functools.lru_cache(maxsize=4096)  # a reason's words are mostly ours, the same in every row
def _fold(token: str) -> str:
    """A token's comparison form: case folded, accents dropped ("ZOË" and "zoe" are one name)."""
    bare = "".join(ch for ch in unicodedata.normalize("NFKD", token) if not unicodedata.combining(ch))
    return unicodedata.normalize("NFKC", bare.casefold())


@dataclass(frozen=True)
class PatientValues:
    """A row's identifying values in the forms they are compared in: name tokens, birth date, SSN digits."""

    names: frozenset[str] = frozenset()  # folded name tokens of 2 letters or more, and neighbours run together
    birth_date: _Day | None = None
    literals: tuple[str, ...] = ()  # folded values that could not be read otherwise (a dob that is not a date)
    ssn_digits: str | None = None

    @classmethod
    def of(cls, row_body: bytes | None) -> PatientValues:
        """The identifying values of a row's JSON body (none when it is not a JSON object)."""
        try:
            data = json.loads(row_body or b"")
        except ValueError:
            return cls()
        if not isinstance(data, dict):
            return cls()
        names: set[str] = set()
        literals: list[str] = []
        for field in _NAME_FIELDS:
            value = data.get(field)
            if isinstance(value, str):
                tokens = [_fold(t) for t in _WORD.findall(_normal(value))]
                names.update(t for t in tokens if len(t) >= _MIN_NAME)
                # "Mary-Jane" written "MaryJane", "O'Brien" as "OBrien"
                names.update("".join(tokens[i:j]) for i in range(len(tokens)) for j in range(i + 2, len(tokens) + 1))
        birth_date = None
        dob = data.get("dob")
        if isinstance(dob, str | int) and not isinstance(dob, bool):
            match = _ISO_DATE.match(str(dob).strip())
            if match:
                year, month, day = (int(part) for part in match.groups())
                birth_date = (year, month, day)
            elif len(str(dob).strip()) >= _MIN_NAME:
                literals.append(_fold(_normal(str(dob).strip())))
        ssn = data.get("ssn")
        digits = re.sub(r"\D", "", str(ssn)) if isinstance(ssn, str | int) and not isinstance(ssn, bool) else ""
        if isinstance(ssn, str) and len(digits) != 9 and len(ssn.strip()) >= _MIN_NAME:
            literals.append(_fold(_normal(ssn.strip())))
        return cls(frozenset(names), birth_date, tuple(literals), digits if len(digits) == 9 else None)

    @property
    def empty(self) -> bool:
        """True when there is nothing to mask."""
        return not (self.names or self.birth_date or self.literals or self.ssn_digits)


def mask_patient_values(text: str, values: PatientValues) -> str:
    """TEXT (escapes decoded, NFKC) with every whole token that spells one of VALUES replaced by WITHHELD."""
    text = _normal(text)
    if values.empty:
        return text
    for literal in values.literals:
        text = re.sub(rf"(?<!\w){re.escape(literal)}(?!\w)", WITHHELD, text, flags=re.IGNORECASE)
    if values.birth_date is not None:
        born = values.birth_date
        text = _substitute_dates(text, lambda readings: any(_same_day(r, born) for r in readings), with_six=True)
    if values.ssn_digits is not None:
        ssn = values.ssn_digits
        text = _SSN_LIKE.sub(lambda m: WITHHELD if re.sub(r"\D", "", m.group()) == ssn else m.group(), text)
    if values.names:
        text = _WORD.sub(lambda m: WITHHELD if _fold(m.group()) in values.names else m.group(), text)
    return text


def withhold_server_tokens(text: str) -> str:
    """TEXT (escapes decoded, NFKC) with every token that looks like an SSN or a date withheld, whoever's it is."""
    text = _substitute_dates(_normal(text), lambda readings: any(_plausible(r) for r in readings), with_six=False)
    return _SSN_LIKE.sub(WITHHELD, text)


def _substitute_dates(text: str, masked: Callable[[list[_Reading]], bool], *, with_six: bool) -> str:
    """TEXT with each date-like token whose readings MASKED accepts replaced by WITHHELD."""
    patterns: list[tuple[re.Pattern[str], Callable[[re.Match[str]], Iterator[_Reading]]]] = [
        (_DAY_MONTH, _day_month_readings),
        (_MONTH_DAY, _month_day_readings),
        (_NUMERIC_DATE, _numeric_readings),
        (_EIGHT_DIGITS, _eight_digit_readings),
    ]
    if with_six:
        patterns.append((_SIX_DIGITS, _six_digit_readings))
    for pattern, readings in patterns:
        text = pattern.sub(_replacer(readings, masked), text)
    return text


def _replacer(
    readings: Callable[[re.Match[str]], Iterator[_Reading]], masked: Callable[[list[_Reading]], bool]
) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        return WITHHELD if masked(list(readings(match))) else match.group()

    return replace


def _numeric_readings(m: re.Match[str]) -> Iterator[_Reading]:
    a, _, b, c = m.groups()
    if len(a) == 4 and len(c) <= 2:  # 2002-05-02, and the rare 2002-02-05
        yield (int(a), int(b), int(c)), 4
        yield (int(a), int(c), int(b)), 4
    elif len(a) <= 2 and len(c) in (2, 4):  # 05/02/2002 (US), 02.05.2002 (European), 05/02/02
        yield (int(c), int(a), int(b)), len(c)
        yield (int(c), int(b), int(a)), len(c)
        if len(a) == 2 and len(c) == 2:  # 02-05-02 read year first
            yield (int(a), int(b), int(c)), 2


def _eight_digit_readings(m: re.Match[str]) -> Iterator[_Reading]:
    s = m.group()
    yield (int(s[:4]), int(s[4:6]), int(s[6:])), 4  # YYYYMMDD
    yield (int(s[4:]), int(s[:2]), int(s[2:4])), 4  # MMDDYYYY
    yield (int(s[4:]), int(s[2:4]), int(s[:2])), 4  # DDMMYYYY


def _six_digit_readings(m: re.Match[str]) -> Iterator[_Reading]:
    s = m.group()
    yield (int(s[:2]), int(s[2:4]), int(s[4:])), 2  # YYMMDD
    yield (int(s[4:]), int(s[:2]), int(s[2:4])), 2  # MMDDYY
    yield (int(s[4:]), int(s[2:4]), int(s[:2])), 2  # DDMMYY


def _month_number(name: str) -> int:
    return _MONTHS.index(name[:3].lower()) + 1


def _day_month_readings(m: re.Match[str]) -> Iterator[_Reading]:
    day, month, year = m.groups()
    yield (int(year), _month_number(month), int(day)), len(year)


def _month_day_readings(m: re.Match[str]) -> Iterator[_Reading]:
    month, day, year = m.groups()
    yield (int(year), _month_number(month), int(day)), len(year)


def _same_day(reading: _Reading, born: _Day) -> bool:
    (year, month, day), digits = reading
    return (month, day) == born[1:] and year == (born[0] if digits == 4 else born[0] % 100)


def _plausible(reading: _Reading) -> bool:
    (year, month, day), digits = reading
    return 1 <= month <= 12 and 1 <= day <= 31 and (digits == 2 or 1800 <= year <= 2199)


# -- a server's words --------------------------------------------------------------------------------

IDENTIFYING_FIELDS = ("fname", "mname", "lname", "dob", "ssn")  # body fields never to print back
# The field names a server's answer may have printed back: those some API version knows.
KNOWN_FIELDS = frozenset(
    name for profile in API_PROFILES.values() for name in (*(f.name for f in profile.fields), *profile.renamed)
)
MAX_SERVER_MESSAGE = 200  # characters of what a reason says of a server's answer
MAX_REASON = 500  # characters of a whole reason
NO_MESSAGE = "CorEMR's answer has no message"
KEPT_IN_LEDGER = "CorEMR's words are kept in the ledger, not printed"
_NAMED = "CorEMR named fields {}; its words are kept in the ledger, not printed"
_SPACES = re.compile(r"\s+")
# A reason an earlier version recorded with CorEMR's own words: "HTTP 400: <its words>", "lookup answered HTTP 403:
# <its words>", each also behind any "rejected earlier" prefixes. The words are replaced by ours when printed.
_OLD_SERVER_WORDS = re.compile(
    r"((?:rejected earlier with the same body \(run \d+\): )*(?:lookup answered )?HTTP \d{3}: )"
    r"(?!CorEMR named fields |CorEMR's words are kept in the ledger|CorEMR's answer has no message)(.+)",
    re.DOTALL,
)
# Words a server chose that still reach a reason (a signer's name, a transport error's text) follow these.
_SERVER_WORDS = re.compile(
    r"unknown signer: |malformed Authorization header: |algorithm not accepted: "
    r"|\b[A-Z][A-Za-z]*(?:Error|Timeout|TooLarge): "
)


def one_line(text: str, limit: int) -> str:
    """TEXT with line breaks and tabs made spaces, other control and format characters removed, cut to LIMIT."""
    if text.isprintable():  # the usual case: no control, format or separator character but the space
        line = _SPACES.sub(" ", text).strip()
        return line if len(line) <= limit else line[: limit - 1] + "…"
    kept = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch.isspace() or category in ("Zl", "Zp"):
            kept.append(" ")
        elif category[0] != "C":  # Cc controls, Cf format (bidi overrides), Cs, Co, Cn
            kept.append(ch)
    line = _SPACES.sub(" ", "".join(kept)).strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


def server_message(body: bytes | None) -> str:
    """What a reason says of CorEMR's error answer: the known fields it names, in our words; never its own words."""
    try:
        data = json.loads(body or b"null")
    except ValueError:
        data = "not JSON"
    if not data:
        return NO_MESSAGE
    names = _field_names(data.get("fields") if isinstance(data, dict) else None)
    if not names:
        return KEPT_IN_LEDGER
    known = [name for name in dict.fromkeys(names) if name in KNOWN_FIELDS]
    if not known:
        return _NAMED.format("the API profiles do not know")
    others = " (and others)" if len(known) < len(set(names)) else ""
    return one_line(_NAMED.format(", ".join(known) + others), MAX_SERVER_MESSAGE)


def _field_names(fields: object) -> list[str]:
    """The field names of an error's `fields`: an object's keys, or a list of names or of {"field": name} objects."""
    if isinstance(fields, dict):
        return [str(name) for name in fields]
    if not isinstance(fields, list):
        return []
    names = []
    for item in fields:
        name = item.get("field", item.get("name")) if isinstance(item, dict) else item
        names.append(name if isinstance(name, str) else "?")
    return names


def printable_reason(reason: str) -> str:
    """A recorded reason as it is printed: CorEMR's own words, where an earlier version recorded them, replaced."""
    old = _OLD_SERVER_WORDS.fullmatch(reason)
    return reason if old is None else old.group(1) + KEPT_IN_LEDGER


def reason_text(text: str, row_body: bytes | None = None) -> str:
    """A reason safe to record and print: one line, short, the row's identifying values masked as whole tokens
    in any spelling, and SSN- or date-like tokens withheld from the words a server chose."""
    line = mask_patient_values(printable_reason(one_line(text, 10 * MAX_REASON)), PatientValues.of(row_body))
    return one_line(withhold_server_words(line), MAX_REASON)


def withhold_server_words(text: str) -> str:
    """TEXT with every SSN- or date-like token withheld from the words a server chose that follow our own (a
    signer's name after "unknown signer: ", a transport error's text after "ReadError: ")."""
    marker = _SERVER_WORDS.search(text)
    return text if marker is None else text[: marker.end()] + withhold_server_tokens(text[marker.end() :])
