"""Get one object for the loader: retried when it fails, re-requested when it is slow.

A :class:`Fetcher` holds settings only (it pickles into DataLoader workers); stores are
opened per process on first use, through :func:`s3dlio.ops.resolve`, so each worker
picks its own engine (fast, or portable in a forked child of a fast-engine parent).
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._parallel import executor
from ..config import Config
from ..errors import ConfigError, InvalidUriError, NotFoundError, PermissionDeniedError
from ..ops import resolve

if TYPE_CHECKING:
    from collections.abc import Buffer

__all__ = ["Fetcher", "FATAL"]

#: Errors a retry cannot fix: the object is gone, access is denied, or the request is wrong.
FATAL = (NotFoundError, PermissionDeniedError, InvalidUriError, ConfigError)


@dataclass(frozen=True)
class Fetcher:
    """``fetch(uri)``: the whole object, with ``retries`` more attempts after a failure.

    ``hedge_after``: seconds after which a still-running request gets a twin; the first to
    answer wins (the store's own ``request_timeout`` still ends a hung request).
    """

    config: Config | None = None
    retries: int = 2
    backoff: float = 0.1
    hedge_after: float | None = None

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ConfigError(f"retries={self.retries}: must be >= 0")
        if self.hedge_after is not None and self.hedge_after <= 0:
            raise ConfigError(
                f"hedge_after={self.hedge_after}: must be a positive number of seconds, or None"
            )

    def get(self, uri: str) -> Buffer:
        """One attempt, no retry."""
        parsed, store = resolve(uri, self.config)
        return store.get(parsed.key)

    def __call__(self, uri: str) -> Buffer:
        attempt = 0
        while True:
            try:
                if self.hedge_after is None:
                    return self.get(uri)
                return self._hedged(uri, self.hedge_after)
            except FATAL:
                raise
            except Exception as exc:
                # a store that already spent its retries and time budget on it: retrying
                # here would hold the training step that many times as long
                if attempt >= self.retries or getattr(exc, "retried", False):
                    raise
                time.sleep(self.backoff * 2**attempt)
                attempt += 1

    def _hedged(self, uri: str, after: float) -> Buffer:
        pool = executor()
        first = pool.submit(self.get, uri)
        done, _ = wait([first], timeout=after)
        if done:
            return first.result()
        second = pool.submit(self.get, uri)
        done, _ = wait([first, second], return_when=FIRST_COMPLETED)
        winner = next(iter(done))
        if winner.exception() is not None:  # one failed: the other may still answer
            other = second if winner is first else first
            return other.result()
        return winner.result()
