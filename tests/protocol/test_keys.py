"""Key pairs on disk: generation, safe loading once per process, and the keyring of trusted signers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from pipeline import KeyFileError
from pipeline.protocol import (
    DEFAULT_BITS,
    AuthorizationHeader,
    Keyring,
    generate_private_key,
    load_private_key,
    load_public_key,
    passphrase_from_environment,
    sign,
    verify_body,
    write_key_pair,
)
from pipeline.protocol._keys import write_private_file

from ..sites import CLIENT_ACCESS, KeyPair

PASSPHRASE = b"a passphrase nobody guesses"


def _copy_private(source: Path, directory: Path, name: str = "rsa.private") -> Path:
    target = directory / name
    write_private_file(target, source.read_bytes())
    return target


@pytest.fixture(scope="module")
def encrypted_private(tmp_path_factory: pytest.TempPathFactory, client_keys: KeyPair) -> Path:
    """The client key as an encrypted PKCS#8 PEM, mode 0600."""
    path = tmp_path_factory.mktemp("encrypted") / "rsa.private"
    pem = client_keys.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE),
    )
    write_private_file(path, pem)
    return path


def test_write_key_pair_writes_pkcs8_private_0600_and_spki_public_under_umask_022(tmp_path: Path) -> None:
    assert os.umask(0o022) == 0o022  # conftest sets the common umask; put it back after reading it

    files = write_key_pair(tmp_path / "keys", 2048)

    assert (files.private, files.public) == (tmp_path / "keys/rsa.private", tmp_path / "keys/rsa.public")
    assert files.private.stat().st_mode & 0o777 == 0o600
    assert files.private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert files.public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----\n")
    key = load_private_key(files.private)
    assert key.key_size == 2048
    assert load_public_key(files.public).public_numbers() == key.public_key().public_numbers()


def test_write_key_pair_refuses_to_overwrite_a_private_key(tmp_path: Path, client_keys: KeyPair) -> None:
    existing = _copy_private(client_keys.private, tmp_path)

    with pytest.raises(KeyFileError, match="a private key is already there"):
        write_key_pair(tmp_path, 2048)

    assert existing.read_bytes() == client_keys.private.read_bytes()
    assert not (tmp_path / "rsa.public").exists()


def test_default_key_size_is_4096_and_below_2048_is_refused() -> None:
    assert DEFAULT_BITS == 4096
    with pytest.raises(KeyFileError, match="at least 2048 bits"):
        generate_private_key(1024)


def test_write_private_file_tightens_an_existing_world_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"old")
    path.chmod(0o644)

    write_private_file(path, b"new")

    assert (path.read_bytes(), path.stat().st_mode & 0o777) == (b"new", 0o600)


def test_private_key_is_loaded_once_and_reloaded_when_the_file_is_replaced(
    tmp_path: Path, client_keys: KeyPair, other_keys: KeyPair
) -> None:
    path = _copy_private(client_keys.private, tmp_path)

    first = load_private_key(path)
    assert load_private_key(path) is first
    assert load_private_key(str(path)) is first

    replacement = _copy_private(other_keys.private, tmp_path, "new.private")
    os.replace(replacement, path)
    reloaded = load_private_key(path)

    assert reloaded is not first
    assert reloaded.public_key().public_numbers() == other_keys.key.public_key().public_numbers()


def test_a_cached_key_is_refused_once_its_file_becomes_world_readable(tmp_path: Path, client_keys: KeyPair) -> None:
    path = _copy_private(client_keys.private, tmp_path)
    load_private_key(path)

    path.chmod(0o644)

    with pytest.raises(KeyFileError, match=re.escape(f"run: chmod 600 {path}") + "$"):
        load_private_key(path)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_private_key_readable_by_group_or_others_is_refused_with_the_fix(
    tmp_path: Path, client_keys: KeyPair, mode: int
) -> None:
    path = _copy_private(client_keys.private, tmp_path)
    path.chmod(mode)

    with pytest.raises(KeyFileError) as raised:
        load_private_key(path)

    assert str(raised.value) == (
        f"{path}: private key is accessible by group or others (mode {mode:04o}); run: chmod 600 {path}"
    )


def test_public_key_given_as_private_says_so_even_when_world_readable(tmp_path: Path, client_keys: KeyPair) -> None:
    path = tmp_path / "rsa.public"
    shutil.copy(client_keys.public, path)
    path.chmod(0o644)

    with pytest.raises(KeyFileError, match="this is a public key; give the private key"):
        load_private_key(path)


def test_encrypted_key_loads_with_its_passphrase_and_names_the_problem_without_it(
    encrypted_private: Path, client_keys: KeyPair
) -> None:
    key = load_private_key(encrypted_private, PASSPHRASE)

    assert key.public_key().public_numbers() == client_keys.key.public_key().public_numbers()
    with pytest.raises(KeyFileError, match=r"the private key is encrypted; .*--passphrase-env"):
        load_private_key(encrypted_private)
    with pytest.raises(KeyFileError) as raised:
        load_private_key(encrypted_private, b"wrong")
    assert str(raised.value) == f"{encrypted_private}: wrong passphrase for the encrypted private key"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such private key file"),
        (b"", "the private key file is empty"),
        (b"hello\n", "not a PEM private key"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not a PEM private key"),
    ],
    ids=["missing", "empty", "not-pem", "broken-pem"],
)
def test_unusable_private_key_files_give_one_line_naming_the_file(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "rsa.private"
    if content is not None:
        write_private_file(path, content)

    with pytest.raises(KeyFileError) as raised:
        load_private_key(path)

    text = str(raised.value)
    assert text.startswith(f"{path}: ") and message in text
    assert "\n" not in text


def test_directory_given_as_private_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="is a directory"):
        load_private_key(tmp_path)


def test_key_errors_never_contain_key_material(tmp_path: Path, client_keys: KeyPair) -> None:
    path = _copy_private(client_keys.private, tmp_path)
    path.chmod(0o644)
    pem_lines = [line for line in client_keys.private.read_text().splitlines() if "-----" not in line]

    with pytest.raises(KeyFileError) as raised:
        load_private_key(path)

    assert not any(line in str(raised.value) for line in pem_lines)


def test_public_key_loader_refuses_a_private_key_and_reads_pkcs1_public(tmp_path: Path, client_keys: KeyPair) -> None:
    pkcs1 = tmp_path / "pkcs1.pem"
    pkcs1.write_bytes(
        client_keys.key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    )

    assert load_public_key(pkcs1).public_numbers() == client_keys.key.public_key().public_numbers()
    with pytest.raises(KeyFileError, match="this is a private key; give the public key"):
        load_public_key(client_keys.private)


def test_passphrase_comes_from_the_named_variable_or_cws_key_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CWS_KEY_PASSPHRASE", raising=False)
    monkeypatch.delenv("SITE_KEY_PASS", raising=False)
    assert passphrase_from_environment() is None
    with pytest.raises(KeyFileError, match="environment variable SITE_KEY_PASS is not set"):
        passphrase_from_environment("SITE_KEY_PASS")

    monkeypatch.setenv("CWS_KEY_PASSPHRASE", "default one")
    monkeypatch.setenv("SITE_KEY_PASS", "named one")

    assert passphrase_from_environment() == b"default one"
    assert passphrase_from_environment("SITE_KEY_PASS") == b"named one"


# Keyring


def test_keyring_finds_a_signer_by_username_and_lists_them(client_keyring_dir: Path, client_keys: KeyPair) -> None:
    keyring = Keyring(client_keyring_dir)

    key = keyring.public_key(CLIENT_ACCESS)

    assert key is not None and key.public_numbers() == client_keys.key.public_key().public_numbers()
    assert keyring.usernames() == [CLIENT_ACCESS]
    assert keyring.path_for(CLIENT_ACCESS) == client_keyring_dir / "county-jms.pem"


def test_unknown_signer_is_a_failure_naming_the_file_looked_for(client_keyring_dir: Path, other_keys: KeyPair) -> None:
    header = str(AuthorizationHeader.for_body(b"{}", other_keys.key, "acme"))

    found = verify_body(b"{}", header, Keyring(client_keyring_dir))

    assert (found.status, found.ok, found.signer) == ("unknown_signer", False, "acme")
    assert found.reason == f"unknown signer: acme (no {client_keyring_dir / 'acme.pem'})"


@pytest.mark.parametrize(
    "username", ["../outside/trusted", "..", "../trusted", "/abs/trusted", ".hidden", "sub/trusted", "x\\..\\y"]
)
def test_username_never_reads_a_key_outside_the_keyring_directory(
    tmp_path: Path, other_keys: KeyPair, username: str
) -> None:
    ring = tmp_path / "ring"
    ring.mkdir()
    # Plant the signer's real public key at every place a path-walking username could reach.
    for planted in [tmp_path / "outside/trusted.pem", tmp_path / "trusted.pem", ring / ".hidden.pem"]:
        planted.parent.mkdir(exist_ok=True)
        shutil.copy(other_keys.public, planted)
    (ring / "sub").mkdir()
    shutil.copy(other_keys.public, ring / "sub/trusted.pem")
    header = str(AuthorizationHeader("CWS-SHA256", username, sign(b"{}", other_keys.key)))

    found = verify_body(b"{}", header, Keyring(ring))

    assert found.status == "unknown_signer"
    assert Keyring(ring).path_for(username) is None


def test_keyring_directory_that_does_not_exist_is_a_key_file_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="^" + re.escape(f"{tmp_path / 'nope'}: keyring directory not found")):
        Keyring(tmp_path / "nope")


@pytest.mark.parametrize("bits", [512, 1024])
def test_sign_and_run_refuse_a_private_key_shorter_than_2048_bits(tmp_path: Path, bits: int) -> None:
    short = tmp_path / "rsa.private"
    subprocess.run(["openssl", "genrsa", "-out", str(short), str(bits)], check=True, capture_output=True)
    short.chmod(0o600)
    refusal = f"a {bits}-bit private key: this pipeline takes RSA keys of at least 2048 bits"
    with pytest.raises(KeyFileError, match=refusal):
        load_private_key(short)  # what `sign` and `run` load their key with
