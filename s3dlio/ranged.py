"""Parallel ranged GETs of one object into one preallocated buffer.

One HTTP stream is limited per connection (real S3: about 85-90 MB/s), so a large object
is fetched as many ranges at once, each streamed (one memcpy) into its place in a buffer
allocated once (``Store.get_range_into``). Deciding needs the size, which a plain GET learns only when it is too late
to split and a HEAD costs a request that small objects cannot afford. So :func:`get` first
asks for the range ``[0, threshold)``: a smaller object comes back whole in that one request
(as zero-copy as a plain GET); only an object that fills the range costs a HEAD, and the
rest of it is fetched in parallel ranges. The threshold (32 MiB) is ``S3DLIO_RANGE_THRESHOLD``.

Each range is retried alone (:mod:`s3dlio.retry`); a body that stops early resumes with a
range from the first missing byte. The ranges of one read come from one version: the HEAD that
sizes the rest must report the first range's ETag, and a HEAD after the last range the same
ETag, size and time (else TransferError, nothing kept), as a plain GET never mixes versions.
Nor is a HEAD's size taken on trust: the range that ends where it says the object ends asks
for one byte more, so an object the HEAD makes shorter than it is (a faulty server or proxy)
raises TransferError rather than come back cut; where no range is left to ask, one byte past
the end is asked alone (an object of exactly the threshold's size).

:func:`chunks` serves callers that pass an object on (to a file, to an upload) rather than
hold it: the same first request, then the rest in ``part_size`` pieces fetched a window of
``ranges_in_flight`` at a time, so memory stays at one window whatever the object's size.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from . import _check, _parallel
from .errors import InvalidArgumentError, TransferError
from .retry import Attempts, ChangedError, retrying
from .store.base import replaced

if TYPE_CHECKING:
    from collections.abc import Buffer

    from .config import Config
    from .store.base import ObjectMeta, Store

__all__ = [
    "DEFAULT_THRESHOLD",
    "StreamBudget",
    "Version",
    "chunks",
    "fetch_into",
    "fetch_block",
    "fill",
    "get",
    "get_into",
    "range_threshold",
    "split",
    "unchanged",
]

DEFAULT_THRESHOLD = 32 * 1024 * 1024
#: Ranges in flight for one object (``S3DLIO_RANGE_IN_FLIGHT``). Measured on 2 cores through a
#: 100 MB/s-per-connection proxy: 8 ranges 385-507 MiB/s, 16 ranges 261-381 MiB/s and twice
#: the client CPU (docs/large-objects.md). Hosts with more cores and bandwidth may raise it.
DEFAULT_RANGES_IN_FLIGHT = 8


def range_threshold(config: Config) -> int:
    """Objects at least this large are fetched as parallel ranges."""
    return config.range_threshold


def ranges_in_flight(config: Config) -> int:
    """Ranges of one object fetched at once, within the batch bounds."""
    part = max(1, config.part_size)
    return max(1, min(config.range_in_flight, config.max_in_flight, config.max_bytes_in_flight // part))


def split(start: int, end: int, part: int) -> list[tuple[int, int]]:
    """``[start, end)`` cut into consecutive ranges of ``part`` bytes (the last may be shorter)."""
    return [(lo, min(lo + part, end)) for lo in range(start, end, max(1, part))]


def fetch_into(
    store: Store, key: str, start: int, dest: memoryview, *, attempts: int, etag: str | None = None,
    since: float | None = None, to_end: bool = False,
) -> int:
    """Fill ``dest`` with the object's bytes from ``start``; the count is short only at its end.

    A failed or short response is followed by a range from the first byte still missing,
    within ``attempts`` and ``total_timeout`` seconds from ``since`` (default now: a read made
    of many ranges passes its own start, so a stalled server ends all of it in that time).
    Given ``etag``, every reply must come from that version (ChangedError, not retried).
    ``to_end``: ``dest`` ends where a HEAD said the object ends; one byte more is asked, and
    a reply that has it raises TransferError (the object is longer than that HEAD said).
    """
    failures: Attempts | None = None
    got = 0
    while got < len(dest):
        try:
            n = store.get_range_into(key, start + got, start + len(dest) + (1 if to_end else 0), dest[got:], etag)
        except Exception as exc:
            if isinstance(exc, ChangedError):
                raise
            if failures is None:
                failures = Attempts(attempts, store.config.total_timeout, f"get {key}", since)
            failures.failed_with(exc)
            continue
        if n == 0:
            break  # the object ends here
        if n > len(dest) - got:
            raise _longer(_uri(store, key), start + len(dest))
        got += n
    return got


class Version:
    """The ETag every piece of one read must come from: known from a HEAD, or else the first
    reply's; a piece from another version raises TransferError (nothing of it is returned).
    ``size``: the object's size as that HEAD said (None: unknown); a block that ends there is
    checked to be the object's end (:func:`fetch_block`)."""

    def __init__(self, uri: str, etag: str | None = None, size: int | None = None) -> None:
        self.uri, self.etag, self.size = uri, etag, size
        self._lock = threading.Lock()

    def check(self, etag: str | None) -> None:
        """Accept a reply whose version is ``etag`` (None: the store did not say)."""
        if etag is None:
            return
        with self._lock:
            if self.etag is None:
                self.etag = etag
            expected = self.etag
        if etag != expected:
            raise replaced(self.uri, expected, etag)


def fetch_block(
    store: Store, key: str, start: int, end: int, *, attempts: int, version: Version | None = None
) -> Buffer:
    """Bytes ``[start, end)`` (fewer only past the end), zero-copy when one response has them
    all; from ``version`` of the object when given, and where ``end`` is its HEAD's size,
    TransferError if the object goes on past it (see the module's docstring)."""
    to_end = version is not None and version.size == end
    data, etag = retrying(lambda: store.get_range_etag(key, start, end + 1 if to_end else end), attempts=attempts,
                          what=f"get {key}")  # fmt: skip
    if version is not None:
        version.check(etag)
    n = memoryview(data).nbytes
    if n > end - start:
        raise _longer(_uri(store, key), end)
    if n == end - start or n == 0:
        return data
    buf = bytearray(end - start)  # a short response: keep it and fetch the rest
    view = memoryview(buf)
    view[:n] = memoryview(data).cast("B")
    n += fetch_into(store, key, start + n, view[n:], attempts=attempts, to_end=to_end)
    return view[:n]


def fill(
    store: Store, key: str, start: int, dest: memoryview, *, config: Config, uri: str, before: ObjectMeta | None = None,
    etag: str | None = None,
) -> None:
    """Fill all of ``dest`` from ``start`` with parallel ranges; TransferError if the object is
    shorter, or (given ``before``, the HEAD the caller sized ``dest`` by) if it was replaced
    meanwhile: its pieces could then come from two versions. Every range must come from the
    version ``etag`` (default: ``before``'s) names: one replaced and put back between the HEADs
    (A -> B -> A: same ETag, and S3's times have one-second steps) is caught by its ranges.
    Where ``dest`` ends at ``before``'s size, the object must end there too."""
    part = max(1, config.part_size)
    ranges = split(0, len(dest), part)
    in_flight = ranges_in_flight(config)

    etag = etag or (before.etag if before is not None else None)
    to_end = before is not None and start + len(dest) == before.size
    if to_end and not ranges:
        _ends_at(store, key, start, attempts=config.max_attempts, uri=uri)
    began = time.monotonic()

    def one(r: tuple[int, int]) -> int:
        return fetch_into(store, key, start + r[0], dest[r[0] : r[1]], attempts=config.max_attempts, etag=etag,
                          since=began, to_end=to_end and r[1] == len(dest))  # fmt: skip

    counts = _parallel.map_bounded(one, ranges, in_flight)
    if sum(counts) != len(dest):  # type: ignore[arg-type]
        raise TransferError(f"get {uri}: the object ended early or changed while being read; read it again")
    if before is not None:
        unchanged(store, key, before, uri)


def unchanged(store: Store, key: str, before: ObjectMeta, uri: str) -> None:
    """TransferError unless a HEAD now finds the version ``before`` described (same ETag, size
    and time): ranges read between the two came from one version. An object replaced by the
    same bytes keeps its ETag on S3 and Azure, and is then the same object anyway."""
    after = store.head(key)
    if (after.etag, after.size, after.last_modified) != (before.etag, before.size, before.last_modified):
        raise replaced(uri, before.etag, after.etag)


def get(store: Store, key: str, *, config: Config, uri: str) -> Buffer:
    """The whole object: one request below the threshold, parallel ranges above it."""
    first, etag = _first_range(store, key, config=config, uri=uri)
    n = memoryview(first).nbytes
    if n < range_threshold(config):
        return first
    meta = store.head(key)
    Version(uri, meta.etag).check(etag)
    if meta.size < n:  # the first reply alone had more
        raise _longer(uri, meta.size)
    if meta.size == n:
        _ends_at(store, key, n, attempts=config.max_attempts, uri=uri)
        return first
    import numpy as np

    out = memoryview(np.empty(meta.size, dtype=np.uint8))
    out[:n] = memoryview(first).cast("B")
    del first
    fill(store, key, n, out[n:], config=config, uri=uri, before=meta)
    return out


def chunks(store: Store, key: str, *, config: Config, uri: str) -> tuple[Buffer, Iterator[Buffer] | None]:
    """The object's first ``range_threshold`` bytes, and None when that was all of it, else an
    iterator over the rest in order, in ``part_size`` pieces. The iterator sends nothing until
    it is started; then it HEADs the object and fetches ``ranges_in_flight`` pieces at a time
    (the calling thread fetching too, so a saturated pool cannot stall it): whoever writes each
    piece out holds one window, however large the object. TransferError if it changes size
    or is replaced meanwhile (:func:`unchanged`)."""
    if store.in_process:  # already in memory: nothing to bound
        return store.get(key), None
    first, etag = _first_range(store, key, config=config, uri=uri)
    n = memoryview(first).nbytes
    return first, (None if n < range_threshold(config) else _pieces(store, key, n, etag, config=config, uri=uri))


def _first_range(store: Store, key: str, *, config: Config, uri: str) -> tuple[Buffer, str | None]:
    """``[0, threshold)`` and its version's ETag: a smaller object whole, else its start (see
    the module's docstring)."""
    threshold = range_threshold(config)
    return retrying(lambda: store.get_range_etag(key, 0, threshold), attempts=config.max_attempts, what=f"get {uri}")


def _pieces(store: Store, key: str, start: int, etag: str | None, *, config: Config, uri: str) -> Iterator[Buffer]:
    meta = store.head(key)
    version = Version(uri, meta.etag, meta.size)  # the HEAD that sizes the rest, the first range and every piece
    version.check(etag)
    if meta.size < start:  # the first reply alone had more
        raise _longer(uri, meta.size)
    if meta.size == start:  # the first range was all of it, if the HEAD is right
        _ends_at(store, key, start, attempts=config.max_attempts, uri=uri)
    pieces = split(start, meta.size, max(1, config.part_size))
    window = ranges_in_flight(config)

    def one(r: tuple[int, int]) -> Buffer:
        data = fetch_block(store, key, *r, attempts=config.max_attempts, version=version)  # cut short: resumes
        if memoryview(data).nbytes != r[1] - r[0]:
            raise TransferError(f"get {uri}: the object changed while being read; read it again")
        return data

    for i in range(0, len(pieces), window):
        yield from _parallel.map_bounded(one, pieces[i : i + window], window)  # type: ignore[misc]
    if pieces:  # the first range was all of it otherwise: one version by construction
        unchanged(store, key, meta, uri)  # raised into the writer, which then keeps nothing


class StreamBudget:
    """How many large objects of one batch stream through :func:`chunks` at once: each holds a
    footprint (a window of pieces being fetched, and as many again queued in an upload's parts)
    of ``max_bytes_in_flight`` (one always runs), so a download or copy of many large objects
    stays within that bound, not objects x windows."""

    def __init__(self, config: Config) -> None:
        self.footprint = 2 * ranges_in_flight(config) * max(1, config.part_size)
        self._budget = _parallel.ByteBudget(max(config.max_bytes_in_flight, self.footprint))

    def holding(self, rest: object) -> contextlib.AbstractContextManager[None]:
        """A share of the budget while ``rest`` (an object's remaining pieces) streams; none for
        a small object, which came whole in its first request."""
        return contextlib.nullcontext() if rest is None else self._budget.holding(self.footprint)


def get_into(store: Store, key: str, buffer: Buffer, *, config: Config, uri: str) -> int:
    """Fill the start of ``buffer`` with the object; returns its size. ValueError if it does not fit."""
    view = memoryview(_check.buffer("get_into", "buffer", buffer, writable=True))
    view = view.cast("B") if (view.format != "B" or view.ndim != 1) else view
    if len(view) >= range_threshold(config):
        meta = store.head(key)
        _fits(uri, meta.size, len(view))
        fill(store, key, 0, view[: meta.size], config=config, uri=uri, before=meta)
        return meta.size
    # One byte more than the buffer holds is asked for: a reply that long means it does not fit.
    n = retrying(lambda: store.get_range_into(key, 0, len(view) + 1, view), attempts=config.max_attempts,
                 what=f"get {uri}")  # fmt: skip
    if n > len(view):
        size = store.head(key).size
        _fits(uri, size, len(view))
        raise _longer(uri, size)  # it fits, says the HEAD, but the reply was longer
    return n


def _ends_at(store: Store, key: str, size: int, *, attempts: int, uri: str) -> None:
    """TransferError if the object has a byte at ``size``, where a HEAD said it ends: one
    request, for a read with no range left to ask that byte with."""
    past = retrying(lambda: store.get_range(key, size, size + 1), attempts=attempts, what=f"get {uri}")
    if memoryview(past).nbytes:
        raise _longer(uri, size)


def _longer(uri: str, size: int) -> TransferError:
    return TransferError(
        f"get {uri}: the object has more than the {size} bytes its HEAD reported (its GET replies say "
        "more): a server or proxy that reports sizes wrongly, or the object changed; nothing of it was "
        "returned: read it again"
    )


def _uri(store: Store, key: str) -> str:
    return f"{store.scheme}://{store.bucket}/{key}"


def _fits(uri: str, size: int, capacity: int) -> None:
    if size > capacity:
        raise InvalidArgumentError(f"get_into {uri}: the object has {size} bytes, the buffer holds {capacity}; "
                                   "pass a larger buffer (s3dlio.stat(uri).size tells the size)")  # fmt: skip
