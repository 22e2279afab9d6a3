"""Bad replies are never taken as good data, on both engines.

A real HTTP server in a thread (no mocks) answers like a faulty S3 server or proxy: a 206
whose body is shorter than its Content-Range, a range that stops before what was asked and
before the object's end, a 200 with the whole object to a ranged GET (a server ignoring
Range), a listing whose continuation token never ends. Each read must raise TransferError
(retried: a good reply after a bad one succeeds); a listing must end.
"""

from __future__ import annotations

import http.server
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from s3dlio import ranged
from s3dlio.config import Config
from s3dlio.errors import TransferError
from s3dlio.reader import ObjectReader
from s3dlio.store.base import Store
from s3dlio.store.fast import open_fast_store
from s3dlio.store.s3 import S3Store
from s3dlio.uri import ObjectUri

SIZE = 1000
BODY = bytes((i * 7) % 251 for i in range(SIZE))
ETAG = '"0123456789abcdef0123456789abcdef"'
_LOOP_PAGE = (
    b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>b</Name><Prefix></Prefix>'
    b"<KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>"
    b"<NextContinuationToken>tok</NextContinuationToken><Contents><Key>k</Key>"
    b"<LastModified>2025-01-01T00:00:00.000Z</LastModified><ETag>&quot;x&quot;</ETag><Size>3</Size>"
    b"</Contents></ListBucketResult>"
)


@dataclass
class Behaviour:
    """How the server answers GETs: ``mode`` for the first ``bad`` replies, then correctly."""

    mode: str = "ok"
    bad: int = 1_000_000
    gets: list[str] = field(default_factory=list)
    lists: int = 0


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    behaviour: Behaviour

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for name, value in {"ETag": ETAG, "Last-Modified": "Wed, 01 Jan 2025 00:00:00 GMT", **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self._send(200, {"Content-Length": str(SIZE)})

    def do_GET(self) -> None:
        b = self.behaviour
        if "list-type" in self.path:
            b.lists += 1
            self._send(200, {"Content-Type": "application/xml", "Content-Length": str(len(_LOOP_PAGE))}, _LOOP_PAGE)
            return
        asked = self.headers.get("Range") or self.headers.get("x-ms-range", "")  # S3's or Azure's
        b.gets.append(asked)
        found = re.match(r"bytes=(\d+)-(\d*)", asked)
        if found is None:
            self._send(200, {"Content-Length": str(SIZE)}, BODY)
            return
        start = int(found[1])
        end = min(int(found[2]) + 1 if found[2] else SIZE, SIZE)
        if start >= SIZE:
            error = b"<Error><Code>InvalidRange</Code><Message>The requested range is not satisfiable</Message></Error>"
            self._send(416, {"Content-Length": str(len(error)), "Content-Range": f"bytes */{SIZE}"}, error)
            return
        mode = b.mode if len(b.gets) <= b.bad else "ok"
        body, last = BODY[start:end], end
        if mode == "norange":  # HTTP allows ignoring Range: 200 and the whole object
            self._send(200, {"Content-Length": str(SIZE)}, BODY)
            return
        if mode == "short":  # Content-Range says all of it, Content-Length and body half
            body = body[: len(body) // 2]
        elif mode == "partial":  # a consistent reply that stops before the end asked and the object's end
            last = start + (end - start) // 2
            body = BODY[start:last]
        headers = {"Content-Length": str(len(body)), "Content-Range": f"bytes {start}-{last - 1}/{SIZE}"}
        self._send(206, headers, body)


def _serve(handler: type[_Handler], path: str = "") -> Iterator[tuple[str, Behaviour]]:
    """A server answering with ``handler`` in a thread: (its URL + ``path``, its behaviour)."""
    behaviour = Behaviour()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("Serving", (handler,), {"behaviour": behaviour}))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}{path}", behaviour
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server() -> Iterator[tuple[str, Behaviour]]:
    yield from _serve(_Handler)


def _config(endpoint: str) -> Config:
    return Config(
        endpoint_url=endpoint, region="us-east-1", access_key_id="testing", secret_access_key="testing",
        max_attempts=3, total_timeout=2.0, read_timeout=2.0, connect_timeout=2.0, range_threshold=4096,
        part_size=4096,
    )  # fmt: skip


def _store(engine: str, endpoint: str) -> Store:
    config = _config(endpoint)
    if engine == "fast":
        return open_fast_store(ObjectUri("s3", "b", ""), config)
    return S3Store("b", config)


ENGINES = pytest.mark.parametrize("engine", ["fast", "portable"])
URI = "s3://b/k"


def _reads(store: Store) -> dict[str, object]:
    """Every way of reading the object's bytes, each a thunk giving bytes."""
    config = store.config

    def get_into() -> bytes:
        buf = bytearray(2 * SIZE)
        return bytes(buf[: ranged.get_into(store, "k", buf, config=config, uri=URI)])

    def fetch_into() -> bytes:  # Store.get_range_into, resumed from the first missing byte
        buf = bytearray(SIZE)
        return bytes(buf[: ranged.fetch_into(store, "k", 0, memoryview(buf), attempts=config.max_attempts)])

    return {
        "get": lambda: bytes(memoryview(ranged.get(store, "k", config=config, uri=URI))),
        "get_range": lambda: bytes(memoryview(store.get_range("k", 100, 900))),
        "fetch_into": fetch_into,
        "fetch_block": lambda: bytes(memoryview(ranged.fetch_block(store, "k", 0, SIZE, attempts=config.max_attempts))),
        "get_into": get_into,
        "reader": lambda: ObjectReader(URI, store, "k", config=config).read(),
    }  # fmt: skip


@ENGINES
@pytest.mark.parametrize("mode", ["short", "partial"])
def test_short_reply_raises(engine: str, mode: str, server: tuple[str, Behaviour]) -> None:
    endpoint, behaviour = server
    behaviour.mode = mode
    store = _store(engine, endpoint)
    for name, read in _reads(store).items():
        with pytest.raises(TransferError):
            got = read()  # type: ignore[operator]
            pytest.fail(f"{engine} {name}: {len(got)} bytes taken from a {mode} reply")


@ENGINES
@pytest.mark.parametrize("mode", ["short", "partial"])
def test_short_reply_is_retried(engine: str, mode: str, server: tuple[str, Behaviour]) -> None:
    endpoint, behaviour = server
    store = _store(engine, endpoint)
    for name, read in _reads(store).items():
        behaviour.mode, behaviour.bad, behaviour.gets = mode, 1, []
        got = read()  # type: ignore[operator]
        assert got == (BODY[100:900] if name == "get_range" else BODY), name
        assert len(behaviour.gets) >= 2, name


@ENGINES
def test_range_past_the_end_is_clipped(engine: str, server: tuple[str, Behaviour]) -> None:
    endpoint, _ = server
    store = _store(engine, endpoint)
    assert bytes(memoryview(store.get_range("k", 900, 5000))) == BODY[900:]
    assert bytes(memoryview(ranged.get(store, "k", config=store.config, uri=URI))) == BODY
    assert memoryview(store.get_range("k", 2000, 3000)).nbytes == 0


@ENGINES
def test_server_ignoring_range_raises(engine: str, server: tuple[str, Behaviour]) -> None:
    endpoint, behaviour = server
    behaviour.mode = "norange"
    store = _store(engine, endpoint)
    with pytest.raises(TransferError):
        store.get_range("k", 100, 110)
    with pytest.raises(TransferError):
        store.get_range_into("k", 100, 110, memoryview(bytearray(10)))


def test_portable_takes_a_whole_object_reply_to_a_range_from_0(server: tuple[str, Behaviour]) -> None:
    endpoint, behaviour = server
    behaviour.mode = "norange"
    store = _store("portable", endpoint)
    assert bytes(memoryview(ranged.get(store, "k", config=store.config, uri=URI))) == BODY


@ENGINES
@pytest.mark.parametrize("delimiter", [False, True], ids=["recursive", "one-level"])
def test_repeated_continuation_token_ends_listing(engine: str, delimiter: bool, server: tuple[str, Behaviour]) -> None:
    endpoint, behaviour = server
    store = _store(engine, endpoint)
    began = time.monotonic()
    with pytest.raises(TransferError):
        for _ in store.list("", delimiter=delimiter):
            pass
    # fast one-level: total_timeout + read_timeout, then the portable engine's listing
    assert time.monotonic() - began < 15
    lists = behaviour.lists
    time.sleep(0.5)
    assert behaviour.lists == lists, "the listing goes on in the background"


# -- Azure Blob: the same faults, as Azure's API words them ----------------------------------------
_AZ_BLOB = (
    "<Blob><Name>{name}</Name><Properties><Last-Modified>Wed, 01 Jan 2025 00:00:00 GMT</Last-Modified>"
    "<Etag>0x8DC0000000000001</Etag><Content-Length>3</Content-Length><BlobType>BlockBlob</BlobType>"
    "</Properties></Blob>"
)


class _AzureHandler(_Handler):
    """Blob GETs (``x-ms-range`` or ``Range``) and listings (``comp=list``, ``NextMarker`` never ending)."""

    def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        azure = {"ETag": '"0x8DC0000000000001"', "x-ms-blob-type": "BlockBlob", "x-ms-version": "2021-08-06"}
        super()._send(status, {**azure, **headers}, body)

    def do_GET(self) -> None:
        if "comp=list" in self.path:
            self.behaviour.lists += 1
            page = (
                '<?xml version="1.0" encoding="utf-8"?><EnumerationResults ContainerName="c"><Blobs>'
                + _AZ_BLOB.format(name="k")
                + "</Blobs><NextMarker>tok</NextMarker></EnumerationResults>"
            ).encode()
            self._send(200, {"Content-Type": "application/xml", "Content-Length": str(len(page))}, page)
            return
        super().do_GET()


@pytest.fixture
def azure_server() -> Iterator[tuple[str, Behaviour]]:
    yield from _serve(_AzureHandler, "/devstoreaccount1")


def _azure_store(engine: str, endpoint: str) -> Store:
    from s3dlio.store.azure import AzureStore

    config = Config(
        azure_endpoint=endpoint, azure_account_name="devstoreaccount1", azure_account_key="a2V5",
        max_attempts=3, total_timeout=2.0, read_timeout=2.0, connect_timeout=2.0, range_threshold=4096,
        part_size=4096,
    )  # fmt: skip
    if engine == "fast":
        return open_fast_store(ObjectUri("az", "c", "", "devstoreaccount1"), config)
    return AzureStore("c", config, account="devstoreaccount1")


@ENGINES
@pytest.mark.parametrize("mode", ["short", "norange"])
def test_azure_short_or_unranged_replies_raise(engine: str, mode: str, azure_server: tuple[str, Behaviour]) -> None:
    """The Azure SDK works out a download's size from the first reply and never compares the
    bytes it got with it: a 206 with half its body came back as the whole object."""
    endpoint, behaviour = azure_server
    behaviour.mode = mode
    store = _azure_store(engine, endpoint)
    for name, read in {"get": lambda: store.get("k"), "get_range": lambda: store.get_range("k", 100, 900)}.items():
        if name == "get" and engine == "fast":
            continue  # obstore's whole-object GET sends no Range: the server's 200 is the object
        with pytest.raises(TransferError):
            got = read()
            pytest.fail(f"{engine} {name}: {memoryview(got).nbytes} bytes taken from a {mode} reply")


@ENGINES
def test_azure_repeated_continuation_token_ends_listing(engine: str, azure_server: tuple[str, Behaviour]) -> None:
    endpoint, behaviour = azure_server
    store = _azure_store(engine, endpoint)
    with pytest.raises(TransferError):
        for _ in store.list("", delimiter=False):
            pass
    lists = behaviour.lists
    time.sleep(0.5)
    assert behaviour.lists == lists, "the listing goes on in the background"
