"""The result of a benchmark: per-op and overall statistics, per-rank counts, a table and JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._redact import redact
from ..oplog import format_ts
from ..ops import endpoint_stats
from ..sizes import format_size
from .stats import OpResult, Samples, op_results, timeline

if TYPE_CHECKING:
    from .options import BenchOptions
    from .runner import LocalRun

__all__ = ["BenchResult"]


@dataclass
class BenchResult:
    """What ``s3dlio.bench.run`` returns (the merged result on rank 0 of a distributed run)."""

    workload: str
    target: str
    base: str
    options: BenchOptions
    world: int
    ops: dict[str, OpResult]
    total: OpResult
    window: tuple[int, int]
    window_overlapped: bool
    stopped_by: str
    ranks: list[dict[str, Any]]
    phases: dict[str, tuple[int, int]]
    messages: dict[str, int]
    notes: list[str] = field(default_factory=list)
    samples: Samples | None = field(default=None, repr=False)
    #: With several endpoints (``S3DLIO_ENDPOINTS``): each one's requests, bytes, errors and
    #: mean latency in this process, preparation and cleanup included.
    endpoints: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def build(cls, opts: BenchOptions, target: str, base: str, runs: list[LocalRun],
              notes: list[str]) -> BenchResult:  # fmt: skip
        """Merge the runs of every rank (one run when not distributed)."""
        samples = Samples.merge([r.samples for r in runs]) if len(runs) > 1 else runs[0].samples
        per_op, total = op_results(samples)
        t0, t1, overlapped = samples.window()
        phases = {name: (min(r.phases[name][0] for r in runs), max(r.phases[name][1] for r in runs))
                  for name in runs[0].phases}  # fmt: skip
        ranks = []
        for r in runs:
            _, rank_total = op_results(r.samples)
            ranks.append({"rank": r.rank, "count": rank_total.count, "errors": rank_total.errors,
                          "bytes": rank_total.bytes, "ops_per_s": rank_total.ops_per_s,
                          "mib_per_s": rank_total.mib_per_s, "stopped_by": r.stopped_by,
                          "prepared": r.prepared, "cleaned": r.cleaned})  # fmt: skip
        reasons = [r.stopped_by for r in runs]
        extra = [n for r in runs for n in r.notes]
        if (t1 - t0) < 1e9:
            extra.append(
                f"the measured window is {(t1 - t0) / 1e9:.3f} s: rates are rough; run longer (-d 10s)"
            )
        return cls(opts.workload, target, base, opts, len(runs), per_op, total, (t0, t1), overlapped,
                   max(set(reasons), key=reasons.count), ranks, phases, samples.messages,
                   [*notes, *dict.fromkeys(extra)], samples, endpoint_stats())  # fmt: skip

    @property
    def window_s(self) -> float:
        return max(self.window[1] - self.window[0], 0) / 1e9

    @property
    def run_s(self) -> float:
        start, end = self.phases["run"]
        return (end - start) / 1e9

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (``s3dlio bench --json``); the texts that quote URIs or errors redacted."""
        origin = self.phases["run"][0]
        series = timeline(self.samples, origin) if self.samples is not None else None
        return {
            "workload": self.workload,
            "target": redact(self.target),
            "prefix": redact(self.base),
            "options": self.options.to_dict(),
            "ranks": self.world,
            "workers": self.options.concurrent * self.world,
            "stopped_by": self.stopped_by,
            "run_s": self.run_s,
            "window": {
                "start": format_ts(self.window[0]),
                "end": format_ts(self.window[1]),
                "seconds": self.window_s,
                "all_workers_running": self.window_overlapped,
            },  # fmt: skip
            "phases": {k: {"start": format_ts(a), "end": format_ts(b)} for k, (a, b) in self.phases.items()},
            "total": self.total.to_dict(),
            "ops": {name: r.to_dict() for name, r in self.ops.items()},
            "per_rank": self.ranks,
            "errors": [{"message": redact(m), "count": n} for m, n in self.messages.items()],
            "timeline": {k: [round(float(x), 3) for x in v] for k, v in series.items()} if series else None,
            "notes": [redact(n) for n in self.notes],
            "endpoints": self.endpoints,
        }

    def format_table(self) -> str:
        """A header, one row per operation (plus ALL for mixes), then errors and notes; redacted."""
        o = self.options
        who = (
            f"{o.concurrent} workers" if o.workload != "loader" else f"1 consumer, {o.concurrent} prefetched"
        )
        who += f" x {self.world} ranks" if self.world > 1 else ""
        window = (
            "every worker running" if self.window_overlapped else "workers never all ran at once: whole run"
        )
        lines = [
            f"bench {self.workload} {self.target}  ({who}, objects {o.size}, prefix {self.base})",
            f"run {self.run_s:.2f} s (stopped: {self.stopped_by}); measured window {self.window_s:.2f} s ({window})",
        ]
        show_objs = any(r.objects != r.count - r.errors for r in self.ops.values())
        head = (f"{'op':<8}{'count':>9}{'errors':>8}{'bytes':>12}{'MiB/s':>10}{'ops/s':>10}"
                + (f"{'objs/s':>10}" if show_objs else "")
                + f"{'mean ms':>9}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}{'ttfb p50':>10}{'ttfb p99':>10}")  # fmt: skip
        lines += [head, "-" * len(head)]
        rows = list(self.ops.values())
        if len(rows) > 1:
            rows.append(self.total)
        for r in rows:
            lat, ttfb = r.latency_ms, r.ttfb_ms
            lat_cols = (f"{lat.mean:>9.3f}{lat.p50:>9.3f}{lat.p90:>9.3f}{lat.p99:>9.3f}{lat.max:>9.3f}"
                        if lat else f"{'-':>9}" * 5)  # fmt: skip
            ttfb_cols = f"{ttfb.p50:>10.3f}{ttfb.p99:>10.3f}" if ttfb else f"{'-':>10}{'-':>10}"
            objs = f"{r.objects_per_s:>10.1f}" if show_objs else ""
            lines.append(f"{r.op:<8}{r.count:>9}{r.errors:>8}{format_size(r.bytes):>12}"
                         f"{r.mib_per_s:>10.2f}{r.ops_per_s:>10.1f}{objs}{lat_cols}{ttfb_cols}")  # fmt: skip
        if self.world > 1:
            lines.append("per rank: " + ", ".join(f"rank {d['rank']} {d['count']} ops {d['mib_per_s']:.1f} MiB/s"
                                                  for d in self.ranks))  # fmt: skip
        for msg, n in self.messages.items():
            lines.append(f"error x{n}: {msg}")
        for e in self.endpoints:
            latency = "-" if e["mean_latency_ms"] is None else f"{e['mean_latency_ms']:.3f} ms"
            lines.append(f"endpoint {e['endpoint']}: {e['requests']} requests, {format_size(e['bytes'])}, "
                         f"{e['errors']} errors, mean {latency}")  # fmt: skip
        lines += [f"note: {n}" for n in self.notes]
        return redact("\n".join(lines))
