"""What reads a local file to upload it publishes the file whole or nothing: a change while it
is read (a rewrite in place that keeps the size, even the mtime) is a ChangedError on every
path (``upload``, ``copy`` from ``file://``, the fsspec ``put``); FIFOs and devices are
refused or skipped, never opened for a read that blocks or never ends. And a key ending in
``/`` that holds bytes is refused by name where it would become a local directory, on both
engines, never dropped."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import MotoServer

import s3dlio
from s3dlio import configure as reconfigure
from s3dlio.errors import InvalidUriError
from s3dlio.retry import ChangedError

N = 1 << 20


def _in_place_after_read(monkeypatch: pytest.MonkeyPatch, path: Path) -> list[int]:
    """Rewrite ``path`` in place (same size) just before its post-read stat, then put its
    mtime back: a size-and-mtime check is fooled; the ctime and inotify are not."""
    real_fstat, seen = os.fstat, [0]
    target = os.stat(path).st_ino

    def fstat(fd: int) -> os.stat_result:
        st = real_fstat(fd)
        if st.st_ino == target and stat.S_ISREG(st.st_mode):
            seen[0] += 1
            if seen[0] == 2:  # the check after the last read
                wfd = os.open(path, os.O_WRONLY)
                os.pwrite(wfd, b"B" * st.st_size, 0)
                os.close(wfd)
                os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
                after = real_fstat(fd)
                assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)
                return after
        return st

    monkeypatch.setattr(os, "fstat", fstat)
    return seen


@pytest.fixture
def big(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "f.bin"
    path.parent.mkdir()
    path.write_bytes(b"A" * N)
    return path


def test_upload_refuses_a_rewrite_that_keeps_size_and_mtime(
    monkeypatch: pytest.MonkeyPatch, big: Path, s3_bucket: str
) -> None:
    seen = _in_place_after_read(monkeypatch, big)
    with pytest.raises(ChangedError, match=str(big)):
        s3dlio.upload(str(big), s3_bucket + "up/")
    assert seen[0] >= 2
    assert s3dlio.list(s3_bucket, recursive=True) == []  # nothing published


def test_copy_from_file_refuses_a_rewrite(monkeypatch: pytest.MonkeyPatch, big: Path, s3_bucket: str) -> None:
    _in_place_after_read(monkeypatch, big)
    with pytest.raises(ChangedError, match="changed while it was read"):
        s3dlio.copy(f"file://{big}", s3_bucket + "f.bin")
    assert s3dlio.list(s3_bucket, recursive=True) == []


def test_inotify_sees_what_stat_cannot(monkeypatch: pytest.MonkeyPatch, big: Path) -> None:
    """With every stat the same (a write in the same clock tick, or one still running), the
    inotify watch alone tells: the file is refused."""
    from s3dlio import localread

    if localread._watcher() is None:
        pytest.skip("no inotify here (not Linux): the stat check stands alone")
    with localread.LocalFile("upload", str(big), "mem://b/f.bin") as f:
        frozen = os.fstat(f.file.fileno())
        monkeypatch.setattr(os, "fstat", lambda fd: frozen)
        got = f.read_into(memoryview(bytearray(N)))
        wfd = os.open(big, os.O_WRONLY)
        os.pwrite(wfd, b"B", 0)
        os.close(wfd)
        with pytest.raises(ChangedError):
            f.check(got)
    with localread.LocalFile("upload", str(big), "mem://b/f.bin") as f:  # a quiet file passes
        f.check(f.read_into(memoryview(bytearray(N))))


@pytest.mark.parametrize("dest", ["mem", "s3"])
def test_rewritten_in_place_never_mixed(tmp_path: Path, dest: str, request: pytest.FixtureRequest) -> None:
    """A thread rewrites a 4 MiB file in place, all A or all B, while it is uploaded again
    and again: each upload is refused or publishes one version, never a mix."""
    base = request.getfixturevalue("s3_bucket") if dest == "s3" else f"mem://mix-{uuid.uuid4().hex[:8]}/"
    path, size = tmp_path / "f.bin", 4 << 20
    path.write_bytes(b"A" * size)
    stop = threading.Event()

    def writer() -> None:
        fd, i = os.open(path, os.O_WRONLY), 0
        while not stop.is_set():
            os.pwrite(fd, b"AB"[i % 2 : i % 2 + 1] * size, 0)
            i += 1
        os.close(fd)

    thread = threading.Thread(target=writer)
    thread.start()
    mixed = refused = 0
    try:
        for _ in range(30):
            try:
                s3dlio.upload(str(path), base)
            except ChangedError:
                refused += 1
                continue
            mixed += len(set(bytes(s3dlio.get(base + "f.bin")))) > 1
    finally:
        stop.set()
        thread.join()
    assert mixed == 0, f"{mixed} of {30 - refused} uploads published old and new bytes mixed"


def test_quiet_files_still_upload(tmp_path: Path) -> None:
    for i in range(50):
        (tmp_path / f"f{i}").write_bytes(bytes([i]) * (i * 1000))
    dest = f"mem://quiet-{uuid.uuid4().hex[:8]}/"
    assert len(s3dlio.upload(f"{tmp_path}/*", dest)) == 50
    assert bytes(s3dlio.get(dest + "f7")) == bytes([7]) * 7000


# -- FIFOs and devices: refused or skipped, never opened for a read without end ------------------
_PUT = """
import os, sys, warnings
import s3dlio, s3dlio.fsspec
from s3dlio.errors import InvalidUriError
src, bucket = sys.argv[1], sys.argv[2]
fs = s3dlio.fsspec.S3FileSystem()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    fs.put(src + "/", bucket + "/up/", recursive=True)
print("PUT", sorted(fs.find(bucket + "/up/")))
print("WARN", " | ".join(str(w.message) for w in caught))
for name in sorted(os.listdir(src)):
    if name != "a.txt":
        try:
            fs.put_file(os.path.join(src, name), bucket + "/one/" + name)
            print("ONE", name, "uploaded")
        except InvalidUriError as exc:
            print("ONE", name, "refused:", exc)
"""


def test_fsspec_put_skips_fifo_and_device(tmp_path: Path, moto_server: MotoServer, s3_bucket: str) -> None:
    src = tmp_path / "tree"
    src.mkdir()
    (src / "a.txt").write_text("hello")
    os.mkfifo(src / "pipe")
    specials = ["pipe"]
    try:
        os.mknod(src / "zero", 0o666 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero's node
        specials.append("zero")
    except PermissionError:
        pass  # not root: the FIFO alone
    bucket = s3_bucket.removeprefix("s3://").rstrip("/")
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_PUT), str(src), bucket],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert f"PUT ['{bucket}/up/a.txt']" in out, out
    for name in specials:
        assert f"put {src / name}: skipped, not a regular file" in out, out
        assert f"ONE {name} refused: put {src / name}: not a regular file" in out, out
    assert moto_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_fsspec_put_file_refuses_a_rewrite(monkeypatch: pytest.MonkeyPatch, big: Path, s3_bucket: str) -> None:
    import s3dlio.fsspec

    _in_place_after_read(monkeypatch, big)
    fs = s3dlio.fsspec.S3FileSystem()
    bucket = s3_bucket.removeprefix("s3://").rstrip("/")
    with pytest.raises(ChangedError, match=str(big)):
        fs.put_file(str(big), f"{bucket}/f.bin")
    assert not fs.exists(f"{bucket}/f.bin")


# -- a key ending in '/' that holds bytes -----------------------------------------------------------
@pytest.fixture(params=["fast", "portable"])
def marked(request: pytest.FixtureRequest, moto_server: MotoServer, s3_bucket: str) -> Iterator[str]:
    bucket = s3_bucket.removeprefix("s3://").rstrip("/")
    client = moto_server.client()
    client.put_object(Bucket=bucket, Key="d/notes/", Body=b"IMPORTANT-DATA")
    client.put_object(Bucket=bucket, Key="d/mark/", Body=b"IMPORTANT-MARK")
    client.put_object(Bucket=bucket, Key="d/mark/in", Body=b"in")
    client.put_object(Bucket=bucket, Key="d/empty/", Body=b"")  # a folder marker
    reconfigure(engine=request.param)
    yield s3_bucket


def _refused(results: list[Any]) -> dict[str, str]:
    return {str(r).split(": ")[0].split(" ", 1)[1]: str(r) for r in results if isinstance(r, BaseException)}


def _check_refusals(results: list[Any], base: str, op: str) -> None:
    refused = _refused(results)
    assert sorted(refused) == [base + "d/mark/", base + "d/notes/"], results
    for uri, message in refused.items():
        assert message.startswith(f"{op} {uri}: refused, the key ends in '/' but holds 14 bytes"), message
        assert all(other not in message for other in refused if other != uri)  # never another key


def test_download_refuses_marker_with_bytes(marked: str, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    results = s3dlio.download(marked + "d/", str(dest), recursive=True, return_exceptions=True)
    _check_refusals(results, marked, "download")
    assert (dest / "mark" / "in").read_bytes() == b"in"
    assert (dest / "empty").is_dir()  # a zero-byte marker is still a directory
    assert not (dest / "notes").exists()
    with pytest.raises(InvalidUriError, match=r"d/(mark|notes)/: refused, the key ends in '/' but holds"):
        s3dlio.download(marked + "d/", str(tmp_path / "again"), recursive=True)


def test_copy_into_directory_refuses_marker_with_bytes(marked: str, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    results = s3dlio.copy(marked + "d/", f"file://{dest}/", recursive=True, return_exceptions=True)
    assert isinstance(results, list)
    _check_refusals(results, marked, "copy")
    assert (dest / "mark" / "in").read_bytes() == b"in"
    assert (dest / "empty").is_dir()


def test_named_marker_with_bytes(marked: str, tmp_path: Path) -> None:
    """The key named alone: the same refusal, and ``s3dlio.get`` still reads its bytes."""
    with pytest.raises(InvalidUriError, match=r"d/notes/: refused"):
        s3dlio.download(marked + "d/notes/", str(tmp_path / "one"))
    assert bytes(s3dlio.get(marked + "d/notes/")) == b"IMPORTANT-DATA"

