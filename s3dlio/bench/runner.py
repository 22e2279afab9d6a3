"""One rank's run: prepare, start every worker at once, watch the clock, stop, clean up.

Workers are plain threads (store calls release the GIL), each looping over
:meth:`Workload.step` until the run stops: the time limit, the ``--ops`` budget (tickets
from a shared counter), ``--autoterm`` (throughput stable), or the workload running out.
The calling thread is the monitor: it draws the progress line and takes one-second
throughput windows for ``--autoterm``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from time import time_ns
from typing import TYPE_CHECKING, TextIO

from .. import _parallel
from ..errors import ConfigError
from .stats import Samples
from .workloads import Exhausted, Worker, make_workload

if TYPE_CHECKING:
    from collections.abc import Callable

    from .distributed import Comm
    from .workloads import Context, Workload

__all__ = ["LocalRun", "run_local", "stable"]

_TICK_S = 0.25
_ALL_FAILED_AFTER = 200  # requests, every one failed: stop instead of hammering a broken target


@dataclass
class LocalRun:
    """What one rank measured; picklable, so ranks can send it to rank 0."""

    rank: int
    samples: Samples
    phases: dict[str, tuple[int, int]]
    stopped_by: str
    prepared: int
    cleaned: int
    notes: list[str] = field(default_factory=list)


def stable(windows: list[float], n: int, pct: float) -> bool:
    """True when the last ``n`` windows all lie within ``pct`` percent of their mean."""
    if len(windows) < n:
        return False
    last = windows[-n:]
    mean = sum(last) / n
    return mean > 0 and all(abs(x - mean) <= mean * pct / 100 for x in last)


class _Line:
    """A progress line on stderr, redrawn in place; silent unless enabled."""

    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self.enabled, self.stream, self.drawn = enabled, stream or sys.stderr, False

    def show(self, text: str) -> None:
        if self.enabled:
            self.stream.write("\r" + text + "\x1b[K")
            self.stream.flush()
            self.drawn = True

    def clear(self) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False


def run_local(ctx: Context, comm: Comm, progress: bool) -> LocalRun:
    """Prepare, run and clean up this rank's part of the benchmark."""
    opts = ctx.opts
    line = _Line(progress)
    wl = make_workload(ctx)
    _refuse_existing(wl, comm)
    t = time_ns()
    wl.prepare(on_put=_prepare_progress(line, opts.workload) if progress else None)
    comm.barrier()  # every rank prepared: a loader may list them all
    wl.ready()
    phases = {"prepare": (t, time_ns())}
    prepared = len(wl.keys)
    workers = [wl.new_worker(i) for i in range(wl.threads or opts.concurrent)]
    notes: list[str] = []
    go, stop = threading.Event(), threading.Event()
    limit = ctx.share(opts.ops) if opts.ops is not None else None
    tickets = itertools.count()
    reasons: list[str] = []
    failures: list[BaseException] = []

    def loop(w: Worker) -> None:
        go.wait()
        step = wl.step
        try:
            while not stop.is_set() and (limit is None or next(tickets) < limit):
                step(w)
        except Exhausted as exc:
            reasons.append("exhausted")
            notes.append(str(exc))
        except BaseException as exc:  # noqa: BLE001 - a bug in a workload: re-raised below
            failures.append(exc)
        stop.set()

    threads = [threading.Thread(target=loop, args=(w,), name=f"s3dlio-bench-{w.wid}", daemon=True)
               for w in workers]  # fmt: skip
    for th in threads:
        th.start()
    comm.barrier()  # every rank ready: start together
    run_start = time_ns()
    go.set()
    try:
        reasons += _monitor(ctx, workers, stop, line)
    except KeyboardInterrupt:  # Ctrl-C: stop, report what was measured, clean up
        reasons.append("interrupted")
    stop.set()
    for th in threads:
        th.join()
    phases["run"] = (run_start, time_ns())
    wl.finish()
    line.clear()
    if failures:
        raise failures[0]
    samples = Samples.join([w.rec for w in workers])
    comm.barrier()  # no rank deletes what another may still read
    t = time_ns()
    cleaned = 0
    if not opts.noclear:
        cleaned = _cleanup(wl.store, wl.leftovers(), opts.concurrent)
        if ctx.root.scheme in ("file", "direct"):
            _prune("/" + ctx.mine, "/" + ctx.base)
    phases["cleanup"] = (t, time_ns())
    stopped_by = reasons[0] if reasons else ("ops" if limit is not None else "duration")
    return LocalRun(ctx.rank, samples, phases, stopped_by, prepared, cleaned, notes[:1])


def _refuse_existing(wl: Workload, comm: Comm) -> None:
    """Stop every rank, before anything is written, when any rank's prefix holds objects
    (:meth:`Workload.existing`): a run deletes only what it created."""
    found = comm.gather(wl.existing())
    why = comm.bcast(next((w for w in found or () if w), None))
    if why:
        raise ConfigError(why)


def _prepare_progress(line: _Line, workload: str) -> Callable[[], None]:
    """A callback counting prepared objects, redrawing the line at most every tick."""
    done = itertools.count(1)
    last = [0.0]

    def tick() -> None:
        n, now = next(done), time.monotonic()
        if now - last[0] >= _TICK_S:
            last[0] = now
            line.show(f"bench {workload}: preparing objects: {n} written")

    return tick


def _monitor(ctx: Context, workers: list[Worker], stop: threading.Event, line: _Line) -> list[str]:
    """Watch the run until it ends; return why it was stopped here (empty: it ended by itself)."""
    opts = ctx.opts
    limit_s = opts.time_limit
    t0 = time.monotonic()
    deadline = t0 + limit_s if limit_s is not None else None
    windows: list[float] = []
    last_ops = last_bytes = 0
    next_window = next_draw = t0 + 1.0
    while True:
        now = time.monotonic()
        wake = min(next_window, next_draw, deadline if deadline is not None else next_window)
        if stop.wait(max(wake - now, 0.0)):
            return []
        now = time.monotonic()
        ops = sum(w.rec.done for w in workers)
        nbytes = sum(w.rec.done_bytes for w in workers)
        errors = sum(w.rec.failed for w in workers)
        if deadline is not None and now >= deadline:
            return ["duration"]
        if ops >= _ALL_FAILED_AFTER and errors == ops:
            return ["errors"]
        if now >= next_window:
            windows.append(float(nbytes - last_bytes) if nbytes else float(ops - last_ops))
            last_ops, last_bytes, next_window = ops, nbytes, next_window + 1.0
            if opts.autoterm and stable(windows[1:], opts.autoterm_windows, opts.autoterm_pct):
                return ["autoterm"]
        if now >= next_draw:
            next_draw = now + _TICK_S
            elapsed = now - t0
            total = f"/{limit_s:.0f}s" if limit_s else ""
            line.show(f"bench {opts.workload}  {elapsed:.1f}s{total}  {ops} ops  "
                      f"{nbytes / elapsed / (1 << 20):.1f} MiB/s  {ops / elapsed:.0f} ops/s  {errors} errors")  # fmt: skip


def _prune(mine: str, base: str) -> None:
    """Remove the empty directories a file:// run leaves (this rank's, then the run's if empty)."""
    for root, _dirs, _files in sorted(os.walk(mine), key=lambda entry: -len(entry[0])):
        with contextlib.suppress(OSError):
            os.rmdir(root)
    with contextlib.suppress(OSError):
        os.rmdir(base)


def _cleanup(store: object, keys: list[str], concurrent: int) -> int:
    """Delete ``keys`` in batches of 1000, ``concurrent`` batches at a time; return how many went."""
    batches = [keys[i : i + 1000] for i in range(0, len(keys), 1000)]
    failed = _parallel.map_bounded(lambda b: len(store.delete_many(b)), batches, concurrent)  # type: ignore[attr-defined]
    return len(keys) - sum(failed)  # type: ignore[arg-type]
