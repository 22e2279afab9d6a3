"""``torch.load`` of a whole object without a second copy of its bytes.

The object is fetched once, by parallel ranged GETs, into one buffer allocated for it by
torch's CPU allocator. (numpy's allocation, which asks for transparent huge pages, cost
1.3 client CPU-s per 512 MiB load against 0.73 here: zeroing fresh huge pages dominated on
this VM; docs/performance.md.) A cold process must fault in every page of that buffer, and a
fault taken by the threads copying replies in cost about 1.7x what the kernel spends filling
the same pages in one ``madvise(MADV_POPULATE_WRITE)`` call: so a helper thread populates the
buffer front to back while the ranges arrive (:func:`_prefault`). ``torch.load`` then runs
over a file-like view of that buffer, and every tensor's storage is a slice of the buffer, as
``torch.load(path, mmap=True)`` does with a mapped file: the bytes the server sent are the
bytes the tensors own.

torch offers that slicing only to ``mmap=True`` over a path: its ``_load`` takes the whole
file's storage as ``overall_storage``. :func:`install` wraps ``torch.serialization._load``
once so that a thread which has set a storage in :data:`_pending` has it passed there; every
other call goes through unchanged. Everything else (``weights_only``, ``map_location``,
TorchScript and legacy archives, error messages) stays torch.load's own. Where a torch
version lacks ``overall_storage``, :func:`available` is False and callers stream instead.
"""

from __future__ import annotations

import ctypes
import functools
import inspect
import sys
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

#: Linux 5.14+: fault in a range's pages writable without touching them (<linux/mman.h>).
_MADV_POPULATE_WRITE = 23
_PREFAULT_STEP = 8 << 20  # pages populated per call: the fill never waits long for the helper
_PAGE = 4096

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
    meta = store.head(parsed.key)
    buffer = torch.empty(meta.size, dtype=torch.uint8).numpy()  # shares the tensor's memory
    done = threading.Event()
    helper = _prefault(buffer, done)
    try:
        fill(store, parsed.key, 0, memoryview(buffer), config=store.config, uri=uri, before=meta)
    finally:
        done.set()
        if helper is not None:
            helper.join()
    return buffer


def _madvise() -> Callable[[int, int, int], int] | None:
    """libc's ``madvise`` (called without the GIL), or None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return cast("Callable[[int, int, int], int]", fn)


def _prefault(buffer: np.ndarray, done: threading.Event) -> threading.Thread | None:
    """Start a thread that faults in ``buffer``'s pages ahead of the ranges being copied in.

    A page it reaches after a reply did is already there (populating does not change bytes);
    a kernel without ``MADV_POPULATE_WRITE`` refuses the first call and the copies fault as
    before. Stops early once ``done`` is set (the fill ended or failed).
    """
    madvise = _madvise()
    if madvise is None or buffer.nbytes < 2 * _PREFAULT_STEP:
        return None
    start = buffer.ctypes.data
    lo, hi = -(-start // _PAGE) * _PAGE, (start + buffer.nbytes) // _PAGE * _PAGE

    def run() -> None:
        at = lo
        while at < hi and not done.is_set():
            n = min(_PREFAULT_STEP, hi - at)
            if madvise(at, n, _MADV_POPULATE_WRITE) != 0:
                return
            at += n

    helper = threading.Thread(target=run, name="s3dlio-prefault", daemon=True)
    helper.start()
    return helper


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
