"""Large objects passed on (download, copy, the CLI's get and download) are never held whole:
they stream in pieces of ``part_size``, a window of ``range_in_flight`` at a time, and a batch
streams at most ``max_bytes_in_flight`` worth of them at once. Small settings here make every
object cross several windows; the bytes must arrive exact on every backend."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import Backend, venv_tool

import s3dlio
from s3dlio import ranged
from s3dlio.ops import resolve

KiB, MiB = 1 << 10, 1 << 20
SMALL = {"range_threshold": 64 * KiB, "part_size": 16 * KiB, "range_in_flight": 2}
# one object below the threshold, one exactly at it (no pieces after the first), three that
# end inside, at the end of and one byte past a window of pieces
SIZES = {"small.bin": 1000, "at.bin": 64 * KiB, "mid.bin": 64 * KiB + 40 * KiB,
         "window.bin": 64 * KiB + 32 * KiB, "past.bin": 64 * KiB + 32 * KiB + 1}  # fmt: skip


@pytest.fixture(params=["s3", "az", "file"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A prefix on moto, Azurite or the filesystem holding :data:`SIZES`, with small pieces."""
    if request.param == "file":
        (tmp_path / "src").mkdir()
        prefix = f"file://{tmp_path}/src/"
    else:
        prefix = str(request.getfixturevalue("s3_bucket" if request.param == "s3" else "az_container"))
    s3dlio.configure(**SMALL)
    s3dlio.put_many([(prefix + name, _data(name)) for name in SIZES])
    yield prefix
    s3dlio.configure()


def _data(name: str) -> bytes:
    seed = hashlib.sha256(name.encode()).digest()
    return (seed * (SIZES[name] // len(seed) + 1))[: SIZES[name]]


def test_download_and_copy_arrive_exact(source: str, tmp_path: Path) -> None:
    got = s3dlio.download(source, str(tmp_path / "down"))
    assert len(got) == len(SIZES)
    for name in SIZES:
        assert (tmp_path / "down" / name).read_bytes() == _data(name), name
    counted: list[int] = []
    assert s3dlio.copy(source, f"file://{tmp_path}/copy/", on_object=lambda n, b: counted.append(b)) == len(SIZES)
    assert sorted(counted) == sorted(SIZES.values())
    for name in SIZES:
        assert (tmp_path / "copy" / name).read_bytes() == _data(name), name
    assert s3dlio.copy(f"file://{tmp_path}/copy/", "mem://streamed/") == len(SIZES)
    for name in SIZES:
        assert bytes(memoryview(s3dlio.get(f"mem://streamed/{name}"))) == _data(name), name


def test_pieces_come_a_window_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests for an object's later pieces: part_size each, never more than range_in_flight
    fetched ahead of what the consumer took, and none before the consumer starts."""
    s3dlio.configure(**SMALL)
    uri = f"file://{tmp_path}/big.bin"
    data = os.urandom(64 * KiB + 7 * 16 * KiB + 5)
    s3dlio.put(uri, data)
    parsed, store = resolve(uri)
    asked: list[tuple[int, int]] = []
    real = store.get_range_etag  # every range, the first with its ETag (get_range calls it here)
    monkeypatch.setattr(store, "get_range_etag", lambda key, lo, hi: asked.append((lo, hi)) or real(key, lo, hi))
    first, rest = ranged.chunks(store, parsed.key, config=store.config, uri=uri)
    assert rest is not None and asked == [(0, 64 * KiB)]
    taken = [bytes(memoryview(first))]
    assert store.in_process is False
    for piece in rest:
        taken.append(bytes(memoryview(piece)))
        assert len(asked) - 1 <= len(taken)  # pieces asked for: at most one window (2) ahead
    assert b"".join(taken) == data
    assert all(hi - lo <= 16 * KiB for lo, hi in asked[1:]) and len(asked) == 1 + 8
    s3dlio.configure()


_RSS = textwrap.dedent(
    """
    import json, resource, sys
    import s3dlio
    how, src, dst = sys.argv[1:4]
    s3dlio.configure(range_threshold=4 << 20, part_size=1 << 20, range_in_flight=4,
                     max_bytes_in_flight=16 << 20)
    rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    before = rss()
    if how == "download":
        s3dlio.download(src, dst, max_in_flight=3)
    else:
        s3dlio.copy(src, dst, max_in_flight=3)
    print(json.dumps({"growth": rss() - before}))
    """
)


@pytest.mark.parametrize("how", ["download", "copy"])
def test_memory_stays_a_few_windows_not_the_objects(how: str, tmp_path: Path) -> None:
    """3 x 96 MiB with 1 MiB pieces, 4 in flight: peak RSS grows by a few windows (2 streams of
    8 MiB each fit the 16 MiB budget), where holding the objects would take 288 MiB."""
    src = tmp_path / "src"
    src.mkdir()
    block = os.urandom(MiB)
    for i in range(3):
        with open(src / f"o{i}.bin", "wb") as f:
            for _ in range(96):
                f.write(block)
    dst = str(tmp_path / "dst") if how == "download" else f"file://{tmp_path}/dst/"
    out = subprocess.run([sys.executable, "-c", _RSS, how, f"file://{src}/", dst],
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    growth = json.loads(out.stdout.strip().splitlines()[-1])["growth"]
    assert growth < 64 * MiB, f"peak RSS grew by {growth / MiB:.0f} MiB"
    for i in range(3):
        assert (tmp_path / "dst" / f"o{i}.bin").stat().st_size == 96 * MiB
    assert (tmp_path / "dst" / "o1.bin").read_bytes()[-MiB:] == block


def test_cli_get_and_download_stream(source: str, tmp_path: Path) -> None:
    """The installed CLI, with the same small pieces from the environment."""
    env = {**os.environ, "S3DLIO_RANGE_THRESHOLD": str(SMALL["range_threshold"]),
           "S3DLIO_PART_SIZE": str(SMALL["part_size"]), "S3DLIO_RANGE_IN_FLIGHT": str(SMALL["range_in_flight"])}  # fmt: skip
    exe = venv_tool("s3dlio")
    assert exe is not None

    def cli(*args: str) -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run([exe, *args], env=env, capture_output=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        return done

    cli("download", source, str(tmp_path / "cli"))
    for name in SIZES:
        assert (tmp_path / "cli" / name).read_bytes() == _data(name), name
    assert cli("get", source + "past.bin", "-o", "-").stdout == _data("past.bin")
    cli("get", source + "mid.bin", "-o", str(tmp_path / "one.bin"))
    assert (tmp_path / "one.bin").read_bytes() == _data("mid.bin")
    assert json.loads(cli("get", source, "--json").stdout)["bytes"] == sum(SIZES.values())


@pytest.mark.parametrize("how", ["get", "get_into", "download"])
def test_an_object_replaced_while_read_is_refused(how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer replaces the object between two of its pieces: the call fails by name
    and keeps nothing, rather than return (or write) bytes of two versions. (``copy`` from a
    file reads it as ``upload`` does, through one open file: tests/test_upload_integrity.py.)"""
    s3dlio.configure(**SMALL)
    uri = f"file://{tmp_path}/src/v.bin"
    s3dlio.put(uri, b"a" * (128 * KiB))
    _, store = resolve(uri)
    requests = [0]

    def racing(real: Any) -> Any:
        def call(*args: Any) -> Any:
            requests[0] += 1
            if requests[0] == 3:  # the first range and one piece are in: the object is replaced
                s3dlio.put(uri, b"b" * (128 * KiB))
            return real(*args)

        return call

    monkeypatch.setattr(store, "get_range_etag", racing(store.get_range_etag))  # get_range calls it here
    monkeypatch.setattr(store, "get_range_into", racing(store.get_range_into))
    with pytest.raises(s3dlio.TransferError, match="replaced while being read"):
        if how == "get":
            s3dlio.get(uri)
        elif how == "get_into":
            s3dlio.get_into(uri, bytearray(128 * KiB))
        else:
            s3dlio.download(uri, str(tmp_path / "down"))
    assert not (tmp_path / "down").exists() or not any((tmp_path / "down").iterdir())
    s3dlio.configure()


@pytest.mark.parametrize("how", ["get", "download"])
def test_replaced_between_first_range_and_head_is_refused(
    how: str, backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer replaces the object after its first range came back and before the HEAD
    that sizes the rest: the HEAD-before/HEAD-after check alone would take the rest from the
    new version. The first range's ETag must match that HEAD, on every backend and engine."""
    s3dlio.configure(engine=backend.engine, **SMALL)
    uri = backend.uri("v.bin")
    s3dlio.put(uri, b"a" * (200 * KiB))
    assert bytes(s3dlio.get(uri)) == b"a" * (200 * KiB)  # unraced: the reply's ETag is the HEAD's
    _, store = resolve(uri)
    real_head = store.head
    heads = [0]

    def racing_head(key: str) -> Any:
        heads[0] += 1
        if heads[0] == 1:
            s3dlio.put(uri, b"b" * (256 * KiB))
        return real_head(key)

    monkeypatch.setattr(store, "head", racing_head)
    if store.in_process:  # read whole, under the store's lock: no gap to race
        assert bytes(s3dlio.get(uri)) == b"a" * (200 * KiB)
        return
    with pytest.raises(s3dlio.TransferError, match="replaced while being read"):
        if how == "get":
            s3dlio.get(uri)
        else:
            s3dlio.download(uri, str(tmp_path / "down"))
    assert not (tmp_path / "down").exists() or not any((tmp_path / "down").iterdir())


@pytest.mark.parametrize("how", ["open_reader", "fsspec"])
def test_a_reader_open_across_a_replacement_refuses_the_new_bytes(how: str, backend: Backend) -> None:
    """A file open on an object that another writer replaces (same size, other bytes): blocks
    it fetches afterwards, and a read after a seek, are refused by name, not spliced onto the
    old ones."""
    s3dlio.configure(engine=backend.engine)
    uri = backend.uri("r.bin")
    s3dlio.put(uri, b"a" * (256 * KiB))
    if how == "open_reader":
        f = s3dlio.open_reader(uri, block_size=16 * KiB)
    else:
        import s3dlio.fsspec as sfs

        f = sfs.filesystem(backend.scheme).open(uri, "rb", block_size=16 * KiB)
    with f:
        assert f.read(16 * KiB) == b"a" * (16 * KiB)  # and a few blocks fetched ahead
        s3dlio.put(uri, b"b" * (256 * KiB))
        f.seek(160 * KiB)
        with pytest.raises(s3dlio.TransferError, match="replaced while being read"):
            f.read(8 * KiB)  # a block fetched now
        f.seek(200 * KiB)
        with pytest.raises(s3dlio.TransferError, match="replaced while being read"):
            f.read(20 * KiB)  # fsspec: a read after a seek, fetched exactly
