"""s3dlio's filesystems where s3fs/adlfs users' code relies on their behaviour: arguments are
honoured or refused (never dropped), transactions, buckets, adlfs's URL forms, file attributes."""

from __future__ import annotations

import asyncio
import pickle
import uuid
from pathlib import Path
from typing import Any

import pytest

fsspec = pytest.importorskip("fsspec")

import s3dlio  # noqa: E402
import s3dlio.fsspec as sfs  # noqa: E402
from s3dlio.errors import ConfigError  # noqa: E402


@pytest.fixture(autouse=True)
def _registered() -> None:
    sfs.register()


def test_find_with_a_prefix_returns_only_those_names(fsspec_place: tuple[Any, str]) -> None:
    fs, root = fsspec_place
    for name in ("tmp_1", "tmp_2", "keep/important.bin", "model.bin", "sub/tmp_3"):
        fs.pipe_file(f"{root}/{name}", b"x")
    assert fs.find(root, prefix="tmp_") == [f"{root}/tmp_1", f"{root}/tmp_2"]
    assert fs.find(f"{root}/sub", prefix="tmp") == [f"{root}/sub/tmp_3"]
    assert fs.find(root, prefix="nothing") == []
    fs.rm(fs.find(root, prefix="tmp_"))  # the s3fs idiom: only those two go
    assert fs.find(root) == [f"{root}/keep/important.bin", f"{root}/model.bin", f"{root}/sub/tmp_3"]
    with pytest.raises(ValueError, match="prefix"):
        fs.find(root, prefix="tmp_", withdirs=True)


def test_arguments_that_would_be_dropped_are_refused(fsspec_place: tuple[Any, str]) -> None:
    fs, root = fsspec_place
    fs.pipe_file(f"{root}/a", b"old")
    calls = [
        lambda: fs.open(f"{root}/b", "wb", ContentType="text/csv"),
        lambda: fs.pipe_file(f"{root}/a", b"new", ServerSideEncryption="AES256"),
        lambda: fs.put_file(__file__, f"{root}/c", ACL="public-read"),
        lambda: fs.cat_file(f"{root}/a", version_id="v1"),
        lambda: fs.open(f"{root}/a", "rb", version_id="v1"),
        lambda: fs.info(f"{root}/a", version_id="v1"),
        lambda: fs.ls(root, versions=True),
        lambda: fs.cp_file(f"{root}/a", f"{root}/d", StorageClass="GLACIER"),
    ]
    for call in calls:
        with pytest.raises(TypeError, match="unexpected argument"):
            call()
    assert fs.cat_file(f"{root}/a") == b"old" and fs.find(root) == [f"{root}/a"]
    # what callers pass that changes nothing here is taken
    assert fs.ls(root, refresh=True) == [f"{root}/a"]
    with fs.open(f"{root}/a", "rb", cache_type="readahead", size=3) as f:
        assert f.read() == b"old"


def test_ls_gives_names_by_default_as_s3fs_and_adlfs_do(fsspec_place: tuple[Any, str]) -> None:
    fs, root = fsspec_place
    fs.pipe_file(f"{root}/d/x", b"1")
    fs.pipe_file(f"{root}/y", b"22")
    assert sorted(fs.ls(root)) == [f"{root}/d", f"{root}/y"]
    assert sorted((e["name"], e["type"]) for e in fs.ls(root, detail=True)) == [
        (f"{root}/d", "directory"), (f"{root}/y", "file")
    ]  # fmt: skip


def test_a_transaction_publishes_its_files_when_it_ends(fsspec_place: tuple[Any, str]) -> None:
    fs, root = fsspec_place
    fs.pipe_file(f"{root}/kept", b"old")
    with fs.transaction:
        with fs.open(f"{root}/a", "wb") as f:
            f.write(b"aaa")
        fs.pipe_file(f"{root}/b", b"bbb")
        with fs.open(f"{root}/kept", "wb") as f:
            f.write(b"new")
        assert not fs.exists(f"{root}/a") and not fs.exists(f"{root}/b")
        assert fs.cat_file(f"{root}/kept") == b"old"
    assert (fs.cat_file(f"{root}/a"), fs.cat_file(f"{root}/b"), fs.cat_file(f"{root}/kept")) == (b"aaa", b"bbb", b"new")

    with pytest.raises(RuntimeError, match="boom"), fs.transaction:
        with fs.open(f"{root}/c", "wb") as f:
            f.write(b"ccc")
        with fs.open(f"{root}/kept", "wb") as f:
            f.write(b"lost")
        raise RuntimeError("boom")
    assert not fs.exists(f"{root}/c") and fs.cat_file(f"{root}/kept") == b"new"

    f = fs.open(f"{root}/e", "wb", autocommit=False)
    f.write(b"eee")
    f.close()
    assert not fs.exists(f"{root}/e")
    f.commit()
    assert fs.cat_file(f"{root}/e") == b"eee"
    f = fs.open(f"{root}/e", "wb", autocommit=False)
    f.write(b"dropped")
    f.close()
    f.discard()
    assert fs.cat_file(f"{root}/e") == b"eee"


def test_files_carry_fsspecs_attributes(fsspec_place: tuple[Any, str]) -> None:
    fs, root = fsspec_place
    with fs.open(f"{root}/a", "wb", block_size=5 * 2**20) as f:
        assert (f.fs, f.path, f.mode, f.blocksize) == (fs, f"{root}/a", "wb", 5 * 2**20)
        f.write(b"0123456789")
        assert f.loc == 10
    with fs.open(f"{root}/a", "rb", block_size=65536) as f:
        assert (f.fs, f.path, f.mode, f.blocksize) == (fs, f"{root}/a", "rb", 65536)
        f.seek(4)
        assert f.loc == 4 and f.info()["size"] == 10 and f.details["type"] == "file"


def test_rm_recursive_takes_an_object_and_the_keys_under_its_name(fsspec_place: tuple[Any, str]) -> None:
    fs, root = fsspec_place
    if fs._local:  # a file cannot also be a directory
        return
    for name in ("x", "x/1", "x/2", "xy", "keep"):
        fs.pipe_file(f"{root}/{name}", b"1")
    fs.rm(f"{root}/x", recursive=True)
    assert fs.find(root) == [f"{root}/keep", f"{root}/xy"]
    assert f"{root}" not in fs.glob(f"{root}/**")  # a bucket is not inside itself
    fs.rm(f"{root}/**", recursive=True)
    assert fs.find(root) == []


@pytest.mark.parametrize("scheme", ["s3", "az", "mem"])
def test_buckets_are_made_and_removed_as_in_s3fs(scheme: str, request: pytest.FixtureRequest) -> None:
    if scheme == "s3":
        request.getfixturevalue("moto_server")
    elif scheme == "az":
        request.getfixturevalue("azurite")
    fs = sfs.filesystem(scheme)
    name = f"mk{s3dlio.__name__}{id(request) % 10**8}"
    fs.mkdir(name)
    try:
        assert name in fs.ls("")
        with pytest.raises(FileExistsError):  # s3fs raises by default; adlfs passes unless exist_ok=False
            fs.mkdir(name, **({"exist_ok": False} if scheme == "az" else {}))
        fs.makedirs(name, exist_ok=True)
        fs.makedirs(f"{name}/a/b", exist_ok=True)
        fs.pipe_file(f"{name}/a/b/c", b"1")
        with pytest.raises(OSError):
            fs.rmdir(name)  # not empty: nothing deleted
        assert fs.cat_file(f"{name}/a/b/c") == b"1"
        fs.rm(name, recursive=True)
        assert name not in fs.ls("")
        if scheme != "mem":  # mem:// makes buckets as objects are written into them
            fs.makedirs(f"{name}/deep/dir", exist_ok=True)  # its bucket is made
            assert name in fs.ls("")
            assert fs.ls(f"{name}/deep") == [f"{name}/deep/dir"] and fs.ls(f"{name}/deep/dir") == []  # a marker
            with pytest.raises(FileNotFoundError):
                fs.mkdir(f"{name}-none/dir", create_parents=False)
            fs.rmdir(f"{name}/deep/dir")
            fs.rmdir(name)
            assert name not in fs.ls("")
    finally:
        if name in fs.ls(""):
            fs.rm(name, recursive=True)


def test_storage_options_s3fs_users_pass(moto_server: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.config import Config as BotoConfig

    bucket = s3_bucket[len("s3://") :].rstrip("/")
    # None means "not given": the endpoint in client_kwargs is used
    fs = fsspec.filesystem("s3", endpoint_url=None, client_kwargs={"endpoint_url": moto_server.endpoint},
                           key="testing", secret="testing", version_aware=False, requester_pays=False,
                           session=None, s3_additional_kwargs={}, skip_instance_cache=True)  # fmt: skip
    assert fs.config.endpoint_url == moto_server.endpoint
    fs.pipe_file(f"{bucket}/a", b"1")
    info = fs.info(f"{bucket}/a")
    assert (info["ETag"], info["LastModified"], info["Key"], info["Size"]) == (info["etag"], info["mtime"],
                                                                             f"{bucket}/a", 1)  # fmt: skip
    assert fs.split_path(f"s3://{bucket}/a/b") == (bucket, "a/b", None)
    assert f"/{bucket}/a?" in fs.url(f"{bucket}/a", expires=60) and "X-Amz-Expires=60" in fs.url(f"{bucket}/a", 60)
    # listing buckets uses the filesystem's own options, not the process's
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    s3dlio.configure()
    assert bucket in fs.ls("")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    s3dlio.configure()

    fs = sfs.filesystem("s3", username="u", password="p", max_concurrency=7,
                        client_kwargs={"config": BotoConfig(connect_timeout=3, read_timeout=9), "use_ssl": False,
                                       "endpoint_url": moto_server.endpoint})  # fmt: skip
    c = fs.config
    assert (c.access_key_id, c.secret_access_key, c.max_in_flight, c.connect_timeout, c.read_timeout) == (
        "u", "p", 7, 3, 9)  # fmt: skip
    for option, value in [("version_aware", True), ("requester_pays", True), ("s3_additional_kwargs", {"ACL": "x"}),
                          ("session", object())]:  # fmt: skip
        with pytest.raises(ConfigError, match=option):
            sfs.filesystem("s3", **{option: value})


def test_adlfs_names_and_url_forms(azurite: Any, az_container: str) -> None:
    container = az_container[len("az://") :].rstrip("/")
    key = s3dlio.config.AZURITE_KEY
    fs = sfs.filesystem("az", account_name="devstoreaccount1", account_key=key, credential=None,
                        blocksize=3 * 2**20, max_concurrency=5, connection_timeout=4, socket_timeout=8,
                        assume_container_exists=True, location_mode="primary")  # fmt: skip
    assert (fs.default_block_size, fs.config.max_in_flight, fs.config.connect_timeout, fs.config.read_timeout) == (
        3 * 2**20, 5, 4, 8)  # fmt: skip
    host = sfs.filesystem("az", account_host="acct.blob.example.net")
    assert host.config.azure_endpoint == "https://acct.blob.example.net"
    with pytest.raises(ConfigError, match="location_mode"):
        sfs.filesystem("az", location_mode="secondary")

    s3dlio.put(f"{az_container}k.txt", b"hello")
    for url in (f"abfs://{container}/k.txt", f"abfss://{container}/k.txt",
                f"az://{container}@devstoreaccount1.dfs.core.windows.net/k.txt"):  # fmt: skip
        with fsspec.open(url, "rb") as f:
            assert f.read() == b"hello", url
    assert type(fsspec.filesystem("abfs")).__module__ == "s3dlio.fsspec"
    opts = sfs.AzureFileSystem._get_kwargs_from_urls(f"abfs://{container}@acct.dfs.core.windows.net/k")
    assert opts == {"account_name": "acct"}


def test_a_transaction_inside_another_joins_it(fsspec_place: tuple[Any, str]) -> None:
    fs, root = fsspec_place
    fs.pipe_file(f"{root}/kept", b"old")
    with pytest.raises(RuntimeError), fs.transaction:
        fs.pipe(f"{root}/n1", b"1")
        with fs.transaction:
            fs.pipe(f"{root}/n2", b"2")
        assert not fs.exists(f"{root}/n2")  # the inner exit publishes nothing
        fs.pipe(f"{root}/kept", b"new")
        raise RuntimeError("boom")
    assert fs.find(root) == [f"{root}/kept"] and fs.cat_file(f"{root}/kept") == b"old"
    with fs.transaction:
        fs.pipe(f"{root}/n1", b"1")
        with fs.transaction:
            fs.pipe(f"{root}/n2", b"2")
    assert fs.cat(f"{root}/n1") == b"1" and fs.cat(f"{root}/n2") == b"2"


def test_a_file_written_in_a_transaction_is_not_appended_to_before_it_ends(fsspec_place: tuple[Any, str]) -> None:
    fs, root = fsspec_place
    fs.pipe_file(f"{root}/log", b"OLD")
    with fs.transaction:
        with fs.open(f"{root}/log", "ab") as f:
            f.write(b"+X")
        with pytest.raises(ValueError, match="this transaction"):
            fs.open(f"{root}/log", "ab")  # it would start from OLD and lose +X
        with pytest.raises(ValueError, match="this transaction"):
            fs.open(f"{root}/log", "xb")
    assert fs.cat_file(f"{root}/log") == b"OLD+X"


def test_a_glob_rm_takes_the_folder_markers_too(fsspec_place: tuple[Any, str]) -> None:
    fs, root = fsspec_place
    fs.makedirs(f"{root}/z/deep", exist_ok=True)
    fs.pipe_file(f"{root}/z/deep/f", b"1")
    fs.pipe_file(f"{root}/a.txt", b"1")
    fs.rm(f"{root}/*", recursive=True)
    assert fs.ls(root) == [] and not fs.exists(f"{root}/z")  # no marker of z/ or z/deep/ left


@pytest.mark.parametrize("compression", ["gzip", "bz2", "xz", "zstd"])
def test_a_compressed_file_written_through_open_is_published(fsspec_place: tuple[Any, str], compression: str) -> None:
    """``fs.open(p, "wb", compression=...)``: gzip's, bz2's and lzma's files leave the file under
    them open; the object must still appear when the ``with`` block ends, and never on an error."""
    fs, root = fsspec_place
    with fs.open(f"{root}/c.bin", "wb", compression=compression) as f:
        f.write(b"hello compressed" * 100)
    with fs.open(f"{root}/c.bin", "rb", compression=compression) as f:
        assert f.read() == b"hello compressed" * 100
    with fs.open(f"{root}/t.txt", "wt", compression=compression) as f:
        f.write("line\n" * 10)
    with fs.open(f"{root}/t.txt", "rt", compression=compression) as f:
        assert f.read() == "line\n" * 10
    with pytest.raises(RuntimeError, match="midway"), fs.open(f"{root}/c.bin", "wb", compression=compression) as f:
        f.write(b"half")
        raise RuntimeError("midway")
    with fs.open(f"{root}/c.bin", "rb", compression=compression) as f:
        assert f.read() == b"hello compressed" * 100  # the old object kept its bytes


def test_rm_of_an_object_that_is_not_there(fsspec_place: tuple[Any, str]) -> None:
    """s3fs and adlfs delete idempotently: the missing one is no error and the rest still go."""
    fs, root = fsspec_place
    fs.pipe({f"{root}/keep1": b"1", f"{root}/keep2": b"2"})
    if fsspec_place[0].protocol[0] == "file":  # fsspec's local filesystem raises, as os.remove does
        with pytest.raises(FileNotFoundError):
            fs.rm(f"{root}/gone")
        return
    fs.rm(f"{root}/gone")
    fs.rm([f"{root}/gone", f"{root}/keep1"])
    assert not fs.exists(f"{root}/keep1") and fs.exists(f"{root}/keep2")
    with pytest.raises(FileNotFoundError):
        fs.rm(f"{root}/gone", recursive=True)


def test_lines_read_from_a_binary_file(fsspec_place: tuple[Any, str]) -> None:
    """``readline``/``readlines``/iteration on a ``"rb"`` file: whole lines, found in the fetched
    blocks (io's default reads a file without ``peek`` a byte, here a request, at a time)."""
    fs, root = fsspec_place
    data = b"".join(b"%d,%s\n" % (i, b"x" * (i % 50)) for i in range(5000)) + b"no newline at the end"
    fs.pipe_file(f"{root}/lines.csv", data)
    reads = 0
    with fs.open(f"{root}/lines.csv", "rb", block_size=64 * 1024) as f:
        fetch = f._fetch

        def counted(index: int) -> Any:
            nonlocal reads
            reads += 1
            return fetch(index)

        f._fetch = counted
        assert f.readline() == b"0,\n"
        assert f.readline(3) == b"1,x"
        assert f.readline() == b"\n"
        rest = f.readlines()
    assert [b"0,\n", b"1,x\n", *rest] == data.splitlines(keepends=True)
    assert reads <= len(data) // (64 * 1024) + 1  # each block once
    with fs.open(f"{root}/lines.csv", "rb") as f:
        assert list(f) == data.splitlines(keepends=True)


def test_blockcache_keeps_the_blocks_it_read(fsspec_place: tuple[Any, str], tmp_path: Path) -> None:
    fs, root = fsspec_place
    data = bytes(range(256)) * 4096
    fs.pipe_file(f"{root}/big.bin", data)
    cache = tmp_path / "blocks"
    cached = fsspec.filesystem("blockcache", fs=fs, cache_storage=str(cache))
    with cached.open(f"{root}/big.bin", "rb", block_size=64 * 1024) as f:
        f.seek(500_000)
        assert f.read(100) == data[500_000:500_100]
        f.seek(0)
        assert f.readline() == data[: data.index(b"\n") + 1]
        assert f.read() == data[data.index(b"\n") + 1 :]
    assert any(cache.iterdir())  # the blocks are kept on local disk
    with cached.open(f"{root}/big.bin", "rb", block_size=64 * 1024) as f:
        assert f.read() == data


def test_pipe_file_create_writes_only_where_nothing_is(fsspec_place: tuple[Any, str]) -> None:
    fs, root = fsspec_place
    fs.pipe_file(f"{root}/once", b"first", mode="create")
    with pytest.raises(FileExistsError):
        fs.pipe_file(f"{root}/once", b"second", mode="create")
    assert fs.cat_file(f"{root}/once") == b"first"


def test_mv_in_a_failed_transaction_keeps_every_byte(fsspec_place: tuple[Any, str]) -> None:
    """Copies are published at once (s3fs's are server-side): a move in a transaction that
    fails never leaves its source deleted and its copy unpublished."""
    fs, root = fsspec_place
    fs.pipe_file(f"{root}/precious", b"only copy")
    with pytest.raises(RuntimeError, match="later"), fs.transaction:
        fs.copy(f"{root}/precious", f"{root}/copied")
        assert fs.cat_file(f"{root}/copied") == b"only copy"  # already there
        fs.mv(f"{root}/precious", f"{root}/renamed")
        raise RuntimeError("a later step fails")
    assert fs.cat_file(f"{root}/renamed") == b"only copy" and not fs.exists(f"{root}/precious")
    with fs.transaction:
        fs.pipe_file(f"{root}/pending", b"new")
        with pytest.raises(ValueError, match="this transaction"):
            fs.cp_file(f"{root}/pending", f"{root}/elsewhere")  # it would copy what is not there yet


def test_a_copy_onto_itself_raises_before_anything_is_deleted(fsspec_place: tuple[Any, str]) -> None:
    fs, root = fsspec_place
    fs.pipe_file(f"{root}/d/f", b"data")
    spelled = f"{fs.protocol[0]}://{root}/d/f"  # the same object, written another way
    for call in (lambda: fs.cp_file(spelled, f"{root}/d/f"), lambda: fs.copy(f"{root}/d/f", spelled)):
        with pytest.raises(OSError, match="onto itself"):
            call()
    fs.mv(spelled, f"{root}/d/f")  # fsspec's rule for a path moved onto itself: nothing happens
    with pytest.raises(OSError, match="into itself"):
        fs.mv(f"{root}/d", f"{root}/d/sub", recursive=True)  # copy, then rm -r would take the copy too
    assert fs.find(root) == [f"{root}/d/f"] and fs.cat_file(f"{root}/d/f") == b"data"


def test_globs_and_listings_never_traverse_every_bucket(fsspec_place: tuple[Any, str]) -> None:
    """As s3fs: a glob or listing whose bucket part is empty or a pattern raises ValueError, and
    ``rm`` deletes nothing (it used to empty and delete every bucket)."""
    fs, root = fsspec_place
    if fs._local:
        return
    fs.pipe_file(f"{root}/d/f", b"1")
    calls = [lambda: fs.rm("**"), lambda: fs.rm("*", recursive=True), lambda: fs.rm(f"{root[:-1]}?/d", recursive=True),
             lambda: fs.find(""), lambda: fs.glob("*/d"), lambda: fs.expand_path("/*", recursive=True),
             lambda: list(fs.walk("")), lambda: fs.du("")]  # fmt: skip
    for call in calls:
        with pytest.raises(ValueError, match="cannot traverse all"):
            call()
    assert fs.find(root) == [f"{root}/d/f"] and fs.glob(f"{root}/*") == [f"{root}/d"]


def test_rm_takes_folder_markers_bucket_by_bucket_and_before_the_bucket(moto_server: Any) -> None:
    fs = sfs.filesystem("s3")
    one, two = f"mk-{uuid.uuid4().hex[:10]}", f"mk-{uuid.uuid4().hex[:10]}"
    for bucket in (one, two):
        fs.makedirs(f"{bucket}/d", exist_ok=True)  # a folder marker d/
        fs.pipe_file(f"{bucket}/d/f", b"x")
    fs.makedirs(f"{one}/keep", exist_ok=True)
    fs.rm([f"{two}/d", f"{one}/d"], recursive=True, maxdepth=5)
    assert (fs.find(one, withdirs=True), fs.find(two, withdirs=True)) == ([f"{one}/keep"], [])
    fs.rm(one, recursive=True, maxdepth=5)  # its markers go before the bucket
    fs.rm(two, recursive=True)
    assert one not in fs.ls("") and two not in fs.ls("")


def test_get_recursive_fetches_the_children_of_a_key_that_is_also_a_prefix(fsspec_place: tuple[Any, str], tmp_path: Path) -> None:
    """s3fs's test_get_directories: ``dir/dirkey`` is an object and a prefix; the children come."""
    fs, root = fsspec_place
    if fs._local:
        return
    for name in ("dir/dirkey/key0", "dir/dirkey/key1", "dir/dirkey", "dir/dir/key"):
        fs.touch(f"{root}/{name}")
    fs.get(f"{root}/dir/", str(tmp_path / "out"), recursive=True)
    got = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert got == ["dir/key", "dirkey/key0", "dirkey/key1"]
    if fs.protocol[0] != "az":  # on Azure a zero-byte blob with blobs below is an ADLS directory
        fs.get(f"{root}/dir/dirkey", str(tmp_path / "one"))  # named alone, it is the object
        assert (tmp_path / "one").is_file()


def test_an_open_file_pickles_at_its_position(fsspec_place: tuple[Any, str]) -> None:
    fs, root = fsspec_place
    fs.pipe_file(f"{root}/p", b"0123456789")
    with fs.open(f"{root}/p", "rb") as f:
        f.seek(3)
        copy = pickle.loads(pickle.dumps(f))
        assert (copy.tell(), copy.read(3), copy.path, copy.mode) == (3, b"345", f"{root}/p", "rb")
        fs.pipe_file(f"{root}/p", b"replaced, and longer")
        later = pickle.loads(pickle.dumps(f))
    with pytest.raises(OSError, match="replaced"):
        later.read()


def test_asynchronous_gives_fsspecs_async_api(fsspec_place: tuple[Any, str]) -> None:
    """zarr 3 opens every store with ``asynchronous=True``: honoured, never dropped."""
    fs, root = fsspec_place
    fs.pipe_file(f"{root}/a", b"hello")
    afs = type(fs)(asynchronous=True)  # what fsspec.filesystem(scheme, asynchronous=True) builds
    assert afs.async_impl and afs.asynchronous
    assert asyncio.run(afs._cat_file(f"{root}/a")) == b"hello"
    loop = asyncio.new_event_loop()
    with pytest.raises(ConfigError, match="asynchronous=True"):
        type(fs)(loop=loop)
    loop.close()


def test_local_listings_show_empty_and_linked_directories(tmp_path: Path) -> None:
    """As fsspec's LocalFileSystem lists them; a glob ``rm -r`` takes a link, not what it points to."""
    fs = sfs.filesystem("file")
    root, outside = tmp_path / "root", tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "kept.txt").write_bytes(b"k")
    fs.mkdir(f"{root}/empty")
    fs.pipe_file(f"{root}/f.txt", b"x")
    (root / "link").symlink_to(outside)
    names = [f"{root}/empty", f"{root}/f.txt", f"{root}/link"]
    assert fs.ls(str(root)) == names and fs.glob(f"{root}/*") == names
    assert [(d, sorted(ds), fs_) for d, ds, fs_ in fs.walk(str(root), maxdepth=1)] == [
        (str(root), ["empty", "link"], ["f.txt"])]  # fmt: skip
    assert f"{root}/empty" in fs.find(str(root), withdirs=True)
    assert fs.ls(str(root), detail=True)[2]["islink"] is True
    fs.rm(f"{root}/*", recursive=True)
    assert fs.ls(str(root)) == [] and (outside / "sub" / "kept.txt").read_bytes() == b"k"


def test_rm_of_a_list_checks_every_path_before_deleting(fsspec_place: tuple[Any, str]) -> None:
    fs, root = fsspec_place
    fs.pipe({f"{root}/a/b/c.txt": b"1", f"{root}/a/d.txt": b"2", f"{root}/top.txt": b"3"})
    if fs._local:  # fsspec's local filesystem refuses a directory; nothing else went first
        with pytest.raises(IsADirectoryError):
            fs.rm(fs.glob(f"{root}/*"))
        assert fs.exists(f"{root}/top.txt")
        return
    fs.rm(fs.glob(f"{root}/*"))  # s3fs: the directory is skipped, the file deleted
    assert fs.find(root) == [f"{root}/a/b/c.txt", f"{root}/a/d.txt"]
    if fs.protocol[0] != "mem":  # mem:// buckets come by themselves
        with pytest.raises(FileNotFoundError):
            fs.rm([f"{root}/a/d.txt", f"nobucket{uuid.uuid4().hex[:8]}/f"])
        with pytest.raises(FileNotFoundError):
            fs.rm(f"nobucket{uuid.uuid4().hex[:8]}")
        assert fs.exists(f"{root}/a/d.txt")


def test_directories_made_and_removed_as_in_s3fs(fsspec_place: tuple[Any, str]) -> None:
    fs, root = fsspec_place
    fs.pipe_file(f"{root}/data/part-0", b"1")
    if fs._local:
        with pytest.raises(FileExistsError):
            fs.makedirs(f"{root}/data")
    else:
        fs.makedirs(f"{root}/data")  # s3fs: exist_ok matters for buckets only
    if fs.protocol[0] != "mem":  # its directories exist only by their objects
        with pytest.raises(FileNotFoundError):
            fs.rmdir(f"{root}/missing")
    with pytest.raises(OSError):
        fs.rmdir(f"{root}/data")
    if not fs._local:
        with pytest.raises(ValueError, match="truncate=True"):
            fs.touch(f"{root}/data/part-0", truncate=False)
    assert fs.cat_file(f"{root}/data/part-0") == b"1"


def test_s3fs_tuning_arguments_are_taken(fsspec_place: tuple[Any, str], tmp_path: Path) -> None:
    fs, root = fsspec_place
    fs.pipe(f"{root}/p", b"x" * 100, chunksize=5 * 2**20)
    fs.get_file(f"{root}/p", str(tmp_path / "p"), max_concurrency=4)
    fs.put_file(str(tmp_path / "p"), f"{root}/q", chunksize=5 * 2**20, max_concurrency=2)
    assert fs.cat_file(f"{root}/q", max_concurrency=4) == b"x" * 100
    assert fs.checksum(f"{root}/q", refresh=True) == fs.checksum(f"{root}/q")
    with fs.open(f"{root}/p", "rb", max_concurrency=1) as f:
        assert f.read() == b"x" * 100
    with pytest.raises(TypeError, match="unexpected argument.s. max_concurency: s3dlio's cat_file takes no such"):
        fs.cat_file(f"{root}/p", max_concurency=4)
    with pytest.raises(ValueError, match="chunksize"):
        fs.put_file(str(tmp_path / "p"), f"{root}/q", chunksize=0)


def test_directory_entries_carry_s3fs_names(s3_bucket: str) -> None:
    fs = sfs.filesystem("s3")
    bucket = s3_bucket[len("s3://") :].rstrip("/")
    fs.pipe_file(f"{bucket}/dir/f", b"1")
    (entry,) = fs.ls(bucket, detail=True)
    assert (entry["Key"], entry["Size"], entry["StorageClass"]) == (f"{bucket}/dir", 0, "DIRECTORY")
    assert fs.info(bucket)["StorageClass"] == "DIRECTORY" and sum(e["Size"] for e in fs.ls(f"{bucket}/dir", detail=True)) == 1


def test_files_take_fsspecs_flush_autocommit_and_discard(fsspec_place: tuple[Any, str]) -> None:
    fs, root = fsspec_place
    with fs.open(f"{root}/a", "wb") as f:
        f.write(b"1")
        f.flush(force=True)
        assert f.autocommit
    assert fs.open(f"{root}/a", "rb").autocommit
    f = fs.open(f"{root}/b", "wb", autocommit=False)
    assert not f.autocommit
    f.write(b"x")
    f.flush(force=True)
    f.close()
    f.discard()
    with pytest.raises(ValueError, match="discarded"):
        f.commit()
    assert not fs.exists(f"{root}/b")
    with fs.transaction:  # a file discarded by its own with block is left out of the commit
        with pytest.raises(RuntimeError), fs.open(f"{root}/c", "wb") as g:
            g.write(b"half")
            raise RuntimeError("midway")
        fs.pipe_file(f"{root}/d", b"whole")
    assert not fs.exists(f"{root}/c") and fs.cat_file(f"{root}/d") == b"whole"
