"""s3dlio's filesystems under pandas/pyarrow/fsspec users' code, as probes ran it beside s3fs:
an exception inside ``with`` in any write mode leaves the old object, listings of keys with
empty segments, ``du`` from the listing, atomic create-only writes, s3fs's info keys, and
``fs.transaction`` covering the writes pandas and ``fsspec.open`` make."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

fsspec = pytest.importorskip("fsspec")

from fsspec.core import OpenFile  # noqa: E402

import s3dlio  # noqa: E402
import s3dlio.fsspec as sfs  # noqa: E402


@pytest.fixture(autouse=True)
def _registered() -> None:
    sfs.register()


# -- 1. an exception inside `with` leaves the old object, in every write mode ----------------
_WRITES = [("wb", None), ("w", None), ("wt", None), ("ab", None), ("at", None), ("wb", "gzip"), ("wt", "gzip")]


@pytest.mark.parametrize(("mode", "compression"), _WRITES)
def test_an_exception_inside_with_leaves_the_old_object(fsspec_place: tuple[Any, str], mode: str,
                                                        compression: str | None) -> None:  # fmt: skip
    fs, root = fsspec_place
    path = f"{root}/obj"
    old = gzip.compress(b"OLD") if compression else b"OLD"
    data: Any = b"partial" if "b" in mode else "partial"
    openers: dict[str, Callable[[], Any]] = {
        "fs.open": lambda: fs.open(path, mode, compression=compression),
        "fsspec.open": lambda: OpenFile(fs, path, mode, compression=compression),  # what fsspec.open returns
    }
    for how, opener in openers.items():
        fs.pipe_file(path, old)
        with pytest.raises(RuntimeError, match="boom"), opener() as f:
            f.write(data)
            raise RuntimeError("boom")
        assert fs.cat_file(path) == old, f"{how}({mode!r}, compression={compression!r}) published partial bytes"
        with opener() as f:  # without an exception the object is written
            f.write(data)
        got = fs.cat_file(path)
        got = gzip.decompress(got) if compression else got
        assert got.endswith(b"partial"), how


def test_fsspec_open_urls_abort_on_an_exception_and_close_in_except_publishes(s3_bucket: str) -> None:
    url = f"{s3_bucket}obj.txt"
    fsspec.open(url, "wb").open().close()
    for mode in ("wb", "wt", "w"):
        with pytest.raises(ValueError, match="bad"), fsspec.open(url, mode) as f:
            f.write(b"half" if "b" in mode else "half")
            raise ValueError("bad")
        assert bytes(s3dlio.get(url)) == b"", mode
    # a close() inside an except block is a close: the object is published
    f = fsspec.open(url, "wb").open()
    try:
        raise KeyError("x")
    except KeyError:
        f.write(b"fallback")
        f.close()
    assert bytes(s3dlio.get(url)) == b"fallback"


# -- 2. listings of keys with empty segments ----------------------------------------------------
@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_keys_with_empty_segments_list_as_s3fs_lists_them(moto_server: Any, s3_bucket: str, engine: str) -> None:
    s3dlio.configure(engine=engine)
    bucket = s3_bucket[len("s3://") :].rstrip("/")
    client = moto_server.client()
    for key in ("data/ok.csv", "data//oops.csv", "/lead.csv"):  # as boto3 and s3fs write them
        client.put_object(Bucket=bucket, Key=key, Body=b"a\n1\n")
    fs = sfs.filesystem("s3")
    assert fs.ls(bucket) == [f"{bucket}/", f"{bucket}/data"]  # s3fs's names; never the bucket itself
    assert fs.ls(f"{bucket}/data") == [f"{bucket}/data/", f"{bucket}/data/ok.csv"]
    for path in (bucket, f"{bucket}/data"):
        assert path not in fs.ls(path)
    assert fs.find(bucket) == [f"{bucket}//lead.csv", f"{bucket}/data//oops.csv", f"{bucket}/data/ok.csv"]
    assert fs.du(bucket) == 12 and fs.du(f"{bucket}/data") == 8  # from the listing: no HEAD of an odd key
    assert fs.du(bucket, total=False) == {f"{bucket}//lead.csv": 4, f"{bucket}/data//oops.csv": 4,
                                          f"{bucket}/data/ok.csv": 4}  # fmt: skip
    assert len(list(fs.walk(bucket))) < 10  # fsspec's walk ends


# -- 3. du sums the listing -----------------------------------------------------------------------
def test_du_sums_the_listing_without_a_request_per_object(fsspec_place: tuple[Any, str], monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:  # fmt: skip
    fs, root = fsspec_place
    for i in range(30):
        fs.pipe_file(f"{root}/many/{i // 10}/{i:02d}", b"x" * i)
    calls = []
    info = type(fs).info
    monkeypatch.setattr(type(fs), "info", lambda self, path, **kw: calls.append(path) or info(self, path, **kw))
    assert fs.du(f"{root}/many") == sum(range(30))
    sizes = fs.du(f"{root}/many", total=False)
    assert sizes == {f"{root}/many/{i // 10}/{i:02d}": i for i in range(30)}
    assert calls == []  # fsspec's du sends one HEAD per object
    assert fs.du(f"{root}/many", maxdepth=1) == 0  # nothing lies directly in it
    assert fs.du(f"{root}/many", maxdepth=2, total=False) == sizes
    with_dirs = fs.du(f"{root}/many", total=False, withdirs=True)
    assert {n: s for n, s in with_dirs.items() if n in sizes} == sizes
    assert {f"{root}/many/0", f"{root}/many/1", f"{root}/many/2"} <= set(with_dirs)
    assert fs.du(f"{root}/many/1/15") == 15  # one file


# -- 4. create-only writes: exactly one creator wins ------------------------------------------
def _create(how: str, fs: Any, path: str, data: bytes, src: Path) -> None:
    if how == "open_xb":
        with fs.open(path, "xb") as f:
            f.write(data)
    elif how == "put_file":
        fs.put_file(str(src), path, mode="create")
    else:
        fs.pipe_file(path, data, mode="create")


def _race(how: str, fs: Any, path: str, n: int, tmp: Path) -> list[str]:
    """``n`` threads create ``path`` at once; each one's outcome: "ok", "exists" or the error."""
    barrier, results = threading.Barrier(n), [""] * n

    def racer(i: int) -> None:
        data, src = bytes([i + 1]) * 50_000, tmp / f"src-{i}"
        src.write_bytes(data)
        barrier.wait()
        try:
            _create(how, fs, path, data, src)
            results[i] = "ok"
        except FileExistsError:
            results[i] = "exists"
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            results[i] = repr(exc)

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize("how", ["open_xb", "put_file", "pipe_file"])
def test_racing_creators_exactly_one_wins(fsspec_place: tuple[Any, str], how: str, tmp_path: Path) -> None:
    fs, root = fsspec_place
    for trial in range(3):
        results = _race(how, fs, f"{root}/race-{trial}", 8, tmp_path)
        winners = [i for i, r in enumerate(results) if r == "ok"]
        assert len(winners) == 1 and results.count("exists") == 7, results
        assert fs.cat_file(f"{root}/race-{trial}") == bytes([winners[0] + 1]) * 50_000


@pytest.mark.parametrize("streamed", [False, True])
def test_xb_does_not_replace_an_object_made_while_it_was_written(fsspec_place: tuple[Any, str], streamed: bool,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    fs, root = fsspec_place
    if streamed:  # larger than what is held in memory: streamed, checked just before completing
        monkeypatch.setattr(sfs, "_CREATE_WHOLE", 0)
    path = f"{root}/x"
    f = fs.open(path, "xb", block_size=5 << 20)
    f.write(b"mine" * (3 << 20))  # 12 MiB: more than one part
    fs.pipe_file(path, b"theirs")  # another writer creates it meanwhile
    with pytest.raises(FileExistsError):
        f.close()
    assert fs.cat_file(path) == b"theirs"
    fs.rm(path)
    with fs.open(path, "xb", block_size=5 << 20) as f:
        f.write(b"mine" * (3 << 20))
    assert fs.cat_file(path) == b"mine" * (3 << 20)
    with pytest.raises(FileExistsError):
        fs.open(path, "xb")


def test_xb_in_a_transaction_is_created_at_its_end_only_where_nothing_is(fsspec_place: tuple[Any, str]) -> None:
    fs, root = fsspec_place
    other = sfs.filesystem(fs.scheme, skip_instance_cache=True)  # outside the transaction
    with pytest.raises(FileExistsError), fs.transaction:
        fs.pipe_file(f"{root}/t", b"mine", mode="create")
        other.pipe_file(f"{root}/t", b"theirs")
    assert fs.cat_file(f"{root}/t") == b"theirs" and not fs._intrans


# -- 5. s3fs's info keys ------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_entries_carry_s3fs_info_keys(s3_bucket: str, engine: str) -> None:
    s3dlio.configure(engine=engine)
    fs = sfs.filesystem("s3")
    bucket = s3_bucket[len("s3://") :].rstrip("/")
    fs.pipe_file(f"{bucket}/x.csv", b"a\n1\n")
    keys = {"StorageClass", "ContentType", "VersionId", "ETag", "LastModified", "Key", "Size"}
    assert keys <= set(fs.info(f"{bucket}/x.csv"))
    assert keys <= set(fs.ls(bucket, detail=True)[0])
    assert [e["name"] for e in fs.ls(bucket, detail=True) if e["StorageClass"] != "GLACIER"] == [f"{bucket}/x.csv"]
    assert fs.find(bucket, detail=True)[f"{bucket}/x.csv"]["VersionId"] is None  # current versions only


# -- 6. one instance per options: fs.transaction covers pandas' and fsspec.open's writes --------
def test_a_transaction_covers_writes_through_fsspec_filesystem(s3_bucket: str) -> None:
    pd = pytest.importorskip("pandas")
    fs = fsspec.filesystem("s3")
    assert fsspec.filesystem("s3") is fs and sfs.filesystem("s3") is fs  # fsspec's instance cache, as s3fs's
    with pytest.raises(RuntimeError, match="abort"), fs.transaction:
        pd.DataFrame({"a": [1]}).to_csv(f"{s3_bucket}out.csv")
        with fsspec.open(f"{s3_bucket}out2.txt", "wb") as f:
            f.write(b"x")
        raise RuntimeError("abort the batch")
    assert not fs.exists(f"{s3_bucket}out.csv") and not fs.exists(f"{s3_bucket}out2.txt")
    with fs.transaction:
        pd.DataFrame({"a": [1]}).to_csv(f"{s3_bucket}out.csv", index=False)
        assert not fs.exists(f"{s3_bucket}out.csv")
    assert fs.cat_file(f"{s3_bucket}out.csv") == b"a\n1\n"


def test_instances_are_shared_only_when_their_options_say_everything(moto_server: Any) -> None:
    a = fsspec.filesystem("s3", region="eu-west-1")
    assert fsspec.filesystem("s3", region="eu-west-1") is a and fsspec.filesystem("s3", region="eu-west-2") is not a
    assert fsspec.filesystem("s3", key="k", secret="one") is not fsspec.filesystem("s3", key="k", secret="two")
    config = s3dlio.Config.resolve()  # a Config's repr hides its secrets: never shared by it
    assert sfs.filesystem("s3", config) is not sfs.filesystem("s3", config)
    assert sfs.S3FileSystem(config=config) is not sfs.S3FileSystem(config=config)
    # a shared instance follows the process-wide settings it did not override
    s3dlio.configure(max_attempts=7)
    assert (a.config.max_attempts, a.config.region) == (7, "eu-west-1")
    assert fsspec.filesystem("s3").config is None


def test_partitioned_parquet_written_by_pyarrow_threads(fsspec_place: tuple[Any, str]) -> None:
    """pyarrow closes the files of a partitioned write from its own threads, whose Python
    stack is a frame or two deep: the close must not look further up than there is."""
    pd = pytest.importorskip("pandas")
    fs, root = fsspec_place
    frame = pd.DataFrame({"a": [1, 2, 3], "p": ["x", "y", "x"]})
    frame.to_parquet(f"{root}/ds", partition_cols=["p"], filesystem=fs)
    back = pd.read_parquet(f"{root}/ds", filesystem=fs).sort_values("a")
    assert back["a"].tolist() == [1, 2, 3] and back["p"].astype(str).tolist() == ["x", "y", "x"]
