"""Benchmark settings: the workloads, object size distributions, durations and their checks.

Everything a run needs is one frozen :class:`BenchOptions`, checked in ``__post_init__`` so a
bad value fails before any request, with a message that names the option and the fix.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..sizes import format_size, parse_size

__all__ = [
    "DEFAULT_WEIGHTS",
    "WORKLOADS",
    "BenchOptions",
    "SizeSpec",
    "parse_duration",
]

#: Workload names, in the order ``--help`` lists them.
WORKLOADS = ("get", "put", "mixed", "list", "stat", "delete", "multipart", "loader")
#: warp's mix: what a read-mostly object store sees.
DEFAULT_WEIGHTS: dict[str, float] = {"GET": 45.0, "PUT": 15.0, "STAT": 30.0, "DELETE": 10.0}
#: Object size when ``--obj.size`` is not given: 1 MiB, but large objects for multipart and
#: small ones where the size does not matter to the request (quicker to prepare).
DEFAULT_SIZE = {"multipart": 64 << 20, "stat": 4 << 10, "list": 4 << 10, "delete": 4 << 10}

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | float) -> float:
    """Seconds in ``text``: ``10s``, ``1m``, ``1m30s``, ``500ms``, ``2h`` or a plain number of seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        raw = str(text).strip().lower()
        try:
            seconds = float(raw)
        except ValueError:
            parts = _DURATION.findall(raw)
            if not parts or "".join(n + u for n, u in parts) != raw:
                raise ConfigError(f"duration {text!r}: write e.g. 10s, 1m, 1m30s, 500ms or 2h") from None
            seconds = sum(float(n) * _UNIT_S[u] for n, u in parts)
    if not seconds > 0 or math.isinf(seconds):
        raise ConfigError(f"duration {text!r}: must be more than 0 seconds, e.g. 10s")
    return seconds


@dataclass(frozen=True, slots=True)
class SizeSpec:
    """Object sizes: fixed (``low == high``) or drawn log-uniformly between ``low`` and ``high``.

    Log-uniform, as warp's random sizes: each power of two between the bounds is as likely as
    the next, so small objects are not drowned by large ones.
    """

    low: int
    high: int

    def __post_init__(self) -> None:
        if self.low < 1 or self.high < self.low:
            raise ConfigError(
                f"--obj.size {self}: sizes must be at least 1 byte and the range ascending, e.g. 1MiB or 4KiB-1MiB"
            )

    @classmethod
    def parse(cls, text: str | int) -> SizeSpec:
        """``1MiB`` (fixed) or ``4KiB-1MiB`` (random between the bounds)."""
        if isinstance(text, int):
            return cls(text, text)
        low, sep, high = str(text).partition("-")
        a = _size(low, text)
        return cls(a, _size(high, text) if sep else a)

    @property
    def fixed(self) -> bool:
        return self.low == self.high

    def draw(self, rng: random.Random) -> int:
        """One size: ``low`` when fixed, else log-uniform in ``[low, high]``."""
        if self.low == self.high:
            return self.low
        return min(self.high, int(math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))))

    def __str__(self) -> str:
        return _short(self.low) if self.fixed else f"{_short(self.low)}-{_short(self.high)}"


def _short(n: int) -> str:
    """``1048576`` -> ``1MiB``, ``1536`` -> ``1.5KiB``, ``100`` -> ``100B``."""
    number, unit = format_size(n).split(" ")
    if "." in number:
        number = number.rstrip("0").rstrip(".")
    return number + unit


def _size(part: str, whole: str | int) -> int:
    try:
        n = parse_size(part)
    except ConfigError:
        raise ConfigError(f"--obj.size {whole!r}: write a size (1MiB) or a range (4KiB-1MiB)") from None
    if n < 1:
        raise ConfigError(f"--obj.size {whole!r}: objects must be at least 1 byte, e.g. 4KiB")
    return n


@dataclass(frozen=True)
class BenchOptions:
    """One benchmark run. ``duration``/``ops``: whichever ends first (``duration`` 10 s when neither)."""

    workload: str
    duration: float | None = None
    ops: int | None = None
    concurrent: int = 8
    obj_size: SizeSpec | None = None
    objects: int = 100
    prefix: str | None = None
    dedup: int = 1
    compress: float = 1.0
    object_type: str = "RAW"
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    batch: int = 1
    noclear: bool = False
    autoterm: bool = False
    autoterm_windows: int = 10
    autoterm_pct: float = 7.5
    seed: int | None = None
    distributed: bool = False
    progress: bool | None = None

    def __post_init__(self) -> None:
        if self.workload not in WORKLOADS:
            raise ConfigError(f"workload {self.workload!r}: use one of {', '.join(WORKLOADS)}")
        if self.duration is not None:
            object.__setattr__(self, "duration", parse_duration(self.duration))
        if self.ops is not None and self.ops < 1:
            raise ConfigError(f"--ops {self.ops}: must be at least 1")
        if self.concurrent < 1:
            raise ConfigError(f"--concurrent {self.concurrent}: must be at least 1")
        if self.objects < 1:
            raise ConfigError(f"--objects {self.objects}: must be at least 1")
        if self.batch < 1 or self.batch > 1000:
            raise ConfigError(f"--batch {self.batch}: must be from 1 to 1000 keys per delete request")
        size = self.obj_size
        if size is None:
            size = SizeSpec.parse(DEFAULT_SIZE.get(self.workload, 1 << 20))
        elif not isinstance(size, SizeSpec):
            size = SizeSpec.parse(size)
        object.__setattr__(self, "obj_size", size)
        from ..formats import normalize_object_type  # here: the formats import numpy

        object.__setattr__(self, "object_type", normalize_object_type(self.object_type))
        object.__setattr__(self, "weights", _weights(self.weights))
        if self.autoterm_windows < 2:
            raise ConfigError(f"--autoterm.dur {self.autoterm_windows}s: needs at least 2 one-second windows")
        if not 0 < self.autoterm_pct < 100:
            raise ConfigError(
                f"--autoterm.pct {self.autoterm_pct}: use a percentage between 0 and 100, e.g. 7.5"
            )
        if self.prefix is not None and self.prefix.startswith("/"):
            raise ConfigError(
                f"--prefix {self.prefix!r}: a prefix is relative to the target; drop the leading '/'"
            )

    @property
    def size(self) -> SizeSpec:
        assert self.obj_size is not None
        return self.obj_size

    @property
    def time_limit(self) -> float | None:
        """Seconds to run: ``duration``, else 10 s unless ``ops`` bounds the run."""
        if self.duration is not None:
            return self.duration
        return None if self.ops is not None else 10.0

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain values (for ``--json``)."""
        out = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "progress"}
        out["obj_size"] = {"low": self.size.low, "high": self.size.high, "text": str(self.size)}
        if self.workload != "mixed":
            del out["weights"]
        return out


def _weights(weights: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in weights.items():
        op = name.upper()
        if op not in DEFAULT_WEIGHTS:
            raise ConfigError(f"weight {name!r}: the mixed workload weighs get, put, stat and delete")
        if not value >= 0 or math.isinf(value):
            raise ConfigError(f"--{name.lower()} {value}: a weight must be 0 or more")
        out[op] = float(value)
    if sum(out.values()) <= 0:
        raise ConfigError(
            "mixed weights sum to 0: give at least one of --get, --put, --stat, --delete a positive weight"
        )
    return out
