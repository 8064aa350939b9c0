"""The run configuration (TOML): where CorEMR is, who we are, which keys, where the ledger lives."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .._errors import ConfigError
from ..protocol import ALGORITHMS, Algorithm, is_loopback

__all__ = ["RunConfig", "load_config"]


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
    concurrency: int = 8
    max_attempts: int = 5
    timeout: float = 30.0
    retry_initial_wait: float = 0.5
    retry_max_wait: float = 30.0
    retry_after_cap: float = 60.0
    circuit_breaker: int = 5
    ca_bundle: Path | None = None
    allow_insecure_http: bool = False


# key -> (type(s), required)
_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "base_url": ((str,), True),
    "access": ((str,), True),
    "private_key": ((str,), True),
    "server_keys": ((str,), True),
    "ledger": ((str,), False),
    "algorithm": ((str,), False),
    "accept_algorithms": ((list,), False),
    "passphrase_env": ((str,), False),
    "concurrency": ((int,), False),
    "max_attempts": ((int,), False),
    "timeout": ((int, float), False),
    "retry_initial_wait": ((int, float), False),
    "retry_max_wait": ((int, float), False),
    "retry_after_cap": ((int, float), False),
    "circuit_breaker": ((int,), False),
    "ca_bundle": ((str,), False),
    "allow_insecure_http": ((bool,), False),
}


def load_config(path: Path | str) -> RunConfig:
    """Read and check a run configuration; paths inside it are relative to the file."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{path}: {key}: {problem}")

    for key, value in raw.items():
        if key not in _KEYS:
            raise fail(key, f"unknown key; known keys are {', '.join(sorted(_KEYS))}")
        types, _ = _KEYS[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise fail(key, f"expected {' or '.join(t.__name__ for t in types)}, got {type(value).__name__}")
    for key, (_, required) in _KEYS.items():
        if required and key not in raw:
            raise fail(key, "required key is missing")

    base = path.parent.resolve()

    def local(value: str) -> Path:
        return (base / Path(value).expanduser()).resolve()

    opts: dict[str, Any] = {}
    base_url = str(raw["base_url"]).rstrip("/")
    allow_http = bool(raw.get("allow_insecure_http", False))
    _check_base_url(base_url, allow_http, fail)
    algorithm = raw.get("algorithm", "CWS-SHA256")
    if algorithm not in ALGORITHMS:
        raise fail("algorithm", f"{algorithm!r} is not one of {', '.join(ALGORITHMS)}")
    accept = tuple(raw.get("accept_algorithms", ALGORITHMS))
    bad = [a for a in accept if a not in ALGORITHMS]
    if bad or not accept:
        raise fail("accept_algorithms", f"give a non-empty list drawn from {', '.join(ALGORITHMS)}")
    for key in ("concurrency", "max_attempts", "circuit_breaker"):
        if key in raw and raw[key] < 1:
            raise fail(key, "must be at least 1")
    for key in ("timeout", "retry_initial_wait", "retry_max_wait", "retry_after_cap"):
        if key in raw:
            if raw[key] < 0 or (key == "timeout" and raw[key] == 0):
                raise fail(key, "must be a positive number of seconds")
            opts[key] = float(raw[key])
    for key in ("concurrency", "max_attempts", "circuit_breaker", "passphrase_env"):
        if key in raw:
            opts[key] = raw[key]
    if "ca_bundle" in raw:
        opts["ca_bundle"] = local(raw["ca_bundle"])
    return RunConfig(
        path=path.resolve(),
        base_url=base_url,
        access=str(raw["access"]),
        private_key=local(raw["private_key"]),
        server_keys=local(raw["server_keys"]),
        ledger=local(raw.get("ledger", "ledger.sqlite")),
        algorithm=algorithm,
        accept_algorithms=accept,
        allow_insecure_http=allow_http,
        **opts,
    )


def _check_base_url(url: str, allow_http: bool, fail: Any) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise fail("base_url", f"{url!r} is not an http(s) URL like https://coremr.example.org")
    if parts.scheme == "http" and not allow_http and not is_loopback(parts.hostname):
        raise fail(
            "base_url",
            "plain http sends patient data unencrypted; use https, or set allow_insecure_http = true",
        )
