"""The writer's part pipeline: parts sent on worker threads, at most N in flight, each retried.

Separate from :mod:`s3dlio.writer` (which decides what a part holds) so each stays small.
Owned part buffers come back to a free list when their part is up, so a writer allocates at
most ``max_in_flight + 1`` of them however long it runs.
"""

from __future__ import annotations

import mmap
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING

from . import _parallel
from .errors import InvalidUriError
from .retry import retrying

if TYPE_CHECKING:
    from .store.base import Upload
    from .verify import PartDigests

__all__ = ["PartSender", "fitting_part_size"]


def fitting_part_size(size: int, part_size: int, max_parts: int) -> int:
    """``part_size``, raised when an object of ``size`` bytes would need more than ``max_parts``
    parts of it: the smallest multiple of ``part_size`` that fits (boto3's chunk-size adjuster
    does the same by doubling). Where the size is known before the first byte is sent, this
    spares a transfer that would fail after sending ``max_parts`` parts."""
    if size <= part_size * max_parts:
        return part_size
    need = -(-size // max_parts)
    return -(-need // part_size) * part_size


class PartSender:
    """Sends the parts of one upload in order of submission, ``max_in_flight`` at a time."""

    def __init__(self, name: str, upload: Upload, *, max_in_flight: int, attempts: int,
                 digests: PartDigests | None) -> None:  # fmt: skip
        self.name, self.upload, self.digests = name, upload, digests
        self.attempts = attempts if upload.retry_parts else 1
        self.count = 0  # parts submitted
        self.sent = 0  # bytes in them
        self.error: BaseException | None = None
        self._slots = threading.BoundedSemaphore(max(1, max_in_flight))
        self._free: list[memoryview] = []
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()

    def buffer(self) -> memoryview:
        """A part buffer: a recycled one, or a new page-aligned one (O_DIRECT needs alignment)."""
        return self._free.pop() if self._free else memoryview(mmap.mmap(-1, self.upload.part_size))

    def submit(self, data: memoryview, owned: memoryview | None) -> Future[None]:
        """Send ``data`` as the next part; blocks while ``max_in_flight`` parts are in flight.

        ``owned`` is the writer's buffer behind ``data``, recycled once the part is up.
        """
        if self.count >= self.upload.max_parts:
            raise InvalidUriError(
                f"put {self.name}: more than {self.upload.max_parts} parts of {self.upload.part_size} bytes; "
                "open the writer with a larger part_size"
            )
        self._slots.acquire()
        if self.error is not None:
            self._slots.release()
            raise self.error
        index, offset = self.count, self.sent
        self.count += 1
        self.sent += len(data)
        future = _parallel.executor().submit(self._send, index, offset, data, owned)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._settled)
        return future

    def _send(self, index: int, offset: int, data: memoryview, owned: memoryview | None) -> None:
        try:
            if self.digests is not None:
                self.digests.add(index, data)
            retrying(lambda: self.upload.upload_part(index, offset, data), attempts=self.attempts,
                     what=f"put {self.name} part {index + 1}")  # fmt: skip
        except BaseException as exc:
            if self.error is None:
                self.error = exc
            raise
        finally:
            if owned is not None:
                self._free.append(owned)
            self._slots.release()

    def _settled(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def wait(self, raise_errors: bool = True) -> None:
        """Wait for every part sent so far; raise the first failure unless told not to."""
        with self._lock:
            pending = list(self._pending)
        for future in pending:
            try:
                future.result()
            except BaseException:
                if raise_errors:
                    raise

    def release(self) -> None:
        """Drop the recycled buffers (the writer is done)."""
        self._free = []
