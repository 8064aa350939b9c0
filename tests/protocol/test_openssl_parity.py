"""Byte parity with the real `openssl` CLI, in both directions, as CorEMR's walkthrough uses it."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.protocol import (
    ALGORITHMS,
    Algorithm,
    AuthorizationHeader,
    Keyring,
    load_private_key,
    sign,
    verify_body,
    write_key_pair,
)

from ..sites import KeyPair

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="the openssl CLI is not installed (CI installs it)")

BODY = (
    b'{"external_id": "FakeExternalID", "facility": 10000, "agency": 2, "billing_agency": 1,'
    b' "fname": "First", "lname": "Name", "dob": "2000-04-12 10:00:00.000", "sex": "M"}'
)
PASSPHRASE = "correct horse battery staple"
DIGEST = {"CWS-SHA256": "-sha256", "CWS-SHA1": "-sha1"}


def openssl(*args: str | Path, input: bytes | None = None) -> bytes:
    """Run the openssl CLI with a fixed argument list and return its stdout."""
    assert OPENSSL is not None
    done = subprocess.run([OPENSSL, *map(str, args)], input=input, capture_output=True, check=True)
    return done.stdout


def openssl_sign(private: Path, body_file: Path, algorithm: str, tmp: Path) -> str:
    """The walkthrough's two steps: `openssl dgst -sha256 -sign` then `openssl enc -A -base64`."""
    raw = tmp / "sign.bin"
    openssl("dgst", DIGEST[algorithm], "-sign", private, "-out", raw, body_file)
    return openssl("enc", "-A", "-base64", "-in", raw).decode("ascii")


def openssl_verifies(public: Path, body_file: Path, algorithm: str, signature_b64: str, tmp: Path) -> bool:
    """The walkthrough's response check: `openssl dgst -sha256 -verify PUB -signature SIG body`."""
    raw = tmp / "response_sign.bin"
    raw.write_bytes(base64.b64decode(signature_b64))
    assert OPENSSL is not None
    done = subprocess.run(
        [OPENSSL, "dgst", DIGEST[algorithm], "-verify", str(public), "-signature", str(raw), str(body_file)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0 and done.stdout == b"Verified OK\n"


@pytest.fixture(scope="module")
def openssl_4096(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 4096-bit pair made exactly as the walkthrough says (openssl genrsa 4096; rsa -pubout), once."""
    d = tmp_path_factory.mktemp("openssl-4096")
    private, public = d / "rsa.private", d / "rsa.public"
    openssl("genrsa", "-out", private, "4096")
    private.chmod(0o600)
    openssl("rsa", "-in", private, "-out", public, "-pubout", "-outform", "PEM")
    return private, public


@pytest.fixture(params=[2048, 4096], ids=["2048-bit", "4096-bit"])
def pair(request: pytest.FixtureRequest, client_keys: KeyPair) -> tuple[Path, Path]:
    """(private, public) paths of a 2048-bit (ours) or 4096-bit (openssl genrsa) key."""
    if request.param == 2048:
        return client_keys.private, client_keys.public
    result: tuple[Path, Path] = request.getfixturevalue("openssl_4096")
    return result


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("body", [BODY, b""], ids=["json-body", "empty-body"])
def test_our_signature_is_byte_identical_to_openssl_and_passes_openssl_verify(
    tmp_path: Path, pair: tuple[Path, Path], algorithm: Algorithm, body: bytes
) -> None:
    private, public = pair
    body_file = tmp_path / "body.txt"
    body_file.write_bytes(body)

    ours = sign(body, load_private_key(private), algorithm)

    assert ours.encode("ascii") == openssl_sign(private, body_file, algorithm, tmp_path).encode("ascii")
    assert openssl_verifies(public, body_file, algorithm, ours, tmp_path)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("body", [BODY, b""], ids=["json-body", "empty-body"])
def test_openssl_signature_passes_our_verify(
    tmp_path: Path, pair: tuple[Path, Path], algorithm: Algorithm, body: bytes
) -> None:
    private, public = pair
    body_file = tmp_path / "body.txt"
    body_file.write_bytes(body)
    ring = tmp_path / "keys"
    ring.mkdir()
    shutil.copy(public, ring / "coremr.pem")
    theirs = openssl_sign(private, body_file, algorithm, tmp_path)
    header = f"{algorithm} Access=coremr, Signature={theirs}"

    found = verify_body(body, header, Keyring(ring))

    assert found.status == "ok", found.reason


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_body_with_added_trailing_newline_fails_both_verifiers(
    tmp_path: Path, client_keys: KeyPair, client_keyring_dir: Path, algorithm: Algorithm
) -> None:
    private, public = client_keys.private, client_keys.public
    signature = sign(BODY, load_private_key(private), algorithm)
    with_newline = tmp_path / "body.txt"
    with_newline.write_bytes(BODY + b"\n")
    header = f"{algorithm} Access=county-jms, Signature={signature}"

    assert verify_body(BODY, header, Keyring(client_keyring_dir)).ok
    assert verify_body(BODY + b"\n", header, Keyring(client_keyring_dir)).status == "bad_signature"
    assert not openssl_verifies(public, with_newline, algorithm, signature, tmp_path)


@pytest.fixture(scope="module")
def key_formats(tmp_path_factory: pytest.TempPathFactory, client_keys: KeyPair) -> dict[str, Path]:
    """The client key written by openssl in every form a site may have it: PKCS#8, PKCS#1, encrypted."""
    d = tmp_path_factory.mktemp("key-formats")
    source = client_keys.private
    files = {
        "pkcs8": d / "pkcs8.pem",
        "pkcs1": d / "pkcs1.pem",
        "encrypted-pkcs8": d / "encrypted-pkcs8.pem",
        "encrypted-pkcs1": d / "encrypted-pkcs1.pem",
    }
    openssl("pkey", "-in", source, "-out", files["pkcs8"])
    openssl("rsa", "-in", source, "-traditional", "-out", files["pkcs1"])
    openssl("pkey", "-in", source, "-aes256", "-passout", f"pass:{PASSPHRASE}", "-out", files["encrypted-pkcs8"])
    openssl(
        "rsa", "-in", source, "-traditional", "-aes256", "-passout", f"pass:{PASSPHRASE}", "-out",
        files["encrypted-pkcs1"],
    )  # fmt: skip
    for f in files.values():
        f.chmod(0o600)
    return files


@pytest.mark.parametrize(
    ("form", "first_line", "passphrase"),
    [
        ("pkcs8", b"-----BEGIN PRIVATE KEY-----", None),
        ("pkcs1", b"-----BEGIN RSA PRIVATE KEY-----", None),
        ("encrypted-pkcs8", b"-----BEGIN ENCRYPTED PRIVATE KEY-----", PASSPHRASE.encode()),
        ("encrypted-pkcs1", b"-----BEGIN RSA PRIVATE KEY-----", PASSPHRASE.encode()),
    ],
)
def test_openssl_written_private_keys_load_and_sign_like_openssl(
    tmp_path: Path,
    client_keys: KeyPair,
    key_formats: dict[str, Path],
    form: str,
    first_line: bytes,
    passphrase: bytes | None,
) -> None:
    path = key_formats[form]
    assert path.read_bytes().splitlines()[0] == first_line
    if form == "encrypted-pkcs1":
        assert b"Proc-Type: 4,ENCRYPTED" in path.read_bytes()
    body_file = tmp_path / "body.txt"
    body_file.write_bytes(BODY)

    ours = sign(BODY, load_private_key(path, passphrase))

    assert ours == openssl_sign(client_keys.private, body_file, "CWS-SHA256", tmp_path)


def test_keygen_public_file_is_what_openssl_derives_from_the_private_file(tmp_path: Path) -> None:
    files = write_key_pair(tmp_path / "keys", 2048)

    derived = openssl("rsa", "-in", files.private, "-pubout", "-outform", "PEM")

    assert files.public.read_bytes() == derived
    assert openssl("rsa", "-in", files.private, "-check", "-noout") == b"RSA key ok\n"


def test_sign_command_prints_the_openssl_signature_and_header(tmp_path: Path, client_keys: KeyPair) -> None:
    private = client_keys.private
    body_file = tmp_path / "body.txt"
    body_file.write_bytes(BODY)
    expected = openssl_sign(private, body_file, "CWS-SHA1", tmp_path)

    bare = CliRunner().invoke(cli, ["sign", str(body_file), "--key", str(private), "--algorithm", "CWS-SHA1"])
    header = CliRunner().invoke(
        cli, ["sign", str(body_file), "--key", str(private), "--algorithm", "CWS-SHA1", "--access", "county-jms"]
    )

    assert (bare.exit_code, bare.stdout, bare.stderr) == (0, expected + "\n", "")
    assert header.stdout == f"CWS-SHA1 Access=county-jms, Signature={expected}\n"
    assert AuthorizationHeader.parse(header.stdout.rstrip("\n")).signature == expected
