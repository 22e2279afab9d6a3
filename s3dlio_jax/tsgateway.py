"""A loopback S3 endpoint through which TensorStore reads and writes with s3dlio.

TensorStore (under Orbax's array handlers) speaks S3 with its own HTTP client: its requests
would skip s3dlio's endpoints, credentials, CA bundle, retries and op-log, and it has no
driver for ``az://`` or s3dlio's other backends. This module serves the few S3 requests
TensorStore's ``s3`` kvstore driver sends (GET with ranges and ETag conditions, HEAD, PUT,
DELETE, ListObjectsV2) on ``127.0.0.1``, in a thread of this process, and answers each with
one s3dlio call on the real URI. TensorStore is told ``endpoint=http://127.0.0.1:PORT``,
anonymous credentials and a *virtual bucket* naming an s3dlio root (``s3://bucket/``,
``az://container/``, ``file:///``, ``mem://name/``), so the bytes TensorStore writes are
exactly the files it would write anywhere else (OCDBT, zarr), under the real URI.

One gateway per process (started on first use, again in a forked child); it listens only on
loopback and serves only the roots this process registered (:func:`kvstore_spec`), each under
a bucket name derived from a per-process random secret, so another local user who finds the
port cannot name a bucket.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import os
import re
import secrets
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

import s3dlio

__all__ = ["Gateway", "gateway", "kvstore_spec", "served_root"]

_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def served_root(uri: str) -> tuple[str, str]:
    """``(root, key)`` of an s3dlio URI: the bucket-level root the gateway serves and the key in it."""
    parsed = s3dlio.parse(uri)
    return str(parsed.with_key("")), parsed.key


def _bucket_name(secret: bytes, root: str) -> str:
    """A valid S3 bucket name standing for ``root`` (lowercase, digits, dashes; 3-63 characters)."""
    return "s3dlio-" + hashlib.sha256(secret + root.encode()).hexdigest()[:32]


class _UnknownBucket(LookupError):
    """A request for a bucket name this gateway did not hand out."""


class _IncompleteBody(ConnectionError):
    """A PUT whose body ended before its Content-Length: never stored."""


def _etag(meta: s3dlio.ObjectMeta) -> str:
    if meta.etag:
        tag = meta.etag.strip('"')
    else:  # backends without an ETag: size and modification time identify a version
        stamp = meta.last_modified.timestamp() if meta.last_modified else 0.0
        tag = f"{meta.size:x}-{int(stamp * 1e9):x}"
    return f'"{tag}"'


def _http_date(meta: s3dlio.ObjectMeta) -> str:
    return format_datetime(meta.last_modified or datetime.now(UTC), usegmt=True)


def _iso(meta: s3dlio.ObjectMeta) -> str:
    when = meta.last_modified or datetime.now(UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# OCDBT's data files are named by a random 128-bit id and written once, never changed: their
# size and ETag can be kept after the first stat (PUT or GET), saving a round trip per read.
_WRITE_ONCE = re.compile(r"(^|/)d/[0-9a-f]{32}$")


class _MetaCache:
    """Size and ETag of write-once objects (:data:`_WRITE_ONCE`), by URI; bounded."""

    def __init__(self, limit: int = 65536) -> None:
        self._items: dict[str, s3dlio.ObjectMeta] = {}
        self._limit = limit

    def stat(self, uri: str) -> s3dlio.ObjectMeta:
        meta = self._items.get(uri)
        if meta is None:
            meta = s3dlio.stat(uri)
            self.keep(uri, meta)
        return meta

    def keep(self, uri: str, meta: s3dlio.ObjectMeta) -> None:
        if _WRITE_ONCE.search(uri):
            if len(self._items) >= self._limit:
                self._items.clear()
            self._items[uri] = meta

    def forget(self, uri: str) -> None:
        self._items.pop(uri, None)


# PUT bodies above this size go up as they arrive (TensorStore sends an OCDBT data file, up to
# gigabytes, as one PUT), in parts of _STREAM_PART with at most _STREAM_IN_FLIGHT of them in flight;
# GET ranges above it go out in chunks of _STREAM_PART, _GET_AHEAD of them fetched at a time
# (TensorStore reads with up to 32 requests at once: memory is theirs times this).
_STREAM_PART = 16 << 20
_STREAM_IN_FLIGHT = 4
_GET_AHEAD = 2
_STREAM_ABOVE = 2 * _STREAM_PART


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``[start, end)`` of a single ``bytes=`` range, clipped to ``size``; None when unsatisfiable."""
    spec = header.strip().removeprefix("bytes=")
    first, _, last = spec.partition("-")
    if not first:  # suffix range: the last N bytes
        start, end = max(0, size - int(last)), size
    else:
        start = int(first)
        end = size if not last else min(size, int(last) + 1)
    if start >= size and size > 0:
        return None
    return start, end


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Quiet: s3dlio's op-log records the operations."""

    # -- plumbing ---------------------------------------------------------------------------------
    def _target(self) -> tuple[str, str, dict[str, list[str]]]:
        """``(root, key, query)`` of the request; raises KeyError for a bucket not registered."""
        parts = urlsplit(self.path)
        bucket, _, key = parts.path.lstrip("/").partition("/")
        root = self.server.roots.get(bucket)
        if root is None:
            raise _UnknownBucket(bucket)
        return root, unquote(key), parse_qs(parts.query, keep_blank_values=True)

    def _reply(self, status: int, body: bytes | memoryview = b"", headers: dict[str, str] | None = None,
               head: bool = False) -> None:  # fmt: skip
        """Send a response; ``head`` sends the headers only (``Content-Length`` may say otherwise)."""
        fields = dict(headers or {})
        length = fields.pop("Content-Length", str(len(body)))
        self.send_response(status)
        for name, value in fields.items():
            self.send_header(name, value)
        self.send_header("Content-Length", length)
        self.end_headers()
        if not head and len(body):
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, head: bool = False) -> None:
        body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{escape(message)}</Message></Error>"
        self._reply(status, body.encode(), {"Content-Type": "application/xml"}, head=head)

    def _guard(self, method: Any) -> None:
        try:
            method()
        except _UnknownBucket:
            self.close_connection = True  # a request body may be unread
            self._error(404, "NoSuchBucket", "not a bucket this gateway serves")
        except _IncompleteBody as exc:  # nothing was stored: S3's answer to a short body
            self.close_connection = True
            self._error(400, "IncompleteBody", str(exc))
        except s3dlio.NotFoundError as exc:
            self._error(404, "NoSuchKey", str(exc), head=self.command == "HEAD")
        except s3dlio.PermissionDeniedError as exc:
            self._error(403, "AccessDenied", str(exc), head=self.command == "HEAD")
        except (
            s3dlio.S3dlioError
        ) as exc:  # s3dlio has retried already: a 4xx, which TensorStore does not retry
            self.close_connection = True
            self._error(400, type(exc).__name__, str(exc), head=self.command == "HEAD")
        except Exception as exc:  # noqa: BLE001 - any failure becomes a 500 that TensorStore retries/reports
            self.server.errors.append(exc)
            self.close_connection = True
            self._error(500, "InternalError", f"{type(exc).__name__}: {exc}", head=self.command == "HEAD")

    def _preconditions(self, etag: str | None) -> int | None:
        """The status a failed If-Match / If-None-Match gives (None: go on)."""
        match, none_match = self.headers.get("If-Match"), self.headers.get("If-None-Match")
        if match is not None and (etag is None or (match.strip() != "*" and match.strip() != etag)):
            return 412
        if none_match is not None and etag is not None and (none_match.strip() in ("*", etag)):
            return 304 if self.command in ("GET", "HEAD") else 412
        return None

    def _stat(self, uri: str) -> s3dlio.ObjectMeta | None:
        try:
            return s3dlio.stat(uri)
        except s3dlio.NotFoundError:
            return None

    # -- requests ---------------------------------------------------------------------------------
    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self._guard(lambda: self._get(head=True))

    def do_GET(self) -> None:  # noqa: N802
        self._guard(lambda: self._get(head=False))

    def _get(self, head: bool) -> None:
        root, key, query = self._target()
        if not key:
            if head:
                self._reply(200, headers={"x-amz-bucket-region": "us-east-1"}, head=True)
            else:
                self._list(root, query)
            return
        uri = root + key
        meta = self.server.metas.stat(uri)
        etag = _etag(meta)
        headers = {"ETag": etag, "Last-Modified": _http_date(meta), "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}  # fmt: skip
        failed = self._preconditions(etag)
        if failed is not None:
            self._reply(failed, headers={"ETag": etag}, head=True)
            return
        wanted = self.headers.get("Range")
        if wanted and meta.size > 0:
            span = _parse_range(wanted, meta.size)
            if span is None:
                self._error(416, "InvalidRange", f"{wanted} of {meta.size} bytes", head=head)
                return
            start, end = span
            headers["Content-Range"] = f"bytes {start}-{max(start, end - 1)}/{meta.size}"
            status = 206
        else:
            start, end, status = 0, meta.size, 200
        if head:
            self._reply(status, headers={**headers, "Content-Length": str(end - start)}, head=True)
            return
        if end - start > _STREAM_ABOVE:
            self._get_streamed(uri, start, end, status, headers)
        elif start == 0 and end == meta.size:
            self._reply(status, memoryview(s3dlio.get(uri)).cast("B"), headers)
        else:
            self._reply(status, memoryview(s3dlio.get_range(uri, start, end - start)).cast("B"), headers)

    def _get_streamed(self, uri: str, start: int, end: int, status: int, headers: dict[str, str]) -> None:
        """Send a large range in chunks, fetching the next ones while this one goes out: the
        store's hop overlaps TensorStore's, and memory stays at a few chunks, not the range."""
        offsets = range(start, end, _STREAM_PART)
        ahead: list[Future[Any]] = []
        sent = False
        try:
            for i in range(len(offsets)):
                while len(ahead) < _GET_AHEAD and i + len(ahead) < len(offsets):
                    at = offsets[i + len(ahead)]
                    ahead.append(
                        self.server.fetcher.submit(s3dlio.get_range, uri, at, min(_STREAM_PART, end - at))
                    )
                chunk = memoryview(ahead.pop(0).result()).cast("B")
                if not sent:  # the first chunk came: the status can no longer be an error
                    self._reply(status, headers={**headers, "Content-Length": str(end - start)}, head=True)
                    sent = True
                self.wfile.write(chunk)
        except Exception as exc:
            for future in ahead:
                future.cancel()
            if not sent:
                raise
            # the headers went out: a body cut short (the connection closed) is all TensorStore can be told
            self.close_connection = True
            self.server.errors.append(exc)

    def _list(self, root: str, query: dict[str, list[str]]) -> None:
        prefix = query.get("prefix", [""])[0]
        after = query.get("start-after", [""])[0]
        parsed, store = s3dlio.resolve(root + prefix)  # roots are bucket-level: store keys are ours
        rows = []
        for meta in store.list(parsed.key):
            if isinstance(meta, str):
                continue
            key = meta.key
            if after and key <= after:
                continue
            rows.append(
                f"<Contents><Key>{escape(key)}</Key><LastModified>{_iso(meta)}</LastModified>"
                f"<ETag>{escape(_etag(meta))}</ETag><Size>{meta.size}</Size>"
                "<StorageClass>STANDARD</StorageClass></Contents>"
            )
        bucket = urlsplit(self.path).path.strip("/")
        body = (
            f"<?xml version='1.0' encoding='UTF-8'?><ListBucketResult xmlns='{_NS}'><Name>{bucket}</Name>"
            f"<Prefix>{escape(prefix)}</Prefix><KeyCount>{len(rows)}</KeyCount><MaxKeys>{max(1000, len(rows))}"
            f"</MaxKeys><IsTruncated>false</IsTruncated>{''.join(rows)}</ListBucketResult>"
        )
        self._reply(200, body.encode(), {"Content-Type": "application/xml"})

    def do_PUT(self) -> None:  # noqa: N802
        self._guard(self._put)

    def _put(self) -> None:
        root, key, _ = self._target()
        uri = root + key
        length = int(self.headers.get("Content-Length", "0"))
        if self.headers.get("If-Match") is not None or self.headers.get("If-None-Match") is not None:
            meta = self._stat(uri)
            failed = self._preconditions(None if meta is None else _etag(meta))
            if failed is not None:
                self.close_connection = True  # the body is unread
                self._error(412, "PreconditionFailed", f"{uri}: changed since read")
                return
        self.server.metas.forget(uri)
        if length > _STREAM_ABOVE:
            self._put_streamed(uri, length)
        else:
            body = self.rfile.read(length)
            if len(body) < length:
                raise _IncompleteBody(f"PUT {uri}: the body ended {length - len(body)} bytes early")
            s3dlio.put(uri, body)
        meta = s3dlio.stat(uri)
        self.server.metas.keep(uri, meta)
        self._reply(200, headers={"ETag": _etag(meta)})

    def _put_streamed(self, uri: str, length: int) -> None:
        """Upload a large body in parts while it still arrives: each part is received straight
        into the writer's part buffer (no copy in Python) and sent while the next is received,
        so the loopback hop overlaps the upload and memory stays at a few parts, not the body."""
        with s3dlio.open_writer(uri, part_size=_STREAM_PART, max_in_flight=_STREAM_IN_FLIGHT) as writer:
            left = length
            while left:
                got = self.rfile.readinto(writer.reserve(min(left, _STREAM_PART)))
                if not got:  # leaving the writer's block by an exception aborts the upload
                    raise _IncompleteBody(f"PUT {uri}: the body ended {left} bytes early")
                writer.commit(got)
                left -= got

    def do_DELETE(self) -> None:  # noqa: N802
        self._guard(self._delete)

    def _delete(self) -> None:
        root, key, _ = self._target()
        uri = root + key
        if self.headers.get("If-Match") is not None:
            meta = self._stat(uri)
            if self._preconditions(None if meta is None else _etag(meta)) is not None:
                self._error(412, "PreconditionFailed", f"{uri}: changed since read")
                return
        with contextlib.suppress(s3dlio.NotFoundError):
            self.server.metas.forget(uri)
            s3dlio.delete(uri)
        self._reply(204)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # TensorStore opens up to 32 connections at once (s3_request_concurrency)
    roots: dict[str, str]
    errors: list[BaseException]
    metas: _MetaCache
    fetcher: ThreadPoolExecutor


class Gateway:
    """The loopback endpoint: ``endpoint`` to give TensorStore, ``add(root)`` to serve a root."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.roots = {}
        self._server.errors = []
        self._server.metas = _MetaCache()
        # chunks of streamed GETs; TensorStore keeps up to 32 requests open (s3_request_concurrency)
        self._server.fetcher = ThreadPoolExecutor(16, thread_name_prefix="s3dlio-tsgateway-get")
        self._secret = secrets.token_bytes(16)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="s3dlio-tsgateway", daemon=True
        )
        self._thread.start()

    def add(self, root: str) -> str:
        """Serve ``root`` (``scheme://bucket/``); returns its virtual bucket name."""
        name = _bucket_name(self._secret, root)
        self._server.roots[name] = root
        return name

    @property
    def errors(self) -> list[BaseException]:
        """Unexpected failures answered with HTTP 500 (for diagnosis; TensorStore reports its own)."""
        return self._server.errors

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._server.fetcher.shutdown(cancel_futures=True)


_lock = threading.Lock()
_gateway: tuple[int, Gateway] | None = None


def gateway() -> Gateway:
    """This process's gateway, started on first use (and again in a forked child)."""
    global _gateway
    current = _gateway
    if current is None or current[0] != os.getpid():
        with _lock:
            current = _gateway
            if current is None or current[0] != os.getpid():
                current = _gateway = (os.getpid(), Gateway())
    return current[1]


_PROXY_VARS = ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")


def _bypass_proxies() -> None:
    """Keep TensorStore's HTTP client (libcurl, which reads ``http_proxy`` on every request)
    off any proxy for the gateway: add ``127.0.0.1`` to ``no_proxy``/``NO_PROXY``."""
    if not any(os.environ.get(name) for name in _PROXY_VARS):
        return
    for name in ("no_proxy", "NO_PROXY"):
        hosts = [h.strip() for h in os.environ.get(name, "").split(",") if h.strip()]
        if "127.0.0.1" not in hosts and "*" not in hosts:
            os.environ[name] = ",".join([*hosts, "127.0.0.1"])


def kvstore_spec(uri: str) -> dict[str, Any]:
    """TensorStore's kvstore spec for the s3dlio URI ``uri`` (a directory), served by :func:`gateway`."""
    root, key = served_root(uri)
    _bypass_proxies()
    served = gateway()
    return {
        "driver": "s3",
        "bucket": served.add(root),
        "path": key,
        "endpoint": served.endpoint,
        "aws_region": "us-east-1",
        "aws_credentials": {"type": "anonymous"},
        # s3dlio retries each request to the store; TensorStore only retries the loopback hop
        "s3_request_retries": {"max_retries": 3, "initial_delay": "10ms", "max_delay": "200ms"},
    }
