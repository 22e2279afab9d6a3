"""Fork safety: a process that used the fast engine (obstore) can fork, and the child works.

obstore's runtime does not survive ``fork``: measured here, a forked child's first request
hangs or the pool segfaults. So a forked child of a process that started the fast engine must
fall back to the portable engine (warning once, naming forkserver/spawn), while spawn and
forkserver children, and children of a process that never started the fast engine, use the
fast engine. Every child here runs under a deadline: a hang fails the test, never the run.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

import s3dlio
from s3dlio.store import engine, open_store
from s3dlio.uri import parse

DEADLINE_S = 60.0


def _child_work(s3_base: str, file_base: str, tag: str) -> dict[str, Any]:
    """Read what the parent wrote and write new objects, on s3 and file; report what happened."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s3_data = bytes(s3dlio.get(s3_base + "parent.bin"))
        file_data = bytes(s3dlio.get(file_base + "parent.bin"))
        s3dlio.put(s3_base + f"child-{tag}.bin", f"s3 from {tag}".encode())
        s3dlio.put(file_base + f"child-{tag}.bin", f"file from {tag}".encode())
        s3_back = bytes(s3dlio.get(s3_base + f"child-{tag}.bin"))
        listed = len(s3dlio.list(s3_base))
        s3_engine = open_store(parse(s3_base)).engine
        file_engine = open_store(parse(file_base)).engine
    return {
        "pid": os.getpid(),
        "s3_data": s3_data.decode(),
        "file_data": file_data.decode(),
        "s3_back": s3_back.decode(),
        "listed": listed,
        "s3_engine": s3_engine,
        "file_engine": file_engine,
        "inherited": engine.inherited_fast(),
        "warnings": [f"{w.category.__name__}: {w.message}" for w in caught if "s3dlio" in str(w.message)],
    }


def _pool_worker(args: tuple[str, str, str]) -> dict[str, Any]:
    """Module level, so spawn and forkserver children can import it."""
    return _child_work(*args)


@pytest.fixture
def used_fast_engine(s3_bucket: str, tmp_path: Path) -> tuple[str, str]:
    """The parent (this process) has done real work on the fast engine, on s3 and file."""
    file_base = f"file://{tmp_path}/"
    s3dlio.configure()  # engine "auto": the fast engine in a process that was not forked from one
    s3dlio.put(s3_bucket + "parent.bin", b"written by the parent")
    s3dlio.put(file_base + "parent.bin", b"file by the parent")
    assert bytes(s3dlio.get(s3_bucket + "parent.bin")) == b"written by the parent"
    assert bytes(s3dlio.get(file_base + "parent.bin")) == b"file by the parent"
    assert open_store(parse(s3_bucket)).engine == "fast"
    assert engine.fast_started_here()
    return s3_bucket, file_base


def _wait_child(pid: int, read_fd: int) -> tuple[int, bytes]:
    """The child's exit status and what it wrote, or kill it and fail at the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    chunks = []
    status: int | None = None
    while status is None:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_fd)
            pytest.fail(f"the forked child did not finish within {DEADLINE_S:.0f} s (a hang); killed it")
        ready, _, _ = select.select([read_fd], [], [], min(left, 0.2))
        if ready:
            chunk = os.read(read_fd, 65536)
            if chunk:
                chunks.append(chunk)
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(raw)
    while chunk := os.read(read_fd, 65536):
        chunks.append(chunk)
    os.close(read_fd)
    return status, b"".join(chunks)


def _check_fallback_child(result: dict[str, Any], tag: str) -> None:
    assert result["s3_data"] == "written by the parent"
    assert result["file_data"] == "file by the parent"
    assert result["s3_back"] == f"s3 from {tag}"
    assert result["inherited"] is True
    assert result["s3_engine"] == "portable"
    assert result["file_engine"] == "portable"


@pytest.mark.timeout(120)
def test_os_fork_child_reads_and_writes(used_fast_engine: tuple[str, str]) -> None:
    s3_base, file_base = used_fast_engine
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        code = 1
        try:
            os.close(read_fd)
            result = _child_work(s3_base, file_base, "forked")
            os.write(write_fd, json.dumps(result).encode())
            code = 0
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            os.write(write_fd, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
        finally:
            os._exit(code)
    os.close(write_fd)
    status, out = _wait_child(pid, read_fd)
    result = json.loads(out.decode() or "{}")
    assert status == 0, f"child exited with {status}: {result}"
    _check_fallback_child(result, "forked")
    assert len(result["warnings"]) == 1, result["warnings"]
    assert "RuntimeWarning" in result["warnings"][0]
    assert "forkserver" in result["warnings"][0]
    # The parent's fast engine still works, and sees what the child wrote.
    assert bytes(s3dlio.get(s3_base + "child-forked.bin")) == b"s3 from forked"
    assert bytes(s3dlio.get(file_base + "child-forked.bin")) == b"file from forked"
    assert open_store(parse(s3_base)).engine == "fast"


def _run_pool(method: str, s3_base: str, file_base: str, tasks: int = 4) -> list[dict[str, Any]]:
    ctx = multiprocessing.get_context(method)
    pool = ctx.Pool(2)
    try:
        pending = pool.map_async(_pool_worker, [(s3_base, file_base, f"{method}-{i}") for i in range(tasks)])
        try:
            results = pending.get(timeout=DEADLINE_S)
        except multiprocessing.TimeoutError:
            pool.terminate()
            pytest.fail(f"{method} pool workers did not finish within {DEADLINE_S:.0f} s (a hang or a crash)")
        pool.close()
    finally:
        pool.terminate()
        pool.join()
    for i in range(tasks):
        assert bytes(s3dlio.get(s3_base + f"child-{method}-{i}.bin")) == f"s3 from {method}-{i}".encode()
    return results


@pytest.mark.timeout(120)
def test_fork_pool_falls_back_to_portable(used_fast_engine: tuple[str, str]) -> None:
    results = _run_pool("fork", *used_fast_engine)
    for i, result in enumerate(results):
        _check_fallback_child(result, f"fork-{i}")
    # One warning per worker process, on its first store.
    per_pid: dict[int, int] = {}
    for result in results:
        per_pid[result["pid"]] = per_pid.get(result["pid"], 0) + len(result["warnings"])
    assert all(n == 1 for n in per_pid.values()), per_pid
    assert all("forkserver" in w for r in results for w in r["warnings"])


@pytest.mark.timeout(180)
@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_fresh_interpreters_use_the_fast_engine(method: str, used_fast_engine: tuple[str, str]) -> None:
    results = _run_pool(method, *used_fast_engine)
    for i, result in enumerate(results):
        assert result["s3_data"] == "written by the parent"
        assert result["file_data"] == "file by the parent"
        assert result["s3_back"] == f"s3 from {method}-{i}"
        assert result["inherited"] is False
        assert result["s3_engine"] == "fast"
        assert result["file_engine"] == "fast"
        assert result["warnings"] == []


_NEVER_STARTED = textwrap.dedent(
    """
    import json, os, sys, warnings
    import s3dlio
    from s3dlio.store import engine, open_store
    from s3dlio.uri import parse

    uri = sys.argv[1]
    s3dlio.configure(engine="portable")  # the parent works, but never on the fast engine
    assert bytes(s3dlio.get(uri)) == b"written by the parent"
    assert not engine.fast_started_here()
    s3dlio.configure()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                data = bytes(s3dlio.get(uri))
                s3dlio.put(uri + ".grandchild", b"from the child")
                back = bytes(s3dlio.get(uri + ".grandchild"))
            print(json.dumps({
                "data": data.decode(), "back": back.decode(),
                "engine": open_store(parse(uri)).engine,
                "inherited": engine.inherited_fast(),
                "fast_started": engine.fast_started_here(),
                "warnings": [str(w.message) for w in caught if "s3dlio" in str(w.message)],
            }), flush=True)
            code = 0
        finally:
            sys.stdout.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))
    """
)


@pytest.mark.timeout(120)
def test_child_of_a_parent_without_the_fast_engine_uses_it(s3_bucket: str) -> None:
    s3dlio.put(s3_bucket + "parent.bin", b"written by the parent")
    proc = subprocess.Popen(
        [sys.executable, "-c", _NEVER_STARTED, s3_bucket + "parent.bin"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: on a hang, kill it and its child
    )
    try:
        out, err = proc.communicate(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"the subprocess or its forked child did not finish within {DEADLINE_S:.0f} s")
    assert proc.returncode == 0, err.decode()[-3000:]
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["data"] == "written by the parent"
    assert result["back"] == "from the child"
    assert result["engine"] == "fast"
    assert result["inherited"] is False
    assert result["fast_started"] is True
    assert result["warnings"] == []
