"""The fast engine: obstore (Rust ``object_store``) behind the :class:`Store` interface.

This module holds what every backend shares: :class:`FastStore` (reads, listings, writes,
deletes), the client settings (timeouts, retries, TLS) and :func:`open_fast_store`. The
backends are ``fast_s3``, ``fast_azure`` and ``fast_local`` (file and memory); obstore's
errors become s3dlio's in ``fast_errors``.

Only obstore's *sync* calls are used: they release the GIL and cost client CPU linearly in
the body size, while its async body reads grow super-linearly (shared/DESIGN.md §2). Reads
return obstore's ``Bytes`` as-is (buffer protocol, zero-copy); writes hand obstore a
``memoryview`` of the caller's buffer (no copy in Python).

obstore addresses keys as ``object_store`` paths, so it cannot name keys with empty, ``.``
or ``..`` segments or a leading/trailing ``/`` (it would silently strip the slashes); such
keys raise :class:`InvalidUriError` naming the portable engine, which can. The exception is
the folder marker (``dir/``, a zero-byte object the AWS console, s3fs and Hadoop write): its
requests go to the portable engine's store, and since obstore lists it as ``dir`` the listing
gives it back its ``/`` (:meth:`FastStore._listed_key`). Its listing prefixes are whole path
segments, so a partial prefix (``data/fi``) is served by listing the parent segment from
just before the prefix and filtering.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import obstore
from obstore import exceptions as obx

from .._parallel import on_loop
from ..config import Config
from ..errors import (
    ConfigError,
    InvalidUriError,
    NotFoundError,
    PermissionDeniedError,
    S3dlioError,
    TransferError,
)
from ..retry import Attempts, ChangedError
from ..uri import ObjectUri
from . import engine
from .base import (
    RESUME_CHUNK,
    DeleteFailure,
    ObjectMeta,
    ResumableRead,
    Store,
    check_length,
    check_reply,
    check_version,
    outside_prefix,
)
from .fast_errors import FIX_ENGINE, bucket_missing, map_errors, range_past_end, short

if TYPE_CHECKING:
    from collections.abc import Buffer

    from obstore import GetOptions


__all__ = ["FastStore", "PortableBuckets", "build", "client_options", "map_errors", "open_fast_store", "retry_config"]

log = logging.getLogger("s3dlio.store")

_MiB = 1024 * 1024
_EMPTY = obstore.Bytes(b"")
_ASYNC_BODY_MIN = 1 << 20  # below this the async hand-off costs more than it saves
# GetResult.attributes keys that are not user metadata.
_STANDARD_ATTRIBUTES = frozenset(
    {
        "Content-Type",
        "Content-Language",
        "Content-Encoding",
        "Content-Disposition",
        "Cache-Control",
        "Storage-Class",
    }
)


def open_fast_store(uri: ObjectUri, config: Config) -> Store:
    """The obstore-backed store for ``uri``'s scheme and bucket."""
    engine.mark_fast_started()
    # Each backend's module imports this one (FastStore): load them on first use.
    if uri.scheme == "s3":
        from .fast_s3 import FastS3Store

        return FastS3Store(uri.bucket, config)
    if uri.scheme == "az":
        from .fast_azure import FastAzureStore

        return FastAzureStore(uri.bucket, config, account=uri.account)
    if uri.scheme == "file":
        from .fast_local import FastLocalStore

        return FastLocalStore(config)
    if uri.scheme == "mem":
        from .fast_local import FastMemoryStore

        return FastMemoryStore(uri.bucket, config)
    raise InvalidUriError(f"{uri}: the fast engine has no store for {uri.scheme}://")


class FastStore(Store):
    """A Store whose every request is one sync obstore call (GIL released while it waits)."""

    engine = "fast"
    #: Keys per batch-delete request.
    _delete_batch = 1000
    #: Whether large puts use obstore's parallel multipart upload.
    _multipart = True
    #: Appended to access-denied messages.
    _credential_hint = ""
    # Bodies of at least _ASYNC_BODY_MIN bytes come over the network in many chunks: read them
    # with the async API (see _parallel.on_loop). Small ones are cheaper with the sync API.
    _network = True
    #: Whether listings may hold folder markers (``dir/`` objects) that obstore reports as ``dir``.
    _folder_markers = False
    #: Whether obstore lists the marker of the listed directory itself (its Azure listing drops it).
    _lists_own_marker = True

    def __init__(self, bucket: str, config: Config, inner: Any, *, scheme: str, endpoint: str) -> None:
        super().__init__(bucket, config)
        self.scheme = scheme
        self.endpoint = endpoint
        self._inner = inner
        self._account: str | None = None

    # -- helpers ---------------------------------------------------------------------------
    def _uri(self, key: str) -> str:
        return f"{self.scheme}://{self.bucket}/{key}"

    def _errors(self, op: str, key: str) -> Any:
        return map_errors(
            op, self._uri(key), endpoint=self.endpoint, hint=self._credential_hint, config=self.config
        )

    def _check_key(self, op: str, key: str) -> None:
        """Reject keys obstore would reject or silently rewrite (it strips slashes)."""
        if not key:
            raise InvalidUriError(
                f"{op} {self._uri(key)}: the URI names no object; add a key after the last '/'"
            )
        if key.startswith("/") or key.endswith("/") or "//" in key or _dot_segment(key):
            raise InvalidUriError(
                f"{op} {self._uri(key)}: the key has an empty, '.' or '..' segment or a leading/trailing '/', "
                f"which the fast engine cannot address; {FIX_ENGINE}"
            )

    def _default_content_type(self, key: str) -> str | None:
        """The content type to report when the backend stores none (files, memory)."""
        return None

    def _marker_store(self) -> Store | None:
        """The portable store serving folder markers here (None: this backend has none)."""
        return None

    def _for_marker(self, key: str) -> Store | None:
        """The store for ``key`` when it is a folder marker (``dir/``), which obstore cannot address."""
        if key.endswith("/") and _marker_key(key):
            return self._marker_store()
        return None

    def _own_marker(self, prefix: str) -> ObjectMeta | None:
        """The marker ``prefix`` of the listed directory where obstore's listing drops it (one HEAD)."""
        if self._lists_own_marker or not _marker_key(prefix):
            return None  # decided before _marker_store(), which builds a portable client (imports boto3)
        store = self._marker_store()
        if store is None:
            return None
        try:
            return store.head(prefix)
        except NotFoundError:
            return None

    def _listed_key(self, path: str, size: int, parent: str, previous: str) -> str:
        """The key of a listed object. obstore strips a trailing '/', listing ``dir/`` as ``dir``.
        It is ``dir/`` when it is the listed directory itself, or when the key listed just
        before it is ``dir`` or starts with it (an object ``dir`` comes before ``dir-x`` in key
        order, ``dir/`` after it), whatever its size; else a zero-byte one is a folder marker
        when no object ``dir`` exists (one HEAD)."""
        if not self._folder_markers:
            return path
        if path == parent or (previous and previous.startswith(path)):
            return path + "/"
        if size:
            return path
        try:
            obstore.head(self._inner, path)
        except FileNotFoundError:
            return path + "/"
        except (obx.BaseError, OSError):  # HEAD denied or failing: list the key as obstore gave it
            return path
        return path

    # -- reads -----------------------------------------------------------------------------
    def get(self, key: str) -> Buffer:
        return self.get_timed(key)[0]

    def get_timed(self, key: str) -> tuple[Buffer, int | None]:
        if (markers := self._for_marker(key)) is not None:
            return markers.get_timed(key)
        self._check_key("get", key)
        began = time.monotonic()
        try:
            return self._get_timed(key)
        except TransferError as exc:  # a reply cut short or stalled: obstore does not retry those
            return self._again(ResumableRead(self, key, None, None).timed, (), exc, began, "get", key)  # type: ignore[no-any-return]

    def _get_timed(self, key: str) -> tuple[Buffer, int | None]:
        with self._errors("get", key):
            response = obstore.get(self._inner, key)  # returns once the response headers are in
            first_byte = time.time_ns()
            size = response.meta["size"]
            data = self._body(response, size)
        check_length(self._uri(key), len(data), 0, size)
        return data, first_byte

    def _drain(self, key: str, byte_range: tuple[int, int] | None) -> tuple[int, int | None]:
        if self.in_process:
            return super()._drain(key, byte_range)
        if (markers := self._for_marker(key)) is not None:
            return markers.drain(key, byte_range)
        self._check_key("get", key)
        return self._drain_streamed(key, byte_range)

    def get_range(self, key: str, start: int, end: int) -> Buffer:
        return self.get_range_etag(key, start, end)[0]

    def get_range_etag(self, key: str, start: int, end: int) -> tuple[Buffer, str | None]:
        if (markers := self._for_marker(key)) is not None:
            return markers.get_range_etag(key, start, end)
        self._check_key("get", key)
        if start < 0 or end < 0:
            raise ValueError(f"get_range {self._uri(key)}: start={start}, end={end} must not be negative")
        if end <= start:
            self.head(key)  # an empty range of a missing object is still NotFoundError
            return _EMPTY, None
        began = time.monotonic()
        try:
            return self._get_range(key, start, end)
        except TransferError as exc:
            data, etag = self._again(ResumableRead(self, key, start, end).tagged, (), exc, began, "get", key)
            return data, _etag(etag)

    def _get_range(self, key: str, start: int, end: int) -> tuple[Buffer, str | None]:
        with self._errors("get", key):
            try:
                response = obstore.get(self._inner, key, options={"range": (start, end)})
            except (obx.GenericError, ValueError) as exc:
                if range_past_end(str(exc)):
                    return _EMPTY, None
                raise
            first, last = response.range  # what is coming: a range may end past the object
            check_reply(self._uri(key), start, end, first, last, response.meta["size"])
            data = self._body(response, last - first)
        check_length(self._uri(key), len(data), first, last)
        return data, _etag(response.meta["e_tag"])

    def get_range_into(self, key: str, start: int, end: int, dest: memoryview, etag: str | None = None) -> int:
        """The reply streamed into ``dest`` chunk by chunk: no body allocated in between, so
        a cold process faults in only ``dest`` (huge pages where numpy asked for them)."""
        if not self._network or end <= start:
            return super().get_range_into(key, start, end, dest, etag)
        if (markers := self._for_marker(key)) is not None:
            return markers.get_range_into(key, start, end, dest, etag)
        self._check_key("get", key)
        if start < 0:
            raise ValueError(f"get_range {self._uri(key)}: start={start} must not be negative")
        replied, first, last, chunks = self._open_range(key, start, end, None)
        if etag is not None:
            check_version(self._uri(key), etag, _etag(replied))  # before a byte of it lands in dest
        if last - first > len(dest):
            return last - first  # does not fit: the caller decides, the body is not read
        got = 0
        for chunk in chunks:
            piece = memoryview(chunk).cast("B")
            n = piece.nbytes
            if got + n > len(dest):
                raise TransferError(f"get {self._uri(key)}: the reply is longer than announced")
            dest[got : got + n] = piece
            got += n
        check_length(self._uri(key), got, first, last)
        return got

    def _open_range(
        self, key: str, start: int | None, end: int | None, etag: str | None
    ) -> tuple[str | None, int, int, Iterator[Buffer]]:
        options: GetOptions = {}
        if start is not None:
            options["range"] = (start, end if end is not None else start)
        if etag is not None:
            options["if_match"] = etag
        with self._errors("get", key):
            try:
                response = obstore.get(self._inner, key, options=options)
            except obx.PreconditionError as exc:
                raise ChangedError(
                    f"get {self._uri(key)}: the object changed while it was being read; reading it again"
                ) from exc
            except (obx.GenericError, ValueError) as exc:
                if start is not None and range_past_end(str(exc)):
                    return None, start, start, iter(())
                raise
        first, last = response.range
        if start is not None:
            check_reply(self._uri(key), start, end, first, last, response.meta["size"])
        return response.meta["e_tag"], first, last, self._chunks(key, response.stream(min_chunk_size=RESUME_CHUNK))

    def _chunks(self, key: str, stream: Any) -> Iterator[Buffer]:
        with self._errors("get", key):
            yield from stream

    def _body(self, response: obstore.GetResult, size: int) -> obstore.Bytes:
        """A response's body; large ones are awaited on the background loop (_parallel.on_loop)."""
        if self._network and size >= _ASYNC_BODY_MIN:
            return on_loop(_await_body(response))
        return response.bytes()

    def head(self, key: str) -> ObjectMeta:
        if (markers := self._for_marker(key)) is not None:
            return markers.head(key)
        self._check_key("head", key)
        began = time.monotonic()
        try:
            return self._head(key)
        except TransferError as exc:
            return self._again(self._head, (key,), exc, began, "head", key)  # type: ignore[no-any-return]

    def _head(self, key: str) -> ObjectMeta:
        with self._errors("head", key):
            result = obstore.get(self._inner, key, options={"head": True})
            meta, attributes = result.meta, result.attributes
        return ObjectMeta(
            key=key,
            size=meta["size"],
            last_modified=_utc(meta["last_modified"]),
            etag=_etag(meta["e_tag"]),
            content_type=attributes.get("Content-Type") or self._default_content_type(key),
            content_language=attributes.get("Content-Language"),
            storage_class=attributes.get("Storage-Class"),
            metadata={k: v for k, v in attributes.items() if k not in _STANDARD_ATTRIBUTES},
            version_id=meta["version"],
        )

    def list(self, prefix: str, *, delimiter: bool = False) -> Iterator[ObjectMeta | str]:
        done = ""
        try:
            for item in self._list(prefix, delimiter):
                done = item if isinstance(item, str) else item.key
                yield item
        except InvalidUriError:
            # obstore refuses a whole page that holds a key it cannot address ("a//b", "a/./b"),
            # even one outside the prefix: the portable engine lists on from the last key given
            portable = self._marker_store()
            if portable is None:
                if not done and ("//" in prefix or prefix.startswith("/")):
                    return  # files and memory hold addressable keys only: none starts so
                raise
            for item in portable.list(prefix, delimiter=delimiter):
                if (item if isinstance(item, str) else item.key) > done:
                    yield item

    def _list(self, prefix: str, delimiter: bool) -> Iterator[ObjectMeta | str]:
        # obstore prefixes are whole segments: list the parent segment, keep what starts with
        # the prefix (which also drops what a prefix obstore normalises, "a//" or "/", adds)
        parent = prefix.rstrip("/") if prefix.endswith("/") else prefix.rpartition("/")[0]
        partial = not prefix.endswith("/") and prefix != ""
        own = self._own_marker(prefix)
        if own is not None:  # it sorts first
            yield own
        with self._errors("list", prefix):
            if delimiter:
                began = time.monotonic()
                try:
                    try:
                        result = self._delimited(prefix, parent or None)
                    except TransferError as exc:  # _Unfinished is not retried: raised at once
                        result = self._again(self._delimited, (prefix, parent or None), exc, began, "list", prefix)
                except _Unfinished:
                    portable = self._marker_store()
                    if portable is None:
                        raise
                    log.warning("list %s: one level takes long; listing it with the portable engine", self._uri(prefix))
                    for item in portable.list(prefix, delimiter=True):
                        if own is None or isinstance(item, str) or item.key != own.key:
                            yield item
                    return
                for item in result["objects"]:
                    self._asked_for(prefix, parent, item["path"])
                    if partial and not item["path"].startswith(prefix):
                        continue
                    # one level: a marker below it is a common prefix, so only the level's own
                    # marker (listed as the parent itself) is one; no HEAD for empty objects
                    key = item["path"] + "/" if item["path"] == parent and self._folder_markers else item["path"]
                    if key.startswith(prefix):
                        yield _meta(item, key)
                for common in result["common_prefixes"]:
                    self._asked_for(prefix, parent, common)
                    if (common + "/").startswith(prefix):
                        yield common + "/"
                return
            offset = _list_offset(prefix, parent) if partial else None
            stream = self._pages(prefix, parent or None, offset)
            previous = "" if own is None else own.key
            for page in stream:
                for item in page:
                    path = item["path"]
                    self._asked_for(prefix, parent, path)
                    if partial and not path.startswith(prefix):
                        if path > prefix:  # listings come in key order: nothing further matches
                            return
                        continue
                    previous = self._listed_key(path, item["size"], parent, previous)
                    if previous.startswith(prefix):
                        yield _meta(item, previous)

    def _asked_for(self, prefix: str, parent: str, path: str) -> None:
        """Raise unless obstore's listing of ``parent`` (for ``prefix``) may hold ``path``: the
        keys after ``parent/`` are dropped quietly where they miss a partial prefix, but one
        outside ``parent/`` is a broken server's, as on the portable engine (``outside_prefix``).
        Parents obstore rewrites (``a//b``) are not checked; their keys are only filtered."""
        if not parent or path == parent or path.startswith(parent + "/"):
            return
        if parent.startswith("/") or "//" in parent or _dot_segment(parent):
            return
        raise outside_prefix("list", self._uri(prefix), self.endpoint, path)

    def _delimited(self, prefix: str, parent: str | None) -> Any:
        """One level in one obstore call, which follows continuation tokens in Rust: a server
        repeating one would hold it forever, growing. A network listing is therefore awaited
        for at most ``total_timeout + read_timeout`` (a dead server fails sooner in obstore);
        a level still coming after that is handed to the portable engine, which pages in
        Python and stops at a repeated token (:class:`_Unfinished`)."""
        with self._errors("list", prefix):
            if not self._network:
                return obstore.list_with_delimiter(self._inner, parent)
            limit = self.config.total_timeout + self.config.idle_timeout
            try:
                return on_loop(_level(self._inner, parent, limit))
            except TimeoutError:
                error = _Unfinished(
                    f"list {self._uri(prefix)}: one level took over {limit:g} s (S3DLIO_TOTAL_TIMEOUT + "
                    "S3DLIO_READ_TIMEOUT); the server may be repeating a continuation token"
                )
                error.retried = True  # another attempt would wait as long again
                raise error from None

    def _pages(self, prefix: str, parent: str | None, offset: str | None) -> Iterator[Any]:
        """obstore's listing, page by page; one that breaks off resumes after the last key received.
        Keys come in increasing order, so one that does not is a server repeating itself (a
        continuation token sent again): obstore would follow it forever (:func:`_in_order`).

        obstore also ends a listing quietly where a page says more keys follow but carries no
        continuation token; on S3 a listing that gave keys is therefore asked once more, after
        its last key (the service's start-after: one request), and goes on if more come."""
        tries: Attempts | None = None
        given: str | None = None  # the last path obstore gave: a listing asked again starts after it
        while True:
            asked = time.monotonic()  # obstore's own retries of a page count against the budget too
            since = given
            last = given or offset or ""
            try:
                with self._errors("list", prefix):
                    for page in obstore.list(self._inner, parent, offset=given or offset, chunk_size=1000):
                        if since is not None:  # a folder marker given last ("dir/", listed "dir") comes again
                            page = [item for item in page if item["path"] != since]
                        if page:
                            last = _in_order(self._uri(prefix), page, last, self._folder_markers)
                            given = page[-1]["path"]
                        yield page
                        asked = time.monotonic()
                if given == since or self.scheme != "s3":
                    return
            except TransferError as exc:
                if tries is None:
                    tries = Attempts(self.config.max_attempts, self.config.total_timeout, f"list {prefix}", asked)
                tries.failed_with(exc)

    # -- writes ----------------------------------------------------------------------------
    def put(self, key: str, data: Buffer) -> None:
        if (markers := self._for_marker(key)) is not None and not memoryview(data).nbytes:
            return markers.put(key, data)  # a folder marker is zero bytes; "dir/" with data is refused
        self._check_key("put", key)
        view = self._writable(data)
        chunk = max(self.config.part_size, 5 * _MiB)  # S3 parts are at least 5 MiB
        multipart = self._multipart and view.nbytes > 2 * chunk
        concurrency = max(1, min(16, self.config.max_in_flight, self.config.max_bytes_in_flight // chunk))
        began = time.monotonic()
        try:
            self._put(key, view, multipart, chunk, concurrency)
        except (TransferError, NotFoundError) as exc:
            args = (key, view, multipart, chunk, concurrency, began)
            try:
                self._settle(exc, key, view.nbytes, multipart, began)
            except TransferError as error:
                self._again(self._put_checked, args, error, began, "put", key)
        return None

    def put_new(self, key: str, data: Buffer) -> None:
        self._check_key("put", key)
        with self._errors("put", key):
            obstore.put(self._inner, key, self._writable(data), mode="create")  # If-None-Match: *

    def _put_checked(
        self, key: str, view: memoryview, multipart: bool, chunk: int, concurrency: int, began: float
    ) -> None:
        try:
            self._put(key, view, multipart, chunk, concurrency)
        except (TransferError, NotFoundError) as exc:
            self._settle(exc, key, view.nbytes, multipart, began)

    def _settle(self, exc: S3dlioError, key: str, size: int, multipart: bool, began: float) -> None:
        """After a failed put: return when the object was written anyway (the reply to
        CompleteMultipartUpload was lost, and obstore's retry of it met NoSuchUpload); else
        abort what obstore left of the upload and raise the error to retry or report."""
        if not multipart:
            raise exc
        if self._written(key, size, began):
            return
        self._abort_leftovers(key, began)
        if isinstance(exc, NotFoundError) and "NoSuchUpload" in str(exc.__cause__):
            raise TransferError(
                f"put {self._uri(key)}: the multipart upload ended before it completed (NoSuchUpload)"
            ) from exc
        raise exc

    def _abort_leftovers(self, key: str, began: float) -> None:
        """Abort the multipart upload of ``key`` that a failed put left (obstore aborts its own
        upload once; in a fault storm that abort fails too). obstore does not say its upload id,
        so uploads of exactly ``key`` begun since ``began`` are aborted, and those over a day old
        (abandoned: no upload runs that long; moto dates every upload 2010). S3 only."""

    def _put(self, key: str, view: memoryview, multipart: bool, chunk: int, concurrency: int) -> None:
        with self._errors("put", key):
            obstore.put(
                self._inner, key, view, use_multipart=multipart, chunk_size=chunk, max_concurrency=concurrency
            )

    def _written(self, key: str, size: int, began: float) -> bool:
        """After a failed multipart put: whether the object is there anyway, ``size`` bytes
        written since ``began`` (the reply to CompleteMultipartUpload was lost)."""
        try:
            meta = self.head(key)
        except S3dlioError:
            return False
        if meta.size != size or meta.last_modified is None:
            return False
        age = time.monotonic() - began  # written since the put began (a second for clock rounding)
        return meta.last_modified >= datetime.now(UTC) - timedelta(seconds=age + 1)

    def _writable(self, data: Buffer) -> memoryview:
        """A flat unsigned-byte view of ``data`` (obstore takes only 1-D uint8 buffers)."""
        view = memoryview(data)
        if not view.c_contiguous:
            view = memoryview(view.tobytes())  # the one unavoidable copy: a strided buffer
        if view.ndim != 1 or view.format != "B":
            view = view.cast("B")
        return view

    def delete(self, key: str) -> None:
        if (markers := self._for_marker(key)) is not None:
            return markers.delete(key)
        self._check_key("delete", key)
        began = time.monotonic()
        try:
            self._delete(key)
        except TransferError as exc:
            self._again(self._delete, (key,), exc, began, "delete", key)
        return None

    def _delete(self, key: str) -> None:
        with self._errors("delete", key):
            try:
                obstore.delete(self._inner, key)
            except FileNotFoundError as exc:  # a missing key is fine, a missing bucket is not
                if bucket_missing(str(exc)):
                    raise
            except obx.GenericError as exc:  # obstore deletes through DeleteObjects; a refused key
                code = _REFUSED.search(str(exc))  # comes back generic, and would be retried
                if code is None:
                    raise
                if code[1] in _DENIED:
                    raise PermissionDeniedError(
                        f"delete {self._uri(key)}: access denied ({code[1]}); check the credentials "
                        f"and their permissions{self._credential_hint}"
                    ) from exc
                raise TransferError(f"delete {self._uri(key)}: the service refused it ({code[1]})") from exc

    def _delete_batch_once(self, chunk: builtins.list[str]) -> None:
        with self._errors("delete", chunk[0]):
            try:
                obstore.delete(self._inner, chunk)
            except obx.GenericError as exc:  # obstore words a key the result refused (AccessDenied...)
                if _REFUSED.search(str(exc)):  # as a failed batch: settle per key
                    raise _KeysRefused(f"delete {self._uri(chunk[0])}: {short(str(exc))}") from exc
                raise

    def delete_many(self, keys: Sequence[str]) -> builtins.list[DeleteFailure]:
        failures: builtins.list[DeleteFailure] = []
        marker_store = self._marker_store()
        markers = [key for key in keys if self._for_marker(key) is not None]
        if marker_store is not None and markers:  # folder markers go through the portable store
            failures += marker_store.delete_many(markers)
            keys = [key for key in keys if self._for_marker(key) is None]
        for i in range(0, len(keys), self._delete_batch):
            chunk: builtins.list[str] = []
            for key in keys[i : i + self._delete_batch]:
                try:
                    self._check_key("delete", key)
                    chunk.append(key)
                except InvalidUriError as exc:
                    failures.append(DeleteFailure(key, exc))
            if not chunk:
                continue
            began = time.monotonic()
            try:
                try:
                    self._delete_batch_once(chunk)
                except TransferError as error:  # a batch delete may be sent again: deleting is idempotent
                    self._again(self._delete_batch_once, (chunk,), error, began, "delete", chunk[0])
                continue
            except NotFoundError as exc:
                if bucket_missing(str(exc.__cause__)):
                    raise
            except (PermissionDeniedError, InvalidUriError, _KeysRefused):
                pass
            # Some keys failed (or were missing where that is an error): settle them one by one,
            # since obstore reports only the first failure of a batch.
            for key in chunk:
                try:
                    self.delete(key)
                except S3dlioError as exc:
                    failures.append(DeleteFailure(key, exc))
        return failures

    # -- copying ---------------------------------------------------------------------------
    def __reduce__(self) -> tuple[Any, ...]:
        """Copies and pickles re-open the store by URI (the obstore handle stays behind)."""
        return (_reopen, (self.scheme, self.bucket, self._account, self.config))


#: obstore's words for a key a DeleteObjects result refused, and the refusals that are denials.
_REFUSED = re.compile(r"DeleteObjects request failed for key .*\(code: (\w+)\)")
_DENIED = frozenset({"AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch"})


class _KeysRefused(S3dlioError):
    """A batch delete whose result refused some keys (obstore names only the first): each key
    is then deleted alone, so that each gets its own error (``FastStore.delete_many``)."""


class _Unfinished(TransferError):
    """A one-level listing still running after its time limit (see ``FastStore._delimited``)."""


def _in_order(uri: str, page: Any, after: str, markers: bool) -> str:
    """The last key of ``page``; TransferError unless its keys increase, all after ``after``.
    With ``markers`` a key may be a folder marker whose '/' obstore stripped (``dir/`` sorts
    after ``dir-x``, listed as ``dir``): it is taken as ``dir/`` where only that is in order.
    A key counts as out of order only as UTF-16 too, in case a service sorts that way."""
    last = after
    for item in page:
        path = item["path"]
        if path <= last:
            if markers and path + "/" > last:
                path += "/"
            elif path.encode("utf-16-be") <= last.encode("utf-16-be"):
                raise TransferError(
                    f"list {uri}: the service listed {path!r} after {last!r}, out of key order: it "
                    "is repeating itself (the same continuation token again?); stopped"
                )
        last = path
    return last


def _reopen(scheme: str, bucket: str, account: str | None, config: Config) -> Store:
    return open_fast_store(ObjectUri(scheme, bucket, "", account), config)  # type: ignore[arg-type]


def _list_offset(prefix: str, parent: str) -> str | None:
    """A key just below ``prefix`` that obstore accepts as ``offset`` (list keys after it), so a
    partial prefix skips the parent's keys that sort before it; None when there is none."""
    last = prefix[-1]
    candidates = [prefix[:-1] + chr(ord(last) - 1)] if ord(last) > 0x21 else []
    for candidate in [*candidates, prefix[:-1]]:
        segment = candidate[len(parent) + 1 :] if parent else candidate
        if segment and segment not in (".", "..") and "/" not in segment and candidate.isprintable():
            return candidate
    return None


def _marker_key(key: str) -> bool:
    """True for a folder-marker key: ``dir/`` where ``dir`` is a key obstore can address."""
    body = key[:-1]
    return (
        key.endswith("/")
        and body != ""
        and not body.startswith("/")
        and not body.endswith("/")
        and "//" not in body
        and not _dot_segment(body)
    )


def _dot_segment(key: str) -> bool:
    return (
        key in (".", "..")
        or key.startswith(("./", "../"))
        or "/./" in key
        or "/../" in key
        or key.endswith(("/.", "/.."))
    )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _etag(value: str | None) -> str | None:
    """ETags quoted, as S3 and HTTP write them (obstore's Azure listing drops the quotes)."""
    if value is None or value.startswith(('"', "W/")):
        return value
    return f'"{value}"'


def _meta(item: Any, key: str | None = None) -> ObjectMeta:
    return ObjectMeta(
        key=item["path"] if key is None else key,
        size=item["size"],
        last_modified=_utc(item["last_modified"]),
        etag=_etag(item["e_tag"]),
        version_id=item["version"],
    )


# -- client settings -------------------------------------------------------------------------
def client_options(config: Config, endpoint: str | None) -> dict[str, Any]:
    """HTTP settings shared by S3 and Azure. There is deliberately no way to skip TLS checks."""
    options: dict[str, Any] = {
        "connect_timeout": timedelta(seconds=config.connect_timeout),
        # A reply with no byte for read_timeout fails (a stalled server or body). A cap on the
        # whole request would fail large bodies on slow links (each retry would start after
        # total_timeout), so it is only a backstop; total_timeout bounds the retries.
        "read_timeout": timedelta(seconds=config.idle_timeout),
        "timeout": timedelta(hours=24),
        # Pooled connections idle this long are dropped rather than reused (servers and load
        # balancers have often closed them by then).
        "pool_idle_timeout": timedelta(seconds=15),
    }
    if endpoint is not None and endpoint.startswith("http://"):
        options["allow_http"] = True
    if config.ca_bundle:
        try:
            with open(config.ca_bundle, "rb") as f:
                pem = f.read()
        except OSError as exc:
            raise ConfigError(
                f"CA bundle {config.ca_bundle!r} (AWS_CA_BUNDLE_PATH) cannot be read: {exc}"
            ) from exc
        if b"-----BEGIN CERTIFICATE-----" not in pem:
            raise ConfigError(
                f"CA bundle {config.ca_bundle!r} (AWS_CA_BUNDLE_PATH) holds no PEM certificate "
                "('-----BEGIN CERTIFICATE-----' blocks)"
            )
        options["root_certificate"] = pem  # added to the system roots, which stay trusted
    return options


def retry_config(config: Config) -> dict[str, Any]:
    # Short backoff: with 4 attempts a refused connection fails in about a second. obstore
    # retries no request after total_timeout; s3dlio's own layer (retry.py) stops there too.
    return {
        "max_retries": config.engine_attempts - 1,
        "retry_timeout": timedelta(seconds=config.total_timeout),
        "backoff": {
            "init_backoff": timedelta(milliseconds=100),
            "max_backoff": timedelta(seconds=5),
            "base": 2,
        },
    }


def build(kind: str, factory: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return factory(*args, **kwargs)
    except (obx.BaseError, ValueError) as exc:
        # obstore reads AWS_*/AZURE_* variables itself: an empty one fails without its name
        empty = sorted(n for n, v in os.environ.items() if not v.strip() and n.startswith(("AWS_", "AZURE_")))
        hint = f" (set but empty in the environment: {', '.join(empty)}; unset or fill them)" if empty else ""
        raise ConfigError(f"cannot configure the {kind} client: {short(str(exc))}{hint}") from exc


class PortableBuckets:
    """Bucket/container management and folder markers (``dir/`` objects), which obstore cannot
    do, through the portable engine's store."""

    _folder_markers = True

    def _bucket_store(self) -> Any:
        raise NotImplementedError

    def _marker_store(self) -> Store | None:
        return self._bucket_store()  # type: ignore[no-any-return]

    def create_bucket(self) -> None:
        self._bucket_store().create_bucket()

    def delete_bucket(self) -> None:
        self._bucket_store().delete_bucket()

    def list_buckets(self) -> builtins.list[str]:
        return list(self._bucket_store().list_buckets())

    def sign(self, key: str, method: str = "GET", expires: float = 3600) -> str:
        return self._bucket_store().sign(key, method, expires)  # type: ignore[no-any-return]  # both engines agree


async def _level(inner: Any, parent: str | None, limit: float) -> Any:
    """One level's listing, given up (the Rust future dropped, no more requests) after ``limit`` s."""
    return await asyncio.wait_for(obstore.list_with_delimiter_async(inner, parent), limit)


async def _await_body(response: obstore.GetResult) -> obstore.Bytes:
    return await response.bytes_async()
