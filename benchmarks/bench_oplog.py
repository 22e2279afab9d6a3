"""Op-log cost and replay rate, against the in-process store (mem://).

Run on demand: ``python benchmarks/bench_oplog.py [--objects 2000] [--rounds 15] [--replay-ops 20000]``.

1. Overhead: ``get_many`` of N x 4 KiB objects with the op-log off and on (default settings),
   alternating, several rounds; prints the medians and their ratio. mem:// is the harshest case:
   its GETs cost almost nothing, so whatever logging costs shows in full.
2. Replay rate: a synthetic recording of small operations (PUT, GET, STAT, GET, DELETE per key)
   replayed at speed 0 (ops/s, with and without the replay's own op-log), and a recording at
   2,000 ops/s replayed at speed 1 (does it keep up? lag p50/p99/max).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid

import s3dlio
from s3dlio.oplog import OpLogWriter
from s3dlio.replay import replay


def overhead(objects: int, size: int, rounds: int, tmp: str) -> None:
    base = f"mem://bench-{uuid.uuid4().hex[:8]}/"
    uris = [f"{base}obj_{i}" for i in range(objects)]
    payload = os.urandom(size)
    s3dlio.put_many([(u, payload) for u in uris])
    log = os.path.join(tmp, "overhead.tsv.zst")

    def once(logged: bool) -> tuple[float, int]:
        if logged:
            s3dlio.init_op_log(log)
        t = time.perf_counter()
        s3dlio.get_many(uris)
        secs = time.perf_counter() - t
        dropped = s3dlio.finalize_op_log() if logged else 0
        return secs, dropped

    for _ in range(3):  # warm-up: threads, caches
        once(False)
        once(True)
    off: list[float] = []
    on: list[float] = []
    dropped = 0
    for r in range(rounds):
        for logged in (False, True) if r % 2 == 0 else (True, False):
            secs, lost = once(logged)
            (on if logged else off).append(secs)
            dropped += lost
    m_off, m_on = statistics.median(off), statistics.median(on)
    print(f"get_many {objects} x {size} B from mem://, {rounds} rounds each (medians)")
    print(f"  op-log off: {m_off * 1e3:8.2f} ms  {objects / m_off:10.0f} ops/s")
    print(f"  op-log on : {m_on * 1e3:8.2f} ms  {objects / m_on:10.0f} ops/s  (entries dropped: {dropped})")
    print(f"  ratio on/off {m_on / m_off:.3f}: overhead {(m_on / m_off - 1) * 100:+.1f}%")

    def sustained(logged: bool, calls: int = 10) -> float:
        """``calls`` back-to-back batches, then every line formatted, compressed and closed."""
        if logged:
            s3dlio.init_op_log(log, lossless=True)
        t = time.perf_counter()
        for _ in range(calls):
            s3dlio.get_many(uris)
        if logged:
            s3dlio.finalize_op_log()
        return time.perf_counter() - t

    s_off = statistics.median(sustained(False) for _ in range(5))
    s_on = statistics.median(sustained(True) for _ in range(5))
    print(
        f"  sustained, 10 batches back to back + writing the log out: off {s_off * 1e3:.1f} ms, "
        f"on {s_on * 1e3:.1f} ms ({(s_on / s_off - 1) * 100:+.1f}%: the writer's formatting, paid in full)"
    )
    s3dlio.delete(base, recursive=True)


def synthetic(path: str, n: int, rate: float, size: int = 4096) -> None:
    """``n`` small operations at ``rate`` per second: PUT, GET, STAT, GET, DELETE of each key."""
    w = OpLogWriter(path, lossless=True)
    t0 = time.time_ns()
    step = round(1e9 / rate)
    for i in range(n):
        op = ("PUT", "GET", "STAT", "GET", "DELETE")[i % 5]
        start = t0 + i * step
        nbytes = size if op in ("PUT", "GET") else 0
        w.log(
            op,
            file=f"src/k{i // 5}",
            endpoint="mem://",
            start_ns=start,
            end_ns=start + step // 2,
            bytes=nbytes,
        )
    w.finalize()


def replay_rate(n: int, tmp: str) -> None:
    path = os.path.join(tmp, "fast.tsv.zst")
    synthetic(path, n, rate=10_000)
    for logged in (False, True):
        runs = []
        for _ in range(3):
            if logged:
                s3dlio.init_op_log(os.path.join(tmp, "replayed.tsv.zst"))
            t = time.perf_counter()
            result = replay(path, f"mem://rr-{uuid.uuid4().hex[:8]}/", speed=0)
            total = time.perf_counter() - t
            if logged:
                s3dlio.finalize_op_log()
            assert result.errors == 0, result.first_errors
            runs.append((result.ops_per_s, n / total))
        best = max(runs)
        print(
            f"replay {n} small ops at speed 0 onto mem:// (op-log {'on' if logged else 'off'}): "
            f"{best[0]:,.0f} ops/s issuing, {best[1]:,.0f} ops/s including reading the log (best of 3)"
        )


def keep_up(rate: float, seconds: float, tmp: str) -> None:
    path = os.path.join(tmp, "paced.tsv.zst")
    n = int(rate * seconds)
    synthetic(path, n, rate=rate)
    result = replay(path, f"mem://ku-{uuid.uuid4().hex[:8]}/", speed=1.0)
    lag = result.lag_ms
    assert lag is not None and result.errors == 0
    print(
        f"replay {n} ops recorded at {rate:,.0f} ops/s, speed 1: {result.elapsed_s:.3f} s for a "
        f"{result.recorded_s:.3f} s recording ({result.ops_per_s:,.0f} ops/s); "
        f"lag ms p50 {lag.p50:.3f} p99 {lag.p99:.3f} max {lag.max:.3f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=2000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--replay-ops", type=int, default=20_000)
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--skip-replay", action="store_true")
    args = ap.parse_args()
    print(f"cpus: {os.cpu_count()}  s3dlio {s3dlio.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_overhead:
            overhead(args.objects, args.size, args.rounds, tmp)
        if not args.skip_replay:
            replay_rate(args.replay_ops, tmp)
            keep_up(2_000, 5.0, tmp)
            keep_up(5_000, 4.0, tmp)


if __name__ == "__main__":
    main()
