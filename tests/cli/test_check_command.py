"""`cws-pipeline check`: a site's pre-flight, against a real local CWS server, sending GETs only."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pipeline.cli import cli
from pipeline.delivery import check_site, load_config, run_bookings
from pipeline.ledger import Ledger, site_facts
from pipeline.simulator import Fault

from ..delivery.test_tls import certificate, tls_site  # noqa: F401 -- fixtures: an HTTPS local server
from ..sites import V3_SITE_MAPPING, KeyPair, Site, booking_rows

PROBE = re.compile(r"/ws/(?:v3/)?(?:patients/)?(cwscheck-[0-9a-f]{8})/?$")


@pytest.fixture
def requests(site: Site, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every (method, path) the site's local server is asked, as it arrives."""
    seen: list[tuple[str, str]] = []
    answer = site.server.respond

    def recording(method: str, path: str, body: bytes, authorization: str | None) -> object:
        seen.append((method, path))
        return answer(method, path, body, authorization)

    monkeypatch.setattr(site.server, "respond", recording)
    return seen


def check(site: Site, *args: str) -> Result:
    return CliRunner().invoke(cli, ["check", "-c", str(site.config), *args])


def lines(result: Result, status: str) -> list[str]:
    """The output's lines of one status (ok, warn, FAIL, skip)."""
    return [line for line in result.output.splitlines() if line.startswith(f"{status} ")]


def failed_once(result: Result, name: str, text: str) -> None:
    """The check failed with exit 1, no traceback, and its first FAIL line is NAME's, saying TEXT."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    first = lines(result, "FAIL")[0]
    assert first.startswith(f"FAIL  {name}: ") and text in first, result.output
    assert result.output.splitlines()[-1] == f"Not ready: fix {name} first."


def test_a_good_site_is_ready_and_only_gets_are_sent(site: Site, requests: list[tuple[str, str]]) -> None:
    result = check(site)
    assert result.exit_code == 0, result.output
    assert lines(result, "FAIL") == [] and lines(result, "warn") == []
    names = [line.split(":")[0].split()[-1] for line in result.output.splitlines()[:-1]]
    assert names == ["config", "private_key", "server_keys", "ledger", "head_log", "tls", "access", "api_prefix",
                     "signature", "clock", "bookings_routes"]  # fmt: skip
    assert "CorEMR API v2 (no --mapping given, so v2)" in result.output
    assert "signed by 'coremr' (CWS-SHA256)" in result.output
    assert result.output.splitlines()[-1] == "Ready for the first night."
    assert requests and {method for method, _ in requests} == {"GET"}
    probes = {m.group(1) for _, path in requests if (m := PROBE.search(path))}
    assert len(probes) == 1 and len(probes.pop()) == 17  # external_id's String(17)
    assert site.server.patients() == {} and not site.ledger.exists()  # nothing created, here or there


def test_a_wrong_private_key_is_refused_by_coremr(site: Site, other_keys: KeyPair) -> None:
    site.write_config(private_key=str(other_keys.private))
    failed_once(check(site), "access", "CorEMR refused our key (HTTP 401): check `access`")


def test_an_unknown_access_name_is_refused_by_coremr(site: Site) -> None:
    site.write_config(access="not-a-coremr-user")
    failed_once(check(site), "access", "check `access` (not-a-coremr-user) and `private_key`")


def test_a_keyring_without_coremrs_signer_names_the_signer(site: Site, other_keys: KeyPair, tmp_path: Path) -> None:
    keyring = tmp_path / "wrong-keyring"
    keyring.mkdir()
    shutil.copyfile(other_keys.public, keyring / "somebody.pem")
    site.write_config(server_keys=str(keyring))
    result = check(site)
    failed_once(result, "signature", "answer not signed by a key in server_keys: it names the signer 'coremr'")
    assert "ok    access:" in result.output  # our key was taken: only CorEMR's is missing


def test_coremrs_key_under_its_name_but_wrong_fails_the_signature(
    site: Site, other_keys: KeyPair, tmp_path: Path
) -> None:
    keyring = tmp_path / "stale-keyring"
    keyring.mkdir()
    shutil.copyfile(other_keys.public, keyring / "coremr.pem")
    site.write_config(server_keys=str(keyring))
    failed_once(check(site), "signature", "does not verify with")


def test_a_base_url_with_a_path_is_a_wrong_prefix(site: Site, requests: list[tuple[str, str]]) -> None:
    site.write_config(base_url=site.server.url + "/coremr")
    failed_once(check(site), "api_prefix", "wrong base_url or API version: ")
    assert {method for method, _ in requests} == {"GET"}


def test_a_v3_mapping_against_a_server_without_ws_v3_is_a_wrong_prefix(site: Site) -> None:
    v3 = site.dir / "v3.toml"
    v3.write_text(V3_SITE_MAPPING)
    result = check(site, "--mapping", str(v3))
    failed_once(result, "api_prefix", "/ws/v3/patients/ (API v3) answers like a route that does not exist")
    assert "CorEMR API v3 (the mapping " in result.output


def test_the_mapping_of_the_servers_version_passes(site: Site) -> None:
    result = check(site, "--mapping", str(site.mapping))
    assert result.exit_code == 0, result.output
    assert "ok    api_prefix: /ws/patients/ (API v2) answers" in result.output


def test_plain_http_to_another_host_is_refused_before_anything_is_sent(site: Site) -> None:
    site.write_config(base_url="http://coremr.example.org")
    result = check(site)
    assert result.exit_code == 2
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert lines(result, "FAIL") == [
        f"FAIL  config: {site.config}: base_url: plain http sends patient data unencrypted; use https, or set"
        " allow_insecure_http = true"
    ]
    assert site.server.counters().requests == 0


def test_a_configuration_that_cannot_be_read_is_exit_2(site: Site) -> None:
    site.config.write_text('base_url = "https://coremr.example.org"\n', encoding="utf-8")
    result = check(site)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert lines(result, "FAIL")[0].startswith("FAIL  config: ")


def test_an_untrusted_certificate_fails_tls_and_ca_bundle_passes(
    tls_site: Site,  # noqa: F811 -- the fixture imported above
    certificate: tuple[Path, Path],  # noqa: F811
) -> None:
    failed_once(check(tls_site), "tls", "CERTIFICATE_VERIFY_FAILED")
    tls_site.write_config(ca_bundle=str(certificate[0]))
    result = check(tls_site)
    assert result.exit_code == 0, result.output
    assert f"ok    tls: TLS to 127.0.0.1:{tls_site.server.port} verified against ca_bundle" in result.output


def test_a_ledger_others_can_read_fails_with_the_chmod_to_run(site: Site) -> None:
    site.ledger.write_bytes(b"")
    site.ledger.chmod(0o644)
    failed_once(check(site), "ledger", f"run `chmod 600 {site.ledger}`")


def test_a_head_log_in_a_folder_this_user_cannot_write_fails(site: Site, tmp_path: Path) -> None:
    folder = tmp_path / "heads"
    folder.mkdir()
    (folder / "heads.log").write_text("", encoding="utf-8")
    (folder / "heads.log").chmod(0o400)
    site.write_config(head_log=str(folder / "heads.log"))
    failed_once(check(site), "head_log", "this user cannot write it")


def test_a_clock_more_than_5_minutes_off_is_a_warning(site: Site) -> None:
    result = check_site(site.config, now=lambda: datetime.now(UTC) + timedelta(minutes=12))
    clock = next(line for line in result.lines if line.name == "clock")
    assert clock.status == "warn" and "12 minutes ahead of CorEMR's" in clock.message
    assert result.exit_code == 0 and result.verdict == "Ready for the first night. (1 warning(s) above.)"


def test_json_lists_every_check_the_verdict_and_the_exit_code(site: Site, other_keys: KeyPair) -> None:
    site.write_config(private_key=str(other_keys.private))
    result = check(site, "--json")
    out = json.loads(result.output)
    assert result.exit_code == out["exit_code"] == 1
    assert out["verdict"] == "Not ready: fix access first." and out["ok"] is False
    access = next(c for c in out["checks"] if c["name"] == "access")
    assert access["ok"] is False and access["message"].startswith("CorEMR refused our key")
    assert all(set(c) == {"name", "ok", "status", "message"} for c in out["checks"])


# -- bookings routes: a site fact found out by reading a patient we created -----------------------


def deliver_one(site: Site) -> None:
    result = run_bookings(site.write_csv(booking_rows(1)), site.mapping, load_config(site.config))
    assert result.counts["delivered"] == 1


def test_bookings_routes_found_on_a_patient_we_created_are_recorded(site: Site) -> None:
    deliver_one(site)
    result = check(site, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["site_facts"] == {"bookings_routes": "yes"}
    line = next(c for c in out["checks"] if c["name"] == "bookings_routes")
    assert line["message"].startswith("CorEMR has bookings routes (API v2): GET /ws/patients/P000001 answered")
    with Ledger.open_read_only(site.ledger) as ledger:
        fact = site_facts(ledger)["bookings_routes"]
    assert fact.value == "yes" and "/ws/patients/P000001/bookings/ answered 200" in fact.how


@pytest.fixture
def site_without_bookings_routes(site: Site) -> Site:
    """The site after a night: its patient P000001 is at a CorEMR whose routes are v1's (no bookings routes)."""
    deliver_one(site)
    site.restart_server(api="v1")
    site.server.enter_by_hand({"external_id": "P000001", "facility": "MAIN", "fname": "A", "lname": "B",
                               "dob": "1951-02-11", "sex": "Male", "booking_number": "B000001",
                               "booking_date": "2026-11-28 22:15:00.000"})  # fmt: skip
    site.write_config(algorithm="CWS-SHA1")  # v1 answers CWS-SHA1 only
    return site


def test_no_bookings_routes_is_found_out_by_reading_the_patient_first(site_without_bookings_routes: Site) -> None:
    site = site_without_bookings_routes
    result = check(site)
    assert result.exit_code == 0, result.output
    assert (
        "ok    bookings_routes: CorEMR has no bookings routes (API v2): GET /ws/patients/P000001 answered our"
        " patient (200); GET /ws/patients/P000001/bookings/ answered 404; recorded in the ledger" in result.output
    )
    with Ledger.open_read_only(site.ledger) as ledger:
        assert site_facts(ledger)["bookings_routes"].value == "no"


def test_a_failed_check_leaves_the_bookings_routes_unknown(site: Site, other_keys: KeyPair) -> None:
    deliver_one(site)
    site.write_config(private_key=str(other_keys.private))
    result = check(site)
    assert "skip  bookings_routes: not found out: fix the failed checks first" in result.output
    with Ledger.open_read_only(site.ledger) as ledger:
        assert site_facts(ledger) == {}


def test_a_ledger_file_that_is_not_a_ledger_fails(site: Site) -> None:
    site.ledger.write_bytes(b"")
    site.ledger.chmod(0o600)
    failed_once(check(site), "ledger", "not a cws-pipeline ledger")


def test_a_mapping_that_cannot_be_read_is_exit_2(site: Site) -> None:
    result = check(site, "--mapping", str(site.dir / "missing.toml"))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert lines(result, "FAIL")[0].startswith("FAIL  config: ") and "missing.toml" in result.output


def test_an_unusable_proxy_in_the_environment_fails_tls(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "socks5://127.0.0.1:1")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    failed_once(check(site), "tls", "is not an http or https proxy URL")
    assert site.server.counters().requests == 0


def test_an_unsigned_answer_says_coremr_signs_every_answer(site: Site) -> None:
    site.server.set_faults([Fault("signature_missing", methods=("GET",))])
    failed_once(check(site), "signature", "answer not signed (no Authorization header)")


def test_a_server_error_is_not_taken_for_a_good_prefix(site: Site) -> None:
    site.server.set_faults([Fault("status_503", methods=("GET",))])
    failed_once(check(site), "api_prefix", "with HTTP 503, not 404")


def test_a_v3_site_with_a_v3_mapping_is_ready(site: Site) -> None:
    site.restart_server(api="v3")
    v3 = site.dir / "v3.toml"
    v3.write_text(V3_SITE_MAPPING)
    result = check(site, "--mapping", str(v3))
    assert result.exit_code == 0, result.output
    assert "ok    api_prefix: /ws/v3/patients/ (API v3) answers" in result.output


def test_an_unusable_private_key_sends_nothing(site: Site) -> None:
    site.client_keys.private.chmod(0o644)
    try:
        result = check(site)
    finally:
        site.client_keys.private.chmod(0o600)
    failed_once(result, "private_key", f"run: chmod 600 {site.client_keys.private}")
    assert "skip  network: no request sent: fix our private key or server_keys first" in result.output
    assert site.server.counters().requests == 0
