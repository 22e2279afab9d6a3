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
