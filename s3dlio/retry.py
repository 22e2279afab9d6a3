"""Retries above the engines, budgeted by count and by time, with jittered backoff.

The engines retry single HTTP requests themselves (obstore's ``retry_config``, botocore's
retries, the Azure SDK's policy). This layer retries what they cannot: a body cut short or
stalled half-way, a reset in the middle of a reply, a burst of SlowDowns longer than their
attempts; and it retries the units s3dlio owns (a part, a range, a resumed read). Only
:class:`~s3dlio.errors.TransferError` is retried: a missing object or a refused credential
will not change by asking again.

Every loop stops at whichever comes first: ``max_attempts`` attempts, or ``total_timeout``
seconds since the operation began (no attempt starts after that; one already running is
bounded by the engine's ``read_timeout`` / ``request_timeout``). An error a loop gave up on
is marked :attr:`~s3dlio.errors.TransferError.retried`, so an enclosing loop raises it at
once instead of multiplying attempts and time.

Nothing here runs while requests succeed: stores call :func:`again` from their ``except``
clause, so the fault-free path costs one ``time.monotonic()`` per operation.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import TransferError

__all__ = ["Attempts", "ChangedError", "again", "backoff", "retryable", "retrying"]

T = TypeVar("T")

log = logging.getLogger("s3dlio.retry")

#: First wait and the cap of the exponential backoff, in seconds.
BASE_DELAY = 0.1
MAX_DELAY = 5.0


class ChangedError(TransferError):
    """The object changed between attempts of one read (its ETag no longer matched)."""


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
    """True for errors another attempt may fix (5xx, throttling, resets, short bodies, timeouts)
    that no inner retry loop has already given up on."""
    return isinstance(exc, TransferError) and not exc.retried


def again(
    call: Callable[..., T],
    args: tuple[Any, ...],
    first: BaseException,
    *,
    attempts: int,
    until: float,
    what: str = "",
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``call(*args)`` once more, and again, after it failed with ``first``.

    Stops at ``attempts`` attempts in all (the failed one included) or when the next attempt
    would start after ``until`` (a ``time.monotonic()`` value), raising the last error with
    how many attempts were made; errors that are not :func:`retryable` are raised at once.
    """
    exc = first
    attempt = 1
    while True:
        if not retryable(exc):
            raise exc
        delay = backoff(attempt)
        if attempt >= attempts or time.monotonic() + delay >= until:
            raise _gave_up(exc, attempt)
        log.debug("%s: attempt %d of %d failed (%s); again in %.2fs", what, attempt, attempts, exc, delay)
        sleep(delay)
        attempt += 1
        try:
            return call(*args)
        except Exception as error:  # noqa: BLE001 - judged by retryable() above
            exc = error


class Attempts:
    """The failures of one operation that is retried a piece at a time (a listing resumed after
    its last key), counted against ``attempts`` and ``budget`` seconds from ``since`` (a
    ``time.monotonic()`` value: when the first failed piece was asked for; default now)."""

    def __init__(self, attempts: int, budget: float, what: str = "", since: float | None = None) -> None:
        self.attempts, self.what = attempts, what
        self.until = (time.monotonic() if since is None else since) + budget
        self.failed = 0

    def failed_with(self, exc: BaseException, sleep: Callable[[float], None] = time.sleep) -> None:
        """Count ``exc``; wait before the next attempt, or raise it when none is left."""
        if not retryable(exc):
            raise exc
        self.failed += 1
        delay = backoff(self.failed)
        if self.failed >= self.attempts or time.monotonic() + delay >= self.until:
            raise _gave_up(exc, self.failed)
        log.debug("%s: attempt %d of %d failed (%s); again in %.2fs", self.what, self.failed, self.attempts,
                  exc, delay)  # fmt: skip
        sleep(delay)


def _gave_up(exc: BaseException, attempt: int) -> BaseException:
    if isinstance(exc, TransferError) and not exc.retried:
        exc.retried = True
        if attempt > 1 and exc.args and isinstance(exc.args[0], str):
            exc.args = (f"{exc.args[0]} (gave up after {attempt} attempts)", *exc.args[1:])
    return exc


def retrying(
    fn: Callable[[], T],
    *,
    attempts: int,
    budget: float | None = None,
    what: str = "",
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``fn()``, called up to ``attempts`` times (within ``budget`` seconds; by default the
    process-wide ``total_timeout``) while it raises a retryable error. The last error is raised
    as it is (it already names the operation and URI).
    """
    start = time.monotonic()
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - judged by again()
        if budget is None:
            from .config import default_config

            budget = default_config().total_timeout
        return again(fn, (), exc, attempts=attempts, until=start + budget, what=what, sleep=sleep)
