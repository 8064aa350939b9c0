"""The troubleshooting commands keygen, sign and verify, and how they answer bad input."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization

from pipeline.cli import cli
from pipeline.cli.keys import keygen
from pipeline.protocol import AuthorizationHeader, load_private_key, sign
from pipeline.protocol._keys import write_private_file

from ..sites import CLIENT_ACCESS, KeyPair

BODY = b'{"external_id": "A1", "facility": 10000}'
PASSPHRASE = "s3cret passphrase"


def run(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    """Invoke `cws-pipeline ARGS` in-process."""
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def one_line(text: str) -> str:
    """The only line of text (fails if there are more or none)."""
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture
def body_file(tmp_path: Path) -> Path:
    """A request body without a trailing newline, as CorEMR must receive it."""
    path = tmp_path / "body.json"
    path.write_bytes(BODY)
    return path


@pytest.fixture(scope="module")
def encrypted_private(tmp_path_factory: pytest.TempPathFactory, client_keys: KeyPair) -> Path:
    """The client key as an encrypted PEM (0600)."""
    path = tmp_path_factory.mktemp("encrypted") / "rsa.private"
    write_private_file(
        path,
        client_keys.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSPHRASE.encode()),
        ),
    )
    return path


# keygen


def test_keygen_writes_the_pair_and_prints_the_public_key_and_where_to_paste_it(tmp_path: Path) -> None:
    target = tmp_path / "keys"

    result = run("keygen", target, "--bits", "2048")

    assert result.exit_code == 0, result.stderr
    private, public = target / "rsa.private", target / "rsa.public"
    assert private.stat().st_mode & 0o777 == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert load_private_key(private).key_size == 2048
    assert public.read_text() in result.stdout
    assert "Administration → Public Keys → +" in result.stdout
    assert "Contents" in result.stdout and "`access`" in result.stdout
    assert "keys/coremr/coremr.pem" in result.stdout
    assert f"Keep {private} safe" in result.stdout
    assert "PRIVATE KEY" not in result.stdout
    assert result.stderr == ""


def test_keygen_defaults_to_4096_bits() -> None:
    (bits,) = [p for p in keygen.params if p.name == "bits"]

    assert bits.default == 4096


def test_keygen_refuses_to_overwrite_a_private_key(tmp_path: Path, client_keys: KeyPair) -> None:
    write_private_file(tmp_path / "rsa.private", client_keys.private.read_bytes())

    result = run("keygen", tmp_path, "--bits", "2048")

    assert result.exit_code == 2
    assert one_line(result.stderr) == (
        f"Error: {tmp_path / 'rsa.private'}: a private key is already there; move it away or choose another DIR"
    )
    assert (tmp_path / "rsa.private").read_bytes() == client_keys.private.read_bytes()


def test_keygen_refuses_keys_shorter_than_2048_bits(tmp_path: Path) -> None:
    result = run("keygen", tmp_path / "k", "--bits", "1024")

    assert result.exit_code == 2
    assert "at least 2048 bits" in one_line(result.stderr)
    assert not (tmp_path / "k").exists()


# sign


def test_sign_prints_the_base64_signature_of_the_exact_bytes(body_file: Path, client_keys: KeyPair) -> None:
    result = run("sign", body_file, "--key", client_keys.private)

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == sign(BODY, client_keys.key) + "\n"


def test_sign_with_access_prints_the_whole_header_value(body_file: Path, client_keys: KeyPair) -> None:
    result = run("sign", body_file, "--key", client_keys.private, "--access", CLIENT_ACCESS, "--algorithm", "CWS-SHA1")

    assert result.exit_code == 0
    assert result.stdout == str(AuthorizationHeader.for_body(BODY, client_keys.key, CLIENT_ACCESS, "CWS-SHA1")) + "\n"


def test_sign_warns_about_a_trailing_newline_but_signs_the_exact_bytes(tmp_path: Path, client_keys: KeyPair) -> None:
    body_file = tmp_path / "body.txt"
    body_file.write_bytes(BODY + b"\n")

    result = run("sign", body_file, "--key", client_keys.private)

    assert result.exit_code == 0
    assert result.stdout == sign(BODY + b"\n", client_keys.key) + "\n"
    note = one_line(result.stderr)
    assert f"{body_file} ends with a newline" in note and "CorEMR will see a different body" in note


def test_sign_refuses_a_username_the_header_cannot_carry(body_file: Path, client_keys: KeyPair) -> None:
    result = run("sign", body_file, "--key", client_keys.private, "--access", "county jms")

    assert result.exit_code == 2
    assert "cannot be empty or contain spaces or commas" in one_line(result.stderr)


def test_sign_reads_the_passphrase_from_the_named_variable_and_never_prints_it(
    body_file: Path, encrypted_private: Path, client_keys: KeyPair
) -> None:
    named = run(
        "sign", body_file, "--key", encrypted_private, "--passphrase-env", "SITE_PASS", env={"SITE_PASS": PASSPHRASE}
    )
    default = run("sign", body_file, "--key", encrypted_private, env={"CWS_KEY_PASSPHRASE": PASSPHRASE})

    assert named.exit_code == default.exit_code == 0
    assert named.stdout == default.stdout == sign(BODY, client_keys.key) + "\n"
    assert PASSPHRASE not in named.output + named.stderr + default.output + default.stderr


# verify


@pytest.fixture
def good_header(client_keys: KeyPair) -> str:
    """What the county signs BODY with."""
    return str(AuthorizationHeader.for_body(BODY, client_keys.key, CLIENT_ACCESS))


def test_verify_prints_verified_ok(body_file: Path, good_header: str, client_keyring_dir: Path) -> None:
    result = run("verify", body_file, "--authorization", good_header, "--keys", client_keyring_dir)

    assert (result.exit_code, result.stdout, result.stderr) == (0, "Verified OK\n", "")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param(
            "newline",
            "bad signature; {body} ends with a newline that was not signed (remove it: editors and `echo` add one)",
            id="body-with-newline",
        ),
        pytest.param("other-body", "bad signature", id="other-body"),
        pytest.param("signer", "unknown signer: acme (no {ring}/acme.pem)", id="unknown-signer"),
        pytest.param("accept", "algorithm not accepted: CWS-SHA1", id="sha1-refused"),
        pytest.param("empty", "no Authorization header", id="empty-header"),
    ],
)
def test_verify_failure_prints_the_reason_and_exits_1(
    tmp_path: Path, client_keys: KeyPair, client_keyring_dir: Path, change: str, reason: str
) -> None:
    body_file = tmp_path / "body.json"
    body_file.write_bytes({"newline": BODY + b"\n", "other-body": BODY + b" "}.get(change, BODY))
    header = {
        "newline": str(AuthorizationHeader.for_body(BODY, client_keys.key, CLIENT_ACCESS)),
        "other-body": str(AuthorizationHeader.for_body(BODY, client_keys.key, CLIENT_ACCESS)),
        "signer": str(AuthorizationHeader.for_body(BODY, client_keys.key, "acme")),
        "accept": str(AuthorizationHeader.for_body(BODY, client_keys.key, CLIENT_ACCESS, "CWS-SHA1")),
        "empty": "",
    }[change]

    result = run("verify", body_file, "--authorization", header, "--keys", client_keyring_dir, "--accept", "CWS-SHA256")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert one_line(result.stderr) == "Verification failure: " + reason.format(ring=client_keyring_dir, body=body_file)


# Bad input: one line naming the file and the problem, the right exit code, never a traceback.


def _bad_input_cases(tmp: Path, keys: KeyPair, encrypted: Path, ring: Path) -> dict[str, tuple[list[str], int, str]]:
    """Each bad input: (arguments, exit code, text the single stderr line must hold)."""
    body = tmp / "body.json"
    body.write_bytes(BODY)
    world_readable = tmp / "open.private"
    world_readable.write_bytes(keys.private.read_bytes())
    world_readable.chmod(0o644)
    header = str(AuthorizationHeader.for_body(BODY, keys.key, CLIENT_ACCESS))
    return {
        "missing-key": (["sign", str(body), "--key", str(tmp / "nope.private")], 2, f"{tmp / 'nope.private'}: no such"),
        "public-as-private": (
            ["sign", str(body), "--key", str(keys.public)],
            2,
            f"{keys.public}: this is a public key",
        ),
        "wrong-passphrase": (
            ["sign", str(body), "--key", str(encrypted), "--passphrase-env", "SITE_PASS"],
            2,
            f"{encrypted}: wrong passphrase",
        ),
        "world-readable": (["sign", str(body), "--key", str(world_readable)], 2, f"chmod 600 {world_readable}"),
        "missing-body": (["sign", str(tmp / "nobody.json"), "--key", str(keys.private)], 2, "nobody.json: no such"),
        "malformed-header": (
            [
                "verify",
                str(body),
                "--authorization",
                "CWS-SHA256 Access=county-jms Signature=QQ==",
                "--keys",
                str(ring),
            ],
            2,
            "Error: --authorization: malformed Authorization header: ",
        ),
        "missing-keyring": (
            ["verify", str(body), "--authorization", header, "--keys", str(tmp / "no-ring")],
            2,
            f"{tmp / 'no-ring'}: keyring directory not found",
        ),
        "missing-verify-body": (
            ["verify", str(tmp / "gone.json"), "--authorization", header, "--keys", str(ring)],
            2,
            "gone.json: no such body file",
        ),
    }


CASES = [
    "missing-key",
    "public-as-private",
    "wrong-passphrase",
    "world-readable",
    "missing-body",
    "malformed-header",
    "missing-keyring",
    "missing-verify-body",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gets_one_line_and_the_right_exit_code(
    tmp_path: Path, client_keys: KeyPair, encrypted_private: Path, client_keyring_dir: Path, case: str
) -> None:
    args, code, expected = _bad_input_cases(tmp_path, client_keys, encrypted_private, client_keyring_dir)[case]

    result = run(*args, env={"SITE_PASS": "not the passphrase"})

    assert result.exit_code == code
    assert expected in one_line(result.stderr)
    assert result.stdout == ""
    assert result.exception is None or isinstance(result.exception, SystemExit)


def _console_script() -> list[str]:
    script = shutil.which("cws-pipeline")
    return [script] if script else [sys.executable, "-c", "from pipeline.cli import main; main()"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_in_a_real_process_prints_no_traceback(
    tmp_path: Path, client_keys: KeyPair, encrypted_private: Path, client_keyring_dir: Path, case: str
) -> None:
    args, code, expected = _bad_input_cases(tmp_path, client_keys, encrypted_private, client_keyring_dir)[case]

    done = subprocess.run(
        [*_console_script(), *args],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "CWS_KEY_PASSPHRASE"} | {"SITE_PASS": "not the passphrase"},
        check=False,
    )

    assert done.returncode == code
    assert expected in one_line(done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stdout == ""


def test_sign_and_verify_take_the_run_config_instead_of_key_paths(
    tmp_path: Path, body_file: Path, client_keys: KeyPair, server_keys: KeyPair, server_keyring_dir: Path
) -> None:
    config = tmp_path / "cws.toml"
    config.write_text(
        f'base_url = "https://coremr.example.org"\naccess = "{CLIENT_ACCESS}"\n'
        f'private_key = "{client_keys.private}"\nserver_keys = "{server_keyring_dir}"\nalgorithm = "CWS-SHA1"\n'
        'accept_algorithms = ["CWS-SHA256"]\n',
        encoding="utf-8",
    )
    signed = run("sign", body_file, "-c", config)
    assert signed.exit_code == 0
    assert signed.output.strip() == sign(BODY, client_keys.key, "CWS-SHA1")  # the config's key and algorithm

    answer = tmp_path / "answer.json"
    answer.write_bytes(b'{"id": 1}')
    by_coremr = AuthorizationHeader.for_body(answer.read_bytes(), server_keys.key, "coremr", "CWS-SHA256")
    assert run("verify", answer, "-c", config, "--authorization", str(by_coremr)).output == "Verified OK\n"
    sha1 = AuthorizationHeader.for_body(answer.read_bytes(), server_keys.key, "coremr", "CWS-SHA1")
    refused = run("verify", answer, "--config", config, "--authorization", str(sha1))
    assert refused.exit_code == 1 and "algorithm not accepted" in refused.output  # the config's accept list

    neither = run("sign", body_file)
    assert neither.exit_code == 2 and "give --key PRIVATE, or --config CONFIG" in neither.output
