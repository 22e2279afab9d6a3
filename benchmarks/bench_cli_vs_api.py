"""Does ``s3dlio bench get`` measure what the Python API achieves on the same workload?

Run on demand: ``python benchmarks/bench_cli_vs_api.py [--target file:///tmp/x/] [--sizes 4KiB,1MiB]``.
For each object size it prepares ``--objects`` objects once, then alternates, ``--repeat`` times:

- ``cli``: ``python -m s3dlio.bench get TARGET --objects N -n OPS -c C --json`` (the command
  itself, in a subprocess, preparing and removing its own N objects; its measured-window MiB/s);
- ``api``: ``s3dlio.get_many_stats(uris, max_in_flight=C)`` over the same number of GETs of
  N objects of the same size, chosen at random as the bench does (its wall-clock MiB/s), also
  in a fresh interpreter: a long-lived one that just wrote gigabytes measured 25% slower here.

It prints the medians (MiB/s) and the ratios to the API (1.00 = the same; the goal: within 10%).
``cli window`` is what the command reports (the window in which every worker ran);
``cli run`` is every byte over the whole run phase, ramp-up and ragged end included, which is
how ``get_many_stats`` measures, so ``run/api`` compares like with like.
Needs a target both processes share: file:// (or s3:// with a server), not mem://.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile

import s3dlio
from s3dlio.datagen import DataGenerator
from s3dlio.sizes import parse_size


def cli_run(target: str, objects: int, ops: int, size: str, concurrent: int) -> tuple[float, float]:
    """(measured-window MiB/s, whole-run MiB/s: all bytes over the run phase) of one command."""
    cmd = [sys.executable, "-m", "s3dlio.bench", "get", target, "-n", str(ops), "-c", str(concurrent),
           "--obj.size", size, "--objects", str(objects), "--json"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    get = data["ops"]["GET"]
    return float(get["mib_per_s"]), get["bytes"] / 2**20 / data["run_s"]


_API = """
import json, random, sys
import s3dlio
uris, ops, concurrent = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(int(sys.argv[4]))
s3dlio.get_many_stats(uris[:concurrent], max_in_flight=concurrent)  # start the engine and the pool
print(s3dlio.get_many_stats([uris[rng.randrange(len(uris))] for _ in range(ops)], max_in_flight=concurrent).mib_per_s)
"""


def api_run(uris: list[str], ops: int, concurrent: int, seed: int) -> float:
    """``get_many_stats`` MiB/s, in a fresh interpreter like the command's (a long-lived one drifts)."""
    cmd = [sys.executable, "-c", _API, json.dumps(uris), str(ops), str(concurrent), str(seed)]
    return float(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", help="a file:// or s3:// prefix (default: a fresh temporary directory)")
    ap.add_argument("--sizes", default="4KiB,64KiB,1MiB,8MiB")
    ap.add_argument("--objects", type=int, default=256)
    ap.add_argument("--total", default="2GiB", help="bytes per measurement (at most 20,000 GETs)")
    ap.add_argument("--concurrent", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    target = args.target or f"file://{tempfile.mkdtemp(prefix='s3dlio-cli-vs-api-')}/"
    rng = random.Random(7)
    print(f"target {target}, {args.objects} objects, {args.concurrent} in flight, median of {args.repeat}")
    print(
        f"{'size':>8}{'GETs':>8}{'cli window':>12}{'cli run':>10}{'api':>10}{'window/api':>12}{'run/api':>9}"
    )
    for size_text in args.sizes.split(","):
        size = parse_size(size_text)
        ops = max(200, min(20_000, parse_size(args.total) // size))
        prefix = f"cli-vs-api-{size_text}/"
        gen = DataGenerator()
        uris = [f"{target}{prefix}{i:08d}" for i in range(args.objects)]
        s3dlio.put_many([(u, gen.object(size)) for u in uris], max_in_flight=args.concurrent)
        cli, run, api = [], [], []
        for _ in range(args.repeat):
            window, whole = cli_run(target, args.objects, ops, size_text, args.concurrent)
            cli.append(window)
            run.append(whole)
            api.append(api_run(uris, ops, args.concurrent, rng.randrange(1 << 30)))
        c, r, a = statistics.median(cli), statistics.median(run), statistics.median(api)
        print(f"{size_text:>8}{ops:>8}{c:>12.1f}{r:>10.1f}{a:>10.1f}{c / a:>12.2f}{r / a:>9.2f}")
        s3dlio.delete(f"{target}{prefix}", recursive=True)


if __name__ == "__main__":
    main()
