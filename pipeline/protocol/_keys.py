"""RSA key pairs: generate them the way `openssl genrsa` does, load them once, refuse unsafe files."""

from __future__ import annotations

import functools
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .._errors import KeyFileError
from .._private_files import open_private

__all__ = [
    "KeyPairFiles",
    "check_key_size",
    "generate_private_key",
    "load_private_key",
    "load_public_key",
    "passphrase_from_environment",
    "public_key_pem",
    "write_key_pair",
    "write_private_file",
]

DEFAULT_BITS = 4096
MIN_BITS = 2048
MAX_BITS = 16384  # larger keys take minutes to hours to generate and seconds per signature
PASSPHRASE_ENV = "CWS_KEY_PASSPHRASE"  # noqa: S105 -- the name of a variable, not a passphrase


@dataclass(frozen=True)
class KeyPairFiles:
    """Where `write_key_pair` put the two halves of a key pair."""

    private: Path
    public: Path


def check_key_size(bits: int, what: str) -> None:
    """The one key-size rule, for keys made and keys used: from 2048 to 16384 bits (assumption "key-floor-2048").

    WHAT names the key in the error: "--bits 1024", "keys/rsa.private: a 1024-bit key".
    """
    if bits < MIN_BITS:
        raise KeyFileError(
            f"{what}: this pipeline takes RSA keys of at least {MIN_BITS} bits (our floor: CorEMR's docs recommend"
            " 2048 as the minimum, and CorEMR uses 4096); make a new pair with `cws-pipeline keygen`"
        )
    if bits > MAX_BITS:
        raise KeyFileError(f"{what}: use RSA keys of at most {MAX_BITS} bits (4096 recommended)")


def generate_private_key(bits: int = DEFAULT_BITS) -> rsa.RSAPrivateKey:
    """Generate an RSA private key with exponent 65537, like `openssl genrsa BITS`."""
    check_key_size(bits, f"--bits {bits}")
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def public_key_pem(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> bytes:
    """The SPKI `BEGIN PUBLIC KEY` PEM that CorEMR's Administration → Public Keys accepts."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_private_file(path: Path, data: bytes) -> None:
    """Write bytes to a new file that only its owner can read (mode 0600 from the first byte)."""
    fd = open_private(path)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def write_key_pair(directory: Path, bits: int = DEFAULT_BITS) -> KeyPairFiles:
    """Write DIR/rsa.private (PKCS#8 PEM, mode 0600) and DIR/rsa.public (SPKI PEM)."""
    files = KeyPairFiles(private=directory / "rsa.private", public=directory / "rsa.public")
    if files.private.exists():
        raise KeyFileError(f"{files.private}: a private key is already there; move it away or choose another DIR")
    key = generate_private_key(bits)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        directory.mkdir(parents=True, exist_ok=True)
        write_private_file(files.private, pem)
        files.public.write_bytes(public_key_pem(key))
    except OSError as exc:
        raise KeyFileError(f"{exc.filename or directory}: cannot write the key pair ({exc.strerror})") from None
    return files


def _check_private_file_mode(path: Path) -> None:
    """Refuse a private key that group or others can read, the way ssh does."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{path}: private key is accessible by group or others (mode {stat.S_IMODE(mode):04o});"
            f" run: chmod 600 {path}"
        )


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such {what} file") from None
    except IsADirectoryError:
        raise KeyFileError(f"{path}: is a directory, not a {what} file") from None
    except PermissionError:
        raise KeyFileError(f"{path}: permission denied reading the {what} file") from None
    if not data.strip():
        raise KeyFileError(f"{path}: the {what} file is empty")
    return data


def load_private_key(path: Path | str, passphrase: bytes | None = None) -> rsa.RSAPrivateKey:
    """Load an RSA private key (PKCS#8, PKCS#1 or encrypted PEM), once per process per file."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such private key file") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the private key file ({exc.strerror})") from None
    # Loading validates the key (~0.3 s for 4096 bits); the cache keys on the file's identity so an
    # edited, replaced or re-moded file is read (and checked) again. The path is kept as the user
    # spelled it, for messages.
    identity = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_mode)
    return _load_private_key_cached(path, identity, passphrase)


@functools.lru_cache(maxsize=16)
def _load_private_key_cached(path: Path, _identity: tuple[int, ...], passphrase: bytes | None) -> rsa.RSAPrivateKey:
    data = _read_key_file(path, "private key")
    # Say "wrong kind of key" before "wrong mode": a public key is usually 0644 and chmod would not help.
    if b"PUBLIC KEY-----" in data and b"PRIVATE KEY-----" not in data:
        raise KeyFileError(
            f"{path}: this is a public key; give the private key (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)"
        )
    _check_private_file_mode(path)
    encrypted = b"ENCRYPTED" in data
    if encrypted and passphrase is None:
        raise KeyFileError(
            f"{path}: the private key is encrypted; put its passphrase in an environment variable and name it"
            f" with passphrase_env (or --passphrase-env; default {PASSPHRASE_ENV})"
        )
    try:
        key = serialization.load_pem_private_key(data, password=passphrase if encrypted else None)
    except (ValueError, TypeError) as exc:
        if encrypted:
            raise KeyFileError(f"{path}: wrong passphrase for the encrypted private key") from None
        raise KeyFileError(f"{path}: not a PEM private key ({_first_line(exc)})") from None
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm and others for odd files
        raise KeyFileError(f"{path}: cannot load the private key ({type(exc).__name__})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFileError(f"{path}: not an RSA key; CWS signs with RSA (openssl genrsa 4096)")
    check_key_size(key.key_size, f"{path}: a {key.key_size}-bit private key")
    return key


def passphrase_from_environment(variable: str | None = None, *, named_by: str = "--passphrase-env") -> bytes | None:
    """An encrypted key's passphrase: from VARIABLE when one is named (it must be set), else CWS_KEY_PASSPHRASE.

    The one rule every command follows. NAMED_BY says where VARIABLE was named (a CLI option, or
    `cws.toml: passphrase_env`), so the error points at the setting to fix. None when no variable
    is named and CWS_KEY_PASSPHRASE is not set: an unencrypted key needs none.
    """
    if variable is None:
        value = os.environ.get(PASSPHRASE_ENV)
        return None if value is None else value.encode()
    value = os.environ.get(variable)
    if value is None:
        raise KeyFileError(
            f"{named_by}: environment variable {variable} is not set; export the private key's passphrase in it"
        )
    return value.encode()


def load_public_key(path: Path | str) -> rsa.RSAPublicKey:
    """Load an RSA public key from SPKI (`BEGIN PUBLIC KEY`) or PKCS#1 (`BEGIN RSA PUBLIC KEY`) PEM."""
    path = Path(path)
    data = _read_key_file(path, "public key")
    if b"PRIVATE KEY-----" in data:
        raise KeyFileError(f"{path}: this is a private key; give the public key (BEGIN PUBLIC KEY)")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise KeyFileError(f"{path}: not a PEM public key ({_first_line(exc)})") from None
    except Exception as exc:
        raise KeyFileError(f"{path}: cannot load the public key ({type(exc).__name__})") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyFileError(f"{path}: not an RSA public key")
    return key


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
