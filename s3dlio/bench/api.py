"""``s3dlio.bench.run``: one benchmark from Python, the body of ``s3dlio bench`` too."""

from __future__ import annotations

import secrets
import sys
import time
from typing import Any

from .. import ops
from ..datagen import DataGenerator
from .distributed import Comm, Single, connect, separate_oplogs
from .kinds import open_writer
from .options import BenchOptions
from .result import BenchResult
from .runner import run_local
from .workloads import Context

__all__ = ["run"]


def run(workload: str, target: str, *, plot: str | None = None, **options: Any) -> BenchResult:
    """Run ``workload`` against ``target`` (a bucket or prefix URI) and return its statistics.

    ``options`` are :class:`~s3dlio.bench.options.BenchOptions` fields: ``duration`` (``"10s"``),
    ``ops``, ``concurrent``, ``obj_size`` (``"1MiB"`` or ``"4KiB-1MiB"``), ``objects``,
    ``prefix``, ``dedup``, ``compress``, ``object_type``, ``weights`` (mixed:
    ``{"get": 45, "put": 15, "stat": 30, "delete": 10}``), ``batch`` (delete), ``noclear``,
    ``autoterm``, ``autoterm_windows``, ``autoterm_pct``, ``seed``, ``distributed``, ``progress``.
    Requests go through :func:`s3dlio.ops.resolve`, so an active op-log records them.

    With ``distributed=True`` (under ``torchrun``) every rank calls this; rank 0 gets the merged
    result, the other ranks their own. ``plot`` writes a PNG of throughput and latency over time
    (rank 0 only).
    """
    opts = BenchOptions(workload, **options)
    comm: Comm = connect() if opts.distributed else Single()
    try:
        separate_oplogs(comm)
        root, store = ops.resolve(target)
        run_id = comm.bcast(time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3))
        prefix = opts.prefix if opts.prefix is not None else f"s3dlio-bench-{run_id}/"
        key = root.key if root.key == "" or root.key.endswith("/") else root.key + "/"
        base = key + (prefix if prefix.endswith("/") or not prefix else prefix + "/")
        seed = None if opts.seed is None else opts.seed * 1_000_003 + comm.rank
        gen = DataGenerator(opts.dedup, opts.compress, seed=seed)
        ctx = Context(store, root, base, opts, gen, comm.rank, comm.world)
        progress = opts.progress if opts.progress is not None else (comm.rank == 0 and _tty())
        local = run_local(ctx, comm, progress)
        runs = comm.gather(local)
        result = BenchResult.build(opts, target, base, runs or [local], _notes(opts))
        if plot and comm.rank == 0:
            from .plot import plot as draw

            draw(result, plot)
        return result
    finally:
        comm.close()


def _tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _notes(opts: BenchOptions) -> list[str]:
    notes = []
    if opts.workload == "multipart" and open_writer() is None:
        notes.append("multipart: s3dlio.open_writer does not exist yet; each object is one PUT")
    if opts.workload == "loader":
        notes.append(
            "loader: s3dlio.loader.Loader epochs, one consumer with --concurrent requests prefetched; "
            "latency is the consumer's wait per sample"
        )
    return notes
