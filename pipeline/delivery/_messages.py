"""What a server said, made safe to record and print: the status, the fields it names, and our own words.

CorEMR's answer goes into a row's reason, which the ledger keeps and `run`, `status` and `report` print.
A server (or something pretending to be one) chooses those bytes: they may quote this patient in
another spelling (JSON escapes, another date format), another patient's name, birth date or SSN, a
CR/LF that forges a line of output, or an escape sequence that rewrites a terminal. No masking can
recognise every one of those, so a server's words are never put in a reason at all: only the names of
the fields it names that the API profiles know (any other is counted as "others"). The answer itself
stays in the ledger, with the exchange that brought it; a reason an earlier version recorded with
CorEMR's words is printed with ours (`printable_reason`).

Every reason is then cut to one line, stripped of control and format characters, shortened, and has
the row's own identifying values masked as whole tokens in any spelling (see _masking).
"""

from __future__ import annotations

import json
import re
import unicodedata

from ..protocol import API_PROFILES
from ._masking import WITHHELD, PatientValues, mask_patient_values, withhold_server_tokens

__all__ = [
    "IDENTIFYING_FIELDS",
    "KNOWN_FIELDS",
    "MAX_REASON",
    "MAX_SERVER_MESSAGE",
    "WITHHELD",
    "one_line",
    "printable_reason",
    "reason_text",
    "server_message",
    "withhold_server_words",
]

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
