"""s3dlio.retry: attempts counted and timed, backoff jittered, nested loops that do not multiply."""

from __future__ import annotations

import time

import pytest

import s3dlio
from s3dlio.config import Config
from s3dlio.errors import ConfigError, NotFoundError, TransferError
from s3dlio.retry import Attempts, again, backoff, retryable, retrying


class Flaky:
    """Fails ``failures`` times with TransferError, then returns ``"ok"``; counts its calls."""

    def __init__(self, failures: int, error: type[Exception] = TransferError) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"get s3://b/k: failure {self.calls}")
        return "ok"


def no_sleep(seconds: float) -> None:
    assert 0 <= seconds <= 5.0


def test_backoff_is_full_jitter_capped() -> None:
    assert backoff(0) == 0.0
    assert backoff(1, rand=1.0) == pytest.approx(0.1)
    assert backoff(4, rand=1.0) == pytest.approx(0.8)
    assert backoff(40, rand=1.0) == 5.0
    assert backoff(3, rand=0.0) == 0.0
    waits = {backoff(3) for _ in range(50)}
    assert len(waits) > 40 and all(0 <= w <= 0.4 for w in waits)


def test_retrying_succeeds_within_attempts() -> None:
    fn = Flaky(3)
    assert retrying(fn, attempts=4, budget=60, sleep=no_sleep) == "ok"
    assert fn.calls == 4


def test_gives_up_after_attempts_and_says_so() -> None:
    fn = Flaky(10)
    with pytest.raises(TransferError, match=r"failure 3 \(gave up after 3 attempts\)") as info:
        retrying(fn, attempts=3, budget=60, sleep=no_sleep)
    assert fn.calls == 3 and info.value.retried and not retryable(info.value)


def test_no_attempt_starts_after_the_budget() -> None:
    fn = Flaky(10)

    def slow(seconds: float) -> None:
        time.sleep(0.05)

    start = time.monotonic()
    with pytest.raises(TransferError):
        again(fn, (), TransferError("first"), attempts=100, until=time.monotonic() + 0.3, sleep=slow)
    assert time.monotonic() - start < 1.0
    assert 1 <= fn.calls < 100


def test_answers_are_not_retried() -> None:
    fn = Flaky(5, NotFoundError)
    with pytest.raises(NotFoundError):
        retrying(fn, attempts=5, budget=60, sleep=no_sleep)
    assert fn.calls == 1


def test_nested_loops_do_not_multiply() -> None:
    """An inner loop that gave up marks its error; the outer loop raises it at once."""
    fn = Flaky(100)
    outer_calls = 0

    def inner() -> str:
        nonlocal outer_calls
        outer_calls += 1
        return retrying(fn, attempts=3, budget=60, sleep=no_sleep)

    with pytest.raises(TransferError):
        retrying(inner, attempts=5, budget=60, sleep=no_sleep)
    assert outer_calls == 1 and fn.calls == 3


def test_attempts_counts_pieces() -> None:
    tries = Attempts(3, 60)
    tries.failed_with(TransferError("one"), sleep=no_sleep)
    tries.failed_with(TransferError("two"), sleep=no_sleep)
    with pytest.raises(TransferError, match="gave up after 3 attempts"):
        tries.failed_with(TransferError("three"), sleep=no_sleep)


def test_timeout_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3DLIO_READ_TIMEOUT", "2.5")
    monkeypatch.setenv("S3DLIO_TOTAL_TIMEOUT", "7")
    config = s3dlio.configure()
    assert (config.read_timeout, config.total_timeout) == (2.5, 7.0)
    assert config.idle_timeout == 2.5
    assert Config.resolve(read_timeout=300, request_timeout=30).idle_timeout == 30
    assert Config.resolve(max_attempts=10).engine_attempts == 4
    assert Config.resolve(max_attempts=2).engine_attempts == 2
    for bad in ({"read_timeout": 0}, {"total_timeout": -1}):
        with pytest.raises(ConfigError, match="positive number of seconds"):
            Config.resolve(**bad)
    monkeypatch.setenv("S3DLIO_TOTAL_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="S3DLIO_TOTAL_TIMEOUT"):
        s3dlio.configure()
