"""``torch.save``/``torch.load`` on object storage, s3torchconnector's ``S3Checkpoint``, and
:class:`CheckpointManager`: torch state on the sharded, checksummed core store.

>>> import s3dlio_torch                                                 # doctest: +SKIP
>>> s3dlio_torch.save(model.state_dict(), "s3://bucket/model.pt")      # streamed, never whole
>>> model.load_state_dict(s3dlio_torch.load("s3://bucket/model.pt"))
"""

from __future__ import annotations

import copy
import functools
import io
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any, cast

import torch
from torch.utils._pytree import tree_map

from s3dlio.checkpoint import AsyncSave, CheckpointStore, Manifest
from s3dlio.client import Client, settings_of
from s3dlio.config import Config
from s3dlio.large import ObjectReader, ObjectWriter, open_reader, open_writer
from s3dlio.ops import resolve

from . import _inplace
from ._compat import ReaderConstructor, S3ClientConfig, client_config, with_scheme
from ._compat import reader_constructor as checked_reader_constructor
from .reader import S3Reader, seek_position

if TYPE_CHECKING:
    from collections.abc import Buffer

__all__ = ["CheckpointManager", "CheckpointReader", "S3Checkpoint", "load", "save"]


def save(
    obj: Any, uri: str, *, config: Config | None = None, client: Client | None = None, **kwargs: Any
) -> None:
    """``torch.save(obj)`` streamed to ``uri`` through the multipart writer.

    Nothing is written if serialising fails. ``client`` (or ``config``) gives s3dlio's settings
    for this object; ``kwargs`` go to :func:`torch.save`.
    """
    with open_writer(uri, config=settings_of(client, config, where=f"save {uri!r}")) as stream:
        torch.save(obj, cast(IO[bytes], stream), **kwargs)


def load(
    uri: str, map_location: Any = None, *, config: Config | None = None, client: Client | None = None,
    **kwargs: Any,
) -> Any:  # fmt: skip
    """``torch.load`` of ``uri``. ``kwargs`` go to :func:`torch.load` (``weights_only`` keeps
    torch's default, True); ``client`` (or ``config``) gives s3dlio's settings.

    The object is read once, by parallel ranged GETs, into one buffer, and the tensors'
    storages are slices of it, as with ``torch.load(path, mmap=True)``: no second copy, so
    peak memory is the object's size. The buffer is freed when the last tensor on it is;
    ``map_location`` other than the CPU copies each one to its device and frees it after. The streaming
    reader (:meth:`S3Checkpoint.reader`) reads in blocks into storages torch allocates.
    """
    config = settings_of(client, config, where=f"load {uri!r}")
    if not _inplace.available():
        with open_reader(uri, config=config) as stream:
            return torch.load(cast(IO[bytes], stream), map_location=map_location, **kwargs)
    return _inplace.load_buffer(_inplace.fetch(uri, config), uri, map_location, **kwargs)


class S3Checkpoint:
    """Drop-in for s3torchconnector's ``S3Checkpoint``: file-likes for ``torch.save``/``load``.

    >>> ckpt = S3Checkpoint(region="us-east-1")                          # doctest: +SKIP
    >>> with ckpt.writer("s3://bucket/epoch1.pt") as f:
    ...     torch.save(model.state_dict(), f)
    >>> with ckpt.reader("s3://bucket/epoch1.pt") as f:
    ...     state = torch.load(f)

    Any scheme s3dlio serves works (``az://``, ``file:///abs/path``); a URI without one
    (``bucket/key``) raises ValueError, as in s3torchconnector. ``region``, ``endpoint`` and
    ``s3client_config`` (:class:`~s3dlio_torch.S3ClientConfig`: part size, attempts) apply to
    this object's requests only, over the process-wide settings, which stay as they are;
    ``config`` replaces the process-wide settings as the base; ``client`` (an
    :class:`s3dlio.Client`) gives all the settings instead. ``reader_constructor``:
    ``sequential()`` (default) reads ahead in ``part_size`` blocks while reads run in order;
    ``range_based(buffer_size)`` reads ``buffer_size`` blocks with no read-ahead.
    """

    def __init__(
        self,
        region: str | None = None,
        endpoint: str | None = None,
        s3client_config: S3ClientConfig | None = None,
        reader_constructor: ReaderConstructor | None = None,
        *,
        config: Config | None = None,
        client: Client | None = None,
    ) -> None:
        self.region = region
        self.endpoint = endpoint
        self.config = client_config(region, endpoint, s3client_config, config, client, "S3Checkpoint")
        self.reader_constructor = checked_reader_constructor(reader_constructor, type(self).__name__)

    def writer(self, uri: str) -> ObjectWriter:
        """A write-only stream: the object exists once it is closed; ``abort()`` discards it."""
        return open_writer(with_scheme(uri, "S3Checkpoint.writer"), config=self.config)

    def reader(self, uri: str) -> CheckpointReader:
        """A seekable read stream over the object (``readinto`` supported)."""
        with_scheme(uri, "S3Checkpoint.reader")
        ranged = self.reader_constructor.ranged
        block = max(4096, self.reader_constructor.buffer_size) if ranged else None
        return CheckpointReader(uri, self.config, block_size=block, read_ahead=0 if ranged else 2)


class CheckpointReader(ObjectReader, S3Reader):
    """:meth:`S3Checkpoint.reader`'s stream: s3dlio's seekable reader as an ``S3Reader``
    (``bucket``, ``key``; seeks past the end stop there)."""

    def __init__(self, uri: str, config: Config, *, block_size: int | None, read_ahead: int) -> None:
        parsed, store = resolve(uri, config)
        super().__init__(uri, store, parsed.key, config=store.config, block_size=block_size,
                         read_ahead=read_ahead)  # fmt: skip
        self.uri = uri
        self.bucket = parsed.bucket  # parsed already: S3Reader would parse again on first use
        self.key = parsed.key

    #: What the last ``readinto`` raised, until ``read`` raises it (see :meth:`read`).
    _failure: Exception | None = None

    def readinto(self, buffer: Buffer) -> int:
        try:
            return super().readinto(buffer)
        except Exception as exc:
            self._failure = exc
            raise

    def read(self, size: int | None = -1) -> bytes:
        """Also carries a failed ``readinto``'s error through ``torch.load``: torch's zip reader
        (a C++ adapter) calls ``readinto`` and, when it raises, looks ``read`` up with that
        error still pending. Python's attribute lookup then drops the error and, unless
        ``read`` is in the object's own class, reports "no attribute 'read'". So ``read`` is
        defined here and raises what ``readinto`` raised, once; torch.load raises that."""
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure
        try:
            return super().read(size)
        finally:
            self._failure = None  # raised by read itself already (it reads through readinto)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return super().seek(seek_position(self.uri, offset, whence, self.tell(), self.size))

    def prefetch(self) -> None:
        """Start reading ahead from the current position now (``sequential()``), so the next
        read need not wait for its GET; ``range_based()`` readers fetch only what reads ask."""
        self._check_open()
        self._last_end = self._pos  # reads continue from here: the read-ahead starts at it
        self._moved(self._pos, 0)


def _torch_save(obj: Any, stream: io.BufferedIOBase) -> None:
    torch.save(obj, cast(IO[bytes], stream))


def stage(obj: Any) -> Any:
    """A private CPU copy of ``obj``: tensors cloned, other leaves deep-copied."""

    def one(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            return x.detach().to("cpu", copy=True)
        return copy.deepcopy(x)

    return tree_map(one, obj)


class CheckpointManager:
    """Torch state (``{"model": sd, "optim": sd}``) on :class:`~s3dlio.checkpoint.CheckpointStore`.

    Each entry is one shard per rank, streamed through ``torch.save``; loads verify every
    checksum before deserialising anything. ``store_kwargs`` go to ``CheckpointStore``
    (``keep_last``, ``keep_every``, ``spread``, ``rank``, ``world_size``, ``client``, ...).
    """

    def __init__(self, uri: str, **store_kwargs: Any) -> None:
        store_kwargs.setdefault("framework", "torch")
        self.store = CheckpointStore(uri, **store_kwargs)

    def save(
        self, step: int, state: Mapping[str, Any], metadata: Mapping[str, Any] | None = None
    ) -> Manifest | None:
        """Save ``state`` as checkpoint ``step``; the manifest on rank 0, None elsewhere."""
        return self.store.save(step, self._shards(state), metadata)

    def save_async(
        self, step: int, state: Mapping[str, Any], metadata: Mapping[str, Any] | None = None
    ) -> AsyncSave:
        """Copy ``state`` to CPU memory and return; serialise and upload in the background.

        Training may change the tensors as soon as this returns. Errors come from
        :meth:`wait` or the next save.
        """
        self.store.wait()
        staged = {name: stage(obj) for name, obj in state.items()}
        return self.store.save_async(step, self._shards(staged), metadata)

    def wait(self) -> Manifest | None:
        """Wait for the async save in flight; raise its error if it failed."""
        return self.store.wait()

    def load(
        self, step: int | None = None, *, rank: int | None = None, map_location: Any = None, **kwargs: Any
    ) -> dict[str, Any]:
        """Every entry of one rank's state (default: latest step, this rank), verified, or an error."""
        buffers = self.store.load(step, rank=rank)
        return {
            name: _inplace.load_buffer(buf, name, map_location, **kwargs) for name, buf in buffers.items()
        }

    def latest_step(self) -> int | None:
        return self.store.latest_step()

    def steps(self) -> list[int]:
        return self.store.steps()

    @staticmethod
    def _shards(state: Mapping[str, Any]) -> dict[str, Any]:
        return {name: functools.partial(_torch_save, obj) for name, obj in state.items()}
