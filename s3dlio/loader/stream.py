"""One worker's pass over one epoch: positions -> prefetched objects -> samples -> transform.

The :class:`~.state.Position` is updated just before each sample is yielded, so a state
taken between two samples names exactly the next one.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import S3dlioError
from .fetch import Fetcher
from .keylist import KeyList
from .plan import EpochPlan, record_order, worker_positions
from .prefetch import prefetch
from .samples import Sample, SampleError, SampleKind, Splitter, note_transform_error, split_records
from .state import Position

__all__ = ["OnError", "Reading", "Stats", "run_epoch"]

OnError = Literal["raise", "skip"]
_WARN_LIMIT = 10


@dataclass(frozen=True)
class Reading:
    """How objects become samples; settings only, so it pickles into workers."""

    samples: SampleKind | Splitter = "object"
    transform: Callable[[Any], Any] | None = None
    group: int = 1
    fetcher: Fetcher = field(default_factory=Fetcher)
    max_in_flight: int = 16
    max_bytes: int = 512 << 20
    in_order: bool = True
    on_error: OnError = "raise"


@dataclass
class Stats:
    """What the loader skipped (``on_error="skip"``), kept on the loader."""

    skipped: int = 0
    errors: deque[tuple[str, str]] = field(default_factory=lambda: deque(maxlen=20))

    def skip(self, where: str, exc: BaseException) -> None:
        self.skipped += 1
        self.errors.append((where, f"{type(exc).__name__}: {exc}"))
        if self.skipped <= _WARN_LIMIT:
            more = "; further skips are only counted (loader.skipped)" if self.skipped == _WARN_LIMIT else ""
            warnings.warn(
                f"s3dlio loader: skipped {where}: {type(exc).__name__}: {exc}{more}",
                RuntimeWarning,
                stacklevel=4,
            )


def _fetch_error(uri: str, exc: BaseException) -> BaseException:
    """The error to raise for a failed fetch: same type when we can, always naming the URI."""
    if uri in str(exc) or not isinstance(exc, Exception):
        return exc
    if isinstance(exc, S3dlioError):
        return type(exc)(f"{uri}: {exc}")
    return SampleError(f"{uri}: {type(exc).__name__}: {exc}")


def run_epoch(keys: KeyList, plan: EpochPlan, reading: Reading, pos: Position, stats: Stats) -> Iterator[Any]:
    """Yield this worker's samples of ``pos.epoch`` from ``pos`` on, updating ``pos``."""
    rank_order = plan.rank_order(pos.epoch)
    positions = worker_positions(len(rank_order), pos.start, pos.num_workers, pos.worker_id, pos.block)
    ahead = set(pos.ahead)
    while pos.done < len(positions) and int(positions[pos.done]) in ahead:
        ahead.discard(int(positions[pos.done]))
        pos.done += 1
    todo = np.arange(pos.done, len(positions), dtype=np.int64)
    if ahead:
        todo = todo[~np.isin(positions[todo], np.fromiter(ahead, np.int64))]
    group = reading.group if reading.samples != "object" else 1
    skip_records: dict[int, int] = {pos.partial[0]: pos.partial[1]} if pos.partial else {}
    kind = reading.samples

    def load(index: int) -> tuple[int, list[Sample]]:
        uri = keys[int(rank_order[positions[index]])]
        buffer = reading.fetcher(uri)
        return memoryview(buffer).nbytes, split_records(kind, uri, buffer)

    def complete(indices: list[int]) -> None:
        for i in indices:
            ahead.add(int(positions[i]))
        while pos.done < len(positions) and int(positions[pos.done]) in ahead:
            ahead.discard(int(positions[pos.done]))
            pos.done += 1
        pos.ahead = sorted(ahead)

    attempted = yielded = 0
    skipped_before = stats.skipped
    last = int(todo[-1]) if len(todo) else -1
    results = prefetch(
        load, (int(i) for i in todo), max_in_flight=reading.max_in_flight, max_bytes=reading.max_bytes,
        in_order=reading.in_order or group > 1, size=lambda r: r[0],
    )  # fmt: skip
    pending: list[tuple[int, list[Sample]]] = []
    for index, result in results:
        attempted += 1
        if isinstance(result, BaseException):
            uri = keys[int(rank_order[positions[index]])]
            if reading.on_error == "raise" or not isinstance(result, Exception):
                raise _fetch_error(uri, result) from result
            stats.skip(uri, result)
            result = (0, [])
        pending.append((index, result[1]))
        if len(pending) < group and index != last:
            continue  # a shuffle group mixes the records of `group` consecutive objects
        indices = [i for i, _ in pending]
        samples = [s for _, part in pending for s in part]
        pending = []
        unit = int(positions[indices[0]])
        order = (
            _ONE
            if len(samples) == 1
            else record_order(len(samples), plan.shuffle and kind != "object", plan.seed, pos.epoch, unit)
        )
        start = skip_records.pop(unit, 0)
        if start >= len(order):
            complete(indices)
            pos.partial = None
            continue
        for k in range(start, len(order)):
            sample = samples[int(order[k])]
            try:
                out = sample if reading.transform is None else reading.transform(sample)
            except Exception as exc:
                if reading.on_error == "raise":
                    note_transform_error(sample, reading.transform, exc)  # type: ignore[arg-type]
                    raise
                stats.skip(sample.where, exc)
                out = _SKIP
            if k + 1 == len(order):
                complete(indices)
                pos.partial = None
            else:
                pos.partial = [unit, k + 1]
            if out is not _SKIP:
                yielded += 1
                yield out
    if attempted and not yielded and stats.skipped > skipped_before:
        where, why = stats.errors[-1]
        raise SampleError(
            f"all {attempted} objects of this worker's epoch failed or were skipped (on_error='skip'); "
            f"nothing to train on. Last error: {where}: {why}"
        )


_SKIP = object()
_ONE = (0,)  # the record order of a one-sample object: no numpy call per object
