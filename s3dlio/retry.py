"""Retries above the engines: per part, per range, per resumed read.

The engines already retry single HTTP requests (obstore's ``retry_config``, botocore's
retries, the Azure SDK's policy). This layer retries the units s3dlio owns, so one bad part
or range is sent again alone and a broken read resumes from where it stopped instead of
starting over. Only :class:`~s3dlio.errors.TransferError` is retried: a missing object or a
refused credential will not change by asking again.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from .errors import TransferError

__all__ = ["backoff", "retryable", "retrying"]

T = TypeVar("T")

log = logging.getLogger("s3dlio.retry")

#: First wait and the cap of the exponential backoff, in seconds.
BASE_DELAY = 0.1
MAX_DELAY = 5.0


def backoff(
    attempt: int, *, base: float = BASE_DELAY, cap: float = MAX_DELAY, rand: float | None = None
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): capped, full jitter.

    Full jitter (a uniform wait in ``[0, min(cap, base * 2**(attempt-1))]``) spreads the
    retries of many clients hit by one SlowDown, so they do not come back in lockstep.
    """
    if attempt < 1:
        return 0.0
    ceiling = min(cap, base * 2 ** min(attempt - 1, 30))
    return float(ceiling * (random.random() if rand is None else rand))


def retryable(exc: BaseException) -> bool:
    """True for errors another attempt may fix: 5xx, throttling, resets, short bodies, timeouts."""
    return isinstance(exc, TransferError)


def retrying(
    fn: Callable[[], T],
    *,
    attempts: int,
    what: str = "",
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``fn()``, called up to ``attempts`` times while it raises a retryable error.

    The last error is raised as it is (it already names the operation and the URI).
    """
    attempt = 1
    while True:
        try:
            return fn()
        except Exception as exc:
            if attempt >= attempts or not retryable(exc):
                raise
            delay = backoff(attempt)
            log.debug("%s: attempt %d of %d failed (%s); again in %.2fs", what, attempt, attempts, exc, delay)
            sleep(delay)
            attempt += 1
