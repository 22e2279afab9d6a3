"""Run blocking store calls on shared worker threads with bounded concurrency.

Store calls release the GIL while they wait, so threads give real parallelism. Batch calls
start at most ``max_in_flight`` loops that pull the next item from a shared iterator: no
Future per item, which matters at 4 KiB where per-op overhead is the cost.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import Context, ContextVar, copy_context
from typing import Any, ParamSpec, TypeVar, TypeVarTuple, Unpack

__all__ = [
    "ByteBudget", "executor", "run_async", "on_loop", "map_bounded", "iter_bounded", "for_each_bounded",
    "cancel", "cancelled", "stop_if_cancelled", "drain",
]  # fmt: skip

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")
_Ts = TypeVarTuple("_Ts")

_pool: ThreadPoolExecutor | None = None
_pool_pid = 0
_pool_lock = threading.Lock()
_loop: _Loop | None = None
_loop_pid = 0
_cancel = threading.Event()
_active = [0]  # batch loops running now, on every thread (see drain)
_active_lock = threading.Lock()


def cancel() -> None:
    """Stop every batch loop of this process from starting another item (Ctrl-C in the CLI).

    Loops that see it end with ``KeyboardInterrupt``; calls already running finish on their own.
    """
    _cancel.set()


def cancelled() -> bool:
    """True once :func:`cancel` was called."""
    return _cancel.is_set()


def stop_if_cancelled() -> None:
    """``KeyboardInterrupt`` once :func:`cancel` was called (Ctrl-C or SIGTERM in the CLI):
    raised inside a writer's ``with`` before its next part, it aborts the upload, so none is
    left open when the process exits; raised before one, it starts nothing."""
    if _cancel.is_set():
        raise KeyboardInterrupt


def drain(timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the running batch loops to end; True when none runs."""
    deadline = time.monotonic() + timeout
    while _active[0] > 0:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


@contextmanager
def _counted() -> Iterator[None]:
    with _active_lock:
        _active[0] += 1
    try:
        yield
    finally:
        with _active_lock:
            _active[0] -= 1


def executor() -> ThreadPoolExecutor:
    """The process-wide pool (rebuilt in a forked child, whose inherited threads are gone)."""
    global _pool, _pool_pid
    pid = os.getpid()
    if _pool is None or _pool_pid != pid:
        with _pool_lock:
            if _pool is None or _pool_pid != pid:
                _pool = ThreadPoolExecutor(max_workers=512, thread_name_prefix="s3dlio")
                _pool_pid = pid
    return _pool


def on_loop(coro: Coroutine[Any, Any, R]) -> R:
    """Run ``coro`` on the process-wide background event loop; block until it is done.

    For Rust futures whose work is many small steps (obstore reading a large body chunk by
    chunk): awaited there, the runtime polls them on its own threads, where blocking a Python
    thread on them costs a cross-thread wake-up per chunk (8 MiB GETs: 0.6 vs 0.9 CPU-s/GiB).
    """
    global _loop, _loop_pid
    pid = os.getpid()
    if _loop is None or _loop_pid != pid:
        with _pool_lock:
            if _loop is None or _loop_pid != pid:
                loop = _Loop()
                threading.Thread(target=loop.run_forever, name="s3dlio-loop", daemon=True).start()
                if _loop is None:
                    atexit.register(_let_handovers_finish)
                _loop, _loop_pid = loop, pid
    return asyncio.run_coroutine_threadsafe(coro, _loop).result()


class _Loop(asyncio.SelectorEventLoop):
    """The background loop, counting the calls other threads are making into it.

    obstore's runtime threads hand each result over with ``call_soon_threadsafe``, whose last
    step (waking the loop) runs after the result is already usable. A runtime thread still in
    there when the interpreter finalizes is ended with ``pthread_exit`` through Rust frames,
    which aborts the process: SIGABRT after a successful run. Exit waits for them instead.
    """

    def __init__(self) -> None:
        super().__init__()
        self.handing_over: list[None] = []  # append/pop: atomic, and no Python frame after the pop

    def call_soon_threadsafe(
        self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts, context: Context | None = None
    ) -> asyncio.Handle:
        self.handing_over.append(None)
        try:
            return super().call_soon_threadsafe(callback, *args, context=context)
        finally:
            self.handing_over.pop()


def _let_handovers_finish(limit: float = 2.0) -> None:
    """At exit, before finalization: wait for runtime threads inside the loop's hand-over."""
    loop = _loop
    if loop is None or _loop_pid != os.getpid():
        return
    deadline = time.monotonic() + limit
    while loop.handing_over and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(0.001)  # the thread's last steps after the pop (releasing the GIL) need the GIL once more


#: Set for a call of :func:`run_async` whose awaiting task was cancelled: the batch loops that
#: call started stop starting items (a cancelled ``put_many_async`` went on writing them all).
_batch_stop: ContextVar[threading.Event | None] = ContextVar("s3dlio_batch_stop", default=None)


async def run_async(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Await ``fn(*args, **kwargs)`` run on the pool: the body of every ``*_async`` twin.

    Cancelling the awaiting task stops the batch loops of the call from starting more items;
    the calls already running finish on their own (a request cannot be taken back)."""
    loop = asyncio.get_running_loop()
    stop = threading.Event()
    context = copy_context()
    context.run(_batch_stop.set, stop)
    call = functools.partial(context.run, functools.partial(fn, *args, **kwargs))
    try:
        return await loop.run_in_executor(executor(), call)
    except asyncio.CancelledError:
        stop.set()
        raise


def _stopped(stop: threading.Event | None) -> BaseException | None:
    """Why a batch loop must start nothing more: Ctrl-C in the CLI, or its async caller gone."""
    if _cancel.is_set():
        return KeyboardInterrupt()
    if stop is not None and stop.is_set():
        return asyncio.CancelledError()
    return None


def map_bounded(
    fn: Callable[[T], R],
    items: Sequence[T] | Iterable[T],
    max_in_flight: int,
    *,
    return_exceptions: bool = False,
) -> list[R | BaseException]:
    """``[fn(x) for x in items]`` with at most ``max_in_flight`` calls running at once.

    Results keep the input order. The first error stops new calls and is raised once the
    running ones finish, unless ``return_exceptions`` puts each error in its slot. A
    ``KeyboardInterrupt`` while waiting (or :func:`cancel`) stops new calls too.
    """
    seq = items if isinstance(items, Sequence) else list(items)
    n = len(seq)
    results: list[Any] = [None] * n
    if n == 0:
        return results
    counter = iter(range(n))
    first_error: list[BaseException] = []
    stop = _batch_stop.get()

    def worker() -> None:
        with _counted():
            for i in counter:  # next() on a range iterator is atomic under the GIL
                if first_error:
                    return
                if (why := _stopped(stop)) is not None:
                    first_error.append(why)
                    return
                try:
                    results[i] = fn(seq[i])
                except BaseException as exc:  # noqa: BLE001 - handed back to the caller
                    if return_exceptions and isinstance(exc, Exception):
                        results[i] = exc
                    else:
                        first_error.append(exc)
                        return

    workers = min(max_in_flight, n)
    if workers == 1:
        worker()
    else:
        futures: list[Future[None]] = [executor().submit(worker) for _ in range(workers - 1)]
        worker()  # the calling thread works too
        if first_error and not isinstance(first_error[0], Exception):
            raise first_error[0]  # Ctrl-C here: the others stop after their current call, unwaited
        try:
            for future in futures:
                future.result()
        except BaseException as exc:  # Ctrl-C while waiting: the workers start nothing more
            first_error.append(exc)
            raise
    if first_error:
        raise first_error[0]
    return results


class ByteBudget:
    """Bytes in flight across a batch's calls: a call waits while the running ones hold
    ``limit`` bytes between them (one call always runs, whatever its size)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held = 0
        self._cond = threading.Condition()

    @contextmanager
    def holding(self, nbytes: int) -> Iterator[None]:
        with self._cond:
            while self._held and self._held + nbytes > self.limit:
                self._cond.wait()
            self._held += nbytes
        try:
            yield
        finally:
            with self._cond:
                self._held -= nbytes
                self._cond.notify_all()


def for_each_bounded(
    fn: Callable[[T], object],
    items: Iterable[T],
    max_in_flight: int,
    *,
    on_error: Callable[[T, Exception], None] | None = None,
    caller_works: bool = True,
) -> None:
    """Call ``fn`` on every item, at most ``max_in_flight`` at once, keeping no results.

    For streams of any length (``range(10**12)``, a generator): workers pull the next item
    from one shared iterator, so memory holds only the calls running. An ``Exception`` goes to
    ``on_error`` and the batch goes on; without ``on_error`` the first one stops new calls and
    is raised once the running ones finish. ``KeyboardInterrupt`` (or :func:`cancel`) stops
    new calls and is raised. ``caller_works=False`` keeps the calling thread out of the work,
    waiting where Ctrl-C reaches it at once (a call in C, e.g. generating data, would hold
    the signal back until it returns).
    """
    it = iter(items)
    lock = threading.Lock()
    stop: list[BaseException] = []
    caller_gone = _batch_stop.get()

    def worker() -> None:
        with _counted():
            while not stop:
                if (why := _stopped(caller_gone)) is not None:
                    stop.append(why)
                    return
                with lock:
                    item = next(it, _END)
                if item is _END:
                    return
                try:
                    fn(item)  # type: ignore[arg-type]
                except Exception as exc:  # noqa: BLE001 - handed to on_error or the caller
                    if on_error is None:
                        stop.append(exc)
                        return
                    on_error(item, exc)  # type: ignore[arg-type]
                except BaseException as exc:  # noqa: BLE001 - Ctrl-C, SystemExit: end the batch
                    stop.append(exc)
                    return

    if max_in_flight < 1:
        raise ValueError(f"max_in_flight={max_in_flight}: must be at least 1")
    futures = [executor().submit(worker) for _ in range(max_in_flight - (1 if caller_works else 0))]
    try:
        if caller_works:
            worker()  # the calling thread works too
        if stop and not isinstance(stop[0], Exception):
            raise stop[0]  # Ctrl-C here: the others stop after their current call, unwaited
        for future in futures:
            future.result()
    except BaseException as exc:  # Ctrl-C while waiting: the workers start nothing more
        stop.append(exc)
        raise
    if stop:
        raise stop[0]


_END = object()


def iter_bounded(
    fn: Callable[[T], R], items: Iterable[T], max_in_flight: int
) -> Iterator[tuple[T, R | BaseException]]:
    """Yield ``(item, fn(item) or its exception)`` in input order, ``max_in_flight`` ahead.

    For streams too long to hold: only the window of running calls is in memory.
    """
    pool = executor()
    window: deque[tuple[T, Future[R]]] = deque()
    it = iter(items)
    stop = _batch_stop.get()
    try:
        for item in it:
            if (why := _stopped(stop)) is not None:
                raise why
            window.append((item, pool.submit(fn, item)))
            if len(window) >= max_in_flight:
                settled = _settle(window.popleft())
                yield settled
        while window:
            rest = _settle(window.popleft())
            yield rest
    finally:
        for _, future in window:  # the consumer stopped early: do not start what is queued
            future.cancel()


def _settle(entry: tuple[T, Future[R]]) -> tuple[T, R | BaseException]:
    item, future = entry
    try:
        return item, future.result()
    except BaseException as exc:  # noqa: BLE001 - handed to the caller
        return item, exc
