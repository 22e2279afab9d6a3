"""JAX input pipelines on s3dlio: a Grain data source and a per-process iterable of numpy arrays.

- :class:`S3DataSource`: Grain's ``RandomAccessDataSource`` (``len``, ``[i]``, batched
  ``_getitems``) over the objects of a prefix, a URI list or a key file. It pickles as
  settings plus a compact key list, so Grain's worker processes open their own stores.
- :class:`S3Iterable`: :class:`s3dlio.loader.Loader` sharded by ``jax.process_index()``,
  yielding numpy arrays (or batches, or global ``jax.Array`` batches with ``sharding=``),
  with seeded shuffling, prefetch and ``state_dict()`` resume.

Decoders turn a :class:`~s3dlio.loader.Sample` into an item: :func:`to_bytes` (Grain's
convention for record sources), :func:`to_array` (a zero-copy ``uint8`` view) and
:func:`load_npy` (a ``.npy`` object, zero-copy).
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Self, SupportsIndex

import numpy as np

from s3dlio.client import Client, settings_of
from s3dlio.config import Config, default_config
from s3dlio.errors import ConfigError
from s3dlio.formats.npy import read_npy
from s3dlio.loader import KeyFileSource, Loader, MapSource, PrefixSource, Sample, UriListSource, batched
from s3dlio.loader.sources import KeySource

__all__ = ["S3DataSource", "S3Iterable", "load_npy", "stack", "to_array", "to_bytes"]

Source = KeySource | Sequence[str]


# -- decoders (module level: they pickle into Grain's worker processes) ------------------------
def to_bytes(sample: Sample) -> Any:
    """The object as ``bytes`` (what Grain's record sources return); other samples as is."""
    return bytes(sample.data) if isinstance(sample.data, memoryview) else sample.data


def to_array(sample: Sample) -> Any:
    """The object as a ``uint8`` numpy array viewing the fetched buffer (no copy)."""
    return np.frombuffer(sample.data, np.uint8) if isinstance(sample.data, memoryview) else sample.data


def load_npy(sample: Sample) -> np.ndarray:
    """A ``.npy`` object as its array, viewing the fetched buffer (no copy)."""
    return read_npy(sample.data)


def stack(items: list[Any]) -> Any:
    """Batch items with ``numpy.stack``, leaf by leaf for dicts/tuples (a pytree of arrays)."""
    first = items[0]
    if isinstance(first, dict):
        return {k: stack([item[k] for item in items]) for k in first}
    if isinstance(first, (tuple, list)):
        return type(first)(stack([item[i] for item in items]) for i in range(len(first)))
    return np.stack(items)


def _config(
    region: str | None, endpoint: str | None, config: Config | None, client: Client | None, where: str
) -> Config:
    """The settings of one source: ``client``'s, or ``config`` with ``region``/``endpoint``."""
    settings = settings_of(client, config, region=region, endpoint=endpoint, where=where)
    return settings or default_config()


def _name(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"


def _prefix(
    uri: str, pattern: str | None, key_cache: bool | str, refresh: bool, config: Config
) -> PrefixSource:
    return PrefixSource(uri, pattern, True, key_cache, refresh, config)


# -- Grain --------------------------------------------------------------------------------
class _FromSources:
    """The three ways to name the objects, shared by both classes below."""

    def __init__(self, source: Any, **kwargs: Any) -> None:  # pragma: no cover - typing only
        raise NotImplementedError

    @classmethod
    def from_prefix(
        cls, uri: str, *, pattern: str | None = None, key_cache: bool | str = True, refresh: bool = False,
        region: str | None = None, endpoint: str | None = None, config: Config | None = None,
        client: Client | None = None, **kwargs: Any,
    ) -> Self:  # fmt: skip
        """Every object under ``uri`` (listed once; ``refresh=True`` lists again)."""
        src = _prefix(
            uri, pattern, key_cache, refresh, _config(region, endpoint, config, client, cls.__name__)
        )
        return cls(src, region=region, endpoint=endpoint, config=config, client=client, **kwargs)

    @classmethod
    def from_objects(cls, uris: str | Iterable[str], **kwargs: Any) -> Self:
        """The objects ``uris`` names, in that order."""
        return cls(UriListSource(uris), **kwargs)

    @classmethod
    def from_key_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> Self:
        """The objects a key file lists (one URI per line; local, or itself an object)."""
        settings = _config(kwargs.get("region"), kwargs.get("endpoint"), kwargs.get("config"),
                           kwargs.get("client"), cls.__name__)  # fmt: skip
        return cls(KeyFileSource(os.fspath(path), settings), **kwargs)


class S3DataSource(_FromSources):
    """A Grain ``RandomAccessDataSource``: ``source[i]`` is ``transform(Sample of object i)``.

    Keys are resolved when built (listed once, without starting the fast engine here; cached
    locally for prefixes). ``transform`` (default :func:`to_bytes`) runs in the worker that
    reads; it must be picklable for ``worker_count > 0``. Grain's sampler shards and shuffles
    (``grain.sharding.ShardByJaxProcess()`` for one shard per JAX process). ``repr()`` is
    stable (source, key checksum, transform): Grain checks it when restoring a state.
    ``client`` (an :class:`s3dlio.Client`) gives the settings of every request, instead of
    ``config``/``region``/``endpoint``.
    """

    def __init__(
        self,
        source: Source,
        *,
        region: str | None = None,
        endpoint: str | None = None,
        config: Config | None = None,
        transform: Callable[[Sample], Any] = to_bytes,
        retries: int = 2,
        hedge_after: float | None = None,
        max_in_flight: int = 16,
        client: Client | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ConfigError(f"max_in_flight={max_in_flight}: must be at least 1")
        self._source = MapSource(
            source, config=_config(region, endpoint, config, client, "S3DataSource"), transform=transform, retries=retries,
            hedge_after=hedge_after,
        )  # fmt: skip
        self._transform = transform
        self._max_in_flight = max_in_flight

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: SupportsIndex) -> Any:
        return self._source[operator.index(index)]

    def _getitems(self, indices: Sequence[int]) -> Sequence[Any]:
        """Grain's batched read: the objects fetched concurrently, in order."""
        return self._source.get_many([operator.index(i) for i in indices], self._max_in_flight)

    def uri(self, index: int) -> str:
        """The URI of record ``index``."""
        return self._source.uri(index)

    def __repr__(self) -> str:
        keys = self._source.keys.fingerprint()
        return f"S3DataSource({self._source.source!r}, keys={keys}, transform={_name(self._transform)})"


# -- JAX iterable ------------------------------------------------------------------------------
def _jax() -> Any:
    try:
        import jax
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("S3Iterable with JAX sharding needs JAX: pip install 's3dlio[jax]'") from exc
    return jax


def _process(index: int | None, count: int | None) -> tuple[int, int]:
    """(process index, process count): given, else JAX's."""
    if (index is None) != (count is None):
        raise ConfigError(
            f"process_index={index!r} process_count={count!r}: give both or neither (neither asks JAX)"
        )
    if index is None or count is None:
        jax = _jax()
        return int(jax.process_index()), int(jax.process_count())
    return index, count


class S3Iterable(_FromSources):
    """This JAX process's share of a dataset of objects, as numpy arrays for ``jax.device_put``.

    Objects are split over processes by ``jax.process_index()`` (or ``process_index``/
    ``process_count``), each exactly once per epoch (padded so every process gets as many;
    ``uneven="drop"`` cuts instead), in a seeded order (``shuffle``, ``seed``). Items are
    ``transform(Sample)`` (default :func:`to_array`); ``batch_size`` groups them with
    ``collate`` (default :func:`stack`); ``sharding`` turns each batch into a global
    ``jax.Array`` (``jax.make_array_from_process_local_data``). Other keywords go to
    :class:`s3dlio.loader.Loader`: ``samples``, ``shuffle_group``, ``max_in_flight``,
    ``max_bytes_in_flight``, ``in_order``, ``on_error``, ``retries``, ``hedge_after``.
    """

    def __init__(
        self,
        source: Source,
        *,
        region: str | None = None,
        endpoint: str | None = None,
        config: Config | None = None,
        transform: Callable[[Sample], Any] = to_array,
        batch_size: int | None = None,
        drop_last: bool = False,
        collate: Callable[[list[Any]], Any] = stack,
        sharding: Any = None,
        process_index: int | None = None,
        process_count: int | None = None,
        client: Client | None = None,
        **options: Any,
    ) -> None:
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"batch_size={batch_size}: must be at least 1, or None for single items")
        if sharding is not None and batch_size is None:
            raise ConfigError("sharding= needs batch_size=: global arrays are built from per-process batches")
        rank, world = _process(process_index, process_count)
        self.loader = Loader(
            source, config=_config(region, endpoint, config, client, "S3Iterable"), transform=transform, rank=rank,
            world_size=world, **options,
        )  # fmt: skip
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.collate = collate
        self.sharding = sharding

    @property
    def process_index(self) -> int:
        return self.loader.rank

    @property
    def process_count(self) -> int:
        return self.loader.world_size

    def set_epoch(self, epoch: int) -> None:
        """Read ``epoch``'s order next (a plain ``for`` moves to the next epoch by itself)."""
        self.loader.set_epoch(epoch)

    def __len__(self) -> int:
        """Items (or batches) this process reads per epoch (whole-object samples)."""
        if self.loader.reading.samples != "object":
            raise TypeError("len() of a record dataset is unknown until its objects are read")
        n = len(self.loader)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        items: Iterator[Any] = iter(self.loader)
        if self.batch_size is None:
            return items
        batches = batched(items, self.batch_size, self.drop_last, self.collate)
        if self.sharding is None:
            return batches
        return self._global(batches)

    def _global(self, batches: Iterator[Any]) -> Iterator[Any]:
        jax = _jax()
        for batch in batches:
            yield jax.tree.map(lambda x: jax.make_array_from_process_local_data(self.sharding, x), batch)

    # -- resume ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Where the next item comes from: a small JSON-able dict (save it with ``ocp.args.JsonSave``)."""
        return self.loader.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the next iteration from ``state`` (checked against this iterable)."""
        self.loader.load_state_dict(state)

    @property
    def skipped(self) -> int:
        """Objects or samples skipped (``on_error="skip"``)."""
        return self.loader.skipped

    def __repr__(self) -> str:
        return (
            f"S3Iterable({self.loader.source!r}, process {self.process_index} of {self.process_count}, "
            f"batch_size={self.batch_size})"
        )
