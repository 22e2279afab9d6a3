"""Statistics of one or more op-logs: per operation type and overall.

Definitions (stable, since the CLI prints them and ``--json`` exports them):

- ``count`` all operations, ``errors`` those with an error; ``bytes``/``objects`` sum successful ones.
- The *window* of a type runs from its first start to its last end; throughput (MiB/s, ops/s of
  successful operations) is measured over that window, so idle time before or after does not count.
- Latency is ``end - start`` of successful operations; TTFB is ``first_byte - start`` where measured.
  Percentiles interpolate linearly between samples (numpy's default).
"""

from __future__ import annotations

import heapq
import os
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from .reader import read
from .record import Record, format_ts

__all__ = ["Latency", "OpStats", "Summary", "merge", "summarize", "summarize_files"]

_MiB = 1 << 20


@dataclass(frozen=True, slots=True)
class Latency:
    """Distribution of a duration, in milliseconds."""

    n: int
    mean: float
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, samples_ns: array[int]) -> Latency | None:
        """From integer ns samples; None when there are none."""
        if not samples_ns:
            return None
        import numpy as np  # here, not at module top: `import s3dlio` should not pay for numpy

        ms = np.frombuffer(samples_ns, dtype=np.int64).astype(np.float64) / 1e6
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(len(ms), float(ms.mean()), float(p50), float(p90), float(p99), float(ms.max()))

    def to_dict(self) -> dict[str, float]:
        return {
            "n": self.n,
            "mean": self.mean,
            "p50": self.p50,
            "p90": self.p90,
            "p99": self.p99,
            "max": self.max,
        }


@dataclass(frozen=True, slots=True)
class OpStats:
    """Totals, rates and latencies of one operation type (or of all, with ``op="ALL"``)."""

    op: str
    count: int
    errors: int
    objects: int
    bytes: int
    start_ns: int
    end_ns: int
    latency_ms: Latency | None
    ttfb_ms: Latency | None

    @property
    def ok(self) -> int:
        return self.count - self.errors

    @property
    def window_s(self) -> float:
        return max(self.end_ns - self.start_ns, 0) / 1e9

    @property
    def mib_per_s(self) -> float:
        w = self.window_s
        return self.bytes / _MiB / w if w > 0 else 0.0

    @property
    def ops_per_s(self) -> float:
        w = self.window_s
        return self.ok / w if w > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "count": self.count,
            "errors": self.errors,
            "objects": self.objects,
            "bytes": self.bytes,
            "start": format_ts(self.start_ns),
            "end": format_ts(self.end_ns),
            "window_s": self.window_s,
            "mib_per_s": self.mib_per_s,
            "ops_per_s": self.ops_per_s,
            "latency_ms": self.latency_ms.to_dict() if self.latency_ms else None,
            "ttfb_ms": self.ttfb_ms.to_dict() if self.ttfb_ms else None,
        }


@dataclass(frozen=True)
class Summary:
    """Per-type statistics (``ops``, in order of first appearance) and the overall ``total``."""

    ops: dict[str, OpStats]
    total: OpStats | None
    files: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (for ``s3dlio oplog summarize --json``)."""
        return {
            "files": list(self.files),
            "total": self.total.to_dict() if self.total else None,
            "ops": {name: s.to_dict() for name, s in self.ops.items()},
        }

    def format_table(self) -> str:
        """A fixed-width table for the terminal, one row per operation type plus ALL."""
        if self.total is None:
            return "no operations"
        head = (
            f"{'op':<14}{'count':>10}{'errors':>8}{'bytes':>12}{'window s':>10}{'MiB/s':>10}{'ops/s':>11}"
            f"{'mean ms':>10}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}{'ttfb p50':>10}{'ttfb p99':>10}"
        )
        rows = [head, "-" * len(head)]
        stats = list(self.ops.values())
        if len(stats) > 1:
            stats.append(self.total)
        for s in stats:
            lat, ttfb = s.latency_ms, s.ttfb_ms
            lat_cols = (
                f"{lat.mean:>10.3f}{lat.p50:>9.3f}{lat.p90:>9.3f}{lat.p99:>9.3f}{lat.max:>9.3f}"
                if lat
                else f"{'-':>10}{'-':>9}{'-':>9}{'-':>9}{'-':>9}"
            )
            ttfb_cols = f"{ttfb.p50:>10.3f}{ttfb.p99:>10.3f}" if ttfb else f"{'-':>10}{'-':>10}"
            rows.append(
                f"{s.op:<14}{s.count:>10}{s.errors:>8}{_human(s.bytes):>12}{s.window_s:>10.3f}"
                f"{s.mib_per_s:>10.2f}{s.ops_per_s:>11.1f}{lat_cols}{ttfb_cols}"
            )
        return "\n".join(rows)


def _human(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


class _Acc:
    """Running totals of one operation type; samples kept as compact int64 arrays."""

    __slots__ = ("count", "errors", "objects", "bytes", "start", "end", "lat", "ttfb")

    def __init__(self) -> None:
        self.count = self.errors = self.objects = self.bytes = 0
        self.start: int | None = None
        self.end: int | None = None
        self.lat: array[int] = array("q")
        self.ttfb: array[int] = array("q")

    def add(self, r: Record) -> None:
        self.count += 1
        if self.start is None or r.start < self.start:
            self.start = r.start
        if self.end is None or r.end > self.end:
            self.end = r.end
        if r.error:
            self.errors += 1
            return
        self.objects += r.n_objects
        self.bytes += r.bytes
        self.lat.append(r.end - r.start)
        if r.first_byte is not None:
            self.ttfb.append(r.first_byte - r.start)

    def stats(self, op: str) -> OpStats:
        assert self.start is not None and self.end is not None
        return OpStats(
            op, self.count, self.errors, self.objects, self.bytes, self.start, self.end,
            Latency.of(self.lat), Latency.of(self.ttfb),
        )  # fmt: skip


def summarize(records: Iterable[Record], *, files: Iterable[str] = ()) -> Summary:
    """Statistics of ``records`` (one pass; memory: 8 bytes per operation for the percentiles)."""
    per_op: dict[str, _Acc] = {}
    total = _Acc()
    for r in records:
        acc = per_op.get(r.op)
        if acc is None:
            acc = per_op[r.op] = _Acc()
        acc.add(r)
        total.add(r)
    return Summary(
        {op: acc.stats(op) for op, acc in per_op.items()},
        total.stats("ALL") if total.count else None,
        tuple(files),
    )


def merge(*paths: str | os.PathLike[str]) -> Iterator[Record]:
    """Records of several files (e.g. one per process) interleaved by start time.

    Each file is in write order, which is close to start order; ``heapq.merge`` keeps the merge
    streaming, so the output is in start order as far as the inputs are.
    """
    return heapq.merge(*(read(p) for p in paths), key=attrgetter("start"))


def summarize_files(paths: Iterable[str | os.PathLike[str]]) -> Summary:
    """Statistics of one or more op-log files taken together (``s3dlio oplog summarize FILE...``)."""
    names = [os.fspath(p) for p in paths]
    return summarize(merge(*names), files=names)
