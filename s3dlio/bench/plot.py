"""``--plot FILE.png``: throughput and latency over time, to see warm-up, stalls and tails at a glance.

Top: MiB/s per time bucket of each operation that moves bytes, with ops/s of all operations on
the right axis (ops/s per operation when none moves bytes); the measured window is shaded. Bottom: every request's latency as a dot at its end time (log scale; at most
50,000 dots, sampled evenly) with each bucket's p50 and p99 drawn over them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from .stats import OPS

if TYPE_CHECKING:
    from .result import BenchResult

__all__ = ["plot"]

_MAX_DOTS = 50_000


def _bucket_width(span_s: float) -> float:
    """About 60 buckets, at least 10 ms and at most 1 s each."""
    return float(min(1.0, max(0.01, span_s / 60)))


def plot(result: BenchResult, path: str) -> None:
    """Write the figure of ``result`` to ``path`` (PNG, or any format matplotlib knows by extension)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install matplotlib") from None
    s = result.samples
    assert s is not None
    c = s.columns
    origin = result.phases["run"][0]
    good = c["ok"] != 0
    end_s = (c["end"] - origin) / 1e9
    lat_ms = (c["end"] - c["start"]) / 1e6
    span = float(end_s.max()) if len(end_s) else 1.0
    width = _bucket_width(span)
    nb = int(span / width) + 1
    bucket = np.clip((end_s / width).astype(np.int64), 0, nb - 1)
    t = np.arange(nb) * width + width / 2
    use_bytes = bool(c["bytes"][good].sum())

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True, constrained_layout=True)
    right = top.twinx() if use_bytes else None
    for i, name in enumerate(OPS):
        sel = good & (c["op"] == i)
        if not sel.any():
            continue
        if use_bytes and c["bytes"][sel].any():
            rate = np.bincount(bucket[sel], weights=c["bytes"][sel] / (1 << 20), minlength=nb) / width
            top.plot(t, rate, label=f"{name} MiB/s", linewidth=1.4)
        elif not use_bytes:
            top.plot(t, np.bincount(bucket[sel], minlength=nb) / width, label=f"{name} ops/s", linewidth=1.4)
        _latency_lines(bottom, bucket[sel], lat_ms[sel], t, nb, name)
    if right is not None:
        right.plot(t, np.bincount(bucket[good], minlength=nb) / width, color="black", linestyle=":",
                   linewidth=1.0, label="all ops/s")  # fmt: skip
        right.set_ylabel("ops/s (all operations)")
        right.set_ylim(bottom=0)
        right.legend(loc="lower left", fontsize=8)
    dots = np.flatnonzero(good)
    if len(dots) > _MAX_DOTS:
        dots = dots[np.linspace(0, len(dots) - 1, _MAX_DOTS).astype(np.int64)]
    bottom.scatter(end_s[dots], lat_ms[dots], s=2, alpha=0.25, color="grey", linewidths=0, label="requests")
    bad = ~good
    if bad.any():
        bottom.scatter(
            end_s[bad], np.maximum(lat_ms[bad], 1e-3), s=8, marker="x", color="red", label="errors"
        )
    w0, w1 = ((x - origin) / 1e9 for x in result.window)
    for ax in (top, bottom):
        ax.axvspan(w0, w1, color="tab:green", alpha=0.07, label="measured window" if ax is top else None)
        ax.grid(True, alpha=0.3)
    top.set_ylabel("MiB/s" if use_bytes else "ops/s")
    top.set_ylim(bottom=0)
    top.set_title(f"s3dlio bench {result.workload} {result.target} - {result.options.concurrent} workers"
                  + (f" x {result.world} ranks" if result.world > 1 else "")
                  + f", {result.options.size}, buckets of {width * 1000:.0f} ms")  # fmt: skip
    top.legend(loc="lower right", fontsize=8)
    bottom.set_yscale("log")
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("seconds since the run started")
    bottom.legend(loc="upper right", fontsize=8, ncol=3)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _latency_lines(
    ax: object, bucket: np.ndarray, lat_ms: np.ndarray, t: np.ndarray, nb: int, name: str
) -> None:
    """p50 and p99 of each bucket that has requests."""
    order = np.argsort(bucket, kind="stable")
    b, v = bucket[order], lat_ms[order]
    edges = np.searchsorted(b, np.arange(nb + 1))
    p50 = np.full(nb, np.nan)
    p99 = np.full(nb, np.nan)
    for k in range(nb):
        chunk = v[edges[k] : edges[k + 1]]
        if len(chunk):
            p50[k], p99[k] = np.percentile(chunk, [50, 99])
    line = ax.plot(t, p50, linewidth=1.4, label=f"{name} p50")[0]  # type: ignore[attr-defined]
    ax.plot(t, p99, linewidth=1.0, linestyle="--", color=line.get_color(), label=f"{name} p99")  # type: ignore[attr-defined]
