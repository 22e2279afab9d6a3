"""What users call for large objects: streaming writer and reader, ``get_into``.

See ``docs/large-objects.md``. Every function resolves its URI like :mod:`s3dlio.ops`
(op-logged when the op-log is on) and works on every backend: ``s3://``, ``az://``,
``file://``, ``direct://`` and ``mem://``.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from . import _check, _parallel, ranged
from .errors import InvalidArgumentError, InvalidUriError
from .ops import _in_flight, _resolve_all, resolve
from .reader import ObjectReader
from .writer import ObjectWriter, writer_for

if TYPE_CHECKING:
    from collections.abc import Buffer, Iterable

    from .config import Config

__all__ = ["AsyncObjectWriter", "ObjectReader", "ObjectWriter", "get_into", "get_into_async", "get_many_into",
           "get_many_into_async", "open_reader", "open_writer", "open_writer_async"]  # fmt: skip


def open_writer(
    uri: str,
    *,
    part_size: int | None = None,
    max_in_flight: int | None = None,
    content_type: str | None = None,
    verify: bool | None = None,
    config: Config | None = None,
) -> ObjectWriter:
    """A binary file that writes the object ``uri`` in parts; the object appears on ``close``.

    ``part_size`` (default ``S3DLIO_PART_SIZE``, 8 MiB; S3 raises it to 5 MiB at least) and
    ``max_in_flight`` (default 8) bound memory at ``(max_in_flight + 1) * part_size``.
    ``verify`` (default ``S3DLIO_PUT_VERIFY``) checks size and MD5 ETag after completing.
    ``config`` overrides the process-wide settings for this object (region, endpoint, ...).
    Use it as a context manager: an exception inside the block aborts the upload::

        with s3dlio.open_writer("s3://bucket/big.bin") as w:
            for chunk in chunks:
                w.write(chunk)
    """
    uri = _check.uri("open_writer", uri)
    part_size = _check.optional_integer("open_writer", "part_size", part_size, 1)
    max_in_flight = _check.in_flight("open_writer", max_in_flight)
    _check.optional_str("open_writer", "content_type", content_type)
    _check.boolean("open_writer", "verify", verify, optional=True)
    _check.config("open_writer", config)
    parsed, store = resolve(uri, config)
    if parsed.is_prefix:
        raise InvalidUriError(
            f"open_writer {uri}: the URI names a prefix; add an object name after the last '/'"
        )
    return writer_for(uri, store, parsed.key, part_size=part_size, max_in_flight=max_in_flight,
                      content_type=content_type, verify=verify)  # fmt: skip


class AsyncObjectWriter:
    """Async twin of :class:`ObjectWriter`: each method awaits the sync one on a worker thread."""

    def __init__(self, writer: ObjectWriter) -> None:
        self.writer = writer

    async def write(self, data: Buffer) -> int:
        return await _parallel.run_async(self.writer.write, data)

    async def reserve(self, n: int | None = None) -> memoryview:
        return await _parallel.run_async(self.writer.reserve, n)

    async def commit(self, n: int) -> None:
        await _parallel.run_async(self.writer.commit, n)

    def tell(self) -> int:
        return self.writer.tell()

    async def close(self) -> None:
        await _parallel.run_async(self.writer.close)

    async def abort(self) -> None:
        await _parallel.run_async(self.writer.abort)

    async def __aenter__(self) -> AsyncObjectWriter:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await _parallel.run_async(self.writer.__exit__, kind, exc, tb)


def open_writer_async(
    uri: str,
    *,
    part_size: int | None = None,
    max_in_flight: int | None = None,
    content_type: str | None = None,
    verify: bool | None = None,
    config: Config | None = None,
) -> AsyncObjectWriter:
    """Async twin of :func:`open_writer`: ``async with open_writer_async(uri) as w: await w.write(b)``."""
    return AsyncObjectWriter(open_writer(uri, part_size=part_size, max_in_flight=max_in_flight,
                                         content_type=content_type, verify=verify, config=config))  # fmt: skip


def open_reader(
    uri: str, *, read_ahead: int = 2, block_size: int | None = None, config: Config | None = None
) -> ObjectReader:
    """A seekable binary file over the object ``uri``, read in blocks with background read-ahead.

    ``block_size`` defaults to ``S3DLIO_PART_SIZE`` (8 MiB); ``read_ahead`` blocks are fetched
    ahead while reads are sequential (0 turns that off). One HEAD at open gives the size.
    ``config`` overrides the process-wide settings for this object.
    """
    uri = _check.uri("open_reader", uri)
    read_ahead = _check.integer("open_reader", "read_ahead", read_ahead, 0)
    block_size = _check.optional_integer("open_reader", "block_size", block_size, 1)
    _check.config("open_reader", config)
    parsed, store = resolve(uri, config)
    return ObjectReader(uri, store, parsed.key, config=store.config, block_size=block_size,
                        read_ahead=read_ahead)  # fmt: skip


def get_into(uri: str, buffer: Buffer, *, config: Config | None = None) -> int:
    """Fill ``buffer`` (a bytearray, numpy array, ``tensor.numpy()``...) with the object; returns its size.

    Objects of ``S3DLIO_RANGE_THRESHOLD`` (32 MiB) or more arrive in parallel ranges, each
    copied straight into its place. ValueError when the object does not fit (naming its size
    and the buffer's); TypeError when ``buffer`` is not a writable, contiguous buffer.
    """
    uri = _check.uri("get_into", uri)
    buffer = _check.buffer("get_into", "buffer", buffer, writable=True)
    parsed, store = resolve(uri, _check.config("get_into", config))
    return ranged.get_into(store, parsed.key, buffer, config=store.config, uri=uri)


async def get_into_async(uri: str, buffer: Buffer, *, config: Config | None = None) -> int:
    """Async twin of :func:`get_into`."""
    return await _parallel.run_async(get_into, uri, buffer, config=config)


def get_many_into(
    uris: Iterable[str], buffers: Iterable[Buffer], max_in_flight: int | None = None, *,
    return_exceptions: bool = False, config: Config | None = None,
) -> list[int | BaseException]:  # fmt: skip
    """Fill ``buffers[i]`` with the object ``uris[i]``, many at once; returns each object's size.

    For callers that own their memory (``buffers`` may be the rows of one 2-D numpy array):
    each reply is streamed into its buffer, nothing is allocated per object, and buffers reused
    from call to call cost no page faults; a fresh process pays only for the buffers, in huge
    pages where numpy asked for them. Failures as in :func:`s3dlio.get_many`; a buffer too
    small for its object is an InvalidArgumentError in its slot.
    """
    uris = _check.uris("get_many_into", uris)
    if isinstance(buffers, bytearray | memoryview) or getattr(buffers, "ndim", 2) < 2:  # one buffer, not rows
        _check.fail_type("get_many_into", "buffers", "an iterable of writable buffers", buffers,
                         "wrap one buffer in a list")  # fmt: skip
    items = list(_check.iterable("get_many_into", "buffers", buffers, "writable buffers", "pass [buffer, ...]"))
    views = [_check.buffer("get_many_into", f"buffers[{i}]", b, writable=True) for i, b in enumerate(items)]
    if len(views) != len(uris):
        raise InvalidArgumentError(f"get_many_into: {len(views)} buffers for {len(uris)} URIs; "
                                   "pass one buffer per URI, in the same order")  # fmt: skip
    workers = _in_flight(_check.in_flight("get_many_into", max_in_flight), config)
    _check.boolean("get_many_into", "return_exceptions", return_exceptions)
    targets = _resolve_all(uris, _check.config("get_many_into", config))

    def one(i: int) -> int:
        parsed, store = targets[i]
        return ranged.get_into(store, parsed.key, views[i], config=store.config, uri=uris[i])

    return _parallel.map_bounded(one, range(len(uris)), workers, return_exceptions=return_exceptions)


async def get_many_into_async(
    uris: Iterable[str], buffers: Iterable[Buffer], max_in_flight: int | None = None, *,
    return_exceptions: bool = False, config: Config | None = None,
) -> list[int | BaseException]:  # fmt: skip
    """Async twin of :func:`get_many_into`."""
    return await _parallel.run_async(get_many_into, uris, buffers, max_in_flight,
                                     return_exceptions=return_exceptions, config=config)  # fmt: skip
