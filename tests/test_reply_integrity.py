"""Bad replies are never taken as good data, on both engines.

A real HTTP server in a thread (no mocks) answers like a faulty S3 server or proxy: a 206
whose body is shorter than its Content-Range, a range that stops before what was asked and
before the object's end, a 200 with the whole object to a ranged GET (a server ignoring
Range), a listing whose continuation token never ends. Each read must raise TransferError
(retried: a good reply after a bad one succeeds); a listing must end.
"""

from __future__ import annotations

import http.client
import http.server
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from click.testing import CliRunner

import s3dlio
from s3dlio import Client, ranged
from s3dlio.checkpoint import CheckpointStore
from s3dlio.cli import cli
from s3dlio.config import Config
from s3dlio.errors import PermissionDeniedError, TransferError
from s3dlio.fsspec import filesystem
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


# -- a faulty proxy in front of moto and Azurite: listings, batch deletes, redirects, bodies ---------
STRAY = "victim/.s3dlio-tmp-keep"  # outside every prefix the tests list or delete; named as a temporary


@dataclass
class Fault:
    """What the proxy does to replies: ``mode`` names the fault ("ok" forwards untouched)."""

    mode: str = "ok"
    target: str = ""  # where "redirect" points
    upload: str = ""  # the id of the multipart upload "stray-upload" lists


class _Proxy(http.server.BaseHTTPRequestHandler):
    """Forwards every request to ``upstream`` (moto or Azurite) and alters replies as ``fault`` says."""

    protocol_version = "HTTP/1.1"
    upstream: int
    fault: Fault

    def log_message(self, *args: object) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        raw = b""
        while True:  # forwarded as sent: chunk sizes, data and trailers
            line = self.rfile.readline()
            raw += line
            if int(line.split(b";")[0], 16) == 0:
                while (trailer := self.rfile.readline()) not in (b"\r\n", b""):
                    raw += trailer
                return raw + b"\r\n"
            raw += self.rfile.read(int(line.split(b";")[0], 16) + 2)

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=30)
        conn.request(self.command, self.path, body=body or None, headers=dict(self.headers.items()))
        reply = conn.getresponse()
        data = reply.read()
        skip = ("transfer-encoding", "connection", "content-length", "date", "server")
        headers = [(k, v) for k, v in reply.getheaders() if k.lower() not in skip]
        if self.command == "HEAD":
            headers.append(("Content-Length", reply.getheader("Content-Length") or "0"))
        conn.close()
        return reply.status, headers, data

    def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _any(self) -> None:
        body = self._body()
        mode, query = self.fault.mode, self.path.partition("?")[2]
        if mode == "redirect":
            self._reply(307, [("Location", self.fault.target + self.path)], b"")
            return
        if mode == "delete-garbage" and self.command == "POST" and re.search(r"(^|&)delete(=|&|$)", query):
            self._reply(200, [("Content-Type", "application/xml")], b"<html>hello</html>")
            return
        if mode == "delete-denied" and self._denied(query, body):
            return
        status, headers, data = self._forward(body)
        if mode == "chunked-short" and self.command == "GET" and not query and status // 100 == 2:
            self._chunked_short(status, headers, data)
            return
        if mode == "stray" and self.command == "GET":
            data = _add_stray(query, data)
        if mode == "stray-upload" and self.command == "GET" and re.search(r"(^|&)uploads(=|&|$)", query):
            upload = f"<Upload><Key>{STRAY}</Key><UploadId>{self.fault.upload}</UploadId><Initiated>"
            data = data.replace(b"</ListMultipartUploadsResult>", upload.encode()
                                + b"2020-01-01T00:00:00.000Z</Initiated></Upload></ListMultipartUploadsResult>")  # fmt: skip
        if mode == "no-token" and self.command == "GET" and "list-type=2" in query:
            data = _first_key_only(data)
        self._reply(status, headers, data)

    def _denied(self, query: str, body: bytes) -> bool:
        """Keys holding "keep" are refused (AccessDenied), in a DeleteObjects result and to a
        DELETE; the batch's other keys are deleted one by one. True when it answered."""
        if self.command == "DELETE" and "keep" in self.path:
            error = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
            self._reply(403, [("Content-Type", "application/xml")], error)
            return True
        if self.command != "POST" or not re.search(r"(^|&)delete(=|&|$)", query):
            return False
        done = []
        for key in re.findall(r"<Key>(.*?)</Key>", body.decode()):
            if "keep" in key:
                done.append(f"<Error><Key>{key}</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>")
                continue
            conn = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=30)
            scope = "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/s3/aws4_request"  # moto checks no signature
            conn.request("DELETE", self.path.partition("?")[0] + "/" + key, headers={"Authorization": scope})
            conn.getresponse().read()
            conn.close()
            done.append(f"<Deleted><Key>{key}</Key></Deleted>")
        result = f'<?xml version="1.0" encoding="UTF-8"?><DeleteResult>{"".join(done)}</DeleteResult>'
        self._reply(200, [("Content-Type", "application/xml")], result.encode())
        return True

    def _chunked_short(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        """The first half of the body as one chunk, then the connection closes (no last chunk)."""
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        half = data[: len(data) // 2]
        self.wfile.write(b"%x\r\n%s\r\n" % (len(half), half))
        self.close_connection = True

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any


def _add_stray(query: str, data: bytes) -> bytes:
    """A listing reply with :data:`STRAY` added: an object and a common prefix, or a blob and a blob prefix."""
    entry = {
        b"</ListBucketResult>": (
            f"<Contents><Key>{STRAY}</Key><LastModified>2025-01-01T00:00:00.000Z</LastModified>"
            f"<ETag>&quot;x&quot;</ETag><Size>4</Size><StorageClass>STANDARD</StorageClass></Contents>"
            "<CommonPrefixes><Prefix>victim/</Prefix></CommonPrefixes>"
        ),
        b"</Blobs>": _AZ_BLOB.format(name=STRAY).replace(
            "<BlobType>", "<Content-Type>application/octet-stream</Content-Type><BlobType>"
        ) + "<BlobPrefix><Name>victim/</Name></BlobPrefix>",
    }
    for end, extra in entry.items():
        if end in data and ("list-type=2" in query or "comp=list" in query):
            return data.replace(end, extra.encode() + end)
    return data


def _first_key_only(data: bytes) -> bytes:
    """A ListObjectsV2 page cut to its first key, marked truncated, with no continuation token."""
    keys = re.findall(rb"<Contents>.*?</Contents>", data, re.S)
    if not keys:
        return data
    data = data.replace(b"".join(keys[1:]), b"")
    data = re.sub(rb"<NextContinuationToken>.*?</NextContinuationToken>", b"", data)
    data = re.sub(rb"<KeyCount>\d+</KeyCount>", b"<KeyCount>1</KeyCount>", data)
    return data.replace(b"<IsTruncated>false</IsTruncated>", b"<IsTruncated>true</IsTruncated>")


def _proxy(upstream: str) -> Iterator[tuple[str, Fault]]:
    """A :class:`_Proxy` in a thread in front of ``upstream`` (``http://host:port/path``)."""
    port, path = upstream.split(":")[2].partition("/")[::2]
    fault = Fault()
    handler = type("Proxying", (_Proxy,), {"upstream": int(port), "fault": fault})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}" + (f"/{path}" if path else ""), fault
    finally:
        httpd.shutdown()
        httpd.server_close()


@dataclass
class Place:
    """A bucket or container behind the proxy: its URI root, the proxy's fault and its endpoint."""

    root: str  # s3://bucket/ or az://container/
    fault: Fault
    endpoint: str
    raw: Any  # boto3 client or azure ContainerClient, straight to the server (setup and checks)

    def config(self, engine: str) -> Config:
        where = {"endpoint_url": self.endpoint} if self.root.startswith("s3") else {"azure_endpoint": self.endpoint}
        return Config.resolve(engine=engine, max_attempts=2, total_timeout=5.0, read_timeout=5.0, **where)

    def client(self, engine: str) -> Client:
        return Client(self.config(engine))

    @property
    def name(self) -> str:
        return self.root.split("/")[2]

    def put(self, objects: dict[str, bytes]) -> None:
        for key, data in objects.items():
            if self.root.startswith("s3"):
                self.raw.put_object(Bucket=self.name, Key=key, Body=data)
            else:
                self.raw.upload_blob(key, data, overwrite=True)

    def listing(self) -> list[str]:
        if self.root.startswith("s3"):
            return sorted(o["Key"] for o in self.raw.list_objects_v2(Bucket=self.name).get("Contents", ()))
        return sorted(b.name for b in self.raw.list_blobs())


def _settings(config: Config) -> dict[str, Any]:
    """``config``'s explicit settings, for :func:`s3dlio.configure` (what the CLI uses)."""
    names = ("engine", "endpoint_url", "azure_endpoint", "max_attempts", "total_timeout", "read_timeout")
    return {name: getattr(config, name) for name in names if config.is_explicit(name)}


@pytest.fixture(params=["s3", "az"])
def place(request: pytest.FixtureRequest) -> Iterator[Place]:
    if request.param == "s3":
        root, upstream = request.getfixturevalue("s3_bucket"), request.getfixturevalue("moto_server")
        raw = upstream.client()
    else:
        root, upstream = request.getfixturevalue("az_container"), request.getfixturevalue("azurite")
        raw = upstream.client().get_container_client(root.split("/")[2])
    for endpoint, fault in _proxy(upstream.endpoint):
        yield Place(root, fault, endpoint, raw)


@ENGINES
@pytest.mark.parametrize("how", ["one-level", "odd-key", "fsspec-rm", "checkpoint-delete", "cleanup"])
def test_key_listed_outside_the_prefix_is_refused(engine: str, how: str, place: Place) -> None:
    """A listing reply naming an object outside the prefix asked for (a broken server or proxy):
    the listing raises TransferError naming it, and nothing deleting "what is under the prefix"
    deletes it. The fast engine hands a page holding a key obstore cannot address (``data//odd``)
    to the portable engine, which must check the same."""
    objects = {"data/a": b"a", "data/b": b"b", STRAY: b"KEEP"}
    if how == "odd-key":
        objects["data//odd"] = b"o"
    place.put(objects)
    client = place.client(engine)
    if how == "checkpoint-delete":
        checkpoints = CheckpointStore(place.root + "run/", client=client, rank=0, world_size=1)
        checkpoints.save(1, {"w": b"x"})
        checkpoints.save(2, {"w": b"y"})
    place.fault.mode = "stray"
    if how == "cleanup":  # the command; it lists with the portable engine whatever the setting
        s3dlio.configure(**_settings(place.config(engine)))
        run = CliRunner().invoke(cli, ["cleanup", place.root + "data/"])
        assert run.exit_code == 1 and repr(STRAY) in run.output, run.output
    else:
        with pytest.raises(TransferError, match="listed 'victim/"):
            if how == "odd-key":
                client.list(place.root + "data/", recursive=True)
            elif how == "one-level":
                client.list(place.root + "data/")
            elif how == "fsspec-rm":
                filesystem(place.root[:2], client.config).rm(place.root + "data", recursive=True)
            else:
                checkpoints.delete(1)
    place.fault.mode = "ok"
    assert STRAY in place.listing()


@pytest.mark.parametrize("place", ["s3"], indirect=True)
def test_cleanup_leaves_uploads_listed_outside_the_prefix(place: Place) -> None:
    """ListMultipartUploads naming an upload outside the prefix: ``s3dlio cleanup`` stops and aborts none."""
    upload = place.raw.create_multipart_upload(Bucket=place.name, Key=STRAY)["UploadId"]
    place.fault.mode, place.fault.upload = "stray-upload", upload
    s3dlio.configure(**_settings(place.config("portable")))
    run = CliRunner().invoke(cli, ["cleanup", place.root + "data/"])
    assert run.exit_code == 1 and repr(STRAY) in run.output, run.output
    uploads = place.raw.list_multipart_uploads(Bucket=place.name).get("Uploads", ())
    assert [u["UploadId"] for u in uploads] == [upload]
    place.raw.abort_multipart_upload(Bucket=place.name, Key=STRAY, UploadId=upload)


@ENGINES
@pytest.mark.parametrize("place", ["s3"], indirect=True)
def test_truncated_page_without_a_token_is_listed_on(engine: str, place: Place) -> None:
    """Pages marked truncated (IsTruncated) with no NextContinuationToken: botocore and obstore
    stopped after the first, so a listing gave 1 key of 5 and ``rm -r`` left 4. The listing
    goes on after the last key received (what ListObjects v1 does without NextMarker)."""
    keys = [f"n/{i}" for i in range(5)]
    place.put(dict.fromkeys(keys, b"x"))
    client = place.client(engine)
    place.fault.mode = "no-token"
    assert client.list(place.root + "n/", recursive=True) == [place.root + key for key in keys]
    filesystem("s3", client.config).rm(place.root + "n", recursive=True)
    place.fault.mode = "ok"
    assert place.listing() == []


def _open(place: Place, engine: str) -> Store:
    from s3dlio.store.registry import open_store
    from s3dlio.uri import parse

    return open_store(parse(place.root), place.config(engine))


@ENGINES
@pytest.mark.parametrize("place", ["s3"], indirect=True)
def test_delete_reply_that_is_no_delete_result_raises(engine: str, place: Place) -> None:
    """A 200 to DeleteObjects that is not a DeleteResult (HTML from a proxy) deletes nothing
    and says nothing: the portable engine, quiet, took it as "all deleted"."""
    place.put({"d/a": b"a", "d/b": b"b"})
    store = _open(place, engine)
    place.fault.mode = "delete-garbage"
    with pytest.raises(TransferError, match="DeleteObjects|DeleteResult"):
        store.delete_many(["d/a", "d/b"])
    place.fault.mode = "ok"
    assert place.listing() == ["d/a", "d/b"]


@ENGINES
@pytest.mark.parametrize("place", ["s3"], indirect=True)
def test_delete_refused_key_is_permission_denied(engine: str, place: Place) -> None:
    """A DeleteObjects result refusing one key (AccessDenied): that key fails with
    PermissionDeniedError, the others are deleted (obstore raised a generic error for the
    batch, retried, named after its first key)."""
    place.put({"d/a": b"a", "d/keep": b"k", "d/b": b"b"})
    store = _open(place, engine)
    place.fault.mode = "delete-denied"
    failures = store.delete_many(["d/a", "d/keep", "d/b"])
    assert [(f.key, type(f.error)) for f in failures] == [("d/keep", PermissionDeniedError)]
    place.fault.mode = "ok"
    assert place.listing() == ["d/keep"]


@pytest.mark.parametrize("place", ["s3"], indirect=True)
def test_redirect_is_an_error_not_a_recursion(place: Place) -> None:
    """A 307 from the endpoint: botocore's region redirector asked the bucket's region with a
    HeadBucket, redirected too, and recursed until RecursionError. Each call now says so."""
    from servers import CaptureServer

    place.put({"r/a": b"hello"})
    client = place.client("portable")
    elsewhere = CaptureServer()
    place.fault.mode, place.fault.target = "redirect", elsewhere.url
    try:
        for call in (lambda: client.get(place.root + "r/a"), lambda: client.put(place.root + "r/b", b"x"),
                     lambda: client.list(place.root + "r/"), lambda: client.stat(place.root + "r/a")):  # fmt: skip
            with pytest.raises(TransferError, match="the endpoint redirects .HTTP 307 to http://127"):
                call()
        assert elsewhere.requests == []
    finally:
        elsewhere.stop()


def test_redirect_recursion_is_mapped() -> None:
    """Where botocore still redirects (no custom endpoint), its recursion is a TransferError."""
    from s3dlio.store.s3 import map_errors

    with pytest.raises(TransferError, match=r"the endpoint redirects \(again and again\)"), map_errors("get", "s3://b/k"):
        raise RecursionError("maximum recursion depth exceeded")


@ENGINES
@pytest.mark.parametrize("place", ["s3"], indirect=True)
def test_chunked_reply_cut_short_raises(engine: str, place: Place) -> None:
    """A GET reply sent chunked (no Content-Length) that breaks off: TransferError from every
    way of reading (resuming it raised KeyError 'ContentLength' on the portable engine)."""
    from s3dlio.loader import Loader

    uris = [place.root + f"g/o{i}" for i in range(3)]
    place.put({uri.split("/", 3)[3]: bytes([i]) * 1000 for i, uri in enumerate(uris)})
    client = place.client(engine)
    place.fault.mode = "chunked-short"
    for read in (lambda: client.get(uris[0]), lambda: client.get_many(uris),
                 lambda: list(Loader(uris, config=client.config))):  # fmt: skip
        with pytest.raises(TransferError):
            read()
