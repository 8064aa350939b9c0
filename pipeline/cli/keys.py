"""Troubleshooting commands that mirror CorEMR's security walkthrough: keygen, sign, verify."""

from __future__ import annotations

from pathlib import Path

import click

from .._errors import ExitCode, MalformedHeader, UserInputError
from ..delivery import load_config
from ..protocol import (
    ALGORITHMS,
    DEFAULT_BITS,
    PASSPHRASE_ENV,
    Algorithm,
    AuthorizationHeader,
    Keyring,
    check_access,
    fails_only_by_trailing_newline,
    load_private_key,
    passphrase_from_environment,
    sign,
    verify_body,
    write_key_pair,
)
from . import cli

__all__ = ["keygen", "sign_body", "verify"]

_FILE = click.Path(dir_okay=True, path_type=Path)  # existence is checked by us: one line, not click's usage block


def _read_body(path: Path) -> bytes:
    """The exact bytes of a body file, or a one-line UserInputError."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UserInputError(f"{path}: no such body file (for a GET, sign an empty file)") from None
    except IsADirectoryError:
        raise UserInputError(f"{path}: is a directory, not a body file") from None
    except OSError as exc:
        raise UserInputError(f"{path}: cannot read the body file ({exc.strerror})") from None


@cli.command()
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--bits", type=int, default=DEFAULT_BITS, show_default=True, help="RSA key size (at least 2048).")
def keygen(directory: Path, bits: int) -> None:
    """Create your key pair: DIR/rsa.private (keep it safe) and DIR/rsa.public (give it to CorEMR).

    Same as `openssl genrsa -out rsa.private 4096` followed by
    `openssl rsa -in rsa.private -out rsa.public -pubout`. Never overwrites a private key.

    Example: cws-pipeline keygen keys/county
    """
    files = write_key_pair(directory, bits)
    click.echo(f"Wrote {files.private} (private key, mode 0600) and {files.public} (public key).")
    click.echo()
    click.echo("Paste this public key into CorEMR: Administration → Public Keys → + (bottom right),")
    click.echo("into 'Contents', and choose a unique username you will remember.")
    click.echo("Then put that username in your configuration as `access`.")
    click.echo("CorEMR's own public key (same list, a username like coremr) goes in your keyring")
    click.echo("directory as <USERNAME>.pem, e.g. keys/coremr/coremr.pem.")
    click.echo()
    click.echo(files.public.read_text(encoding="ascii"), nl=False)
    click.echo()
    click.echo(f"Keep {files.private} safe and never send it to anyone. If it is lost or")
    click.echo("someone else may have it, tell CorEMR at once so they remove that username.")


@cli.command("sign")
@click.argument("file", type=_FILE)
@click.option("--key", "key_path", type=_FILE, metavar="PRIVATE", help="Your private key (PEM); or --config.")
@click.option("-c", "--config", "config_path", type=_FILE, help="Run config (TOML): its private_key and algorithm.")
@click.option(
    "--algorithm", type=click.Choice(ALGORITHMS), help="Signature algorithm. [default: the config's, or CWS-SHA256]"
)
@click.option("--access", metavar="USERNAME", help="Print the whole Authorization header value for this username.")
@click.option(
    "--passphrase-env",
    metavar="VAR",
    help=f"Environment variable holding an encrypted key's passphrase [default: {PASSPHRASE_ENV}, if set].",
)
def sign_body(
    file: Path,
    key_path: Path | None,
    config_path: Path | None,
    algorithm: Algorithm | None,
    access: str | None,
    passphrase_env: str | None,
) -> None:
    """Sign a request body exactly as CorEMR will check it; prints the base64 signature.

    Same bytes as `openssl dgst -sha256 -sign PRIVATE FILE | openssl enc -A -base64`.
    With --access, prints the whole header value to paste as `Authorization`. With --config, the
    key, its passphrase and the algorithm are the run's.

    Example: cws-pipeline sign body.json --key keys/county/rsa.private --access county-jms
    """
    if access is not None:
        check_access(access)
    body = _read_body(file)
    if config_path is not None and key_path is None:
        config = load_config(config_path)
        key = load_private_key(config.private_key, config.passphrase())
        algorithm = algorithm or config.algorithm
    elif key_path is not None:
        key = load_private_key(key_path, passphrase_from_environment(passphrase_env))
    else:
        raise click.UsageError("give --key PRIVATE, or --config CONFIG to sign with the run's key")
    algorithm = algorithm or "CWS-SHA256"
    if body.endswith(b"\n"):
        click.echo(
            f"Note: {file} ends with a newline and the signature covers it (editors and `echo` add one);"
            " CorEMR will see a different body unless you send that newline too.",
            err=True,
        )
    if access is None:
        click.echo(sign(body, key, algorithm))
    else:
        click.echo(str(AuthorizationHeader.for_body(body, key, access, algorithm)))


@cli.command()
@click.argument("file", type=_FILE)
@click.option("--authorization", "header", required=True, metavar="'HEADER VALUE'", help="The Authorization value.")
@click.option(
    "--keys", "keyring_dir", type=_FILE, metavar="KEYRING_DIR", help="Directory of <USERNAME>.pem; or --config."
)
@click.option(
    "-c", "--config", "config_path", type=_FILE, help="Run config (TOML): its server_keys and accept_algorithms."
)
@click.option(
    "--accept",
    multiple=True,
    type=click.Choice(ALGORITHMS),
    help="Accept only this algorithm (repeatable) [default: both].",
)
@click.pass_context
def verify(
    ctx: click.Context,
    file: Path,
    header: str,
    keyring_dir: Path | None,
    config_path: Path | None,
    accept: tuple[str, ...],
) -> None:
    """Check a signed body (e.g. a CorEMR response) against the keys you trust; prints Verified OK.

    Looks up the key of the header's `Access=USERNAME` as KEYRING_DIR/USERNAME.pem. Exits 0 when
    verified, 1 on a verification failure, 2 when a file or directory cannot be used or the
    --authorization value is malformed.

    Example: cws-pipeline verify response.json --keys keys/coremr
    --authorization 'CWS-SHA256 Access=coremr, Signature=...'
    """
    if header:  # an empty value is what a response without the header gives: a verification failure
        try:
            AuthorizationHeader.parse(header)
        except MalformedHeader as exc:
            raise MalformedHeader(f"--authorization: {exc}") from None
    if keyring_dir is None and config_path is None:
        raise click.UsageError("give --keys KEYRING_DIR, or --config CONFIG to check with the run's keyring")
    config = load_config(config_path) if config_path is not None and keyring_dir is None else None
    keyring = Keyring(config.server_keys if config is not None else keyring_dir or Path())
    body = _read_body(file)
    accepted = accept or (config.accept_algorithms if config is not None else ALGORITHMS)
    found = verify_body(body, header, keyring, accepted)
    if found.ok:
        click.echo("Verified OK")
        return
    hint = ""
    if fails_only_by_trailing_newline(body, header, keyring, accepted):
        hint = f"; {file} ends with a newline that was not signed (remove it: editors and `echo` add one)"
    click.echo(f"Verification failure: {found.reason}{hint}", err=True)
    ctx.exit(ExitCode.ATTENTION)
