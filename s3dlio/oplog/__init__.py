"""Warp-compatible operation log: one line per storage operation (see docs/oplog.md).

The process-wide log is a module global so the store decorator pays one function call and a
global read per operation (:func:`current_writer`). Every process writes its own file:

- ``init_op_log("run.tsv.zst")`` writes ``run.tsv.zst`` in this process;
- a child made with ``fork`` drops the inherited writer (it holds the parent's buffers) and, on its
  first operation, opens ``run.<pid>.tsv.zst``;
- ``init_op_log`` exports the path as ``S3DLIO_OPLOG_FILE``, so a *spawned* child that uses
  s3dlio opens ``run.<pid>.tsv.zst`` on its first operation as well. Setting that variable
  yourself turns logging on in every process, each writing ``<name>.<pid>...``.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading

from .reader import OpLogFormatError, open_text, read
from .record import COLUMNS, HEADER, Record, format_ts, parse_ts
from .summary import Latency, OpStats, Summary, merge, summarize, summarize_files
from .writer import OpLogSettings, OpLogWriter, check_client_id, default_client_id, per_process_path

__all__ = [
    "COLUMNS",
    "ENV_FILE",
    "HEADER",
    "Latency",
    "OpLogFormatError",
    "OpLogSettings",
    "OpLogWriter",
    "OpStats",
    "Record",
    "Summary",
    "current_writer",
    "default_client_id",
    "finalize_op_log",
    "format_ts",
    "init_op_log",
    "is_op_log_active",
    "merge",
    "open_text",
    "parse_ts",
    "per_process_path",
    "read",
    "set_client_id",
    "summarize",
    "summarize_files",
]

#: Environment variable naming the op-log of the process tree; spawned children log to ``<name>.<pid>``.
ENV_FILE = "S3DLIO_OPLOG_FILE"

log = logging.getLogger("s3dlio.oplog")

_writer: OpLogWriter | None = None
# True when current_writer() has nothing to start lazily (checked the environment, or a writer
# was opened or closed on purpose). Starts False so a spawned child consults ENV_FILE once.
_settled = False
_lock = threading.RLock()
_base_path: str | None = None  # the name children derive theirs from
_settings: dict[str, object] = {}  # writer arguments children reuse
_client_id: str | None = None  # set_client_id's name, kept for writers opened later
_inherited = False  # a forked child whose parent had a writer: open one lazily
_exit_hooks_pid: int | None = None


def init_op_log(
    path: str | os.PathLike[str],
    *,
    queue_size: int | None = None,
    wbufcap: int | None = None,
    level: int | None = None,
    lossless: bool | None = None,
    client_id: str | None = None,
) -> OpLogWriter:
    """Start logging every operation of this process to ``path`` (``.zst``: compressed).

    Settings not given come from ``S3DLIO_OPLOG_BUF``, ``_WBUFCAP``, ``_LEVEL``, ``_LOSSLESS``.
    An active log is finalized first. Child processes log to ``<name>.<pid>...`` files.
    """
    global _writer, _settled, _base_path, _settings, _client_id, _inherited
    with _lock:
        if client_id is not None:
            _client_id = check_client_id(client_id)
        settings: dict[str, object] = {
            k: v
            for k, v in {
                "queue_size": queue_size,
                "wbufcap": wbufcap,
                "level": level,
                "lossless": lossless,
            }.items()
            if v is not None
        }
        if _writer is not None:
            _close_locked()
        writer = OpLogWriter(path, client_id=_client_id, **settings)  # type: ignore[arg-type]
        _writer, _settled, _inherited = writer, True, False
        _base_path = os.path.abspath(os.fspath(path))
        _settings = settings
        os.environ[ENV_FILE] = _base_path
        _install_exit_hooks()
        return writer


def finalize_op_log() -> int:
    """Flush and close this process's op-log; return how many entries were dropped (0 if none).

    Safe to call when no log is active, and twice. Also unsets ``S3DLIO_OPLOG_FILE`` so children
    started afterwards do not log.
    """
    with _lock:
        return _close_locked()


def is_op_log_active() -> bool:
    """True when operations of this process are being logged (or will be, on first use)."""
    w = _writer
    if w is not None:
        return not w.closed
    return not _settled and (_inherited or bool(os.environ.get(ENV_FILE)))


def set_client_id(name: str) -> None:
    """Name this client in the ``client_id`` column (default ``host:pid``), now and for later logs."""
    global _client_id
    with _lock:
        _client_id = check_client_id(name)
        if _writer is not None:
            _writer.set_client_id(name)


def current_writer() -> OpLogWriter | None:
    """The active writer, or None. Hot path: a global read when logging is on or settled off."""
    w = _writer
    if w is not None or _settled:
        return w
    return _start_lazily()


def _start_lazily() -> OpLogWriter | None:
    """Open this process's own file: after a fork from a logging parent, or from ``ENV_FILE``."""
    global _writer, _settled, _base_path, _inherited
    with _lock:
        if _writer is not None or _settled:
            return _writer
        _settled = True
        if _inherited:
            base, settings = _base_path, _settings
        else:
            base, settings = os.environ.get(ENV_FILE) or None, {}
        _inherited = False
        if base is None:
            return None
        path = per_process_path(base, os.getpid())
        try:
            writer = OpLogWriter(path, client_id=_client_id, **settings)  # type: ignore[arg-type]
        except Exception as exc:  # a broken log must never break the I/O it records
            log.warning("op-log: cannot open %s in process %d, not logging: %s", path, os.getpid(), exc)
            return None
        _writer, _base_path = writer, base
        _install_exit_hooks()
        return writer


def _close_locked() -> int:
    global _writer, _settled, _inherited
    writer, _writer = _writer, None
    _settled, _inherited = True, False
    if _base_path is not None and os.environ.get(ENV_FILE) == _base_path:
        del os.environ[ENV_FILE]
    return writer.finalize() if writer is not None else 0


def _at_exit() -> None:
    try:
        finalize_op_log()
    except Exception as exc:  # interpreter shutdown: report, never raise
        log.error("op-log: finalize at exit failed: %s", exc)


def _install_exit_hooks() -> None:
    """Finalize at exit: ``atexit`` for normal exits, a multiprocessing finalizer for its workers.

    multiprocessing's fork and forkserver workers leave through ``os._exit``, which skips
    ``atexit``, but they run ``multiprocessing.util`` finalizers first.
    """
    global _exit_hooks_pid
    if _exit_hooks_pid == os.getpid():
        return
    if _exit_hooks_pid is None:  # atexit registrations survive fork: register once per tree
        atexit.register(_at_exit)
    _exit_hooks_pid = os.getpid()
    try:
        from multiprocessing import util

        util.Finalize(None, _at_exit, exitpriority=100)
    except Exception:  # pragma: no cover - multiprocessing unavailable
        pass


def _after_fork_in_child() -> None:
    """Drop the parent's writer in a forked child and arrange a lazy file of the child's own."""
    global _writer, _settled, _lock, _inherited
    _lock = threading.RLock()  # another parent thread may have held it at fork time
    writer, _writer = _writer, None
    if writer is not None and not writer.closed:
        writer._abandon()
        _inherited, _settled = True, False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
