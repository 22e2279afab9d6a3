"""What one request of each workload does: prepare objects, run one step, list what is left.

A workload holds no timing logic of its own: :meth:`Workload.step` issues one request through
the (op-logged) store and hands ``(op, start, end, first byte, bytes, objects, error)`` to the
worker's :class:`~s3dlio.bench.stats.Recorder`. Keys are ``<base>r<rank>/...``, so ranks of a
distributed run never touch each other's objects.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from time import time_ns
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _parallel
from ..errors import ConfigError
from ..formats import make_object
from ..sizes import format_size, physical_memory
from ..store.base import STREAM_MIN
from ..writer import put_generated
from .stats import OPS, Recorder

if TYPE_CHECKING:
    from collections.abc import Buffer

    from ..datagen import DataGenerator
    from ..store import Store
    from ..uri import ObjectUri
    from .options import BenchOptions

__all__ = ["Context", "Exhausted", "Worker", "Workload", "message", "make_workload"]

GET, PUT, STAT, LIST, DELETE = range(len(OPS))


class Exhausted(Exception):
    """The workload has nothing left to do (``delete`` ran out of objects)."""


def message(exc: BaseException, key: str = "") -> str:
    """An error as one line, its object key replaced by ``<key>`` so like errors group together."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text.replace(key, "<key>") if key else text


@dataclass
class Context:
    """Where and how a workload runs: the store, its key prefix for this rank, the data source."""

    store: Store
    root: ObjectUri  # the target, parsed: ``root.with_key(key)`` names an object
    base: str  # key prefix of the run, ends with "/"
    opts: BenchOptions
    gen: DataGenerator
    rank: int = 0
    world: int = 1

    @property
    def mine(self) -> str:
        """This rank's key prefix."""
        return f"{self.base}r{self.rank}/"

    def share(self, total: int) -> int:
        """This rank's part of ``total`` (split as evenly as possible)."""
        return total // self.world + (1 if self.rank < total % self.world else 0)


@dataclass
class Worker:
    """One worker thread's state: its id, random source, samples and scratch buffer."""

    wid: int
    rng: random.Random
    rec: Recorder = field(default_factory=Recorder)
    seq: int = 0
    scratch: np.ndarray | None = None


class Workload:
    """Base: ``prepare`` once per rank, ``ready`` once every rank prepared, ``step`` per request,
    ``finish`` when the run stopped, ``leftovers`` to clean up."""

    #: Worker threads; None: ``--concurrent``.
    threads: int | None = None

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.keys: list[str] = []
        self.created: list[list[str]] = []  # keys written during the run, one list per worker
        self._lock = threading.Lock()
        self._drain = ctx.opts.size.high > STREAM_MIN

    def existing(self) -> str | None:
        """Why the run must not start here, or None: objects exist below this rank's prefix.
        The run writes its keys there (overwriting any of the same name) and deletes them at
        the end, so it must own every key it can touch; nothing outside it is ever touched."""
        mine = self.ctx.mine
        found = [m.key for m in itertools.islice(self.store.list(mine), 4) if not isinstance(m, str)]
        if not found:
            return None
        where = str(self.ctx.root.with_key(mine))
        shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
        return (
            f"bench {where}: objects exist there already ({shown}); the run would overwrite, then "
            f"delete them: pick another --prefix, or remove them first with: s3dlio rm -r {where}"
        )

    def prepare(
        self, count: int | None = None, prefix: str = "obj/", on_put: Callable[[], None] | None = None
    ) -> None:
        """Write this rank's share of ``--objects`` (or ``count``) objects concurrently."""
        n = self.ctx.share(self.ctx.opts.objects) if count is None else count
        rng = random.Random(_seed(self.ctx, -1))
        sizes = [self.ctx.opts.size.draw(rng) for _ in range(n)]
        keys = [f"{self.ctx.mine}{prefix}{i:08d}" for i in range(n)]
        whole_files = _parallel.ByteBudget(self.store.config.max_bytes_in_flight)  # formats come whole

        def one(i: int) -> None:
            if self.ctx.opts.object_type == "RAW":
                put_generated(str(self.ctx.root.with_key(keys[i])), self.store, keys[i], self.ctx.gen, sizes[i])
            else:
                with whole_files.holding(sizes[i]):
                    self.store.put(keys[i], self.payload(sizes[i], i))
            if on_put is not None:
                on_put()

        _parallel.map_bounded(one, range(n), self.ctx.opts.concurrent)
        self.keys = keys

    def payload(self, size: int, index: int, w: Worker | None = None) -> Buffer:
        """Fresh data for one object: the worker's scratch buffer refilled (RAW), or a formatted file."""
        opts = self.ctx.opts
        if opts.object_type != "RAW":
            return make_object(opts.object_type, size, self.ctx.gen, index=index)
        if w is None:
            return self.ctx.gen.object(size)
        if w.scratch is None or len(w.scratch) < size:
            w.scratch = np.empty(opts.size.high, dtype=np.uint8)
        view = memoryview(w.scratch)[:size]  # type: ignore[arg-type]
        self.ctx.gen.fill(view)
        return view

    def check_put_memory(self) -> None:
        """A clear error, not the kernel's OOM killer, when the workers' PUT bodies cannot fit:
        a PUT sends its object whole, so each worker holds one of ``--obj.size``'s largest."""
        opts = self.ctx.opts
        physical = physical_memory()
        need = opts.concurrent * opts.size.high
        if physical is not None and need > physical:
            raise ConfigError(
                f"{opts.workload}: {opts.concurrent} workers x {format_size(opts.size.high)} objects need "
                f"{format_size(need)} for their PUT bodies, and this machine has {format_size(physical)}; "
                "lower --concurrent or --obj.size, or use the multipart workload (it streams each object)"
            )

    def new_worker(self, wid: int) -> Worker:
        w = Worker(wid, random.Random(_seed(self.ctx, wid)))
        with self._lock:
            self.created.append([])
        return w

    def ready(self) -> None:
        """Called once after every rank prepared, before the run starts (not timed)."""

    def step(self, w: Worker) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Called once after the workers stopped, before cleanup."""

    def leftovers(self) -> list[str]:
        """Keys the run leaves behind (deleted at the end unless ``--noclear``)."""
        return [*self.keys, *(k for keys in self.created for k in keys)]

    # -- the requests, timed -------------------------------------------------------------------
    def get(self, w: Worker, key: str) -> None:
        start = time_ns()
        try:
            if self._drain:
                nbytes, first = self.store.drain(key)
            else:
                data, first = self.store.get_timed(key)
                nbytes = memoryview(data).nbytes
        except Exception as exc:  # noqa: BLE001 - counted, the run goes on
            w.rec.add(GET, start, time_ns(), None, 0, 1, message(exc, key))
            return
        w.rec.add(GET, start, time_ns(), first, nbytes, 1)

    def put(self, w: Worker, key: str) -> bool:
        data = self.payload(self.ctx.opts.size.draw(w.rng), w.seq, w)
        nbytes = memoryview(data).nbytes
        start = time_ns()
        try:
            self.store.put(key, data)
        except Exception as exc:  # noqa: BLE001
            w.rec.add(PUT, start, time_ns(), None, 0, 1, message(exc, key))
            return False
        w.rec.add(PUT, start, time_ns(), None, nbytes, 1)
        return True

    def stat(self, w: Worker, key: str) -> None:
        start = time_ns()
        try:
            self.store.head(key)
        except Exception as exc:  # noqa: BLE001
            w.rec.add(STAT, start, time_ns(), None, 0, 1, message(exc, key))
            return
        w.rec.add(STAT, start, time_ns(), None, 0, 1)

    def list_keys(self, w: Worker, prefix: str) -> list[str]:
        start = time_ns()
        try:
            keys = [m.key for m in self.store.list(prefix) if not isinstance(m, str)]
        except Exception as exc:  # noqa: BLE001
            w.rec.add(LIST, start, time_ns(), None, 0, 0, message(exc, prefix))
            return []
        w.rec.add(LIST, start, time_ns(), None, 0, len(keys))
        return keys

    def delete(self, w: Worker, keys: list[str]) -> None:
        failed = len(keys)
        start = time_ns()
        try:
            if len(keys) == 1:
                self.store.delete(keys[0])
                failed = 0
            else:
                failures = self.store.delete_many(keys)
                failed = len(failures)
                if failures:
                    raise failures[0].error
        except Exception as exc:  # noqa: BLE001
            w.rec.add(DELETE, start, time_ns(), None, 0, len(keys) - failed, message(exc, keys[0]))
            return
        w.rec.add(DELETE, start, time_ns(), None, 0, len(keys))

    def new_key(self, w: Worker) -> str:
        w.seq += 1
        return f"{self.ctx.mine}put/w{w.wid}/{w.seq:09d}"


def _seed(ctx: Context, wid: int) -> int:
    base = ctx.opts.seed if ctx.opts.seed is not None else ctx.gen.seed
    return hash((base, ctx.rank, wid)) & 0xFFFF_FFFF


def make_workload(ctx: Context) -> Workload:
    """The workload ``ctx.opts.workload`` names."""
    from .kinds import KINDS

    kind: Any = KINDS[ctx.opts.workload]
    return kind(ctx)  # type: ignore[no-any-return]
