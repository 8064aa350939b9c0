"""Shared fixtures: real RSA keys generated once per test session, written as real files."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pipeline._keys import generate_private_key, public_key_pem, write_private_file

CLIENT_ACCESS = "county-jms"
SERVER_ACCESS = "coremr"


@dataclass(frozen=True)
class KeyPair:
    """A key and its two PEM files (private 0600, public SPKI)."""

    key: rsa.RSAPrivateKey
    private: Path
    public: Path


def _write_pair(directory: Path, key: rsa.RSAPrivateKey) -> KeyPair:
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / "rsa.private"
    write_private_file(
        private,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    public = directory / "rsa.public"
    public.write_bytes(public_key_pem(key))
    return KeyPair(key, private, public)


@pytest.fixture(scope="session")
def client_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    """Our (the jail's) 2048-bit key pair."""
    return _write_pair(tmp_path_factory.mktemp("client-keys"), generate_private_key(2048))


@pytest.fixture(scope="session")
def server_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    """CorEMR's (the local server's) 2048-bit key pair."""
    return _write_pair(tmp_path_factory.mktemp("server-keys"), generate_private_key(2048))


@pytest.fixture(scope="session")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    """A third key pair nobody trusts: a wrong key, an impostor server."""
    return _write_pair(tmp_path_factory.mktemp("other-keys"), generate_private_key(2048))


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
