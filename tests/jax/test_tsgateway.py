"""The loopback S3 endpoint TensorStore writes through (s3dlio_jax.tsgateway): TensorStore's own
kvstore and zarr3 over it on ``mem://`` and moto ``s3://``, and the HTTP answers TensorStore relies
on (ranges, ETag conditions, missing keys, listing, a bucket it did not hand out)."""

from __future__ import annotations

import http.client
import os
import socket
import time
from urllib.parse import urlsplit

import numpy as np
import pytest

ts = pytest.importorskip("tensorstore")

import s3dlio  # noqa: E402
from s3dlio_jax import tsgateway  # noqa: E402
from s3dlio_jax.tsgateway import gateway, kvstore_spec  # noqa: E402


@pytest.fixture(params=["mem", "s3"])
def root(request: pytest.FixtureRequest) -> str:
    if request.param == "s3":
        return str(request.getfixturevalue("s3_bucket")) + "gw/"
    return f"mem://gw-{request.node.name.replace('[', '-').replace(']', '')}/data/"


def test_tensorstore_zarr3_and_kvstore_through_s3dlio(root: str) -> None:
    kv = kvstore_spec(root)
    x = np.arange(30 * 20, dtype=np.int64).reshape(30, 20)
    arr = ts.open({"driver": "zarr3", "kvstore": {**kv, "path": kv["path"] + "z/"}}, create=True,
                  dtype=ts.int64, shape=x.shape, chunk_layout=ts.ChunkLayout(chunk_shape=[8, 8])).result()  # fmt: skip
    arr.write(x).result()
    assert s3dlio.exists(root + "z/zarr.json") and s3dlio.exists(root + "z/c/3/2")  # the real files
    again = ts.open({"driver": "zarr3", "kvstore": {**kv, "path": kv["path"] + "z/"}}).result()
    assert np.array_equal(again.read().result(), x)
    assert np.array_equal(again[5:17, 3:11].read().result(), x[5:17, 3:11])

    store = ts.KvStore.open(kv).result()
    store.write("k/a", b"hello world").result()
    assert bytes(s3dlio.get(root + "k/a")) == b"hello world"
    assert store.read("k/a", byte_range=slice(6, 11)).result().value == b"world"
    assert store.read("k/missing").result().state == "missing"
    assert store.list(ts.KvStore.KeyRange("k/", "k0")).result() == [b"k/a"]
    del store["k/a"]
    assert not s3dlio.exists(root + "k/a")
    assert gateway().errors == []


def _request(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> http.client.HTTPResponse:
    url = urlsplit(gateway().endpoint)
    conn = http.client.HTTPConnection(url.hostname or "", url.port)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_http_answers(root: str) -> None:
    kv = kvstore_spec(root)
    base = f"/{kv['bucket']}/{kv['path']}"
    put = _request("PUT", base + "obj", b"0123456789")
    assert put.status == 200
    etag = put.getheader("ETag") or ""
    assert etag.startswith('"')
    url = urlsplit(gateway().endpoint)
    conn = http.client.HTTPConnection(url.hostname or "", url.port)
    conn.request("GET", base + "obj", headers={"Range": "bytes=-3"})
    suffix = conn.getresponse()
    assert (suffix.status, suffix.read(), suffix.getheader("Content-Range")) == (206, b"789", "bytes 7-9/10")
    conn.request("GET", base + "obj", headers={"Range": "bytes=2-4"})  # same connection: keep-alive
    assert conn.getresponse().read() == b"234"
    conn.close()
    assert _request("GET", base + "obj", headers={"If-None-Match": etag}).status == 304
    assert _request("GET", base + "obj", headers={"If-Match": '"other"'}).status == 412
    assert _request("PUT", base + "obj", b"x", headers={"If-Match": '"other"'}).status == 412
    assert _request("PUT", base + "obj", b"x", headers={"If-None-Match": "*"}).status == 412  # exists
    assert bytes(s3dlio.get(root + "obj")) == b"0123456789"
    assert _request("GET", base + "nothing").status == 404
    assert _request("HEAD", base + "obj").getheader("Content-Length") == "10"
    assert _request("GET", "/s3dlio-0123456789abcdef/obj").status == 404  # not a bucket it handed out
    assert _request("DELETE", base + "obj").status == 204
    assert not s3dlio.exists(root + "obj")


def test_a_proxy_in_the_environment_is_bypassed(monkeypatch: pytest.MonkeyPatch) -> None:
    """libcurl (TensorStore) honours http_proxy: the gateway must stay reachable behind one."""
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # nothing listens: a request through it fails
    monkeypatch.setenv("no_proxy", "internal.example")
    monkeypatch.delenv("NO_PROXY", raising=False)
    store = ts.KvStore.open(kvstore_spec("mem://proxied/x/")).result()
    store.write("k", b"v").result(timeout=30)
    assert bytes(s3dlio.get("mem://proxied/x/k")) == b"v"
    assert os.environ["no_proxy"] == "internal.example,127.0.0.1"


def test_errors_reach_tensorstore_at_once_with_s3dlios_message(monkeypatch: pytest.MonkeyPatch) -> None:
    store = ts.KvStore.open(kvstore_spec("mem://failing/x/")).result()

    def misconfigured(uri: str, data: object, **kwargs: object) -> None:
        raise s3dlio.ConfigError(f"{uri}: no endpoint; set AWS_ENDPOINT_URL")

    monkeypatch.setattr(s3dlio, "put", misconfigured)
    began = time.monotonic()
    with pytest.raises(ValueError, match="no endpoint; set AWS_ENDPOINT_URL"):
        store.write("k", b"v").result(timeout=60)  # a 4xx: s3dlio has retried, TensorStore does not
    assert time.monotonic() - began < 5

    def broken(uri: str, data: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(s3dlio, "put", broken)
    began = time.monotonic()
    with pytest.raises(Exception, match="a bug"):
        store.write("k", b"v").result(timeout=60)  # a 500: retried a few times, then reported
    assert time.monotonic() - began < 10
    assert any(isinstance(e, RuntimeError) for e in gateway().errors)
    gateway().errors.clear()


def test_large_values_stream_through_in_parts(root: str) -> None:
    """Bodies above _STREAM_ABOVE (an OCDBT data file is one PUT of up to gigabytes) go up in parts
    as they arrive, and large ranges come back in chunks: the bytes are the same either way."""
    size = tsgateway._STREAM_ABOVE + tsgateway._STREAM_PART + 12345  # three parts, the last short
    value = np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes()
    store = ts.KvStore.open(kvstore_spec(root)).result()
    store.write("big", value).result()
    assert s3dlio.stat(root + "big").size == size and bytes(s3dlio.get(root + "big")) == value
    assert store.read("big").result().value == value
    span = slice(7, size - 3)  # a range that streams too, starting and ending inside a chunk
    assert store.read("big", byte_range=span).result().value == value[span]
    assert gateway().errors == []


@pytest.mark.parametrize("declared", [1000, 4 * tsgateway._STREAM_PART], ids=["one-put", "streamed"])
def test_a_put_body_cut_short_stores_nothing(declared: int) -> None:
    """A PUT whose body ends before its Content-Length gets S3's 400 IncompleteBody, and the
    object keeps what it held (a short manifest must never replace a good one)."""
    kv = kvstore_spec("mem://cut/x/")
    s3dlio.put("mem://cut/x/big", b"the good one")
    url = urlsplit(gateway().endpoint)
    sent = min(declared - 1, tsgateway._STREAM_PART + 1)  # for the streamed body: more than a part
    with socket.create_connection((url.hostname or "", url.port or 80)) as sock:
        head = f"PUT /{kv['bucket']}/{kv['path']}big HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\n\r\n"
        sock.sendall(head.encode() + bytes(sent))
        sock.shutdown(socket.SHUT_WR)  # the client is gone mid-body
        sock.settimeout(30)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 400") and b"IncompleteBody" in reply, reply[:300]
    assert bytes(s3dlio.get("mem://cut/x/big")) == b"the good one"
    assert gateway().errors == []
