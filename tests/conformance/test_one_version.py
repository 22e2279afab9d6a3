"""A read made of several ranges takes every range from one version of the object.

Checking the object's ETag, size and time once before and once after the ranges is not
enough: an object replaced and put back between the two (A -> B -> A) has A's ETag again, and
S3's Last-Modified has one-second steps, so ranges of B passed as A's. Each range is checked
against the version the read started from, on every backend and engine.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from servers import Backend

import s3dlio
from s3dlio import ranged
from s3dlio.config import default_config
from s3dlio.ops import resolve
from s3dlio.retry import ChangedError

SIZE = 256 * 1024
A, B = b"A" * SIZE, b"B" * SIZE


def test_a_range_of_another_version_is_refused_before_it_lands(backend: Backend) -> None:
    uri = backend.uri("obj.bin")
    s3dlio.put(uri, A)
    parsed, store = resolve(uri)
    version_a = store.head(parsed.key)
    s3dlio.put(uri, B)
    if store.head(parsed.key).etag == version_a.etag:
        pytest.skip(f"{backend}: a rewrite keeps its ETag here, so versions cannot be told apart")
    dest = bytearray(b"-" * SIZE)
    with pytest.raises(ChangedError, match="replaced while being read"):
        ranged.fetch_into(store, parsed.key, 0, memoryview(dest), attempts=3, etag=version_a.etag)
    assert dest == b"-" * SIZE  # nothing of B was written
    config = default_config().replace(part_size=64 * 1024)
    with pytest.raises(ChangedError):
        ranged.fill(store, parsed.key, 0, memoryview(dest), config=config, uri=uri, before=version_a)


@pytest.mark.parametrize("reader", ["get", "get_into", "open_reader"])
def test_replaced_and_put_back_never_reads_as_one_version(remote_backend: Backend, reader: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The probe's case: a writer flipping the object between A and B while large reads run."""
    monkeypatch.setenv("S3DLIO_RANGE_THRESHOLD", "64KiB")
    monkeypatch.setenv("S3DLIO_PART_SIZE", "64KiB")
    s3dlio.configure(engine=remote_backend.engine)
    uri = remote_backend.uri("flip.bin")
    s3dlio.put(uri, A)
    read = {
        "get": lambda: bytes(s3dlio.get(uri)),
        "get_into": lambda: (lambda buf: buf[: s3dlio.get_into(uri, buf)].tobytes())(np.empty(SIZE, np.uint8)),
        "open_reader": lambda: (lambda f: (f.read(), f.close())[0])(s3dlio.open_reader(uri)),
    }[reader]
    stop = threading.Event()

    def flip() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            s3dlio.put(uri, B if i % 2 else A)

    writer = threading.Thread(target=flip, daemon=True)
    writer.start()
    torn = reads = 0
    deadline = time.monotonic() + 3
    try:
        while time.monotonic() < deadline:
            try:
                data = read()
            except s3dlio.TransferError:
                continue
            reads += 1
            torn += set(data) not in ({ord("A")}, {ord("B")})
    finally:
        stop.set()
        writer.join(10)
    assert torn == 0, f"{torn} of {reads} reads mixed two versions"
