"""Raw samples of a run and the statistics made from them.

Workers append to their own :class:`Recorder` (no lock on the hot path); the runner joins them
into :class:`Samples`, flat numpy columns that also travel between ranks. Percentiles come from
:class:`s3dlio.oplog.Latency` (the op-log summary's code), so ``s3dlio bench`` and
``s3dlio oplog summarize`` compute a latency distribution the same way.

The *measured window* runs from when every worker has issued its first request to when the
first worker finished its last one; throughput counts each request by the fraction of it that
lies inside the window, so warm-up and the ragged end do not dilute or inflate the rate.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..oplog.summary import Latency

__all__ = ["OPS", "OpResult", "Recorder", "Samples", "op_results", "timeline"]

#: Operation names, as the op-log writes them; samples store the index.
OPS = ("GET", "PUT", "STAT", "LIST", "DELETE")
_MiB = float(1 << 20)
_COLUMNS = ("op", "start", "end", "ttfb", "bytes", "objects", "ok")
_WIDTH = len(_COLUMNS)
_MAX_MESSAGES = 5


class Recorder:
    """One worker's samples: rows of 7 int64 in one flat array (one ``extend`` per request).

    ``done_bytes`` and ``failed`` are live totals for the progress line and ``--autoterm``.
    """

    __slots__ = ("rows", "done_bytes", "failed", "messages")

    def __init__(self) -> None:
        self.rows = array("q")
        self.done_bytes = self.failed = 0
        self.messages: dict[str, int] = {}

    @property
    def done(self) -> int:
        """Requests recorded so far."""
        return len(self.rows) // _WIDTH

    def add(self, op: int, start: int, end: int, first_byte: int | None, nbytes: int, objects: int,
            error: str | None = None) -> None:  # fmt: skip
        """Record one request (times in ``time.time_ns()``)."""
        ttfb = -1 if first_byte is None else first_byte - start
        self.rows.extend((op, start, end, ttfb, nbytes, objects, error is None))
        if error is None:
            self.done_bytes += nbytes
        else:
            self.failed += 1
            if len(self.messages) < _MAX_MESSAGES or error in self.messages:
                self.messages[error] = self.messages.get(error, 0) + 1

    def table(self) -> np.ndarray:
        """The rows as an ``(n, 7)`` int64 array (a view, no copy)."""
        return np.frombuffer(self.rows, dtype=np.int64).reshape(-1, _WIDTH)


@dataclass
class Samples:
    """Every request of a run (one rank, or all ranks merged), as numpy columns."""

    columns: dict[str, np.ndarray]
    #: (first start, last end) of each worker that issued a request.
    workers: list[tuple[int, int]]
    messages: dict[str, int]

    @classmethod
    def join(cls, recorders: list[Recorder]) -> Samples:
        tables = [r.table() for r in recorders if len(r.rows)]
        rows = np.concatenate(tables) if tables else np.empty((0, _WIDTH), np.int64)
        cols = {c: np.ascontiguousarray(rows[:, i]) for i, c in enumerate(_COLUMNS)}
        workers = [(int(t[:, 1].min()), int(t[:, 2].max())) for t in tables]
        return cls(cols, workers, _top([r.messages for r in recorders]))

    @classmethod
    def merge(cls, parts: list[Samples]) -> Samples:
        cols = {c: np.concatenate([p.columns[c] for p in parts]) for c in _COLUMNS}
        return cls(cols, [w for p in parts for w in p.workers], _top([p.messages for p in parts]))

    def __len__(self) -> int:
        return len(self.columns["op"])

    def window(self) -> tuple[int, int, bool]:
        """``(start, end, overlapped)``: the measured window; the whole span when workers never overlapped."""
        if not self.workers:
            return 0, 0, False
        t0 = max(w[0] for w in self.workers)
        t1 = min(w[1] for w in self.workers)
        if t1 > t0:
            return t0, t1, True
        return min(w[0] for w in self.workers), max(w[1] for w in self.workers), False


def _top(tallies: list[dict[str, int]]) -> dict[str, int]:
    """The most frequent error messages of several tallies, added up."""
    out: dict[str, int] = {}
    for tally in tallies:
        for msg, n in tally.items():
            out[msg] = out.get(msg, 0) + n
    return dict(sorted(out.items(), key=lambda kv: -kv[1])[:_MAX_MESSAGES])


@dataclass(frozen=True)
class OpResult:
    """Counts over the whole run; rates over the measured window; latencies of successful requests."""

    op: str
    count: int
    errors: int
    objects: int
    bytes: int
    window_s: float
    ops_per_s: float
    mib_per_s: float
    objects_per_s: float
    latency_ms: Latency | None
    ttfb_ms: Latency | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op, "count": self.count, "errors": self.errors, "objects": self.objects,
            "bytes": self.bytes, "window_s": self.window_s, "ops_per_s": self.ops_per_s,
            "mib_per_s": self.mib_per_s, "objects_per_s": self.objects_per_s,
            "latency_ms": self.latency_ms.to_dict() if self.latency_ms else None,
            "ttfb_ms": self.ttfb_ms.to_dict() if self.ttfb_ms else None,
        }  # fmt: skip


def _latency(ns: np.ndarray) -> Latency | None:
    return Latency.of(memoryview(np.ascontiguousarray(ns, dtype=np.int64)))  # type: ignore[arg-type]


def _result(name: str, s: Samples, mask: np.ndarray, t0: int, t1: int) -> OpResult:
    c = s.columns
    good = mask & (c["ok"] != 0)
    start, end = c["start"][good], c["end"][good]
    span = np.maximum(end - start, 1)
    inside = np.clip(np.minimum(end, t1) - np.maximum(start, t0), 0, None) / span
    w = (t1 - t0) / 1e9
    nbytes, objects = c["bytes"][good], c["objects"][good]
    ttfb = c["ttfb"][good]
    return OpResult(
        name, int(mask.sum()), int(mask.sum() - good.sum()), int(objects.sum()), int(nbytes.sum()), w,
        float(inside.sum() / w) if w > 0 else 0.0,
        float((inside * nbytes).sum() / w / _MiB) if w > 0 else 0.0,
        float((inside * objects).sum() / w) if w > 0 else 0.0,
        _latency(end - start), _latency(ttfb[ttfb >= 0]),
    )  # fmt: skip


def op_results(s: Samples) -> tuple[dict[str, OpResult], OpResult]:
    """Per-op results (in :data:`OPS` order, only those that ran) and the overall ``ALL``."""
    t0, t1, _ = s.window()
    ops = s.columns["op"]
    per_op = {name: _result(name, s, ops == i, t0, t1) for i, name in enumerate(OPS) if (ops == i).any()}
    return per_op, _result("ALL", s, np.ones(len(ops), dtype=bool), t0, t1)


def timeline(s: Samples, origin: int, width_s: float = 1.0) -> dict[str, np.ndarray]:
    """Per-bucket series since ``origin`` (ns): ``t`` (bucket start, s), ``ops_per_s``, ``mib_per_s``.

    Requests count in the bucket where they ended; failed ones are left out.
    """
    c = s.columns
    good = c["ok"] != 0
    if not good.any():
        return {"t": np.empty(0), "ops_per_s": np.empty(0), "mib_per_s": np.empty(0)}
    idx = ((c["end"][good] - origin) / 1e9 // width_s).astype(np.int64).clip(0, None)
    n = int(idx.max()) + 1
    ops = np.bincount(idx, minlength=n) / width_s
    mib = np.bincount(idx, weights=c["bytes"][good], minlength=n) / width_s / _MiB
    return {"t": np.arange(n) * width_s, "ops_per_s": ops, "mib_per_s": mib}
