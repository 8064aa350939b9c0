"""Logging at the boundaries: the `pipeline` logger hierarchy, silent until an application (our CLI) says otherwise.

Every module that logs asks for `logger(__name__)`: its stage's logger ("pipeline.delivery",
"pipeline.ledger", "pipeline.cli"), so a collector follows one stage by a name that moving a module does not
change. As a library, the package adds only a NullHandler to "pipeline", when the first module that logs is
imported: nothing is printed (not even warnings, which Python's last-resort handler would otherwise show)
until the application adds a handler. `import pipeline` and `cws-pipeline --help` do not import `logging` at
all (about 6-9 ms of a 35-50 ms start on a busy 2-core machine). The CLI adds one with `-v` (INFO: a run's
start and end, retries, stops) or `-vv` (DEBUG: every request's method, path, status and time), as text for
people or as one JSON object per line for journald, syslog and other collectors (`--log-format json`).

What is logged never holds patient data: requests by method and path (an external_id is not a name),
reasons through the masking printed reasons go through, counts, run ids and exit codes; never a body, a
name or a birth date.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Literal, TextIO

__all__ = ["LOG_FORMATS", "JsonLines", "LogFormat", "configure_logging", "logger", "stop_logging"]

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
_ROOT = "pipeline"
# The attributes every LogRecord has: the rest were given by the caller in `extra=` and go into the JSON.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}

logging.getLogger(_ROOT).addHandler(logging.NullHandler())  # a library: silent until the application says


def logger(name: str) -> logging.Logger:
    """The logger of the stage module NAME belongs to ("pipeline.delivery" for "pipeline.delivery._run"), silent
    until the application adds a handler: a logger per stage, whose name does not change when a module moves."""
    return logging.getLogger(name.split("._", 1)[0])


class JsonLines(logging.Formatter):
    """One JSON object per record, on one line: time (UTC, ISO 8601), level, logger, message and the extras."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update((key, value) for key, value in record.__dict__.items() if key not in _STANDARD)
        return json.dumps(line, ensure_ascii=False, default=str, separators=(",", ":"))


def configure_logging(verbosity: int, log_format: LogFormat, stream: TextIO) -> logging.Handler | None:
    """Show the pipeline's log on STREAM: VERBOSITY 1 is INFO, 2 or more DEBUG, 0 nothing (the default).

    Returns the handler added (None at verbosity 0), for `stop_logging` when the caller is done.
    """
    if verbosity <= 0:
        return None
    handler = logging.StreamHandler(stream)
    text = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(JsonLines() if log_format == "json" else text)
    logger = logging.getLogger(_ROOT)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)
    return handler


def stop_logging(handler: logging.Handler) -> None:
    """Undo `configure_logging`: remove its handler, and let the pipeline's loggers fall silent again."""
    logger = logging.getLogger(_ROOT)
    logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)
