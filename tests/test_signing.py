"""Payload signing: what the fast engine sends in ``x-amz-content-sha256``, seen by a tiny server."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator

import pytest

import s3dlio
from s3dlio.errors import ConfigError


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append(self.headers.get("x-amz-content-sha256", ""))
        self.send_response(200)
        self.send_header("ETag", '"0"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("sign", [False, True])
def test_payload_hash_sent_only_when_asked(recorder: tuple[str, list[str]], sign: bool) -> None:
    endpoint, seen = recorder
    s3dlio.configure(endpoint_url=endpoint, engine="fast", sign_payload=sign, access_key_id="k", secret_access_key="s")
    body = b"checkpoint bytes" * 100
    s3dlio.put("s3://bucket/key", body)
    assert seen == [hashlib.sha256(body).hexdigest() if sign else "UNSIGNED-PAYLOAD"]


def test_sign_payload_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3DLIO_SIGN_PAYLOAD", "true")
    assert s3dlio.configure().sign_payload is True
    monkeypatch.setenv("S3DLIO_SIGN_PAYLOAD", "maybe")
    with pytest.raises(ConfigError, match="S3DLIO_SIGN_PAYLOAD"):
        s3dlio.configure()
