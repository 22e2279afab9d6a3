"""``open_reader``, parallel ranged ``get`` and ``get_into`` through every (backend x engine)."""

from __future__ import annotations

import io
import random
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from servers import Backend, require

import s3dlio
import s3dlio.oplog as oplog

from ._data import MiB, assert_bytes, payload

SIZE = 3 * MiB + 12345  # three and a bit 1 MiB blocks


def test_reader_reads_and_seeks(backend: Backend) -> None:
    data = payload(SIZE, 11)
    uri = backend.uri("blob.bin")
    s3dlio.put(uri, data)
    with s3dlio.open_reader(uri, block_size=MiB, read_ahead=2) as r:
        assert r.readable() and r.seekable() and r.size == SIZE
        assert r.read(10) == data[:10]
        assert r.read(MiB) == data[10 : MiB + 10]  # across a block boundary
        assert r.tell() == MiB + 10
        assert r.seek(-5, io.SEEK_END) == SIZE - 5
        assert r.read() == data[-5:]
        assert r.read(1) == b""
        r.seek(SIZE + 100)
        assert r.read(5) == b"" and r.readinto(bytearray(5)) == 0
        rng = random.Random(0)
        for _ in range(20):
            pos, n = rng.randrange(SIZE), rng.randrange(1, 2 * MiB)
            r.seek(pos)
            assert r.read(n) == data[pos : pos + n]
        r.seek(100)
        big = np.empty(SIZE, dtype=np.uint8)  # a large readinto fills the buffer with parallel ranges
        assert r.readinto(big) == SIZE - 100
        assert_bytes(big[: SIZE - 100], data[100:])
        r.seek(0)
        assert r.read() == data
    assert r.closed
    with pytest.raises(ValueError, match="closed"):
        r.read(1)


def test_reader_sequential_read_ahead(backend: Backend) -> None:
    data = payload(SIZE, 12)
    uri = backend.uri("seq.bin")
    s3dlio.put(uri, data)
    with s3dlio.open_reader(uri, block_size=MiB, read_ahead=2) as r:
        got = bytearray()
        while chunk := r.read(300_000):
            got += chunk
            assert len(r._blocks) <= 4  # bounded cache: read_ahead + 2 blocks
        assert bytes(got) == data


def test_reader_missing_object(backend: Backend) -> None:
    with pytest.raises(s3dlio.NotFoundError):
        s3dlio.open_reader(backend.uri("missing"))


def test_ranged_get(backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Above the threshold one get is many range requests, reassembled byte-exact."""
    monkeypatch.setenv("S3DLIO_RANGE_THRESHOLD", "1MiB")
    s3dlio.configure(engine=backend.engine, part_size=MiB)
    data = payload(5 * MiB + 3, 13)
    uri = backend.uri("ranged.bin")
    s3dlio.put(uri, data)
    log = tmp_path / "ops.tsv.zst"
    oplog.init_op_log(str(log))
    try:
        got = s3dlio.get(uri)
    finally:
        oplog.finalize_op_log()
    assert_bytes(got, data)
    gets = [r for r in oplog.read(str(log)) if r.op == "GET"]
    if backend.scheme != "mem":
        assert len(gets) == 6, gets  # the first 1 MiB, then 5 ranges (the last 3 bytes)
    for size in (0, 1, MiB - 1, MiB, MiB + 1):  # around the threshold
        s3dlio.put(uri, payload(size, size))
        assert_bytes(s3dlio.get(uri), payload(size, size))


def test_get_into(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3DLIO_RANGE_THRESHOLD", "1MiB")
    s3dlio.configure(engine=backend.engine, part_size=MiB)
    for size in (0, 100, 3 * MiB + 1):
        data = payload(size, 14)
        uri = backend.uri(f"into-{size}")
        s3dlio.put(uri, data)
        for capacity in (size, size + 4 * MiB):
            buf = np.zeros(capacity, dtype=np.uint8)
            assert s3dlio.get_into(uri, buf) == size
            assert_bytes(buf[:size], data)
        if size:
            with pytest.raises(ValueError, match=f"the object has {size} bytes, the buffer holds {size - 1}"):
                s3dlio.get_into(uri, bytearray(size - 1))
    floats = np.zeros(2 * MiB // 4, dtype=np.float32)  # any dtype: the bytes land as they are
    s3dlio.put(backend.uri("floats"), np.arange(floats.size, dtype=np.float32))
    assert s3dlio.get_into(backend.uri("floats"), floats) == 2 * MiB
    assert np.array_equal(floats, np.arange(floats.size, dtype=np.float32))
    with pytest.raises(TypeError, match="read-only"):
        s3dlio.get_into(backend.uri("floats"), b"\0" * 10)


# -- libraries that read files, reading objects through open_reader -----------------------------
@pytest.fixture(params=["fast", "portable"])
def s3(request: pytest.FixtureRequest, s3_bucket: str) -> str:
    s3dlio.configure(engine=request.param)
    return s3_bucket


def test_torch_load(s3: str) -> None:
    torch = require("torch")
    state = {"a": torch.randn(1000, 1000), "b": torch.arange(10)}
    buf = io.BytesIO()
    torch.save(state, buf)
    s3dlio.put(s3 + "m.pt", buf.getvalue())
    with s3dlio.open_reader(s3 + "m.pt", block_size=MiB) as r:
        back = torch.load(r, weights_only=True)
    assert torch.equal(back["a"], state["a"]) and torch.equal(back["b"], state["b"])


def test_numpy_load(s3: str) -> None:
    arr = np.random.default_rng(0).random((500, 700))
    buf = io.BytesIO()
    np.save(buf, arr)
    s3dlio.put(s3 + "a.npy", buf.getvalue())
    with s3dlio.open_reader(s3 + "a.npy", block_size=MiB) as r:
        assert np.array_equal(np.load(r), arr)
    buf = io.BytesIO()
    np.savez(buf, x=arr, y=np.arange(5))
    s3dlio.put(s3 + "a.npz", buf.getvalue())
    with s3dlio.open_reader(s3 + "a.npz", block_size=MiB) as r, np.load(r) as npz:
        assert np.array_equal(npz["x"], arr) and list(npz["y"]) == [0, 1, 2, 3, 4]


def test_h5py_file(s3: str, tmp_path: Path) -> None:
    h5py = require("h5py")
    path = tmp_path / "d.h5"
    arr = np.random.default_rng(1).random((300, 1000))
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=arr, chunks=(50, 1000))
        f.attrs["note"] = "hi"
    s3dlio.put(s3 + "d.h5", path.read_bytes())
    with s3dlio.open_reader(s3 + "d.h5", block_size=MiB) as r, h5py.File(r, "r") as f:
        assert f.attrs["note"] == "hi"
        assert np.array_equal(f["x"][100:200], arr[100:200])


def test_zipfile_and_tarfile(s3: str) -> None:
    members = {f"m{i}.bin": payload(300_000 + i, i) for i in range(8)}
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        for name, body in members.items():
            z.writestr(name, body)
    s3dlio.put(s3 + "a.zip", zbuf.getvalue())
    with s3dlio.open_reader(s3 + "a.zip", block_size=MiB) as r, zipfile.ZipFile(r) as z:
        assert sorted(z.namelist()) == sorted(members)
        assert z.read("m5.bin") == members["m5.bin"]
    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w") as t:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            t.addfile(info, io.BytesIO(body))
    s3dlio.put(s3 + "a.tar", tbuf.getvalue())
    with s3dlio.open_reader(s3 + "a.tar", block_size=MiB) as r, tarfile.open(fileobj=r, mode="r:") as t:
        for member in t:
            f = t.extractfile(member)
            assert f is not None and f.read() == members[member.name]
