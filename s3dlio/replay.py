"""Replay an op-log: re-issue the recorded operations against another store, in order and in time.

Each record's ``file`` (``bucket/key``, or ``/abs/path`` for files) loses its bucket (or its
leading ``/``) and is appended to the target prefix. Op ``i`` is issued at
``t0 + (start_i - start_0) / speed`` (``speed=0``: as fast as possible) by a dispatcher (the
calling thread) that hands it, in recorded order of issue, to ``jobs`` worker threads. The
result reports how late operations started (lag), counts and bytes per operation, and errors.

A replayed operation that fails where the recording shows it failed too (a GET of a missing key)
counts as an *expected* error and never stops the replay.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from . import _parallel
from .errors import ConfigError, NotFoundError, S3dlioError
from .oplog import Latency, Record, format_ts, read
from .store import Store, open_store
from .store.base import STREAM_MIN
from .uri import ObjectUri, parse
from .writer import put_generated

__all__ = [
    "DEFAULT_OPS",
    "OPS",
    "OpCount",
    "ReplayError",
    "ReplayResult",
    "parse_ops",
    "replay",
    "replay_key",
]

#: Operation names a replay knows, in warp's spelling.
OPS: tuple[str, ...] = ("GET", "PUT", "STAT", "LIST", "DELETE", "CREATE_BUCKET", "DELETE_BUCKET")
#: What is replayed unless ``ops`` says otherwise (bucket create/delete only when asked).
DEFAULT_OPS: frozenset[str] = frozenset(OPS[:5])
_MAX_JOBS = 512  # the shared pool's size (s3dlio._parallel.executor)
_MAX_ERRORS_KEPT = 10
_LOCAL_ENDPOINTS = ("file://", "direct://")
_READY_WAIT_S = 2.0  # how long the dispatcher waits for its workers to start


class ReplayError(S3dlioError):
    """A replayed operation failed that succeeded in the recording (without ``continue_on_error``).

    ``result`` holds what was replayed up to the stop.
    """

    def __init__(self, message: str, result: ReplayResult | None = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True, slots=True)
class OpCount:
    """What the replay did for one operation type."""

    op: str
    count: int = 0
    errors: int = 0  # every failure, expected ones included
    expected_errors: int = 0  # failures the recording shows as well
    bytes: int = 0
    objects: int = 0

    @property
    def unexpected_errors(self) -> int:
        return self.errors - self.expected_errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "count": self.count,
            "errors": self.errors,
            "expected_errors": self.expected_errors,
            "bytes": self.bytes,
            "objects": self.objects,
        }


@dataclass(frozen=True)
class ReplayResult:
    """Counts per operation, timing and lag of one replay."""

    files: tuple[str, ...]
    target: str
    speed: float
    jobs: int
    ops: dict[str, OpCount]
    #: Records not replayed: filtered out by ``ops``, or of an unknown operation.
    skipped: int
    #: Objects ``prepare`` created before the replay started.
    prepared: int
    #: Span of the replayed records' start times, in seconds.
    recorded_s: float
    #: Wall time from the first dispatch to the last completion, in seconds.
    elapsed_s: float
    #: How late operations started against their schedule (ms); None at speed 0.
    lag_ms: Latency | None
    #: The first few error messages.
    first_errors: tuple[str, ...] = field(default=())
    #: True when the replay ended early at an unexpected error.
    stopped: bool = False

    @property
    def count(self) -> int:
        return sum(c.count for c in self.ops.values())

    @property
    def errors(self) -> int:
        return sum(c.errors for c in self.ops.values())

    @property
    def unexpected_errors(self) -> int:
        return sum(c.unexpected_errors for c in self.ops.values())

    @property
    def bytes(self) -> int:
        return sum(c.bytes for c in self.ops.values())

    @property
    def ops_per_s(self) -> float:
        return self.count / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (``s3dlio replay --json``)."""
        return {
            "files": list(self.files),
            "target": self.target,
            "speed": self.speed,
            "jobs": self.jobs,
            "count": self.count,
            "errors": self.errors,
            "unexpected_errors": self.unexpected_errors,
            "bytes": self.bytes,
            "skipped": self.skipped,
            "prepared": self.prepared,
            "recorded_s": self.recorded_s,
            "elapsed_s": self.elapsed_s,
            "ops_per_s": self.ops_per_s,
            "lag_ms": self.lag_ms.to_dict() if self.lag_ms else None,
            "ops": {name: c.to_dict() for name, c in self.ops.items()},
            "first_errors": list(self.first_errors),
            "stopped": self.stopped,
        }

    def format_text(self) -> str:
        """A few lines for the terminal: totals, one row per operation type, lag."""
        pace = "as fast as possible" if self.speed == 0 else f"at speed {self.speed:g}"
        lines = [
            f"replayed {self.count} operations onto {self.target} in {self.elapsed_s:.3f}s "
            f"({self.ops_per_s:.1f} ops/s) {pace}; recorded span {self.recorded_s:.3f}s"
            + (f"; {self.prepared} objects prepared" if self.prepared else "")
            + (f"; {self.skipped} records skipped" if self.skipped else ""),
            f"{'op':<14}{'count':>10}{'errors':>8}{'expected':>10}{'bytes':>14}{'objects':>10}",
        ]
        for c in self.ops.values():
            lines.append(
                f"{c.op:<14}{c.count:>10}{c.errors:>8}{c.expected_errors:>10}{c.bytes:>14}{c.objects:>10}"
            )
        if self.lag_ms is not None:
            lag = self.lag_ms
            lines.append(f"lag ms: p50 {lag.p50:.3f}  p99 {lag.p99:.3f}  max {lag.max:.3f}")
        lines += [f"error: {msg}" for msg in self.first_errors]
        return "\n".join(lines)


def replay_key(file: str, endpoint: str) -> str:
    """The key a record's ``file`` names, without its bucket (or, for files, its leading ``/``)."""
    if endpoint.startswith(_LOCAL_ENDPOINTS):
        return file.lstrip("/")
    return file.partition("/")[2]


def _join(prefix: str, key: str) -> str:
    if not prefix or prefix.endswith("/"):
        return prefix + key
    return prefix + "/" + key


# -- arguments ---------------------------------------------------------------------------------
def _check_speed(speed: float) -> float:
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not math.isfinite(speed) or speed < 0:
        raise ConfigError(
            f"replay: speed={speed!r}: must be a number >= 0 "
            "(1 = recorded pace, 2 = twice as fast, 0.5 = half, 0 = as fast as possible)"
        )
    return float(speed)


def parse_ops(ops: str | Iterable[str] | None) -> frozenset[str]:
    """Operation names from ``"GET,PUT"`` or a list (any case); None: :data:`DEFAULT_OPS`."""
    if ops is None:
        return DEFAULT_OPS
    names = ops.split(",") if isinstance(ops, str) else list(ops)
    wanted = frozenset(n.strip().upper() for n in names if n.strip())
    unknown = sorted(wanted - set(OPS))
    if unknown or not wanted:
        what = f"unknown operation(s) {', '.join(unknown)}" if unknown else "no operation named"
        raise ConfigError(f"replay: ops={ops!r}: {what}; choose from {','.join(OPS)}")
    return wanted


def _check_jobs(jobs: int) -> int:
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= _MAX_JOBS:
        raise ConfigError(f"replay: jobs={jobs!r}: must be an integer from 1 to {_MAX_JOBS}")
    return jobs


def _paths(path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    items = [path] if isinstance(path, str | os.PathLike) else list(path)
    if not items:
        raise ConfigError("replay: no op-log file given")
    names = [os.fspath(p) for p in items]
    for name in names:
        if not os.path.isfile(name):
            raise ConfigError(
                f"replay: op-log {name!r} does not exist (or is not a file); name a .tsv(.zst) file"
            )
    return names


# -- the plan ----------------------------------------------------------------------------------
@dataclass(slots=True)
class _Plan:
    """What to issue: parallel lists, one entry per replayed record, in order of recorded start."""

    due_ns: array[int]  # offset from the first start, scaled by speed
    op: list[str]
    key: list[str]  # target key
    nbytes: list[int]
    whole: list[bool]  # GET: the whole object (else the first ``nbytes`` bytes)
    failed: list[bool]  # the recording shows this operation failed
    idx: array[int]  # the record's idx, for messages
    start: array[int]  # the record's start (ns since the epoch), for messages
    after: array[int]  # index of the operation this one waits for: -1 none, -2 several; see _Order
    after_many: dict[int, list[int]]  # what an operation with after == -2 waits for
    skipped: int
    recorded_s: float
    prepare: dict[str, int]  # target key -> size, for GETs/STATs that need the object


def _plan(paths: list[str], prefix: str, wanted: frozenset[str], speed: float) -> _Plan:
    records = [r for p in paths for r in read(p)]
    records.sort(key=attrgetter("start"))  # files are in completion order; issue order is by start
    sizes: dict[str, int] = {}  # source key -> largest size seen (GET/PUT)
    first_op: dict[str, str] = {}
    chosen: list[tuple[Record, str]] = []
    skipped = 0
    for r in records:
        key = replay_key(r.file, r.endpoint)
        if r.op in ("GET", "PUT") and not r.error and r.bytes > sizes.get(key, -1):
            sizes[key] = r.bytes
        if r.op in wanted:
            chosen.append((r, key))
            first_op.setdefault(key, r.op)
        else:
            skipped += 1
    start0 = chosen[0][0].start if chosen else 0
    plan = _Plan(array("q"), [], [], [], [], [], array("q"), array("q"), array("q"), {}, skipped, 0.0, {})
    scale = 1.0 if speed == 0 else 1.0 / speed
    order = _Order()
    for i, (r, key) in enumerate(chosen):
        target = _join(prefix, key)
        size = sizes.get(key, 0)
        plan.due_ns.append(round((r.start - start0) * scale) if speed else 0)
        plan.op.append(r.op)
        plan.key.append(target)
        plan.nbytes.append(r.bytes)
        plan.whole.append(r.bytes >= size)
        plan.failed.append(bool(r.error))
        plan.idx.append(r.idx)
        plan.start.append(r.start)
        deps = order.after(i, r, key)
        plan.after.append(deps[0] if len(deps) == 1 else -1 if not deps else -2)
        if len(deps) > 1:
            plan.after_many[i] = deps
        if r.op in ("GET", "STAT") and not r.error and first_op[key] != "PUT":
            plan.prepare[target] = max(size, r.bytes)
    if chosen:
        plan.recorded_s = (chosen[-1][0].start - start0) / 1e9
    return plan


class _Order:
    """Which earlier operations on the same key each one must wait for, as the recording shows.

    Concurrent workers may finish operations out of order, so a GET issued right after the PUT
    of its key could overtake it. Where the recording shows a dependency, the replay keeps it:
    a GET/STAT waits for the last PUT/DELETE of its key that had *ended* before it started; a
    PUT/DELETE waits for that write and every operation on its key that ended after it and
    before this one started. Operations that overlapped in the recording stay free to overlap
    (32 threads reading one object still do). LIST and bucket operations wait for nothing.
    """

    __slots__ = ("_keys",)

    def __init__(self) -> None:
        # key -> [pending [(end, i, is_write)] not yet ended, last ended write, ended since it]
        self._keys: dict[str, list[Any]] = {}

    def after(self, i: int, r: Record, key: str) -> list[int]:
        """What operation ``i`` waits for (records arrive in start order); empty when nothing."""
        write = r.op in ("PUT", "DELETE")
        if not write and r.op not in ("GET", "STAT"):
            return []
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = [[], -1, []]
        pending = state[0]
        if pending:
            ended = [item for item in pending if item[0] <= r.start]
            if ended:
                state[0] = pending = [item for item in pending if item[0] > r.start]
                for _end, j, was_write in sorted(ended):
                    if was_write:
                        state[1], state[2] = j, [j]
                    else:
                        state[2].append(j)
        pending.append((r.end, i, write))
        if write:
            return list(state[2])
        return [state[1]] if state[1] >= 0 else []


# -- running -----------------------------------------------------------------------------------
class _Runner:
    """The dispatcher's shared state and the workers' loop."""

    def __init__(
        self, plan: _Plan, store: Store, target: ObjectUri, jobs: int, continue_on_error: bool
    ) -> None:
        from .datagen import DataGenerator

        self.plan = plan
        self.store = store
        self.target = target
        self.jobs = jobs
        self.continue_on_error = continue_on_error
        self.gen = DataGenerator()
        self.put_bodies = _parallel.ByteBudget(store.config.max_bytes_in_flight)
        self.queue: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self.stop = threading.Event()
        self.lags = array("q", [-1]) * len(plan.op)  # ns late per operation; -1: not run
        self.t0 = 0
        self.totals: list[dict[str, list[int]]] = []  # one per worker, merged at the end
        self.errors: list[str] = []
        self.fatal: BaseException | None = None
        self.fatal_msg = ""
        self.ready = threading.Semaphore(0)  # one release per started worker
        self.done = bytearray(len(plan.op))  # 1 once an operation has finished (or was skipped)
        self.done_cond = threading.Condition()
        self.waiting = 0  # workers waiting in _wait_for
        self.lock = threading.Lock()
        self.calls: dict[str, Callable[[int], tuple[int, int]]] = {
            "GET": self._get, "PUT": self._put, "STAT": self._stat, "LIST": self._list,
            "DELETE": self._delete, "CREATE_BUCKET": self._create_bucket, "DELETE_BUCKET": self._delete_bucket,
        }  # fmt: skip

    # Each call returns (bytes, objects).
    def _get(self, i: int) -> tuple[int, int]:
        key, n = self.plan.key[i], self.plan.nbytes[i]
        if n > STREAM_MIN:  # counted as it arrives, not held (see STREAM_MIN)
            return self.store.drain(key, None if self.plan.whole[i] else (0, n))[0], 1
        if self.plan.whole[i]:
            return memoryview(self.store.get(key)).nbytes, 1
        return memoryview(self.store.get_range(key, 0, n)).nbytes, 1

    def _put(self, i: int) -> tuple[int, int]:
        n = self.plan.nbytes[i]
        with self.put_bodies.holding(n):  # one PUT sends its object whole: bound them all
            self.store.put(self.plan.key[i], self.gen.object(n))
        return n, 1

    def _stat(self, i: int) -> tuple[int, int]:
        self.store.head(self.plan.key[i])
        return 0, 1

    def _list(self, i: int) -> tuple[int, int]:
        return 0, sum(1 for _ in self.store.list(self.plan.key[i]))

    def _delete(self, i: int) -> tuple[int, int]:
        self.store.delete(self.plan.key[i])
        return 0, 1

    def _create_bucket(self, i: int) -> tuple[int, int]:
        from . import ops

        ops.create_bucket(self.target.store_uri)
        return 0, 0

    def _delete_bucket(self, i: int) -> tuple[int, int]:
        from . import ops

        ops.delete_bucket(self.target.store_uri)
        return 0, 0

    def worker(self) -> None:
        """Take indices off the queue until the sentinel; run each unless stopping."""
        totals: dict[str, list[int]] = {}
        with self.lock:
            self.totals.append(totals)
        self.ready.release()
        get, stop, done, after = self.queue.get, self.stop, self.done, self.plan.after
        while True:
            i = get()
            if i is None:
                return
            try:
                if stop.is_set():
                    continue  # drain what the dispatcher queued before it saw the stop
                d = after[i]
                if d >= 0:
                    if not done[d]:
                        self._wait_for(d)
                elif d == -2:
                    for d in self.plan.after_many[i]:
                        if not done[d]:
                            self._wait_for(d)
                self._run_one(i, totals)
            finally:
                done[i] = 1
                if self.waiting:
                    with self.done_cond:
                        self.done_cond.notify_all()

    def _wait_for(self, d: int) -> None:
        """Block until operation ``d`` has finished (it was dequeued earlier, so it is running)."""
        with self.done_cond:
            self.waiting += 1
            try:
                while not self.done[d]:
                    self.done_cond.wait(1.0)
            finally:
                self.waiting -= 1

    def _run_one(self, i: int, totals: dict[str, list[int]]) -> None:
        """Issue operation ``i``; count it (and its bytes, or its error) in this worker's ``totals``."""
        plan = self.plan
        late = time.perf_counter_ns() - self.t0 - plan.due_ns[i]
        self.lags[i] = late if late > 0 else 0
        op = plan.op[i]
        acc = totals.get(op)
        if acc is None:
            acc = totals[op] = [0, 0, 0, 0, 0]  # count, errors, expected errors, bytes, objects
        acc[0] += 1
        try:
            nbytes, nobj = self.calls[op](i)
        except Exception as exc:  # noqa: BLE001 - counted, reported, maybe fatal
            acc[1] += 1
            if plan.failed[i]:
                acc[2] += 1
            else:
                self._error(i, exc)
            return
        acc[3] += nbytes
        acc[4] += nobj

    def _error(self, i: int, exc: Exception) -> None:
        uri = str(self.target.with_key(self.plan.key[i]))
        when = format_ts(self.plan.start[i])
        msg = f"{self.plan.op[i]} {uri} (record idx {self.plan.idx[i]}, recorded at {when}): {exc}"
        with self.lock:
            if len(self.errors) < _MAX_ERRORS_KEPT:
                self.errors.append(msg)
            if self.continue_on_error or self.fatal is not None:
                return
            self.fatal, self.fatal_msg = exc, msg
        self.stop.set()

    def dispatch(self, speed: float) -> None:
        """Queue every operation at its time (the calling thread), then the workers' sentinels."""
        put, due, stop = self.queue.put, self.plan.due_ns, self.stop
        clock = time.perf_counter_ns
        self.t0 = t0 = clock()
        try:
            if speed == 0:
                for i in range(len(due)):
                    if stop.is_set():
                        break
                    put(i)
                return
            for i, offset in enumerate(due):
                wait = t0 + offset - clock()
                if wait > 0 and stop.wait(wait / 1e9):
                    break
                if stop.is_set():
                    break
                put(i)
        finally:
            for _ in range(self.jobs):
                put(None)

    def run(self, speed: float) -> float:
        """Dispatch and wait for the workers; the elapsed seconds."""
        pool = _parallel.executor()
        futures = [pool.submit(self.worker) for _ in range(self.jobs)]
        deadline = time.monotonic() + _READY_WAIT_S
        for _ in futures:  # start the clock once the workers run, so the first ops are not late
            if not self.ready.acquire(timeout=max(0.0, deadline - time.monotonic())):
                break  # a busy shared pool: go on, late workers join when they can
        try:
            self.dispatch(speed)
        except BaseException:
            self.stop.set()  # Ctrl-C: workers drain the queue and leave
            raise
        finally:
            for f in futures:
                f.result()
        return (time.perf_counter_ns() - self.t0) / 1e9


def _prepare(plan: _Plan, target: ObjectUri, jobs: int) -> int:
    """Create the objects replayed GETs/STATs read, at their recorded sizes, without op-logging them."""
    if not plan.prepare:
        return 0
    from .datagen import DataGenerator

    store = open_store(target)  # not resolve(): preparation is not part of the replayed workload
    gen = DataGenerator()
    items = sorted(plan.prepare.items())
    _parallel.map_bounded(lambda kv: put_generated(str(target.with_key(kv[0])), store, kv[0], gen, kv[1]),
                          items, jobs)  # fmt: skip
    return len(items)


def _result(runner: _Runner, paths: list[str], target: str, speed: float, jobs: int, prepared: int,
            elapsed: float) -> ReplayResult:  # fmt: skip
    merged: dict[str, list[int]] = {}
    for totals in runner.totals:
        for op, acc in totals.items():
            into = merged.setdefault(op, [0, 0, 0, 0, 0])
            for k, v in enumerate(acc):
                into[k] += v
    counts = {op: OpCount(op, *merged[op]) for op in OPS if op in merged}
    lag = None
    if speed:
        lag = Latency.of(array("q", (x for x in runner.lags if x >= 0)))
    return ReplayResult(
        tuple(paths), target, speed, jobs, counts, runner.plan.skipped, prepared,
        runner.plan.recorded_s, elapsed, lag, tuple(runner.errors), runner.fatal is not None,
    )  # fmt: skip


def replay(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    target: str,
    *,
    speed: float = 1.0,
    ops: str | Iterable[str] | None = None,
    jobs: int = 32,
    prepare: bool = False,
    continue_on_error: bool = False,
) -> ReplayResult:
    """Re-issue the operations of op-log ``path`` (or several, merged by time) under ``target``.

    ``target`` is a URI prefix (``s3://bucket/replay/``); a record's key, without its bucket, is
    appended to it. ``speed`` scales the recorded timing (2 = twice as fast; 0 = as fast as
    possible). ``ops`` picks operation types (``"GET,PUT"``; default GET, PUT, STAT, LIST, DELETE;
    CREATE_BUCKET/DELETE_BUCKET only when named). ``jobs`` worker threads issue them (one
    for an in-process target such as mem://).
    ``prepare`` first creates, at their recorded sizes, the objects that GETs and STATs read.
    The first failure of an operation that succeeded in the recording raises
    :class:`ReplayError` unless ``continue_on_error``. With the op-log on
    (:func:`s3dlio.init_op_log`), the replayed operations are logged; preparation is not.
    """
    speed = _check_speed(speed)
    wanted = parse_ops(ops)
    jobs = _check_jobs(jobs)
    paths = _paths(path)
    parsed = parse(target)
    from .ops import resolve

    _, store = resolve(parsed)
    if store.in_process:
        jobs = 1  # nothing to overlap: more threads only hand the GIL around (20,000 ops: 136k/s vs 12k/s)
    plan = _plan(paths, parsed.key, wanted, speed)
    prepared = _prepare(plan, parsed, jobs) if prepare else 0
    runner = _Runner(plan, store, parsed, jobs, continue_on_error)
    elapsed = runner.run(speed)
    result = _result(runner, paths, target, speed, jobs, prepared, elapsed)
    if runner.fatal is not None:
        hint = "; pass continue_on_error=True (--continue-on-error) to go on past failures"
        if isinstance(runner.fatal, NotFoundError) and not prepare:
            hint += ", or prepare=True (--prepare) to create the objects GETs read first"
        raise ReplayError(f"replay stopped: {runner.fatal_msg}{hint}", result) from runner.fatal
    return result
