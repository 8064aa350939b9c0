"""Fixtures of the review tests."""

from __future__ import annotations

import pytest

from ..sites import Site
from .mixed_ledger import MixedLedger, make_mixed_ledger


@pytest.fixture
def mixed(site: Site) -> MixedLedger:
    """A ledger of two real runs with rows in several states."""
    return make_mixed_ledger(site)
