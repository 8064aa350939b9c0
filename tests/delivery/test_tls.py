"""TLS stays on: a run over HTTPS trusts only what the system or `ca_bundle` trusts."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from pipeline.delivery import load_config, run_bookings

from ..sites import KeyPair, Site, booking_rows


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory, other_keys: KeyPair) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert.pem, key.pem)."""
    d = tmp_path_factory.mktemp("tls")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cws-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(other_keys.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(other_keys.key, hashes.SHA256())
    )
    cert_path, key_path = d / "cert.pem", d / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(other_keys.private.read_bytes())
    return cert_path, key_path


@pytest.fixture
def tls_site(site: Site, certificate: tuple[Path, Path]) -> Site:
    """The site fixture, but its server speaks HTTPS with a certificate no system trusts."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    site.restart_server(tls=context)
    return site


def test_an_untrusted_certificate_is_refused_and_nothing_is_sent(tls_site: Site) -> None:
    assert tls_site.server.url.startswith("https://127.0.0.1:")
    result = run_bookings(tls_site.write_csv(booking_rows(2)), tls_site.mapping, load_config(tls_site.config),
                          sleep=lambda _: None)  # fmt: skip
    assert result.counts["failed"] == 2
    assert "CERTIFICATE_VERIFY_FAILED" in (result.attention[0].reason or "")
    assert not tls_site.server.counters().create_attempts


def test_a_certificate_in_ca_bundle_is_trusted(tls_site: Site, certificate: tuple[Path, Path]) -> None:
    tls_site.write_config(ca_bundle=str(certificate[0]))
    result = run_bookings(tls_site.write_csv(booking_rows(2)), tls_site.mapping, load_config(tls_site.config))
    assert result.counts["delivered"] == 2
    assert tls_site.server.counters().creates == {"P000001": 1, "P000002": 1}
