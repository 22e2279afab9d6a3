"""Ctrl-C ends any command within 2 s with status 130 and no temporary files; memory stays
bounded whatever ``put -n`` asks for."""

from __future__ import annotations

import os
import re
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _tty import TtyRun, run_on_tty, s3dlio_exe

import s3dlio
from s3dlio.cli.app import _ABORTS_WITHIN

N = 400


def _seen(at_least: int) -> Callable[[str], bool]:
    """``interrupt_when``: once a progress frame shows ``at_least`` objects done."""

    def ready(tty: str) -> bool:
        counts = [int(c) for c in re.findall(r"(\d+)/\d+ objects", tty)]
        return bool(counts) and max(counts) >= at_least

    return ready


def _temp_files(root: Path) -> list[str]:
    return [
        str(p) for p in root.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".s3dlio-tmp-")
    ]


def interrupted(run: TtyRun, dest: Path, signum: int = signal.SIGINT) -> None:
    assert run.code == 128 + signum, str(run)
    assert run.interrupted_after is not None and run.interrupted_after < 2.0, str(run)
    assert ("s3dlio: interrupted" if signum == signal.SIGINT else "s3dlio: terminated") in run.tty
    assert _temp_files(dest) == []


@pytest.fixture
def many(s3_bucket: str) -> str:
    """``N`` objects of 64 KiB under ``src/`` on moto."""
    s3dlio.put_many([(f"{s3_bucket}src/o{i:04d}", os.urandom(64 * 1024)) for i in range(N)])
    return s3_bucket


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_ends_a_download_in_2s_without_temp_files(many: str, tmp_path: Path, signum: int) -> None:
    """SIGTERM (docker stop, Kubernetes) is handled as Ctrl-C is, and exits 143."""
    dest = tmp_path / "dl"
    run = run_on_tty("download", "-j", "8", many + "src/", str(dest), cwd=tmp_path, interrupt_when=_seen(20),
                     signum=signum)  # fmt: skip
    interrupted(run, dest, signum)
    files = list(dest.iterdir())
    assert 20 <= len(files) < N  # it was interrupted mid-way, and what landed is whole
    assert all(f.stat().st_size == 64 * 1024 for f in files)


def test_ctrl_c_ends_a_copy_to_local_files(many: str, tmp_path: Path) -> None:
    dest = tmp_path / "cp"
    dest.mkdir()
    run = run_on_tty("cp", "-j", "8", many + "src/", str(dest) + "/", cwd=tmp_path,
                     interrupt_when=lambda tty: bool(re.search(r"\b[1-9]\d+ objects", tty)))  # fmt: skip
    interrupted(run, dest)
    assert len(list(dest.iterdir())) < N


def test_ctrl_c_ends_get_to_a_directory(many: str, tmp_path: Path) -> None:
    dest = tmp_path / "got"
    run = run_on_tty("get", "-j", "8", many + "src/", "-o", str(dest) + "/", cwd=tmp_path,
                     interrupt_when=_seen(20))  # fmt: skip
    interrupted(run, dest)


def _limit_memory() -> None:
    limit = 1536 << 20  # 1.5 GiB of address space: threads, numpy and obstore fit; 10**12 names never
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def test_put_of_a_trillion_objects_runs_in_bounded_memory_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [s3dlio_exe(), "put", "-n", str(10**12), "-s", "1", "-j", "4", "mem://huge/"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_limit_memory, cwd=tmp_path,
    )  # fmt: skip
    try:
        time.sleep(4)
        assert proc.poll() is None, proc.communicate()  # still uploading, not killed for memory
        status = Path(f"/proc/{proc.pid}/status").read_text()
        rss_kib = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        assert rss_kib < 512 * 1024, status
        proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        out, err = proc.communicate(timeout=10)
        assert time.monotonic() - start < 2.0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert err.strip() == "s3dlio: interrupted" and out == ""


def test_put_json_bounded_run_counts_without_lists(tmp_path: Path) -> None:
    proc = subprocess.run(
        [s3dlio_exe(), "put", "--json", "-n", "3000", "-s", "1", "-t", "k{}", "mem://bounded/"],
        capture_output=True, text=True, preexec_fn=_limit_memory, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert '"objects": 3000' in proc.stdout and '"failed": 0' in proc.stdout


@pytest.fixture
def moto_process(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A moto server in a process of its own (endpoint, boto3 client): receiving large parts
    there does not slow this process, which measures how fast the command exits."""
    import socket

    import boto3
    from botocore.config import Config as BotoConfig

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exe = os.path.join(os.path.dirname(s3dlio_exe()), "moto_server")
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", region_name="us-east-1",
                          aws_secret_access_key="testing", config=BotoConfig(s3={"addressing_style": "path"}))  # fmt: skip
    try:
        for _ in range(200):
            try:
                client.list_buckets()
                break
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.05)
        yield endpoint, client
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_ctrl_c_aborts_the_multipart_uploads_of_put(
    moto_process: tuple[str, Any], tmp_path: Path, engine: str
) -> None:
    """Objects above two parts go up through writers; Ctrl-C aborts the ones still open, and
    the command exits within 2 s, or 5 s while a busy server has not confirmed the aborts."""
    endpoint, client = moto_process
    client.create_bucket(Bucket="big")

    def uploading(_tty: str) -> bool:
        return bool(client.list_multipart_uploads(Bucket="big").get("Uploads"))

    env = {"S3DLIO_PART_SIZE": "5MiB", "S3DLIO_ENGINE": engine, "AWS_ENDPOINT_URL": endpoint}
    run = run_on_tty("put", "-n", "8", "-s", "48MiB", "-j", "2", "s3://big/p/", cwd=tmp_path,
                     interrupt_when=uploading, env=env)  # fmt: skip
    assert run.code == 130, str(run)
    assert run.interrupted_after is not None and run.interrupted_after < _ABORTS_WITHIN + 1.0, str(run)
    assert client.list_multipart_uploads(Bucket="big").get("Uploads", []) == []
    assert len(client.list_objects_v2(Bucket="big").get("Contents", [])) < 8  # interrupted mid-way


def test_put_of_large_objects_completes_their_multipart_uploads(
    s3_bucket: str, moto_server: Any, sh: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("S3DLIO_PART_SIZE", "5MiB")
    run = sh("put", "-n", "2", "-s", "12MiB", "-o", "NPY", "--seed", "7", s3_bucket + "large/")
    assert run.code == 0, str(run)
    assert run.out.startswith("Uploaded 2 objects (total ")
    names = sorted(s3dlio.list(s3_bucket + "large/"))
    assert names == [f"{s3_bucket}large/object_{i}_of_2.npy" for i in range(2)]
    from s3dlio.formats import decode_object

    assert decode_object("NPY", s3dlio.get(names[0])).nbytes > 12 * 2**20 - 4096  # whole, in order
    etag = s3dlio.stat(names[0]).etag or ""
    assert etag.strip('"').endswith("-3")  # three parts of 5 MiB, 5 MiB and the rest
    bucket = s3_bucket.split("/")[2]
    assert moto_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.mark.parametrize(
    "command, signum, engine",
    [("upload", signal.SIGINT, "fast"), ("upload", signal.SIGTERM, "portable"), ("cp", signal.SIGTERM, "fast"),
     ("put", signal.SIGTERM, "portable")],
    ids=["upload-ctrl-c-fast", "upload-sigterm-portable", "cp-sigterm-fast", "put-sigterm-portable"],
)  # fmt: skip
def test_an_interrupt_aborts_every_streamed_multipart_upload(
    moto_process: tuple[str, Any], tmp_path: Path, command: str, signum: int, engine: str
) -> None:
    """Whichever command streams an upload (the library's writers under upload and cp, put's
    own), Ctrl-C and SIGTERM abort it: no incomplete upload stays on the server."""
    endpoint, client = moto_process
    client.create_bucket(Bucket="big")
    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        f.truncate(160 * 2**20)  # sparse: read fast, sent in 32 parts

    def uploading(_tty: str) -> bool:
        return bool(client.list_multipart_uploads(Bucket="big").get("Uploads"))

    args = {"upload": ["upload", str(big), "s3://big/up/"], "cp": ["cp", str(big), "s3://big/cp/big.bin"],
            "put": ["put", "-n", "4", "-s", "80MiB", "-j", "2", "s3://big/put/"]}[command]  # fmt: skip
    env = {"S3DLIO_PART_SIZE": "5MiB", "S3DLIO_ENGINE": engine, "AWS_ENDPOINT_URL": endpoint}
    run = run_on_tty(*args, cwd=tmp_path, interrupt_when=uploading, env=env, signum=signum)
    assert run.code == 128 + signum, str(run)
    # within 2 s, or 5 s while a busy server has not yet confirmed the aborts (and the exit itself)
    assert run.interrupted_after is not None and run.interrupted_after < _ABORTS_WITHIN + 1.0, str(run)
    assert client.list_multipart_uploads(Bucket="big").get("Uploads", []) == []


@pytest.fixture
def silent_endpoint() -> Iterator[tuple[str, socket.socket]]:
    """A loopback server that accepts connections and never answers a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", listener
    finally:
        listener.close()


_WAITING = {"ls-r": ["ls", "-r", "s3://b/"], "stat": ["stat", "s3://b/k"], "rm-r": ["rm", "-r", "s3://b/x/"],
            "cp-r": ["cp", "-r", "s3://b/x/", "DEST"]}  # fmt: skip


@pytest.mark.parametrize(
    ("engine", "args", "signum"),
    [pytest.param("fast", args, signal.SIGINT, id=f"fast-{name}") for name, args in _WAITING.items()]
    + [pytest.param("portable", _WAITING["ls-r"], signal.SIGINT, id="portable-ls-r"),
       pytest.param("portable", _WAITING["stat"], signal.SIGINT, id="portable-stat"),
       pytest.param("fast", _WAITING["stat"], signal.SIGTERM, id="fast-stat-sigterm")],
)
def test_an_interrupt_ends_a_command_waiting_on_a_silent_server(
    silent_endpoint: tuple[str, socket.socket], tmp_path: Path, engine: str, args: list[str], signum: int
) -> None:
    """The main thread waits inside the store call (minutes of read timeouts and retries by
    default); the signal still ends the run within 2 s, with the usual status and line."""
    endpoint, listener = silent_endpoint
    args = [a.replace("DEST", (tmp_path / "dl").as_uri() + "/") for a in args]
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "S3DLIO_ENGINE": engine}
    proc = subprocess.Popen([s3dlio_exe(), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        listener.settimeout(60)
        held = listener.accept()[0]  # the request is on its way: the command waits on it
        time.sleep(0.2)
        began = time.monotonic()
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - began
        held.close()
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum, err
    assert took < 2.0, f"{took:.1f} s"
    assert ("s3dlio: interrupted" if signum == signal.SIGINT else "s3dlio: terminated") in err
    assert _temp_files(tmp_path) == []
