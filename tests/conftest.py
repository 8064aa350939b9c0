"""Shared fixtures: real RSA keys generated once per test session, written as real files, and a site
talking to a real local CWS server on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.protocol import generate_private_key

from .sites import CLIENT_ACCESS, SERVER_ACCESS, SITE_MAPPING, KeyPair, Site, write_pair


@pytest.fixture(scope="session")
def client_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    """Our (the jail's) 2048-bit key pair."""
    return write_pair(tmp_path_factory.mktemp("client-keys"), generate_private_key(2048))


@pytest.fixture(scope="session")
def server_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    """CorEMR's (the local server's) 2048-bit key pair."""
    return write_pair(tmp_path_factory.mktemp("server-keys"), generate_private_key(2048))


@pytest.fixture(scope="session")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    """A third key pair nobody trusts: a wrong key, an impostor server."""
    return write_pair(tmp_path_factory.mktemp("other-keys"), generate_private_key(2048))


@pytest.fixture(scope="session")
def server_keyring_dir(tmp_path_factory: pytest.TempPathFactory, server_keys: KeyPair) -> Path:
    """What the client trusts: keys/coremr/coremr.pem."""
    d = tmp_path_factory.mktemp("server-keyring")
    (d / f"{SERVER_ACCESS}.pem").write_bytes(server_keys.public.read_bytes())
    return d


@pytest.fixture(scope="session")
def client_keyring_dir(tmp_path_factory: pytest.TempPathFactory, client_keys: KeyPair) -> Path:
    """What the local server trusts: county-jms.pem."""
    d = tmp_path_factory.mktemp("client-keyring")
    (d / f"{CLIENT_ACCESS}.pem").write_bytes(client_keys.public.read_bytes())
    return d


@pytest.fixture(autouse=True)
def _no_stray_umask() -> None:
    """Tests create files as users do: with the common 022 umask, so 0600 must come from our code."""
    os.umask(0o022)


# -- a site: config, mapping, bookings and a real local CWS server on loopback ---------------------


@pytest.fixture
def site(
    tmp_path: Path, client_keys: KeyPair, server_keys: KeyPair, client_keyring_dir: Path, server_keyring_dir: Path
) -> Iterator[Site]:
    """A site with config, mapping and a started local CWS server (stopped afterwards)."""
    from pipeline.protocol import Keyring
    from pipeline.simulator import CWSServer

    server = CWSServer(server_keys.key, Keyring(client_keyring_dir)).start()
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(SITE_MAPPING, encoding="utf-8")
    s = Site(tmp_path, server, client_keys, server_keyring_dir, mapping, tmp_path / "cws.toml",
             tmp_path / "ledger.sqlite", server_keys.key, client_keyring_dir)  # fmt: skip
    s.write_config()
    try:
        yield s
    finally:
        s.server.stop()  # the one it has now: a test may have started another (Site.restart_server)
