"""Payloads and byte comparisons shared by the conformance tests."""

from __future__ import annotations

import functools
from typing import Any

MiB = 1024 * 1024

# Keys are taken literally: no percent-decoding, no '+' -> ' ', unicode as is.
SPECIAL_KEYS = (
    "with space.txt",
    "ünïcödé-日本語.bin",
    "plus+sign",
    "percent%20not-decoded",
    "percent%2Fnot-a-slash",
    "mixed a+b%c=d&e.bin",
)


@functools.cache
def payload(size: int, seed: int = 0) -> bytes:
    """``size`` pseudo-random bytes, made once per session (numpy's generator: ~1 GB/s)."""
    import numpy as np

    return np.random.default_rng(seed).bytes(size)


def assert_bytes(got: Any, want: bytes) -> None:
    """``got`` (any buffer) equals ``want``; on a mismatch say where, without dumping megabytes."""
    data = memoryview(got).cast("B").tobytes()
    assert len(data) == len(want), f"size {len(data)} != expected {len(want)}"
    if data == want:
        return
    chunk = 65536
    start = next(i for i in range(0, len(want), chunk) if data[i : i + chunk] != want[i : i + chunk])
    first = next(i for i in range(start, start + chunk) if data[i] != want[i])
    raise AssertionError(
        f"bytes differ first at offset {first} of {len(want)}: "
        f"got {data[first : first + 16]!r}, expected {want[first : first + 16]!r}"
    )
