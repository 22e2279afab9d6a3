"""``open_reader``: a seekable binary file over one object, read in blocks with read-ahead.

``torch.load``, ``numpy.load``, ``h5py.File``, ``zipfile`` and ``tarfile`` read through it
without the object being fetched first. The size comes from one HEAD at open. Reads are
served from blocks of ``block_size`` bytes fetched by range and kept in a small cache; when
reads run sequentially the next ``read_ahead`` blocks are fetched in the background while
the caller consumes the current one, and a large ``readinto`` bypasses the cache and fills
the caller's buffer with parallel ranges. A block that fails or comes back short is fetched
again from the first missing byte, never from the start of the object. Every block must come
from the version the HEAD at open saw (its ETag; :class:`~s3dlio.ranged.Version`): a reader
open across a replacement raises rather than splice two versions.

Not thread-safe, like any file: give each thread its own reader.
"""

from __future__ import annotations

import io
import re
from collections import OrderedDict
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from . import _check, _parallel
from .ranged import Version, fetch_block, fill

if TYPE_CHECKING:
    from collections.abc import Buffer

    from .config import Config
    from .store.base import ObjectMeta, Store

__all__ = ["ObjectReader"]

_NEWLINE = re.compile(b"\n")  # searched in the cached blocks themselves (re takes any buffer)


class ObjectReader(io.BufferedIOBase):
    """A read-only, seekable binary file over ``uri`` (``readinto`` supported)."""

    #: Whether a large read may skip the blocks and fill the caller's buffer by ranges.
    _fill_directly = True

    def __init__(
        self, uri: str, store: Store, key: str, *, config: Config, size: int | None = None,
        block_size: int | None = None, read_ahead: int = 2,
    ) -> None:  # fmt: skip
        super().__init__()
        self.name = uri
        self._store, self._key, self._config = store, key, config
        # The version read: blocks fetched later from a replaced object raise instead of mixing
        # two versions (the HEAD's ETag, or the first block's when the size was given).
        self._opened: ObjectMeta | None = None
        if size is None:
            self._opened = store.head(key)
            size = self._opened.size
        self._size = size
        # With the HEAD's size, the block ending there asks one byte more: a HEAD that says too
        # little raises instead of cutting the object short.
        opened = self._opened
        self._version = Version(uri, opened.etag if opened else None, opened.size if opened else None)
        self._block = max(4096, block_size or config.part_size)
        self._ahead = max(0, read_ahead)
        self._blocks: OrderedDict[int, Future[Buffer]] = OrderedDict()
        self._pos = 0
        self._last_end = 0  # where the previous read ended: a read starting here is sequential

    # -- io ------------------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    @property
    def size(self) -> int:
        """The object's size in bytes."""
        return self._size

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        offset = _check.integer("ObjectReader.seek", "offset", offset, None)
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"seek: whence={whence!r}; use io.SEEK_SET, SEEK_CUR or SEEK_END")
        if pos < 0:
            raise ValueError(f"seek {self.name}: negative position {pos}")
        self._pos = pos
        return pos

    def read(self, size: int | None = -1) -> bytes:
        self._check_open()
        size = _check.optional_integer("ObjectReader.read", "size", size, None)
        n = self._size - self._pos if size is None or size < 0 else min(size, max(0, self._size - self._pos))
        if n <= 0:
            return b""
        index, within = divmod(self._pos, self._block)
        if within + n <= self._block:  # inside one block: one copy out of the cache
            data = memoryview(self._get_block(index))
            self._moved(self._pos, n)
            return data[within : within + n].tobytes()
        buf = bytearray(n)
        got = self.readinto(buf)
        return bytes(buf) if got == n else bytes(buf[:got])

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def readline(self, size: int | None = -1) -> bytes:
        """One line (at most ``size`` bytes), found in the blocks: io's own ``readline`` reads a
        file without ``peek`` one byte at a time, a request per byte here."""
        self._check_open()
        size = _check.optional_integer("ObjectReader.readline", "size", size, None)
        left = self._size - self._pos if size is None or size < 0 else min(size, max(0, self._size - self._pos))
        parts: list[bytes] = []
        while left > 0:
            index, within = divmod(self._pos, self._block)
            data = self._get_block(index)
            end = min(memoryview(data).nbytes, within + left)
            if end <= within:
                break  # the object is shorter than it was at open
            found = _NEWLINE.search(data, within, end)  # type: ignore[call-overload]
            stop = found.end() if found else end
            parts.append(memoryview(data)[within:stop].tobytes())
            self._moved(self._pos, stop - within)
            left -= stop - within
            if found:
                break
        return b"".join(parts)

    def readinto(self, buffer: Buffer) -> int:
        self._check_open()
        view = memoryview(_check.buffer("ObjectReader.readinto", "buffer", buffer, writable=True)).cast("B")
        start = self._pos
        n = min(len(view), max(0, self._size - start))
        done = 0
        while done < n:
            pos = start + done
            index, within = divmod(pos, self._block)
            if index not in self._blocks and n - done >= 2 * self._block and self._fill_directly:
                fill(self._store, self._key, pos, view[done:n], config=self._config, uri=self.name,
                     before=self._opened, etag=self._version.etag)  # fmt: skip
                done = n
                break
            data = memoryview(self._get_block(index))
            take = min(len(data) - within, n - done)
            if take <= 0:
                break  # the object is shorter than it was at open
            view[done : done + take] = data[within : within + take]
            done += take
        self._moved(start, done)
        return done

    def readinto1(self, buffer: Buffer) -> int:
        return self.readinto(buffer)

    def close(self) -> None:
        blocks = getattr(self, "_blocks", {})  # absent when __init__ failed (no such object)
        for future in blocks.values():
            future.cancel()
        blocks.clear()
        super().close()

    def __repr__(self) -> str:
        return f"<ObjectReader {self.name} size={self._size} pos={self._pos}>"

    def __getstate__(self) -> Any:
        raise TypeError(f"{self.name}: a reader cannot be pickled; open one in each process")

    # -- blocks ---------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"{self.name}: read from a closed reader")

    def _fetch(self, index: int) -> Buffer:
        start = index * self._block
        end = min(start + self._block, self._size)
        return fetch_block(self._store, self._key, start, end, attempts=self._config.max_attempts,
                           version=self._version)  # fmt: skip

    def _get_block(self, index: int) -> Buffer:
        future = self._blocks.get(index)
        if future is None:  # needed now: fetch it on this thread
            future = Future()
            try:
                future.set_result(self._fetch(index))
            except BaseException as exc:
                future.set_exception(exc)
            self._remember(index, future)
        else:
            self._blocks.move_to_end(index)
        try:
            return future.result()
        except BaseException:
            self._blocks.pop(index, None)  # do not keep a failure: the next read asks again
            raise

    def _remember(self, index: int, future: Future[Buffer]) -> None:
        self._blocks[index] = future
        while len(self._blocks) > self._ahead + 2:
            self._blocks.popitem(last=False)[1].cancel()

    def _moved(self, start: int, n: int) -> None:
        """Advance past a read and, when reads are sequential, fetch the next blocks ahead."""
        sequential = start == self._last_end
        self._pos = self._last_end = start + n
        if not sequential or not self._ahead:
            return
        first = self._pos // self._block
        last = min(first + self._ahead, (self._size - 1) // self._block)
        for index in range(first, last + 1):
            if index not in self._blocks:
                self._remember(index, _parallel.executor().submit(self._fetch, index))
