"""Which engine this process uses, and why: fork safety.

A process that has used obstore and then forks gets a child whose first request hangs or
crashes (the Rust runtime's threads do not survive ``fork``). So the engine records the pid
that started it; a forked child of such a process takes the portable engine and warns once.
A process that never started the fast engine (e.g. a DataLoader parent that only listed with
the portable engine) hands the fast engine to its forked children.
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import Literal

from ..config import Config

__all__ = ["EngineKind", "select", "mark_fast_started", "fast_started_here", "inherited_fast"]

EngineKind = Literal["fast", "portable"]

_fast_pid: int | None = None
_inherited = False
_warned = False
_lock = threading.Lock()


def select(config: Config) -> EngineKind:
    """The engine for the next store this process opens."""
    global _warned
    if config.engine == "portable":
        return "portable"
    if _inherited:
        if not _warned:
            _warned = True
            warnings.warn(
                "s3dlio: this process was forked from one that had started the fast engine (obstore), "
                "which does not survive fork; using the slower portable engine (boto3/azure/os) here. "
                "For full speed use multiprocessing_context='forkserver' or 'spawn' "
                "(DataLoader(..., multiprocessing_context='forkserver')).",
                RuntimeWarning,
                stacklevel=4,
            )
        return "portable"
    return "fast"


def mark_fast_started() -> None:
    """Called by the fast engine before its first request in this process."""
    global _fast_pid
    if _fast_pid != os.getpid():
        with _lock:
            _fast_pid = os.getpid()


def fast_started_here() -> bool:
    """True when this process has started the fast engine."""
    return _fast_pid == os.getpid()


def inherited_fast() -> bool:
    """True when this process was forked (directly or not) from one that had started it."""
    return _inherited


def _after_fork_in_child() -> None:
    global _inherited, _lock
    _lock = threading.Lock()
    if _fast_pid is not None:
        _inherited = True


os.register_at_fork(after_in_child=_after_fork_in_child)
