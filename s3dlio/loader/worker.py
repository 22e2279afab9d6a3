"""Settings for a process that exists only to load data (a DataLoader worker), never the user's own.

Such a process pays two costs by default; on 16 MiB objects through ``DataLoader(num_workers=2)``
they were a fifth of its CPU (docs/performance.md):

- The first garbage collection after a fork walks every object inherited from the parent
  (170,000 once torch is imported: 80-110 ms per worker, and writing their headers copies the
  shared pages). ``gc.freeze()`` keeps them out of every later collection (the worker then
  never frees a cycle among them: the parent's objects, which it does not use).
- glibc gives each thread its own arena and unmaps an arena's heap as soon as it is empty, so
  every fetched multi-MiB body is faulted in page by page again (about 1,000 page faults per
  16 MiB object). One arena, no ``mmap`` below 32 MiB and no trimming keep freed bodies for
  reuse; the worker's memory then stays at its peak (the bytes in flight) instead of
  shrinking between objects.

``tune_workers=False`` (``S3DLIO_TUNE_WORKERS=0``) turns both off.
"""

from __future__ import annotations

import ctypes
import gc
import os

from ..config import Config, default_config

__all__ = ["tune_worker_process"]

# mallopt(3) parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
_MALLOC_SETTINGS = ((_M_ARENA_MAX, 1), (_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, 1 << 30))

_tuned_pid = 0


def tune_worker_process(config: Config | None = None) -> tuple[str, ...]:
    """Apply the settings above to this process, once; returns what was applied.

    The torch datasets call it in DataLoader workers. Call it yourself at the start of other
    worker processes that only load data (Grain's, a ``multiprocessing`` pool's), never in a
    process that also trains: its memory would no longer shrink.
    """
    global _tuned_pid
    if _tuned_pid == os.getpid() or not (config or default_config()).tune_workers:
        return ()
    _tuned_pid = os.getpid()
    gc.freeze()
    applied = ["gc.freeze"]
    if _glibc_mallopt():
        applied.append("malloc")
    return tuple(applied)


def _glibc_mallopt() -> bool:
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        glibc = None
    if not glibc:
        return False  # musl, macOS, Windows: other allocators; leave them alone
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return all(mallopt(param, value) == 1 for param, value in _MALLOC_SETTINGS)
