"""A site on this machine for the demo and the bench: both key pairs, the keyrings each side trusts, a config."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..protocol import write_key_pair

__all__ = ["SERVER_ACCESS", "LocalSite", "make_local_site"]

SERVER_ACCESS = "coremr"


@dataclass(frozen=True)
class LocalSite:
    """Where a local site's files are: `keys/` is ours (the jail's), `server/` plays CorEMR."""

    directory: Path
    access: str  # our username, as CorEMR's Public Keys list would hold it
    client_key: Path  # keys/rsa.private
    server_key: Path  # server/rsa.private
    client_keyring: Path  # server/clients/<access>.pem: whom the server trusts
    server_keyring: Path  # keys/coremr/coremr.pem: whom we trust

    def write_config(
        self,
        base_url: str,
        concurrency: int,
        ledger: Path,
        *,
        name: str = "cws.toml",
        algorithm: str = "CWS-SHA256",
        extra: str = "",
        bookings_routes: bool | None = True,
    ) -> Path:
        """Write a run config for this site (EXTRA: more TOML lines); paths in the site directory are relative.

        BOOKINGS_ROUTES: whether the local server plays them (the v2 default does, v3's does not); None writes
        no setting (a run then follows what `check` found, else assumes none)."""
        routes = "" if bookings_routes is None else f'bookings_routes = "{"yes" if bookings_routes else "no"}"\n'
        path = self.directory / name
        # settle_seconds = 0: the samples are written before the run starts, there is no export job to wait for.
        path.write_text(
            f'base_url = "{base_url}"\n'
            f'access = "{self.access}"\n'
            f'private_key = "{self._relative(self.client_key)}"\n'
            f'server_keys = "{self._relative(self.server_keyring)}"\n'
            f'ledger = "{self._relative(ledger)}"\n'
            f'algorithm = "{algorithm}"\n'
            f"concurrency = {concurrency}\n"
            "settle_seconds = 0\n" + routes + extra,
            encoding="utf-8",
        )
        return path

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.directory).as_posix() if path.is_relative_to(self.directory) else str(path)


def make_local_site(
    directory: Path, bits: int, access: str, *, reuse_keys: bool = False, echo: Callable[[str], None] | None = None
) -> LocalSite:
    """Make (or, with reuse_keys, keep) both key pairs in DIRECTORY and give each side the other's public key."""
    client_dir, server_dir = directory / "keys", directory / "server"
    for what, key_dir in (("our key pair", client_dir), ("the local CorEMR server's key pair", server_dir)):
        if reuse_keys and (key_dir / "rsa.private").exists():
            continue
        if echo is not None:
            echo(f"Making {what} ({bits} bits) in {key_dir} ...")
        shutil.rmtree(key_dir, ignore_errors=True)
        write_key_pair(key_dir, bits)
    # What each side trusts: CorEMR's Public Keys list holds ours; keys/coremr/ holds CorEMR's.
    server_keyring, client_keyring = client_dir / "coremr", server_dir / "clients"
    for keyring, public, name in ((server_keyring, server_dir, SERVER_ACCESS), (client_keyring, client_dir, access)):
        shutil.rmtree(keyring, ignore_errors=True)
        keyring.mkdir()
        shutil.copyfile(public / "rsa.public", keyring / f"{name}.pem")
    return LocalSite(
        directory, access, client_dir / "rsa.private", server_dir / "rsa.private", client_keyring, server_keyring
    )
