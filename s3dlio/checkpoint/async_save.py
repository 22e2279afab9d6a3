"""Background saves: the state is staged in memory, the upload runs on a thread of its own.

One save is in flight per store; the next save (or :meth:`AsyncSaves.wait`) waits for it and
raises its error, so a failed upload is never silently lost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..buffers import byte_view
from .errors import CheckpointCommitError

if TYPE_CHECKING:
    from .manifest import Manifest

__all__ = ["AsyncSave", "AsyncSaves", "stage"]


def stage(shards: Mapping[str, Any]) -> dict[str, Any]:
    """A private copy of every buffer; writer callables are kept (they must hold staged state)."""
    return {name: src if callable(src) else bytes(byte_view(src)) for name, src in shards.items()}


class AsyncSave:
    """The handle of one background save."""

    def __init__(self, step: int, where: str, future: Future[Manifest | None]) -> None:
        self.step = step
        self.where = where
        self._future = future
        self._reported = False

    def done(self) -> bool:
        """True once the upload finished or failed."""
        return self._future.done()

    def result(self, timeout: float | None = None) -> Manifest | None:
        """Wait; the manifest on the committing rank, None elsewhere. Raises the save's error once."""
        try:
            return self._future.result(timeout)
        except TimeoutError:
            raise
        except BaseException as exc:
            if self._reported:
                return None
            self._reported = True
            raise CheckpointCommitError(
                f"{self.where}: async save failed: {exc}; latest is unchanged"
            ) from exc


class AsyncSaves:
    """At most one background save at a time, on a dedicated thread."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._pending: AsyncSave | None = None
        self._lock = threading.Lock()

    def submit(self, step: int, where: str, fn: Callable[[], Manifest | None]) -> AsyncSave:
        """Run ``fn`` in the background (after :meth:`wait` settled the previous save)."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s3dlio-ckpt")
            handle = AsyncSave(step, where, self._pool.submit(fn))
            self._pending = handle
        return handle

    def wait(self) -> Manifest | None:
        """Wait for the save in flight, if any; raise its error unless already raised."""
        with self._lock:
            pending, self._pending = self._pending, None
        return pending.result() if pending is not None else None
