"""Bars of each peer's throughput ÷ s3dlio's, per workload, from ``compare_peers.py --json``.

python benchmarks/plot_peers.py results.json docs/peers.png
"""

from __future__ import annotations

import json
import sys
from typing import Any

COLORS = {"obstore": "#4c72b0", "boto3": "#dd8452", "s3torchconnector": "#55a868", "s3dlio-0.10": "#8172b3",
          "s3dlio-files": "#937860", "s5cmd": "#c44e52"}  # fmt: skip


def plot(results: list[dict[str, Any]], columns: list[str], path: str, subtitle: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(r["workload"] for r in results))
    by = {(r["workload"], r["client"]): r for r in results}
    width = 0.8 / max(1, len(columns))
    fig, ax = plt.subplots(figsize=(13, 5))
    for i, peer in enumerate(columns):
        xs, ys = [], []
        for j, w in enumerate(workloads):
            r = by.get((w, peer))
            if r:
                xs.append(j - 0.4 + width * (i + 0.5))
                ys.append(r["rate"] / by[(w, "s3dlio")]["rate"])
        bars = ax.bar(xs, ys, width, label=peer, color=COLORS.get(peer))
        ax.bar_label(bars, fmt="%.2f", fontsize=6, rotation=90, padding=2)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_yscale("log", base=2)
    ratios = [r["rate"] / by[(r["workload"], "s3dlio")]["rate"] for r in results if r["client"] in columns]
    low, high = min([0.5, *ratios]) / 1.3, max([2.0, *ratios]) * 1.4
    ax.set_ylim(low, high)
    ticks = [2.0**e for e in range(-8, 8) if low <= 2.0**e <= high]
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_ylabel("throughput ÷ s3dlio's (log scale; < 1: slower than s3dlio)")
    ax.set_xticks(range(len(workloads)), workloads, rotation=30, ha="right", fontsize=8)
    ax.set_title(
        "Peers' wall throughput relative to s3dlio" + (f" ({subtitle})" if subtitle else ""), fontsize=10
    )
    ax.legend(fontsize=8, ncols=len(columns), loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        data = json.load(f)
    meta = data["meta"]
    plot(data["results"], data["columns"], sys.argv[2],
         f"{meta['mode']} run, {meta['date']}, {meta['cores']} cores, loopback")  # fmt: skip


if __name__ == "__main__":
    main()
