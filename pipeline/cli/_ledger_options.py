"""The options every command that reads or looks after the ledger shares: -c/--config and -l/--ledger."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from ..delivery import RunConfig

__all__ = ["LEDGER_PATH", "LedgerChoice", "ledger_options"]

LEDGER_PATH = click.Path(path_type=Path, dir_okay=False)  # existence is checked by us: one line, not a usage block
F = TypeVar("F", bound=Callable[..., Any])


class LedgerChoice:
    """The config (when given) and the ledger a command works on: --ledger, else the one the config names."""

    def __init__(self, config_path: Path | None, ledger_path: Path | None) -> None:
        self.config_path = config_path
        self._ledger_path = ledger_path
        self._config: RunConfig | None = None

    @property
    def config(self) -> RunConfig:
        """The run config (loaded once); a usage error when none was given."""
        if self._config is None:
            if self.config_path is None:
                raise click.UsageError("give --config CONFIG (the run config: our key and CorEMR's keyring)")
            from ..delivery import load_config  # only the commands that need the config load delivery

            self._config = load_config(self.config_path)
        return self._config

    @property
    def ledger(self) -> Path:
        """The ledger file, as an absolute path."""
        if self._ledger_path is not None:
            return self._ledger_path.resolve()
        if self.config_path is None:
            raise click.UsageError("give --config CONFIG (it names the ledger) or --ledger LEDGER")
        return self.config.ledger


def ledger_options(*, config_help: str = "Run config (TOML): names the ledger.") -> Callable[[F], F]:
    """Add -c/--config and -l/--ledger; the command receives `choice: LedgerChoice`."""

    def decorate(command: F) -> F:
        @click.option("-c", "--config", "config_path", type=LEDGER_PATH, help=config_help)
        @click.option("-l", "--ledger", "ledger_path", type=LEDGER_PATH,
                      help="The ledger file (SQLite); default: the one the config names.")  # fmt: skip
        @functools.wraps(command)
        def wrapper(*args: Any, config_path: Path | None, ledger_path: Path | None, **kwargs: Any) -> Any:
            return command(*args, choice=LedgerChoice(config_path, ledger_path), **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
