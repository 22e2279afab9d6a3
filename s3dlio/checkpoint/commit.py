"""How ranks agree that a save is complete before rank 0 writes the manifest.

Every rank writes its shards and then its rank file (``ranks/rank-NNNNN.json``, a
:class:`RankReport` listing its shards, or the error that stopped it). Then:

- **collective**, when ``torch.distributed`` is initialised (and the save is synchronous):
  the reports go through ``all_gather_object``, which doubles as the barrier. A rank that
  failed says so, and every rank raises instead of waiting for it.
- **poll** otherwise (and for async saves, whose background thread must not run
  collectives beside training's): rank 0 lists the rank files until all ``world_size`` ranks
  reported for this ``save_id``, or ``timeout`` passes.

The core imports no framework: it uses ``torch.distributed`` only if the process already did.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import NotFoundError
from . import layout
from .errors import CheckpointCommitError
from .manifest import RankReport

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["Coordinator", "PollCoordinator", "TorchCoordinator", "detect", "default_save_id"]


class Coordinator(Protocol):
    """Collects every rank's report for one step; rank 0 gets the list, others may get None."""

    def gather(self, report: RankReport) -> list[RankReport] | None: ...


def _torch_dist() -> Any | None:
    """``torch.distributed`` if this process imported it and initialised a group, else None."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    return dist


def detect(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Rank and world size: given, else torch.distributed's, else ``RANK``/``WORLD_SIZE``, else 0/1."""
    dist = _torch_dist()
    if dist is not None:
        rank = dist.get_rank() if rank is None else rank
        world_size = dist.get_world_size() if world_size is None else world_size
    rank = int(os.environ.get("RANK", "0")) if rank is None else rank
    world_size = int(os.environ.get("WORLD_SIZE", "1")) if world_size is None else world_size
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"checkpoint rank={rank} world_size={world_size}: need 0 <= rank < world_size")
    return rank, world_size


def default_save_id() -> str:
    """Same on every rank of one run and different after a restart (torchrun sets both), so a
    rank file left by a crashed attempt at the same step is not mistaken for a fresh one."""
    explicit = os.environ.get("S3DLIO_CHECKPOINT_RUN_ID")
    if explicit:
        return explicit
    run = os.environ.get("TORCHELASTIC_RUN_ID", "")
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "")
    return f"{run}:{restart}" if run or restart else ""


class TorchCoordinator:
    """``all_gather_object`` over torch.distributed's default group (or ``group``)."""

    def __init__(self, group: Any = None) -> None:
        self._group = group

    def gather(self, report: RankReport) -> list[RankReport] | None:
        dist = _torch_dist()
        if dist is None:
            raise CheckpointCommitError("torch.distributed is no longer initialised; cannot commit the save")
        out: list[Any] = [None] * dist.get_world_size(self._group)
        dist.all_gather_object(out, report, group=self._group)
        return out


class PollCoordinator:
    """Rank 0 polls the rank files; other ranks return at once."""

    def __init__(self, store: Store, root: str, where: Callable[[str], str], timeout: float) -> None:
        self._store = store
        self._root = root
        self._where = where
        self._timeout = timeout

    def gather(self, report: RankReport) -> list[RankReport] | None:
        if report.rank != 0:
            return None
        found: dict[int, RankReport] = {0: report}
        deadline = time.monotonic() + self._timeout
        delay = 0.05
        prefix = self._root + layout.ranks_prefix(report.step)
        while True:
            for item in self._store.list(prefix):
                if isinstance(item, str):
                    continue
                rank = layout.parse_rank_file(item.key)
                if rank is None or rank in found:
                    continue
                try:
                    other = RankReport.from_json(memoryview(self._store.get(item.key)), self._where(item.key))
                except NotFoundError:  # rewritten meanwhile
                    continue
                if other.save_id == report.save_id and other.step == report.step:
                    found[rank] = other
                    if other.error:
                        return sorted(found.values(), key=lambda r: r.rank)
            if len(found) >= report.world_size:
                return [found[r] for r in sorted(found)]
            if time.monotonic() >= deadline:
                missing = sorted(set(range(report.world_size)) - set(found))
                raise CheckpointCommitError(
                    f"{self._where(self._root + layout.step_prefix(report.step))}: not committed: ranks {missing} did "
                    f"not report within {self._timeout:g} s (commit_timeout); latest is unchanged"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)
