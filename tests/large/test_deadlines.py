"""Bounded time and fault storms (issue #15), both S3 engines, through :mod:`faultproxy`.

A silent server ends in a TransferError within the configured budget; a reply that stalls
half-way is resumed from its last byte (If-Match its ETag); storms of 503s, resets and cut
replies end byte-exact; a lost CompleteMultipartUpload reply is not an error; nothing is
left as an incomplete multipart upload; the messages say what happened, in one line.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from servers import MotoServer

import s3dlio
from s3dlio.errors import NotFoundError, TransferError

from ._data import PART, MiB, assert_bytes, payload
from .faultproxy import Action, FaultProxy, Rule, always, numbered

#: Runs of each storm plan per engine (``S3DLIO_STORM_RUNS`` raises it, e.g. to 10).
RUNS = int(os.environ.get("S3DLIO_STORM_RUNS", "1"))


@pytest.fixture(params=["fast", "portable"])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def via(moto_server: MotoServer, engine: str) -> Iterator[Callable[..., FaultProxy]]:
    """``via(rule, **settings)``: a proxy with that rule, s3dlio configured to go through it."""
    proxies: list[FaultProxy] = []

    def start(rule: Rule | None, **settings: Any) -> FaultProxy:
        proxy = FaultProxy(moto_server.port, rule)
        proxies.append(proxy)
        settings.setdefault("part_size", PART)
        s3dlio.configure(endpoint_url=proxy.url, engine=engine, **settings)
        return proxy

    yield start
    for proxy in proxies:
        proxy.stop()


def _bucket(uri: str) -> str:
    return uri.split("/")[2]


def _uploads(moto_server: MotoServer, bucket: str) -> list[str]:
    return [u["Key"] for u in moto_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def get_plan() -> Rule:
    """The issue's GET plan: 503 SlowDown on every 3rd GET, half a body on every 5th, a reset on every 7th."""

    def plan(k: int, method: str, path: str) -> Action:
        return "503" if k % 3 == 0 else "cut" if k % 5 == 0 else "reset" if k % 7 == 0 else None

    return numbered(plan, ("GET",))


def mixed_plan() -> Rule:
    """503 on every 3rd request of any kind, cut replies on every 5th (multipart completion
    included), resets on every 7th PUT."""

    def plan(k: int, method: str, path: str) -> Action:
        if k % 3 == 0:
            return "503"
        if k % 5 == 0:
            return "cut"
        return "reset" if method == "PUT" and k % 7 == 0 else None

    return numbered(plan)


# -- bounded time ------------------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_ranges_and_loader_retries_keep_the_deadline(via: Any, s3_bucket: str, moto_server: MotoServer) -> None:
    """Nested loops above the store spend no more than its budget: the ranges of a large read
    (each retried on its own, 10 attempts, once without a time limit: 3-8x the bound) and the
    loader's retries of an error the store already gave up on (3x)."""
    from s3dlio.loader.fetch import Fetcher

    client = moto_server.client()
    client.put_object(Bucket=_bucket(s3_bucket), Key="big", Body=b"b" * (4 * 256 * 1024))
    client.put_object(Bucket=_bucket(s3_bucket), Key="small", Body=b"s" * 100)
    # the first GET (the read's first range) is answered, every later one never is
    via(numbered(lambda k, method, path: None if k == 1 else "stall", ("GET",)), read_timeout=1,
        total_timeout=2, connect_timeout=2, range_threshold=256 * 1024, part_size=256 * 1024)  # fmt: skip
    for call in (lambda: s3dlio.get(f"{s3_bucket}big"), lambda: Fetcher()(f"{s3_bucket}small")):
        start = time.monotonic()
        with pytest.raises(TransferError):
            call()
        took = time.monotonic() - start
        assert took < 2 + 1 + 3, f"took {took:.1f} s"  # total_timeout + read_timeout + backoff


@pytest.mark.timeout(120)
def test_silent_server_fails_within_the_deadline(via: Any, s3_bucket: str, moto_server: MotoServer) -> None:
    """A server that accepts and never answers: a clear TransferError once the budget is spent."""
    moto_server.client().put_object(Bucket=_bucket(s3_bucket), Key="k", Body=b"x" * 100)
    via(always("stall"), read_timeout=1, total_timeout=2, connect_timeout=2)

    def streamed_multipart() -> None:
        with s3dlio.open_writer(f"{s3_bucket}big", part_size=PART) as writer:
            writer.write(b"z" * (2 * PART + 1))

    calls = (
        (lambda: s3dlio.get(f"{s3_bucket}k"), 0),
        (lambda: s3dlio.put(f"{s3_bucket}new", b"y" * 100), 0),
        (lambda: s3dlio.list(f"{s3_bucket}dir/"), 0),
        (streamed_multipart, 1 + 3),  # then its cleanup asks once more (80 s before it kept the budget)
    )
    for call, cleanup in calls:
        start = time.monotonic()
        with pytest.raises(TransferError, match="timed out after 1 s") as info:
            call()
        took = time.monotonic() - start
        # total_timeout + one read_timeout + backoff, with room for a loaded machine
        assert took < 2 + 1 + 3 + cleanup, f"took {took:.1f} s"
        assert "\n" not in str(info.value)
        assert info.value.__cause__ is not None


@pytest.mark.timeout(120)
def test_default_deadline_is_under_a_minute() -> None:
    """The defaults bound a silent server's operation at total_timeout + read_timeout <= 60 s."""
    config = s3dlio.configure()
    assert config.total_timeout + config.idle_timeout <= 60
    assert config.connect_timeout <= config.total_timeout


def _range_start(fields: dict[str, str]) -> int | None:
    value = fields.get("range")
    return int(value.split("=")[1].split("-")[0]) if value else None


@pytest.mark.timeout(120)
def test_stalled_body_resumes_from_the_last_byte(
    via: Any, s3_bucket: str, moto_server: MotoServer, engine: str
) -> None:
    """The first two GETs stall half-way: the third asks only for the rest.

    obstore resumes a broken body itself (a range from its last byte, the reply's ETag compared
    with the first one's); s3dlio resumes the portable engine's with If-Match. Either way a
    changed object is not spliced (next test)."""
    data = payload(3 * MiB, 31)
    moto_server.client().put_object(Bucket=_bucket(s3_bucket), Key="half.bin", Body=data)
    proxy = via(numbered(lambda k, m, p: "stall-body" if k <= 2 else None, ("GET",)), read_timeout=1)
    assert_bytes(s3dlio.get(f"{s3_bucket}half.bin"), data)
    gets = [fields for _, method, _, fields in proxy.log if method == "GET"]
    assert len(gets) == 3, [g.get("range") for g in gets]
    resumed = _range_start(gets[2])
    assert resumed is not None and 0 < resumed < len(data), gets[2].get("range")
    if engine == "portable":
        assert gets[2].get("if-match"), "a resumed read must be checked against the ETag"


@pytest.mark.timeout(120)
def test_changed_object_is_not_spliced(via: Any, s3_bucket: str, moto_server: MotoServer) -> None:
    """The object is replaced between the broken read and its resumption: read again from the start."""
    client = moto_server.client()
    old, new = payload(3 * MiB, 32), payload(3 * MiB, 33)
    client.put_object(Bucket=_bucket(s3_bucket), Key="moving.bin", Body=old)

    def plan(k: int, method: str, path: str) -> Action:
        if k == 3:  # the resumption: replace the object before it goes upstream
            client.put_object(Bucket=_bucket(s3_bucket), Key="moving.bin", Body=new)
        return "stall-body" if k <= 2 else None

    via(numbered(plan, ("GET",)), read_timeout=1)
    assert_bytes(s3dlio.get(f"{s3_bucket}moving.bin"), new)


# -- storms ------------------------------------------------------------------------------------
@pytest.mark.timeout(600)
def test_get_plan_storm(via: Any, s3_bucket: str, moto_server: MotoServer) -> None:
    """The issue's GET plan on get_many of 200 x 4 KiB, default settings, byte-exact every run."""
    client = moto_server.client()
    bucket = _bucket(s3_bucket)
    objects = [payload(4096, 1000 + i) for i in range(200)]
    for i, body in enumerate(objects):
        client.put_object(Bucket=bucket, Key=f"s/{i}", Body=body)
    uris = [f"{s3_bucket}s/{i}" for i in range(200)]
    for run in range(RUNS):
        proxy = via(get_plan())
        got = s3dlio.get_many(uris)
        for i, (data, want) in enumerate(zip(got, objects, strict=True)):
            assert memoryview(data).tobytes() == want, f"run {run}: object {i} differs"
        assert len(proxy.faults) > 50, f"run {run}: only {len(proxy.faults)} faults"
        proxy.stop()


@pytest.mark.timeout(900)
def test_mixed_plan_storm(via: Any, s3_bucket: str, moto_server: MotoServer) -> None:
    """503s on everything, cut replies on any request (multipart completion included), resets on
    PUTs: puts, put_many, open_writer, get, get_range, get_many, upload, download all byte-exact,
    and no multipart upload left behind."""
    bucket = _bucket(s3_bucket)
    big = payload(4 * PART + 123, 41)  # multipart on both engines (part_size = 5 MiB)
    small = [payload(4096, 2000 + i) for i in range(40)]
    for run in range(RUNS):
        base = f"{s3_bucket}r{run}/"
        proxy = via(mixed_plan())
        s3dlio.put(base + "big", big)
        with s3dlio.open_writer(base + "w", part_size=PART) as w:
            w.write(big)
        s3dlio.put_many([(f"{base}m{i}", body) for i, body in enumerate(small)])
        assert_bytes(s3dlio.get(base + "big"), big)
        assert_bytes(s3dlio.get(base + "w"), big)
        assert_bytes(s3dlio.get_range(base + "big", PART - 10, 4096), big[PART - 10 : PART - 10 + 4096])
        for i, data in enumerate(s3dlio.get_many([f"{base}m{i}" for i in range(len(small))])):
            assert memoryview(data).tobytes() == small[i], f"run {run}: m{i} differs"
        assert len(proxy.faults) > 10, proxy.faults
        proxy.stop()
        assert _uploads(moto_server, bucket) == []


@pytest.mark.timeout(600)
def test_upload_download_through_a_storm(via: Any, s3_bucket: str, tmp_path: Any) -> None:
    src = tmp_path / "src"
    src.mkdir()
    files = {f"f{i}.bin": payload(8192 + i, 3000 + i) for i in range(20)}
    for name, body in files.items():
        (src / name).write_bytes(body)
    via(mixed_plan())
    s3dlio.upload(str(src / "*.bin"), f"{s3_bucket}up/")
    dest = tmp_path / "dest"
    s3dlio.download(f"{s3_bucket}up/", str(dest))
    for name, body in files.items():
        assert (dest / name).read_bytes() == body, name


# -- multipart completion and abort ------------------------------------------------------------
def _complete(method: str, path: str) -> bool:
    return method == "POST" and "uploadId=" in path


@pytest.mark.timeout(300)
def test_lost_complete_reply_is_not_an_error(via: Any, s3_bucket: str, moto_server: MotoServer) -> None:
    """Every CompleteMultipartUpload reply is cut: the object was written, and put and
    open_writer say so (no false NotFoundError from the retried complete's NoSuchUpload)."""
    data = payload(4 * PART + 77, 51)
    proxy = via(lambda n, method, path: "cut" if _complete(method, path) else None)
    s3dlio.put(f"{s3_bucket}put.bin", data)
    with s3dlio.open_writer(f"{s3_bucket}writer.bin", part_size=PART) as w:
        w.write(data)
    assert sum(1 for f in proxy.faults if _complete(f[1], f[2])) >= 2, proxy.faults
    proxy.rule = None
    assert_bytes(s3dlio.get(f"{s3_bucket}put.bin"), data)
    assert_bytes(s3dlio.get(f"{s3_bucket}writer.bin"), data)
    assert _uploads(moto_server, _bucket(s3_bucket)) == []


@pytest.mark.timeout(300)
def test_failed_upload_with_failing_aborts_leaves_nothing(
    via: Any, s3_bucket: str, moto_server: MotoServer
) -> None:
    """Parts fail for good, and the first aborts fail too: the abort is retried until it works."""
    proxy = via(None, max_attempts=2, total_timeout=10)
    aborts = numbered(lambda k, m, p: "503" if k <= 2 else None, ("DELETE",))

    def rule(n: int, method: str, path: str) -> Action:
        if method == "PUT" and "partNumber=" in path:
            return "503"
        return aborts(n, method, path)

    with pytest.raises(TransferError), s3dlio.open_writer(f"{s3_bucket}doomed.bin", part_size=PART) as w:
        w.write(payload(PART + 1))
        proxy.rule = rule
        for _ in range(3):
            w.write(payload(PART))
    proxy.rule = None
    assert _uploads(moto_server, _bucket(s3_bucket)) == []


# -- messages ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("action", "words"),
    [("reset", "connection reset by the server"), ("cut", "closed before the whole reply")],
)
def test_messages_name_what_happened(
    via: Any, s3_bucket: str, moto_server: MotoServer, action: str, words: str
) -> None:
    moto_server.client().put_object(Bucket=_bucket(s3_bucket), Key="k", Body=payload(100_000, 61))
    via(always(action), max_attempts=1)
    with pytest.raises(TransferError) as info:
        s3dlio.get_many([f"{s3_bucket}k"])
    message = str(info.value)
    assert words in message and f"{s3_bucket}k" in message, message
    assert "cannot reach" not in message and "\n" not in message
    assert info.value.__cause__ is not None


def test_missing_bucket_is_one_line(engine: str, moto_server: MotoServer) -> None:
    """No engine debug dump in the message; the cause stays chained for -vv."""
    s3dlio.configure(engine=engine)
    with pytest.raises(NotFoundError) as info:
        s3dlio.put("s3://no-such-bucket-here/a", b"x")
    message = str(info.value)
    assert message.startswith("put s3://no-such-bucket-here/a: "), message
    assert "\n" not in message and "Debug" not in message and len(message) < 300, message
    assert info.value.__cause__ is not None


@pytest.mark.timeout(600)
def test_azure_get_plan_storm(azurite: Any, az_container: str, engine: str) -> None:
    """The GET plan against Azurite: both Azure engines come back byte-exact too."""
    container = az_container.split("/")[2]
    client = azurite.client().get_container_client(container)
    objects = [payload(4096, 4000 + i) for i in range(60)]
    for i, body in enumerate(objects):
        client.upload_blob(f"s/{i}", body)
    proxy = FaultProxy(azurite.port, get_plan())
    try:
        s3dlio.configure(engine=engine, azure_endpoint=f"{proxy.url}/devstoreaccount1")
        got = s3dlio.get_many([f"{az_container}s/{i}" for i in range(len(objects))])
        for i, (data, want) in enumerate(zip(got, objects, strict=True)):
            assert memoryview(data).tobytes() == want, f"object {i} differs"
        assert len(proxy.faults) > 15, proxy.faults
    finally:
        proxy.stop()


@pytest.mark.parametrize("fault", ["cut", "reset"])
def test_a_manifest_put_whose_reply_is_lost_still_commits(via: Any, s3_bucket: str, fault: str) -> None:
    """The manifest is a conditional create: "cut" loses the reply of a PUT the server carried
    out (the retry then finds the object: it is this save's own, byte for byte); "reset" loses
    the request itself. Either way the save commits once and loads."""
    from s3dlio.checkpoint import CheckpointStore

    proxy = via(_first_manifest_put(fault))
    ckpt = CheckpointStore(f"{s3_bucket}lost/")
    ckpt.save(1, {"w": b"weights"})
    assert [f for f in proxy.faults if "manifest.json" in f[2]], proxy.faults
    assert ckpt.latest_step() == 1 and bytes(ckpt.load()["w"]) == b"weights"


def _first_manifest_put(fault: str) -> Rule:
    done = threading.Event()

    def rule(n: int, method: str, path: str) -> Action:
        if method == "PUT" and path.split("?")[0].endswith("/manifest.json") and not done.is_set():
            done.set()
            return fault
        return None

    return rule


@pytest.mark.timeout(600)
def test_checkpoint_through_a_storm(via: Any, s3_bucket: str, moto_server: MotoServer) -> None:
    """Checkpoint save and load ride on put, open_writer, get and list: the mixed plan is survived,
    the shards come back byte-exact, and no multipart upload is left."""
    from s3dlio.checkpoint import CheckpointStore

    shards = {"model": payload(3 * PART + 5, 71), "optim": payload(300_000, 72)}
    proxy = via(mixed_plan())
    ckpt = CheckpointStore(f"{s3_bucket}run/", keep_last=2)
    ckpt.save(100, shards, metadata={"epoch": 1})
    ckpt.save(200, shards, metadata={"epoch": 2})
    assert ckpt.latest_step() == 200
    loaded = ckpt.load()
    for name, want in shards.items():
        assert_bytes(loaded[name], want)
    assert len(proxy.faults) > 5, proxy.faults
    assert _uploads(moto_server, _bucket(s3_bucket)) == []
