"""`check`: a site's pre-flight before its first night, with the run's own pieces, sending no patient data."""

from __future__ import annotations

import email.utils
import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from .._errors import CWSPipelineError, ExitCode, UserInputError
from ..ledger import Ledger, created_patient, record_site_fact
from ..mapping import load_mapping
from ..protocol import (
    API_PROFILES,
    DEFAULT_API,
    ApiVersion,
    CWSAuth,
    Keyring,
    Routes,
    Verification,
    is_loopback,
    load_private_key,
)
from ._config import RunConfig, load_config
from ._decisions import answered_external_id
from ._transport import CWSTransport, Exchange, send_signed

__all__ = ["CHECK_EXIT", "CheckLine", "CheckStatus", "SiteCheck", "check_site"]

CheckStatus = Literal["ok", "warn", "fail", "skip"]
CHECK_EXIT = ExitCode.ATTENTION  # a check failed: the site is not ready (2: the config or mapping cannot be read)
CLOCK_TOLERANCE_SECONDS = 300.0
_PROBE_PREFIX = "cwscheck-"  # 9 characters + 8 hex digits = 17, external_id's documented String(17)


@dataclass(frozen=True)
class CheckLine:
    """One check: its name, whether it passed (ok), passed with a warning, failed, or was skipped, and why."""

    name: str
    status: CheckStatus
    message: str

    @property
    def ok(self) -> bool:
        """False only for a failed check."""
        return self.status != "fail"

    def __str__(self) -> str:
        return f"{self.status.upper() if self.status == 'fail' else self.status:<4}  {self.name}: {self.message}"


@dataclass
class SiteCheck:
    """What `check` found: its lines in order, the site facts found out, and the exit code they earn."""

    config: Path
    api: ApiVersion | None = None
    lines: list[CheckLine] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)
    unreadable: bool = False  # the configuration or mapping could not be read: exit 2, as `run` does

    def add(self, name: str, status: CheckStatus, message: str) -> CheckLine:
        """Append a line and return it."""
        line = CheckLine(name, status, message)
        self.lines.append(line)
        return line

    @property
    def first_failure(self) -> CheckLine | None:
        """The first failed check: the first thing to fix."""
        return next((line for line in self.lines if not line.ok), None)

    @property
    def exit_code(self) -> ExitCode:
        """0 all good (warnings allowed); 2 the configuration or mapping cannot be read; else 1."""
        if self.unreadable:
            return UserInputError.exit_code
        return CHECK_EXIT if self.first_failure is not None else ExitCode.OK

    @property
    def verdict(self) -> str:
        """One line: ready, or the first thing to fix."""
        failed = self.first_failure
        if failed is None:
            warned = sum(line.status == "warn" for line in self.lines)
            return "Ready for the first night." + (f" ({warned} warning(s) above.)" if warned else "")
        return f"Not ready: fix {failed.name} first."

    def to_json(self) -> dict[str, Any]:
        """The result for scripts: the checks (name, ok, status, message), the facts, the verdict and exit code."""
        return {
            "config": str(self.config),
            "api": self.api,
            "checks": [{"name": c.name, "ok": c.ok, "status": c.status, "message": c.message} for c in self.lines],
            "site_facts": dict(self.facts),
            "ok": self.exit_code == 0,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
        }


def check_site(
    config_path: Path | str, mapping_path: Path | str | None = None, *, now: Callable[[], datetime] | None = None
) -> SiteCheck:
    """Check a site before its first night: one line per check, sending only GETs that carry no patient data.

    One line per check, in the order a person fixes them: the configuration (and the mapping's API version, else
    v2), our private key, CorEMR's keys (server_keys), the ledger and head_log files, then the answers to signed
    GETs: TLS to base_url, CorEMR knowing our Access name and key, the API version's prefix answering, CorEMR's
    signature verifying with our keyring, and the clock against the answer's Date. Where the ledger knows a
    patient we delivered, that patient and its bookings are read to find out whether the site has bookings
    routes (a site fact, recorded in the ledger).

    The only requests are GETs: one read of a patient that cannot exist (`cwscheck-<8 hex>`: 17 characters,
    URL-safe, within external_id's String(17)), one of a route that cannot exist beside the patients route, and,
    when the ledger knows a patient of ours, that patient and its bookings. A missing patient and a missing
    route may both answer 404 (CWS.md pitfall 13): the patients route is taken to be there when its 404 differs
    from the missing route's (paths and the made-up id aside); when the two answer alike, nothing can be told.
    Messages are our own words: nothing CorEMR answers is printed.
    """
    result = SiteCheck(Path(config_path))
    try:
        config = load_config(config_path)
        mapping = load_mapping(mapping_path) if mapping_path is not None else None
        api = mapping.api if mapping is not None else DEFAULT_API
        API_PROFILES[api].require_algorithm(config.algorithm, f"{config.path}: algorithm")
    except UserInputError as exc:
        result.unreadable = True
        result.add("config", "fail", str(exc))
        return result
    result.config, result.api = config.path, api
    whose = f"the mapping {mapping_path}" if mapping is not None else "no --mapping given, so v2"
    result.add("config", "ok", f"{config.path} loads; CorEMR API {api} ({whose})")
    auth = _auth(config, result)
    _check_files(config, result)
    if auth is None:
        result.add("network", "skip", "no request sent: fix our private key or server_keys first")
        return result
    endpoint = mapping.endpoint if mapping is not None else API_PROFILES[api].routes.collection
    routes = API_PROFILES[api].routes.at(config.base_url + endpoint)
    try:
        transport = CWSTransport(timeout=config.timeout, ca_bundle=config.ca_bundle, max_connections=1,
                                 max_answer_bytes=config.max_answer_bytes)  # fmt: skip
    except ValueError as exc:  # load_config checked the bundle; it changed since
        result.add("tls", "fail", f"ca_bundle: {exc}")
        return result
    with transport:
        _check_answers(config, api, routes, transport, auth, result, now or (lambda: datetime.now(UTC)))
    return result


def _auth(config: RunConfig, result: SiteCheck) -> CWSAuth | None:
    """Our private key and CorEMR's keys, loaded as a run loads them; None when either cannot be used."""
    key = keyring = None
    try:
        key = load_private_key(config.private_key, config.passphrase())
        result.add(
            "private_key", "ok", f"{config.private_key} loads: a {key.key_size}-bit RSA key only its owner can read"
        )
    except UserInputError as exc:
        result.add("private_key", "fail", str(exc))
    try:
        keyring = Keyring(config.server_keys)
        signers = keyring.usernames()
        for signer in signers:
            keyring.public_key(signer)
        if signers:
            result.add("server_keys", "ok", f"{config.server_keys} holds CorEMR's key(s): {', '.join(signers)}")
        else:
            keyring = None
            result.add("server_keys", "fail", f"{config.server_keys} holds no <USERNAME>.pem: save CorEMR's public"
                       " key there, named for the username it signs with")  # fmt: skip
    except UserInputError as exc:
        keyring = None
        result.add("server_keys", "fail", str(exc))
    if key is None or keyring is None:
        return None
    return CWSAuth(key, config.access, keyring, config.algorithm, config.accept_algorithms)


def _check_files(config: RunConfig, result: SiteCheck) -> None:
    """The ledger and head_log: an existing file readable by its owner only and writable; else a writable folder.

    Nothing is created: the first run creates the ledger (mode 0600).
    """
    for name, path in (("ledger", config.ledger), ("head_log", config.head_log)):
        if path is None:
            result.add(name, "skip", "not set: runs append no chain head to a log outside the ledger")
            continue
        problem = _file_problem(path)
        if problem is None and name == "ledger" and path.exists():
            problem = _ledger_problem(path)
        if problem is not None:
            result.add(name, "fail", problem)
        elif path.exists():
            result.add(name, "ok", f"{path} is writable by this user and private (mode 0600)")
        else:
            result.add(name, "ok", f"{path} does not exist yet: the first run creates it (mode 0600)")


def _file_problem(path: Path) -> str | None:
    """Why this user cannot keep a private file at PATH (existing files and, for the ledger, -wal/-shm)."""
    if not path.exists():
        folder = next((p for p in path.parents if p.exists()), None)
        if folder is None or not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            return f"{path} does not exist and this user cannot create it in {folder}"
        return None
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = file.stat().st_mode
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(mode):
            return f"{file} is not a file"
        if stat.S_IMODE(mode) & 0o077:
            return f"{file}: group or others can read it (mode {stat.S_IMODE(mode):04o}); run `chmod 600 {file}`"
        if not (mode & stat.S_IWUSR and os.access(file, os.R_OK | os.W_OK)):
            return f"{file}: this user cannot write it (mode {stat.S_IMODE(mode):04o}); run `chmod 600 {file}`"
    return None


def _ledger_problem(path: Path) -> str | None:
    """Why an existing ledger file cannot be read as one (another kind of file, a damaged one), or None."""
    try:
        with Ledger.open_read_only(path, check=False):
            pass
    except CWSPipelineError as exc:
        return str(exc)
    return None


def _get(transport: CWSTransport, auth: CWSAuth, url: str) -> Exchange:
    """One signed GET (over the empty string) and the verification of what came back; never raises NoAnswer."""
    try:
        return send_signed(transport, auth, "GET", url)
    except CWSPipelineError as exc:  # a proxy in the environment that cannot be used
        return Exchange("GET", url, b"", None, "no", error=str(exc))


def _unverified(found: Verification | None, auth: CWSAuth) -> str:
    """Why CorEMR's answer did not verify, in our words, naming the file or setting to fix."""
    status, signer, algorithm = (
        (found.status, found.signer, found.algorithm) if found else ("missing_header", None, None)
    )
    keys = auth.keyring.directory
    if status == "missing_header":
        return "answer not signed (no Authorization header): CorEMR signs every answer; is base_url CorEMR's?"
    if status == "malformed_header":
        return "answer's Authorization header is not `ALGORITHM Access=NAME, Signature=...`: is base_url CorEMR's?"
    if status == "unknown_signer":
        return (f"answer not signed by a key in server_keys: it names the signer {signer!r}, and {keys} has no"
                f" {signer}.pem; save CorEMR's public key there under that name")  # fmt: skip
    if status == "algorithm_not_accepted":
        return f"answer signed with {algorithm}, which accept_algorithms does not list; add it, or ask CorEMR"
    return (f"answer's signature by {signer!r} does not verify with {keys}/{signer}.pem: the key there is not"
            " the one CorEMR signs with; save the right one")  # fmt: skip


def _check_answers(
    config: RunConfig, api: ApiVersion, routes: Routes, transport: CWSTransport, auth: CWSAuth,
    result: SiteCheck, now: Callable[[], datetime],
) -> None:  # fmt: skip
    """TLS, our key, the API prefix, CorEMR's signature, the clock, then the bookings routes."""
    probe = _PROBE_PREFIX + secrets.token_hex(4)
    read = _get(transport, auth, routes.patient(probe))
    if not _check_reached(config, read, result):
        return
    if read.status in (401, 403):
        result.add("access", "fail", f"CorEMR refused our key (HTTP {read.status}): check `access`"
                   f" ({config.access}) and `private_key` ({config.private_key})")  # fmt: skip
    else:
        result.add("access", "ok", f"CorEMR accepted our Access name {config.access!r} and our {config.algorithm}"
                   " signature")  # fmt: skip
        _check_prefix(api, routes, transport, auth, read, probe, result)
    if read.verified:
        assert read.verification is not None
        signer, algorithm = read.verification.signer, read.verification.algorithm
        result.add("signature", "ok", f"CorEMR's answer is signed by {signer!r} ({algorithm}) and"
                   f" verifies with {auth.keyring.path_for(signer or '')}")  # fmt: skip
    else:
        result.add("signature", "fail", _unverified(read.verification, auth))
    _check_clock(read.date, now(), result)
    if result.first_failure is not None:
        result.add("bookings_routes", "skip", "not found out: fix the failed checks first")
        return
    _find_bookings_routes(config, api, routes, transport, auth, result)


def _check_reached(config: RunConfig, read: Exchange, result: SiteCheck) -> bool:
    """The TLS line: did an answer come back over a verified connection (or plain http on loopback)?"""
    parts = urlsplit(config.base_url)
    origin = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    if read.landed != "yes":
        result.add("tls", "fail", f"no answer from {origin}: {read.error}; check base_url, ca_bundle and"
                   " HTTPS_PROXY/NO_PROXY")  # fmt: skip
        return False
    if parts.scheme == "https":
        trust = f"ca_bundle {config.ca_bundle}" if config.ca_bundle else "the default trust store"
        result.add("tls", "ok", f"TLS to {origin} verified against {trust}")
    elif is_loopback(parts.hostname or ""):
        result.add("tls", "ok", f"plain http to {origin}, a loopback address: nothing leaves this machine")
    else:
        result.add("tls", "warn", f"plain http to {origin} (allow_insecure_http = true): patient data would"
                   " travel unencrypted; use https")  # fmt: skip
    return True


def _check_prefix(
    api: ApiVersion, routes: Routes, transport: CWSTransport, auth: CWSAuth, read: Exchange, probe: str,
    result: SiteCheck,
) -> None:  # fmt: skip
    """Does the API version's patients route answer? A 404 like a missing route's says it is not there."""
    where = f"{urlsplit(routes.collection).path} (API {api})"
    if read.status == 200:
        named = answered_external_id(read.response_body) == probe
        result.add(
            "api_prefix",
            "ok" if named else "warn",
            f"{where} answers a read"
            + ("" if named else " with HTTP 200 for a patient that cannot exist: is it CorEMR's read route?"),
        )
        return  # fmt: skip
    if read.status != 404:
        result.add("api_prefix", "fail", f"{where} answered a read of a patient that cannot exist with HTTP"
                   f" {read.status}, not 404: wrong base_url or API version?")  # fmt: skip
        return
    parent = routes.collection.rstrip("/").rsplit("/", 1)[0]
    missing = _get(transport, auth, f"{parent}/{probe}/")
    if missing.status != 404:
        result.add("api_prefix", "warn", f"{where} answers 404 for a patient that cannot exist; a route that"
                   " cannot exist beside it did not answer 404, so nothing tells the two apart")  # fmt: skip
    elif _alike(read, missing, probe):
        result.add("api_prefix", "fail", f"wrong base_url or API version: {routes.collection} (API {api})"
                   " answers like a route that does not exist; check base_url (the server's address only) and the"
                   " mapping's [target] api and endpoint")  # fmt: skip
    else:
        result.add("api_prefix", "ok", f"{where} answers: its 404 for a patient that cannot exist differs from a"
                   " missing route's")  # fmt: skip


def _alike(one: Exchange, other: Exchange, probe: str) -> bool:
    """True when two answers' bodies are the same once their own paths and the made-up id are taken out."""

    def plain(reply: Exchange) -> bytes:
        body = reply.response_body or b""
        path = urlsplit(reply.url).path
        for text in sorted({path, unquote(path), path.rstrip("/")}, key=len, reverse=True):
            body = body.replace(text.encode(), b"{path}")
        return body.replace(probe.encode(), b"{id}")

    return plain(one) == plain(other)


def _check_clock(date: str | None, now: datetime, result: SiteCheck) -> None:
    """A warning when this machine's clock is more than 5 minutes from the answer's Date."""
    try:
        theirs = email.utils.parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError):
        theirs = None
    if theirs is None:
        result.add("clock", "warn", "the answer has no usable Date header: this machine's clock was not compared")
        return
    if theirs.tzinfo is None:
        theirs = theirs.replace(tzinfo=UTC)
    ahead = (now - theirs).total_seconds()
    if abs(ahead) > CLOCK_TOLERANCE_SECONDS:
        side = "ahead of" if ahead > 0 else "behind"
        result.add("clock", "warn", f"this machine's clock is {abs(ahead) / 60:.0f} minutes {side} CorEMR's"
                   " (its answer's Date): the ledger's times will be off; set up NTP")  # fmt: skip
    else:
        result.add("clock", "ok", f"within {CLOCK_TOLERANCE_SECONDS / 60:.0f} minutes of CorEMR's (its answer's Date)")


def _find_bookings_routes(
    config: RunConfig, api: ApiVersion, routes: Routes, transport: CWSTransport, auth: CWSAuth, result: SiteCheck
) -> None:
    """Read a patient we delivered, then its bookings: a verified 200 or 404 there says whether the routes exist."""
    try:
        external_id = _known_patient(config.ledger)
    except CWSPipelineError as exc:
        result.add("bookings_routes", "warn", f"not found out: the ledger cannot be read ({exc})")
        return
    if external_id is None:
        result.add("bookings_routes", "skip", "not found out: the ledger knows no patient we delivered yet; run"
                   " check again after the first night")  # fmt: skip
        return
    patient = _get(transport, auth, routes.patient(external_id))
    if not (patient.verified and patient.status == 200 and answered_external_id(patient.response_body) == external_id):
        result.add("bookings_routes", "warn", f"not found out: a read of our patient {external_id!r} did not answer"
                   f" it (HTTP {patient.status}{'' if patient.verified else ', unverified'})")  # fmt: skip
        return
    bookings = _get(transport, auth, replace(routes, has_bookings=True).bookings(external_id))
    if not bookings.verified or bookings.status not in (200, 404):
        result.add("bookings_routes", "warn", f"not found out: the bookings of {external_id!r} answered HTTP"
                   f" {bookings.status}{'' if bookings.verified else ', unverified'}")  # fmt: skip
        return
    value = "yes" if bookings.status == 200 else "no"
    how = (f"GET {urlsplit(patient.url).path} answered our patient (200); GET {urlsplit(bookings.url).path}"
           f" answered {bookings.status}")  # fmt: skip
    result.facts["bookings_routes"] = value
    where = _record(config.ledger, "bookings_routes", value, how)
    has = "has" if value == "yes" else "has no"
    result.add("bookings_routes", "ok", f"CorEMR {has} bookings routes (API {api}): {how}; {where}")


def _known_patient(ledger: Path) -> str | None:
    """A patient the ledger says we delivered, or None (no ledger yet, or none delivered)."""
    if not ledger.is_file():
        return None
    with Ledger.open_read_only(ledger, check=False) as opened:
        return created_patient(opened)


def _record(ledger: Path, name: str, value: str, how: str) -> str:
    """Record a site fact in the ledger; say where it went (or why it could not be)."""
    try:
        with Ledger.open(ledger, create=False) as opened:
            record_site_fact(opened, name, value, how)
    except CWSPipelineError as exc:
        return f"not recorded in the ledger ({exc})"
    return "recorded in the ledger"
