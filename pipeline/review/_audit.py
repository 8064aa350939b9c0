"""Auditing a ledger offline: the hash chain, the runs table, every stored body, and both sides' signatures.

First SQLite's own integrity_check of the whole file: a damaged file fails the audit in one line.
What holds after a passing audit: no entry was edited, deleted, inserted or reordered since it was written
(short of someone recomputing every later hash: that is caught by checking the heads a head log kept
elsewhere recorded, `head_log`, which the audit does when given one);
the runs table agrees with the chain; every stored body is the one its entries name; every request
signature we stored is our key's signature of the stored request bytes; every answer recorded as verified
carries CorEMR's signature of the stored response bytes. It cannot show rows that were never written.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cryptography.hazmat.primitives.asymmetric import rsa

from .._errors import ExitCode, LedgerDamaged, MalformedHeader
from ..ledger import (
    ChainBreak,
    Entry,
    Ledger,
    RecordedHead,
    check_heads,
    read_head_log,
    sha256_hex,
    skipped_rows,
    verify_chain,
)
from ..protocol import (
    ALGORITHMS,
    AuthorizationHeader,
    Keyring,
    load_private_key,
    load_public_key,
    signature_matches,
    verify_body,
)

if TYPE_CHECKING:
    from ..delivery import RunConfig  # read for its keys and paths only: the audit loads no delivery code

__all__ = ["AuditFailure", "AuditResult", "RunAudit", "audit_ledger", "our_public_key"]

Verdict = Literal["proven", "not_checkable", "unverified", "failed", "unchained"]
BodyCheck = Literal["ok", "pruned", "missing", "replaced"]

_SIGNATURE_CACHE = 20_000


@dataclass(frozen=True)
class AuditFailure:
    """One thing that does not hold, naming the entry (by seq) or run it was found in."""

    problem: str
    seq: int | None = None
    run_id: int | None = None

    def __str__(self) -> str:
        where = [f"entry {self.seq}" if self.seq is not None else "", f"run {self.run_id}" if self.run_id else ""]
        return f"{' of '.join(w for w in where if w) or 'ledger'}: {self.problem}"


@dataclass
class RunAudit:
    """What the audit found for one run's entries."""

    run_id: int
    entries: int = 0
    proven: int = 0
    not_checkable: int = 0
    unverified: int = 0
    failed: int = 0
    unchained: int = 0
    request_signatures: int = 0
    response_signatures: int = 0

    def count(self, verdict: Verdict) -> None:
        """Count one entry's verdict."""
        self.entries += 1
        if verdict == "not_checkable":
            self.not_checkable += 1
        else:
            setattr(self, verdict, getattr(self, verdict) + 1)


@dataclass
class AuditResult:
    """The whole audit: the chain, per-run counts, and every failure found."""

    ledger: Path
    entries: int = 0
    head_seq: int = 0
    head_hash: str = ""
    chain_break: ChainBreak | None = None
    runs: dict[int, RunAudit] = field(default_factory=dict)
    failures: list[AuditFailure] = field(default_factory=list)
    damaged: str | None = None  # SQLite found the file damaged: nothing else was checked
    head_log: Path | None = None
    heads_checked: int = 0
    head_log_missing: bool = False  # the head log given (or the config's) is not there: the audit fails

    @property
    def ok(self) -> bool:
        """True only when the file is sound, the chain holds and nothing checkable failed."""
        return self.damaged is None and self.chain_break is None and not self.failures

    @property
    def exit_code(self) -> ExitCode:
        """0 when everything checkable holds, 1 otherwise."""
        return ExitCode.OK if self.ok else ExitCode.ATTENTION


def our_public_key(config: RunConfig, public_key: Path | None = None) -> rsa.RSAPublicKey:
    """Our public key: the file given, else `rsa.public` beside the config's private key, else derived from it."""
    if public_key is not None:
        return load_public_key(public_key)
    beside = config.private_key.parent / "rsa.public"
    if beside.is_file():
        return load_public_key(beside)
    return load_private_key(config.private_key, config.passphrase()).public_key()


def audit_ledger(
    ledger: Ledger, config: RunConfig, public_key: rsa.RSAPublicKey | None = None, *, head_log: Path | None = None
) -> AuditResult:
    """Check the file, the chain, the runs table, every body and stored signature, and (given a head log) that
    every head it recorded is still in the chain; never writes to the ledger.

    A head log that is not there fails the audit once the ledger has entries: deleting it is exactly what
    someone who rewrote the whole ledger would do. A site that keeps none passes head_log=None.
    """
    missing = head_log is not None and not head_log.exists()
    heads = read_head_log(head_log) if head_log is not None and not missing else []
    checker = _Checker(ledger, config, public_key or our_public_key(config))
    checker.result.head_log = head_log
    try:
        ledger.check_integrity()
        # One read transaction: a run writing meanwhile cannot make the chain and the runs table disagree.
        with ledger.snapshot():
            checker.run()
            checker.check_heads(heads)
            if missing and ledger.head() is not None:
                checker.result.head_log_missing = True
                checker.result.failures.append(AuditFailure(
                    f"the head log {head_log} is missing, so a rewrite of the whole ledger would go unnoticed:"
                    " restore it from where it is kept (or, if this site keeps none, audit with --no-head-log)"
                ))  # fmt: skip
    except LedgerDamaged as exc:
        checker.result.damaged = str(exc)
    return checker.result


class _Checker:
    def __init__(self, ledger: Ledger, config: RunConfig, our_key: rsa.RSAPublicKey) -> None:
        self.ledger = ledger
        self.config = config
        self.our_key = our_key
        self.keyring = Keyring(config.server_keys)
        self.result = AuditResult(ledger.path)
        self.bodies: dict[str, BodyCheck] = {}  # statuses only: the bytes are read again when a signature needs them
        # (side, header, sha) -> problem; bounded, since a state entry repeats an exchange written just before it
        self.signatures: OrderedDict[tuple[str, str, str], str | None] = OrderedDict()
        self.started: dict[int, Entry] = {}
        self.finished: dict[int, Entry] = {}
        self.broken = False
        self.last: tuple[RunAudit, Verdict] = (RunAudit(0), "proven")

    def run(self) -> AuditResult:
        entries = self._walk(self.ledger.entries())
        self.result.chain_break = verify_chain(entries)
        if self.result.chain_break is not None:
            self.broken = True
            run, verdict = self.last  # the entry verify_chain stopped at was counted before the break was known
            if verdict == "proven":
                run.proven -= 1
                run.unchained += 1
            where = self.result.chain_break
            self.result.failures.insert(
                0, AuditFailure(f"the hash chain breaks here: {where.problem}", where.seq, run.run_id)
            )
            for _ in entries:  # check the rest too: every failure is worth naming
                pass
        self._check_runs_table()
        self._check_unreferenced_bodies()
        return self.result

    def check_heads(self, heads: list[RecordedHead]) -> None:
        """Every head the head log recorded must still be in the chain, at its seq, with its hash."""
        self.result.heads_checked = len(heads)
        for problem in check_heads(self.ledger, heads):
            self.result.failures.append(AuditFailure(f"head log {self.result.head_log}, {problem}"))

    def _walk(self, entries: Iterator[Entry]) -> Iterator[Entry]:
        for entry in entries:
            self.result.entries += 1
            self.result.head_seq, self.result.head_hash = entry.seq, entry.hash
            run = self.result.runs.setdefault(entry.run_id, RunAudit(entry.run_id))
            verdict = self._check_entry(entry, run)
            if verdict == "proven" and self.broken:
                verdict = "unchained"
            run.count(verdict)
            self.last = (run, verdict)
            if entry.event == "run_started":
                self.started[entry.run_id] = entry
            elif entry.event == "run_finished":
                self.finished[entry.run_id] = entry
            yield entry

    def _check_entry(self, e: Entry, run: RunAudit) -> Verdict:
        problems: list[str] = []
        pruned = False
        unverified = False
        # A state entry of a row that was never sent names the body it would have sent, which is not stored.
        sent = e.event in ("sending", "attempt", "lookup") or bool(e.request_authorization)
        request = self._body(e.request_sha256, required=sent)
        pruned |= request == "pruned"
        problems += _body_problem(request, "request")
        if e.response_sha256:
            response = self._body(e.response_sha256, required=True)
            pruned |= response == "pruned"
            problems += _body_problem(response, "response")
        else:
            response = "ok"
        if e.cells_sha256:
            cells = self._body(e.cells_sha256, required=True)
            pruned |= cells == "pruned"
            problems += _body_problem(cells, "original cells")
        if e.event == "skipped_rows":
            listed, pruned_rows = self._skipped_rows(e)
            problems += listed
            pruned |= pruned_rows
        if e.request_authorization and request == "ok":
            problem = self._signature(run, "request", e.request_authorization, e.request_sha256 or "")
            if problem:
                problems.append(problem)
        if e.response_sha256 or e.response_authorization:
            if e.verification != "ok":
                unverified = True  # recorded as unverified when it arrived: the run said so then; not a failure now
            elif response == "ok":
                header = e.response_authorization or ""
                problem = self._signature(run, "response", header, e.response_sha256 or "")
                if problem:
                    problems.append(problem)
        if problems:
            where = f"{e.event}" + (f", line {e.line}, key {e.key}" if e.key is not None else "")
            for problem in problems:
                self.result.failures.append(AuditFailure(f"({where}) {problem}", e.seq, e.run_id))
            return "failed"
        if pruned:
            return "not_checkable"
        return "unverified" if unverified else "proven"

    def _skipped_rows(self, e: Entry) -> tuple[list[str], bool]:
        """Each listed row's stored cells (and, while kept, the body it was skipped for): problems, any pruned."""
        try:
            rows = skipped_rows(e)
        except ValueError:
            return ["its detail is not the list of skipped rows it should hold"], False
        problems: list[str] = []
        pruned = False
        for row in rows:
            request = self._body(row.request_sha256, required=False)
            cells = self._body(row.cells_sha256, required=True)
            pruned |= "pruned" in (request, cells)
            where = f"line {row.line}, key {row.key}: "
            problems += [where + p for p in _body_problem(request, "request") + _body_problem(cells, "original cells")]
        return problems, pruned

    def _body(self, sha: str | None, *, required: bool) -> BodyCheck:
        if sha is None:
            return "ok"
        if sha not in self.bodies:
            stored = self.ledger.stored_body(sha)
            check: BodyCheck
            if stored is None or (stored.body is None and stored.pruned_at is None):
                check = "missing"
            elif stored.body is None:
                check = "pruned"
            else:
                check = "ok" if sha256_hex(stored.body) == sha else "replaced"
            self.bodies[sha] = check
        found = self.bodies[sha]
        return "ok" if found == "missing" and not required else found

    def _signature(self, run: RunAudit, side: str, header: str, sha: str) -> str | None:
        """Verify a signature once; a state entry repeats its last exchange's headers and is not counted again."""
        cache_key = (side, header, sha)
        if cache_key in self.signatures:
            self.signatures.move_to_end(cache_key)
        else:
            body = self.ledger.body(sha) or b""
            if side == "request":
                problem = self._request_problem(header, body)
                run.request_signatures += problem is None
            else:
                problem = self._response_problem(header, body)
                run.response_signatures += problem is None
            self.signatures[cache_key] = problem
            if len(self.signatures) > _SIGNATURE_CACHE:
                self.signatures.popitem(last=False)
        return self.signatures[cache_key]

    def _request_problem(self, header: str, body: bytes) -> str | None:
        try:
            parsed = AuthorizationHeader.parse(header)
        except MalformedHeader as exc:
            return f"the stored request header is not a CWS header ({exc})"
        if parsed.access != self.config.access:
            return (
                f"the request was signed as {parsed.access}, but {self.config.path} says access = {self.config.access};"
                " audit with the key that signed it (--public-key)"
            )
        if parsed.algorithm not in ALGORITHMS or not signature_matches(
            body, parsed.signature, self.our_key, parsed.algorithm
        ):
            return "our request signature does not match the stored request body with our public key"
        return None

    def _response_problem(self, header: str, body: bytes) -> str | None:
        check = verify_body(body, header or None, self.keyring, self.config.accept_algorithms)
        if check.ok:
            return None
        return f"recorded as verified, but CorEMR's signature over the stored response now fails: {check.reason}"

    def _check_runs_table(self) -> None:
        fail = self.result.failures.append
        rows = {run.run_id: run for run in self.ledger.runs()}
        for run_id, row in sorted(rows.items()):
            started = self.started.get(run_id)
            if started is None:
                fail(AuditFailure("in the runs table but has no run_started entry in the chain", run_id=run_id))
                continue
            what = "the runs table differs from this run_started entry in"
            info = _json(started.detail)
            edited = [n for n, stated in asdict(row.info).items() if info.get(n) != stated]
            if row.started_at != started.at:
                edited.insert(0, "started_at")
            if edited:
                fail(AuditFailure(f"{what} {', '.join(edited)} (the runs table was edited)", started.seq, run_id))
            finished = self.finished.get(run_id)
            if finished is None:
                # 'interrupted' without an entry: how versions before 0.2 marked a run found dead
                if row.status not in ("running", "interrupted") or row.finished_at is not None:
                    fail(AuditFailure(f"the runs table says {row.status}, finished {row.finished_at},"
                                      " but the chain has no run_finished entry", run_id=run_id))  # fmt: skip
                continue
            end = _json(finished.detail)
            edited = [
                name
                for name, recorded, stated in (
                    ("finished_at", finished.at, row.finished_at),
                    ("status", end.get("status"), row.status),
                    ("counts", end.get("counts"), _json(row.counts_json)),
                    ("exit_code", end.get("exit_code"), row.exit_code),
                    ("concurrency", end.get("concurrency"), row.concurrency),
                )
                if recorded != stated
            ]
            if edited:
                what = "the runs table differs from this run_finished entry in"
                fail(AuditFailure(f"{what} {', '.join(edited)} (the runs table was edited)", finished.seq, run_id))
        for run_id, entry in sorted(self.started.items()):
            if run_id not in rows:
                fail(AuditFailure("has a run_started entry but no row in the runs table (deleted)", entry.seq, run_id))

    def _check_unreferenced_bodies(self) -> None:
        for sha, body in self.ledger.stored_bodies():
            if sha in self.bodies:
                continue
            if sha256_hex(body) != sha:
                self.result.failures.append(
                    AuditFailure(f"stored body {sha} does not match its SHA-256 and no entry names it (replaced)")
                )


def _body_problem(check: BodyCheck, what: str) -> list[str]:
    if check == "replaced":
        return [f"the stored {what} body was replaced: its bytes no longer match the SHA-256 the entry names"]
    if check == "missing":
        return [f"the stored {what} body is missing (deleted without `ledger prune`)"]
    return []


def _json(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
