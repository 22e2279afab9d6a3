"""What users call: object operations by URI, each with an ``_async`` twin.

Every function parses its URI, opens the store that serves it (cached per process) and calls
one store method; batch functions bound requests in flight. The twins run the same body on
the shared worker threads, so sync and async behave identically.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import re
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, ParamSpec, TypeVar, overload

from . import _check, _parallel, localpath, ranged
from ._select import Selection, is_pattern, select
from .config import Config, default_config
from .errors import InvalidUriError, NotFoundError
from .localpath import Skipped
from .localread import LocalFile
from .oplog import current_writer
from .oplog.logged import LoggedStore
from .store import ObjectMeta, Store, open_store
from .store.balanced import endpoint_stats as balanced_stats
from .store.balanced import open_balanced
from .store.local import TMP_PREFIX, local_keys, map_errors
from .uri import ObjectUri, parse
from .verify import verify_enabled, verify_put
from .writer import writer_for

if TYPE_CHECKING:
    from collections.abc import Buffer

    from .store.base import DeleteFailure

__all__ = [
    "Entry", "TransferStats", "endpoint_stats", "resolve",
    "get", "get_range", "get_many", "get_many_stats", "put", "put_many",
    "ListStream", "list", "list_entries", "list_stream", "stat", "exists", "delete",
    "create_bucket", "delete_bucket", "list_buckets", "upload", "download", "copy",
    "get_async", "get_range_async", "get_many_async", "get_many_stats_async", "put_async",
    "put_many_async", "list_async", "stat_async", "exists_async", "delete_async",
    "create_bucket_async", "delete_bucket_async", "list_buckets_async", "upload_async",
    "download_async", "copy_async",
]  # fmt: skip

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")
_list = list  # ``list`` the builtin, shadowed below by the operation of that name

#: A progress callback of the batch functions: ``on_object(objects, nbytes)`` as objects finish.
OnObject = Callable[[int, int], None]


class Entry(NamedTuple):
    """One listing result: a full URI, with metadata for objects and None for common prefixes."""

    uri: str
    meta: ObjectMeta | None


@dataclass(frozen=True, slots=True)
class TransferStats:
    """Counts and wall time of a batch transfer whose data was discarded."""

    objects: int
    bytes: int
    seconds: float

    @property
    def ops_per_s(self) -> float:
        return self.objects / self.seconds if self.seconds else 0.0

    @property
    def mib_per_s(self) -> float:
        return self.bytes / self.seconds / 2**20 if self.seconds else 0.0


def resolve(uri: str | ObjectUri, config: Config | None = None) -> tuple[ObjectUri, Store]:
    """The parsed URI and the store serving it, op-logged when the op-log is on.

    The one way layers above (loader, checkpoint, CLI) reach a store; ``config`` overrides
    the process-wide settings (e.g. ``engine="portable"`` to list without starting obstore).
    """
    parsed = parse(_check.uri("resolve", uri))
    _check.config("resolve", config)
    return parsed, _open(parsed, config)


def _open(parsed: ObjectUri, config: Config | None = None) -> Store:
    """The op-logged store serving ``parsed``; with several S3 endpoints, a balancer over one
    op-logged store per endpoint (so the op-log names the endpoint each request used)."""
    config = config or default_config()
    if len(config.endpoints) > 1 and parsed.scheme == "s3":
        return open_balanced(parsed, config, lambda one: _logged(open_store(parsed, one)))
    return _logged(open_store(parsed, config))


def endpoint_stats(config: Config | None = None) -> _list[dict[str, object]]:
    """Per endpoint of a multi-endpoint configuration (``endpoints=[...]``): requests, payload
    bytes, errors, mean latency, requests in flight and whether it is in rotation now."""
    _check.config("endpoint_stats", config)
    return [stats.to_dict() for stats in balanced_stats(config or default_config())]


def _resolve_all(uris: Iterable[str], config: Config | None) -> _list[tuple[ObjectUri, Store]]:
    """:func:`resolve` for a batch, opening each distinct bucket's store once, not per URI."""
    opened: dict[tuple[str, str, str | None], Store] = {}
    targets = []
    for uri in uris:
        parsed = parse(uri)
        where = (parsed.scheme, parsed.bucket, parsed.account)
        store = opened.get(where)
        if store is None:
            store = opened[where] = _open(parsed, config)
        targets.append((parsed, store))
    return targets


def _logged(store: Store) -> Store:
    """``store`` writing to the op-log now open, if any. Only the current op-log's wrappers
    are kept (an op-log rotated every epoch left every finalized writer alive), and only
    as many as the store cache holds."""
    writer = current_writer()
    if writer is None:
        return store
    if _logged_for[0] is not writer or len(_logged_stores) > 64:
        _logged_stores.clear()
        _logged_for[0] = writer
    logged = _logged_stores.get(id(store))
    if logged is None or logged.inner is not store:
        logged = _logged_stores[id(store)] = LoggedStore(store, writer)
    return logged


_logged_stores: dict[int, LoggedStore] = {}
_logged_for: list[object] = [None]


def _in_flight(max_in_flight: int | None, config: Config | None) -> int:
    """``max_in_flight`` (checked by the caller with ``_check.in_flight``) or the configured one."""
    return max_in_flight if max_in_flight is not None else (config or default_config()).max_in_flight


def _inline(stores: Iterable[Store]) -> bool:
    """True when every store is in-process: a batch then runs on the calling thread (threads
    would only add GIL contention: 2,000 gets from mem:// took 2.7x longer on 64 threads)."""
    return all(store.in_process for store in stores)


def _batch_in_flight(stores: Iterable[Store], max_in_flight: int | None, config: Config | None) -> int:
    """Requests to run at once: ``max_in_flight`` (checked), or one for in-process stores."""
    n = _in_flight(max_in_flight, config)
    return 1 if _inline(stores) else n


def _budgeted_get(workers: int, config: Config | None) -> Callable[[tuple[ObjectUri, Store]], Buffer]:
    """A GET for a batch that keeps ``max_bytes_in_flight``. Sizes are unknown until responses
    come back: the first wave (sent before any) is bounded by count; every later request
    reserves the largest size seen so far and waits while the running ones, the first wave's
    counted at that size too, hold the budget. The lock is skipped while ``workers`` objects
    of that size fit."""
    limit = (config or default_config()).max_bytes_in_flight
    cond = threading.Condition()
    largest = 0
    blind = 0  # first-wave requests still running
    held = 0  # bytes reserved by the requests sent since

    def get(target: tuple[ObjectUri, Store]) -> Buffer:
        nonlocal largest, blind, held
        parsed, store = target
        guess = largest
        if guess and guess * workers <= limit:
            data = store.get(parsed.key)
            largest = max(largest, memoryview(data).nbytes)
            return data
        with cond:
            if guess:
                while (held or blind) and held + (blind + 1) * largest > limit:
                    cond.wait()
                guess = largest
                held += guess
            else:
                blind += 1
        try:
            data = store.get(parsed.key)
        finally:
            with cond:
                if guess:
                    held -= guess
                else:
                    blind -= 1
                cond.notify_all()
        with cond:
            largest = max(largest, memoryview(data).nbytes)
        return data

    return get


def _get_inline(
    targets: _list[tuple[ObjectUri, Store]], return_exceptions: bool
) -> _list[Buffer | BaseException]:
    """A batch on in-process stores, on this thread: one ``get_batch`` per run of the same store."""
    results: _list[Buffer | BaseException] = []
    for store, run in itertools.groupby(targets, key=lambda target: target[1]):
        results += store.get_batch([parsed.key for parsed, _ in run], return_exceptions=return_exceptions)
    return results


# -- reads -------------------------------------------------------------------------------
def get(uri: str, *, config: Config | None = None) -> Buffer:
    """The whole object at ``uri`` as a zero-copy buffer (``memoryview(x)``, ``numpy.frombuffer(x)``).

    Objects above ``S3DLIO_RANGE_THRESHOLD`` (32 MiB) arrive as parallel ranges in one buffer.
    """
    uri = _check.uri("get", uri)
    parsed, store = resolve(uri, _check.config("get", config))
    if store.in_process:  # nothing to parallelise
        return store.get(parsed.key)
    return ranged.get(store, parsed.key, config=store.config, uri=uri)


def get_in_pieces(uri: str, *, config: Config | None = None) -> tuple[Buffer, Iterator[Buffer] | None]:
    """The object at ``uri`` for passing on without holding it: its first bytes, and None when
    that was all, else an iterator over the rest in order (:func:`s3dlio.ranged.chunks`)."""
    uri = _check.uri("get_in_pieces", uri)
    parsed, store = resolve(uri, _check.config("get_in_pieces", config))
    return ranged.chunks(store, parsed.key, config=store.config, uri=uri)


def get_range(uri: str, offset: int, length: int | None = None, *, config: Config | None = None) -> Buffer:
    """``length`` bytes from ``offset`` (to the end when None); clipped at the object's end."""
    uri = _check.uri("get_range", uri)
    offset = _check.integer("get_range", "offset", offset, 0)
    length = _check.optional_integer("get_range", "length", length, 0)
    parsed, store = resolve(uri, _check.config("get_range", config))
    if length is None:
        return store.get_range(parsed.key, offset, store.head(parsed.key).size)
    return store.get_range(parsed.key, offset, offset + length)


def get_many(
    uris: Iterable[str], max_in_flight: int | None = None, *, return_exceptions: bool = False,
    config: Config | None = None,
) -> _list[Buffer | BaseException]:  # fmt: skip
    """Fetch many objects concurrently; results in input order.

    The first failure is raised (after running requests finish) unless ``return_exceptions``
    puts each error in its slot instead.
    """
    uris = _check.uris("get_many", uris)
    workers = _in_flight(_check.in_flight("get_many", max_in_flight), config)
    _check.boolean("get_many", "return_exceptions", return_exceptions)
    targets = _resolve_all(uris, _check.config("get_many", config))
    if _inline(store for _, store in targets):
        return _get_inline(targets, return_exceptions)
    return _parallel.map_bounded(
        _budgeted_get(workers, config), targets, workers, return_exceptions=return_exceptions
    )


def get_many_stats(
    uris: Iterable[str], max_in_flight: int | None = None, *, config: Config | None = None
) -> TransferStats:
    """Fetch many objects and discard the data: counts and wall time, memory stays flat."""
    uris = _check.uris("get_many_stats", uris)
    workers = _in_flight(_check.in_flight("get_many_stats", max_in_flight), config)
    targets = _resolve_all(uris, _check.config("get_many_stats", config))
    start = time.perf_counter()
    if _inline(store for _, store in targets):
        sizes: _list[int] = [memoryview(data).nbytes for data in _get_inline(targets, False)]  # type: ignore[arg-type]
    else:
        get = _budgeted_get(workers, config)
        sizes = _parallel.map_bounded(lambda t: memoryview(get(t)).nbytes, targets, workers)  # type: ignore[assignment]
    return TransferStats(len(sizes), sum(sizes), time.perf_counter() - start)


def stat(uri: str, *, config: Config | None = None) -> ObjectMeta:
    """Full metadata of one object (None for what the backend does not keep)."""
    parsed, store = resolve(_check.uri("stat", uri), _check.config("stat", config))
    return store.head(parsed.key)


def exists(uri: str, *, config: Config | None = None) -> bool:
    """True when the object exists."""
    uri = _check.uri("exists", uri)
    _check.config("exists", config)
    try:
        stat(uri, config=config)
    except NotFoundError:
        return False
    return True


# -- listing ---------------------------------------------------------------------------------
def _matching(
    store: Store, sel: Selection, parsed: ObjectUri, seen: Callable[[str], object] | None = None
) -> Iterator[tuple[str, ObjectMeta | None]]:
    """``(key, metadata)`` of what ``sel`` selects; metadata is None for common prefixes.
    ``seen`` is called with every key and common prefix listed, selected or not.

    obstore cannot parse a listed key with an empty, ``.`` or ``..`` segment (S3 stores them);
    the fast engine's listing then goes on with the portable engine after the last key it
    yielded (listings are in key order), so the other keys are still found and the odd ones
    reach the caller, which refuses them by name where they matter (local paths).
    """
    last: str | None = None
    try:
        for key, meta in _matching_on(store, sel, seen):
            last = key
            yield key, meta
    except InvalidUriError:
        if store.engine != "fast" or store.in_process:
            raise
        portable = resolve(parsed, store.config.replace(engine="portable"))[1]
        for key, meta in _matching_on(portable, sel, seen):
            if last is None or key > last:
                yield key, meta


def _matching_on(
    store: Store, sel: Selection, seen: Callable[[str], object] | None = None
) -> Iterator[tuple[str, ObjectMeta | None]]:
    for item in store.list(sel.prefix, delimiter=not sel.recursive):
        if seen is not None:
            seen(item if isinstance(item, str) else item.key)
        if isinstance(item, str):
            if sel.matches(item):
                yield item, None
        elif sel.matches(item.key):
            yield item.key, item


def list_entries(
    uri: str, recursive: bool = False, pattern: str | None = None, *, config: Config | None = None
) -> Iterator[Entry]:
    """Stream what :func:`list` selects, with each object's metadata (size, date, etag)."""
    _listing_args("list_entries", uri, recursive, pattern, config)
    parsed, store = resolve(uri, config)
    sel = _select("list", uri, parsed.key, recursive=recursive, pattern=pattern)
    return (Entry(str(parsed.with_key(key)), meta) for key, meta in _matching(store, sel, parsed))


def list(  # noqa: A001
    uri: str, recursive: bool = False, pattern: str | None = None, *, config: Config | None = None
) -> _list[str]:
    """Full URIs under ``uri``. The last part may be a regex; a trailing ``/`` lists a level.

    Without ``recursive``, ``/`` separates levels and common prefixes come back ending in
    ``/``; with it, everything below. A plain last part is a name prefix
    (``s3://b/data/img_`` lists ``img_0``, ``img_1``...); ``pattern`` is an explicit regex
    matched against the path relative to the URI's directory.
    """
    _listing_args("list", uri, recursive, pattern, config)
    return [entry.uri for entry in list_entries(uri, recursive, pattern, config=config)]


class ListStream:
    """What a listing selects, streamed page by page: ``for entry in stream`` or ``async for``.

    Nothing is listed until the first entry is asked for; ``async for`` fetches ``chunk``
    entries per trip to a worker thread, so the event loop never waits on the service.
    """

    def __init__(self, entries: Iterator[Entry], chunk: int = 1000) -> None:
        self._entries = entries
        self._chunk = chunk

    def __iter__(self) -> Iterator[Entry]:
        return self._entries

    def __aiter__(self) -> AsyncIterator[Entry]:
        return self._async_entries()

    async def _async_entries(self) -> AsyncIterator[Entry]:
        while batch := await _parallel.run_async(_take, self._entries, self._chunk):
            for entry in batch:
                yield entry

    def collect(self) -> _list[Entry]:
        """Every entry, as a list."""
        return _list(self._entries)

    async def collect_async(self) -> _list[Entry]:
        """Async twin of :meth:`collect`."""
        return [entry async for entry in self]


def _take(entries: Iterator[Entry], n: int) -> _list[Entry]:
    return _list(itertools.islice(entries, n))


def list_stream(
    uri: str, recursive: bool = False, pattern: str | None = None, *, config: Config | None = None
) -> ListStream:
    """:func:`list_entries` for ``for`` and ``async for`` alike, in flat memory however many
    objects there are (``collect()`` / ``collect_async()`` give a list)."""
    _listing_args("list_stream", uri, recursive, pattern, config)
    return ListStream(list_entries(uri, recursive, pattern, config=config))


def _listing_args(func: str, uri: str, recursive: bool, pattern: str | None, config: Config | None) -> None:
    _check.config(func, config)
    _check.uri(func, uri)
    _check.boolean(func, "recursive", recursive)
    _check.optional_str(func, "pattern", pattern)


def _select(op: str, uri: str, key: str, **options: Any) -> Selection:
    """:func:`s3dlio._select.select` of ``key``; an invalid ``pattern=`` raises an error naming
    ``op`` and ``uri``."""
    try:
        return select(key, **options)
    except InvalidUriError as exc:
        raise InvalidUriError(f"{op} {uri}: {exc}") from None


def _objects(
    op: str, uri: str, recursive: bool, pattern: str | None, config: Config | None, *, literal: bool = False,
    folders: set[str] | None = None,
) -> tuple[ObjectUri, Store, _list[str], dict[str, int]]:  # fmt: skip
    """Keys (and sizes) of the objects a delete/download/copy selects (never a name prefix);
    ``literal`` reads the last part as an exact name even when it holds regex characters.
    ``folders``: filled with the selected keys that are folder markers without a ``/`` (see
    :func:`folder_markers`)."""
    parsed, store = resolve(uri, config)
    sel = _select(op, uri, parsed.key, recursive=recursive, pattern=pattern, exact=True, literal=literal)
    dirs: set[str] = set()
    sizes: dict[str, int] = {}
    for key, meta in _matching(store, sel, parsed, functools.partial(add_parents, dirs)):
        if meta is not None:
            sizes[key] = meta.size
            if is_folder_object(meta):  # where the listing carries metadata
                dirs.add(key)
    keys = _list(sizes)
    if sel.literal and not sel.recursive and pattern is None and parsed.key in sizes:
        keys = [parsed.key]  # an exact key wins over its reading as a regex
    if folders is not None:
        folders.update(folder_markers(((key, sizes[key]) for key in keys), dirs))
    return parsed, store, keys, sizes


def add_parents(dirs: set[str], key: str) -> None:
    """Add the directories ``key`` (a key or a common prefix ``a/b/``) is below to ``dirs``:
    ``a/b/c`` and ``a/b/`` add ``a`` and ``a/b``."""
    end = key.rfind("/")
    while end > 0 and key[:end] not in dirs:
        dirs.add(key[:end])
        end = key.rfind("/", 0, end)


def is_folder_object(meta: ObjectMeta) -> bool:
    """True for a zero-byte object its metadata calls a directory: what an Azure account with a
    hierarchical namespace (ADLS Gen2) or the portal lists for each directory (``hdi_isfolder``;
    adlfs's ``is_directory``)."""
    flags = {name.lower(): value for name, value in meta.metadata.items()}
    return not meta.size and "true" in (flags.get("hdi_isfolder", "").lower(), flags.get("is_directory", "").lower())


def folder_markers(objects: Iterable[tuple[str, int]], dirs: set[str]) -> _list[str]:
    """The keys among ``(key, size)`` that are folder markers without a ``/``: zero bytes, and
    named like a directory in ``dirs`` (:func:`add_parents` of the keys and common prefixes
    listed beside them). ADLS Gen2 lists each directory as such an object (``data`` beside
    ``data/x.bin``), and S3 keys may form the same; like a ``data/`` marker it is a directory,
    never a file (a local file could not hold ``data/x.bin``). An object holding bytes is
    never one: its name clashing with a directory stays an error."""
    return [key for key, size in objects if not size and key in dirs]


def relative_names(keys: Sequence[str], base: str, folders: set[str]) -> _list[str]:
    """Each key relative to ``base``; a folder marker without a ``/`` (see :func:`folder_markers`)
    gets one, so it becomes the directory it names, as a ``dir/`` marker does."""
    return [k[len(base) :] + ("/" if k in folders else "") for k in keys]


def _no_body(op: str, uri: str, size: int) -> None:
    """Refuse a key ending in ``/`` that holds bytes where it would become a local directory:
    a directory cannot keep them, and dropping them would pass for a good download."""
    if size:
        raise InvalidUriError(
            f"{op} {uri}: refused, the key ends in '/' but holds {size} bytes, which a local directory "
            f"cannot keep; nothing was written for it. Fetch it to a file you name: s3dlio get {uri} -o FILE"
        )


def _as_listed(store: Store, key: str) -> str | None:
    """The key ``key + '/'`` when the fast engine listed it as ``key``: obstore drops the
    ``/`` of a key holding bytes, and ``key`` itself does not exist. Asked (one or two HEADs)
    only for a key that failed, so an error names the key that exists, never another."""
    if store.engine != "fast" or store.in_process or key.endswith("/"):
        return None
    try:
        store.head(key)
        return None
    except NotFoundError:
        pass
    except Exception:  # noqa: BLE001 - the original error stands
        return None
    try:
        store.head(key + "/")
    except Exception:  # noqa: BLE001
        return None
    return key + "/"


def _renamed(op: str, store: Store, parsed: ObjectUri, key: str, error: BaseException, local: bool) -> None:
    """Where the fast engine listed ``key/`` as ``key`` (whose ``error`` would name a key that
    does not exist), raise the error naming ``key/``: refused into a local directory, else
    what to do. Otherwise return: the caller raises ``error``."""
    real = _as_listed(store, key)
    if real is None:
        return
    uri = str(parsed.with_key(real))
    if local:
        _no_body(op, uri, store.head(real).size)
    raise NotFoundError(
        f"{op} {uri}: the fast engine lists this key without its '/' and cannot read it under that "
        "name; nothing was copied for it. Copy it with engine='portable' (S3DLIO_ENGINE=portable)"
    ) from error


# -- writes --------------------------------------------------------------------------------
def put(uri: str, data: Buffer, *, verify: bool | None = None, config: Config | None = None) -> None:
    """Write ``data`` (any buffer-protocol object: bytes, memoryview, numpy array) to ``uri``.

    ``verify`` (default ``S3DLIO_PUT_VERIFY``) checks the result with a HEAD (size, MD5 ETag).
    """
    uri = _check.uri("put", uri)
    data = _check.buffer("put", "data", data)
    _check.boolean("put", "verify", verify, optional=True)
    _check.config("put", config)
    _put(uri, *resolve(uri, config), data, verify)


def _put(uri: str, parsed: ObjectUri, store: Store, data: Buffer, verify: bool | None) -> None:
    if parsed.is_prefix:
        raise InvalidUriError(f"put {uri}: the URI names a prefix; add an object name after the last '/'")
    store.put(parsed.key, data)
    if verify_enabled(verify, store.config):
        verify_put(store, parsed.key, uri, data)


def put_many(
    items: Iterable[tuple[str, Buffer]], max_in_flight: int | None = None, *, config: Config | None = None
) -> None:
    """Write many objects concurrently, at most ``max_bytes_in_flight`` bytes at once; the first
    failure is raised."""
    items = _check.put_items("put_many", items)
    max_in_flight = _check.in_flight("put_many", max_in_flight)
    _check.config("put_many", config)
    todo = [(uri, *resolve(uri, config), data, memoryview(data).nbytes) for uri, data in items]
    workers = _batch_in_flight((store for _, _, store, _, _ in todo), max_in_flight, config)
    budget = _parallel.ByteBudget((config or default_config()).max_bytes_in_flight)
    if sum(sorted(n for *_, n in todo)[-workers:]) <= budget.limit:  # any window fits: no lock
        _parallel.map_bounded(lambda item: _put(*item[:4], None), todo, workers)
        return

    def one(item: tuple[str, ObjectUri, Store, Buffer, int]) -> None:
        with budget.holding(item[4]):
            _put(*item[:4], None)

    _parallel.map_bounded(one, todo, workers)


def delete(
    uri: str, recursive: bool = False, pattern: str | None = None, *, on_object: OnObject | None = None,
    config: Config | None = None,
) -> int:  # fmt: skip
    """Delete one object, everything at a prefix level (``.../``), or what ``pattern`` selects.

    The URI is literal: its last part is exactly one key even when it holds regex characters
    (``a+b.bin`` never deletes ``aab.bin``), so running a delete twice deletes nothing the
    second time. A trailing ``/`` deletes everything at that level; ``recursive`` reaches
    below it. ``pattern`` is an explicit regex matched against the path relative to the URI's
    directory (``delete("s3://b/data/", pattern=r".*\\.tmp")``). Returns how many objects were
    deleted (0 when nothing matched). Deletes go out in batches of 1000.
    """
    _listing_args("delete", uri, recursive, pattern, config)
    parsed, store, keys, _ = _objects("delete", uri, recursive, pattern, config, literal=True)
    if not keys and pattern is None:
        _warn_literal(uri, parsed)
    failures: _list[DeleteFailure] = []
    for i in range(0, len(keys), 1000):
        failed = store.delete_many(keys[i : i + 1000])
        failures += failed
        if on_object is not None:  # progress: ``on_object(objects, 0)`` after each batch
            on_object(len(keys[i : i + 1000]) - len(failed), 0)
    if failures:
        raise failures[0].error
    return len(keys)


def _warn_literal(uri: str, parsed: ObjectUri) -> None:
    """Say why a delete whose last part looks like a pattern deleted nothing: its URI is literal
    (the original s3dlio read it as a regex), and ``pattern=`` is how to ask for one."""
    base, _, last = parsed.key.rpartition("/")
    if not is_pattern(last):
        return
    level = str(parsed.with_key(base + "/" if base else ""))
    warnings.warn(
        f"delete {uri}: no object is named {last!r}, so nothing was deleted (the URI is literal); "
        f"to delete by pattern use the pattern keyword: delete({level!r}, pattern={last!r})",
        UserWarning,
        stacklevel=3,
    )


# -- buckets -------------------------------------------------------------------------------
#: A bucket named without a scheme, as the original s3dlio's create_bucket("name") took it.
_BARE_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/?")


def _bucket_uri(uri: str) -> str:
    """``uri``, or ``s3://NAME`` for a bare bucket name (``my-bucket``, ``my-bucket/``)."""
    return f"s3://{uri.rstrip('/')}" if isinstance(uri, str) and _BARE_BUCKET.fullmatch(uri) else uri


def _bucket_store(uri: str, config: Config | None) -> tuple[ObjectUri, Store]:
    """Bucket management always runs on the portable engine: obstore cannot do it."""
    parsed = parse(uri) if not uri.endswith("://") else ObjectUri(uri[:-3], "", "")  # type: ignore[arg-type]
    if parsed.scheme not in ("s3", "az", "mem"):
        raise InvalidUriError(f"{uri}: buckets exist only for s3://, az:// and mem://")
    return resolve(parsed, (config or default_config()).replace(engine="portable"))


def create_bucket(uri: str, *, config: Config | None = None) -> None:
    """Create the bucket/container of ``uri`` (``s3://name``, ``az://name``; a bare ``name`` is
    an S3 bucket). AlreadyExistsError if it exists."""
    uri = _bucket_uri(_check.uri("create_bucket", uri))
    _bucket_store(uri, _check.config("create_bucket", config))[1].create_bucket()


def delete_bucket(uri: str, *, config: Config | None = None) -> None:
    """Delete the (empty) bucket/container of ``uri`` (a bare ``name`` is an S3 bucket)."""
    uri = _bucket_uri(_check.uri("delete_bucket", uri))
    _bucket_store(uri, _check.config("delete_bucket", config))[1].delete_bucket()


def list_buckets(uri: str = "s3://", *, config: Config | None = None) -> _list[str]:
    """Bucket (container) URIs visible with the configured credentials."""
    parsed, store = _bucket_store(_check.uri("list_buckets", uri), _check.config("list_buckets", config))
    return [f"{parsed.scheme}://{name}" for name in store.list_buckets()]


# -- files <-> objects -------------------------------------------------------------------------
def _upload_file(
    path: str, uri: str, config: Config | None, budget: _parallel.ByteBudget, op: str = "upload"
) -> int:
    """Upload one local file; returns its size. It is read with ``pread`` (a map of a file cut
    short meanwhile kills the process with SIGBUS): whole into memory when it fits one part,
    else streamed in parts. A file that changes while it is read is not published: an
    object mixing its old and new bytes would look like a good upload (see ``localread``)."""
    parsed, store = resolve(uri, config)
    with LocalFile(op, path, uri) as f:
        size = f.size
        part = store.config.part_size
        with budget.holding(min(size, 2 * part * min(8, store.config.max_in_flight))):
            if store.in_process or size <= part:
                data = bytearray(size)
                f.check(_read_into(f, memoryview(data)))
                _put(uri, parsed, store, data, None)
                return size
            with writer_for(uri, store, parsed.key, size=size) as writer:
                got = 0
                while chunk := _read_into(f, writer.reserve()):
                    _parallel.stop_if_cancelled()  # raised inside: the upload is aborted
                    writer.commit(chunk)
                    got += chunk
                f.check(got)  # raised inside: the upload is aborted
            return size


def _read_into(f: LocalFile, view: memoryview) -> int:
    """Fill ``view`` from ``f``; fewer bytes only at its end (a seam: tests change the file here)."""
    return f.read_into(view)


#: What ``upload`` takes as its source: one path or glob, or a list or tuple of them.
LocalGlobs = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


@overload
def upload(
    local_glob: LocalGlobs, dest_prefix: str, max_in_flight: int | None = ..., *, include_hidden: bool = ...,
    follow_links: bool = ..., on_skip: Callable[[Skipped], object] | None = ...,
    on_object: OnObject | None = ..., return_exceptions: Literal[False] = ..., config: Config | None = ...,
) -> _list[str]: ...  # fmt: skip
@overload
def upload(
    local_glob: LocalGlobs, dest_prefix: str, max_in_flight: int | None = ..., *, include_hidden: bool = ...,
    follow_links: bool = ..., on_skip: Callable[[Skipped], object] | None = ...,
    on_object: OnObject | None = ..., return_exceptions: Literal[True], config: Config | None = ...,
) -> _list[str | BaseException]: ...  # fmt: skip
def upload(
    local_glob: LocalGlobs, dest_prefix: str, max_in_flight: int | None = None, *, include_hidden: bool = True,
    follow_links: bool = False, on_skip: Callable[[Skipped], object] | None = None,
    on_object: OnObject | None = None, return_exceptions: bool = False, config: Config | None = None,
) -> _list[str] | _list[str | BaseException]:  # fmt: skip
    """Upload local files matching a glob (``**`` is any depth) under ``dest_prefix``.

    ``local_glob`` may also be a list (or tuple) of paths and globs, as the original s3dlio's
    ``upload([...], prefix)`` took them: each is uploaded as it would be alone, and every one
    must match a file before anything is uploaded. Object names keep the files' paths relative to the glob's fixed directory part. Dot-files
    are uploaded (as ``aws s3 cp --recursive`` does) unless ``include_hidden=False``. A
    symbolic link that resolves outside that directory is skipped unless ``follow_links``;
    a link to a directory above it (a loop) is always skipped. Each skipped item goes to
    ``on_skip``, or else all of them to one ``UserWarning``. Every file is attempted; then the
    first error is raised (a file gone, or changed while it was read: never published), or,
    with ``return_exceptions``, each slot holds the URI written or the file's error.
    """
    globs = _local_globs(local_glob)
    dest_prefix = _check.uri("upload", dest_prefix, "dest_prefix")
    max_in_flight = _check.in_flight("upload", max_in_flight)
    _check.boolean("upload", "include_hidden", include_hidden)
    _check.boolean("upload", "follow_links", follow_links)
    _check.boolean("upload", "return_exceptions", return_exceptions)
    _check.config("upload", config)
    walks = []
    for one in globs:
        with map_errors("upload", one):
            found = localpath.local_files(one, include_hidden=include_hidden, follow_links=follow_links)
        if on_skip is not None:
            for skipped in found.skipped:
                on_skip(skipped)
        elif found.skipped:
            lines = "".join(f"\n  {item}" for item in found.skipped)
            warnings.warn(f"upload {one}: skipped {len(found.skipped)}:{lines}", UserWarning, stacklevel=2)
        if not found.files:
            raise NotFoundError(f"upload {one}: no local file matches")
        walks.append(found)
    results: _list[str | BaseException] = []
    for found in walks:
        results += upload_found(found, dest_prefix, max_in_flight, on_object=on_object, config=config)
    return _finish(results, return_exceptions)  # type: ignore[return-value]


def _local_globs(value: Any) -> _list[str]:
    """``upload``'s source as a list of paths and globs: one, or each of a list or tuple."""
    if not isinstance(value, _list | tuple):
        return [_check.path("upload", "local_glob", value)]
    if not value:
        _check.fail_value("upload", "local_glob", "a path, a glob, or a non-empty list of them", value)
    return [_check.path("upload", f"local_glob[{i}]", one) for i, one in enumerate(value)]


def upload_found(
    found: localpath.LocalFiles, dest_prefix: str, max_in_flight: int | None = None,
    *, on_object: OnObject | None = None, config: Config | None = None,
) -> _list[str | BaseException]:  # fmt: skip
    """Upload the files of a walk, each at its path below ``found.root``: one slot per file,
    the URI written or the file's error (``upload``'s body; the CLI walks once, then calls it)."""
    dest = parse(dest_prefix)
    paths = found.files
    uris = [str(dest.with_key(_join_key(dest.key, os.path.relpath(p, found.root)))) for p in paths]
    budget = _parallel.ByteBudget((config or default_config()).max_bytes_in_flight)

    def one_file(i: int) -> str:
        size = _upload_file(paths[i], uris[i], config, budget)
        if on_object is not None:  # progress: ``on_object(1, nbytes)`` per file
            on_object(1, size)
        return uris[i]

    return _parallel.map_bounded(one_file, range(len(paths)), _in_flight(max_in_flight, config),
                                 return_exceptions=True)  # fmt: skip


def _join_key(prefix: str, rel: str) -> str:
    rel = rel.replace(os.sep, "/")
    if not prefix or prefix.endswith("/"):
        return prefix + rel
    return prefix + "/" + rel


def write_file_atomic(
    path: str, data: Buffer, rest: Iterable[Buffer] | None = None, *, op: str | None = None
) -> None:
    """Write a local file atomically (temp file + rename): a reader never sees half a file.

    ``rest``: more pieces written after ``data`` as they come (:func:`s3dlio.ranged.chunks`).
    With ``op``, a failure of the filesystem (a full disk) is an s3dlio error naming ``op``
    and ``path`` (a bare ``OSError: [Errno 28]`` names neither); without it, the OSError.
    """
    with map_errors(op, path) if op is not None else contextlib.nullcontext():
        _write_file_atomic(path, data, rest)


def _write_file_atomic(path: str, data: Buffer, rest: Iterable[Buffer] | None) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    # A hidden name listings skip and ``s3dlio cleanup`` removes, should the process be killed.
    tmp = os.path.join(os.path.dirname(path), f"{TMP_PREFIX}{os.getpid()}-{threading.get_ident():x}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # a killed process's, of the same pid and thread (a link is removed, not followed)
    try:
        # created here or not at all: never opened through a link put at its name
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666), "wb") as f:
            f.write(data)
            for piece in rest or ():
                f.write(piece)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _transfer_args(
    func: str, recursive: bool, max_in_flight: int | None, return_exceptions: bool, config: Config | None
) -> None:
    _check.config(func, config)
    _check.boolean(func, "recursive", recursive)
    _check.in_flight(func, max_in_flight)
    _check.boolean(func, "return_exceptions", return_exceptions)


def _finish(results: _list[T | BaseException], return_exceptions: bool) -> _list[T | BaseException]:
    """A batch's results; without ``return_exceptions`` the first error is raised (the rest ran)."""
    if return_exceptions:
        return results
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        if len(errors) > 1:
            errors[0].add_note(f"{len(errors) - 1} more failed; return_exceptions=True returns each error")
        raise errors[0]
    return results


@overload
def download(
    src: str, dest_dir: str, recursive: bool = ..., max_in_flight: int | None = ...,
    *, return_exceptions: Literal[False] = ..., config: Config | None = ...,
) -> _list[str]: ...  # fmt: skip
@overload
def download(
    src: str, dest_dir: str, recursive: bool = ..., max_in_flight: int | None = ...,
    *, return_exceptions: Literal[True], config: Config | None = ...,
) -> _list[str | BaseException]: ...  # fmt: skip
def download(
    src: str, dest_dir: str, recursive: bool = False, max_in_flight: int | None = None,
    *, return_exceptions: bool = False, config: Config | None = None,
) -> _list[str] | _list[str | BaseException]:  # fmt: skip
    """Download the objects ``src`` selects (a key, a prefix ``.../``, a regex) into ``dest_dir``.

    Files keep their path relative to the URI's directory part, and never leave
    ``dest_dir``: a key that is absolute or has an empty, ``.`` or ``..`` segment, and keys
    that would share one local path, are refused with an :class:`InvalidUriError` naming
    the key. Every other object is still downloaded; then the first error is raised (with a
    note counting the others), unless ``return_exceptions`` puts each error in its slot.
    Returns the local paths (directory markers as directories ending in ``/``).
    """
    src, dest_dir = _check.uri("download", src, "src"), _check.path("download", "dest_dir", dest_dir)
    _transfer_args("download", recursive, max_in_flight, return_exceptions, config)
    folders: set[str] = set()
    parsed, store, keys, sizes = _objects("download", src, recursive, None, config, folders=folders)
    if not keys:
        raise NotFoundError(f"download {src}: no object matches")
    base = select(parsed.key).base
    planned = localpath.plan(
        "download", dest_dir, relative_names(keys, base, folders), [str(parsed.with_key(k)) for k in keys]
    )

    streams = ranged.StreamBudget(store.config)

    def one(i: int) -> str:
        path, uri = planned[i], str(parsed.with_key(keys[i]))
        try:
            if isinstance(path, BaseException):
                raise path
            if path.endswith(os.sep):  # a folder marker: the directory, not a file
                _no_body("download", uri, sizes.get(keys[i], 0))
                os.makedirs(path, exist_ok=True)
                return path
            first, rest = ranged.chunks(store, keys[i], config=store.config, uri=uri)
        except (InvalidUriError, NotFoundError) as exc:
            _renamed("download", store, parsed, keys[i], exc, local=True)
            raise
        with streams.holding(rest):
            write_file_atomic(path, first, rest, op="download")
        return path

    results = _parallel.map_bounded(one, range(len(keys)), _in_flight(max_in_flight, config), return_exceptions=True)
    return _finish(results, return_exceptions)  # type: ignore[return-value]


@overload
def copy(
    src: str, dst: str, recursive: bool = ..., max_in_flight: int | None = ...,
    *, return_exceptions: Literal[False] = ..., on_object: OnObject | None = ..., config: Config | None = ...,
    follow_links: bool = ..., on_skip: Callable[[Skipped], object] | None = ...,
) -> int: ...  # fmt: skip
@overload
def copy(
    src: str, dst: str, recursive: bool = ..., max_in_flight: int | None = ...,
    *, return_exceptions: Literal[True], on_object: OnObject | None = ..., config: Config | None = ...,
    follow_links: bool = ..., on_skip: Callable[[Skipped], object] | None = ...,
) -> _list[str | BaseException]: ...  # fmt: skip
def copy(
    src: str, dst: str, recursive: bool = False, max_in_flight: int | None = None,
    *, return_exceptions: bool = False, on_object: OnObject | None = None, config: Config | None = None,
    follow_links: bool = False, on_skip: Callable[[Skipped], object] | None = None,
) -> int | _list[str | BaseException]:  # fmt: skip
    """Copy objects between any two schemes; returns how many were copied.

    One object to a key, or to ``dst`` ending in ``/`` keeping its name; a prefix, a regex or
    ``recursive`` copies everything selected under ``dst``, keeping relative paths. Into a
    ``file://`` or ``direct://`` directory, keys that would leave it or share one local path
    are refused as :func:`download` refuses them. Every other object is still copied; then
    the first error is raised, unless ``return_exceptions`` returns the destination URI or
    the error of each selected object, in order. From a local directory, as in
    :func:`upload`, a symbolic link that resolves outside it is skipped unless
    ``follow_links`` (each skipped file goes to ``on_skip``, or all to one ``UserWarning``).
    """
    src, dst = _check.uri("copy", src, "src"), _check.uri("copy", dst, "dst")
    _transfer_args("copy", recursive, max_in_flight, return_exceptions, config)
    _check.boolean("copy", "follow_links", follow_links)
    sizes: dict[str, int] = {}
    folders: set[str] = set()
    parsed, store = resolve(src, config)
    if parsed.scheme in ("file", "direct"):  # upload's walk and link rules, skips reported alike
        keys = local_keys("copy " + src, parsed.key, recursive, follow_links=follow_links, on_skip=on_skip,
                          config=store.config)  # fmt: skip
    else:
        parsed, store, keys, sizes = _objects("copy", src, recursive, None, config, folders=folders)
    if not keys:
        raise NotFoundError(f"copy {src}: no object matches")
    target = parse(dst)
    single = len(keys) == 1 and keys[0] == parsed.key
    base = select(parsed.key).base
    local = target.scheme in ("file", "direct")
    rels = relative_names(keys, base, folders if local else set())  # other stores keep them as they are
    dst_keys: _list[str | BaseException]
    if single and not target.is_prefix:
        dst_keys = [target.key]
    elif target.scheme in ("file", "direct"):
        root = "/" + target.key
        dst_keys = [
            p if isinstance(p, BaseException) else p[1:]
            for p in localpath.plan("copy", root, rels, [str(parsed.with_key(k)) for k in keys])
        ]
    else:
        dst_keys = [_join_key(target.key, rel) for rel in rels]
    dst_store = resolve(target, config)[1]
    streams = ranged.StreamBudget(store.config)
    budget = _parallel.ByteBudget(store.config.max_bytes_in_flight)

    def one(i: int) -> str:
        key, uri = dst_keys[i], str(parsed.with_key(keys[i]))
        if isinstance(key, BaseException):
            _renamed("copy", store, parsed, keys[i], key, local)
            raise key
        if local and key.endswith("/"):
            _no_body("copy", uri, sizes.get(keys[i], 0))
            with map_errors("copy", f"{target.scheme}:///{key}"):
                os.makedirs("/" + key, exist_ok=True)  # a folder marker: the directory
            return str(target.with_key(key))
        if parsed.scheme == "file":  # a local file, read as upload reads it: a change publishes nothing
            nbytes = _upload_file("/" + keys[i], str(target.with_key(key)), config, budget, "copy")
            if on_object is not None:
                on_object(1, nbytes)
            return str(target.with_key(key))
        try:
            first, rest = ranged.chunks(store, keys[i], config=store.config, uri=uri)
        except NotFoundError as exc:
            _renamed("copy", store, parsed, keys[i], exc, local)
            raise
        nbytes = memoryview(first).nbytes
        if rest is None:
            dst_store.put(key, first)
        else:  # a large object goes through an upload piece by piece, never whole in memory
            in_flight = ranged.ranges_in_flight(store.config)
            with streams.holding(rest), writer_for(str(target.with_key(key)), dst_store, key, size=sizes.get(keys[i]),
                                                   max_in_flight=in_flight) as writer:  # fmt: skip
                writer.write(first)
                for piece in rest:
                    _parallel.stop_if_cancelled()
                    writer.write(piece)
                    nbytes += memoryview(piece).nbytes
        if on_object is not None:  # progress: ``on_object(1, nbytes)`` per object
            on_object(1, nbytes)
        return str(target.with_key(key))

    results = _parallel.map_bounded(one, range(len(keys)), _in_flight(max_in_flight, config), return_exceptions=True)
    if return_exceptions:
        return results
    _finish(results, False)
    return len(keys)


# -- async twins -----------------------------------------------------------------------------
def _twin(fn: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """The ``_async`` twin of ``fn``: the same body, awaited on the shared worker threads."""

    async def twin(*args: P.args, **kwargs: P.kwargs) -> R:
        return await _parallel.run_async(fn, *args, **kwargs)

    twin.__name__ = twin.__qualname__ = f"{fn.__name__}_async"
    twin.__doc__ = f"Async twin of :func:`{fn.__name__}`."
    twin.__module__ = fn.__module__
    return twin


get_async = _twin(get)
get_range_async = _twin(get_range)
get_many_async = _twin(get_many)
get_many_stats_async = _twin(get_many_stats)
put_async = _twin(put)
put_many_async = _twin(put_many)
list_async = _twin(list)
stat_async = _twin(stat)
exists_async = _twin(exists)
delete_async = _twin(delete)
create_bucket_async = _twin(create_bucket)
delete_bucket_async = _twin(delete_bucket)
list_buckets_async = _twin(list_buckets)
upload_async = _twin(upload)
download_async = _twin(download)
copy_async = _twin(copy)
