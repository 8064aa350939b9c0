"""The run configuration (TOML): where CorEMR is, who we are, which keys, where the ledger lives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .._errors import ConfigError, UserInputError
from .._toml import TomlFile
from ..protocol import (
    ALGORITHMS,
    EXISTS_STATUS,
    Algorithm,
    check_access,
    is_loopback,
    passphrase_from_environment,
)
from ._pacing import DeliveryWindow
from ._transport import DEFAULT_MAX_ANSWER_BYTES, tls_context

__all__ = ["CONFIG_KEYS", "DEFAULT_CEILING", "DEFAULT_FIXED", "BookingsRoutes", "RunConfig", "load_config"]

# Requests in flight at most: the ceiling an adaptive limit grows up to (enough for a CorEMR serving 100 at
# once: the limit settles a little above the server's capacity), or the fixed number with adaptive = false.
DEFAULT_CEILING = 128
DEFAULT_FIXED = 8
DEFAULT_SETTLE_SECONDS = 3.0  # an export job that pauses between lines pauses for less than this
DEFAULT_MAX_RUN_SECONDS = 14400.0  # 4 hours: a nightly run takes minutes; one still going has met a stuck server

BookingsRoutes = Literal["yes", "no"]


@dataclass(frozen=True)
class RunConfig:
    """Everything `run` needs besides the CSV and the mapping. Paths are absolute."""

    path: Path
    base_url: str
    access: str
    private_key: Path
    server_keys: Path
    ledger: Path
    algorithm: Algorithm = "CWS-SHA256"
    accept_algorithms: tuple[str, ...] = ALGORITHMS
    passphrase_env: str | None = None
    concurrency: int = 0  # 0: the default, DEFAULT_CEILING when adaptive, else DEFAULT_FIXED
    adaptive: bool = True  # follow CorEMR's answers and latency, up to `concurrency` in flight
    max_rate: float | None = None  # requests per second at most
    window: DeliveryWindow | None = None  # the hours of the site's day when a run may send
    max_attempts: int = 5
    timeout: float = 30.0  # seconds per request, from connecting to the answer's last byte
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES
    retry_initial_wait: float = 0.5
    retry_max_wait: float = 30.0
    retry_after_cap: float = 60.0
    circuit_breaker: int = 5
    ca_bundle: Path | None = None
    allow_insecure_http: bool = False
    head_log: Path | None = None  # each run appends its final chain head here (see ledger._heads)
    settle_seconds: float = DEFAULT_SETTLE_SECONDS  # the export must not change for this long before it is read
    max_run_seconds: float = DEFAULT_MAX_RUN_SECONDS  # a run stops sending after this long; the rest go next time
    # What the site's CorEMR answers and has, where the docs are silent (each a named assumption, see ASSUMPTIONS):
    exists_status: tuple[int, ...] = (EXISTS_STATUS,)  # statuses meaning "this external_id or booking exists"
    bookings_routes: BookingsRoutes | None = None  # None: what `check` found and recorded, else not assumed
    update_adds_booking: bool = False  # a patient update with a new booking_no adds the booking (unverified)

    def __post_init__(self) -> None:
        if self.concurrency <= 0:
            object.__setattr__(self, "concurrency", DEFAULT_CEILING if self.adaptive else DEFAULT_FIXED)

    def passphrase(self) -> bytes | None:
        """The private key's passphrase, by the one rule: passphrase_env if set here, else CWS_KEY_PASSPHRASE."""
        return passphrase_from_environment(self.passphrase_env, named_by=f"{self.path}: passphrase_env")


_REQUIRED = ("base_url", "access", "private_key", "server_keys")
_OPTIONAL = (
    "ledger", "algorithm", "accept_algorithms", "passphrase_env", "concurrency", "max_attempts", "timeout",
    "max_answer_bytes", "retry_initial_wait", "retry_max_wait", "retry_after_cap", "circuit_breaker", "ca_bundle",
    "allow_insecure_http", "head_log", "adaptive", "max_rate", "window", "timezone", "settle_seconds",
    "max_run_seconds", "exists_status", "bookings_routes", "update_adds_booking",
)  # fmt: skip
CONFIG_KEYS = (*_REQUIRED, *_OPTIONAL)  # every key a run configuration may hold
_HOUR, _WEEK = 3600.0, 7 * 86400.0
# The range of each numeric setting: a value outside it is a typo or a unit slip, and some (timeout = 1e308,
# max_attempts = 1e22) would never finish or fail deep inside a library.
_COUNTS = {"concurrency": (1, 1024), "max_attempts": (1, 100), "circuit_breaker": (1, 1000),
           "max_answer_bytes": (1024, 1 << 30)}  # fmt: skip
# The most of each duration in seconds (none below 0).
_SECONDS = {"retry_initial_wait": _HOUR, "retry_max_wait": _HOUR, "retry_after_cap": _HOUR, "settle_seconds": _HOUR,
            "timeout": _HOUR, "max_run_seconds": _WEEK}  # fmt: skip
_ABOVE_ZERO = ("timeout", "max_run_seconds")  # 0 would stop everything at once


def load_config(path: Path | str) -> RunConfig:
    """Read and check a run configuration; paths inside it are relative to the file."""
    path = Path(path)
    doc, _ = TomlFile.read(path, ConfigError, "config file")
    raw = doc.data
    doc.only("", raw, CONFIG_KEYS)
    doc.require("", raw, _REQUIRED)
    base = path.parent.resolve()

    def local(key: str, default: str | None = None) -> Path:
        return (base / Path(doc.string(key, raw.get(key, default))).expanduser()).resolve()

    opts = _numbers(doc, raw)
    opts.update(_bulk_load_options(doc, raw))
    opts.update(_site_options(doc, raw))
    if "passphrase_env" in raw:
        opts["passphrase_env"] = doc.string("passphrase_env", raw["passphrase_env"])
    if "ca_bundle" in raw:
        opts["ca_bundle"] = _checked_ca_bundle(local("ca_bundle"), doc)
    if "head_log" in raw:
        opts["head_log"] = local("head_log")
        if not opts["head_log"].parent.is_dir():
            raise doc.error("head_log", f"the directory {opts['head_log'].parent} does not exist")
    base_url = doc.string("base_url", raw["base_url"]).rstrip("/")
    allow_http = doc.boolean("allow_insecure_http", raw.get("allow_insecure_http", False))
    _check_base_url(base_url, allow_http, doc)
    algorithm = doc.string("algorithm", raw.get("algorithm", "CWS-SHA256"))
    if algorithm not in ALGORITHMS:
        raise doc.error("algorithm", f"{algorithm!r} is not one of {', '.join(ALGORITHMS)}")
    example = '["CWS-SHA256", "CWS-SHA1"]'
    accept = tuple(doc.strings("accept_algorithms", raw.get("accept_algorithms", list(ALGORITHMS)), example=example))
    if any(a not in ALGORITHMS for a in accept):
        raise doc.error("accept_algorithms", f"give a non-empty list drawn from {', '.join(ALGORITHMS)}")
    return RunConfig(
        path=path.resolve(),
        base_url=base_url,
        access=_checked_access(doc.string("access", raw["access"]), doc),
        private_key=local("private_key"),
        server_keys=local("server_keys"),
        ledger=local("ledger", "ledger.sqlite"),
        algorithm=algorithm,
        accept_algorithms=accept,
        allow_insecure_http=allow_http,
        **opts,
    )


def _numbers(doc: TomlFile, raw: dict[str, Any]) -> dict[str, Any]:
    """The counts and durations the file sets, each checked against its range."""
    opts: dict[str, Any] = {}
    for key, (low, high) in _COUNTS.items():
        if key in raw:
            opts[key] = doc.integer(key, raw[key], minimum=low, maximum=high)
    for key, most in _SECONDS.items():
        if key in raw:
            opts[key] = doc.number(key, raw[key], positive=key in _ABOVE_ZERO, unit="seconds", maximum=most)
    return opts


def _bulk_load_options(doc: TomlFile, raw: dict[str, Any]) -> dict[str, Any]:
    """adaptive, max_rate, and window in timezone (IANA name; default this machine's local time)."""
    opts: dict[str, Any] = {}
    if "adaptive" in raw:
        opts["adaptive"] = doc.boolean("adaptive", raw["adaptive"])
    if "max_rate" in raw:
        opts["max_rate"] = doc.number("max_rate", raw["max_rate"], positive=True, unit="requests per second",
                                     minimum=0.01, maximum=1e6)  # fmt: skip
    zone = None
    if "timezone" in raw:
        if "window" not in raw:
            raise doc.error("timezone", "it is the delivery window's time zone: set window too, or remove it")
        name = doc.string("timezone", raw["timezone"])
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder such as "America"
            raise doc.error("timezone", f'{name!r} is not a time zone name like "America/Chicago" (IANA)') from None
    if "window" in raw:
        try:
            opts["window"] = DeliveryWindow.parse(doc.string("window", raw["window"]), zone)
        except ValueError as exc:
            raise doc.error("window", str(exc)) from None
    return opts


def _site_options(doc: TomlFile, raw: dict[str, Any]) -> dict[str, Any]:
    """exists_status, bookings_routes and update_adds_booking: what this site's CorEMR answers and has."""
    opts: dict[str, Any] = {}
    if "exists_status" in raw:
        statuses = raw["exists_status"]
        if not isinstance(statuses, list) or not statuses:
            raise doc.error("exists_status", "expected a non-empty list of HTTP statuses, e.g. [409] or [409, 422]")
        checked = [doc.integer("exists_status", s, minimum=400, maximum=499) for s in statuses]
        if 404 in checked:
            raise doc.error("exists_status", "404 means no such patient (or no such route), never that one exists")
        opts["exists_status"] = tuple(checked)
    if "bookings_routes" in raw:
        value = doc.string("bookings_routes", raw["bookings_routes"])
        if value not in ("yes", "no"):
            raise doc.error("bookings_routes", f'{value!r}: give "yes" or "no" (or leave it out: what `check` found)')
        opts["bookings_routes"] = value
    if "update_adds_booking" in raw:
        opts["update_adds_booking"] = doc.boolean("update_adds_booking", raw["update_adds_booking"])
    return opts


def _check_base_url(url: str, allow_http: bool, doc: TomlFile) -> None:
    if any(ch.isspace() or not ch.isprintable() for ch in url):  # urlsplit would quietly drop tabs and newlines
        raise doc.error("base_url", f"{_without_password(url)!r} holds spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise doc.error("base_url", f"{_without_password(url)!r} is not an http(s) URL like https://coremr.example.org")
    if parts.username is not None or parts.password is not None:
        raise doc.error(
            "base_url",
            f"{_without_password(url)!r} holds a user name or password; CWS signs requests instead: remove it",
        )
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise doc.error("base_url", f"{url!r}: give the server's address only, without a ?query or #fragment")
    try:
        port = parts.port  # urlsplit checks the port only when asked
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise doc.error("base_url", f"{url!r}: the port must be a number from 1 to 65535")
    if parts.scheme == "http" and not allow_http and not is_loopback(parts.hostname):
        raise doc.error(
            "base_url",
            "plain http sends patient data unencrypted; use https, or set allow_insecure_http = true",
        )


def _without_password(url: str) -> str:
    """URL with any password in it replaced by ****: a refused base_url is printed, the password never."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":****@", 1)


def _checked_access(access: str, doc: TomlFile) -> str:
    try:
        return check_access(access)
    except UserInputError as exc:
        raise doc.error("access", str(exc).removeprefix("access ")) from None


def _checked_ca_bundle(path: Path, doc: TomlFile) -> Path:
    try:
        tls_context(path)
    except ValueError as exc:
        raise doc.error("ca_bundle", str(exc)) from None
    return path
