"""HTTPS with a private CA: trusted through AWS_CA_BUNDLE_PATH, refused (clearly) without it.

The endpoint is moto's WSGI app under werkzeug with a server certificate from a throwaway CA
made by ``trustme``; there is no switch to skip verification, by design.
"""

from __future__ import annotations

import os
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from servers import require

import s3dlio
from s3dlio.errors import S3dlioError

SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


@dataclass
class TlsServer:
    endpoint: str
    ca_pem: Path


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    trustme = require("trustme", "pip install trustme")
    require("moto.server", "pip install 'moto[server]'")
    from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    ca_pem = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))

    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(
        "127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler, ssl_context=context
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TlsServer(f"https://127.0.0.1:{server.server_port}", ca_pem)
    finally:
        server.shutdown()
        thread.join(10)


@pytest.fixture
def tls_bucket(tls_server: TlsServer) -> str:
    """A fresh bucket on the HTTPS server, made with boto3 trusting the CA."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=tls_server.endpoint,
        verify=str(tls_server.ca_pem),
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    name = f"tls-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return f"s3://{name}/"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_https_trusts_ca_bundle_path(
    engine: str, tls_server: TlsServer, tls_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", tls_server.endpoint)
    monkeypatch.setenv("AWS_CA_BUNDLE_PATH", str(tls_server.ca_pem))
    cfg = s3dlio.configure(engine=engine)
    assert cfg.ca_bundle == str(tls_server.ca_pem)
    uri = tls_bucket + "secure/hello.bin"
    s3dlio.put(uri, b"over tls")
    assert bytes(s3dlio.get(uri)) == b"over tls"
    assert bytes(s3dlio.get_range(uri, 5, 3)) == b"tls"
    assert s3dlio.stat(uri).size == 8
    assert s3dlio.list(tls_bucket, recursive=True) == [uri]
    assert s3dlio.delete(uri) == 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_https_without_the_ca_fails_clearly(
    engine: str, tls_server: TlsServer, tls_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", tls_server.endpoint)
    monkeypatch.delenv("AWS_CA_BUNDLE_PATH", raising=False)
    if os.path.isfile(SYSTEM_BUNDLE):
        monkeypatch.setenv("AWS_CA_BUNDLE", SYSTEM_BUNDLE)  # trusted roots, but not our CA
    else:
        monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    s3dlio.configure(engine=engine, connect_timeout=5, max_attempts=2)
    for call in (lambda: s3dlio.put(tls_bucket + "k", b"x"), lambda: s3dlio.get(tls_bucket + "k")):
        with pytest.raises(S3dlioError) as info:
            call()
        message = str(info.value)
        assert "certificate" in message.lower(), message
        assert "AWS_CA_BUNDLE_PATH" in message, f"the message should name the fix: {message}"


def _self_signed_ca_as_server(tmp: Path) -> tuple[ssl.SSLContext, Path]:
    """What ``openssl req -x509`` and MinIO's certgen make: one self-signed certificate with
    CA:TRUE that the server presents as its own, and that the client is told to trust."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_pem, key_pem = tmp / "cert.pem", tmp / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_pem, key_pem)
    return context, cert_pem


@pytest.mark.timeout(60)
def test_a_self_signed_ca_certificate_works_on_portable_and_fast_says_why_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require("moto.server", "pip install 'moto[server]'")
    from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    context, cert_pem = _self_signed_ca_as_server(tmp_path)
    server = make_server("127.0.0.1", 0, DomainDispatcherApplication(create_backend_app), threaded=True,
                         request_handler=MotoRequestHandler, ssl_context=context)  # fmt: skip
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"https://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("AWS_CA_BUNDLE_PATH", str(cert_pem))
        bucket = f"s3://selfsigned-{uuid.uuid4().hex[:8]}/"
        s3dlio.configure(engine="portable")  # OpenSSL accepts it, as boto3 and s3-cli did
        s3dlio.create_bucket(bucket)
        s3dlio.put(bucket + "k", b"x")
        assert bytes(s3dlio.get(bucket + "k")) == b"x"
        s3dlio.configure(engine="fast", max_attempts=1)
        with pytest.raises(S3dlioError) as info:
            s3dlio.get(bucket + "k")
        assert "CA:TRUE" in str(info.value) and "S3DLIO_ENGINE=portable" in str(info.value), str(info.value)
    finally:
        server.shutdown()
