"""A write is reported only once it happened; a read never stops at a HEAD's wrong size.

moto and Azurite behind a small relay (:class:`_Relay`) that answers some requests falsely,
as a faulty proxy or S3-compatible server may:

- ``complete-empty``: CompleteMultipartUpload answered 200 with an empty body, not relayed
  (nothing is written): the put and the writer must raise, not report the object written;
- ``blocklist``: Azure's Put Block List answered 201 with an ETag, not relayed (no blob);
- ``head:<fraction>``: a HEAD of the object reports ``fraction`` of its size while every GET
  says the truth: a large read sized by that HEAD must raise, never return a truncated object.
"""

from __future__ import annotations

import http.client
import http.server
import os
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import Azurite, MotoServer

import s3dlio
from s3dlio.errors import TransferError
from s3dlio.fsspec import S3dlioFileSystem

MiB = 1024 * 1024
ENGINES = pytest.mark.parametrize("engine", ["fast", "portable"])
_HOP = {"connection", "keep-alive", "expect", "transfer-encoding", "content-length"}  # not relayed as they came


class _Relay:
    """An HTTP relay on a free loopback port in front of ``127.0.0.1:upstream``; ``fault``
    (see the module's docstring) says which requests it answers falsely, the first ``limit`` of
    them; ``faults`` counts them."""

    def __init__(self, upstream: int) -> None:
        self.upstream, self.fault, self.faults, self.limit = upstream, "none", 0, 1_000_000
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                    return self.rfile.read(int(self.headers.get("Content-Length") or 0))
                out = b""
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    out += self.rfile.read(size)
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return out

            def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes, length: int) -> None:
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in (*_HOP, "date", "server"):  # send_response wrote these
                        self.send_header(name, value)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _any(self) -> None:
                body = self._body()
                answer = relay.answer(self.command, self.path, body, dict(self.headers.items()))
                self._reply(*answer)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def answer(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[Any, ...]:
        """(status, headers, body, Content-Length) for one request: false where ``fault`` says."""
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query, keep_blank_values=True)
        if self.faults >= self.limit:
            self.fault = "none"
        if self.fault == "complete-empty" and method == "POST" and "uploadId" in query:
            self.faults += 1
            return 200, [("Content-Type", "application/xml")], b"", 0
        if self.fault == "blocklist" and method == "PUT" and query.get("comp") == ["blocklist"]:
            self.faults += 1
            return 201, [("ETag", '"0x8DC0000000000002"'), ("Last-Modified", "Wed, 01 Jan 2025 00:00:00 GMT"),
                         ("x-ms-request-server-encrypted", "true"), ("x-ms-version", "2021-08-06")], b"", 0  # fmt: skip
        sent = {k: v for k, v in headers.items() if k.lower() not in _HOP}
        if body or method in ("PUT", "POST"):
            sent["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=30)
        try:
            conn.request(method, path, body=body or None, headers=sent)
            r = conn.getresponse()
            data = r.read()
            replied = r.getheaders()
        finally:
            conn.close()
        length = int(r.getheader("Content-Length") or 0) if method == "HEAD" else len(data)
        if self.fault.startswith("head:") and method == "HEAD" and r.status == 200 and path.split("?")[0].endswith("/big"):
            self.faults += 1
            length = int(length * float(self.fault.split(":")[1]))
        return r.status, replied, data, length

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def s3_relay(moto_server: MotoServer, s3_bucket: str) -> Iterator[tuple[_Relay, str, Any]]:
    """(a relay to moto, the test's bucket name, a boto3 client that bypasses the relay)."""
    relay = _Relay(moto_server.port)
    yield relay, s3_bucket.split("/")[2], moto_server.client()
    relay.stop()


@pytest.fixture
def az_relay(azurite: Azurite, az_container: str) -> Iterator[tuple[_Relay, str, Any]]:
    """(a relay to Azurite, the test's container name, a container client that bypasses it)."""
    relay = _Relay(azurite.port)
    name = az_container.split("/")[2]
    yield relay, name, azurite.client().get_container_client(name)
    relay.stop()


def _s3_client(relay: _Relay, engine: str, **settings: Any) -> s3dlio.Client:
    return s3dlio.Client(engine=engine, endpoint_url=relay.url, max_attempts=2, total_timeout=5.0, **settings)


def _az_client(relay: _Relay, engine: str, **settings: Any) -> s3dlio.Client:
    return s3dlio.Client(engine=engine, azure_endpoint=f"{relay.url}/devstoreaccount1", max_attempts=2,
                         total_timeout=5.0, **settings)  # fmt: skip


def _written(client: s3dlio.Client, uri: str, data: bytes, how: str) -> None:
    if how == "put":
        client.put(uri, data)
    else:
        with client.open_writer(uri) as w:
            w.write(data)


# -- 1. CompleteMultipartUpload answered 200 with nothing in it ---------------------------------
@ENGINES
@pytest.mark.parametrize("how", ["put", "writer"])
def test_empty_complete_reply_is_not_a_write(engine: str, how: str, s3_relay: tuple[_Relay, str, Any]) -> None:
    relay, bucket, raw = s3_relay
    client = _s3_client(relay, engine, part_size=5 * MiB)
    data = os.urandom((21 if (engine, how) == ("portable", "put") else 11) * MiB)  # multipart, each way
    relay.fault = "complete-empty"
    with pytest.raises(TransferError) as caught:
        _written(client, f"s3://{bucket}/big", data, how)
    if engine == "portable":  # obstore finds the empty reply unreadable itself
        assert "no CompleteMultipartUploadResult" in str(caught.value)
    assert relay.faults >= 1
    assert raw.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_empty_complete_reply_after_a_write_is_taken(s3_relay: tuple[_Relay, str, Any]) -> None:
    """A reply lost on its way back (the object was made) is still a success: the HEAD finds it."""
    relay, bucket, raw = s3_relay
    client = _s3_client(relay, "portable", part_size=5 * MiB)
    data = os.urandom(11 * MiB)
    real = relay.answer

    def complete_then_empty(method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[Any, ...]:
        reply = real(method, path, body, headers)  # relayed: the object is made
        if method == "POST" and "uploadId=" in path:
            relay.faults += 1
            return 200, [("Content-Type", "application/xml")], b"", 0
        return reply

    relay.answer = complete_then_empty  # type: ignore[method-assign]
    with client.open_writer(f"s3://{bucket}/big") as w:
        w.write(data)
    assert relay.faults == 1
    assert raw.get_object(Bucket=bucket, Key="big")["Body"].read() == data


# -- 2. Put Block List answered 201, nothing committed -----------------------------------------
@pytest.mark.parametrize(
    ("engine", "how"),
    [("fast", "put"), ("portable", "put"), ("fast", "writer"), ("portable", "writer")],
)
def test_uncommitted_block_list_is_not_a_write(engine: str, how: str, az_relay: tuple[_Relay, str, Any]) -> None:
    relay, container, raw = az_relay
    client = _az_client(relay, engine, part_size=2 * MiB)
    data = os.urandom(11 * MiB)  # blocks on both engines, for put and for the writer
    relay.fault = "blocklist"
    with pytest.raises(TransferError, match="not committed"):
        _written(client, f"az://{container}/big", data, how)
    assert relay.faults >= 1
    assert [b.name for b in raw.list_blobs()] == []


@ENGINES
def test_uncommitted_block_list_once_is_committed_again(engine: str, az_relay: tuple[_Relay, str, Any]) -> None:
    relay, container, raw = az_relay
    client = _az_client(relay, engine, part_size=2 * MiB)
    data = os.urandom(5 * MiB)
    relay.fault, relay.limit = "blocklist", 1
    with client.open_writer(f"az://{container}/big") as w:
        w.write(data)
    assert relay.faults == 1
    assert raw.download_blob("big").readall() == data


@ENGINES
def test_committed_blocks_pass_the_check(engine: str, az_relay: tuple[_Relay, str, Any]) -> None:
    relay, container, raw = az_relay
    client = _az_client(relay, engine, part_size=2 * MiB)
    data = os.urandom(5 * MiB)
    raw.upload_blob("big", b"old", overwrite=True)
    with client.open_writer(f"az://{container}/big") as w:
        w.write(data)
    assert raw.download_blob("big").readall() == data


# -- 3. A HEAD that says the object is smaller than it is ---------------------------------------
BIG = os.urandom(5 * MiB + 12345)


def _reads(client: s3dlio.Client, uri: str, tmp: Path) -> dict[str, Callable[[], bytes]]:
    """Every large read sized by a HEAD, each giving the bytes it read."""
    fs = S3dlioFileSystem(client=client)

    def get_into() -> bytes:
        buf = bytearray(8 * MiB)
        return bytes(buf[: client.get_into(uri, buf)])

    def reader() -> bytes:
        with client.open_reader(uri) as r:
            return r.read()

    def download() -> bytes:
        return Path(client.download(uri, tempfile.mkdtemp(dir=tmp))[0]).read_bytes()

    def fs_open() -> bytes:
        with fs.open(uri, "rb") as f:
            return f.read()  # type: ignore[no-any-return]

    return {
        "get": lambda: bytes(memoryview(client.get(uri))),
        "get_into": get_into,
        "reader": reader,
        "download": download,
        "fsspec cat_file": lambda: fs.cat_file(uri),  # type: ignore[no-any-return]
        "fsspec open": fs_open,
    }


@ENGINES
@pytest.mark.parametrize("fraction", ["0.5", "0", "exact-threshold"])
def test_head_smaller_than_the_object_raises(
    engine: str, fraction: str, s3_relay: tuple[_Relay, str, Any], tmp_path: Path
) -> None:
    relay, bucket, raw = s3_relay
    raw.put_object(Bucket=bucket, Key="big", Body=BIG)
    client = _s3_client(relay, engine, range_threshold=MiB, part_size=MiB)
    uri = f"s3://{bucket}/big"
    relay.fault = "head:" + (str(MiB / len(BIG)) if fraction == "exact-threshold" else fraction)
    for name, read in _reads(client, uri, tmp_path).items():
        if name in ("reader", "fsspec open") and fraction != "0.5":
            continue  # a HEAD of 0 leaves a reader nothing to ask; for the other see the test below
        with pytest.raises(TransferError, match="HEAD"):
            got = read()
            pytest.fail(f"{engine} {name}: {len(got)} of {len(BIG)} bytes returned, no error")
    with pytest.raises(TransferError, match="HEAD"):
        client.copy(uri, f"s3://{bucket}/copy/")
    assert "copy/big" not in [o["Key"] for o in raw.list_objects_v2(Bucket=bucket).get("Contents", [])]


@ENGINES
def test_reader_block_ending_at_a_short_head_raises(engine: str, s3_relay: tuple[_Relay, str, Any],
                                                    tmp_path: Path) -> None:  # fmt: skip
    """A block read up to where the HEAD says the object ends asks one byte more."""
    relay, bucket, raw = s3_relay
    raw.put_object(Bucket=bucket, Key="big", Body=BIG)
    client = _s3_client(relay, engine, range_threshold=MiB, part_size=MiB)
    relay.fault = f"head:{MiB / len(BIG)}"
    reads = _reads(client, f"s3://{bucket}/big", tmp_path)
    for name in ("reader", "fsspec open"):
        with pytest.raises(TransferError, match="HEAD"):
            reads[name]()


@ENGINES
def test_head_smaller_than_the_blob_raises(engine: str, az_relay: tuple[_Relay, str, Any], tmp_path: Path) -> None:
    relay, container, raw = az_relay
    raw.upload_blob("big", BIG, overwrite=True)
    client = _az_client(relay, engine, range_threshold=MiB, part_size=MiB)
    relay.fault = "head:0.5"
    uri = f"az://{container}/big"
    for name in ("get", "get_into", "download"):
        with pytest.raises(TransferError, match="HEAD"):
            got = _reads(client, uri, tmp_path)[name]()
            pytest.fail(f"{engine} {name}: {len(got)} of {len(BIG)} bytes returned, no error")


@ENGINES
def test_truthful_head_reads_the_whole_object(engine: str, s3_relay: tuple[_Relay, str, Any],
                                                            tmp_path: Path) -> None:  # fmt: skip
    """With a truthful HEAD every read returns the object (one of exactly the threshold too)."""
    relay, bucket, raw = s3_relay
    raw.put_object(Bucket=bucket, Key="big", Body=BIG)
    client = _s3_client(relay, engine, range_threshold=MiB, part_size=MiB)
    for name, read in _reads(client, f"s3://{bucket}/big", tmp_path).items():
        assert read() == BIG, name
    raw.put_object(Bucket=bucket, Key="edge/big", Body=BIG[:MiB])
    for name, read in _reads(client, f"s3://{bucket}/edge/big", tmp_path).items():
        assert read() == BIG[:MiB], name
