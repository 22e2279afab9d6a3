"""Benchmarks of object storage: get, put, mixed, list, stat, delete, multipart and loader workloads.

>>> from s3dlio import bench
>>> result = bench.run("get", "mem://bench/", ops=200, obj_size="64KiB", objects=20, progress=False)
>>> result.total.count
200

``s3dlio bench`` is the command-line face of :func:`run`; see ``docs/bench.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import run
    from .options import DEFAULT_WEIGHTS, WORKLOADS, BenchOptions, SizeSpec, parse_duration
    from .result import BenchResult
    from .stats import OpResult

__all__ = [
    "DEFAULT_WEIGHTS",
    "WORKLOADS",
    "BenchOptions",
    "BenchResult",
    "OpResult",
    "SizeSpec",
    "parse_duration",
    "run",
]

# Imported on first use, so ``s3dlio --help`` does not pay for numpy.
_HOME = {
    "run": ".api",
    "DEFAULT_WEIGHTS": ".options",
    "WORKLOADS": ".options",
    "BenchOptions": ".options",
    "SizeSpec": ".options",
    "parse_duration": ".options",
    "BenchResult": ".result",
    "OpResult": ".stats",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
