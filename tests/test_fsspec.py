"""s3dlio.fsspec: an fsspec filesystem on s3dlio, against moto (``s3://``), files and ``mem://``."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

fsspec = pytest.importorskip("fsspec")

from servers import require  # noqa: E402

import s3dlio  # noqa: E402
import s3dlio.fsspec as sfs  # noqa: E402
from s3dlio.config import default_config  # noqa: E402


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
    with pytest.raises(ValueError, match="'rb', 'wb' or 'xb'"):
        fs.open(f"{root}/k", "ab")
    with pytest.raises(RuntimeError), fs.open(f"{root}/never", "wb") as f:  # an error inside `with`
        f.write(b"partial")
        raise RuntimeError("boom")
    assert not fs.exists(f"{root}/never")  # commits nothing
    fs.makedirs(f"{root}/made", exist_ok=True)  # object stores: nothing to make; files: a directory
    fs.mkdir(f"{root}/made2")
    local = root.startswith("file://")
    assert os.path.isdir(root[7:] + "/made2") is local and fs.exists(f"{root}/made2") is local
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
        sfs.filesystem("s3", anon=True)
    with pytest.raises(ValueError, match="s3dlio serves"):
        sfs.filesystem("hdfs")


def test_paths_strip_their_scheme() -> None:
    assert sfs.S3FileSystem._strip_protocol("s3://bkt/a/b/") == "bkt/a/b"
    assert sfs.LocalFileSystem._strip_protocol("file:///tmp/x/") == "/tmp/x"
    assert sfs.filesystem("s3").unstrip_protocol("bkt/k") == "s3://bkt/k"
    assert sfs.filesystem("file").uri("/tmp/x") == "file:///tmp/x"
