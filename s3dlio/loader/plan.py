"""The epoch order: a pure function of (seed, epoch, index), identical on every rank.

1. the global order is ``range(n)``, or a permutation drawn from ``(seed, epoch)``;
2. it is padded (wrapping around) or cut to a multiple of the world size, so every rank gets
   the same number of items and no rank waits on a missing last batch;
3. rank ``r`` takes every ``world_size``-th item from ``r`` (its *rank order*);
4. inside a rank, the order from a resume position on is dealt to workers in blocks of
   ``block`` items, round-robin; reading the workers round-robin by block (what a torch
   DataLoader with ``batch_size == block`` does) gives back the rank order exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import ConfigError

__all__ = ["EpochPlan", "Uneven", "record_order", "worker_positions"]

Uneven = Literal["pad", "drop"]


def _rng(*words: int) -> np.random.Generator:
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([w & 0xFFFFFFFFFFFFFFFF for w in words]))
    )


@dataclass(frozen=True)
class EpochPlan:
    """Which items a rank reads in an epoch, and in what order."""

    num_items: int
    rank: int = 0
    world_size: int = 1
    shuffle: bool = False
    seed: int = 0
    uneven: Uneven = "pad"

    def __post_init__(self) -> None:
        if self.uneven not in ("pad", "drop"):
            raise ConfigError(
                f"uneven={self.uneven!r}: use 'pad' (repeat items) or 'drop' (cut the remainder)"
            )
        if not 0 <= self.rank < self.world_size:
            raise ConfigError(
                f"rank={self.rank} with world_size={self.world_size}: the rank must be in 0..{self.world_size - 1}"
            )
        if self.num_items < 0:
            raise ConfigError(f"num_items={self.num_items}: a data set cannot have fewer than 0 items")
        if self.per_rank == 0 < self.num_items:  # an empty data set is empty on every rank
            raise ConfigError(
                f"{self.num_items} items cannot give each of {self.world_size} ranks one with uneven='drop'; "
                "use uneven='pad' or fewer ranks"
            )

    @property
    def per_rank(self) -> int:
        """Items each rank reads per epoch (the same on every rank)."""
        n, w = self.num_items, self.world_size
        return -(-n // w) if self.uneven == "pad" else n // w

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Item indices of the whole epoch before sharding (length ``per_rank * world_size``)."""
        n, total = self.num_items, self.per_rank * self.world_size
        order = _rng(self.seed, epoch).permutation(n) if self.shuffle else np.arange(n, dtype=np.int64)
        if total > n:
            order = np.resize(order, total)  # wraps around: the padding repeats the first items
        return order[:total]

    def rank_order(self, epoch: int) -> np.ndarray:
        """Item indices this rank reads, in order (length :attr:`per_rank`)."""
        return self.epoch_order(epoch)[self.rank :: self.world_size]


def worker_positions(length: int, start: int, num_workers: int, worker_id: int, block: int = 1) -> np.ndarray:
    """Positions ``>= start`` of a rank order of ``length`` that worker ``worker_id`` reads."""
    if num_workers < 1 or not 0 <= worker_id < num_workers:
        raise ConfigError(
            f"worker_id={worker_id} num_workers={num_workers}: need 0 <= worker_id < num_workers"
        )
    if block < 1:
        raise ConfigError(f"block={block}: must be at least 1")
    positions = np.arange(start, length, dtype=np.int64)
    mine: np.ndarray = positions[((positions - start) // block) % num_workers == worker_id]
    return mine


def record_order(count: int, shuffle: bool, seed: int, epoch: int, unit: int) -> np.ndarray:
    """Order of ``count`` records of one unit (an object, or a group of objects)."""
    if not shuffle:
        return np.arange(count, dtype=np.int64)
    return _rng(seed, epoch, unit, 1).permutation(count)
