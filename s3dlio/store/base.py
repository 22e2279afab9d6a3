"""The Store interface every backend and engine implements, and the metadata it returns.

A store is one bucket, container or filesystem root. Its methods are synchronous and release
the GIL while they wait (obstore's sync API, boto3, os): measured on obstore 0.12.1, the sync
calls from worker threads cost less client CPU than its async ones, linearly in size (see
shared/DESIGN.md §2). The ``*_async`` twins in :mod:`s3dlio.ops` run these on a thread pool.
"""

from __future__ import annotations

import abc
import builtins
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import InvalidArgumentError, TransferError

if TYPE_CHECKING:
    from collections.abc import Buffer

    from ..config import Config

__all__ = [
    "DeleteFailure",
    "ObjectMeta",
    "ResumableRead",
    "Store",
    "Upload",
    "bare_etag",
    "check_length",
    "check_range",
    "check_reply",
    "outside_prefix",
    "put_new_retried",
]

#: Smallest piece a resumed read takes from the engine at a time.
RESUME_CHUNK = 256 * 1024
#: Objects larger than this are streamed by the benchmark and the op-log replay: a GET counts
#: its reply piece by piece (:meth:`Store.drain`) and a written object is generated and sent a
#: part at a time, so a worker holds a few parts, not an object (``--obj.size 1GiB -c 64``
#: would otherwise need 64 GiB). Smaller ones keep the cheaper whole-body calls.
STREAM_MIN = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """What ``stat`` and ``list`` report about one object. None where the backend has no value."""

    key: str
    size: int
    last_modified: datetime | None = None
    etag: str | None = None
    content_type: str | None = None
    content_language: str | None = None
    storage_class: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    version_id: str | None = None
    replication_status: str | None = None
    server_side_encryption: str | None = None
    ssekms_key_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for JSON output."""
        out = {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]
        if self.last_modified is not None:
            out["last_modified"] = self.last_modified.isoformat().replace("+00:00", "Z")
        return out


@dataclass(frozen=True, slots=True)
class DeleteFailure:
    """One key a batch delete could not remove, and why."""

    key: str
    error: Exception


class Upload(Protocol):
    """One object being written in parts, as :func:`s3dlio.open_writer` drives it.

    Nothing exists on the service until the first part or :meth:`put_whole`: an object
    smaller than one part goes up as one plain PUT. Parts are ``part_size`` bytes, but the
    last; ``upload_part`` returns once the service holds the part (so the caller may reuse
    the buffer) and may run for several parts at once. After :meth:`abort` nothing the upload
    wrote is left behind, where the service allows it.
    """

    #: Size of every part but the last (the store may raise what was asked, e.g. S3's 5 MiB).
    part_size: int
    #: Most parts one object may have (S3: 10,000).
    max_parts: int
    #: True when a failed part may be sent again alone; False when the engine retries parts
    #: itself and a failed part ends the upload (obstore's streaming upload).
    retry_parts: bool

    def upload_part(self, index: int, offset: int, data: memoryview) -> None:
        """Send part ``index`` (0-based), the bytes at ``offset`` of the object."""

    def complete(self, size: int) -> None:
        """Make the object from all parts (``size`` bytes in all); it then replaces any old one."""

    def abort(self) -> None:
        """Discard the parts sent so far. Safe to call when nothing was sent, and twice."""

    def put_whole(self, data: memoryview) -> None:
        """Write the whole object in one request (objects of at most one part)."""


class Store(abc.ABC):
    """One bucket/container/root. Keys are relative to it and never start with ``/``.

    Errors are s3dlio's own (:mod:`s3dlio.errors`), raised the same way by every backend:
    a missing object or bucket is :class:`~s3dlio.errors.NotFoundError`, and so on.
    """

    #: URI scheme served, e.g. ``"s3"``.
    scheme: str
    #: Bucket/container/store name; ``""`` for filesystem roots.
    bucket: str
    #: Where requests go, for the op-log: ``http://127.0.0.1:9000`` or ``file://``.
    endpoint: str
    #: ``"fast"`` or ``"portable"``.
    engine: str
    #: True for stores inside this process (mem://): a call never waits, so batches run
    #: inline instead of on threads that would only fight over the GIL.
    in_process: bool = False

    def __init__(self, bucket: str, config: Config) -> None:
        self.bucket = bucket
        self.config = config

    # -- reads ---------------------------------------------------------------------------
    @abc.abstractmethod
    def get(self, key: str) -> Buffer:
        """The whole object as a buffer-protocol object (zero-copy where the engine allows)."""

    def get_timed(self, key: str) -> tuple[Buffer, int | None]:
        """``get`` plus when its first response byte arrived (``time.time_ns()``), if known.

        Only the op-log asks for this; engines that see the response headers before the body
        override it.
        """
        return self.get(key), None

    def get_batch(
        self, keys: Sequence[str], *, return_exceptions: bool = False
    ) -> builtins.list[Buffer | BaseException]:
        """Each of ``keys`` in turn, on this thread: how batches run on in-process stores.

        The first error is raised, unless ``return_exceptions`` puts it in its slot.
        """
        results: builtins.list[Buffer | BaseException] = []
        for key in keys:
            try:
                results.append(self.get(key))
            except Exception as exc:
                if not return_exceptions:
                    raise
                results.append(exc)
        return results

    def drain(self, key: str, byte_range: tuple[int, int] | None = None) -> tuple[int, int | None]:
        """GET the object (bytes ``[start, end)`` of it given ``byte_range``) and count them
        without keeping them: ``(bytes, first-byte time or None)``, as ``get_timed`` times it.

        The benchmark's and the op-log replay's GET: the one request ``get``/``get_range``
        sends, with memory held to one piece of the reply however large the object (holding
        whole bodies would take workers x object size).
        """
        if byte_range is not None:
            check_range(*byte_range)
            if byte_range[1] <= byte_range[0]:  # nothing to stream (NotFoundError if missing)
                return memoryview(self.get_range(key, *byte_range)).nbytes, None
        return self._drain(key, byte_range)

    def _drain(self, key: str, byte_range: tuple[int, int] | None) -> tuple[int, int | None]:
        """The body fetched whole: stores that stream replies override this (in-process ones
        already hold their objects)."""
        if byte_range is None:
            data, first_byte = self.get_timed(key)
            return memoryview(data).nbytes, first_byte
        return memoryview(self.get_range(key, *byte_range)).nbytes, None

    def _drain_streamed(self, key: str, byte_range: tuple[int, int] | None) -> tuple[int, int | None]:
        """``_drain`` for stores that stream replies: :meth:`_drain_once`, read again from the
        start when a reply is cut short (within the retry settings)."""
        began = time.monotonic()
        try:
            return self._drain_once(key, byte_range)
        except TransferError as exc:
            return self._again(self._drain_once, (key, byte_range), exc, began, "get", key)  # type: ignore[no-any-return]

    def _drain_once(self, key: str, byte_range: tuple[int, int] | None) -> tuple[int, int | None]:
        """One streamed GET, counted: through :meth:`_open_range` here; other stores override."""
        start, end = byte_range if byte_range is not None else (None, None)
        _, first, last, pieces = self._open_range(key, start, end, None)
        first_byte = time.time_ns()  # _open_range returns once the response headers are in
        got = 0
        for piece in pieces:
            got += memoryview(piece).nbytes
        check_length(f"{self.scheme}://{self.bucket}/{key}", got, first, last)
        return got, first_byte

    @abc.abstractmethod
    def get_range(self, key: str, start: int, end: int) -> Buffer:
        """Bytes ``[start, end)``; ``end`` past the object's size is clipped to it.

        ``start`` at or past the end of a non-empty object returns an empty buffer.
        """

    def get_range_etag(self, key: str, start: int, end: int) -> tuple[Buffer, str | None]:
        """``get_range`` and the ETag of the version its bytes came from, as ``head`` writes it
        (None where unknown): a read that goes on with more ranges checks that what it reads
        next is that version. Stores that see the reply's headers override this."""
        return self.get_range(key, start, end), None

    def get_range_into(self, key: str, start: int, end: int, dest: memoryview, etag: str | None = None) -> int:
        """Bytes ``[start, end)`` written into ``dest``; returns the reply's length.

        Only the first ``len(dest)`` bytes are written: a length above that tells the caller
        the object did not fit (``end = len(dest) + 1`` asks that without a HEAD). Given
        ``etag`` (as ``head`` writes it), a reply from another version raises
        :class:`~s3dlio.retry.ChangedError` before anything is written: ranges of one read
        then come from one version even when it was replaced and put back meanwhile. Stores
        that stream a reply override this to land it in ``dest`` with no body in between.
        """
        if etag is None:
            data = memoryview(self.get_range(key, start, end)).cast("B")
        else:
            body, replied = self.get_range_etag(key, start, end)
            check_version(f"{self.scheme}://{self.bucket}/{key}", etag, replied)
            data = memoryview(body).cast("B")
        n = min(data.nbytes, len(dest))
        dest[:n] = data[:n]
        return data.nbytes

    def sign(self, key: str, method: str = "GET", expires: float = 3600) -> str:
        """A URL that lets whoever holds it send ``method`` to the object for ``expires``
        seconds without credentials (a presigned URL on S3, a SAS on Azure)."""
        raise NotImplementedError(
            f"sign {self.scheme}://{self.bucket}/{key}: {self.scheme}:// objects have no URL to sign "
            "(s3:// and az:// do); read them through s3dlio"
        )

    @abc.abstractmethod
    def head(self, key: str) -> ObjectMeta:
        """Full metadata of one object (the fields :class:`ObjectMeta` lists)."""

    @abc.abstractmethod
    def list(self, prefix: str, *, delimiter: bool = False) -> Iterator[ObjectMeta | str]:
        """Objects whose key starts with ``prefix``, streamed page by page.

        With ``delimiter``, keys below the next ``/`` after the prefix are folded into common
        prefixes, yielded as ``str`` ending in ``/``.
        """

    # -- writes --------------------------------------------------------------------------
    @abc.abstractmethod
    def put(self, key: str, data: Buffer) -> None:
        """Write one whole object from any buffer-protocol object, replacing what was there."""

    def put_new(self, key: str, data: Buffer) -> None:
        """Write ``key`` only where no object has that name, in one conditional request, so of
        two writers racing exactly one wins; the other gets :class:`AlreadyExistsError`. For
        small objects that commit something (a checkpoint's manifest)."""
        raise NotImplementedError(f"{type(self).__name__} cannot write only where nothing is")

    def open_upload(self, key: str, *, part_size: int, content_type: str | None = None) -> Upload:
        """Start writing ``key`` in parts (see :class:`Upload`); nothing is sent yet.

        This default keeps the parts in memory and puts them as one object on ``complete``:
        right for in-process stores. Stores that can stream override it.
        """
        from .upload_memory import BufferedUpload

        return BufferedUpload(self, key, part_size)

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete one object. Deleting a missing key is not an error (as in S3)."""

    def delete_many(self, keys: Sequence[str]) -> builtins.list[DeleteFailure]:
        """Delete keys (at most 1000 per call); return the ones that failed."""
        failures = []
        for key in keys:
            try:
                self.delete(key)
            except Exception as exc:  # noqa: BLE001 - reported to the caller per key
                failures.append(DeleteFailure(key, exc))
        return failures

    # -- containers ----------------------------------------------------------------------
    def create_bucket(self) -> None:
        """Create this store's bucket/container. AlreadyExistsError if it exists."""
        raise NotImplementedError(f"{self.scheme}:// has no buckets to create")

    def delete_bucket(self) -> None:
        """Delete this store's (empty) bucket/container. NotFoundError if it does not exist."""
        raise NotImplementedError(f"{self.scheme}:// has no buckets to delete")

    def list_buckets(self) -> builtins.list[str]:
        """Names of the buckets/containers the credentials can see."""
        raise NotImplementedError(f"{self.scheme}:// has no buckets to list")

    def _again(self, call: Any, args: tuple[Any, ...], first: BaseException, began: float, op: str,
               key: str) -> Any:  # fmt: skip
        """Retry ``call(*args)`` after it failed with ``first`` (see :func:`s3dlio.retry.again`):
        within ``max_attempts`` and ``total_timeout`` seconds from ``began`` (``time.monotonic()``).

        Stores call it from an ``except`` clause only, so requests that succeed pay nothing.
        """
        from ..retry import again

        config = self.config
        return again(call, args, first, attempts=config.max_attempts, until=began + config.total_timeout,
                     what=f"{op} {self.scheme}://{self.bucket}/{key}")  # fmt: skip

    def _open_range(
        self, key: str, start: int | None, end: int | None, etag: str | None
    ) -> tuple[str | None, int, int, Iterator[Buffer]]:
        """GET ``[start, end)`` (the whole object when ``start`` is None), only if its ETag is
        still ``etag`` (when given; :class:`~s3dlio.retry.ChangedError` otherwise).

        Returns the ETag, the byte range coming ``[first, last)`` and an iterator over the body
        in pieces; a range at or past the end gives ``first == last``. Errors, including those
        while iterating, are s3dlio's. Stores that can resume reads implement it.
        """
        raise NotImplementedError

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. The store must not be used afterwards."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.scheme}://{self.bucket} engine={self.engine}>"


class ResumableRead:
    """Bytes ``[start, end)`` of one object (all of it when ``start`` is None), read so that a
    reply that breaks off is resumed from the last byte received: the next call GETs only the
    missing range, If-Match the first reply's ETag, so a changed object is never spliced (it
    is read again from the start instead). Each call is one attempt, for
    :func:`s3dlio.retry.again`; stores use it when a plain GET failed.
    """

    def __init__(self, store: Store, key: str, start: int | None, end: int | None) -> None:
        self.store, self.key, self.start, self.end = store, key, start, end
        self._buf: bytearray | None = None
        self._got = 0
        self._etag: str | None = None
        self._offset = 0
        self.resumed = 0  # reads that continued a broken one (for tests and the op-log)

    def __call__(self) -> Buffer:
        from ..retry import ChangedError

        uri = f"{self.store.scheme}://{self.store.bucket}/{self.key}"
        buf = self._buf
        if buf is None:
            etag, first, last, chunks = self.store._open_range(self.key, self.start, self.end, None)
            buf = self._buf = bytearray(last - first)
            self._etag, self._offset = etag, first
        else:
            self.resumed += 1
            at = self._offset + self._got
            try:
                _, first, last, chunks = self.store._open_range(self.key, at, self._offset + len(buf), self._etag)
            except ChangedError:
                self._buf, self._got = None, 0  # start over: the object is not the one half read
                raise
        view = memoryview(buf)
        for chunk in chunks:
            piece = memoryview(chunk).cast("B")
            n = piece.nbytes
            if self._got + n > len(buf):
                raise TransferError(f"get {uri}: the reply is longer than announced")
            view[self._got : self._got + n] = piece
            self._got += n
        if self._got != len(buf):
            raise TransferError(
                f"get {uri}: the reply ended after {self._got} of {len(buf)} bytes; resuming from there"
            )
        return buf

    def timed(self) -> tuple[Buffer, int | None]:
        """``self()`` as ``get_timed`` returns it (no first-byte time on a retried read)."""
        return self(), None

    def tagged(self) -> tuple[Buffer, str | None]:
        """``self()`` and the ETag of the version read, as the service sent it."""
        data = self()
        return data, self._etag


def check_reply(uri: str, start: int | None, end: int | None, first: int, last: int, total: int | None) -> None:
    """TransferError unless a reply's bytes ``[first, last)`` of an object of ``total`` bytes
    (None: not said) are what ``[start, end)`` asked for (None, None: the whole object), ``end``
    clipped to ``total``. A reply that stops early is the object's end only where its total
    says so: a server that cut it short, or ignored the Range header (200 with the whole
    object, allowed by HTTP), must not pass for the data asked for. Stores call it on every
    reply's headers, before the body (:func:`check_length` checks that)."""
    want_first = start or 0
    want_last = total if end is None or (total is not None and total < end) else end
    if first == want_first and (want_last is None or last == want_last):
        return
    asked = "the whole object" if start is None else f"bytes [{start}, {end})"
    of = f" of {total}" if total is not None else ""
    raise TransferError(
        f"get {uri}: asked for {asked}, the service sent [{first}, {last}){of}; "
        "not taken for the data asked for (a proxy or server that cuts replies short or ignores Range)"
    )


def put_new_retried(store: Store, key: str, data: Buffer) -> None:
    """``store.put_new``, retried while it fails as a transfer does. A create whose reply was
    lost may have succeeded (the engine's own retry, or ours, then finds the object): an
    :class:`AlreadyExistsError` where the object holds exactly ``data`` is this write's own.
    Callers make their bytes their own (a checkpoint manifest names its save's shard keys)."""
    from ..errors import AlreadyExistsError, NotFoundError
    from ..retry import retrying

    view = memoryview(data).cast("B")

    def attempt() -> None:
        try:
            store.put_new(key, view)
        except AlreadyExistsError:
            try:
                if memoryview(store.get(key)).cast("B") == view:
                    return
            except NotFoundError:
                pass
            raise

    retrying(attempt, attempts=store.config.max_attempts, budget=store.config.total_timeout, what=f"put {key}")


def check_version(uri: str, expected: str, replied: str | None) -> None:
    """ChangedError unless a reply came from version ``expected`` (a reply without an ETag passes)."""
    if replied is not None and replied != expected:
        raise replaced(uri, expected, replied)


def replaced(uri: str, before: str | None, after: str | None) -> TransferError:
    """The error for a read whose object was replaced: a ChangedError (retrying the same read
    cannot help; reading it again from the start can)."""
    from ..retry import ChangedError

    return ChangedError(
        f"get {uri}: the object was replaced while being read (ETag {before} -> {after}); "
        "nothing was kept: read it again"
    )


def bare_etag(etag: str | None) -> str:
    """An ETag without its quotes, for comparing: the SDKs and obstore's HEADs keep them,
    obstore's listings drop them."""
    return (etag or "").strip('"')


def outside_prefix(op: str, uri: str, endpoint: str, key: str) -> TransferError:
    """The error for a listing (``op``) that names ``key``, outside the prefix listed at ``uri``:
    a broken server or proxy. Callers delete what listings give (rm -r, checkpoint retention,
    cleanup), so every engine stops rather than drop the key and trust the rest. Not retried."""
    error = TransferError(
        f"{op} {uri}: the service at {endpoint} listed {key!r}, which is not under the prefix asked for; "
        "stopped, since nothing that service lists can be trusted (check the endpoint or proxy)"
    )
    error.retried = True
    return error


def check_length(uri: str, got: int, first: int, last: int) -> None:
    """TransferError unless a body of ``got`` bytes is the ``[first, last)`` its headers announced."""
    if got != last - first:
        raise TransferError(f"get {uri}: the reply ended after {got} of {last - first} bytes")


def check_range(start: int, end: int) -> None:
    if start < 0 or end < 0:
        raise ValueError(f"byte range [{start}, {end}): offsets must not be negative")


#: The HTTP methods a signed URL may be made for.
SIGNED_METHODS = ("GET", "HEAD", "PUT", "DELETE")


def check_signing(uri: str, method: str, expires: float, longest: float | None) -> str:
    """``method`` upper-cased, after checking it and ``expires`` (seconds, up to ``longest``)."""
    verb = method.upper() if isinstance(method, str) else method
    if verb not in SIGNED_METHODS:
        raise InvalidArgumentError(f"sign {uri}: method {method!r}: use one of {', '.join(SIGNED_METHODS)}")
    if isinstance(expires, bool) or not isinstance(expires, int | float) or not 0 < expires <= (longest or float("inf")):
        limit = f" and at most {longest:g} ({longest / 86400:g} days)" if longest else ""
        raise InvalidArgumentError(f"sign {uri}: expires={expires!r}: give seconds above 0{limit}")
    return verb
