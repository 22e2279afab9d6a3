"""Readers shaped like s3torchconnector's: seekable files over objects, all :class:`S3Reader`.

With the default (sequential) reader constructor the item is a :class:`SequentialS3Reader`:
the object is fetched whole before the item exists, so ``read``/``seek``/``tell`` are
in-memory and ``getbuffer()`` is the fetched buffer itself (zero-copy):
``torch.frombuffer(item.getbuffer(), dtype=torch.uint8)``. With
``S3ReaderConstructor.range_based()`` the item is a :class:`RangedS3Reader`: nothing is
fetched until it is read, then only the ranges reads touch. Seeks past the end stop at the
end, as s3torchconnector's do.
"""

from __future__ import annotations

import abc
import functools
import io
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from s3dlio.config import Config
from s3dlio.large import ObjectReader, open_reader
from s3dlio.loader import BufferReader, Sample
from s3dlio.uri import parse

from ._compat import ReaderConstructor

if TYPE_CHECKING:
    from collections.abc import Buffer

__all__ = ["RangedS3Reader", "S3Reader", "SequentialS3Reader", "ToReader", "identity", "seek_position"]


def seek_position(uri: str, offset: int, whence: int, pos: int, size: int) -> int:
    """Where a seek on a ``size``-byte object at ``pos`` lands, as s3torchconnector's readers
    put it: past the end is the end; before the start is a ValueError; ``offset`` must be an
    integer (``1.5`` is a TypeError)."""
    try:
        offset = operator.index(offset)
    except TypeError:
        got = f"{type(offset).__name__} {offset!r}"
        raise TypeError(f"seek {uri}: offset must be an int, got {got}") from None
    if whence == io.SEEK_SET:
        target = offset
    elif whence == io.SEEK_CUR:
        target = pos + offset
    elif whence == io.SEEK_END:
        target = size + offset
    else:
        error = ValueError if isinstance(whence, int) else TypeError
        raise error(f"seek {uri}: whence={whence!r}; use io.SEEK_SET, SEEK_CUR or SEEK_END")
    if target < 0:
        raise ValueError(f"seek {uri}: negative position {target}")
    return min(target, size)


class S3Reader(io.BufferedIOBase):
    """What every reader here is, as s3torchconnector's abstract ``S3Reader``: a read-only,
    seekable file over one object at ``uri``.

    ``isinstance(r, S3Reader)`` holds for sequential and range-based items, ``S3Client``
    readers and ``S3Checkpoint.reader``; build those, not this class.
    """

    uri: str

    # parsed on first use: one reader per item, and most items are only read
    @functools.cached_property
    def bucket(self) -> str:
        """The bucket or container; ``""`` for files, whose ``key`` is the path without its leading ``/``."""
        return parse(self.uri).bucket

    @functools.cached_property
    def key(self) -> str:
        return parse(self.uri).key

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def prefetch(self) -> None:
        """Start fetching the object, as s3torchconnector's ``SequentialS3Reader.prefetch``: a
        no-op here, where the object is fetched (or opened) when the reader is built."""

    @abc.abstractmethod
    def read(self, size: int | None = -1) -> bytes: ...

    @abc.abstractmethod
    def readinto(self, buffer: Buffer) -> int: ...

    @abc.abstractmethod
    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int: ...

    @abc.abstractmethod
    def tell(self) -> int: ...


class SequentialS3Reader(BufferReader, S3Reader):
    """One object (or one TFRecord record of it), fetched whole, as a read-only binary file.

    ``bucket`` and ``key`` as in s3torchconnector; ``uri`` the full URI; ``record`` the
    record number for record formats, else None.
    """

    def __init__(self, uri: str, buffer: Any, record: int | str | None = None) -> None:
        super().__init__(buffer, name=uri)
        self.uri = uri
        self.record = record

    @classmethod
    def from_sample(cls, sample: Sample) -> SequentialS3Reader:
        """The reader for a loader sample whose data is a buffer."""
        return cls(sample.uri, sample.data, sample.record)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return super().seek(seek_position(self.uri, offset, whence, self.tell(), self.size))


class RangedS3Reader(S3Reader):
    """One object read by ranged GETs, as s3torchconnector's range-based reader does.

    Opened on first use (one HEAD gives the size); each read fetches the bytes it needs in
    blocks of ``buffer_size`` (at least 4 KiB), keeping the last blocks, with no read-ahead.
    Pickles as its settings and position, so it can cross into another process.
    """

    def __init__(self, uri: str, config: Config | None = None, buffer_size: int = 8 << 20) -> None:
        super().__init__()
        parse(uri)  # a malformed URI fails here, not at the first read
        self.uri = self.name = uri
        self.record = None
        self._config, self._buffer_size = config, buffer_size
        self._reader: ObjectReader | None = None
        self._pos = 0

    def _open(self) -> ObjectReader:
        if self.closed:
            raise ValueError(f"I/O operation on closed reader {self.uri}")
        if self._reader is None:
            block = max(4096, self._buffer_size)
            self._reader = open_reader(self.uri, read_ahead=0, block_size=block, config=self._config)
            self._reader.seek(self._pos)
        return self._reader

    @property
    def size(self) -> int:
        """The object's size in bytes (a HEAD on first use)."""
        return self._open().size

    def prefetch(self) -> None:
        """Open the object now (its HEAD), so a missing one fails here, not at the first read."""
        self._open()

    def read(self, size: int | None = -1) -> bytes:
        return self._open().read(size)

    read1 = read

    def readinto(self, buffer: Buffer) -> int:
        return self._open().readinto(buffer)

    readinto1 = readinto

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        reader = self._open()  # the size bounds every seek, as s3torchconnector's HEAD does
        return reader.seek(seek_position(self.uri, offset, whence, reader.tell(), reader.size))

    def tell(self) -> int:
        return self._pos if self._reader is None else self._reader.tell()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        super().close()

    def __getstate__(self) -> dict[str, Any]:
        return {"uri": self.uri, "config": self._config, "buffer_size": self._buffer_size, "pos": self.tell()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["uri"], state["config"], state["buffer_size"])  # type: ignore[misc]
        self._pos = state["pos"]

    def __repr__(self) -> str:
        return f"<RangedS3Reader {self.uri} pos={self.tell()}>"


def identity(item: Any) -> Any:
    """The default transform: yield the reader item itself."""
    return item


class ToReader:
    """Loader transform: buffer samples become :class:`SequentialS3Reader` items, then ``transform``.

    Samples whose data is not a buffer (tar members, NPZ arrays) reach ``transform`` as the
    loader's :class:`~s3dlio.loader.Sample`. A class, not a closure, so it pickles.
    """

    def __init__(
        self,
        transform: Callable[[Any], Any] = identity,
        constructor: ReaderConstructor | None = None,
        config: Config | None = None,
    ) -> None:
        if not callable(transform):
            raise TypeError(f"transform={transform!r} is not callable")
        self.transform = transform
        self.constructor = constructor or ReaderConstructor()
        self.config = config
        self.__qualname__ = getattr(transform, "__qualname__", type(transform).__name__)

    def __call__(self, sample: Sample) -> Any:
        if self.constructor.ranged:  # the loader fetched nothing: the item reads by range
            return self.transform(RangedS3Reader(sample.uri, self.config, self.constructor.buffer_size))
        if isinstance(sample.data, memoryview):
            return self.transform(SequentialS3Reader.from_sample(sample))
        return self.transform(sample)
