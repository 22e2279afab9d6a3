"""The fast engine: obstore (Rust ``object_store``) behind the :class:`Store` interface.

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

import builtins
import logging
import mimetypes
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import obstore
from obstore import exceptions as obx
from obstore.store import AzureStore, LocalStore, MemoryStore, S3Store

from .._parallel import on_loop
from ..config import AZURITE_ACCOUNT, AZURITE_KEY, Config
from ..errors import (
    AlreadyExistsError,
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
from .base import RESUME_CHUNK, DeleteFailure, ObjectMeta, ResumableRead, Store

if TYPE_CHECKING:
    from collections.abc import Buffer

    from obstore import GetOptions

    from .base import Upload

__all__ = ["FastStore", "map_errors", "open_fast_store"]

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
_FIX_ENGINE = "use the portable engine for it (S3DLIO_ENGINE=portable)"


def open_fast_store(uri: ObjectUri, config: Config) -> Store:
    """The obstore-backed store for ``uri``'s scheme and bucket."""
    engine.mark_fast_started()
    if uri.scheme == "s3":
        return FastS3Store(uri.bucket, config)
    if uri.scheme == "az":
        return FastAzureStore(uri.bucket, config, account=uri.account)
    if uri.scheme == "file":
        return FastLocalStore(config)
    if uri.scheme == "mem":
        return FastMemoryStore(uri.bucket, config)
    raise InvalidUriError(f"{uri}: the fast engine has no store for {uri.scheme}://")


# -- errors ----------------------------------------------------------------------------------
@contextmanager
def map_errors(
    op: str, target: str, *, endpoint: str | None = None, hint: str = "", config: Config | None = None
) -> Iterator[None]:
    """Turn obstore and OS errors raised inside the block into s3dlio's, once, at the edge.

    ``target`` is the URI the operation was about; ``hint`` is appended to credential errors;
    ``config`` gives the timeouts a timed-out request names. The message is one line; the
    obstore error (with its debug dump) stays chained as ``__cause__``.
    """
    try:
        yield
    except S3dlioError:
        raise
    except Exception as exc:
        raise _translate(op, target, exc, endpoint, hint, config) from exc


_STATUS = re.compile(r"status(?: code)?: (\d{3})")
_CODE = re.compile(r"<Code>([^<]{1,100})</Code>")
_OS_ERROR = re.compile(r"\(os error (\d+)\)")
_SECRET_QUERY = re.compile(r"((?:sig|X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token)=)[^&\s]+", re.I)
_BUCKET_MISSING = ("NoSuchBucket", "ContainerNotFound", "container does not exist", "bucket does not exist")


def _translate(
    op: str, target: str, exc: Exception, endpoint: str | None, hint: str, config: Config | None = None
) -> S3dlioError:
    text = str(exc)
    status = int(m.group(1)) if (m := _STATUS.search(text)) else None
    code = m.group(1) if (m := _CODE.search(text)) else None
    os_errno = int(m.group(1)) if (m := _OS_ERROR.search(text)) else None
    why = f" ({code})" if code else ""
    where = f" {endpoint}" if endpoint else " the endpoint"
    if isinstance(exc, ValueError | obx.InvalidPathError):
        return InvalidUriError(
            f"{op} {target}: the fast engine (obstore) cannot address this key; {_FIX_ENGINE}"
        )
    if _bucket_missing(text):
        bucket = target.split("://", 1)[-1].split("/", 1)[0]
        return NotFoundError(
            f"{op} {target}: bucket/container '{bucket}' does not exist; create it first or check the name"
        )
    if os_errno in (20, 21) or isinstance(exc, NotADirectoryError | IsADirectoryError):
        cls = AlreadyExistsError if op == "put" else NotFoundError
        return cls(f"{op} {target}: a file or directory is in the way ({_short(text)})")
    if isinstance(exc, FileNotFoundError | obx.NotFoundError) or status == 404 or os_errno == 2:
        return NotFoundError(f"{op} {target}: not found")
    if "169.254.169.254" in text or (status is None and "credential" in text.lower()):
        return PermissionDeniedError(
            f"{op} {target}: could not obtain credentials; set AWS_ACCESS_KEY_ID and "
            f"AWS_SECRET_ACCESS_KEY, or AWS_PROFILE ({_short(text)})"
        )
    if (
        isinstance(exc, PermissionError | obx.PermissionDeniedError | obx.UnauthenticatedError)
        or status in (401, 403)
        or os_errno in (1, 13)
    ):
        return PermissionDeniedError(
            f"{op} {target}: access denied{why}; check the credentials and their permissions{hint}"
        )
    if isinstance(exc, FileExistsError | obx.AlreadyExistsError) or os_errno == 17:
        return AlreadyExistsError(f"{op} {target}: already exists")
    if isinstance(exc, obx.PreconditionError) or status == 412:
        return TransferError(f"{op} {target}: the object changed while it was being read; read it again")
    if "InvalidCertificate" in text or "certificate verify failed" in text:
        return TransferError(
            f"{op} {target}: TLS certificate verification failed for{where}; if it uses a private CA, "
            "set AWS_CA_BUNDLE_PATH to that CA's PEM bundle"
        )
    if status is None and ("ConnectionReset" in text or "Connection reset" in text or "BrokenPipe" in text):
        return TransferError(f"{op} {target}: connection reset by the server{where}")
    if isinstance(exc, TimeoutError) or "timed out" in text or "kind: Timeout" in text or "TimedOut" in text:
        return TransferError(f"{op} {target}: {_timed_out(text, where, config)}")
    if status is None and ("IncompleteBody" in text or "UnexpectedEof" in text or "body error" in text):
        return TransferError(f"{op} {target}: the connection closed before the whole reply arrived from{where}")
    if status is None and ("error sending request" in text or "kind: Connect" in text or "dns error" in text):
        error = TransferError(
            f"{op} {target}: cannot reach{where}; check the endpoint (AWS_ENDPOINT_URL / AZURE_STORAGE_ENDPOINT) "
            "and that the server is running"
        )
        # obstore already retried connecting: do not make a refused connection wait out the budget
        error.retried = "refused" in text.lower() or "dns error" in text
        return error
    if status is not None:
        return TransferError(f"{op} {target}: the service answered HTTP {status}{why}")
    if os_errno == 28:
        return TransferError(f"{op} {target}: no space left on device")
    return TransferError(f"{op} {target}: {_short(text)}")


def _timed_out(text: str, where: str, config: Config | None) -> str:
    """Which limit a timed-out request hit, with its value and setting."""
    connect = config.connect_timeout if config else None
    idle = config.idle_timeout if config else None
    if "kind: Connect" in text or "ConnectTimeout" in text:
        return f"timed out after {_secs(connect)} connecting to{where} (S3DLIO_CONNECT_TIMEOUT)"
    if "kind: Body" in text:
        return (f"timed out after {_secs(idle)} with no byte from{where} in the middle of the reply "
                "(S3DLIO_READ_TIMEOUT)")  # fmt: skip
    return f"timed out after {_secs(idle)} waiting for{where} to answer (S3DLIO_READ_TIMEOUT, S3DLIO_REQUEST_TIMEOUT)"


def _secs(value: float | None) -> str:
    return "the configured time" if value is None else f"{value:g} s"


def _bucket_missing(text: str) -> bool:
    return any(marker in text for marker in _BUCKET_MISSING)


def _short(text: str) -> str:
    """First line of an obstore message, without bodies, and with signed-URL secrets blanked."""
    line = text.split("\n", 1)[0].split(": <?xml", 1)[0]
    line = _SECRET_QUERY.sub(r"\1REDACTED", line)
    return line if len(line) <= 200 else line[:197] + "..."


def _range_past_end(text: str) -> bool:
    # "bytes 0--1/0": Azurite's Content-Range for a range of an empty blob, which obstore rejects.
    return "StartTooLarge" in text or "InvalidRange" in text or "status code: 416" in text or "--1/0" in text


# -- the store -------------------------------------------------------------------------------
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
                f"which the fast engine cannot address; {_FIX_ENGINE}"
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
        store = self._marker_store()
        if self._lists_own_marker or store is None or not _marker_key(prefix):
            return None
        try:
            return store.head(prefix)
        except NotFoundError:
            return None

    def _listed_key(self, path: str, size: int, parent: str, previous: str) -> str:
        """The key of a listed object. obstore strips a trailing '/', listing the marker ``dir/``
        as ``dir``: a zero-byte ``dir`` is the marker when it is the listed directory itself, or
        when the key listed just before it is ``dir`` or starts with it (an object ``dir`` comes
        before ``dir-x`` in any key order, the marker ``dir/`` after it), or else when no object
        ``dir`` exists (one HEAD, zero-byte objects only)."""
        if size or not self._folder_markers:
            return path
        if path == parent or (previous and previous.startswith(path)):
            return path + "/"
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
            return self._body(response, response.meta["size"]), first_byte

    def get_range(self, key: str, start: int, end: int) -> Buffer:
        if (markers := self._for_marker(key)) is not None:
            return markers.get_range(key, start, end)
        self._check_key("get", key)
        if start < 0 or end < 0:
            raise ValueError(f"get_range {self._uri(key)}: start={start}, end={end} must not be negative")
        if end <= start:
            self.head(key)  # an empty range of a missing object is still NotFoundError
            return _EMPTY
        began = time.monotonic()
        try:
            return self._get_range(key, start, end)
        except TransferError as exc:
            return self._again(ResumableRead(self, key, start, end), (), exc, began, "get", key)  # type: ignore[no-any-return]

    def _get_range(self, key: str, start: int, end: int) -> Buffer:
        with self._errors("get", key):
            try:
                response = obstore.get(self._inner, key, options={"range": (start, end)})
                first, last = response.range  # what is coming: a range may end past the object
                return self._body(response, last - first)
            except (obx.GenericError, ValueError) as exc:
                if _range_past_end(str(exc)):
                    return _EMPTY
                raise

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
                if start is not None and _range_past_end(str(exc)):
                    return None, start, start, iter(())
                raise
        first, last = response.range
        return response.meta["e_tag"], first, last, self._chunks(key, response.stream(min_chunk_size=RESUME_CHUNK))

    def _chunks(self, key: str, stream: Any) -> Iterator[Buffer]:
        with self._errors("get", key):
            yield from stream

    def _body(self, response: obstore.GetResult, size: int) -> Buffer:
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
        # obstore prefixes are whole segments: list the parent segment, keep what matches.
        parent = prefix.rstrip("/") if prefix.endswith("/") else prefix.rpartition("/")[0]
        partial = not prefix.endswith("/") and prefix != ""
        own = self._own_marker(prefix)
        if own is not None:  # it sorts first
            yield own
        with self._errors("list", prefix):
            if delimiter:
                began = time.monotonic()
                try:
                    result = self._delimited(prefix, parent or None)
                except TransferError as exc:
                    result = self._again(self._delimited, (prefix, parent or None), exc, began, "list", prefix)
                for item in result["objects"]:
                    if not partial or item["path"].startswith(prefix):
                        yield _meta(item, self._listed_key(item["path"], item["size"], parent, ""))
                for common in result["common_prefixes"]:
                    if not partial or common.startswith(prefix):
                        yield common + "/"
                return
            offset = _list_offset(prefix, parent) if partial else None
            stream = self._pages(prefix, parent or None, offset)
            previous = "" if own is None else own.key
            for page in stream:
                for item in page:
                    path = item["path"]
                    if partial and not path.startswith(prefix):
                        if path > prefix:  # listings come in key order: nothing further matches
                            return
                        continue
                    previous = self._listed_key(path, item["size"], parent, previous)
                    yield _meta(item, previous)

    def _delimited(self, prefix: str, parent: str | None) -> Any:
        with self._errors("list", prefix):
            return obstore.list_with_delimiter(self._inner, parent)

    def _pages(self, prefix: str, parent: str | None, offset: str | None) -> Iterator[Any]:
        """obstore's listing, page by page; one that breaks off resumes after the last key received."""
        tries: Attempts | None = None
        while True:
            try:
                with self._errors("list", prefix):
                    for page in obstore.list(self._inner, parent, offset=offset, chunk_size=1000):
                        if page:
                            offset = page[-1]["path"]
                        yield page
                return
            except TransferError as exc:
                if tries is None:
                    tries = Attempts(self.config.max_attempts, self.config.total_timeout, f"list {prefix}")
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
                if _bucket_missing(str(exc)):
                    raise

    def _delete_batch_once(self, chunk: builtins.list[str]) -> None:
        with self._errors("delete", chunk[0]):
            obstore.delete(self._inner, chunk)

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
                if _bucket_missing(str(exc.__cause__)):
                    raise
            except (PermissionDeniedError, InvalidUriError):
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
def _client_options(config: Config, endpoint: str | None) -> dict[str, Any]:
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


def _retry_config(config: Config) -> dict[str, Any]:
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


def _build(kind: str, factory: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return factory(*args, **kwargs)
    except (obx.BaseError, ValueError) as exc:
        # obstore reads AWS_*/AZURE_* variables itself: an empty one fails without its name
        empty = sorted(n for n, v in os.environ.items() if not v.strip() and n.startswith(("AWS_", "AZURE_")))
        hint = f" (set but empty in the environment: {', '.join(empty)}; unset or fill them)" if empty else ""
        raise ConfigError(f"cannot configure the {kind} client: {_short(str(exc))}{hint}") from exc


class _PortableBuckets:
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


class FastS3Store(_PortableBuckets, FastStore):
    """An S3 bucket; bucket create/delete/list go through the portable (boto3) store."""

    def __init__(self, bucket: str, config: Config) -> None:
        region = config.region or "us-east-1"
        kwargs: dict[str, Any] = {"region": region}
        anonymous = False
        if config.access_key_id and config.secret_access_key:
            kwargs["access_key_id"] = config.access_key_id
            kwargs["secret_access_key"] = config.secret_access_key
            if config.session_token:
                kwargs["token"] = config.session_token
        else:
            provider, session_region = _boto3_credentials(config.profile)
            if provider is not None:
                kwargs["credential_provider"] = provider
                kwargs["region"] = config.region or session_region or region
            else:
                kwargs["skip_signature"] = True  # public buckets still work; private ones say 403
                anonymous = True
        # Always explicit, under the one key obstore ranks above the environment: it reads
        # AWS_ENDPOINT_URL_S3 itself, which would otherwise beat the configured endpoint (and,
        # empty, make every request panic). Path style, as MinIO, Ceph and moto need, and as
        # obstore's own default on AWS.
        endpoint = config.endpoint_url or f"https://s3.{kwargs['region']}.amazonaws.com"
        kwargs.update(config={"aws_endpoint_url_s3": endpoint}, virtual_hosted_style_request=False)
        kwargs["unsigned_payload"] = not config.sign_payload
        inner = _build(
            "S3",
            S3Store,
            bucket,
            client_options=_client_options(config, endpoint),
            retry_config=_retry_config(config),
            **kwargs,
        )
        super().__init__(bucket, config, inner, scheme="s3", endpoint=endpoint)
        if anonymous:
            self._credential_hint = (
                " (no AWS credentials were found, so the request was anonymous: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
            )
        self._portable: Any = None

    def open_upload(self, key: str, *, part_size: int, content_type: str | None = None) -> Upload:
        from .upload_fast import StreamUpload

        self._check_key("put", key)
        return StreamUpload(self, key, part_size, content_type, self.config.max_in_flight)

    def _abort_leftovers(self, key: str, began: float) -> None:
        from ..retry import retrying
        from .upload_s3 import abort_upload

        store = self._bucket_store()
        now = datetime.now(UTC)
        since, abandoned = now - timedelta(seconds=time.monotonic() - began + 2), now - timedelta(days=1)

        def listing() -> Any:
            with store._errors("list_multipart_uploads", key):
                return store._client.list_multipart_uploads(Bucket=self.bucket, Prefix=key)

        try:
            found = retrying(listing, attempts=self.config.max_attempts, budget=self.config.total_timeout)
            for upload in found.get("Uploads", ()):
                if upload["Key"] == key and not abandoned < upload["Initiated"] < since:
                    abort_upload(store, key, upload["UploadId"])
        except S3dlioError as exc:  # the failure being reported matters more
            log.warning("put %s: could not abort the failed multipart upload: %s", self._uri(key), exc)

    def _bucket_store(self) -> Any:
        if self._portable is None:
            from .s3 import S3Store as PortableS3Store

            self._portable = PortableS3Store(self.bucket, self.config)
        return self._portable


def _boto3_credentials(profile: str | None) -> tuple[Any, str | None]:
    """boto3's credential chain (profiles, SSO, web identity, instance roles), refreshed by obstore."""
    import boto3
    from botocore.exceptions import BotoCoreError
    from obstore.auth.boto3 import Boto3CredentialProvider

    try:
        session = boto3.Session(profile_name=profile)
        if session.get_credentials() is None:
            if profile:
                raise ConfigError(f"AWS_PROFILE={profile!r}: the profile has no credentials")
            return None, session.region_name
        return Boto3CredentialProvider(session), session.region_name
    except BotoCoreError as exc:
        raise ConfigError(
            f"AWS credentials: {exc}; set AWS_PROFILE to a profile in ~/.aws/config, or unset it"
        ) from exc


class FastAzureStore(_PortableBuckets, FastStore):
    """An Azure Blob container; container create/delete/list go through azure-storage-blob."""

    _delete_batch = 256  # Azure's blob batch limit
    _lists_own_marker = False

    def __init__(self, container: str, config: Config, account: str | None = None) -> None:
        settings = _azure_settings(config, account, container)
        endpoint = settings.get("endpoint") or f"https://{settings['account_name']}.blob.core.windows.net"
        inner = _build(
            "Azure",
            AzureStore,
            container,
            client_options=_client_options(config, endpoint),
            retry_config=_retry_config(config),
            **settings,
        )
        super().__init__(container, config, inner, scheme="az", endpoint=endpoint)
        self._account = account
        self._credential_hint = " (AZURE_STORAGE_ACCOUNT_NAME / AZURE_STORAGE_ACCOUNT_KEY)"
        self._portable: Any = None

    def open_upload(self, key: str, *, part_size: int, content_type: str | None = None) -> Upload:
        from .upload_azure import AzureUpload  # obstore cannot discard staged blocks

        self._check_key("put", key)
        return AzureUpload(self._bucket_store(), key, part_size, content_type)

    def _bucket_store(self) -> Any:
        if self._portable is None:
            from .azure import AzureStore as PortableAzureStore

            self._portable = PortableAzureStore(self.bucket, self.config, account=self._account)
        return self._portable


def _azure_settings(config: Config, account: str | None, container: str) -> dict[str, Any]:
    """Account, key/SAS and endpoint from config, connection string and emulator defaults."""
    parts = _connection_string(config.azure_connection_string)
    emulator = config.azure_use_emulator or parts.get("usedevelopmentstorage", "").lower() == "true"
    name = (
        account
        or config.azure_account_name
        or parts.get("accountname")
        or (AZURITE_ACCOUNT if emulator else None)
    )
    if not name:
        raise ConfigError(
            f"az://{container}: no storage account; set AZURE_STORAGE_ACCOUNT_NAME or write "
            f"https://ACCOUNT.blob.core.windows.net/{container}/key"
        )
    settings: dict[str, Any] = {"account_name": name}
    key = (
        config.azure_account_key
        or parts.get("accountkey")
        or (AZURITE_KEY if emulator and name == AZURITE_ACCOUNT else None)
    )
    if key:
        settings["account_key"] = key
    if parts.get("sharedaccesssignature"):
        settings["sas_key"] = parts["sharedaccesssignature"]
    endpoint = config.azure_endpoint or parts.get("blobendpoint")
    if not endpoint and "endpointsuffix" in parts:
        endpoint = f"{parts.get('defaultendpointsprotocol', 'https')}://{name}.blob.{parts['endpointsuffix']}"
    if not endpoint and emulator:
        endpoint = f"http://127.0.0.1:10000/{name}"
    if endpoint:
        settings["endpoint"] = endpoint.rstrip("/")
    return settings


def _connection_string(value: str | None) -> dict[str, str]:
    """``Key=Value;...`` pairs, keys lower-cased (values such as account keys contain ``=``)."""
    parts: dict[str, str] = {}
    for piece in (value or "").split(";"):
        name, sep, val = piece.partition("=")
        if sep and name.strip():
            parts[name.strip().lower()] = val.strip()
    return parts


class FastLocalStore(FastStore):
    """The local filesystem; keys are absolute paths without their leading ``/``."""

    _multipart = False
    _network = False

    def __init__(self, config: Config) -> None:
        super().__init__(
            "", config, _build("file", LocalStore, prefix="/"), scheme="file", endpoint="file://"
        )
        from .local import LocalStore as Files

        self._files = Files(config)

    def put(self, key: str, data: Buffer) -> None:
        # obstore's LocalStore stages a put in a visible "key#N" file that a killed process
        # leaves behind; s3dlio's hidden temporary + rename (store/local.py) leaves only a
        # name listings skip and ``s3dlio cleanup`` removes.
        if self._for_marker(key) is None or memoryview(data).nbytes:  # a marker (a directory) is empty
            self._check_key("put", key)
        self._files.put(key, data)

    def _marker_store(self) -> Store | None:
        return self._files  # a folder marker here is a directory: the portable engine's os calls

    def _uri(self, key: str) -> str:
        return f"file:///{key}"

    def list(self, prefix: str, *, delimiter: bool = False) -> Iterator[ObjectMeta | str]:
        # obstore walks directories in no particular order, but every rank of a training job
        # must see one order: the portable engine's walk is sorted and streams just as well.
        from .local import LocalStore as Walker

        return Walker(self.config).list(prefix, delimiter=delimiter)

    def _default_content_type(self, key: str) -> str | None:
        # As the portable engine reports it, so both engines agree.
        return mimetypes.guess_type(key, strict=False)[0] or "application/octet-stream"

    def open_upload(self, key: str, *, part_size: int, content_type: str | None = None) -> Upload:
        from .upload_local import LocalUpload  # plain os calls: parts pwritten in place

        self._check_key("put", key)
        return LocalUpload(key, part_size, uri=self._uri(key))


_memory_stores: dict[str, MemoryStore] = {}
# Names that exist as buckets: created, or written to (stores spring up on first put, like
# directories), as in the portable engine's memory store.
_memory_buckets: set[str] = set()
_memory_lock = threading.Lock()


class FastMemoryStore(FastStore):
    """An in-process store shared by every ``mem://NAME`` store of this process."""

    _multipart = False
    _network = False
    in_process = True

    def __init__(self, name: str, config: Config) -> None:
        with _memory_lock:
            inner = _memory_stores.get(name)
            if inner is None:
                inner = _memory_stores[name] = MemoryStore()
        super().__init__(name, config, inner, scheme="mem", endpoint="mem://")

    def _default_content_type(self, key: str) -> str | None:
        return "application/octet-stream"

    def put(self, key: str, data: Buffer) -> None:
        super().put(key, data)
        if self.bucket not in _memory_buckets:
            with _memory_lock:
                _memory_buckets.add(self.bucket)

    def _writable(self, data: Buffer) -> memoryview:
        # MemoryStore keeps the very buffer it is given: copy mutable ones, or a later
        # change to the caller's array would change the stored object.
        view = super()._writable(data)
        return view if view.readonly else memoryview(view.tobytes())

    def create_bucket(self) -> None:
        with _memory_lock:
            if self.bucket in _memory_buckets:
                raise AlreadyExistsError(f"create_bucket mem://{self.bucket}: already exists")
            _memory_buckets.add(self.bucket)

    def delete_bucket(self) -> None:
        with _memory_lock:
            if self.bucket not in _memory_buckets:
                raise NotFoundError(f"delete_bucket mem://{self.bucket}: not found")
            if next(iter(obstore.list(self._inner, chunk_size=1)), None):
                raise S3dlioError(
                    f"delete_bucket mem://{self.bucket}: not empty; delete the objects first: "
                    f"s3dlio rm -r mem://{self.bucket}/"
                )
            _memory_buckets.discard(self.bucket)

    def list_buckets(self) -> builtins.list[str]:
        with _memory_lock:
            return sorted(_memory_buckets)


def _reset_after_fork() -> None:
    global _memory_lock
    _memory_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


async def _await_body(response: obstore.GetResult) -> obstore.Bytes:
    return await response.bytes_async()
