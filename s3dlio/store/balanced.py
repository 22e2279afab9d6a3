"""One bucket served by several endpoints of one cluster (gateways that share a namespace).

:class:`BalancedStore` is a :class:`Store` over one store per endpoint. Each request goes to
one endpoint, chosen round-robin or by fewest requests in flight; an endpoint whose request
fails with a :class:`~s3dlio.errors.TransferError` (unreachable, reset, timed out, 5xx after
its own retries) is taken out for a cool-down and the request is sent again to the others.
Errors about the request itself (not found, denied) are the answer, not a reason to fail over.

A multipart upload stays on the endpoint that started it: not every cluster shares upload
state between its gateways. A listing runs on one endpoint, which may change between pages
only if it fails before the first page.

:class:`EndpointStats` are shared by every bucket of one configuration, so the counts cover
all the traffic a client sent to an endpoint.
"""

from __future__ import annotations

import builtins
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .._redact import redact_url
from ..errors import TransferError
from .base import DeleteFailure, ObjectMeta, Store, Upload

if TYPE_CHECKING:
    from collections.abc import Buffer

    from ..config import Config
    from ..uri import ObjectUri

__all__ = ["STRATEGIES", "BalancedStore", "EndpointStats", "Strategy", "endpoint_stats", "open_balanced"]

Strategy = Literal["round_robin", "least_connections"]
STRATEGIES: tuple[Strategy, ...] = ("round_robin", "least_connections")

T = TypeVar("T")


@dataclass
class EndpointStats:
    """What one endpoint did: requests, payload bytes, failures and time spent in requests."""

    endpoint: str
    requests: int = 0
    bytes: int = 0
    errors: int = 0
    seconds: float = 0.0
    in_flight: int = 0
    #: ``time.monotonic()`` until which the endpoint is out of rotation after a failure.
    down_until: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def available(self, now: float) -> bool:
        return now >= self.down_until

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for JSON output and reports."""
        return {
            "endpoint": self.endpoint,
            "requests": self.requests,
            "bytes": self.bytes,
            "errors": self.errors,
            "mean_latency_ms": round(1000 * self.seconds / self.requests, 3) if self.requests else None,
            "in_flight": self.in_flight,
            "available": self.available(time.monotonic()),
        }


class BalancedStore(Store):
    """A store that spreads requests over ``stores``, one per endpoint of the same cluster."""

    def __init__(
        self,
        stores: Sequence[Store],
        stats: Sequence[EndpointStats],
        *,
        strategy: Strategy = "round_robin",
        cooldown: float = 10.0,
    ) -> None:
        if not stores or len(stores) != len(stats):
            raise ValueError("BalancedStore needs one EndpointStats per store, and at least one store")
        if strategy not in STRATEGIES:
            raise ValueError(f"endpoint strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
        first = stores[0]
        super().__init__(first.bucket, first.config)
        self.scheme, self.engine, self.in_process = first.scheme, first.engine, first.in_process
        self.endpoint = ",".join(s.endpoint for s in stats)
        self.stores = builtins.list(stores)
        self.stats = builtins.list(stats)
        self.strategy = strategy
        self.cooldown = cooldown
        self._turn = itertools.count()

    # -- choosing ------------------------------------------------------------------------
    def _order(self) -> builtins.list[int]:
        """Endpoints to try, best first: available ones by the strategy, then those cooling down."""
        now = time.monotonic()
        n = len(self.stores)
        start = next(self._turn) % n
        rotation = [(start + i) % n for i in range(n)]
        if self.strategy == "least_connections":
            rotation.sort(key=lambda i: self.stats[i].in_flight)  # stable: ties keep the rotation
        up = [i for i in rotation if self.stats[i].available(now)]
        down = sorted((i for i in rotation if not self.stats[i].available(now)), key=lambda i: self.stats[i].down_until)
        return up + down

    def _run(self, fn: Callable[[Store], T], size: Callable[[T], int] | None = None) -> T:
        """``fn`` on the best endpoint; on a TransferError, the next one, until all were tried."""
        last: TransferError | None = None
        for i in self._order():
            stats = self.stats[i]
            with stats._lock:
                stats.in_flight += 1
            start = time.perf_counter()
            try:
                result = fn(self.stores[i])
            except TransferError as exc:
                last = exc
                with stats._lock:
                    stats.in_flight -= 1
                    stats.errors += 1
                    stats.down_until = time.monotonic() + self.cooldown
                continue
            except BaseException:
                with stats._lock:
                    stats.in_flight -= 1
                    stats.errors += 1
                raise
            nbytes = size(result) if size is not None else 0
            with stats._lock:
                stats.in_flight -= 1
                stats.requests += 1
                stats.bytes += nbytes
                stats.seconds += time.perf_counter() - start
            return result
        assert last is not None
        raise last

    # -- the Store interface ---------------------------------------------------------------
    def get(self, key: str) -> Buffer:
        return self._run(lambda s: s.get(key), _nbytes)

    def get_timed(self, key: str) -> tuple[Buffer, int | None]:
        return self._run(lambda s: s.get_timed(key), lambda r: _nbytes(r[0]))

    def drain(self, key: str, byte_range: tuple[int, int] | None = None) -> tuple[int, int | None]:
        return self._run(lambda s: s.drain(key, byte_range), lambda r: r[0])

    def get_range(self, key: str, start: int, end: int) -> Buffer:
        return self._run(lambda s: s.get_range(key, start, end), _nbytes)

    def get_range_etag(self, key: str, start: int, end: int) -> tuple[Buffer, str | None]:
        return self._run(lambda s: s.get_range_etag(key, start, end), lambda r: _nbytes(r[0]))

    def get_range_into(self, key: str, start: int, end: int, dest: memoryview, etag: str | None = None) -> int:
        return self._run(lambda s: s.get_range_into(key, start, end, dest, etag), lambda n: min(n, len(dest)))

    def head(self, key: str) -> ObjectMeta:
        return self._run(lambda s: s.head(key))

    def sign(self, key: str, method: str = "GET", expires: float = 3600) -> str:
        return self._run(lambda s: s.sign(key, method, expires))

    def list(self, prefix: str, *, delimiter: bool = False) -> Iterator[ObjectMeta | str]:
        pages = self._run(lambda s: _started(s.list(prefix, delimiter=delimiter)))
        yield from pages

    def put(self, key: str, data: Buffer) -> None:
        nbytes = memoryview(data).nbytes
        self._run(lambda s: s.put(key, data), lambda _: nbytes)

    def put_new(self, key: str, data: Buffer) -> None:
        nbytes = memoryview(data).nbytes
        self._run(lambda s: s.put_new(key, data), lambda _: nbytes)

    def open_upload(self, key: str, *, part_size: int, content_type: str | None = None) -> Upload:
        return self._run(lambda s: s.open_upload(key, part_size=part_size, content_type=content_type))

    def delete(self, key: str) -> None:
        self._run(lambda s: s.delete(key))

    def delete_many(self, keys: Sequence[str]) -> builtins.list[DeleteFailure]:
        return self._run(lambda s: s.delete_many(keys))

    def create_bucket(self) -> None:
        self._run(lambda s: s.create_bucket())

    def delete_bucket(self) -> None:
        self._run(lambda s: s.delete_bucket())

    def list_buckets(self) -> builtins.list[str]:
        return self._run(lambda s: s.list_buckets())

    def __repr__(self) -> str:
        return f"<BalancedStore {self.scheme}://{self.bucket} {self.strategy} over {len(self.stores)} endpoints>"


_stats: dict[tuple[Config, str], EndpointStats] = {}
_balanced: dict[tuple[Any, ...], BalancedStore] = {}
_lock = threading.Lock()


def endpoint_stats(config: Config) -> builtins.list[EndpointStats]:
    """The counters of each of ``config.endpoints`` (one set per configuration and endpoint)."""
    with _lock:
        return [_stats_for(config, endpoint) for endpoint in config.endpoints]


def _stats_for(config: Config, endpoint: str) -> EndpointStats:
    stats = _stats.get((config, endpoint))
    if stats is None:
        stats = _stats[(config, endpoint)] = EndpointStats(redact_url(endpoint))
    return stats


def open_balanced(uri: ObjectUri, config: Config, open_one: Callable[[Config], Store]) -> BalancedStore:
    """The balancer for ``uri``'s bucket over ``config.endpoints``; ``open_one(config)`` opens
    the store of one endpoint (the caller wraps it, e.g. for the op-log)."""
    stores = [open_one(config.replace(endpoint_url=e, endpoints=())) for e in config.endpoints]
    key = (uri.scheme, uri.bucket, uri.account, config, *map(id, stores))
    with _lock:
        store = _balanced.get(key)
        if store is None:
            stats = [_stats_for(config, e) for e in config.endpoints]
            strategy: Strategy = config.endpoint_strategy  # type: ignore[assignment]  # checked by Config
            store = _balanced[key] = BalancedStore(stores, stats, strategy=strategy, cooldown=config.endpoint_cooldown)
        return store


def _forget_after_fork() -> None:
    global _lock
    _lock = threading.Lock()
    _balanced.clear()  # the child opens its own stores (see registry)
    _stats.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def _nbytes(data: Buffer) -> int:
    return memoryview(data).nbytes


def _started(items: Iterator[T]) -> Iterator[T]:
    """``items`` with its first element already fetched, so a failing first page fails over."""
    try:
        first = next(items)
    except StopIteration:
        return iter(())
    return itertools.chain((first,), items)
