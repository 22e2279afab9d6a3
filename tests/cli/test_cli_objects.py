"""Object commands in-process (CliRunner): selections, put's generator, partial failures, output."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import s3dlio
from s3dlio import ops

Run = Any


@pytest.fixture
def mem() -> Iterator[str]:
    """A fresh mem:// store prefix."""
    base = f"mem://cli-{uuid.uuid4().hex[:8]}/"
    yield base
    s3dlio.delete(base, recursive=True)


def ok(run: Run) -> Run:
    assert run.code == 0, str(run)
    return run


def fill(base: str, names: list[str], size: int = 10) -> None:
    for name in names:
        s3dlio.put(base + name, bytes(size))


# -- put -----------------------------------------------------------------------------------------
def test_put_names_sizes_and_types(invoke: Callable[..., Run], mem: str) -> None:
    ok(invoke("put", "-n", "3", "-s", "8KiB", "-t", "img-{}.bin", mem + "a/"))
    assert sorted(s3dlio.list(mem + "a/")) == [f"{mem}a/img-{i}.bin" for i in range(3)]
    assert s3dlio.stat(mem + "a/img-0.bin").size == 8192
    ok(invoke("put", "-s", "1k", mem + "b"))  # a prefix without '/' still gets one
    assert s3dlio.list(mem + "b/") == [f"{mem}b/object_0_of_1.dat"]
    ok(invoke("put", "-s", "20MB", "-t", "x", "-j", "1", mem + "c/"))
    assert s3dlio.stat(mem + "c/x").size == 20_000_000
    stats = ok(invoke("put", "--json", "-n", "2", "-s", "64k", "-o", "NPZ", "-c", mem + "npz/")).json()
    assert (stats["objects"], stats["failed"]) == (2, 0) and stats["bytes"] > 0
    from s3dlio.formats import decode_object

    arrays = decode_object("NPZ", s3dlio.get(mem + "npz/object_1_of_2.npz"))
    assert arrays


def test_put_default_size_is_20971520(invoke: Callable[..., Run], mem: str) -> None:
    ok(invoke("put", mem))
    assert s3dlio.stat(mem + "object_0_of_1.dat").size == 20971520


def test_put_uses_one_generator_and_bounded_memory(
    invoke: Callable[..., Run], mem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import s3dlio.datagen
    import s3dlio.formats

    generators: list[Any] = []
    real_gen = s3dlio.datagen.DataGenerator

    def counting_gen(*args: Any, **kwargs: Any) -> Any:
        generators.append((args, kwargs))
        return real_gen(*args, **kwargs)

    live = 0
    peak = 0
    lock = threading.Lock()
    real_make = s3dlio.formats.make_object
    real_put = ops.put

    def make(*args: Any, **kwargs: Any) -> Any:
        nonlocal live, peak
        with lock:
            live += 1
            peak = max(peak, live)
        return real_make(*args, **kwargs)

    def put(uri: str, data: Any) -> None:
        nonlocal live
        time.sleep(0.005)
        real_put(uri, data)
        with lock:
            live -= 1

    monkeypatch.setattr(s3dlio.datagen, "DataGenerator", counting_gen)
    monkeypatch.setattr(s3dlio.formats, "make_object", make)
    monkeypatch.setattr(ops, "put", put)
    ok(invoke("put", "-n", "40", "-s", "4k", "-j", "4", "-d", "2", "-x", "2", "--seed", "7", mem))
    assert len(generators) == 1 and generators[0][1] == {"dedup": 2, "compress": 2.0, "seed": 7}
    assert 1 <= peak <= 4  # at most JOBS objects generated and not yet uploaded
    assert len(s3dlio.list(mem)) == 40


def test_put_template_with_one_placeholder_and_bad_values(invoke: Callable[..., Run], mem: str) -> None:
    ok(invoke("put", "-n", "2", "-s", "1", "-t", "r-{}.obj", mem))
    assert sorted(s3dlio.list(mem)) == [mem + "r-0.obj", mem + "r-1.obj"]
    assert invoke("put", "-t", "single.dat", "-s", "1", mem).code == 0  # one object needs no {}
    for args in (["-n", "0"], ["-d", "0"], ["-x", "0.5"], ["-j", "0"], ["-s", "-1"], ["-s", "1.5.2MB"]):
        run = invoke("put", *args, mem)
        assert run.code == 2 and run.err.startswith("s3dlio: error: "), (args, str(run))


def test_put_partial_failure(invoke: Callable[..., Run], mem: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real_put = ops.put

    def flaky(uri: str, data: Any) -> None:
        if uri.endswith("_1_of_3.dat"):
            raise s3dlio.TransferError(f"put {uri}: server said 503")
        real_put(uri, data)

    monkeypatch.setattr(ops, "put", flaky)
    run = invoke("put", "-n", "3", "-s", "1k", mem)
    assert run.code == 1
    assert run.out.startswith("Uploaded 2 objects (total 2000 bytes)")
    assert run.err.splitlines() == [
        f"s3dlio: error: put {mem}object_1_of_3.dat: server said 503",
        "s3dlio: error: 1 of 3 objects failed (each is reported above)",
    ]


# -- get / download ------------------------------------------------------------------------------
def test_get_selections(invoke: Callable[..., Run], mem: str) -> None:
    fill(mem, ["obj_1", "obj_10", "obj_2", "d/obj_3", "x.bin", "xybin"])
    count = lambda *args: ok(invoke("get", "--json", *args)).json()["objects"]  # noqa: E731
    assert count(mem + "obj_1") == 1  # exact key, never obj_10
    assert count(mem) == 5  # one level
    assert count("-r", mem) == 6
    assert count(mem + "obj_1.*") == 2  # regex
    assert count(mem + "x.bin") == 1  # a lone '.' is literal
    assert count(mem + "x[.]bin") == 1
    assert count(mem + "x.?.?bin") == 2
    out = ok(invoke("get", "-j", "3", mem)).out
    assert out.startswith("Fetching 5 objects with 3 jobs…\ndownloaded 0.00 MB in ")
    run = invoke("get", mem + "nothing_.*")
    assert run.code == 1 and "no object matches" in run.err and len(run.err.splitlines()) == 1


def test_get_output_and_ranges(invoke: Callable[..., Run], mem: str, tmp_path: Path) -> None:
    s3dlio.put(mem + "d/a.bin", b"0123456789")
    s3dlio.put(mem + "d/sub/b.bin", b"abc")
    runner_out = invoke("get", "--offset", "2", "--length", "3", mem + "d/a.bin", "-o", "-")
    assert runner_out.code == 0 and runner_out.out == "234"
    stats = ok(invoke("get", "--json", "--offset", "8", mem + "d/a.bin")).json()
    assert stats["bytes"] == 2
    ok(invoke("get", mem + "d/a.bin", "-o", str(tmp_path / "one.bin")))
    assert (tmp_path / "one.bin").read_bytes() == b"0123456789"
    ok(invoke("get", "-r", mem + "d/", "-o", str(tmp_path / "all")))
    assert (tmp_path / "all" / "sub" / "b.bin").read_bytes() == b"abc"
    assert invoke("get", mem + "d/", "-r", "-o", "-").code == 2


def test_get_partial_failure_reports_each(
    invoke: Callable[..., Run], mem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(mem, ["a", "b", "c", "d"])
    real_get = ops.get_in_pieces

    def flaky(uri: str) -> Any:
        if uri.endswith(("/b", "/d")):
            raise s3dlio.NotFoundError(f"get {uri}: not found")
        return real_get(uri)

    monkeypatch.setattr(ops, "get_in_pieces", flaky)
    run = invoke("get", mem)
    assert run.code == 1
    assert "downloaded 0.00 MB" in run.out
    lines = run.err.splitlines()  # each failure as it happens: in the order they finish
    assert sorted(lines[:2]) == [f"s3dlio: error: get {mem}b: not found", f"s3dlio: error: get {mem}d: not found"]
    assert lines[2:] == ["s3dlio: error: 2 of 4 objects failed (each is reported above)"]
    run = invoke("get", "--json", mem)
    assert run.code == 1
    stats = run.json()
    assert (stats["objects"], stats["failed"]) == (2, 2)
    assert sorted(e["uri"] for e in stats["errors"]) == [mem + "b", mem + "d"]


def test_download_keeps_relative_paths(invoke: Callable[..., Run], mem: str, tmp_path: Path) -> None:
    fill(mem, ["top.bin", "d/one.bin", "d/deep/two.bin", "d/skip.txt"], size=5)
    out = ok(invoke("download", "-r", mem + r"d/.*\.bin", str(tmp_path / "dl"))).out
    assert out.startswith("Downloaded 2 objects (total 10 bytes) in ")
    found = sorted(str(p.relative_to(tmp_path / "dl")) for p in (tmp_path / "dl").rglob("*") if p.is_file())
    assert found == ["deep/two.bin", "one.bin"]
    stats = ok(invoke("download", "--json", mem + "top.bin", str(tmp_path / "dl2"))).json()
    assert (stats["objects"], stats["bytes"]) == (1, 5)
    assert (tmp_path / "dl2" / "top.bin").stat().st_size == 5


def test_download_refuses_keys_that_escape(invoke: Callable[..., Run], mem: str, tmp_path: Path) -> None:
    s3dlio.configure(engine="portable")  # the fast engine refuses '..' in keys outright
    fill(mem, ["d/ok.bin", "d/../../evil.bin"])
    run = invoke("download", "-r", mem + "d/", str(tmp_path / "dl"))
    assert run.code == 1 and "outside" in run.err
    assert not (tmp_path / "evil.bin").exists()


# -- ls / stat -----------------------------------------------------------------------------------
def test_ls_variants(invoke: Callable[..., Run], mem: str) -> None:
    fill(mem, ["img_0", "img_1", "img_10", "other", "sub/x"], size=3)
    assert ok(invoke("ls", mem + "img_")).out == f"{mem}img_0\n{mem}img_1\n{mem}img_10\n\nTotal objects: 3\n"
    assert ok(invoke("ls", mem + "img_1$")).out.endswith("Total objects: 1\n")
    assert ok(invoke("ls", "--count", mem)).out == "Total sub-levels: 1\nTotal objects: 4\n"
    listing = ok(invoke("ls", "--json", mem)).json()
    assert (listing["count"], listing["prefixes"]) == (4, 1)
    assert {"uri": mem + "sub/", "prefix": True} in listing["entries"]
    assert {"uri": mem + "other", "size": 3}.items() <= next(
        e for e in listing["entries"] if e["uri"].endswith("other")
    ).items()
    long = ok(invoke("ls", "-l", mem)).out.splitlines()
    assert long[-2:] == ["Total sub-levels: 1", "Total objects: 4"]
    assert [line.split()[0] for line in long[:-3]].count("PRE") == 1


def test_stat_lines(invoke: Callable[..., Run], mem: str) -> None:
    s3dlio.put(mem + "k", b"12345")
    out = ok(invoke("stat", mem + "k")).out.splitlines()
    assert out[0] == f"Stat for {mem}k:"
    assert out[1] == "  size: 5"
    fields = [line.split(":")[0].strip() for line in out[1:]]
    assert (
        fields[:3] == ["size", "last_modified", "etag"] and "content_type" in fields and "metadata" in fields
    )


# -- delete --------------------------------------------------------------------------------------
def test_delete_selections(invoke: Callable[..., Run], mem: str) -> None:
    fill(mem, ["obj_1", "obj_10", "a.tmp", "b.tmp", "keep.txt", "d/x", "d/e/y"])
    assert ok(invoke("rm", mem + "obj_1")).out == "Deleting 1 objects…\nDone.\n"
    assert s3dlio.exists(mem + "obj_10")
    assert invoke("delete", "--json", mem + r".*\.tmp").code != 0  # literal: no such key
    assert ok(invoke("delete", "--json", "--regex", mem + r".*\.tmp")).json()["deleted"] == 2
    assert ok(invoke("rm", mem + "d/")).out == "Deleting 1 objects…\nDone.\n"
    assert s3dlio.exists(mem + "d/e/y")
    assert ok(invoke("rm", "-r", mem)).out == "Deleting 3 objects…\nDone.\n"
    assert ok(invoke("rm", mem)).out == "Deleting 0 objects…\nDone.\n"  # an empty prefix is fine
    run = invoke("rm", "--regex", mem + "gone.*")
    assert run.code == 1 and "no object matches" in run.err


# -- upload / cp ---------------------------------------------------------------------------------
def test_upload_files_globs_and_directories(invoke: Callable[..., Run], mem: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "deep").mkdir(parents=True)
    for name in ("a.npz", "b.npz", "c.txt", "deep/d.npz"):
        (src / name).write_bytes(b"x" * 4)
    out = ok(invoke("upload", str(src / "*.npz"), mem + "g/")).out
    assert out.startswith("Uploaded 2 objects (total 8 bytes) in ")
    assert sorted(s3dlio.list(mem + "g/")) == [mem + "g/a.npz", mem + "g/b.npz"]
    ok(invoke("upload", str(src / "**" / "*.npz"), mem + "rec/"))
    assert sorted(s3dlio.list(mem + "rec/", recursive=True)) == [
        mem + f"rec/{n}" for n in ("a.npz", "b.npz", "deep/d.npz")
    ]
    stats = ok(invoke("upload", "--json", str(src / "a.npz"), str(src / "c.txt"), mem + "files")).json()
    assert (stats["objects"], stats["bytes"]) == (2, 8)
    assert sorted(s3dlio.list(mem + "files/")) == [mem + "files/a.npz", mem + "files/c.txt"]
    ok(invoke("upload", str(src), mem + "dir/"))
    assert len(s3dlio.list(mem + "dir/", recursive=True)) == 4
    run = invoke("upload", str(src / "*.none"), mem)
    assert run.code == 1 and "no local file matches" in run.err


def test_cp_directions(
    invoke: Callable[..., Run], mem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "f1").write_bytes(b"1")
    (tmp_path / "src" / "sub" / "f2").write_bytes(b"22")
    run = invoke("cp", str(tmp_path / "src"), mem + "x/")
    assert run.code == 2 and "add -r" in run.err
    assert ok(invoke("cp", "-r", str(tmp_path / "src"), mem + "x/")).out.startswith("Copied 2 objects in ")
    assert bytes(s3dlio.get(mem + "x/sub/f2")) == b"22"
    ok(invoke("cp", mem + "x/f1", mem + "y/renamed"))
    assert bytes(s3dlio.get(mem + "y/renamed")) == b"1"
    (tmp_path / "out").mkdir()
    ok(invoke("cp", mem + "x/sub/f2", str(tmp_path / "out")))  # an existing local directory
    assert (tmp_path / "out" / "f2").read_bytes() == b"22"
    monkeypatch.chdir(tmp_path / "out")
    ok(invoke("cp", mem + "y/renamed", "./"))
    assert (tmp_path / "out" / "renamed").read_bytes() == b"1"
    stats = ok(invoke("cp", "--json", mem + "x/f1", mem + "y/renamed", mem + "z/")).json()
    assert stats["objects"] == 2
    assert invoke("cp", mem + "x/f1", mem + "y/renamed", mem + "not-a-prefix").code == 2
    run = invoke("cp", mem + "missing", mem + "z/")
    assert run.code == 1 and "missing" in run.err


# -- direct:// -----------------------------------------------------------------------------------
def test_direct_scheme(invoke: Callable[..., Run], direct_dir: Path) -> None:
    base = f"direct://{direct_dir}/"
    ok(invoke("put", "-n", "2", "-s", "8KiB", "-t", "o{}", base))
    assert ok(invoke("ls", base)).out.endswith("Total objects: 2\n")
    assert ok(invoke("get", "--json", base)).json()["bytes"] == 16384
    assert ok(invoke("stat", "--json", base + "o1")).json()["size"] == 8192
    assert ok(invoke("rm", base)).out == "Deleting 2 objects…\nDone.\n"


def _file_size_limit(nbytes: int) -> Callable[[], None]:
    """A ``preexec_fn``: files of the child stop growing at ``nbytes`` (EFBIG, as a full disk
    gives ENOSPC); SIGXFSZ is ignored so the write fails instead of killing the process."""
    import resource
    import signal

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, resource.RLIM_INFINITY))

    return limit


@pytest.mark.parametrize("to_dir", [False, True], ids=["get-o-file", "download"])
def test_a_file_that_cannot_be_written_is_named(s3_bucket: str, tmp_path: Path, to_dir: bool, exe: str) -> None:
    """A filesystem failure (a full disk, a file size limit) names the command and the path,
    not a bare ``OSError: [Errno 28]``; no temporary file stays."""
    import os
    import subprocess

    s3dlio.put(s3_bucket + "big.bin", os.urandom(2 * 2**20))
    dest = tmp_path / "out"
    args = ["download", s3_bucket + "big.bin", str(dest)] if to_dir else ["get", s3_bucket + "big.bin", "-o", str(dest)]
    run = subprocess.run([exe, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         preexec_fn=_file_size_limit(2**20))  # fmt: skip
    path = str(dest / "big.bin") if to_dir else str(dest)
    assert run.returncode == 1, run.stderr
    assert run.stderr.startswith(f"s3dlio: error: {args[0]} {path}: file too large"), run.stderr
    assert not any(p.name.startswith(".s3dlio-tmp-") for p in tmp_path.rglob("*"))
