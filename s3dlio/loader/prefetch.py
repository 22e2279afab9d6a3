"""Fetch ahead of the consumer with requests and bytes in flight both bounded.

A request is started only while fewer than ``max_in_flight`` run and the bytes fetched but
not yet handed over (plus an estimate for the running requests: the mean object size seen
so far) stay under ``max_bytes``; one request is always allowed, so an object larger than
the budget still comes through. Until the first result shows a size, two requests start. Results come out in input order, or as they complete.
"""

from __future__ import annotations

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
    """Running mean of result sizes, to estimate requests still in flight."""

    def __init__(self, size: Callable[[Any], int]) -> None:
        self.size = size
        self.total = 0
        self.count = 0

    def estimate(self) -> int:
        return self.total // self.count if self.count else 0

    def held(self, futures: Iterable[Future[Any]]) -> int:
        held = 0
        for future in futures:
            if future.done() and not future.cancelled() and future.exception() is None:
                held += self.size(future.result())
            else:
                held += self.estimate()
        return held

    def record(self, future: Future[Any]) -> None:
        if future.exception() is None:
            self.total += self.size(future.result())
            self.count += 1


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
    it = iter(items)
    window: deque[tuple[T, Future[R]]] = deque()
    pending: dict[Future[R], T] = {}
    exhausted = False

    def fill(running: Iterable[Future[Any]], count: int) -> None:
        nonlocal exhausted
        held = budget.held(running)
        # until one result shows the object size, start only two requests (a slow start)
        limit = max_in_flight if budget.count else min(max_in_flight, 2)
        while not exhausted and count < limit and (count == 0 or held < max_bytes):
            try:
                item = next(it)
            except StopIteration:
                exhausted = True
                return
            future = pool.submit(fetch, item)
            if in_order:
                window.append((item, future))
            else:
                pending[future] = item
            count += 1
            held += budget.estimate()

    try:
        while True:
            if in_order:
                fill([f for _, f in window], len(window))
                if not window:
                    return
                item, future = window.popleft()
                yield item, _settle(future, budget)
            else:
                fill(pending, len(pending))
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    item = pending.pop(future)
                    yield item, _settle(future, budget)
    finally:  # the consumer stopped early: do not start what is queued
        for _, future in window:
            future.cancel()
        for future in pending:
            future.cancel()


def _settle(future: Future[Any], budget: _Budget) -> Any:
    try:
        result = future.result()
    except BaseException as exc:  # noqa: BLE001 - handed to the caller
        return exc
    budget.record(future)
    return result
