"""Live progress on a terminal, advancing per object, for every long command; nothing when piped.

Each command runs as the installed entry point with stderr on a pseudo-terminal and
``S3DLIO_PROGRESS_DELAY=0``, against moto, one request in flight (``-j 1``) so that the run
spans many redraws; the test collects the counts the frames showed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _tty import TtyRun, run_on_tty, s3dlio_exe

import s3dlio

N = 60
SIZE = 32 * 1024


def advanced(run: TtyRun, total: int) -> None:
    """The run succeeded, its frames showed several counts between 0 and ``total``, never going
    back, and the line was cleared at the end."""
    assert run.code == 0, str(run)
    counts = run.counts()
    inside = {c for c in counts if 0 < c < total}
    assert len(inside) >= 2, f"counts seen: {counts}\n{run}"
    assert counts == sorted(counts), counts
    assert all(c <= total for c in counts), counts
    assert run.tty.endswith("\r\x1b[K"), repr(run.tty[-80:])
    assert "\r" not in run.out  # stdout keeps only the summary


@pytest.fixture
def filled(s3_bucket: str) -> str:
    """``N`` objects of ``SIZE`` bytes under ``src/`` of a fresh moto bucket."""
    s3dlio.put_many([(f"{s3_bucket}src/obj-{i:03d}", bytes(SIZE)) for i in range(N)])
    return s3_bucket


def test_put_advances_per_object(s3_bucket: str, tmp_path: Path) -> None:
    run = run_on_tty("put", "-n", str(N), "-s", str(SIZE), "-j", "1", s3_bucket + "p/", cwd=tmp_path)
    advanced(run, N)
    assert f"/{N} objects" in run.tty
    assert run.out.startswith(f"Uploaded {N} objects (total {N * SIZE} bytes) in ")
    assert len(s3dlio.list(s3_bucket + "p/")) == N


def test_upload_advances_per_file(s3_bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    for i in range(N):
        (src / ("sub" if i % 2 else "") / f"f{i:03d}.bin").write_bytes(bytes(SIZE))
    run = run_on_tty("upload", "-j", "1", str(src), s3_bucket + "up/", cwd=tmp_path)
    advanced(run, N)
    assert s3dlio.ops.list(s3_bucket + "up/", recursive=True).__len__() == N


def test_get_and_download_advance_per_object(filled: str, tmp_path: Path) -> None:
    advanced(run_on_tty("get", "-j", "1", filled + "src/", cwd=tmp_path), N)
    run = run_on_tty("download", "-j", "1", filled + "src/", str(tmp_path / "dl"), cwd=tmp_path)
    advanced(run, N)
    assert len(list((tmp_path / "dl").iterdir())) == N


def test_cp_advances_per_object(filled: str, tmp_path: Path) -> None:
    run = run_on_tty("cp", "-j", "1", filled + "src/", filled + "copy/", cwd=tmp_path)
    advanced(run, N)
    assert run.out.startswith(f"Copied {N} objects in ")


def test_rm_advances_per_batch(s3_bucket: str, tmp_path: Path) -> None:
    """Deletes go out 1000 keys a request: the count moves per request answered."""
    total = 2500
    s3dlio.put_many([(f"{s3_bucket}many/k{i:05d}", b"x") for i in range(total)], max_in_flight=16)
    run = run_on_tty("rm", s3_bucket + "many/", cwd=tmp_path)
    assert run.code == 0, str(run)
    assert {1000, 2000} & set(run.counts()), run.counts()
    assert run.out == f"Deleting {total} objects…\nDone.\n"
    assert s3dlio.list(s3_bucket + "many/") == []


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(lambda b, d: ["put", "-n", "5", "-s", "1k", b + "q/"], id="put"),
        pytest.param(lambda b, d: ["get", "-j", "1", b + "src/"], id="get"),
        pytest.param(lambda b, d: ["download", b + "src/", str(d / "dl")], id="download"),
        pytest.param(lambda b, d: ["cp", b + "src/", b + "c/"], id="cp"),
        pytest.param(lambda b, d: ["upload", str(d / "up"), b + "u/"], id="upload"),
        pytest.param(lambda b, d: ["rm", b + "src/"], id="rm"),
    ],
)
def test_nothing_extra_when_piped(filled: str, tmp_path: Path, args: Callable[[str, Path], list[str]]) -> None:
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "a.bin").write_bytes(b"abc")
    env: dict[str, Any] = {**__import__("os").environ, "S3DLIO_PROGRESS_DELAY": "0", "TERM": "xterm"}
    proc = subprocess.run(
        [s3dlio_exe(), *args(filled, tmp_path)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no progress frames, no escape codes
    assert "\r" not in proc.stdout and "\x1b" not in proc.stdout
    assert len(proc.stdout.splitlines()) <= 2  # the product's lines only
