"""Faults the local CWS server can inject, drawn from a seeded RNG so a run can be repeated.

A fault spec on the command line reads `KIND[:key=value,...]`, for example `status_503:first=2`,
`status_429:rate=0.1,retry_after=2` or `latency:latency_ms=100,methods=GET+POST`.

Hostile answers, signed like any other, from a site that is not (or not only) CorEMR: `replay_2xx` answers
a request with the last 2xx answer (bytes and signature) it gave another one; `created_other` a 201 naming
another patient; `created_error` a 201 whose body is an error; `redirect_302` a 302 to a login page;
`lookup_other` a 200 naming another patient (and the asked booking number, on a bookings route). None of
them stores anything. Not hostile, but another shape of answer a real CorEMR may give (assumption
"answer-shape"): `answer_bare` serves the request (a create stores its patient) and answers its 2xx with an
empty JSON object, naming nothing; `error_after_store` serves it and answers its 2xx with a 500 instead (a
server that failed after writing).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

from .._errors import UserInputError

__all__ = ["FAULT_KINDS", "Fault", "FaultKind", "FaultPlan", "FaultsDrawn"]

FaultKind = Literal[
    "status_500",
    "status_503",
    "status_429",
    "latency",
    "drop_after_processing",
    "signature_corrupt",
    "signature_missing",
    "signature_sha1",
    "signature_unknown_signer",
    "replay_2xx",
    "created_other",
    "created_error",
    "redirect_302",
    "lookup_other",
    "answer_bare",
    "error_after_store",
]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)

# A request gets at most one fault from each group (the first listed that fires), plus any latency.
_STATUS_KINDS = frozenset({"status_500", "status_503", "status_429"})
_SIGNATURE_KINDS = frozenset({"signature_corrupt", "signature_missing", "signature_sha1", "signature_unknown_signer"})
# One answer replaced per request; all but answer_bare and error_after_store take the place of serving it.
_HOSTILE_KINDS = frozenset(
    {"replay_2xx", "created_other", "created_error", "redirect_302", "lookup_other", "answer_bare", "error_after_store"}
)
_PARAMS = ("rate", "first", "methods", "retry_after", "latency_ms")


@dataclass(frozen=True)
class Fault:
    """One fault: what happens, how often, to which request methods."""

    kind: FaultKind
    rate: float = 1.0
    first: int | None = None
    methods: tuple[str, ...] = ("POST",)
    retry_after: str | None = "1"
    latency_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of: {', '.join(FAULT_KINDS)}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate must be between 0 and 1, not {self.rate}")
        if self.first is not None and self.first < 0:
            raise ValueError(f"first must be 0 or more, not {self.first}")
        if not self.methods or not all(m.isalpha() and m.isupper() for m in self.methods):
            raise ValueError(f"methods must be upper-case HTTP methods such as GET+POST, not {self.methods!r}")
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must be 0 or more, not {self.latency_ms}")
        if self.retry_after is not None and not self.retry_after.isprintable():
            raise ValueError("retry_after must be printable text")

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """Read the CLI form `KIND[:key=value,...]`; a bad spec raises UserInputError naming it."""
        kind, _, params = spec.strip().partition(":")
        if kind not in FAULT_KINDS:
            raise UserInputError(f"--fault {spec!r}: unknown fault kind {kind!r}; use one of: {', '.join(FAULT_KINDS)}")
        values: dict[str, str] = {}
        for item in filter(None, (p.strip() for p in params.split(","))):
            key, sep, value = item.partition("=")
            if not sep or key not in _PARAMS:
                raise UserInputError(
                    f"--fault {spec!r}: expected key=value with a key among {', '.join(_PARAMS)}, got {item!r}"
                )
            values[key] = value
        if "retry_after" in values and kind != "status_429":
            raise UserInputError(f"--fault {spec!r}: retry_after applies to status_429 only")
        if "latency_ms" in values and kind != "latency":
            raise UserInputError(f"--fault {spec!r}: latency_ms applies to latency only")
        try:
            return cls(
                kind=kind,  # checked against FAULT_KINDS above
                rate=float(values.get("rate", "1")),
                first=int(values["first"]) if "first" in values else None,
                methods=tuple(m.strip().upper() for m in values.get("methods", "POST").split("+")),
                retry_after=_retry_after(values.get("retry_after", "1")),
                latency_ms=float(values.get("latency_ms", "0")),
            )
        except ValueError as exc:
            raise UserInputError(f"--fault {spec!r}: {exc}") from None


def _retry_after(value: str) -> str | None:
    return None if value.lower() in ("", "none") else value


@dataclass(frozen=True)
class FaultsDrawn:
    """The faults one request gets: added latency, at most one status, a drop, a signature fault, a hostile answer."""

    latency_s: float = 0.0
    status: Fault | None = None
    drop: bool = False
    signature: FaultKind | None = None
    kinds: tuple[FaultKind, ...] = field(default=())
    hostile: FaultKind | None = None


class FaultPlan:
    """Decides, per request and thread-safely, which configured faults fire."""

    def __init__(self, faults: Sequence[Fault], seed: int) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)  # noqa: S311  # reproducible test faults, not cryptography
        self._faults: tuple[Fault, ...] = ()
        self._seen: list[int] = []
        self.replace(faults)

    def replace(self, faults: Sequence[Fault]) -> None:
        """Use these faults from now on; each fault's `first` count starts again."""
        with self._lock:
            self._faults = tuple(faults)
            self._seen = [0] * len(self._faults)

    def draw(self, method: str) -> FaultsDrawn:
        """Which faults fire for the next request with this method."""
        latency_ms = 0.0
        status: Fault | None = None
        drop = False
        signature: FaultKind | None = None
        hostile: FaultKind | None = None
        kinds: list[FaultKind] = []
        with self._lock:
            for i, fault in enumerate(self._faults):
                if method not in fault.methods:
                    continue
                self._seen[i] += 1
                # `first` counts the matching requests seen, so first=2 means "the first two, then never".
                if fault.first is not None and self._seen[i] > fault.first:
                    continue
                if fault.rate < 1.0 and self._rng.random() >= fault.rate:
                    continue
                if fault.kind == "latency":
                    latency_ms += fault.latency_ms
                elif fault.kind in _STATUS_KINDS:
                    if status is not None:
                        continue
                    status = fault
                elif fault.kind == "drop_after_processing":
                    if drop:
                        continue
                    drop = True
                elif fault.kind in _SIGNATURE_KINDS:
                    if signature is not None:
                        continue
                    signature = fault.kind
                elif fault.kind in _HOSTILE_KINDS:
                    if hostile is not None:
                        continue
                    hostile = fault.kind
                kinds.append(fault.kind)
        if status is not None:  # a refused request was never processed, so there is nothing to drop or replace
            kinds = [k for k in kinds if k != "drop_after_processing" and k != hostile]
            drop, hostile = False, None
        return FaultsDrawn(latency_ms / 1000.0, status, drop, signature, tuple(kinds), hostile)
