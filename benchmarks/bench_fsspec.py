"""fsspec ``cat_ranges``: 64 ranges of one object at once vs one after another, per-connection cap.

``python benchmarks/bench_fsspec.py [--ranges 64] [--range-size 1MiB] [--rate 100e6] [--rounds 5]``

Starts SeaweedFS (or uses ``--endpoint``) and ``tests/large/faultproxy.py`` in front of it,
capping each connection (100 MB/s by default, about what real S3 gives one stream), writes
one object of ``ranges x range-size`` bytes and reads the same ranges through
``s3dlio.fsspec``: ``cat_file`` in a loop (what fsspec's default ``cat_ranges`` does) and
``cat_ranges`` (concurrent, within ``max_in_flight``), each two ways: on fresh connections (a
new proxy and filesystem per measurement, as a process's first read) and on pooled ones (one
proxy and filesystem for the run, connections kept from the round before, as a program's later
reads; the proxy caps a connection idle for a while like a new one). Clients are built before
the clock (a one-time 10-15 ms, without a request). Each way runs once unmeasured, then the
median of ``--rounds``. Prints median wall times, their ratio and the CPU seconds the
client, the proxy and the server spent in each call: on a small machine the three share the
cores, so their sum bounds how fast the ranges can arrive at once.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from _common import client_env, cpu_seconds, create_bucket, median, print_table, seaweedfs, server_cpu_seconds
from bench_large import start_proxy

BUCKET, KEY = "bench-fsspec", "ranges.bin"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ranges", type=int, default=64)
    parser.add_argument("--range-size", default="1MiB")
    parser.add_argument("--rate", type=float, default=100e6, help="per-connection cap of the proxy, bytes/s")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--endpoint", help="an S3 endpoint to use instead of starting SeaweedFS")
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from s3dlio.sizes import parse_size

    size = parse_size(args.range_size)
    with seaweedfs(args.endpoint) as endpoint:
        os.environ.update(client_env(endpoint))
        import s3dlio
        import s3dlio.fsspec as sfs

        s3dlio.configure()
        create_bucket(endpoint, BUCKET)
        data = os.urandom(args.ranges * size)
        s3dlio.put(f"s3://{BUCKET}/{KEY}", data)
        path = f"{BUCKET}/{KEY}"
        starts = [i * size for i in range(args.ranges)]
        ends = [s + size for s in starts]
        expected = [data[s:e] for s, e in zip(starts, ends, strict=True)]

        def one_by_one(fs: sfs.S3dlioFileSystem) -> list[bytes]:
            return [fs.cat_file(path, s, e) for s, e in zip(starts, ends, strict=True)]

        def at_once(fs: sfs.S3dlioFileSystem) -> list[bytes]:
            return fs.cat_ranges([path] * args.ranges, starts, ends)  # type: ignore[no-any-return]

        # fresh: a new proxy and filesystem per measurement (every connection opened inside
        # the call, as a process's first read pays); pooled: one proxy and one filesystem for
        # the whole run, its connections kept from the round before (a program's later reads)
        pooled_proxy, pooled_url = start_proxy(endpoint, args.rate)
        pooled_fs = sfs.filesystem("s3", endpoint_url=pooled_url)
        times: dict[tuple[str, str], list[tuple[float, ...]]] = {}
        try:
            for rnd in range(args.rounds + 1):
                for how in (one_by_one, at_once):
                    for connections in ("fresh", "pooled"):
                        if connections == "fresh":
                            proxy, capped = start_proxy(endpoint, args.rate)
                            fs = sfs.filesystem("s3", endpoint_url=capped)
                        else:
                            proxy, fs = pooled_proxy, pooled_fs
                        try:
                            fs._resolve(path)  # builds the S3 client, sends nothing
                            before = (cpu_seconds(), _cpu(proxy.pid), server_cpu_seconds(endpoint) or 0.0)
                            t0 = time.perf_counter()
                            got = how(fs)
                            wall = time.perf_counter() - t0
                            after = (cpu_seconds(), _cpu(proxy.pid), server_cpu_seconds(endpoint) or 0.0)
                            assert got == expected
                            # round 0: the process's first calls, printed apart from the median
                            times.setdefault((connections, how.__name__ if rnd else "first"), []).append(
                                (wall, *(b - a for a, b in zip(before, after, strict=True)))
                            )
                        finally:
                            if proxy is not pooled_proxy:
                                proxy.terminate()
                                proxy.wait(10)
        finally:
            pooled_proxy.terminate()
            pooled_proxy.wait(10)
    mib = args.ranges * size / 2**20
    rows = []
    for connections in ("fresh", "pooled"):
        one, many = ([median([t[i] for t in times[connections, name]]) for i in range(4)]
                     for name in ("one_by_one", "at_once"))  # fmt: skip
        for label, m in ((f"cat_file one after another, {connections} connections", one),
                         (f"cat_ranges, {connections} connections", many)):  # fmt: skip
            cells = (f"{m[0]:.3f}", f"{mib / m[0]:.0f}", f"{one[0] / m[0]:.1f}", *(f"{c:.3f}" for c in m[1:]))
            rows.append((label, *cells))
    title = (f"{args.ranges} ranges x {args.range_size} of one object, {args.rate / 1e6:.0f} MB/s per "
             f"connection, median of {args.rounds}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")  # fmt: skip
    print_table(
        title, ["how", "wall s", "MiB/s", "speed-up", "client CPU s", "proxy CPU s", "server CPU s"], rows
    )
    for connections in ("fresh", "pooled"):
        rounds = ", ".join(f"{t[0]:.3f}" for t in times[connections, "at_once"])
        print(f"cat_ranges per round, {connections} connections, wall s: {rounds}")
    first = times["fresh", "first"]
    print(
        f"first calls of the process (fresh connections, not in the median): one after another "
        f"{first[0][0]:.3f} s, cat_ranges {first[1][0]:.3f} s ({first[0][0] / first[1][0]:.1f}x)"
    )


def _cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (the proxy)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
