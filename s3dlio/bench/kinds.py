"""The workloads: get, put, mixed, list, stat, delete, multipart and loader."""

from __future__ import annotations

import bisect
import threading
from time import time_ns
from typing import TYPE_CHECKING

from ..writer import write_generated
from .workloads import GET, PUT, Context, Exhausted, Worker, Workload, message

if TYPE_CHECKING:
    import random
    from collections.abc import Callable, Iterator
    from typing import Any

__all__ = ["KINDS"]


class Get(Workload):
    """GET of randomly chosen prepared objects (with time to first byte where the engine sees it)."""

    def step(self, w: Worker) -> None:
        self.get(w, self.keys[w.rng.randrange(len(self.keys))])


class Stat(Workload):
    """HEAD of randomly chosen prepared objects."""

    def step(self, w: Worker) -> None:
        self.stat(w, self.keys[w.rng.randrange(len(self.keys))])


class Put(Workload):
    """PUT of new objects, fresh data for each (sizes drawn from ``--obj.size``)."""

    def prepare(
        self, count: int | None = None, prefix: str = "obj/", on_put: Callable[[], None] | None = None
    ) -> None:
        self.check_put_memory()
        self.keys = []

    def step(self, w: Worker) -> None:
        key = self.new_key(w)
        if self.put(w, key):
            self.created[w.wid].append(key)


def open_writer() -> Callable[[str], Any] | None:
    """``s3dlio.open_writer`` (a multipart upload writer) if this version has one."""
    import s3dlio

    from .. import ops

    return getattr(ops, "open_writer", None) or getattr(s3dlio, "open_writer", None)


class Multipart(Put):
    """Large objects: through ``s3dlio.open_writer`` (multipart upload) when it exists, else one PUT
    each. RAW data is generated straight into the writer's parts, so a worker holds its parts
    in flight, not the object, and generating overlaps the parts being sent."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.writer = open_writer()

    def check_put_memory(self) -> None:
        if self.writer is None or self.ctx.opts.object_type != "RAW":  # whole objects, as put's
            super().check_put_memory()

    def step(self, w: Worker) -> None:
        if self.writer is None:
            return super().step(w)
        key = self.new_key(w)
        size = self.ctx.opts.size.draw(w.rng)
        whole = None if self.ctx.opts.object_type == "RAW" else self.payload(size, w.seq, w)
        uri = str(self.ctx.root.with_key(key))
        start = time_ns()
        try:
            with self.writer(uri) as f:
                if whole is None:
                    write_generated(f, self.ctx.gen, size)
                else:
                    f.write(whole)
                    size = memoryview(whole).nbytes
        except Exception as exc:  # noqa: BLE001
            w.rec.add(PUT, start, time_ns(), None, 0, 1, message(exc, key))
            return
        w.rec.add(PUT, start, time_ns(), None, size, 1)
        self.created[w.wid].append(key)


class List(Workload):
    """A full (recursive) listing of this rank's prepared objects per request."""

    def step(self, w: Worker) -> None:
        self.list_keys(w, f"{self.ctx.mine}obj/")


class Delete(Workload):
    """DELETE of prepared objects, ``--batch`` keys per request; ends when they run out."""

    def prepare(
        self, count: int | None = None, prefix: str = "obj/", on_put: Callable[[], None] | None = None
    ) -> None:
        opts = self.ctx.opts
        n = self.ctx.share(opts.objects)
        if opts.ops is not None:
            n = max(n, self.ctx.share(opts.ops) * opts.batch)
        super().prepare(n, prefix, on_put)

    def step(self, w: Worker) -> None:
        with self._lock:
            if not self.keys:
                raise Exhausted("every prepared object is deleted; raise --objects for a longer run")
            batch = self.keys[-self.ctx.opts.batch :]
            del self.keys[-self.ctx.opts.batch :]
        self.delete(w, batch)


class _Pool:
    """Live keys of a mixed run; reads hold a reference so a delete never races them."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = list(keys)
        self.refs: dict[str, int] = {}
        self.lock = threading.Lock()

    def borrow(self, rng: random.Random) -> str | None:
        with self.lock:
            if not self.keys:
                return None
            key = self.keys[rng.randrange(len(self.keys))]
            self.refs[key] = self.refs.get(key, 0) + 1
            return key

    def give_back(self, key: str) -> None:
        with self.lock:
            n = self.refs[key] - 1
            if n:
                self.refs[key] = n
            else:
                del self.refs[key]

    def take(self, rng: random.Random) -> str | None:
        with self.lock:
            for _ in range(8):
                if not self.keys:
                    return None
                i = rng.randrange(len(self.keys))
                key = self.keys[i]
                if key not in self.refs:
                    self.keys[i] = self.keys[-1]
                    self.keys.pop()
                    return key
            return None

    def add(self, key: str) -> None:
        with self.lock:
            self.keys.append(key)


class Mixed(Workload):
    """GET/PUT/STAT/DELETE drawn by weight; a GET, STAT or DELETE with nothing to act on PUTs instead."""

    def prepare(
        self, count: int | None = None, prefix: str = "obj/", on_put: Callable[[], None] | None = None
    ) -> None:
        self.check_put_memory()  # a GET, STAT or DELETE with nothing to act on PUTs
        super().prepare(count, prefix, on_put)
        self.pool = _Pool(self.keys)
        weights = self.ctx.opts.weights
        self.names = [op for op in weights if weights[op] > 0]
        total = 0.0
        self.cum: list[float] = []
        for op in self.names:
            total += weights[op]
            self.cum.append(total)

    def step(self, w: Worker) -> None:
        op = self.names[min(bisect.bisect(self.cum, w.rng.random() * self.cum[-1]), len(self.names) - 1)]
        if op in ("GET", "STAT"):
            key = self.pool.borrow(w.rng)
            if key is not None:
                try:
                    (self.get if op == "GET" else self.stat)(w, key)
                finally:
                    self.pool.give_back(key)
                return
        elif op == "DELETE":
            key = self.pool.take(w.rng)
            if key is not None:
                self.delete(w, [key])
                return
        key = self.new_key(w)
        if self.put(w, key):
            self.pool.add(key)

    def leftovers(self) -> list[str]:
        return list(self.pool.keys)


class Loader(Workload):
    """Epochs of :class:`s3dlio.loader.Loader` over the run prefix: one consumer, ``--concurrent`` prefetch.

    The loader lists the prefix once (all ranks' objects, before the run starts), shards by
    rank, shuffles per epoch and keeps ``--concurrent`` requests ahead. Each sample counts as
    one GET whose latency is the consumer's wait for it.
    """

    threads = 1

    def ready(self) -> None:
        from ..loader import Loader as Engine
        from ..loader import PrefixSource

        seed = self.ctx.opts.seed if self.ctx.opts.seed is not None else self.ctx.gen.seed
        source = PrefixSource(str(self.ctx.root.with_key(self.ctx.base)), cache=False)
        self.engine = Engine(source, shuffle=True, seed=seed & 0x7FFF_FFFF, rank=self.ctx.rank,
                             world_size=self.ctx.world, max_in_flight=self.ctx.opts.concurrent)  # fmt: skip
        self.epoch = 0
        self.it: Iterator[Any] | None = None

    def step(self, w: Worker) -> None:
        start = time_ns()
        for _ in range(2):  # at most one epoch boundary per sample
            if self.it is None:
                self.it = self.engine.iterate(worker_id=0, num_workers=1, epoch=self.epoch)
            try:
                sample = next(self.it)
            except StopIteration:
                self.it, self.epoch = None, self.epoch + 1
                continue
            except Exception as exc:  # noqa: BLE001 - the loader's iterator is over after an error
                self.it = None
                w.rec.add(GET, start, time_ns(), None, 0, 1, message(exc))
                return
            w.rec.add(GET, start, time_ns(), None, memoryview(sample.data).nbytes, 1)
            return
        raise Exhausted(f"rank {self.ctx.rank} has no object to read: fewer objects than ranks")

    def finish(self) -> None:
        if self.it is not None:
            close = getattr(self.it, "close", None)
            if close is not None:
                close()  # stop the prefetch before cleanup deletes what it reads
            self.it = None


KINDS: dict[str, type[Workload]] = {
    "get": Get,
    "put": Put,
    "mixed": Mixed,
    "list": List,
    "stat": Stat,
    "delete": Delete,
    "multipart": Multipart,
    "loader": Loader,
}
