"""S3 multipart uploads on the fast engine: obstore's streaming ``put`` fed part by part.

obstore 0.12.1 has no part-level upload in Python, but ``obstore.put(store, path, iterator,
chunk_size=P, max_concurrency=N)`` runs a multipart upload from an iterator of buffers, and
measured on moto it (a) holds each buffer without copying it (Rust ``Bytes`` over the
Python buffer) until that part's request is done, sending up to N parts at once, and (b)
aborts the multipart upload when the iterator raises: ListMultipartUploads is empty after.
So one thread runs ``obstore.put`` over a queue; :meth:`StreamUpload.upload_part` queues
its part in index order and returns when obstore lets go of the buffer (a ``weakref``
finalizer on a memoryview only obstore still holds), i.e. once the part is uploaded.
obstore retries each part's HTTP request itself; a part that still fails ends the upload
(and aborts it). A failure to start the upload, before obstore took a part, is retried here.
When the upload fails at its end, the object is checked (HEAD: the size, written since the
upload began) before an error is raised: the reply to CompleteMultipartUpload may be what was
lost, not the object.
"""

from __future__ import annotations

import queue
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

import obstore

from ..errors import NotFoundError, TransferError
from ..retry import Attempts
from .upload_s3 import MAX_PARTS, MIN_PART

if TYPE_CHECKING:
    from .fast import FastStore

__all__ = ["StreamUpload"]

_END = object()
_ABORT = object()


class _Aborted(Exception):
    """Raised inside obstore's iterator: obstore then aborts the multipart upload."""


class _Parts:
    """The iterator obstore pulls parts from; it keeps no reference to a part it handed out."""

    def __init__(self, source: queue.SimpleQueue[Any]) -> None:
        self._source = source
        self.pulled = 0  # parts handed to obstore

    def __iter__(self) -> _Parts:
        return self

    def __next__(self) -> memoryview:
        item = self._source.get()
        if item is _END:
            raise StopIteration
        if item is _ABORT:
            raise _Aborted("upload aborted")
        self.pulled += 1
        return item  # type: ignore[no-any-return]


class StreamUpload:
    """An :class:`~s3dlio.store.base.Upload` over one streaming ``obstore.put``."""

    max_parts = MAX_PARTS
    retry_parts = False

    def __init__(
        self, store: FastStore, key: str, part_size: int, content_type: str | None, concurrency: int
    ) -> None:
        self.part_size = max(part_size, MIN_PART)
        self._store = store
        self._key = key
        self._attributes = {"Content-Type": content_type} if content_type else None
        self._concurrency = max(1, concurrency)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._turn = threading.Condition()
        self._next = 0  # index of the next part to queue
        self._thread: threading.Thread | None = None
        self._done = False
        self._error: BaseException | None = None
        self._began = 0.0  # time.monotonic() when the upload started

    # -- the thread that runs obstore.put ----------------------------------------------------
    def _run(self) -> None:
        parts = _Parts(self._queue)
        config = self._store.config
        tries = Attempts(config.max_attempts, config.total_timeout, f"put {self._key}")  # from the start
        try:
            while True:
                try:
                    with self._store._errors("put", self._key):
                        obstore.put(
                            self._store._inner,
                            self._key,
                            parts,
                            attributes=self._attributes,
                            use_multipart=True,
                            chunk_size=self.part_size,
                            max_concurrency=self._concurrency,
                        )
                    return
                except Exception as exc:
                    # Starting the upload failed before obstore took a part: start it again,
                    # within the operation's attempts and total_timeout
                    if parts.pulled:
                        raise
                    tries.failed_with(exc)
        except BaseException as exc:  # noqa: BLE001 - handed to the writer's thread
            self._error = exc
        finally:
            with self._turn:
                self._done = True
                self._turn.notify_all()
            while not self._queue.empty():  # parts queued after obstore stopped: let them go
                self._queue.get_nowait()

    def _failed(self) -> BaseException:
        error = self._error
        if error is None or isinstance(error, _Aborted) or isinstance(error.__cause__, _Aborted):
            return TransferError(f"put {self._store._uri(self._key)}: the upload was aborted or had ended")
        return error

    # -- Upload ----------------------------------------------------------------------------
    def upload_part(self, index: int, offset: int, data: memoryview) -> None:
        released = threading.Event()
        with self._turn:
            while self._next != index and not self._done:
                self._turn.wait()
            if self._done:
                raise self._failed()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="s3dlio-upload", daemon=True)
                self._began = time.monotonic()
                self._thread.start()
            part = memoryview(data)  # a view of our own, so its finalizer tells when obstore lets go
            weakref.finalize(part, released.set)
            self._queue.put(part)
            del part
            self._next += 1
            self._turn.notify_all()
        if len(data) < self.part_size:
            return  # the last part: obstore holds it until the upload completes
        while not released.wait(0.5):
            if self._done and self._error is not None:
                break
        if self._error is not None:
            raise self._failed()

    def complete(self, size: int) -> None:
        if self._thread is None:
            raise TransferError(f"put {self._store._uri(self._key)}: complete before any part")
        self._queue.put(_END)
        self._thread.join()
        if self._error is not None:
            if isinstance(self._error, TransferError | NotFoundError) and self._store._written(
                self._key, size, self._began
            ):
                return  # only the reply to CompleteMultipartUpload was lost (its retry: NoSuchUpload)
            self._store._abort_leftovers(self._key, self._began)
            raise self._failed()

    def abort(self) -> None:
        thread = self._thread
        if thread is None:
            return
        if thread.is_alive():
            self._queue.put(_ABORT)
            thread.join()
        # obstore aborted its upload once; if that abort failed too, abort what it left.
        self._store._abort_leftovers(self._key, self._began)

    def put_whole(self, data: memoryview) -> None:
        with self._store._errors("put", self._key):
            obstore.put(self._store._inner, self._key, data, attributes=self._attributes, use_multipart=False)
