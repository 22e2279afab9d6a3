"""fsspec ``cat_ranges``: 64 ranges of one object at once vs one after another, per-connection cap.

``python benchmarks/bench_fsspec.py [--ranges 64] [--range-size 1MiB] [--rate 100e6] [--rounds 3]``

Starts SeaweedFS (or uses ``--endpoint``) and ``tests/large/faultproxy.py`` in front of it,
capping each connection (100 MB/s by default, about what real S3 gives one stream), writes
one object of ``ranges x range-size`` bytes and reads the same ranges through
``s3dlio.fsspec``: ``cat_file`` in a loop (what fsspec's default ``cat_ranges`` does) and
``cat_ranges`` (concurrent, within ``max_in_flight``), each through a fresh proxy (its cap
counts from a connection's start). Prints median wall times and their ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from _common import client_env, create_bucket, median, print_table, seaweedfs
from bench_large import start_proxy

BUCKET, KEY = "bench-fsspec", "ranges.bin"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ranges", type=int, default=64)
    parser.add_argument("--range-size", default="1MiB")
    parser.add_argument("--rate", type=float, default=100e6, help="per-connection cap of the proxy, bytes/s")
    parser.add_argument("--rounds", type=int, default=3)
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

        serial: list[float] = []
        together: list[float] = []
        for _ in range(args.rounds):
            for how, times in ((one_by_one, serial), (at_once, together)):
                # a fresh proxy each time: its cap counts from each connection's start, so a
                # connection left idle would carry credit into the next measurement
                proxy, capped = start_proxy(endpoint, args.rate)
                try:
                    fs = sfs.filesystem("s3", endpoint_url=capped)
                    t0 = time.perf_counter()
                    got = how(fs)
                    times.append(time.perf_counter() - t0)
                    assert got == expected
                finally:
                    proxy.terminate()
                    proxy.wait(10)
    mib = args.ranges * size / 2**20
    rows = [
        ("cat_file one after another", f"{median(serial):.2f}", f"{mib / median(serial):.0f}", "1"),
        ("cat_ranges", f"{median(together):.2f}", f"{mib / median(together):.0f}",
         f"{median(serial) / median(together):.1f}"),
    ]  # fmt: skip
    title = (f"{args.ranges} ranges x {args.range_size} of one object, {args.rate / 1e6:.0f} MB/s per "
             f"connection, median of {args.rounds}, {os.cpu_count()} cores")  # fmt: skip
    print_table(title, ["how", "wall s", "MiB/s", "speed-up"], rows)


if __name__ == "__main__":
    main()
