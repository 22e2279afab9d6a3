"""Data generation throughput: s3dlio.datagen against dgen-py (if installed) and memcpy.

Run on demand: ``python benchmarks/bench_datagen.py [--total-mib N]``. For each setting
(dedup, compress) and object size it prints wall GB/s, GB per CPU-second (dgen-py may use
every core), the ratio of s3dlio to dgen-py, and the zstd -1 ratio actually achieved.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import zstandard

from s3dlio.datagen import DataGenerator, generate

KIB, MIB = 1024, 1024 * 1024
SETTINGS = [(1, 1), (2, 1), (1, 2), (3, 4)]
SIZES = [64 * KIB, 1 * MIB, 64 * MIB]

try:
    import dgen_py
except ImportError:  # optional peer
    dgen_py = None


def measure(make: Callable[[], Any], size: int, total: int) -> tuple[float, float]:
    """(wall GB/s, GB per CPU-second) of calling ``make`` enough times for ``total`` bytes; best of 3."""
    calls = max(1, total // size)
    make()  # warm-up: pools, page faults, thread pools
    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(3):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            make()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, max(time.process_time() - cpu, 1e-9))
    nbytes = calls * size
    return nbytes / best_wall / 1e9, nbytes / best_cpu / 1e9


def zstd_ratio(data: Any) -> float:
    raw = bytes(memoryview(data))
    return len(raw) / len(zstandard.ZstdCompressor(level=1).compress(raw))


def cases(gen: DataGenerator, size: int, dedup: int, compress: int) -> dict[str, Callable[[], Any]]:
    """The calls compared for one setting and object size."""
    buf = np.empty(size, dtype=np.uint8)
    out: dict[str, Callable[[], Any]] = {
        "s3dlio generate()": lambda: generate(size, dedup, compress),
        "s3dlio gen.object()": lambda: gen.object(size),
        "s3dlio gen.fill(buf)": lambda: gen.fill(buf),
    }
    if dgen_py is not None:
        out["dgen_py generate_data(1 thread)"] = lambda: dgen_py.generate_data(
            size, dedup, compress, max_threads=1
        )
        out["dgen_py fill_buffer(1 thread)"] = lambda: dgen_py.fill_buffer(
            buf, dedup, compress, max_threads=1
        )
        out["dgen_py fill_buffer(all cores)"] = lambda: dgen_py.fill_buffer(buf, dedup, compress)
    return out


def run(total: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for dedup, compress in SETTINGS:
        gen = DataGenerator(dedup=dedup, compress=compress)
        ours_ratio = zstd_ratio(b"".join(bytes(gen.object(MIB)) for _ in range(16)))
        dgen_ratio = float("nan")
        if dgen_py is not None:
            dgen_ratio = zstd_ratio(dgen_py.generate_data(16 * MIB, dedup, compress, max_threads=1))
        for size in SIZES:
            for name, make in cases(gen, size, dedup, compress).items():
                wall, per_cpu = measure(make, size, total)
                zstd = ours_ratio if name.startswith("s3dlio") else dgen_ratio
                setting = f"d={dedup} c={compress}"
                rows.append(
                    {
                        "setting": setting,
                        "size": size,
                        "case": name,
                        "wall": wall,
                        "cpu": per_cpu,
                        "zstd": zstd,
                    }
                )
    return rows


def memcpy_gbps(total: int) -> float:
    src = np.random.default_rng(0).integers(0, 256, 64 * MIB, dtype=np.uint8)
    dst = np.empty_like(src)
    wall, _ = measure(lambda: np.copyto(dst, src), 64 * MIB, total)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total-mib", type=int, default=256, help="bytes generated per case and round")
    args = parser.parse_args()
    total = args.total_mib * MIB
    print(f"cores: {os.cpu_count()}  memcpy (numpy copyto, 64 MiB): {memcpy_gbps(total):.2f} GB/s")
    if dgen_py is None:
        print("dgen-py not installed (pip install dgen-py): s3dlio only")
    rows = run(total)
    header = f"{'setting':<10} {'object':>8} {'case':<32} {'GB/s':>7} {'GB/cpu-s':>9} {'vs dgen 1t':>10} {'zstd -1':>8}"
    print(header)
    print("-" * len(header))
    for row in rows:
        peer = [
            r["wall"]
            for r in rows
            if r["setting"] == row["setting"]
            and r["size"] == row["size"]
            and r["case"] == "dgen_py fill_buffer(1 thread)"
        ]
        ratio = f"{row['wall'] / peer[0]:.2f}x" if peer and row["case"].startswith("s3dlio") else ""
        size = f"{row['size'] // KIB} KiB" if row["size"] < MIB else f"{row['size'] // MIB} MiB"
        print(
            f"{row['setting']:<10} {size:>8} {row['case']:<32} {row['wall']:>7.2f} {row['cpu']:>9.2f} "
            f"{ratio:>10} {row['zstd']:>8.2f}"
        )


if __name__ == "__main__":
    main()
