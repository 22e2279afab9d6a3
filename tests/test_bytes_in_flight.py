"""Batch calls keep max_bytes_in_flight: measured on a real filesystem store by counting the
bytes its calls hold at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

import s3dlio
from s3dlio._parallel import ByteBudget, map_bounded
from s3dlio.ops import resolve

SIZE = 64 * 1024


class _Meter:
    """Wraps a store method: tracks the most bytes its running calls held at once."""

    def __init__(self) -> None:
        self.held = 0
        self.peak = 0
        self.crowded = 0  # calls that started while others already held more than the budget
        self.budget = 4 * SIZE
        self.lock = threading.Lock()

    def wrap(self, fn: Any, size_of: Any) -> Any:
        def measured(*args: Any) -> Any:
            n = size_of(*args)
            with self.lock:
                self.crowded += self.held >= self.budget
                self.held += n
                self.peak = max(self.peak, self.held)
            try:
                time.sleep(0.005)  # overlap, as a network call would
                return fn(*args)
            finally:
                with self.lock:
                    self.held -= n

        return measured


def test_byte_budget_admits_one_call_even_when_it_alone_is_too_big() -> None:
    budget = ByteBudget(100)
    with budget.holding(1000):
        pass
    held = []
    meter = threading.Lock()
    active = [0]

    def one(n: int) -> None:
        with budget.holding(n):
            with meter:
                active[0] += n
                held.append(active[0])
            time.sleep(0.002)
            with meter:
                active[0] -= n

    map_bounded(one, [40] * 30, 16)
    assert max(held) <= 100


def test_get_many_and_put_many_stay_within_the_byte_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s3dlio.configure(max_bytes_in_flight=4 * SIZE)
    uris = [f"file://{tmp_path}/o{i}" for i in range(40)]
    _, store = resolve(uris[0])
    puts, gets = _Meter(), _Meter()
    monkeypatch.setattr(store, "put", puts.wrap(store.put, lambda key, data: memoryview(data).nbytes))
    monkeypatch.setattr(store, "get", gets.wrap(store.get, lambda key: SIZE))

    s3dlio.put_many([(u, bytes([i]) * SIZE) for i, u in enumerate(uris)], max_in_flight=16)
    assert puts.peak <= 4 * SIZE

    got = s3dlio.get_many(uris, max_in_flight=16)
    assert [bytes(memoryview(g)[:1])[0] for g in got] == list(range(40))
    # sizes are unknown until the first responses: the first wave (16) is bounded by count (the
    # 12 after the first four crowd), every later request by bytes, the first wave's included.
    # Without the budget nearly all 40 would start crowded.
    assert gets.crowded <= 12
    gets.crowded = 0
    stats = s3dlio.get_many_stats(uris, max_in_flight=16)
    assert stats.objects == 40 and stats.bytes == 40 * SIZE
    assert gets.crowded <= 12
