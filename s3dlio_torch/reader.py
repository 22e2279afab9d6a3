"""Dataset items shaped like s3torchconnector's ``S3Reader``: a seekable file over a fetched object.

The object is fetched whole before the item exists, so ``read``/``seek``/``tell`` are
in-memory and ``getbuffer()`` is the fetched buffer itself (zero-copy):
``torch.frombuffer(item.getbuffer(), dtype=torch.uint8)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from s3dlio.loader import BufferReader, Sample
from s3dlio.uri import parse

__all__ = ["S3Reader", "ToReader", "identity"]


class S3Reader(BufferReader):
    """One object (or one TFRecord record of it) as a read-only binary file.

    ``bucket`` and ``key`` as in s3torchconnector (``bucket`` is ``""`` for files, whose key
    is the path without its leading ``/``); ``uri`` the full URI; ``record`` the record
    number for record formats, else None.
    """

    def __init__(self, uri: str, buffer: Any, record: int | str | None = None) -> None:
        super().__init__(buffer, name=uri)
        parsed = parse(uri)
        self.uri = uri
        self.bucket = parsed.bucket
        self.key = parsed.key
        self.record = record

    @classmethod
    def from_sample(cls, sample: Sample) -> S3Reader:
        """The reader for a loader sample whose data is a buffer."""
        return cls(sample.uri, sample.data, sample.record)


def identity(item: Any) -> Any:
    """The default transform: yield the reader item itself."""
    return item


class ToReader:
    """Loader transform: buffer samples become :class:`S3Reader` items, then ``transform``.

    Samples whose data is not a buffer (tar members, NPZ arrays) reach ``transform`` as the
    loader's :class:`~s3dlio.loader.Sample`. A class, not a closure, so it pickles.
    """

    def __init__(self, transform: Callable[[Any], Any] = identity) -> None:
        if not callable(transform):
            raise TypeError(f"transform={transform!r} is not callable")
        self.transform = transform
        self.__qualname__ = getattr(transform, "__qualname__", type(transform).__name__)

    def __call__(self, sample: Sample) -> Any:
        if isinstance(sample.data, memoryview):
            return self.transform(S3Reader.from_sample(sample))
        return self.transform(sample)
