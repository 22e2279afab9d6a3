"""Open stores by URI, once per (store, config, engine) and per process.

The cache keeps the ``_KEEP`` stores used last: a job that rotates credentials
(``configure(session_token=...)`` every hour, a new :class:`~s3dlio.Client` per refresh)
or touches many buckets makes a store per combination, and a portable-engine store holds a
boto3 client of about 12 MB. A store dropped from the cache closes once nothing uses it; one
still in use (a reader, a loader) keeps working, and the next lookup builds it again.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

from ..config import Config, default_config
from ..uri import ObjectUri
from . import engine
from .base import Store

__all__ = ["clear", "forget", "open_store"]

_KEEP = 32
_stores: OrderedDict[tuple[Any, ...], Store] = OrderedDict()
_lock = threading.Lock()
# Stores inherited across fork are kept alive, never used: their destructors could touch a
# runtime that did not survive the fork.
_inherited: list[Store] = []


def open_store(uri: ObjectUri, config: Config | None = None) -> Store:
    """The store serving ``uri`` (its scheme, bucket and account), built on first use."""
    config = config or default_config()
    kind = engine.select(config)
    cache_key = (uri.scheme, uri.bucket, uri.account, config, kind)
    with _lock:
        store = _stores.get(cache_key)
        if store is not None:
            _stores.move_to_end(cache_key)
            return store
    built = _build(uri, config, kind)  # outside the lock: a boto3 client takes tens of ms
    with _lock:
        store = _stores.setdefault(cache_key, built)
        _stores.move_to_end(cache_key)
        while len(_stores) > _KEEP:
            _stores.popitem(last=False)
    return store


def _build(uri: ObjectUri, config: Config, kind: engine.EngineKind) -> Store:
    if uri.scheme == "direct":
        from .direct import DirectStore

        return DirectStore(config)
    if kind == "fast":
        from .fast import open_fast_store

        return open_fast_store(uri, config)
    if uri.scheme == "s3":
        from .s3 import S3Store

        return S3Store(uri.bucket, config)
    if uri.scheme == "az":
        from .azure import AzureStore

        return AzureStore(uri.bucket, config, account=uri.account)
    if uri.scheme == "file":
        from .local import LocalStore

        return LocalStore(config)
    if uri.scheme == "mem":
        from .memory import MemoryStore

        return MemoryStore(uri.bucket, config)
    raise AssertionError(f"no store for scheme {uri.scheme!r}")


def clear() -> None:
    """Forget open stores (after the config changed); they close when unreferenced."""
    with _lock:
        _stores.clear()


def forget(config: Config) -> None:
    """Forget the stores opened with ``config`` (a client closed); they close when unreferenced."""
    with _lock:
        for key in [key for key in _stores if key[3] == config]:
            del _stores[key]


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    _inherited.extend(_stores.values())
    _stores.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
