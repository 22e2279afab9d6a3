"""Fetch ahead of the consumer with requests and bytes in flight both bounded.

A request is started only while fewer than ``max_in_flight`` run and the bytes fetched but
not yet handed over (plus an estimate for the running requests: the mean object size seen
so far) stay under ``max_bytes``; one request is always allowed, so an object larger than
the budget still comes through. Until the first result shows a size, two requests start.
Results come out in input order, or as they complete.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, TypeVar

from .._parallel import executor

__all__ = ["prefetch", "nbytes"]

T = TypeVar("T")
R = TypeVar("R")


def nbytes(result: Any) -> int:
    """Size of a fetched buffer (0 for anything without the buffer protocol)."""
    try:
        return memoryview(result).nbytes
    except TypeError:
        return 0


class _Budget:
    """Bytes of finished results not yet handed over, counted as each fetch ends.

    The count is kept in the fetching thread, before its future completes, so a result is
    always counted before the consumer can take it, and taking it is one subtraction: no scan
    of the requests in flight per item. Results seen so far give the mean size, the estimate
    for requests still running (or failed and not yet handed over).
    """

    def __init__(self, size: Callable[[Any], int]) -> None:
        self.size = size
        self.total = self.count = 0  # every result so far: the mean size
        self.ready_bytes = self.ready = 0  # results finished and not yet handed over
        self._lock = threading.Lock()

    def estimate(self) -> int:
        return self.total // self.count if self.count else 0

    def held(self, in_flight: int) -> int:
        """Bytes held by ``in_flight`` requests not yet handed over (finished or running)."""
        with self._lock:
            return self.ready_bytes + (in_flight - self.ready) * self.estimate()

    def measured(self, fetch: Callable[[T], R]) -> Callable[[T], tuple[R, int]]:
        """``fetch`` that counts its result here before returning it with its size."""

        def run(item: T) -> tuple[R, int]:
            result = fetch(item)
            n = self.size(result)
            with self._lock:
                self.total += n
                self.count += 1
                self.ready_bytes += n
                self.ready += 1
            return result, n

        return run

    def handed(self, n: int) -> None:
        """A finished result of ``n`` bytes left for the consumer."""
        with self._lock:
            self.ready_bytes -= n
            self.ready -= 1


def prefetch(
    fetch: Callable[[T], R],
    items: Iterable[T],
    *,
    max_in_flight: int,
    max_bytes: int,
    in_order: bool = True,
    size: Callable[[Any], int] = nbytes,
) -> Iterator[tuple[T, R | BaseException]]:
    """Yield ``(item, fetch(item) or its exception)``, fetching ahead within both bounds.

    ``size(result)`` gives the bytes a result holds (default: its buffer size).
    """
    if max_in_flight < 1 or max_bytes < 1:
        raise ValueError(f"max_in_flight={max_in_flight} max_bytes={max_bytes}: both must be at least 1")
    pool = executor()
    budget = _Budget(size)
    run = budget.measured(fetch)
    it = iter(items)
    window: deque[tuple[T, Future[tuple[R, int]]]] = deque()
    pending: dict[Future[tuple[R, int]], T] = {}
    exhausted = False

    def fill(count: int) -> None:
        nonlocal exhausted
        if exhausted:
            return
        held = budget.held(count)
        # until one result shows the object size, start only two requests (a slow start)
        limit = max_in_flight if budget.count else min(max_in_flight, 2)
        while count < limit and (count == 0 or held < max_bytes):
            try:
                item = next(it)
            except StopIteration:
                exhausted = True
                return
            future = pool.submit(run, item)
            if in_order:
                window.append((item, future))
            else:
                pending[future] = item
            count += 1
            held += budget.estimate()

    try:
        while True:
            if in_order:
                fill(len(window))
                if not window:
                    return
                item, future = window.popleft()
                settled = _settle(future, budget)
                yield item, settled
            else:
                fill(len(pending))
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    item = pending.pop(future)
                    settled = _settle(future, budget)
                    yield item, settled
    finally:  # the consumer stopped early: do not start what is queued
        for _, future in window:
            future.cancel()
        for future in pending:
            future.cancel()


def _settle(future: Future[tuple[R, int]], budget: _Budget) -> R | BaseException:
    try:
        result, n = future.result()
    except BaseException as exc:  # noqa: BLE001 - handed to the caller
        return exc
    budget.handed(n)
    return result
