"""The framework-free loader: keys -> this rank's epoch order -> prefetched samples.

>>> loader = Loader("s3://bucket/train/", shuffle=True, seed=7)     # doctest: +SKIP
>>> for epoch in range(3):                                           # doctest: +SKIP
...     loader.set_epoch(epoch)
...     for sample in loader:                                        # Sample(uri, data, record)
...         ...
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from ..client import Client, settings_of
from ..config import Config, default_config
from ..errors import ConfigError
from .fetch import Fetcher
from .plan import EpochPlan, Uneven
from .samples import SampleKind, Splitter, check_kind
from .sharding import detect_worker, resolve_rank_world
from .sources import KeySource, as_source
from .state import Position, check_state, make_state
from .stream import OnError, Reading, Stats, run_epoch

__all__ = ["Loader", "batched"]


class Loader:
    """Iterate a dataset of objects on object storage, sharded, shuffled, prefetched, resumable.

    ``source``: a prefix URI (listed once, cached as a key file), a list of URIs, an
    ``os.PathLike`` key file, or a :class:`~.sources.KeySource`. Keys are resolved here, in
    the constructing process, with the portable engine (fork-safe; see :mod:`.sources`).

    Sharding: ``rank``/``world_size`` (default: detected), then ``num_workers``/``worker_id``
    per :meth:`iterate` (default: the torch DataLoader worker, if any). ``uneven`` pads or
    drops so every rank reads ``len(loader)`` objects per epoch. Shuffling is seeded and
    identical on every rank; ``shuffle_group`` objects' records are mixed together
    (record formats). Prefetch keeps ``max_in_flight`` requests and ``max_bytes_in_flight``
    bytes ahead. Failed objects are retried ``retries`` times, then raise or (``on_error=
    "skip"``) warn and count in :attr:`skipped`.
    """

    def __init__(
        self,
        source: KeySource | str | os.PathLike[str] | Sequence[str],
        *,
        config: Config | None = None,
        samples: SampleKind | Splitter = "object",
        transform: Callable[[Any], Any] | None = None,
        shuffle: bool = False,
        seed: int = 0,
        shuffle_group: int = 1,
        rank: int | None = None,
        world_size: int | None = None,
        uneven: Uneven = "pad",
        block: int = 1,
        max_in_flight: int = 16,
        max_bytes_in_flight: int | None = None,
        in_order: bool = True,
        on_error: OnError = "raise",
        retries: int = 2,
        hedge_after: float | None = None,
        client: Client | None = None,
    ) -> None:
        config = settings_of(client, config, where='Loader')  # client=: all of this loader's settings
        check_kind(samples)
        if on_error not in ("raise", "skip"):
            raise ConfigError(f"on_error={on_error!r}: use 'raise' (default) or 'skip' (warn and count)")
        if max_in_flight < 1 or shuffle_group < 1 or block < 1 or (max_bytes_in_flight or 1) < 1:
            raise ConfigError(
                f"max_in_flight={max_in_flight} max_bytes_in_flight={max_bytes_in_flight} "
                f"shuffle_group={shuffle_group} block={block}: each must be >= 1"
            )
        if transform is not None and not callable(transform):
            raise ConfigError(f"transform={transform!r} is not callable")
        self.config = config
        src = as_source(source, config)
        self.source = src.describe()
        self.keys = src.keys()
        self.rank, self.world_size = resolve_rank_world(rank, world_size)
        self.plan = EpochPlan(len(self.keys), self.rank, self.world_size, shuffle, seed, uneven)
        max_bytes = max_bytes_in_flight or (config or default_config()).max_bytes_in_flight
        self.reading = Reading(
            samples, transform, shuffle_group, Fetcher(config, retries, hedge_after=hedge_after),
            max_in_flight, max_bytes, in_order, on_error,
        )  # fmt: skip
        self.block = block
        self.epoch = 0
        self.stats = Stats()
        self._resume: Position | None = None
        self._pos: Position | None = None

    # -- epochs and iteration --------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration reads (shuffles differ per epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Objects this rank reads per epoch (records per epoch are known only after reading)."""
        return self.plan.per_rank

    def __iter__(self) -> Iterator[Any]:
        return self.iterate()

    def iterate(
        self, worker_id: int | None = None, num_workers: int | None = None, epoch: int | None = None
    ) -> Iterator[Any]:
        """One pass (one worker's share) over ``epoch`` (default :attr:`epoch`, which then advances).

        A state loaded with :meth:`load_state_dict` makes this pass start where it stopped.
        """
        if worker_id is None or num_workers is None:
            worker_id, num_workers = detect_worker()
        auto = epoch is None
        epoch = self.epoch if epoch is None else int(epoch)
        resume, self._resume = self._resume, None
        if resume is not None and resume.epoch == epoch:
            pos = resume.rebased(num_workers, worker_id, self.block, self.reading.group)
        else:
            pos = Position(epoch, 0, num_workers, worker_id, self.block)
        self._pos = pos
        return self._run(pos, auto)

    def _run(self, pos: Position, auto: bool) -> Iterator[Any]:
        yield from run_epoch(self.keys, self.plan, self.reading, pos, self.stats)
        if auto and self.epoch == pos.epoch:
            self.epoch += 1
            self._pos = None

    @property
    def resume_epoch(self) -> int | None:
        """The epoch of a loaded state not yet resumed, else None."""
        return None if self._resume is None else self._resume.epoch

    @property
    def skipped(self) -> int:
        """Objects and samples skipped so far (``on_error="skip"``); details in ``stats.errors``."""
        return self.stats.skipped

    # -- resume -------------------------------------------------------------------------
    def fingerprint(self) -> dict[str, Any]:
        """What a resume state must match: the source, its keys and the sharding/shuffle settings."""
        kind = self.reading.samples
        return {
            "source": self.source,
            "keys": self.keys.fingerprint(),
            "rank": self.rank,
            "world_size": self.world_size,
            "shuffle": self.plan.shuffle,
            "seed": self.plan.seed,
            "uneven": self.plan.uneven,
            "samples": kind if isinstance(kind, str) else getattr(kind, "__qualname__", repr(kind)),
            "shuffle_group": self.reading.group,
        }

    def state_dict(self) -> dict[str, Any]:
        """Where the next sample comes from: a few integers in a small JSON-able dict."""
        pos = self._pos or self._resume or Position(self.epoch)
        return make_state(self.fingerprint(), pos)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Make the next :meth:`iterate` continue from ``state`` (checked against this loader)."""
        pos = check_state(state, self.fingerprint())
        self._resume, self._pos = pos, None
        self.epoch = pos.epoch

    def state_at(self, consumed: int, epoch: int | None = None) -> dict[str, Any]:
        """A rank-level state after ``consumed`` objects of ``epoch``'s rank order were read.

        For a torch DataLoader whose workers read blocks of ``block`` objects round-robin
        (``batch_size == block``), ``consumed = batches * batch_size`` is exact.
        """
        if not 0 <= consumed <= self.plan.per_rank:
            raise ConfigError(
                f"consumed={consumed}: must be in 0..{self.plan.per_rank} (objects per rank per epoch)"
            )
        return make_state(
            self.fingerprint(), Position(self.epoch if epoch is None else epoch, 0, done=consumed)
        )


def batched(samples: Iterable[Any], size: int, drop_last: bool = False,
            collate: Callable[[list[Any]], Any] | None = None) -> Iterator[Any]:  # fmt: skip
    """Group samples into lists of ``size`` (the last may be short unless ``drop_last``)."""
    if size < 1:
        raise ConfigError(f"batch size {size}: must be at least 1")
    batch: list[Any] = []
    for sample in samples:
        batch.append(sample)
        if len(batch) == size:
            yield collate(batch) if collate else batch
            batch = []
    if batch and not drop_last:
        yield collate(batch) if collate else batch
