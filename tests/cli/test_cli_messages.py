"""What the commands say: errors name the command typed and its fix, plurals, put's default
names, usage errors exit 2; and the streaming batch loop under them."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

import s3dlio
from s3dlio import _parallel, ops
from s3dlio.cli._output import as_command, plural
from s3dlio.cli.objects import EXTENSIONS, OBJECT_TYPES

Run = Any


def failed(run: Run, code: int = 1) -> str:
    """The one error line of a run that exited ``code``."""
    assert run.code == code, str(run)
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("s3dlio: error: "), str(run)
    return str(lines[0])


# -- errors name the command typed ----------------------------------------------------------------
@pytest.mark.parametrize("command", ["stat", "rm", "delete"])
def test_missing_key_names_the_command(sh: Callable[..., Run], s3_bucket: str, command: str) -> None:
    line = failed(sh(command, s3_bucket + "dir/missing.bin"))
    assert line.startswith(f"s3dlio: error: {command} {s3_bucket}dir/missing.bin: not found"), line
    assert "head" not in line
    assert line.endswith(f"see what is there with: s3dlio ls {s3_bucket}dir/"), line


def test_create_bucket_that_exists_points_to_exist_ok(sh: Callable[..., Run], s3_bucket: str) -> None:
    bucket = s3_bucket.rstrip("/")
    line = failed(sh("create-bucket", bucket))
    assert line.startswith(f"s3dlio: error: create-bucket {bucket}"), line
    assert "create_bucket" not in line and "--exist-ok" in line, line
    ok = sh("create-bucket", "--exist-ok", bucket)
    assert ok.code == 0 and ok.out == f"Bucket {bucket} already exists.\n", str(ok)


@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_missing_bucket_names_create_bucket(
    sh: Callable[..., Run], moto_server: Any, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    monkeypatch.setenv("S3DLIO_ENGINE", engine)
    name = f"nob-{uuid.uuid4().hex[:8]}"
    line = failed(sh("ls", f"s3://{name}/"))  # a HEAD's 404 cannot tell a missing bucket: list
    assert f"s3dlio create-bucket s3://{name}" in line and "s3dlio mb" not in line, line
    assert line.startswith(f"s3dlio: error: ls s3://{name}/"), line


def test_batch_failures_name_the_command(invoke: Callable[..., Run], monkeypatch: pytest.MonkeyPatch) -> None:
    base = f"mem://msg-{uuid.uuid4().hex[:8]}/"
    for name in ("a", "b", "c"):
        s3dlio.put(base + name, b"x")
    real = ops.get_in_pieces

    def flaky(uri: str) -> Any:
        if uri.endswith("/b"):
            raise s3dlio.NotFoundError(f"get {uri}: not found")
        return real(uri)

    monkeypatch.setattr(ops, "get_in_pieces", flaky)
    run = invoke("get", base)
    assert run.code == 1
    assert run.err.splitlines() == [
        f"s3dlio: error: get {base}b: not found",
        "s3dlio: error: 1 of 3 objects failed (each is reported above)",
    ]
    assert run.out.startswith("Fetching 3 objects with 64 jobs…\n")


def test_as_command_rewrites_only_the_leading_operation() -> None:
    assert as_command("head s3://b/k: not found", "stat") == "stat s3://b/k: not found"
    assert as_command("create_bucket s3://b: already exists", "mb") == "mb s3://b: already exists"
    assert as_command("s3://b/k: the key head s3://x", "rm") == "s3://b/k: the key head s3://x"


# -- plurals --------------------------------------------------------------------------------------
def test_plurals(invoke: Callable[..., Run]) -> None:
    assert [plural(n, "object") for n in (0, 1, 2)] == ["0 objects", "1 object", "2 objects"]
    base = f"mem://pl-{uuid.uuid4().hex[:8]}/"
    # summary lines keep s3-cli's fixed wording whatever the count (scripts match "Uploaded (\d+) objects")
    assert invoke("put", "-s", "10", "-t", "one", base).out.startswith("Uploaded 1 objects (total 10 bytes) in ")
    out = invoke("get", "-j", "1", base + "one").out
    assert out.startswith("Fetching 1 objects with 1 jobs…\n"), out
    assert invoke("put", "-n", "2", "-s", "10", base + "two/").out.startswith("Uploaded 2 objects ")
    assert invoke("ls", base + "one").out.endswith("\nTotal objects: 1\n")
    assert invoke("rm", base + "one").out == "Deleting 1 objects…\nDone.\n"


# -- put's default names --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", OBJECT_TYPES)
def test_put_default_name_follows_the_type(invoke: Callable[..., Run], kind: str) -> None:
    base = f"mem://ext-{uuid.uuid4().hex[:8]}/"
    run = invoke("put", "-n", "2", "-s", "4k", "-o", kind.lower(), base)
    assert run.code == 0, str(run)
    expected = {"NPZ": "npz", "TFRECORD": "tfrecord", "HDF5": "h5", "RAW": "dat", "NPY": "npy",
                "JPEG": "jpg", "PNG": "png", "CSV": "csv"}[kind]  # fmt: skip
    assert EXTENSIONS[kind] == expected
    assert sorted(s3dlio.list(base)) == [f"{base}object_{i}_of_2.{expected}" for i in range(2)]
    assert s3dlio.list(base) == sorted(s3dlio.list(base))
    named = invoke("put", "-s", "4k", "-o", kind, "-t", "x.bin", base + "t/")
    assert s3dlio.list(base + "t/") == [f"{base}t/x.bin"], str(named)


# -- usage errors exit 2 --------------------------------------------------------------------------
def test_huge_size_is_a_usage_error(sh: Callable[..., Run]) -> None:
    line = failed(sh("put", "-s", "99999999999999999999999999", "mem://x/"), code=2)
    assert "'-s' / '--size'" in line and "at most 5497558138880 bytes (5.00 TiB)" in line, line
    line = failed(sh("get", "--offset", "99999999999999999999999999", "mem://x/k"), code=2)
    assert "'--offset'" in line and "at most 9223372036854775807 bytes" in line, line


def test_size_beyond_memory_is_a_usage_error(invoke: Callable[..., Run]) -> None:
    run = invoke("put", "-s", "4TiB", "mem://x/")
    assert run.code == 2 and "each object is generated in memory" in run.err, str(run)
    run = invoke("put", "-n", "100000", "-j", "100000", "-s", "1GiB", "mem://x/")
    assert run.code == 2 and "'-j' / '--jobs'" in run.err and "lower -j to at most" in run.err, str(run)


@pytest.mark.parametrize(
    "args",
    [["put", "-n", "0", "mem://x/"], ["get", "-j", "0", "mem://x/k"], ["put", "-n", "2", "-t", "same", "mem://x/"],
     ["ls"], ["put", "-o", "GIF", "mem://x/"], ["cp", "mem://a/k", "mem://b/k", "mem://c/k"]],
)  # fmt: skip
def test_usage_errors_exit_2(invoke: Callable[..., Run], args: list[str]) -> None:
    run = invoke(*args)
    assert run.code == 2, str(run)
    assert run.err.startswith("s3dlio: error: ") or run.err.startswith("Usage:"), str(run)


# -- the streaming batch loop ---------------------------------------------------------------------
def test_for_each_bounded_streams_without_materialising() -> None:
    """A trillion items: only the running calls exist; the first plain error stops the batch."""
    seen: list[int] = []
    lock = threading.Lock()

    def fn(i: int) -> None:
        with lock:
            seen.append(i)
        if i == 500:
            raise ValueError("stop here")

    start = time.monotonic()
    with pytest.raises(ValueError, match="stop here"):
        _parallel.for_each_bounded(fn, range(10**12), 4)
    assert time.monotonic() - start < 10 and 500 in seen and len(seen) < 600


def test_for_each_bounded_hands_errors_over_and_stops_on_ctrl_c() -> None:
    errors: list[tuple[int, str]] = []
    done: list[int] = []
    lock = threading.Lock()

    def fn(i: int) -> None:
        if i % 10 == 3:
            raise OSError(f"bad {i}")
        with lock:
            done.append(i)

    _parallel.for_each_bounded(fn, iter(range(100)), 3, on_error=lambda i, exc: errors.append((i, str(exc))))
    assert sorted(done + [i for i, _ in errors]) == list(range(100))
    assert sorted(errors) == [(i, f"bad {i}") for i in range(3, 100, 10)]

    def interrupted(i: int) -> None:
        if i == 50:
            raise KeyboardInterrupt
        time.sleep(0.001)

    with pytest.raises(KeyboardInterrupt):
        _parallel.for_each_bounded(interrupted, range(10**12), 4, on_error=lambda i, exc: None)


def test_failures_are_counted_and_only_the_first_are_kept(
    invoke: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(uri: str, data: Any, **_: Any) -> None:
        raise s3dlio.PermissionDeniedError(f"put {uri}: access denied")

    monkeypatch.setattr(ops, "put", refuse)
    base = f"mem://fail-{uuid.uuid4().hex[:8]}/"
    run = invoke("put", "-n", "150", "-s", "10", "-j", "4", base)
    lines = run.err.splitlines()
    assert run.code == 1 and len(lines) == 21, run.err
    assert all(line.startswith(f"s3dlio: error: put {base}object_") for line in lines[:20])
    assert lines[-1] == "s3dlio: error: 150 of 150 objects failed (the first 20 are reported above)"
    stats = invoke("put", "--json", "-n", "150", "-s", "10", base).json()
    assert (stats["objects"], stats["failed"], len(stats["errors"])) == (0, 150, 100)
    assert stats["errors"][0]["error"].startswith(f"put {base}object_")


@pytest.mark.parametrize("loop", ["map_bounded", "for_each_bounded"])
def test_ctrl_c_stops_a_batch_loop_at_once(loop: str) -> None:
    """A real SIGINT mid-batch: the loop raises KeyboardInterrupt without running the rest, and
    its workers start nothing more."""
    import os
    import signal

    started: list[int] = []

    def fn(i: int) -> int:
        started.append(i)
        time.sleep(0.02)
        return i

    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        getattr(_parallel, loop)(fn, range(100_000), 4)
    assert time.monotonic() - start < 1.0
    seen = len(started)
    time.sleep(0.2)
    assert len(started) <= seen + 4 and seen < 1000  # at most the calls already running
    timer.join()
