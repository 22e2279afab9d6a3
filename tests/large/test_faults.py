"""A flaky S3: 503 SlowDown, reset connections and bodies cut short, between client and moto.

Uploads and downloads through :mod:`faultproxy` must still complete byte-exact on both
engines, and a permanent fault must end in a clear TransferError after the configured
attempts, leaving no multipart upload behind.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from servers import MotoServer

import s3dlio
from s3dlio.errors import TransferError

from ._data import PART, MiB, assert_bytes, payload
from .faultproxy import FaultProxy, Rule, always, every, first

SIZE = 2 * PART + 12345


@pytest.fixture(params=["fast", "portable"])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def flaky(
    moto_server: MotoServer, s3_bucket: str, engine: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """``flaky(rule)``: the proxy with that rule, s3dlio configured to go through it."""
    proxies: list[FaultProxy] = []
    monkeypatch.setenv("S3DLIO_RANGE_THRESHOLD", "4MiB")

    def start(rule: Rule | None, **settings: Any) -> FaultProxy:
        proxy = FaultProxy(moto_server.port, rule)
        proxies.append(proxy)
        s3dlio.configure(endpoint_url=proxy.url, engine=engine, part_size=2 * MiB, **settings)
        return proxy

    yield start
    for proxy in proxies:
        proxy.stop()


def _uploads(moto_server: MotoServer, bucket: str) -> list[str]:
    return [u["Key"] for u in moto_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


@pytest.mark.parametrize("action", ["503", "reset", "cut"])
def test_transfers_survive_faults(flaky: Any, s3_bucket: str, moto_server: MotoServer, action: str) -> None:
    """Every third request fails: writer parts, ranged GETs and reader blocks are retried alone."""
    data = payload(SIZE, 21)
    proxy = flaky(every(3, action))
    uri = f"{s3_bucket}flaky.bin"
    with s3dlio.open_writer(uri, part_size=PART) as w:
        w.write(data)
    s3dlio.put(uri + ".small", data[:1000])
    assert_bytes(s3dlio.get(uri), data)  # 4 MiB first, then 2 MiB ranges
    assert_bytes(s3dlio.get(uri + ".small"), data[:1000])
    buf = bytearray(SIZE)
    assert s3dlio.get_into(uri, buf) == SIZE
    assert_bytes(buf, data)
    with s3dlio.open_reader(uri, block_size=MiB) as r:
        assert_bytes(r.read(), data)
    assert len(proxy.faults) >= 5, proxy.faults
    assert _uploads(moto_server, s3_bucket.split("/")[2]) == []


def test_slowdown_burst_on_parts(flaky: Any, s3_bucket: str) -> None:
    """The upload's first requests meet more SlowDowns than one request's retries absorb."""
    data = payload(SIZE, 22)
    flaky(first(6, "503"))
    with s3dlio.open_writer(f"{s3_bucket}burst.bin", part_size=PART, max_in_flight=1) as w:
        w.write(data)
    assert_bytes(s3dlio.get(f"{s3_bucket}burst.bin"), data)


@pytest.mark.parametrize("action", ["503", "reset"])
def test_permanent_fault_is_a_clear_error(
    flaky: Any, s3_bucket: str, moto_server: MotoServer, engine: str, action: str
) -> None:
    bucket = s3_bucket.split("/")[2]
    moto_server.client().put_object(Bucket=bucket, Key="there.bin", Body=payload(SIZE))
    proxy = flaky(always(action), max_attempts=2)
    start = time.monotonic()
    with pytest.raises(TransferError, match=r"there\.bin") as info:
        s3dlio.get(f"{s3_bucket}there.bin")
    assert "503" in str(info.value) or action == "reset"
    # 2 attempts here x 2 in the engine: the error comes after a bounded number of requests.
    assert proxy.requests <= 4 + 2, proxy.requests
    with pytest.raises(TransferError), s3dlio.open_reader(f"{s3_bucket}there.bin") as r:
        r.read()
    with pytest.raises(TransferError), s3dlio.open_writer(f"{s3_bucket}new.bin", part_size=PART) as w:
        w.write(payload(SIZE))
    assert time.monotonic() - start < 60
    proxy.rule = None
    assert _uploads(moto_server, bucket) == []
    assert not s3dlio.exists(f"{s3_bucket}new.bin")


def test_writer_part_failure_aborts(flaky: Any, s3_bucket: str, moto_server: MotoServer) -> None:
    """Parts fail for good after the upload started: the error surfaces and the upload is aborted."""
    proxy = flaky(None, max_attempts=2)
    uri = f"{s3_bucket}doomed.bin"
    with pytest.raises(TransferError), s3dlio.open_writer(uri, part_size=PART, max_in_flight=2) as w:
        w.write(payload(PART + 1))  # the first part goes up
        proxy.rule = lambda n, method, path: "503" if method == "PUT" else None
        for _ in range(4):
            w.write(payload(PART))
    proxy.rule = None
    assert _uploads(moto_server, s3_bucket.split("/")[2]) == []
    assert not s3dlio.exists(uri)
