"""s3dlio.fsspec: an fsspec filesystem on s3dlio, against moto (``s3://``), files and ``mem://``."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

fsspec = pytest.importorskip("fsspec")

from large.faultproxy import FaultProxy  # noqa: E402
from servers import require  # noqa: E402

import s3dlio  # noqa: E402
import s3dlio.fsspec as sfs  # noqa: E402
from s3dlio.config import default_config  # noqa: E402
from s3dlio.errors import ConfigError  # noqa: E402


@pytest.fixture(params=["s3", "az", "file", "mem"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Any, str]:
    """(filesystem, a fresh root as an s3dlio URI without the trailing slash)."""
    if request.param in ("s3", "az"):
        root = request.getfixturevalue("s3_bucket" if request.param == "s3" else "az_container").rstrip("/")
    elif request.param == "file":
        root = f"file://{tmp_path}/root"
    else:
        root = f"mem://fs-{tmp_path.name}"
    return sfs.filesystem(request.param), root


def test_write_read_list_info_delete(place: tuple[Any, str]) -> None:
    fs, root = place
    with fs.open(f"{root}/dir/a.bin", "wb") as f:
        f.write(b"hello ")
        f.write(b"world")
    fs.pipe_file(f"{root}/dir/sub/b.txt", b"0123456789")
    assert bytes(s3dlio.get(f"{root}/dir/a.bin")) == b"hello world"  # a plain s3dlio object

    with fs.open(f"{root}/dir/a.bin", "rb") as f:
        assert f.read(5) == b"hello" and f.seekable()
        f.seek(-5, 2)
        assert f.read() == b"world"
    with fs.open(f"{root}/dir/sub/b.txt", "r") as f:
        assert f.read() == "0123456789"
    assert fs.cat_file(f"{root}/dir/sub/b.txt", 2, 5) == b"234"
    assert fs.cat_file(f"{root}/dir/sub/b.txt", -3) == b"789"
    assert fs.cat(f"{root}/dir/a.bin") == b"hello world"

    base = fs._strip_protocol(root)
    assert fs.ls(f"{root}/dir", detail=False) == [f"{base}/dir/a.bin", f"{base}/dir/sub"]
    info = fs.info(f"{root}/dir/a.bin")
    assert (info["name"], info["size"], info["type"]) == (f"{base}/dir/a.bin", 11, "file")
    assert fs.info(f"{root}/dir/sub")["type"] == "directory" and fs.isdir(f"{root}/dir")
    assert fs.exists(f"{root}/dir/a.bin") and not fs.exists(f"{root}/dir/nope")
    assert fs.find(f"{root}/dir") == [f"{base}/dir/a.bin", f"{base}/dir/sub/b.txt"]
    assert fs.find(f"{root}/dir", withdirs=True) == [
        f"{base}/dir", f"{base}/dir/a.bin", f"{base}/dir/sub", f"{base}/dir/sub/b.txt"
    ]  # fmt: skip
    assert fs.glob(f"{root}/dir/*.bin") == [f"{base}/dir/a.bin"]
    assert fs.du(f"{root}/dir") == 21

    with pytest.raises(IsADirectoryError):
        fs.rm(f"{root}/dir")
    fs.rm(f"{root}/dir/a.bin")
    assert not fs.exists(f"{root}/dir/a.bin")
    fs.rm(f"{root}/dir", recursive=True)
    assert not fs.exists(f"{root}/dir")
    with pytest.raises(FileNotFoundError):
        fs.info(f"{root}/dir")
    with pytest.raises(FileNotFoundError):
        fs.open(f"{root}/dir/a.bin", "rb")


def test_copy_move_upload_download(place: tuple[Any, str], tmp_path: Path) -> None:
    fs, root = place
    local = tmp_path / "local.bin"
    local.write_bytes(bytes(range(256)) * 1000)
    fs.put_file(str(local), f"{root}/up/x.bin")
    fs.cp_file(f"{root}/up/x.bin", f"{root}/up/y.bin")
    fs.mv(f"{root}/up", f"{root}/moved", recursive=True)
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.find(f"{root}/moved")) == ["x.bin", "y.bin"]
    assert not fs.exists(f"{root}/up/x.bin")
    fs.get_file(f"{root}/moved/y.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == local.read_bytes()
    fs.get(f"{root}/moved/", str(tmp_path / "tree"), recursive=True)
    assert (tmp_path / "tree" / "x.bin").read_bytes() == local.read_bytes()


def test_modes_and_errors(place: tuple[Any, str]) -> None:
    fs, root = place
    fs.pipe_file(f"{root}/k", b"v")
    with pytest.raises(FileExistsError):
        fs.open(f"{root}/k", "xb")
    with pytest.raises(FileExistsError):
        fs.pipe_file(f"{root}/k", b"w", mode="create")
    with pytest.raises(ValueError, match="'rb', 'wb', 'xb' or 'ab'"):
        fs.open(f"{root}/k", "r+b")
    with pytest.raises(RuntimeError), fs.open(f"{root}/never", "wb") as f:  # an error inside `with`
        f.write(b"partial")
        raise RuntimeError("boom")
    assert not fs.exists(f"{root}/never")  # commits nothing
    fs.makedirs(f"{root}/made", exist_ok=True)  # object stores: a folder marker; files: a directory
    fs.mkdir(f"{root}/made2")
    local = root.startswith("file://")
    assert os.path.isdir(root[7:] + "/made2") is local
    if not root.startswith("mem://"):  # mem:// keys cannot end in "/": no folder markers
        assert fs.isdir(f"{root}/made2") and fs.ls(f"{root}/made2") == []
    fs.pipe_file(f"{root}/made2/x", b"1")
    if local:
        with pytest.raises(FileExistsError):
            fs.makedirs(f"{root}/made2")
    else:
        fs.makedirs(f"{root}/made2")  # s3fs: exist_ok matters for buckets only
    with pytest.raises(OSError):
        fs.rmdir(f"{root}/made2")  # not empty
    fs.rm_file(f"{root}/made2/x")
    fs.rmdir(f"{root}/made2")
    assert not fs.exists(f"{root}/made2")


def test_numpy_and_pickle_through_the_filesystem(place: tuple[Any, str]) -> None:
    fs, root = place
    array = np.arange(1000, dtype=np.float64).reshape(10, 100)
    with fs.open(f"{root}/arr.npy", "wb") as f:
        np.save(f, array)
    with fs.open(f"{root}/arr.npy", "rb") as f:
        assert np.array_equal(np.load(f), array)
    clone = pickle.loads(pickle.dumps(fs))
    assert type(clone) is type(fs) and clone.cat_file(f"{root}/arr.npy") == fs.cat_file(f"{root}/arr.npy")


def test_reads_after_a_seek_fetch_their_bytes_and_sequential_reads_use_blocks(place: tuple[Any, str]) -> None:
    fs, root = place
    data = os.urandom(300_000)
    fs.pipe_file(f"{root}/cols.bin", data)
    with fs.open(f"{root}/cols.bin", "rb", block_size=65536) as f:
        f.seek(-20_000, os.SEEK_END)  # a footer: its bytes only, no block kept
        assert f.read(20_000) == data[-20_000:] and not f._blocks
        f.seek(5)  # more than two blocks: parallel ranges
        assert f.read(150_000) == data[5:150_005] and not f._blocks
        f.seek(200_000)
        assert f.read(30_000) == data[200_000:230_000] and not f._blocks
        assert f.read(70_000) == data[230_000:] and f._blocks  # continuing: blocks and read-ahead
        f.seek(70_000)  # small, after a seek: a block
        assert f.read(100) == data[70_000:70_100] and 1 in f._blocks
        f.seek(299_000)
        assert f.read(5_000) == data[299_000:] and f.read(10) == b""
    with fs.open(f"{root}/cols.bin", "rb", block_size=65536) as f:  # read_buffer: pyarrow's zero-copy read
        f.seek(-20_000, os.SEEK_END)
        assert memoryview(f.read_buffer(20_000)) == data[-20_000:]
        f.seek(5)
        assert memoryview(f.read_buffer(150_000)) == data[5:150_005]
        assert memoryview(f.read_buffer(100)) == data[150_005:150_105]  # continuing: served by blocks
        assert memoryview(f.read_buffer()) == data[150_105:] and f.read_buffer(10) == b""


def test_pyarrow_reads_a_partitioned_dataset_through_it(s3_bucket: str) -> None:
    pa = require("pyarrow", "pip install pyarrow")
    ds = require("pyarrow.dataset", "pip install pyarrow")
    pq = require("pyarrow.parquet", "pip install pyarrow")
    fs = sfs.filesystem("s3")
    root = f"{s3_bucket[5:]}pq"
    for part in range(2):
        table = pa.table({"id": np.arange(part * 1000, (part + 1) * 1000), "x": np.random.default_rng(part).random(1000),
                          "s": [f"v{i % 7}" for i in range(1000)]})  # fmt: skip
        pq.write_table(table, f"{root}/part={part}/f.parquet", filesystem=fs, row_group_size=250)
    dataset = ds.dataset(root, filesystem=fs, format="parquet", partitioning="hive")
    assert dataset.to_table().num_rows == 2000
    subset = dataset.to_table(columns=["id", "s"], filter=ds.field("part") == 1)
    assert subset["id"].to_pylist() == list(range(1000, 2000)) and subset["s"][8].as_py() == "v1"


def test_registered_schemes_serve_fsspec_open(s3_bucket: str) -> None:
    sfs.register()
    assert isinstance(fsspec.filesystem("s3"), sfs.S3FileSystem)
    with fsspec.open(f"{s3_bucket}t/table.csv", "w") as f:
        f.write("a,b\n1,2\n3,4\n")
    with fsspec.open(f"{s3_bucket}t/table.csv", "r") as f:
        assert f.read().splitlines() == ["a,b", "1,2", "3,4"]
    fs, path = fsspec.core.url_to_fs(f"{s3_bucket}t/table.csv")
    assert isinstance(fs, sfs.S3FileSystem) and fs.size(path) == 12
    assert fs.ls("", detail=False) and s3_bucket[5:-1] in fs.ls("", detail=False)  # buckets at the root
    with pytest.raises(ValueError, match="s3dlio serves"):
        sfs.register(["gs"])


def test_pandas_reads_and_writes_through_it(s3_bucket: str) -> None:
    pd = require("pandas", "pip install 's3dlio[dev]'")
    sfs.register()
    frame = pd.DataFrame({"a": [1, 3], "b": [2.5, 4.5]})
    frame.to_csv(f"{s3_bucket}pd/table.csv", index=False)
    assert pd.read_csv(f"{s3_bucket}pd/table.csv").equals(frame)


def test_storage_options(moto_server: Any) -> None:
    fs = sfs.filesystem("s3", key="k", secret="s", client_kwargs={"endpoint_url": moto_server.endpoint,
                                                                  "region_name": "eu-west-1"})  # fmt: skip
    config = fs.config
    assert (config.access_key_id, config.secret_access_key) == ("k", "s")
    assert (config.endpoint_url, config.region) == (moto_server.endpoint, "eu-west-1")
    assert repr(fs) == "<S3FileSystem s3://>" and "'s'" not in repr(config)  # no secrets in reprs
    assert sfs.filesystem("s3").config is None  # the process-wide settings, read at each call
    assert sfs.filesystem("s3", region="us-west-2").config == default_config().replace(region="us-west-2")
    with pytest.raises(TypeError, match="unknown storage option"):
        sfs.filesystem("s3", colour="blue")
    with pytest.raises(ValueError, match="s3dlio serves"):
        sfs.filesystem("hdfs")


def test_paths_strip_their_scheme() -> None:
    assert sfs.S3FileSystem._strip_protocol("s3://bkt/a/b/") == "bkt/a/b"
    assert sfs.LocalFileSystem._strip_protocol("file:///tmp/x/") == "/tmp/x"
    assert sfs.filesystem("s3").unstrip_protocol("bkt/k") == "s3://bkt/k"
    assert sfs.filesystem("file").uri("/tmp/x") == "file:///tmp/x"


def test_append_mode_continues_the_object(place: tuple[Any, str]) -> None:
    fs, root = place
    with fs.open(f"{root}/log.csv", "a") as f:  # a new object
        f.write("step,loss\n")
    with fs.open(f"{root}/log.csv", "ab") as f:
        assert f.tell() == 10  # positioned after the old bytes
        f.write(b"0,")
    with fs.open(f"{root}/log.csv", "a") as f:
        f.write("1.5\n")
    big = bytes(range(256)) * 9000  # 2.2 MiB: copied into the new upload in parts
    fs.pipe_file(f"{root}/big.bin", big)
    with fs.open(f"{root}/big.bin", "ab", block_size=1024 * 1024) as f:
        f.write(b"tail")
    assert fs.cat_file(f"{root}/log.csv") == b"step,loss\n0,1.5\n"
    assert fs.cat_file(f"{root}/big.bin") == big + b"tail"
    with pytest.raises(RuntimeError), fs.open(f"{root}/log.csv", "ab") as f:
        f.write(b"lost")
        raise RuntimeError("boom")
    assert fs.cat_file(f"{root}/log.csv") == b"step,loss\n0,1.5\n"  # the old object is untouched


def test_cat_ranges_and_cat_of_many(place: tuple[Any, str]) -> None:
    fs, root = place
    data = bytes(range(256)) * 64
    fs.pipe_file(f"{root}/r.bin", data)
    fs.pipe_file(f"{root}/s.bin", b"small")
    paths = [f"{root}/r.bin"] * 40 + [f"{root}/s.bin", f"{root}/missing"]
    starts = [i * 100 for i in range(40)] + [1, 0]
    ends = [i * 100 + 37 for i in range(40)] + [-1, 5]
    got = fs.cat_ranges(paths, starts, ends)
    assert got[:40] == [data[i * 100 : i * 100 + 37] for i in range(40)]
    assert got[40] == b"mal" and isinstance(got[41], FileNotFoundError)
    with pytest.raises(FileNotFoundError):
        fs.cat_ranges(paths, starts, ends, on_error="raise")
    assert fs.cat_ranges([f"{root}/r.bin"] * 2, 10, 20) == [data[10:20]] * 2  # one start/end for all
    missing_first = fs.cat_ranges([f"{root}/missing", f"{root}/s.bin"], (0, 0), (2, 2))
    assert isinstance(missing_first[0], FileNotFoundError) and missing_first[1] == b"sm"
    with pytest.raises(ValueError, match="2 paths but 1 starts"):
        fs.cat_ranges([f"{root}/r.bin"] * 2, [0], [1, 2])

    base = fs._strip_protocol(root)
    assert fs.cat([f"{root}/r.bin", f"{root}/s.bin"]) == {f"{base}/r.bin": data, f"{base}/s.bin": b"small"}
    assert fs.cat(f"{root}/*.bin") == {f"{base}/r.bin": data, f"{base}/s.bin": b"small"}
    with pytest.raises(FileNotFoundError):
        fs.cat([f"{root}/s.bin", f"{root}/missing"])
    assert fs.cat([f"{root}/s.bin", f"{root}/missing"], on_error="omit") == {f"{base}/s.bin": b"small"}


def test_cat_ranges_run_concurrently(moto_server: Any, s3_bucket: str) -> None:
    """32 ranges through a proxy that caps each connection at 2 MB/s: the proxy sees many
    requests at once from cat_ranges, one at a time from a loop of cat_file."""
    data = os.urandom(32 * 128 * 1024)
    s3dlio.put(f"{s3_bucket}ranges.bin", data)
    proxy = FaultProxy(moto_server.port, rate=2_000_000)
    try:
        fs = sfs.filesystem("s3", endpoint_url=proxy.url, max_in_flight=16)
        path = f"{s3_bucket}ranges.bin"
        starts = list(range(0, len(data), 128 * 1024))
        ends = [s + 128 * 1024 for s in starts]
        serial = [fs.cat_file(path, s, e) for s, e in zip(starts, ends, strict=True)]
        one_by_one, proxy.peak = proxy.peak, 0
        together = fs.cat_ranges([path] * len(starts), starts, ends)
        at_once = proxy.peak
    finally:
        proxy.stop()
    assert together == serial == [data[s:e] for s, e in zip(starts, ends, strict=True)]
    # One by one, a finished request counts until its proxy thread loops back (1-3 under load);
    # cat_ranges has up to max_in_flight=16 out at once (each range takes about 65 ms here).
    assert at_once >= max(8, one_by_one + 4), (one_by_one, at_once)


def test_s3fs_and_adlfs_storage_options(moto_server: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = sfs.filesystem(
        "s3", anon=False, use_ssl=False, default_block_size=1 << 20, endpoint_url=moto_server.endpoint,
        config_kwargs={"max_pool_connections": 7, "connect_timeout": 3, "read_timeout": 9,
                       "retries": {"max_attempts": 2}, "s3": {"addressing_style": "path"},
                       "signature_version": "s3v4"},
        default_cache_type="readahead",
    )  # fmt: skip
    config = fs.config
    assert (config.max_in_flight, config.connect_timeout, config.read_timeout) == (7, 3, 9)
    assert config.max_attempts == 3  # botocore's max_attempts counts retries
    assert sfs.filesystem("s3", config_kwargs={"retries": {"total_max_attempts": 5}}).config.max_attempts == 5
    fs.pipe_file(f"{s3_bucket}o.bin", b"x" * 3_000_000)
    with fs.open(f"{s3_bucket}o.bin", "rb") as f:
        assert f.read(10) == b"x" * 10 and f._block == 1 << 20  # default_block_size: the read-ahead block
    with fs.open(f"{s3_bucket}o.bin", "rb", block_size=65536) as f:
        assert f._block == 65536
    azure = sfs.filesystem("az", account_name="acct", account_key="a2V5", connection_string="UseDevelopmentStorage=true")
    assert (azure.config.azure_account_name, azure.config.azure_account_key) == ("acct", "a2V5")
    assert azure.config.azure_connection_string == "UseDevelopmentStorage=true"

    import botocore

    assert sfs.filesystem("s3", anon=True).config.unsigned is True  # s3fs's anon: unsigned requests
    assert sfs.filesystem("s3", config_kwargs={"signature_version": botocore.UNSIGNED}).config.unsigned is True
    assert not fs.config.unsigned
    bucket = s3_bucket.split("/")[2]
    moto_server.client().put_object(Bucket=bucket, Key="public.bin", Body=b"open", ACL="public-read")
    assert sfs.filesystem("s3", anon=True, endpoint_url=moto_server.endpoint).cat(f"{s3_bucket}public.bin") == b"open"
    with pytest.raises(ConfigError, match="signs with SigV4"):
        sfs.filesystem("s3", config_kwargs={"signature_version": "s3v2"})
    with pytest.raises(ConfigError, match="max_pool_connections"):
        sfs.filesystem("s3", config_kwargs={"tcp_keepalive": True})
    with pytest.raises(ConfigError, match="never turns TLS checks off"):
        sfs.filesystem("s3", client_kwargs={"verify": False})
    assert sfs.filesystem("az", account_name="acct", sas_token="sv=1").config.azure_sas_token == "sv=1"  # adlfs's
    with pytest.raises(ConfigError, match="requester_pays"):
        sfs.filesystem("s3", requester_pays=True)
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    s3dlio.configure()  # AWS itself: over TLS only
    with pytest.raises(ConfigError, match="use_ssl=False without an endpoint"):
        sfs.filesystem("s3", use_ssl=False)


@pytest.mark.parametrize("package", ["s3dlio_torch", "s3dlio_tf", "s3dlio_jax"])
def test_importing_a_framework_package_registers_the_filesystems(package: str) -> None:
    """In a fresh process, importing a framework package alone makes fsspec's s3:// s3dlio's."""
    script = (
        "import sys, fsspec\n"
        "assert 's3dlio.fsspec' not in sys.modules\n"
        f"import {package}\n"
        "assert 's3dlio.fsspec' not in sys.modules  # registered by name: loaded on first use\n"
        "names = [type(fsspec.filesystem(p)).__name__ for p in ('s3', 's3a', 'az', 'mem', 'direct')]\n"
        "print(names, type(fsspec.filesystem('file')).__module__)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-6:] == [
        "['S3FileSystem',", "'S3FileSystem',", "'AzureFileSystem',", "'MemoryFileSystem',", "'DirectFileSystem']",
        "fsspec.implementations.local",
    ]  # fmt: skip


def test_a_loaded_class_is_replaced_too() -> None:
    from s3dlio.fsspec_registry import LAZY_CLASSES, register_lazily

    class Other(fsspec.AbstractFileSystem):  # type: ignore[misc,name-defined]
        protocol = "s3"

    try:
        fsspec.register_implementation("s3", Other, clobber=True)
        assert fsspec.get_filesystem_class("s3") is Other
        assert register_lazily()
        assert fsspec.get_filesystem_class("s3") is sfs.S3FileSystem
    finally:
        sfs.register()
    served = {p: c.__name__ for c in sfs.FILESYSTEMS.values() if c.scheme != "file" for p in c.protocol}
    assert {k: v.rsplit(".", 1)[1] for k, v in LAZY_CLASSES.items()} == served


@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_sign_gives_urls_that_work_without_credentials(place: tuple[Any, str], engine: str) -> None:
    """``fs.sign`` as s3fs offers it: a presigned URL (S3) or SAS (Azure) that an HTTP client
    with no credentials can GET, and PUT when asked; file:// and mem:// have no URL to sign."""
    import urllib.error
    import urllib.request

    fs, root = place
    s3dlio.configure(engine=engine)
    try:
        fs.pipe_file(f"{root}/signed/a b.bin", b"signed bytes")
        if root.startswith(("file://", "mem://")):
            with pytest.raises(NotImplementedError, match="no URL to sign"):
                fs.sign(f"{root}/signed/a b.bin")
            return
        url = fs.sign(f"{root}/signed/a b.bin", expiration=60)
        signed = ("X-Amz-Signature=", "X-Amz-Expires=60") if root.startswith("s3://") else ("sig=", "se=", "sp=r")
        assert all(part in url for part in signed), url
        with urllib.request.urlopen(url, timeout=30) as reply:
            assert reply.read() == b"signed bytes"
        put = urllib.request.Request(fs.sign(f"{root}/signed/up.bin", 60, method="put"), data=b"uploaded",
                                     method="PUT", headers={"x-ms-blob-type": "BlockBlob",  # Azure asks which kind
                                                                "Content-Type": "application/octet-stream"})  # fmt: skip
        urllib.request.urlopen(put, timeout=30).close()
        assert bytes(s3dlio.get(f"{root}/signed/up.bin")) == b"uploaded"
        with pytest.raises(s3dlio.InvalidArgumentError, match="method 'POST'"):
            fs.sign(f"{root}/signed/a b.bin", method="POST")
        with pytest.raises(s3dlio.InvalidArgumentError, match="expires=0"):
            fs.sign(f"{root}/signed/a b.bin", expiration=0)
        with pytest.raises(TypeError, match="VersionId"):
            fs.sign(f"{root}/signed/a b.bin", VersionId="x")
    finally:
        s3dlio.configure()


def test_sign_without_credentials_gives_the_plain_url() -> None:
    """``anon=True`` (unsigned requests) has nothing to sign with: the object's plain URL, as
    s3fs gives it, on both services; nothing is sent (the endpoints do not exist)."""
    s3 = sfs.filesystem("s3", anon=True, endpoint_url="http://127.0.0.1:9")
    assert s3.sign("bucket/a b") == "http://127.0.0.1:9/bucket/a%20b"
    url = sfs.filesystem("az", anon=True, account_name="acct").sign("cont/a b")
    assert url.endswith("/cont/a%20b") and "?" not in url, url  # the account's endpoint (Azurite's here)
