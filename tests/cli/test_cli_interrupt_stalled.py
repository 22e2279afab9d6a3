"""Ctrl-C and SIGTERM end a command at once even while its request stalls on the server.

Each command goes through :class:`large.faultproxy.FaultProxy` in front of moto, with one kind
of request left unanswered; the signal comes once that request is stalled. The command must
exit 130 (SIGTERM: 143) within the documented bound, leaving no multipart upload open and
printing no error for what its own clean-up cut short. Before the fix such a command acted on
the signal only once the stalled call gave up, 19-38 s later.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from large.faultproxy import Action, FaultProxy, Rule
from servers import MotoServer

#: The documented bound is 2 s (5 s while aborts of open uploads are confirmed); this leaves
#: room for a loaded CI machine and still tells an exit apart from a stalled call's 20-40 s.
BOUND_S = 5.0
#: How long a command may run on after the signal before the test kills it and fails.
KILL_AFTER_S = 10.0
MiB = 1 << 20
Start = Callable[[Rule], FaultProxy]


@dataclass
class Ended:
    code: int
    after_signal: float
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.code} {self.after_signal:.1f}s after the signal\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


def stall(method: str, *needles: str, unless: str | None = None) -> Rule:
    """A rule leaving every ``method`` request whose path holds all ``needles`` unanswered."""

    def rule(n: int, m: str, path: str) -> Action:
        hit = m == method and all(s in path for s in needles) and (unless is None or unless not in path)
        return "stall" if hit else None

    return rule


@pytest.fixture
def proxy(moto_server: MotoServer) -> Iterator[Start]:
    """``proxy(rule)``: a fault proxy in front of moto, stopped (its stalls released) at the end."""
    proxies: list[FaultProxy] = []

    def start(rule: Rule) -> FaultProxy:
        proxies.append(FaultProxy(moto_server.port, rule))
        return proxies[-1]

    yield start
    for p in proxies:
        p.stop()


@pytest.fixture
def bucket(s3_bucket: str) -> str:
    return s3_bucket.split("/")[2]


def run_until_stalled(exe: str, fp: FaultProxy, tmp_path: Path, *args: str,
                      signum: int = signal.SIGINT, wait: bool = True) -> Ended:  # fmt: skip
    """Run ``s3dlio ARGS`` through ``fp``; once a request stalls, send ``signum``; return how it ended."""
    env = dict(os.environ, AWS_ENDPOINT_URL=fp.url, S3DLIO_PART_SIZE=str(5 * MiB))
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("w") as fout, err.open("w") as ferr:
        proc = subprocess.Popen([exe, *args], env=env, cwd=tmp_path, stdout=fout, stderr=ferr)
    try:
        deadline = time.monotonic() + 30
        while not fp.faults:
            assert proc.poll() is None, (
                f"ended before any request stalled: exit {proc.returncode}\n{err.read_text()}"
            )
            assert time.monotonic() < deadline, "no request stalled within 30 s"
            time.sleep(0.02)
        time.sleep(0.3)  # the client is now waiting on the silent server
        sent = time.monotonic()
        proc.send_signal(signum)
        try:
            code = proc.wait(KILL_AFTER_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"s3dlio {' '.join(args)}: still running {KILL_AFTER_S:.0f}s after the signal")
        return Ended(code, time.monotonic() - sent, out.read_text(), err.read_text())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def uploads(moto_server: MotoServer, bucket: str) -> list[str]:
    listed = moto_server.client().list_multipart_uploads(Bucket=bucket)
    return [u["Key"] for u in listed.get("Uploads", [])]


def interrupted(ended: Ended, signum: int = signal.SIGINT) -> None:
    assert ended.code == 128 + signum, str(ended)
    assert ended.after_signal < BOUND_S, str(ended)
    assert ("s3dlio: interrupted" if signum == signal.SIGINT else "s3dlio: terminated") in ended.err, str(
        ended
    )
    assert "error" not in ended.err, str(ended)  # nothing our own cancel and aborts cut short


def seed(moto_server: MotoServer, bucket: str, keys: list[str]) -> None:
    client = moto_server.client()
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=b"x" * 100)


# -- commands whose main thread used to wait in the stalled call ----------------------------------
def test_ls_stalled_listing_page(
    exe: str, proxy: Start, moto_server: MotoServer, bucket: str, tmp_path: Path
) -> None:
    seed(moto_server, bucket, ["data/a", "data/b"])
    fp = proxy(stall("GET", "list-type"))
    interrupted(run_until_stalled(exe, fp, tmp_path, "ls", "-r", f"s3://{bucket}/data/"))


def test_stat_stalled_head(
    exe: str, proxy: Start, moto_server: MotoServer, bucket: str, tmp_path: Path
) -> None:
    seed(moto_server, bucket, ["k"])
    fp = proxy(stall("HEAD", "/k"))
    interrupted(run_until_stalled(exe, fp, tmp_path, "stat", f"s3://{bucket}/k"))


def test_rm_stalled_batch_delete(
    exe: str, proxy: Start, moto_server: MotoServer, bucket: str, tmp_path: Path
) -> None:
    seed(moto_server, bucket, [f"tree/o{i}" for i in range(3)])
    fp = proxy(stall("POST", "delete"))
    interrupted(run_until_stalled(exe, fp, tmp_path, "rm", "-r", f"s3://{bucket}/tree/"))


def test_cp_local_to_s3_stalled_part_aborts_the_upload(
    exe: str, proxy: Start, moto_server: MotoServer, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(12 * MiB))
    fp = proxy(stall("PUT", "partNumber=2"))
    interrupted(run_until_stalled(exe, fp, tmp_path, "cp", str(src), f"s3://{bucket}/big.bin"))
    assert uploads(moto_server, bucket) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_put_stalled_part_aborts_quietly(
    exe: str, proxy: Start, moto_server: MotoServer, bucket: str, tmp_path: Path, signum: int
) -> None:
    """Its own aborts are not reported as failed uploads ("the upload was aborted or had ended")."""
    fp = proxy(stall("PUT", "partNumber=2"))
    ended = run_until_stalled(
        exe, fp, tmp_path, "put", "-n", "2", "-s", "12MiB", f"s3://{bucket}/gen/", signum=signum
    )
    interrupted(ended, signum)
    assert uploads(moto_server, bucket) == []


# -- bench: stops, cleans up and reports within the bound; its duration bounds a stalled run -----
def _bench(bucket: str, duration: str) -> list[str]:
    return ["bench", "get", f"s3://{bucket}/", "-d", duration, "--objects", "4", "-c", "2",
            "--obj.size", "4KiB", "--prefix", "p/"]  # fmt: skip


def test_bench_ctrl_c_with_stalled_gets(
    exe: str, proxy: Start, moto_server: MotoServer, bucket: str, tmp_path: Path
) -> None:
    fp = proxy(stall("GET", "/p/", unless="list-type"))
    ended = run_until_stalled(exe, fp, tmp_path, *_bench(bucket, "30s"))
    assert ended.code == 130, str(ended)
    assert ended.after_signal < BOUND_S, str(ended)
    assert "stopped: interrupted" in ended.out, str(ended)  # what was measured, then the exit
    assert moto_server.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0  # cleaned up


def test_bench_duration_bounds_a_stalled_run(exe: str, proxy: Start, bucket: str, tmp_path: Path) -> None:
    fp = proxy(stall("GET", "/p/", unless="list-type"))
    env = dict(os.environ, AWS_ENDPOINT_URL=fp.url)
    start = time.monotonic()
    done = subprocess.run([exe, *_bench(bucket, "2s")], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=30)  # fmt: skip
    took = time.monotonic() - start
    assert fp.faults, "no GET stalled"
    assert took < 2 + 2 + 5, (
        f"{took:.1f}s\n{done.stdout}\n{done.stderr}"
    )  # -d, the stragglers' grace, start-up
    assert "stopped: duration" in done.stdout and "still waiting on a request" in done.stdout, done.stdout
