"""HTTPS: with tls_certfile and tls_keyfile set, `oligo serve` answers over TLS (and not in plain HTTP)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import subprocess
import sys

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from adapter.service.config import ConfigError, Settings
from tests.service_support import REPO, TOKEN, free_port, wait_until


def self_signed(directory) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)

    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_the_service_speaks_https_with_a_certificate_and_key(tmp_path):
    cert, key = self_signed(tmp_path)
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "OLIGO_API_TOKENS": TOKEN, "OLIGO_TLS_CERTFILE": cert, "OLIGO_TLS_KEYFILE": key}
    log = open(tmp_path / "service.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "adapter", "serve", "--host", "127.0.0.1", "--port", str(port),
                                "--database", str(tmp_path / "store.sqlite3")], cwd=REPO, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    context = ssl.create_default_context(cafile=cert)

    def healthy():
        assert process.poll() is None, (tmp_path / "service.log").read_text()
        try:
            return httpx.get(f"https://127.0.0.1:{port}/health", verify=context, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, "the service to answer over HTTPS")
        with httpx.Client(verify=context, timeout=10) as client:
            answer = client.get(f"https://127.0.0.1:{port}/deliveries", headers={"Authorization": f"Bearer {TOKEN}"})
            assert answer.status_code == 200 and answer.json() == {"deliveries": []}
        # plain HTTP on the same port gets no answer; a client that does not trust the certificate refuses it
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"https://127.0.0.1:{port}/health", timeout=5)
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()


def test_a_certificate_without_its_key_is_a_setting_error():
    with pytest.raises(ConfigError) as caught:
        Settings.load(environ={"OLIGO_TLS_CERTFILE": "cert.pem"})
    assert str(caught.value) == "tls_certfile and tls_keyfile go together: set both for HTTPS, or neither"
