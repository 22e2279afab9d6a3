"""torch.distributed.checkpoint on object storage: ``StorageWriter`` and ``StorageReader``.

>>> import torch.distributed.checkpoint as dcp                         # doctest: +SKIP
>>> from s3dlio_torch.dcp import S3StorageReader, S3StorageWriter
>>> dcp.save(state, storage_writer=S3StorageWriter("us-east-1", "s3://bucket/ckpt/step-100"))
>>> dcp.load(state, storage_reader=S3StorageReader("us-east-1", "s3://bucket/ckpt/step-100"))

``S3StorageWriter(region, path, s3client_config=None, ...)`` and ``S3StorageReader(region,
path, ...)`` take s3torchconnector's arguments; ``StorageWriter(path)``/``StorageReader(path)``
are the same classes with the path first and the process-wide settings.

Torch's ``FileSystemWriter``/``FileSystemReader`` do the planning and the file format; only
their I/O is swapped for :class:`S3dlioFileSystem`. A directory is a key prefix (``mkdir``
does nothing); ``rename`` (used once, for ``.metadata``) is copy then delete. Loads merge the
ranges of a load plan that lie close together in one file into one ranged GET, and run those
GETs concurrently, bounded in count and bytes.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pathlib
import sys
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, cast

import torch
from torch.distributed._shard._utils import narrow_tensor_by_index
from torch.distributed.checkpoint.filesystem import (
    FileSystemBase,
    FileSystemReader,
    FileSystemWriter,
    _StoragePrefix,
)
from torch.distributed.checkpoint.planner import LoadItemType, LoadPlan, LoadPlanner, ReadItem, SavePlan
from torch.futures import Future

from s3dlio.buffers import BufferReader
from s3dlio.client import Client
from s3dlio.config import Config
from s3dlio.errors import ConfigError, InvalidUriError, NotFoundError, TransferError
from s3dlio.large import open_reader, open_writer
from s3dlio.ops import resolve
from s3dlio.parallel import iter_bounded
from s3dlio.uri import parse

from ._compat import ReaderConstructor, S3ClientConfig, client_config
from ._compat import reader_constructor as checked_reader_constructor
from .prefixes import (
    BinaryPrefixStrategy,
    DefaultPrefixStrategy,
    HexPrefixStrategy,
    NumericPrefixStrategy,
    RoundRobinPrefixStrategy,
    S3PrefixStrategyBase,
    checked_prefix,
)

__all__ = [
    "BinaryPrefixStrategy",
    "DefaultPrefixStrategy",
    "HexPrefixStrategy",
    "NumericPrefixStrategy",
    "RoundRobinPrefixStrategy",
    "S3FileSystem",
    "S3PrefixStrategyBase",
    "S3StorageReader",
    "S3StorageWriter",
    "S3dlioFileSystem",
    "StorageReader",
    "StorageWriter",
    "merge_reads",
]

# s3torchconnector's module paths (its examples import RoundRobinPrefixStrategy from
# ``s3torchconnector.dcp.s3_prefix_strategy``): the same names, with s3dlio_torch in front
sys.modules.setdefault(f"{__name__}.s3_prefix_strategy", sys.modules[S3PrefixStrategyBase.__module__])
sys.modules.setdefault(f"{__name__}.s3_file_system", sys.modules[__name__])

_SCHEMES = ("s3://", "az://", "file://", "direct://", "mem://")
MiB = 1 << 20


class S3dlioFileSystem(FileSystemBase):
    """DCP's file operations on any s3dlio URI (``s3://``, ``az://``, ``file://`` ...).

    ``config``: the settings its requests use (default: the process-wide ones, when used).
    """

    def __init__(self, config: Config | None = None) -> None:
        self.config = config

    @contextmanager
    def create_stream(self, path: str | os.PathLike[str], mode: str) -> Generator[io.IOBase, None, None]:
        uri = str(path)
        if mode == "wb":
            with open_writer(uri, config=self.config) as stream:  # tell() gives DCP each item's offset
                yield stream
        elif mode == "rb":
            with open_reader(uri, config=self.config) as stream:
                yield stream
        else:
            raise ValueError(f"create_stream {uri}: mode {mode!r}; only 'rb' and 'wb' are supported")

    def concat_path(self, path: str | os.PathLike[str], suffix: str) -> str:
        return f"{str(path).rstrip('/')}/{suffix}"

    def init_path(self, path: str | os.PathLike[str]) -> str:
        uri = str(path)
        if not self.validate_checkpoint_id(uri):
            raise InvalidUriError(
                f"checkpoint id {uri!r}: use s3://, az://, file:///abs/path, direct:// or mem://"
            )
        return uri.rstrip("/")

    def rename(self, path: str | os.PathLike[str], new_path: str | os.PathLike[str]) -> None:
        src, src_store = resolve(str(path), self.config)
        dst, dst_store = resolve(str(new_path), self.config)
        dst_store.put(dst.key, src_store.get(src.key))
        src_store.delete(src.key)

    def mkdir(self, path: str | os.PathLike[str]) -> None:
        """Nothing to do: a directory on object storage is a key prefix."""

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike[str]) -> bool:
        """Whether this file system takes ``checkpoint_id``: a URI of an s3dlio scheme, or any
        ``pathlib.Path``, as s3torchconnector answers (:meth:`init_path` then checks its text)."""
        if isinstance(checkpoint_id, pathlib.Path):
            return True
        if not isinstance(checkpoint_id, str) or not checkpoint_id.startswith(_SCHEMES):
            return False
        try:
            parse(checkpoint_id)
        except InvalidUriError:
            return False
        return True

    def exists(self, path: str | os.PathLike[str]) -> bool:
        parsed, store = resolve(str(path), self.config)
        try:
            store.head(parsed.key)
        except NotFoundError:
            return False
        return True

    def rm_file(self, path: str | os.PathLike[str]) -> None:
        parsed, store = resolve(str(path), self.config)
        store.delete(parsed.key)


class S3FileSystem(S3dlioFileSystem):
    """s3torchconnector's ``dcp.S3FileSystem(region, s3_client=None, s3client_config=None)``.

    ``s3_client``: an ``S3Client`` (from ``s3dlio_torch``) whose settings to use;
    ``reader_constructor`` is accepted as s3torchconnector's is (streams read whole files).
    """

    def __init__(
        self, region: str | None = None, s3_client: Any = None, s3client_config: S3ClientConfig | None = None,
        reader_constructor: ReaderConstructor | None = None, *, endpoint: str | None = None,
        config: Config | None = None, client: Client | None = None,
    ) -> None:  # fmt: skip
        checked_reader_constructor(reader_constructor)
        if s3_client is not None:
            config = getattr(s3_client, "config", None)
            if not isinstance(config, Config):
                raise ConfigError(f"S3FileSystem(s3_client={s3_client!r}): pass an S3Client from s3dlio_torch")
        super().__init__(client_config(region, endpoint, s3client_config, config, client, type(self).__name__))


class S3StorageWriter(FileSystemWriter):
    """DCP writer to ``path`` (``s3://bucket/ckpt/step-100``); s3torchconnector's arguments.

    ``region``/``s3client_config`` (and ``endpoint``, ``config``) apply to this writer's
    requests only; ``client`` (an :class:`s3dlio.Client`) gives all the settings instead. Other keywords as ``FileSystemWriter``: ``thread_count`` files per rank are
    written at once (``single_file_per_rank``); each is streamed as a multipart upload. Works
    with ``dcp.save`` and ``dcp.async_save``. ``prefix_strategy`` (:mod:`s3dlio_torch.prefixes`)
    names each rank's files under ``path``; the default is torch's ``__{rank}_``.
    """

    def __init__(
        self, region: str | None, path: str, s3client_config: S3ClientConfig | None = None,
        prefix_strategy: S3PrefixStrategyBase | None = None, thread_count: int = 1, *,
        endpoint: str | None = None, config: Config | None = None, client: Client | None = None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        if prefix_strategy is not None and not callable(prefix_strategy):
            raise ConfigError(
                f"{type(self).__name__}(prefix_strategy={prefix_strategy!r}): pass a prefix strategy "
                "(s3dlio_torch.dcp.HexPrefixStrategy(), ... or a subclass of S3PrefixStrategyBase)"
            )
        self.prefix_strategy = prefix_strategy or DefaultPrefixStrategy()
        checked_prefix(self.prefix_strategy(0), type(self).__name__)  # a bad strategy fails here, plainly
        kwargs["sync_files"] = False  # no fsync on object storage
        super().__init__(path, thread_count=thread_count, **kwargs)
        self.config = client_config(region, endpoint, s3client_config, config, client, type(self).__name__)
        self.fs = S3dlioFileSystem(self.config)  # type: ignore[assignment]
        self.path = self.fs.init_path(path)

    def _prefixed(self, plan: SavePlan, rank: int) -> SavePlan:
        prefix = checked_prefix(self.prefix_strategy(rank), type(self).__name__)
        return dataclasses.replace(plan, storage_data=_StoragePrefix(prefix))

    def prepare_local_plan(self, plan: SavePlan) -> SavePlan:
        plan = super().prepare_local_plan(plan)
        if self.rank is not None and not self.use_collectives:  # no global plan: each rank names its own
            plan = self._prefixed(plan, self.rank)
        return plan

    def prepare_global_plan(self, plans: list[SavePlan]) -> list[SavePlan]:
        return [self._prefixed(plan, rank) for rank, plan in enumerate(plans)]

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike[str]) -> bool:
        return S3dlioFileSystem.validate_checkpoint_id(checkpoint_id)


class StorageWriter(S3StorageWriter):
    """:class:`S3StorageWriter` with the path first: ``StorageWriter("s3://bucket/ckpt/step-100")``."""

    def __init__(self, path: str, *, region: str | None = None, **kwargs: Any) -> None:
        super().__init__(region, path, **kwargs)


@dataclass
class Span:
    """One ranged GET serving the read items whose bytes lie inside ``[start, end)``."""

    path: str
    start: int
    end: int
    items: list[tuple[ReadItem, int, int]] = field(default_factory=list)  # (item, offset, length)


def merge_reads(
    reads: list[tuple[str, int, int, ReadItem]], max_gap: int | float = MiB, max_span: int = 64 * MiB
) -> list[Span]:
    """Group ``(path, offset, length, item)`` into spans: same file, gaps <= ``max_gap``,
    each span at most ``max_span`` bytes (unless one item alone is larger)."""
    spans: list[Span] = []
    for path, offset, length, item in sorted(reads, key=lambda r: (r[0], r[1])):
        end = offset + length
        last = spans[-1] if spans else None
        if (
            last is not None
            and last.path == path
            and offset <= last.end + max_gap
            and max(last.end, end) - last.start <= max_span
        ):
            last.end = max(last.end, end)
        else:
            last = Span(path, offset, end)
            spans.append(last)
        last.items.append((item, offset, length))
    return spans


class S3StorageReader(FileSystemReader):
    """DCP reader from ``path``: merged ranged GETs, issued concurrently; s3torchconnector's arguments.

    ``region``/``s3client_config`` (and ``endpoint``, ``config``) apply to this reader's
    requests only; ``client`` (an :class:`s3dlio.Client`) gives all the settings instead.
    Loads always read the ranges the plan needs, merged: ``max_gap`` bytes of unneeded data
    are worth reading to save a request (default 1 MiB, or ``max_gap_size`` of
    ``reader_constructor=S3ReaderConstructor.dcp_optimized(...)``; other constructors are
    accepted as s3torchconnector's are); ``max_span``: the largest merged GET; ``max_in_flight``: concurrent
    GETs (default: the configured value, capped so at most ``max_bytes_in_flight`` are buffered).
    """

    def __init__(
        self, region: str | None, path: str, s3client_config: S3ClientConfig | None = None,
        reader_constructor: ReaderConstructor | None = None, *, endpoint: str | None = None,
        config: Config | None = None, client: Client | None = None, max_in_flight: int | None = None,
        max_gap: int | float | None = None, max_span: int = 64 * MiB, **kwargs: Any,
    ) -> None:  # fmt: skip
        constructor = checked_reader_constructor(reader_constructor)
        if max_gap is None:
            max_gap = constructor.max_gap if constructor.kind == "dcp_optimized" else MiB
        super().__init__(path, **kwargs)
        config = self.config = client_config(region, endpoint, s3client_config, config, client, type(self).__name__)
        self.fs = S3dlioFileSystem(config)  # type: ignore[assignment]
        self.path = self.fs.init_path(path)
        self.max_gap = max_gap
        self.max_span = max_span
        in_flight = max_in_flight or config.max_in_flight
        self.max_in_flight = max(1, min(in_flight, config.max_bytes_in_flight // max(max_span, 1)))

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike[str]) -> bool:
        return S3dlioFileSystem.validate_checkpoint_id(checkpoint_id)

    def read_data(self, plan: LoadPlan, planner: LoadPlanner) -> Future[None]:
        reads = []
        for item in plan.items:
            info = self.storage_data[item.storage_index]
            reads.append((info.relative_path, info.offset, info.length, item))
        spans = merge_reads(reads, self.max_gap, self.max_span)
        for span, data in iter_bounded(self._fetch, spans, self.max_in_flight):
            if isinstance(data, BaseException):
                raise data
            view = memoryview(data).cast("B")
            for item, offset, length in span.items:
                piece = view[offset - span.start : offset - span.start + length]
                self._deliver(item, piece, planner)
        future: Future[None] = Future()
        future.set_result(None)
        return future

    def _fetch(self, span: Span) -> Any:
        parsed, store = resolve(f"{str(self.path).rstrip('/')}/{span.path}", self.config)
        data = store.get_range(parsed.key, span.start, span.end)
        if memoryview(data).nbytes != span.end - span.start:
            raise TransferError(
                f"dcp load {parsed}: bytes {span.start}-{span.end} asked, {memoryview(data).nbytes} came; "
                "the checkpoint file is shorter than its .metadata says"
            )
        return data

    def _deliver(self, item: ReadItem, piece: memoryview, planner: LoadPlanner) -> None:
        """Hand one item's bytes to the planner, as ``FileSystemReader.read_data`` does."""
        info = self.storage_data[item.storage_index]
        stream: Any = self.transforms.transform_load_stream(
            item, info.transform_descriptors or (), cast(IO[bytes], BufferReader(piece))
        )
        if item.type == LoadItemType.BYTE_IO:
            planner.load_bytes(item, io.BytesIO(stream.read(-1)))
            return
        if not stream.seekable():
            stream = io.BytesIO(stream.read(-1))
        tensor = torch.load(stream, map_location="cpu", weights_only=True)
        tensor = narrow_tensor_by_index(tensor, item.storage_offsets, item.lengths)
        target = planner.resolve_tensor(item).detach()
        if target.size() != tensor.size():
            raise ValueError(
                f"dcp load {self.path}: {item.storage_index} has size {tensor.size()}, expected {target.size()}"
            )
        target.copy_(tensor)
        planner.commit_tensor(item, target)


class StorageReader(S3StorageReader):
    """:class:`S3StorageReader` with the path first: ``StorageReader("s3://bucket/ckpt/step-100")``."""

    def __init__(self, path: str, *, region: str | None = None, **kwargs: Any) -> None:
        super().__init__(region, path, **kwargs)
