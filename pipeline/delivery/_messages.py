"""What a server said, made safe to record and print: one line, no control characters, short, no patient values.

CorEMR's error text goes into a row's reason, which the ledger keeps and `run` and `report` print.
A server (or something pretending to be one) chooses those bytes: a CR/LF in them could forge a line
of output, an escape sequence could rewrite a terminal, and an echo of the row's name or birth date
would put patient data on stdout. So every reason is cut to one line, stripped of control and
format characters, shortened, and has the row's own identifying values masked.
"""

from __future__ import annotations

import json
import re
import unicodedata

__all__ = [
    "IDENTIFYING_FIELDS",
    "MAX_REASON",
    "MAX_SERVER_MESSAGE",
    "WITHHELD",
    "one_line",
    "reason_text",
    "server_message",
]

IDENTIFYING_FIELDS = ("fname", "mname", "lname", "dob", "ssn")  # body fields never to print back
MAX_SERVER_MESSAGE = 200  # characters of a server's message kept in a reason
MAX_REASON = 500  # characters of a whole reason
WITHHELD = "[withheld]"
_SPACES = re.compile(r"\s+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def one_line(text: str, limit: int) -> str:
    """TEXT with line breaks and tabs made spaces, other control and format characters removed, cut to LIMIT."""
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
    """CorEMR's error message from an answer's body (its JSON `error`/`message` and `fields`), one line, short."""
    try:
        data = json.loads(body or b"")
    except ValueError:
        return one_line((body or b"").decode("utf-8", "replace"), MAX_SERVER_MESSAGE)
    if not isinstance(data, dict):
        return ""
    text = str(data.get("error") or data.get("message") or "")
    fields = data.get("fields")
    if isinstance(fields, dict) and fields:
        text += " (" + "; ".join(f"{k}: {v}" for k, v in fields.items()) + ")"
    return one_line(text, MAX_SERVER_MESSAGE)


def identifying_values(row_body: bytes | None) -> list[str]:
    """The row's own names and birth date as they could appear in a message, longest first (none under 2 chars)."""
    try:
        data = json.loads(row_body or b"")
    except ValueError:
        return []
    if not isinstance(data, dict):
        return []
    values: set[str] = set()
    for name in IDENTIFYING_FIELDS:
        value = data.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool):
            text = one_line(str(value), 10_000)
            values.add(text)
            if name == "dob" and (date := _DATE.match(text)):  # "1986-11-08 00:00:00.000" echoed as "1986-11-08"
                values.add(date.group())
    return sorted((v for v in values if len(v) >= 2), key=len, reverse=True)


def reason_text(text: str, row_body: bytes | None = None) -> str:
    """A reason safe to record and print: one line, short, with the row's identifying values masked."""
    line = one_line(text, 10 * MAX_REASON)
    for value in identifying_values(row_body):
        line = re.sub(re.escape(value), WITHHELD, line, flags=re.IGNORECASE)
    return one_line(line, MAX_REASON)
