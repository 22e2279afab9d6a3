"""``S3IterableDataset`` and ``S3MapDataset`` with s3torchconnector's names, on :mod:`s3dlio.loader`.

Swapping ``from s3torchconnector import ...`` for ``from s3dlio_torch import ...`` is enough
for common code. Beyond it: exact-once sharding over ranks and workers (on by default),
seeded per-epoch shuffling, bounded prefetch, skip-on-error, and resume
(``state_dict``/``load_state_dict``, picked up per worker by torchdata's
``StatefulDataLoader``). Datasets pickle as settings plus a compact key list; stores open
in each worker on first use. The parent lists without starting the fast engine (in a forked
child, see s3dlio.loader.sources), so workers forked from it still get the fast engine.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Self

import torch.utils.data

from s3dlio.client import Client
from s3dlio.config import Config
from s3dlio.errors import ConfigError
from s3dlio.loader import (
    Fetcher,
    KeyFileSource,
    Loader,
    MapSource,
    PrefixSource,
    UriListSource,
    tune_worker_process,
)
from s3dlio.loader.samples import Sample, note_transform_error
from s3dlio.loader.sources import KeySource

from ._compat import ReaderConstructor, S3ClientConfig, client_config, reader_constructor, with_scheme
from .reader import RangedS3Reader, ToReader, identity

__all__ = ["S3IterableDataset", "S3MapDataset"]


@dataclasses.dataclass(frozen=True)
class _KeysOnly(Fetcher):
    """The loader's fetch for range-based items: nothing; each item reads its own ranges."""

    def __call__(self, uri: str) -> bytes:
        return b""


class _SharedEpoch:
    """The epoch, in shared memory: ``set_epoch`` in the parent reaches persistent workers.

    It travels to workers by inheritance (fork, or pickling while a worker is spawned);
    any other pickling (copy, save) keeps the plain value.
    """

    def __init__(self, value: int = 0) -> None:
        self._shared = multiprocessing.RawValue("q", value)

    @property
    def value(self) -> int:
        return int(self._shared.value)

    @value.setter
    def value(self, epoch: int) -> None:
        self._shared.value = int(epoch)

    def __getstate__(self) -> dict[str, Any]:
        from multiprocessing.context import get_spawning_popen

        if get_spawning_popen() is not None:
            return {"shared": self._shared}
        return {"value": self.value}

    def __setstate__(self, state: dict[str, Any]) -> None:
        shared = state.get("shared")
        self._shared = shared if shared is not None else multiprocessing.RawValue("q", state["value"])


class _FromSources:
    """The ways to name a dataset's objects, shared by both datasets (s3torchconnector's names)."""

    def __init__(self, source: KeySource, **kwargs: Any) -> None:  # pragma: no cover - typing only
        raise NotImplementedError

    @classmethod
    def from_prefix(
        cls, s3_uri: str, *, pattern: str | None = None, key_cache: bool | str = True, refresh: bool = False,
        region: str | None = None, endpoint: str | None = None, config: Config | None = None,
        client: Client | None = None, **kwargs: Any,
    ) -> Self:  # fmt: skip
        """Every object whose key starts with ``s3_uri``'s (as in s3torchconnector: ``.`` or ``+``
        are just characters; ``pattern=`` takes a regex), listed once per dataset built into a
        key file of this run (``key_cache=False``: in memory; a path: a key file later runs
        reuse until ``refresh=True``). Not listed again per epoch, unlike s3torchconnector's
        iterable dataset: forked workers inherit the list. Folder markers (keys ending in
        ``/``) are not items. A URI without a scheme is refused."""
        with_scheme(s3_uri, f"{cls.__name__}.from_prefix")
        settings = client_config(region, endpoint, kwargs.get("s3client_config"), config, client, cls.__name__)
        src = PrefixSource(s3_uri, pattern, True, key_cache, refresh, settings, plain=True)
        return cls(src, region=region, endpoint=endpoint, config=config, client=client, **kwargs)

    @classmethod
    def from_objects(cls, object_uris: str | Iterable[str], **kwargs: Any) -> Self:
        """The objects ``object_uris`` names, in that order (before any shuffling); each needs its scheme."""
        uris = (object_uris,) if isinstance(object_uris, str) else tuple(object_uris)
        for uri in uris:
            with_scheme(uri, f"{cls.__name__}.from_objects")
        return cls(UriListSource(uris), **kwargs)

    @classmethod
    def from_key_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> Self:
        """The objects a key file lists (one URI per line; local, or itself an object)."""
        settings = client_config(kwargs.get("region"), kwargs.get("endpoint"), kwargs.get("s3client_config"),
                                 kwargs.get("config"), kwargs.get("client"), cls.__name__)  # fmt: skip
        return cls(KeyFileSource(os.fspath(path), settings), **kwargs)


class S3IterableDataset(_FromSources, torch.utils.data.IterableDataset):  # type: ignore[type-arg]
    """An iterable dataset of objects: build it with :meth:`from_prefix` or :meth:`from_objects`.

    Items are ``transform(S3Reader)`` (default: the reader): the object fetched whole and
    prefetched (``reader_constructor=S3ReaderConstructor.sequential()``, the default), or a
    :class:`~s3dlio_torch.reader.RangedS3Reader` that reads only the ranges asked for
    (``S3ReaderConstructor.range_based()``). ``region``/``endpoint``/``s3client_config``
    (:class:`~s3dlio_torch.S3ClientConfig`) override s3dlio's settings for this dataset only;
    ``client`` (an :class:`s3dlio.Client`) gives all of them instead.
    ``enable_sharding`` (default
    True, unlike s3torchconnector) splits the objects over ranks (``rank``/``world_size``,
    else torch.distributed / RANK / JAX, read when the dataset is built) and DataLoader
    workers, each object exactly once per epoch (padded to equal counts; ``uneven="drop"``
    cuts instead). Other keywords go to :class:`s3dlio.loader.Loader`: ``shuffle``, ``seed``,
    ``samples``, ``shuffle_group``, ``block``, ``max_in_flight``, ``max_bytes_in_flight``,
    ``in_order``, ``on_error``, ``retries``, ``hedge_after``, ``uneven``.
    """

    def __init__(
        self,
        source: KeySource | Sequence[str],
        *,
        region: str | None = None,
        endpoint: str | None = None,
        transform: Callable[[Any], Any] = identity,
        enable_sharding: bool = True,
        rank: int | None = None,
        world_size: int | None = None,
        config: Config | None = None,
        s3client_config: S3ClientConfig | None = None,
        reader_constructor: ReaderConstructor | None = None,
        client: Client | None = None,
        **options: Any,
    ) -> None:
        self._region, self._endpoint = region, endpoint
        self._enable_sharding = enable_sharding
        if not enable_sharding:
            rank, world_size = 0, 1
        settings = client_config(region, endpoint, s3client_config, config, client, "S3IterableDataset")
        constructor = reader_constructor_checked(reader_constructor, options.get("samples", "object"))
        self._loader = Loader(
            source, config=settings, transform=ToReader(transform, constructor, settings),
            rank=rank, world_size=world_size, **options,
        )  # fmt: skip
        if constructor.ranged:
            reading = self._loader.reading
            self._loader.reading = dataclasses.replace(reading, fetcher=_KeysOnly(settings))
        self._epoch = _SharedEpoch()

    @property
    def region(self) -> str | None:
        return self._region

    @property
    def endpoint(self) -> str | None:
        return self._endpoint

    @property
    def loader(self) -> Loader:
        """The s3dlio loader behind this dataset (its ``skipped``, ``keys``, ``plan``)."""
        return self._loader

    def set_epoch(self, epoch: int) -> None:
        """Order of the next epochs (call before each; reaches persistent workers too)."""
        self._epoch.value = epoch

    def __len__(self) -> int:
        """Objects this rank reads per epoch (``samples="object"``, ``enable_sharding=True``)."""
        if self._loader.reading.samples != "object":
            raise TypeError("len() of a record dataset is unknown until its objects are read")
        if not self._enable_sharding:  # a length would make Lightning end the epoch after one worker's share
            raise TypeError(
                "len() is unknown with enable_sharding=False: every DataLoader worker reads every object, "
                "so an epoch yields num_workers times the objects (s3torchconnector's dataset has no len() either)"
            )
        return len(self._loader)

    def __iter__(self) -> Iterator[Any]:
        worker_id, num_workers = (0, 1)
        info = torch.utils.data.get_worker_info()
        if info is not None:
            tune_worker_process(self._loader.config)
            if self._enable_sharding:
                worker_id, num_workers = info.id, info.num_workers
        epoch = self._loader.resume_epoch
        return self._loader.iterate(worker_id, num_workers, self._epoch.value if epoch is None else epoch)

    # -- resume (torchdata StatefulDataLoader calls these in each worker) ---------------
    def state_dict(self) -> dict[str, Any]:
        """This process's position: per worker inside a DataLoader worker, else rank-level."""
        return self._loader.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume the next iteration from ``state`` (checked against this dataset)."""
        self._loader.load_state_dict(state)

    def state_at(self, consumed: int, epoch: int | None = None) -> dict[str, Any]:
        """Rank-level state after ``consumed`` objects of ``epoch`` (default: the current epoch).

        Exact for any number of workers when ``block`` equals the DataLoader's ``batch_size``.
        """
        return self._loader.state_at(consumed, self._epoch.value if epoch is None else epoch)

    @property
    def skipped(self) -> int:
        """Objects or samples skipped in this process (``on_error="skip"``)."""
        return self._loader.skipped


class S3MapDataset(_FromSources, torch.utils.data.Dataset):  # type: ignore[type-arg]
    """A map-style dataset of objects: ``ds[i]`` is ``transform(S3Reader of object i)``.

    Keys are listed when the dataset is built, without starting the fast engine here, so
    forked DataLoader workers keep it. Use a sampler (``DistributedSampler``,
    ``RandomSampler``) to shard and shuffle. ``region``, ``endpoint``, ``s3client_config``,
    ``client`` and ``reader_constructor`` as for :class:`S3IterableDataset`.
    """

    def __init__(
        self,
        source: KeySource | Sequence[str],
        *,
        region: str | None = None,
        endpoint: str | None = None,
        transform: Callable[[Any], Any] = identity,
        config: Config | None = None,
        retries: int = 2,
        s3client_config: S3ClientConfig | None = None,
        reader_constructor: ReaderConstructor | None = None,
        client: Client | None = None,
    ) -> None:
        self._region, self._endpoint = region, endpoint
        settings = client_config(region, endpoint, s3client_config, config, client, "S3MapDataset")
        self._constructor = reader_constructor_checked(reader_constructor, "object")
        self._transform = transform
        self._config = settings
        self._source = MapSource(
            source, config=settings, transform=ToReader(transform, self._constructor, settings), retries=retries
        )

    @property
    def region(self) -> str | None:
        return self._region

    @property
    def endpoint(self) -> str | None:
        return self._endpoint

    def uri(self, index: int) -> str:
        """URI of item ``index``."""
        return self._source.uri(index)

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> Any:
        if torch.utils.data.get_worker_info() is not None:
            tune_worker_process(self._source.fetcher.config)
        if self._constructor.ranged:  # nothing fetched here: the item reads its own ranges
            uri = self._source.uri(index)
            try:
                return self._transform(RangedS3Reader(uri, self._config, self._constructor.buffer_size))
            except Exception as exc:  # its own type, named as the loader's transform errors are
                note_transform_error(Sample(uri, memoryview(b"")), self._transform, exc)
                raise
        return self._source[index]


def reader_constructor_checked(value: ReaderConstructor | None, samples: Any) -> ReaderConstructor:
    """The reader constructor to use; range-based reads serve whole objects only."""
    constructor = reader_constructor(value, "S3IterableDataset and S3MapDataset")
    if constructor.ranged and samples != "object":
        raise ConfigError(
            f"reader_constructor=range_based() with samples={samples!r}: records need the whole object; "
            "use S3ReaderConstructor.sequential()"
        )
    return constructor
