"""Buffers without copies: a flat byte view of any buffer, and a seekable file over one.

``byte_view`` is what every write path takes data through (a copy only for strided arrays,
which have no flat bytes). :class:`BufferReader` is a read-only, seekable file over a fetched
buffer: ``read()`` returns ``bytes`` (a copy of the asked range, as file APIs promise, except
that reading a whole ``bytes`` buffer returns that very object: it cannot change), or with
``views=True`` zero-copy ``memoryview`` slices (request bodies handed to an HTTP client);
``readinto()`` copies straight into the caller's buffer; :meth:`~BufferReader.getbuffer` gives
the zero-copy ``memoryview`` for ``numpy.frombuffer`` / ``torch.frombuffer``.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Buffer

__all__ = ["BufferReader", "byte_view"]


def byte_view(data: Buffer) -> memoryview:
    """A flat byte view of any buffer-protocol object, without copying when it is contiguous."""
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(
            f"needs a bytes-like object (bytes, bytearray, memoryview, numpy array), "
            f"got {type(data).__name__}"
            + ("; encode it first: data.encode()" if isinstance(data, str) else "")
        ) from None
    if not view.c_contiguous:
        return memoryview(view.tobytes())  # strided arrays: one copy (C order) is unavoidable
    if view.format == "B" and view.ndim == 1:
        return view
    return view.cast("B")


class BufferReader(io.BufferedIOBase):
    """A file-like view of one buffer (an object, or a record inside one)."""

    def __init__(self, buffer: Buffer, name: str = "", *, views: bool = False) -> None:
        super().__init__()
        self._view = byte_view(buffer)
        self._bytes = buffer if type(buffer) is bytes else None  # read() whole: no copy needed
        self._pos = 0
        self._views = views
        self.name = name

    # -- what makes it a file ------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def _check(self) -> None:
        if self.closed:
            raise ValueError(f"I/O operation on closed reader {self.name}")

    def read(self, size: int | None = -1) -> bytes:
        self._check()
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self._pos + size)
        start, self._pos = self._pos, max(self._pos, end)
        if self._bytes is not None and start == 0 and end == len(self._bytes):
            return self._bytes
        if self._views:
            return self._view[start:end]  # type: ignore[return-value]  # a bytes-like view
        return bytes(self._view[start:end])

    read1 = read

    def readinto(self, buffer: Buffer) -> int:
        self._check()
        target = memoryview(buffer).cast("B")
        count = max(0, min(len(target), len(self._view) - self._pos))
        target[:count] = self._view[self._pos : self._pos + count]
        self._pos += count
        return count

    readinto1 = readinto

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._check()
        if whence == os.SEEK_SET:
            pos = offset
        elif whence == os.SEEK_CUR:
            pos = self._pos + offset
        elif whence == os.SEEK_END:
            pos = len(self._view) + offset
        else:
            raise ValueError(f"seek whence={whence!r}: use os.SEEK_SET, SEEK_CUR or SEEK_END")
        if pos < 0:
            raise ValueError(f"seek to {pos} in {self.name}: negative position")
        self._pos = pos
        return pos

    def tell(self) -> int:
        self._check()
        return self._pos

    # -- zero copy -----------------------------------------------------------------------
    def getbuffer(self) -> memoryview:
        """The whole buffer as a read-only ``memoryview`` (no copy)."""
        self._check()
        return self._view.toreadonly()

    @property
    def size(self) -> int:
        """Bytes in the buffer."""
        return len(self._view)

    def __len__(self) -> int:
        return len(self._view)

    def __reduce__(self) -> tuple[object, ...]:
        # across processes the bytes travel anyway: pickle a copy of them and the attributes
        state = {k: v for k, v in self.__dict__.items() if k not in ("_view", "_bytes")}
        return (_rebuild, (type(self), bytes(self._view), state))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {len(self._view)} bytes at {self._pos}>"


def _rebuild(cls: type[BufferReader], data: bytes, state: dict[str, object]) -> BufferReader:
    reader = cls.__new__(cls)
    BufferReader.__init__(reader, data)
    reader.__dict__.update(state)
    return reader
