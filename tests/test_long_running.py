"""A job that runs for days: rotating credentials, many clients, op-logs rotated every epoch,
and cancelled async batches must not grow the process without bound."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from pathlib import Path

import pytest

import s3dlio
from s3dlio.config import _interned
from s3dlio.oplog import current_writer
from s3dlio.ops import resolve
from s3dlio.store import registry


@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_rotated_credentials_do_not_keep_every_store(
    s3_bucket: str, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Client per token refresh (or ``configure(session_token=...)``): the stores of old
    tokens are let go (a portable one holds a boto3 client of about 12 MB)."""
    monkeypatch.setattr(registry, "_KEEP", 4)
    s3dlio.put(s3_bucket + "k", b"x")
    first = weakref.ref(resolve(s3_bucket, s3dlio.Client(engine=engine, session_token="t-0").config)[1])
    for i in range(registry._KEEP + 8):
        client = s3dlio.Client(engine=engine, session_token=f"t-{i}")
        assert bytes(client.get(s3_bucket + "k")) == b"x"
        s3dlio.configure(engine=engine, session_token=f"c-{i}")
        assert bytes(s3dlio.get(s3_bucket + "k")) == b"x"
    gc.collect()
    assert len(registry._stores) <= registry._KEEP and len(_interned) <= 64
    assert first() is None


def test_a_rotated_op_log_lets_its_writer_go(tmp_path: Path) -> None:
    s3dlio.put("mem://rotate/a", b"x")
    writers = []
    for i in range(5):
        s3dlio.init_op_log(str(tmp_path / f"ops{i}.tsv.zst"))
        writers.append(weakref.ref(current_writer()))
        s3dlio.get("mem://rotate/a")
        s3dlio.finalize_op_log()
    gc.collect()
    assert [w() is None for w in writers[:-1]] == [True] * 4  # the last may wait for the next op-log


@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_a_cancelled_async_batch_starts_nothing_more(s3_bucket: str, engine: str) -> None:
    """Cancelling ``put_many_async`` stops it: it went on writing every object, on threads
    that piled up to the pool's 512 over repeated cancels."""
    client = s3dlio.Client(engine=engine, max_in_flight=4)
    items = [(f"{s3_bucket}c/{i:04d}", b"x" * 1000) for i in range(400)]

    async def cancel_soon() -> None:
        task = asyncio.ensure_future(client.put_many_async(items))
        while not s3dlio.list(s3_bucket + "c/"):
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    threads = threading.active_count()
    asyncio.run(cancel_soon())
    time.sleep(0.5)  # the puts running when it was cancelled finish
    written = len(s3dlio.list(s3_bucket + "c/"))
    time.sleep(1.0)
    assert len(s3dlio.list(s3_bucket + "c/")) == written < len(items)
    assert threading.active_count() <= threads + 8
