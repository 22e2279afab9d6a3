"""stream_from_child: a forked producer's bytes and errors come back; nothing is left behind."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from s3dlio.errors import NotFoundError
from s3dlio.loader.forked import stream_from_child


def _children() -> set[int]:
    """This process's live children (the test servers among them)."""
    with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as f:
        return {int(p) for p in f.read().split()}


@pytest.fixture
def no_child_left() -> Iterator[None]:
    before = _children()
    yield
    assert _children() <= before


def test_bytes_arrive_in_order_across_many_chunks(no_child_left: None) -> None:
    expected = b"".join(f"key-{i:07d}\n".encode() for i in range(300_000))  # past the pipe and chunk sizes
    got = bytearray()
    stream_from_child(lambda write: [write(expected[i : i + 4096]) for i in range(0, len(expected), 4096)], got.extend)
    assert got == expected


def test_the_childs_exception_is_raised_here_with_its_type_and_message(no_child_left: None) -> None:
    def produce(write: object) -> None:
        raise NotFoundError("list s3://b/p/: no objects under this prefix")

    with pytest.raises(NotFoundError, match="no objects under this prefix"):
        stream_from_child(produce, lambda _: None)


def test_an_exception_that_cannot_be_pickled_is_still_described(no_child_left: None) -> None:
    class Odd(Exception):
        def __init__(self, a: int, b: int) -> None:
            super().__init__(f"odd {a} {b}")

    def produce(write: object) -> None:
        raise Odd(1, 2)

    with pytest.raises(Exception, match="Odd: odd 1 2"):
        stream_from_child(produce, lambda _: None)


def test_a_failing_consumer_kills_the_child(no_child_left: None) -> None:
    def produce(write: object) -> None:
        while True:  # would run forever
            write(b"x" * 65536)  # type: ignore[operator]
            time.sleep(0.001)

    def consume(chunk: bytes) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        stream_from_child(produce, consume)
