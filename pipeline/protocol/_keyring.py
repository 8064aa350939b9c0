"""A keyring: a directory of public keys, `<USERNAME>.pem` for each signer we trust."""

from __future__ import annotations

import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from .._errors import KeyFileError
from ._keys import load_public_key

__all__ = ["Keyring"]

# A username becomes a file name: allow what CorEMR usernames plausibly hold and nothing that
# could walk out of the directory ("../x", "/etc/x", ".hidden").
_USERNAME = re.compile(r"[A-Za-z0-9_@+-][A-Za-z0-9._@+-]*")


class Keyring:
    """Public keys by signer name; `Access=NAME` in a response is checked with `DIR/NAME.pem`."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise KeyFileError(
                f"{self.directory}: keyring directory not found; save CorEMR's public key there as <USERNAME>.pem"
            )
        self._keys: dict[str, rsa.RSAPublicKey | None] = {}

    def path_for(self, username: str) -> Path | None:
        """Where this signer's key would be (`DIR/<USERNAME>.pem`), or None for a name that cannot be a file."""
        if not _USERNAME.fullmatch(username):
            return None
        return self.directory / f"{username}.pem"

    def public_key(self, username: str) -> rsa.RSAPublicKey | None:
        """The key for this signer, or None when no `<USERNAME>.pem` is in the directory."""
        if username in self._keys:
            return self._keys[username]
        key: rsa.RSAPublicKey | None = None
        path = self.path_for(username)
        if path is not None and path.is_file():
            key = load_public_key(path)
        self._keys[username] = key
        return key

    def why_unknown(self, username: str) -> str:
        """Why this signer has no key here, naming the file that was looked for."""
        path = self.path_for(username)
        if path is None:
            return f"{username!r} cannot be a key file name in {self.directory}"
        return f"no {path}"

    def usernames(self) -> list[str]:
        """The signers this keyring holds keys for, sorted."""
        return sorted(p.stem for p in self.directory.glob("*.pem") if _USERNAME.fullmatch(p.stem))
