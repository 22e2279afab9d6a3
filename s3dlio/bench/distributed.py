"""Ranks of a many-host run: torch.distributed (gloo) under ``torchrun``, or mpi4py when importable.

A :class:`Comm` gives what the benchmark needs and nothing more: a barrier (start together),
a broadcast (one run id) and a gather to rank 0 (raw samples, merged there). Without
``--distributed`` the run uses :class:`Single`, whose calls do nothing.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import ConfigError

__all__ = ["Comm", "Single", "connect", "rank_oplog_path", "separate_oplogs"]


class Comm:
    """One rank's handle on the group."""

    rank: int = 0
    world: int = 1
    kind: str = "single"

    def barrier(self) -> None:
        """Wait until every rank arrives."""

    def bcast(self, obj: Any) -> Any:
        """Rank 0's ``obj``, on every rank."""
        return obj

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` in rank order on rank 0; None elsewhere."""
        return [obj]

    def close(self) -> None:
        """Leave the group (only if this module joined it)."""


class Single(Comm):
    """A run of one process."""


class _Torch(Comm):
    kind = "torch"

    def __init__(self) -> None:
        import torch.distributed as dist

        self.dist = dist
        self.owned = not dist.is_initialized()
        if self.owned:
            dist.init_process_group(backend="gloo")
        self.rank, self.world = dist.get_rank(), dist.get_world_size()

    def barrier(self) -> None:
        self.dist.barrier()

    def bcast(self, obj: Any) -> Any:
        box = [obj]
        self.dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any] | None:
        out: list[Any] | None = [None] * self.world if self.rank == 0 else None
        self.dist.gather_object(obj, out, dst=0)
        return out

    def close(self) -> None:
        if self.owned and self.dist.is_initialized():
            self.dist.destroy_process_group()


class _Mpi(Comm):
    kind = "mpi"

    def __init__(self) -> None:
        from mpi4py import MPI  # type: ignore[import-not-found]

        self.comm = MPI.COMM_WORLD
        self.rank, self.world = self.comm.Get_rank(), self.comm.Get_size()

    def barrier(self) -> None:
        self.comm.Barrier()

    def bcast(self, obj: Any) -> Any:
        return self.comm.bcast(obj, root=0)

    def gather(self, obj: Any) -> list[Any] | None:
        return self.comm.gather(obj, root=0)  # type: ignore[no-any-return]


_MPI_ENV = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE")


def connect() -> Comm:
    """Join the group this process was started in: torchrun's (``RANK``/``WORLD_SIZE``) or MPI's."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        try:
            return _Torch()
        except ImportError:
            raise ConfigError(
                "--distributed under torchrun needs torch: pip install 's3dlio[torch]'"
            ) from None
    if any(name in os.environ for name in _MPI_ENV):
        try:
            return _Mpi()
        except ImportError:
            raise ConfigError("--distributed under mpirun needs mpi4py: pip install mpi4py") from None
    raise ConfigError(
        "--distributed: no process group found (RANK/WORLD_SIZE unset); start the ranks with "
        "'torchrun --nproc_per_node N -m s3dlio.bench ...' (or mpirun with mpi4py installed)"
    )


def rank_oplog_path(path: str, rank: int) -> str:
    """``run.tsv.zst`` -> ``run.rank1.tsv.zst``; rank 0 keeps the name."""
    if rank == 0:
        return path
    head, name = os.path.split(path)
    tail = ""
    if name.endswith(".zst") and len(name) > 4:
        name, tail = name[:-4], ".zst"
    stem, ext = os.path.splitext(name)
    return os.path.join(head, f"{stem}.rank{rank}{ext}{tail}")


def separate_oplogs(comm: Comm) -> str | None:
    """Give each rank its own op-log file when ranks opened the same one; return this rank's path.

    ``torchrun ... s3dlio --op-log run.tsv.zst bench --distributed`` opens ``run.tsv.zst`` in
    every rank. Every rank drops that writer (its descriptor pointed at /dev/null, so nothing
    it buffered can reach the file); after a barrier rank 0 opens the name afresh and rank
    ``r`` writes ``run.rank<r>.tsv.zst``.
    """
    from .. import oplog

    writer = oplog.current_writer()
    path = None if writer is None or writer.closed else os.path.abspath(writer.path)
    paths = comm.gather(path)
    clash = comm.bcast(paths is not None and any(p is not None and paths.count(p) > 1 for p in paths))
    if not clash or writer is None or path is None:
        return path
    settings = writer.settings
    writer._abandon()
    comm.barrier()
    mine = rank_oplog_path(path, comm.rank)
    oplog.init_op_log(mine, queue_size=settings.queue_size, wbufcap=settings.wbufcap,
                      level=settings.level, lossless=settings.lossless)  # fmt: skip
    return mine
