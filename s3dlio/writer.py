"""``open_writer``: stream one large object up in parts, from any producer, in bounded memory.

The writer is the same for every backend; an :class:`~s3dlio.store.base.Upload` from the
store does the requests. Bytes reach a part one of three ways:

- a large ``write``: the whole parts inside it are sent straight from memoryview slices of
  the caller's buffer (no copy), and ``write`` returns once they are uploaded, so the
  caller may reuse its buffer;
- a small ``write``: copied once into the current part buffer;
- ``reserve(n)`` / ``commit(n)``: the producer fills the part buffer itself (numpy writes
  into the view), so the bytes go from producer to network with no copy in between.

Full parts go up on worker threads while the caller keeps writing; at most
``max_in_flight`` parts are in flight (a write blocks beyond that), so memory stays at
``(max_in_flight + 1) * part_size`` whatever the object's size. An object of at most one
part goes up with a single PUT on ``close``. An exception inside ``with``, ``abort()``, a
writer dropped unclosed (garbage-collected), or one still open when the interpreter exits
aborts the upload: nothing is left behind, and half an object is never completed.
"""

from __future__ import annotations

import atexit
import io
import threading
import warnings
import weakref
from concurrent.futures import Future
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _check
from ._parts import PartSender, fitting_part_size
from .buffers import byte_view
from .retry import retrying
from .store.base import STREAM_MIN
from .verify import PartDigests, verify_enabled, verify_written

if TYPE_CHECKING:
    from collections.abc import Buffer

    from .datagen import DataGenerator
    from .store.base import Store, Upload

__all__ = ["ObjectWriter", "put_generated", "write_generated", "writer_for"]


class ObjectWriter(io.BufferedIOBase):
    """A write-only binary file whose bytes become one object when it closes."""

    def __init__(self, uri: str, store: Store, key: str, upload: Upload, *, max_in_flight: int, attempts: int,
                 verify: bool) -> None:  # fmt: skip
        super().__init__()
        self.name = uri
        self._store, self._key, self._upload = store, key, upload
        self._part_size = upload.part_size
        self._digests = PartDigests() if verify else None
        self._parts = PartSender(uri, upload, max_in_flight=max_in_flight, attempts=attempts,
                                 digests=self._digests)  # fmt: skip
        self._buf: memoryview | None = None  # the part being filled
        self._fill = 0
        self._reserved = 0
        self._done = False
        _open_writers.add(self)  # aborted at interpreter exit if still open

    # -- io.BufferedIOBase -----------------------------------------------------------------
    def writable(self) -> bool:
        """True until ``close``/``abort``, as s3torchconnector's ``S3Writer`` (no ValueError after)."""
        return not self.closed

    @property
    def closed(self) -> bool:
        return self._done

    def tell(self) -> int:
        """Bytes written so far."""
        return self._parts.sent + self._fill

    def flush(self) -> None:
        """No-op: parts go up as they fill; the object exists only after ``close``."""

    def write(self, data: Buffer) -> int:
        self._check_open()
        view = byte_view(_check.buffer("ObjectWriter.write", "data", data))
        n, pos, size = len(view), 0, self._part_size
        borrowed: list[Future[None]] = []
        try:
            while pos < n:
                if self._fill == size:
                    self._flush()
                if self._fill == 0 and n - pos > size:  # a whole part of the caller's buffer: no copy
                    borrowed.append(self._parts.submit(view[pos : pos + size], None))
                    pos += size
                    continue
                buf = self._buffer()
                take = min(size - self._fill, n - pos)
                buf[self._fill : self._fill + take] = view[pos : pos + take]
                self._fill += take
                pos += take
        except BaseException:
            for future in borrowed:  # never return while a part still reads the caller's buffer
                future.exception()
            raise
        for future in borrowed:  # the caller may reuse its buffer once these are up
            future.result()
        return n

    def reserve(self, n: int | None = None) -> memoryview:
        """A writable view of up to ``n`` bytes (all that is left of the part when None).

        Fill it, then :meth:`commit` the bytes written; do not touch the view afterwards.
        """
        self._check_open()
        n = _check.optional_integer("ObjectWriter.reserve", "n", n, 0)
        if self._fill == self._part_size:
            self._flush()
        room = self._part_size - self._fill
        self._reserved = room if n is None else max(0, min(n, room))
        return self._buffer()[self._fill : self._fill + self._reserved]

    def commit(self, n: int) -> None:
        """Count ``n`` bytes of the last :meth:`reserve` as written."""
        self._check_open()
        n = _check.integer("ObjectWriter.commit", "n", n, 0)
        if not 0 <= n <= self._reserved:
            raise ValueError(f"commit({n}): the last reserve() gave {self._reserved} bytes")
        self._fill += n
        self._reserved = 0

    def close(self) -> None:
        """Finish the object (idempotent). On failure the upload is aborted and the error raised."""
        if self._done:
            return
        self._done = True
        try:
            if self._parts.count == 0:  # at most one part: a single PUT
                data = self._buf[: self._fill] if self._buf is not None else memoryview(b"")
                size = len(data)
                if self._digests is not None:
                    self._digests.add(0, data)
                retrying(lambda: self._upload.put_whole(data), attempts=self._parts.attempts,
                         what=f"put {self.name}")  # fmt: skip
            else:
                if self._fill:
                    self._flush()
                self._parts.wait()
                size = self._parts.sent
                self._upload.complete(size)
            if self._digests is not None:
                verify_written(self._store, self._key, self.name, size, self._digests)
        except BaseException:
            self._abort_quietly()
            raise
        finally:
            self._release()

    def abort(self) -> None:
        """Discard everything written: the object is not created (or keeps its old content)."""
        if self._done:
            return
        self._done = True
        try:
            self._parts.wait(raise_errors=False)
            self._upload.abort()
        finally:
            self._release()

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.close()
        else:
            self._abort_quietly()

    def __del__(self) -> None:
        # Overrides IOBase.__del__, which would close() and so complete a half-written object.
        self._abandon("dropped")

    def _abandon(self, how: str) -> None:
        if not getattr(self, "_done", True):
            warnings.warn(f"{self.name}: writer {how} without close(); the upload was aborted",
                          ResourceWarning, stacklevel=3)  # fmt: skip
            self._abort_quietly()

    def __repr__(self) -> str:
        return f"<ObjectWriter {self.name} part_size={self._part_size} written={self.tell()}>"

    def __getstate__(self) -> Any:
        raise TypeError(f"{self.name}: a writer cannot be pickled; open one in each process")

    # -- parts -----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._done:
            raise ValueError(f"{self.name}: write to a closed writer")
        if self._parts.error is not None:
            raise self._parts.error

    def _buffer(self) -> memoryview:
        if self._buf is None:
            self._buf = self._parts.buffer()
        return self._buf

    def _flush(self) -> None:
        """Send the current part buffer; the next write starts a new one."""
        buf, fill = self._buffer(), self._fill
        self._buf, self._fill = None, 0
        self._parts.submit(buf[:fill], buf)

    def _abort_quietly(self) -> None:
        """Abort after a failure; a failing abort must not hide the failure that caused it."""
        self._done = True
        try:
            self._parts.wait(raise_errors=False)
            self._upload.abort()
        except Exception:  # noqa: BLE001 - the original error matters more
            pass
        finally:
            self._release()

    def _release(self) -> None:
        self._buf = None
        self._parts.release()
        _open_writers.discard(self)


#: Writers not yet closed or aborted (weakly held: a dropped one is aborted by ``__del__``).
_open_writers: weakref.WeakSet[ObjectWriter] = weakref.WeakSet()


def abort_open_uploads() -> list[threading.Thread]:
    """Start aborting the upload of every writer still open, each on a thread of its own,
    without waiting for its parts in flight (an interrupted command: they would fail anyway;
    the writer's next part then fails and it aborts again, a no-op). Returns the threads."""
    threads = [threading.Thread(target=w._upload.abort, daemon=True) for w in list(_open_writers)]
    for thread in threads:
        thread.start()
    return threads


@atexit.register
def _abort_open_writers() -> None:
    """At interpreter exit, abort every writer still open: its object is never completed."""
    for writer in list(_open_writers):
        writer._abandon("still open at exit")


def open_upload_for(
    store: Store, key: str, *, part_size: int | None = None, size: int | None = None,
    content_type: str | None = None,
) -> Upload:  # fmt: skip
    """``store.open_upload`` of ``key`` with ``part_size`` (default: the configured one), raised
    where ``size`` bytes (when known) would need more parts than the store allows (Azure: 50,000
    blocks, S3: 10,000 parts), so the transfer does not fail after sending them all. The upload
    tells its limits once open; it sends nothing before its first part, so one that does not
    fit is opened again."""
    upload = store.open_upload(key, part_size=part_size or store.config.part_size, content_type=content_type)
    if size is None or size <= upload.part_size * upload.max_parts:
        return upload
    upload.abort()  # nothing was sent: a no-op
    fitting = fitting_part_size(size, upload.part_size, upload.max_parts)
    return store.open_upload(key, part_size=fitting, content_type=content_type)


def writer_for(
    uri: str, store: Store, key: str, *, part_size: int | None = None, max_in_flight: int | None = None,
    content_type: str | None = None, verify: bool | None = None, size: int | None = None,
) -> ObjectWriter:  # fmt: skip
    """A writer of ``key`` in ``store`` (``uri`` names it in errors); what is not given comes
    from the store's settings: ``part_size`` (raised to fit ``size`` bytes when known, see
    :func:`open_upload_for`), up to 8 parts in flight, ``S3DLIO_PUT_VERIFY``."""
    config = store.config
    in_flight = max_in_flight if max_in_flight is not None else min(8, config.max_in_flight)
    upload = open_upload_for(store, key, part_size=part_size, size=size, content_type=content_type)
    return ObjectWriter(uri, store, key, upload, max_in_flight=in_flight, attempts=config.max_attempts,
                        verify=verify_enabled(verify, config))  # fmt: skip


def put_generated(uri: str, store: Store, key: str, gen: DataGenerator, size: int) -> None:
    """``size`` new bytes from ``gen`` stored at ``key`` (``uri`` names it): one PUT up to
    ``STREAM_MIN``, above it generated and uploaded a part at a time, so memory stays at a few
    parts however large the object (the benchmark's and the replay's preparation)."""
    if size <= STREAM_MIN:
        store.put(key, gen.object(size))
        return
    with writer_for(uri, store, key, max_in_flight=2) as f:
        write_generated(f, gen, size)


def write_generated(f: ObjectWriter, gen: DataGenerator, size: int) -> None:
    """``size`` new bytes from ``gen`` generated straight into ``f``'s part buffers (no copy)."""
    while size:
        view = f.reserve(size)
        gen.fill(view)
        f.commit(len(view))
        size -= len(view)
