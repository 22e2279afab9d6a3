"""``torch.load`` of a whole object without a second copy of its bytes.

The object is fetched once, by parallel ranged GETs, into one buffer allocated for it by
torch's CPU allocator. (numpy's allocation, which asks for transparent huge pages, cost
1.3 client CPU-s per 512 MiB load against 0.73 here: zeroing fresh huge pages dominated on
this VM; docs/performance.md.) ``torch.load`` then runs over a file-like view of that
buffer, and every tensor's storage is a slice of the buffer, as ``torch.load(path, mmap=True)``
does with a mapped file: the bytes the server sent are the bytes the tensors own.

torch offers that slicing only to ``mmap=True`` over a path: its ``_load`` takes the whole
file's storage as ``overall_storage``. :func:`install` wraps ``torch.serialization._load``
once so that a thread which has set a storage in :data:`_pending` has it passed there; every
other call goes through unchanged. Everything else (``weights_only``, ``map_location``,
TorchScript and legacy archives, error messages) stays torch.load's own. Where a torch
version lacks ``overall_storage``, :func:`available` is False and callers stream instead.
"""

from __future__ import annotations

import functools
import inspect
import threading
from typing import IO, TYPE_CHECKING, Any, cast

import numpy as np
import torch
import torch.serialization

from s3dlio.buffers import BufferReader
from s3dlio.ops import resolve
from s3dlio.ranged import fill

if TYPE_CHECKING:
    from collections.abc import Buffer, Callable

    from s3dlio.config import Config

__all__ = ["available", "fetch", "load_buffer"]

_pending = threading.local()  # .storage: the buffer's storage, for the next _load on this thread
_lock = threading.Lock()
_installed = False


def available() -> bool:
    """Whether this torch's ``_load`` accepts ``overall_storage`` (torch 2.1 and later)."""
    load = getattr(torch.serialization, "_load", None)
    if load is None:
        return False
    try:
        return "overall_storage" in inspect.signature(load).parameters
    except (TypeError, ValueError):
        return False


def install() -> None:
    """Wrap ``torch.serialization._load`` (once per process) to take the pending storage."""
    global _installed
    with _lock:
        if _installed:
            return
        original = torch.serialization._load

        @functools.wraps(original)
        def _load(*args: Any, **kwargs: Any) -> Any:
            storage = getattr(_pending, "storage", None)
            if storage is not None and kwargs.get("overall_storage") is None:
                _pending.storage = None  # one archive only: a nested torch.load reads normally
                kwargs["overall_storage"] = storage
            return original(*args, **kwargs)

        torch.serialization._load = _load
        _installed = True


def fetch(uri: str, config: Config | None) -> np.ndarray:
    """The whole object in one new buffer: one HEAD, then parallel ranges straight into place."""
    parsed, store = resolve(uri, config)
    size = store.head(parsed.key).size
    buffer = torch.empty(size, dtype=torch.uint8).numpy()  # shares the tensor's memory
    fill(store, parsed.key, 0, memoryview(buffer), config=store.config, uri=uri)
    return buffer


def load_buffer(buffer: Buffer, name: str, map_location: Any, **kwargs: Any) -> Any:
    """``torch.load`` over ``buffer``; tensors of a zip archive share its memory when it is
    writable (a read-only buffer, such as a small GET's body, is copied out as usual)."""
    load = cast("Callable[..., Any]", torch.load)
    reader = cast(IO[bytes], BufferReader(buffer, name=name))
    view = memoryview(buffer)
    if view.readonly or not view.c_contiguous or view.nbytes == 0 or not available():
        return load(reader, map_location=map_location, **kwargs)
    install()
    _pending.storage = torch.from_numpy(np.frombuffer(view.cast("B"), dtype=np.uint8)).untyped_storage()
    try:
        return load(reader, map_location=map_location, **kwargs)
    finally:
        _pending.storage = None
