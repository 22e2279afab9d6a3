"""Uploads that gather the parts in memory and put one object at the end (``mem://``).

In-process stores keep the whole object anyway, so streaming would save nothing; parts are
copied as they come (the writer reuses its buffers) and joined once on ``complete``.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING

from ..errors import TransferError

if TYPE_CHECKING:
    from .base import Store

__all__ = ["BufferedUpload"]


class BufferedUpload:
    """An :class:`~s3dlio.store.base.Upload` for any store: parts in memory, one ``put``."""

    max_parts = sys.maxsize
    retry_parts = True

    def __init__(self, store: Store, key: str, part_size: int) -> None:
        self.part_size = part_size
        self._store = store
        self._key = key
        self._parts: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def upload_part(self, index: int, offset: int, data: memoryview) -> None:
        part = data.tobytes()
        with self._lock:
            self._parts[index] = part

    def complete(self, size: int) -> None:
        with self._lock:
            parts, self._parts = self._parts, {}
        body = b"".join(parts[i] for i in range(len(parts)))
        if len(body) != size:
            raise TransferError(
                f"put {self._store.scheme}://{self._store.bucket}/{self._key}: parts hold {len(body)} bytes, "
                f"expected {size}"
            )
        self._store.put(self._key, body)

    def abort(self) -> None:
        with self._lock:
            self._parts.clear()

    def put_whole(self, data: memoryview) -> None:
        self._store.put(self._key, data)
