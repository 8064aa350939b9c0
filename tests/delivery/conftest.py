"""Fixtures of the delivery tests: `make_engine`, a Delivery on a fake CorEMR (see engine_fakes)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ..sites import KeyPair
from .engine_fakes import Engine, engine_factory


@pytest.fixture
def make_engine(
    tmp_path: Path, client_keys: KeyPair, server_keys: KeyPair, server_keyring_dir: Path
) -> Iterator[Callable[..., Engine]]:
    """Make Engines: a Delivery on a scripted, signing fake CorEMR and a real ledger file."""
    yield from engine_factory(tmp_path, client_keys, server_keys, server_keyring_dir)
