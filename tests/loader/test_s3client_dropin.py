"""s3torchconnector's ``S3Client`` README programs, run with ``from s3dlio_torch._s3client import S3Client``.

As in ``test_s3torchconnector_dropin.py``, the environment points at another region and at a
closed port, and each client gives ``region=``/``endpoint=`` (moto's) itself: a request that
ignored them would fail. One test uses the README's bare ``S3Client(region=REGION)`` with the
environment pointing at moto, as a user's would.
"""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from _elsewhere import CLOSED_PORT, REGION, global_settings_unchanged

pytest.importorskip("torch")

import s3dlio  # noqa: E402
import s3dlio_torch as s3torchconnector  # noqa: E402
from s3dlio import oplog  # noqa: E402
from s3dlio.errors import ConfigError, InvalidArgumentError, NotFoundError  # noqa: E402
from s3dlio_torch import S3ClientConfig, S3ReaderConstructor  # noqa: E402
from s3dlio_torch._s3client import S3Client  # noqa: E402

MiB = 1 << 20
BLOB = bytes(range(256)) * (3 * MiB // 256) + b"tail"  # 3 MiB and 4 bytes


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3DLIO_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def bucket(s3_bucket: str) -> str:
    """A fresh moto bucket's name, holding ``data/obj-NN`` (12), ``data/sub/{a,b}``,
    ``lit/a+b.bin``, ``lit/aab.bin`` and the 3 MiB ``big/blob``."""
    items = [(f"{s3_bucket}data/obj-{i:02d}", b"%02d" % i) for i in range(12)]
    items += [
        (f"{s3_bucket}{key}", key.encode())
        for key in ("data/sub/a", "data/sub/b", "lit/a+b.bin", "lit/aab.bin")
    ]
    s3dlio.put_many(items)
    s3dlio.put(f"{s3_bucket}big/blob", BLOB)
    return s3_bucket[len("s3://") : -1]


@pytest.fixture
def s3_client(endpoint: str) -> S3Client:
    return S3Client(REGION, endpoint=endpoint, s3client_config=S3ClientConfig(part_size=5 * MiB))


def gets(log: Path) -> tuple[int, int, set[str]]:
    """(GET requests, bytes they returned, endpoints used) in an op-log."""
    records = list(oplog.read(log))
    got = [r for r in records if r.op == "GET"]
    return len(got), sum(r.bytes for r in got), {r.endpoint for r in records}


# -- the README -------------------------------------------------------------------------------------
def test_readme_direct_client_usage(bucket: str, moto_server: Any) -> None:
    BUCKET, KEY, data = bucket, "readme/object.bin", b"hello s3client" * 1000  # noqa: N806
    s3_client = S3Client(region=REGION)  # the environment says where moto is
    w = s3_client.put_object(bucket=BUCKET, key=KEY)
    w.write(data)
    w.close()
    r = s3_client.get_object(bucket=BUCKET, key=KEY)
    assert r.read() == data
    assert (r.bucket, r.key) == (BUCKET, KEY)
    assert (
        s3_client.region == REGION
        and s3_client.s3client_config.part_size == s3dlio.config.default_config().part_size
    )


@pytest.mark.parametrize("part_size", [5 * MiB, 6 * MiB])
def test_readme_multipart_write_and_read_with_explicit_settings(
    bucket: str, endpoint: str, moto_server: Any, part_size: int
) -> None:
    s3_client = S3Client(REGION, endpoint=endpoint, s3client_config=S3ClientConfig(part_size=part_size))
    data = bytes(range(251)) * (11 * MiB // 251)  # 11 MiB: 3 parts of 5 MiB, 2 of 6 MiB
    with s3_client.put_object(bucket=bucket, key="multi/part.bin") as w:
        for start in range(0, len(data), MiB):
            assert w.write(data[start : start + MiB]) == len(data[start : start + MiB])
        w.flush()
        assert w.tell() == len(data)
    etag = moto_server.client().head_object(Bucket=bucket, Key="multi/part.bin")["ETag"]
    assert etag.strip('"').endswith(f"-{-(-len(data) // part_size)}"), etag  # the part size asked for
    r = s3_client.get_object(bucket=bucket, key="multi/part.bin")
    assert r.read() == data
    assert s3_client.s3client_config.part_size == part_size and global_settings_unchanged()


def test_readme_range_based_readinto_after_seek(
    bucket: str, s3_client: S3Client, endpoint: str, tmp_path: Path
) -> None:
    log = tmp_path / "ops.tsv"
    s3dlio.init_op_log(log, lossless=True)
    try:
        r = s3_client.get_object(bucket=bucket, key="big/blob",
                                 reader_constructor=S3ReaderConstructor.range_based(buffer_size=0))  # fmt: skip
        buf = bytearray(1 << 20)
        r.seek(2 << 20)
        n = r.readinto(buf)
        assert n == len(buf) and buf == BLOB[2 << 20 : 3 << 20]
        assert r.tell() == 3 << 20
        assert r.readinto(buf) == 4 and buf[:4] == b"tail"  # short at the end
        assert r.readinto(buf) == 0 and r.read() == b""
    finally:
        assert s3dlio.finalize_op_log() == 0
    requests, nbytes, endpoints = gets(log)
    assert endpoints == {endpoint}, endpoints  # every request went where endpoint= said
    assert nbytes <= (1 << 20) + 2 * 4096, nbytes  # only the bytes read: nothing before the seek
    assert (r.bucket, r.key) == (bucket, "big/blob") and global_settings_unchanged()


@pytest.mark.parametrize("reader", ["sequential", "range_based", "default", None])
def test_readers_read_seek_tell(bucket: str, s3_client: S3Client, reader: str | None) -> None:
    constructor = None if reader is None else getattr(S3ReaderConstructor, reader)()
    r = s3_client.get_object(bucket, "big/blob", reader_constructor=constructor)
    assert r.read(4) == BLOB[:4] and r.tell() == 4
    assert r.seek(10, io.SEEK_CUR) == 14 and r.read(3) == BLOB[14:17]
    assert r.seek(-4, io.SEEK_END) == len(BLOB) - 4 and r.read() == b"tail"
    assert r.seek(1000) == 1000
    buf = bytearray(16)
    assert r.readinto(buf) == 16 and bytes(buf) == BLOB[1000:1016]
    r.seek(0)
    assert r.read() == BLOB
    r.close()


def test_object_appears_only_on_close(bucket: str, s3_client: S3Client) -> None:
    w = s3_client.put_object(bucket, "late/one.bin")
    w.write(b"x" * (6 * MiB))  # more than a part: one is already uploaded
    with pytest.raises(NotFoundError):
        s3_client.head_object(bucket, "late/one.bin")
    assert [p.object_info for p in s3_client.list_objects(bucket, "late/")] == [[]]
    assert w.writable() and not w.readable() and not w.seekable()
    w.close()
    assert not w.writable()  # s3torchconnector's S3Writer: writable while open, no error after
    assert s3_client.head_object(bucket, "late/one.bin").size == 6 * MiB
    with pytest.raises(RuntimeError), s3_client.put_object(bucket, "late/two.bin") as w2:
        w2.write(b"never")
        raise RuntimeError("the producer failed")
    assert not w2.writable()  # aborted
    with pytest.raises(NotFoundError):  # the failed write left nothing behind
        s3_client.head_object(bucket, "late/two.bin")


# -- listing --------------------------------------------------------------------------------------
def test_list_objects_pages_by_max_keys_with_a_delimiter(bucket: str, s3_client: S3Client) -> None:
    pages = list(s3_client.list_objects(bucket, prefix="data/", delimiter="/", max_keys=2))
    assert [len(p.object_info) + len(p.common_prefixes) for p in pages] == [2] * 6 + [1]
    keys = [info.key for p in pages for info in p.object_info]
    assert keys == [f"data/obj-{i:02d}" for i in range(12)]
    assert [prefix for p in pages for prefix in p.common_prefixes] == ["data/sub/"]
    info = pages[0].object_info[0]
    assert (info.size, info.etag.startswith('"'), info.restore_status) == (2, True, None)
    assert abs(info.last_modified - time.time()) < 600


def test_list_objects_without_delimiter_and_literal_prefix(bucket: str, s3_client: S3Client) -> None:
    every = [i.key for p in s3_client.list_objects(bucket) for i in p.object_info]
    assert len(every) == 17 and every == sorted(every)
    assert [p.common_prefixes for p in s3_client.list_objects(bucket, "", "/")] == [["big/", "data/", "lit/"]]
    under = [i.key for p in s3_client.list_objects(bucket, "data/", max_keys=5) for i in p.object_info]
    assert under[-2:] == ["data/sub/a", "data/sub/b"] and len(under) == 14
    # a prefix is a prefix, never a regex: "a+" does not match "aab.bin"
    assert [i.key for p in s3_client.list_objects(bucket, "lit/a+") for i in p.object_info] == ["lit/a+b.bin"]
    assert [(p.object_info, p.common_prefixes) for p in s3_client.list_objects(bucket, "nothing/")] == [
        ([], [])
    ]
    stream = s3_client.list_objects(bucket, "data/obj-0", max_keys=3)
    assert (stream.bucket, stream.prefix, stream.delimiter, stream.max_keys) == (bucket, "data/obj-0", "", 3)
    assert iter(stream) is stream and len(next(stream).object_info) == 3  # pages come one at a time


# -- head, copy, delete, errors --------------------------------------------------------------------
def test_head_copy_delete(bucket: str, s3_client: S3Client, moto_server: Any) -> None:
    head = s3_client.head_object(bucket, "big/blob")
    boto = moto_server.client().head_object(Bucket=bucket, Key="big/blob")
    assert (head.size, head.etag) == (len(BLOB), boto["ETag"])
    assert head.last_modified == int(boto["LastModified"].timestamp()) and head.restore_status is None
    s3_client.copy_object(bucket, "big/blob", bucket, "copies/blob")
    assert s3_client.get_object(bucket, "copies/blob").read() == BLOB
    assert s3_client.head_object(bucket, "copies/blob").etag == head.etag  # same bytes, one part
    s3_client.copy_object(bucket, "lit/a+b.bin", bucket, "copies/a+b.bin")  # exact keys, not regexes
    assert s3_client.get_object(bucket, "copies/a+b.bin").read() == b"lit/a+b.bin"
    s3_client.delete_object(bucket, "copies/blob")
    with pytest.raises(NotFoundError):
        s3_client.head_object(bucket, "copies/blob")
    s3_client.delete_object(bucket, "copies/blob")  # already gone: nothing happens, as on S3
    s3_client.delete_object(bucket, "data/obj-0")  # exactly that key: obj-00 ... stay
    assert s3_client.head_object(bucket, "data/obj-00").size == 2


@pytest.mark.parametrize("kind", ["sequential", "range_based", "head", "copy"])
def test_missing_object_raises_not_found(bucket: str, s3_client: S3Client, kind: str) -> None:
    with pytest.raises(NotFoundError) as caught:
        if kind == "head":
            s3_client.head_object(bucket, "no/such/key")
        elif kind == "copy":
            s3_client.copy_object(bucket, "no/such/key", bucket, "copies/x")
        else:
            constructor = getattr(S3ReaderConstructor, kind)()
            s3_client.get_object(bucket, "no/such/key", reader_constructor=constructor).read()
    assert isinstance(caught.value, s3torchconnector.S3Exception)
    assert isinstance(caught.value, FileNotFoundError)


# -- settings and names -----------------------------------------------------------------------------
def test_client_and_config_arguments(bucket: str, endpoint: str) -> None:
    by_client = S3Client(client=s3dlio.Client(region=REGION, endpoint_url=endpoint))
    assert by_client.get_object(bucket, "data/obj-03").read() == b"03"
    copied = pickle.loads(pickle.dumps(by_client))
    assert copied.head_object(bucket, "data/obj-03").size == 2
    with pytest.raises(ConfigError, match="client="):
        S3Client(client=s3dlio.Client(region=REGION), s3client_config=S3ClientConfig())
    with pytest.raises(ConfigError, match="S3ClientConfig"):
        S3Client(REGION, s3client_config={"part_size": 1})  # type: ignore[arg-type]
    assert S3Client(REGION, endpoint=endpoint, user_agent=object()).region == REGION  # ignored


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda c: c.get_object("", "k"), InvalidArgumentError, "bucket=''"),
        (lambda c: c.get_object("b/c", "k"), InvalidArgumentError, "bucket='b/c'"),
        (lambda c: c.head_object("b", ""), InvalidArgumentError, "key=''"),
        (lambda c: c.put_object("b", "dir/"), InvalidArgumentError, "key='dir/'"),
        (lambda c: c.delete_object("b", None), TypeError, "key must be a str"),
        (lambda c: c.copy_object("b", "k", "", "k"), InvalidArgumentError, "dst_bucket=''"),
        (lambda c: c.copy_object("b", "", "b", "k"), InvalidArgumentError, "src_key=''"),
        (lambda c: c.put_object("b", "k", storage_class="GLACIER"), ConfigError, "storage_class='GLACIER'"),
        (lambda c: c.list_objects("b", delimiter="|"), ConfigError, "delimiter='|'"),
        (lambda c: c.list_objects("b", max_keys=0), InvalidArgumentError, "max_keys"),
        (
            lambda c: c.get_object("b", "k", reader_constructor="sequential"),
            ConfigError,
            "S3ReaderConstructor",
        ),
    ],
)
def test_arguments_are_checked_and_named(call: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call(S3Client(REGION, endpoint=CLOSED_PORT))  # refused before any request


def test_dcp_optimized_is_refused() -> None:
    if not hasattr(S3ReaderConstructor, "dcp_optimized"):
        pytest.skip("S3ReaderConstructor.dcp_optimized is not there yet")
    with pytest.raises(ConfigError, match="dcp_optimized"):
        S3Client(REGION, endpoint=CLOSED_PORT).get_object(
            "b", "k", reader_constructor=S3ReaderConstructor.dcp_optimized()
        )


def test_names_of_s3torchconnector_resolve(bucket: str, endpoint: str, s3_client: S3Client) -> None:
    assert s3torchconnector._s3client.S3Client is S3Client is s3torchconnector.S3Client
    assert s3torchconnector._s3client.S3ClientConfig is S3ClientConfig
    assert s3torchconnector.S3Exception is s3dlio.S3dlioError
    with s3_client.put_object(bucket, "names/w") as w:
        assert isinstance(w, s3torchconnector.S3Writer)
    checkpoint = s3torchconnector.S3Checkpoint(REGION, endpoint)
    with checkpoint.writer(f"s3://{bucket}/names/x") as w:
        assert isinstance(w, s3torchconnector.S3Writer)
    filesystem = s3torchconnector.dcp.S3FileSystem(s3_client=s3_client)  # upstream's pairing
    assert filesystem.config == s3_client.config


def test_import_stays_light() -> None:
    code = "import sys, s3dlio_torch; s3dlio_torch.S3Client; print('torch.distributed.checkpoint' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"
