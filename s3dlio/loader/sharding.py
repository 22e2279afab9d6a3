"""Who am I in the job: rank and world size, worker and worker count.

Detection never imports a framework: it asks ``torch.distributed`` or ``jax`` only when the
program already imported (and, for JAX, initialised the distributed runtime of) them
(``sys.modules``), then falls back to ``RANK``/``WORLD_SIZE``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ..errors import ConfigError

__all__ = ["detect_rank_world", "detect_worker", "resolve_rank_world"]


def detect_rank_world() -> tuple[int, int]:
    """(rank, world size): torch.distributed if initialised, else RANK/WORLD_SIZE, else JAX."""
    dist: Any = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return int(dist.get_rank()), int(dist.get_world_size())
    rank, world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
    if rank is not None and world is not None:
        try:
            return int(rank), int(world)
        except ValueError:
            raise ConfigError(f"RANK={rank!r} WORLD_SIZE={world!r}: both must be integers") from None
    jax: Any = sys.modules.get("jax")
    if jax is not None and _jax_distributed(jax):
        return int(jax.process_index()), int(jax.process_count())
    return 0, 1


def _jax_distributed(jax: Any) -> bool:
    """True once ``jax.distributed.initialize()`` ran: only then is there more than one process.
    Asking ``jax.process_index()`` before would start JAX's backend (threads, and on a GPU host
    device memory) in a program that merely imported JAX."""
    distributed = getattr(jax, "distributed", None)
    is_initialized = getattr(distributed, "is_initialized", None)
    return bool(is_initialized()) if callable(is_initialized) else False


def resolve_rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Explicit values win; both or neither must be given. Checked: 0 <= rank < world_size."""
    if (rank is None) != (world_size is None):
        raise ConfigError(
            f"rank={rank!r} world_size={world_size!r}: give both or neither (neither detects them "
            "from torch.distributed, RANK/WORLD_SIZE or JAX)"
        )
    if rank is None or world_size is None:
        rank, world_size = detect_rank_world()
    if world_size < 1:
        raise ConfigError(f"world_size={world_size}: must be at least 1")
    if not 0 <= rank < world_size:
        raise ConfigError(
            f"rank={rank} with world_size={world_size}: the rank must be in 0..{world_size - 1}"
        )
    return rank, world_size


def detect_worker() -> tuple[int, int]:
    """(worker id, number of workers) of a torch DataLoader worker; (0, 1) elsewhere."""
    data: Any = sys.modules.get("torch.utils.data")
    if data is not None:
        info = data.get_worker_info()
        if info is not None:
            return int(info.id), int(info.num_workers)
    return 0, 1
