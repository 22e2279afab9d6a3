"""Replay of op-logs: the mix and sizes reproduced at several speeds against mem:// and S3 (moto),
timing scaled, --prepare, --ops, errors, and the ``replay`` / ``oplog summarize`` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import s3dlio
import s3dlio.oplog as oplog
from s3dlio.errors import ConfigError, NotFoundError
from s3dlio.oplog import OpLogWriter, Summary, summarize_files
from s3dlio.replay import DEFAULT_OPS, ReplayError, ReplayResult, parse_ops, replay, replay_key


@pytest.fixture(autouse=True)
def _no_oplog(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No process-wide log or env setting leaks into or out of a test."""
    for name in ("S3DLIO_OPLOG_FILE", "S3DLIO_OPLOG_BUF", "S3DLIO_OPLOG_LOSSLESS", "S3DLIO_OPLOG_WBUFCAP"):
        monkeypatch.delenv(name, raising=False)
    oplog.finalize_op_log()
    yield
    oplog.finalize_op_log()


def _mem(name: str) -> str:
    return f"mem://{name}-{uuid.uuid4().hex[:10]}/"


def _data(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


#: What the recording below does, per op: (count, errors, bytes of successful operations).
RECORDED = {
    "PUT": (10, 0, sum(1000 + i for i in range(10))),
    "GET": (12, 1, sum(1000 + i for i in range(10)) + 100),
    "STAT": (1, 0, 0),
    "LIST": (2, 0, 0),
    "DELETE": (1, 0, 0),
}


def _record(path: Path, src: str, pause: float = 0.1) -> None:
    """A mixed workload on ``src`` with the op-log on, spanning at least ``3 * pause`` seconds."""
    oplog.init_op_log(path, lossless=True)
    try:
        for i in range(10):
            s3dlio.put(f"{src}d/obj_{i}", _data(1000 + i))
        time.sleep(pause)
        s3dlio.get_many([f"{src}d/obj_{i}" for i in range(10)])
        s3dlio.get_range(f"{src}d/obj_1", 10, 100)
        s3dlio.stat(f"{src}d/obj_2")
        time.sleep(pause)
        s3dlio.list(f"{src}d/")
        with pytest.raises(NotFoundError):
            s3dlio.get(f"{src}d/missing")
        time.sleep(pause)
        s3dlio.delete(f"{src}d/obj_3")  # a LIST, then the DELETE
    finally:
        assert oplog.finalize_op_log() == 0


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "recorded.tsv.zst"
    _record(path, _mem("rec"))
    return path


def _per_op(summary: Summary) -> dict[str, tuple[int, int, int]]:
    return {name: (s.count, s.errors, s.bytes) for name, s in summary.ops.items()}


def _replay_logged(log: Path, *args: Any, **kwargs: Any) -> tuple[ReplayResult, Summary]:
    """Replay with the op-log on; the result and the summary of the replay's own log."""
    oplog.init_op_log(log, lossless=True)
    try:
        result = replay(*args, **kwargs)
    finally:
        assert oplog.finalize_op_log() == 0
    return result, summarize_files([log])


# -- the mix, sizes and timing ------------------------------------------------------------------
@pytest.mark.parametrize("speed", [1.0, 0.5, 0.0], ids=["speed1", "speed0.5", "fast"])
@pytest.mark.parametrize("where", ["mem", "s3"])
def test_replay_reproduces_mix_and_sizes(
    where: str, speed: float, recording: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    assert _per_op(summarize_files([recording])) == RECORDED
    base = _mem("dst") if where == "mem" else request.getfixturevalue("s3_bucket")
    target = base + "replay/"
    result, replayed = _replay_logged(tmp_path / "replayed.tsv.zst", recording, target, speed=speed)

    assert _per_op(replayed) == RECORDED
    assert {op: (c.count, c.errors, c.bytes) for op, c in result.ops.items()} == RECORDED
    assert result.ops["GET"].expected_errors == 1  # the recorded GET of a missing key failed again
    assert result.unexpected_errors == 0 and not result.stopped
    assert result.count == sum(v[0] for v in RECORDED.values())
    # the replay wrote under the target: PUTs then a DELETE of obj_3 leave 9 objects
    assert len(s3dlio.list(target + "d/")) == 9
    assert all(
        r.file.split("/", 1)[1].startswith("replay/d/") for r in oplog.read(tmp_path / "replayed.tsv.zst")
    )

    assert result.recorded_s >= 0.3
    if speed:
        assert result.elapsed_s >= 0.98 * result.recorded_s / speed
        assert result.lag_ms is not None and result.lag_ms.n == result.count
    else:
        assert result.lag_ms is None


def test_speed_half_takes_twice_as_long(recording: Path) -> None:
    result = replay(recording, _mem("half"), speed=0.5)
    assert result.recorded_s >= 0.3
    assert result.elapsed_s >= 2 * 0.98 * result.recorded_s >= 0.58
    fast = replay(recording, _mem("fast"), speed=0)
    assert fast.count == result.count


# -- prepare, filters, order ----------------------------------------------------------------------
def test_prepare_creates_objects_for_gets(recording: Path, tmp_path: Path) -> None:
    target = _mem("prep")
    with pytest.raises(ReplayError, match="prepare"):
        replay(recording, target, speed=0, ops="GET")
    target = _mem("prep")
    result, replayed = _replay_logged(tmp_path / "r.tsv", recording, target, speed=0, ops="GET", prepare=True)
    assert result.prepared == 10  # obj_0..obj_9; never the missing key
    assert set(result.ops) == {"GET"}
    assert (result.ops["GET"].count, result.ops["GET"].errors, result.ops["GET"].bytes) == RECORDED["GET"]
    assert result.skipped == sum(v[0] for k, v in RECORDED.items() if k != "GET")
    assert _per_op(replayed) == {"GET": RECORDED["GET"]}  # preparation is not in the replay's log
    assert s3dlio.stat(target + "d/obj_1").size == 1001
    assert not s3dlio.exists(target + "d/missing")


def test_ops_filter_and_names() -> None:
    assert parse_ops(None) == DEFAULT_OPS
    assert parse_ops("get, Put") == {"GET", "PUT"}
    assert parse_ops(["stat"]) == {"STAT"}
    with pytest.raises(ConfigError, match="FOO"):
        parse_ops("GET,FOO")
    with pytest.raises(ConfigError):
        parse_ops("")


def test_put_then_get_keeps_order_as_fast_as_possible(tmp_path: Path) -> None:
    """Each GET was recorded after its PUT ended: a replay with many workers must not overtake it
    (onto files: a mem:// target is replayed by one worker)."""
    path = tmp_path / "pg.tsv"
    w = OpLogWriter(path)
    t = time.time_ns()
    for i in range(300):
        s = t + i * 10_000
        w.log("PUT", file=f"b/k{i}", endpoint="mem://", start_ns=s, end_ns=s + 4_000, bytes=2048)
        w.log("GET", file=f"b/k{i}", endpoint="mem://", start_ns=s + 5_000, end_ns=s + 9_000, bytes=2048)
        w.log("DELETE", file=f"b/k{i}", endpoint="mem://", start_ns=s + 9_500, end_ns=s + 9_900)
    w.finalize()
    result = replay(path, f"file://{tmp_path}/order/", speed=0, jobs=32)
    assert result.errors == 0 and result.jobs == 32
    assert {op: c.count for op, c in result.ops.items()} == {"GET": 300, "PUT": 300, "DELETE": 300}
    assert result.ops["GET"].bytes == 300 * 2048


def test_concurrent_reads_of_one_key_stay_concurrent(tmp_path: Path) -> None:
    """Overlapping GETs of one object in the recording are not chained (no false dependencies)."""
    from s3dlio.replay import _plan

    path = tmp_path / "c.tsv"
    w = OpLogWriter(path)
    t = time.time_ns()
    w.log("PUT", file="b/k", endpoint="mem://", start_ns=t, end_ns=t + 1000, bytes=10)
    for i in range(8):
        w.log("GET", file="b/k", endpoint="mem://", start_ns=t + 2000 + i, end_ns=t + 9000, bytes=10)
    w.log("DELETE", file="b/k", endpoint="mem://", start_ns=t + 10_000, end_ns=t + 11_000)
    w.finalize()
    plan = _plan([str(path)], "p/", DEFAULT_OPS, 1.0)
    assert list(plan.after) == [-1] + [0] * 8 + [-2]  # the DELETE waits for all 8 reads
    assert plan.after_many == {9: [0, 1, 2, 3, 4, 5, 6, 7, 8]}
    assert plan.key[0] == "p/k"


def test_large_objects_replay_streamed(tmp_path: Path) -> None:
    """GETs above STREAM_MIN are counted as they arrive (whole and ranged), prepared objects go
    up a part at a time, large PUTs share a byte budget: the counts are those recorded."""
    from s3dlio.store.base import STREAM_MIN

    big = STREAM_MIN + 3 * 2**20 + 5
    path = tmp_path / "big.tsv"
    w = OpLogWriter(path)
    t = time.time_ns()
    w.log("GET", file="b/old", endpoint="mem://", start_ns=t, end_ns=t + 10, bytes=big)
    w.log("GET", file="b/old", endpoint="mem://", start_ns=t + 20, end_ns=t + 30, bytes=STREAM_MIN + 1)
    for i in range(3):
        w.log("PUT", file=f"b/new{i}", endpoint="mem://", start_ns=t + 40 + i, end_ns=t + 50, bytes=big)
    w.finalize()
    result = replay(path, f"file://{tmp_path}/out/", speed=0, jobs=4, prepare=True)
    assert result.errors == 0 and result.prepared == 1
    assert {op: (c.count, c.bytes) for op, c in result.ops.items()} == {
        "GET": (2, big + STREAM_MIN + 1), "PUT": (3, 3 * big)}  # fmt: skip
    assert (tmp_path / "out" / "old").stat().st_size == big


def test_replay_key_mapping() -> None:
    assert replay_key("bucket/a/b.bin", "http://127.0.0.1:9000") == "a/b.bin"
    assert replay_key("store/x", "mem://") == "x"
    assert replay_key("bucket", "http://h") == ""
    assert replay_key("/tmp/data/x", "file://") == "tmp/data/x"
    assert replay_key("/mnt/d/y", "direct://") == "mnt/d/y"


def test_replay_onto_files(recording: Path, tmp_path: Path) -> None:
    target = f"file://{tmp_path}/files/"
    result = replay(recording, target, speed=0)
    assert {op: (c.count, c.errors, c.bytes) for op, c in result.ops.items()} == RECORDED
    assert sorted(os.listdir(tmp_path / "files" / "d")) == sorted(f"obj_{i}" for i in range(10) if i != 3)


def test_replays_5000_small_ops(tmp_path: Path) -> None:
    path = tmp_path / "many.tsv.zst"
    w = OpLogWriter(path, lossless=True)
    t = time.time_ns()
    for i in range(5000):
        op = ("PUT", "GET", "STAT", "GET", "DELETE")[i % 5]
        s = t + i * 100_000
        w.log(op, file=f"b/k{i // 5}", endpoint="mem://", start_ns=s, end_ns=s + 50_000,
              bytes=4096 if op in ("PUT", "GET") else 0)  # fmt: skip
    w.finalize()
    result = replay(path, _mem("many"), speed=0)
    assert result.count == 5000 and result.errors == 0
    assert result.ops["GET"].bytes == 2000 * 4096


# -- errors ---------------------------------------------------------------------------------------
def test_bad_arguments(recording: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        replay(tmp_path / "nope.tsv.zst", "mem://x/")
    for bad in (-1, float("nan"), float("inf"), "2"):
        with pytest.raises(ConfigError, match="speed"):
            replay(recording, "mem://x/", speed=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="PUTT"):
        replay(recording, "mem://x/", ops="GET,PUTT")
    for jobs in (0, 513):
        with pytest.raises(ConfigError, match="jobs"):
            replay(recording, "mem://x/", jobs=jobs)
    with pytest.raises(s3dlio.InvalidUriError):
        replay(recording, "s3:/one-slash/")


def test_stops_at_first_unexpected_error(tmp_path: Path) -> None:
    path = tmp_path / "g.tsv"
    w = OpLogWriter(path)
    t = time.time_ns()
    for i in range(50):
        w.log("GET", file=f"b/g{i}", endpoint="mem://", start_ns=t + i, end_ns=t + i + 1, bytes=10)
    w.finalize()
    with pytest.raises(ReplayError, match="continue-on-error") as info:
        replay(path, _mem("stop"), speed=0, jobs=1)
    assert isinstance(info.value.__cause__, NotFoundError)
    assert info.value.result is not None and info.value.result.stopped
    assert info.value.result.count < 50
    result = replay(path, _mem("go-on"), speed=0, continue_on_error=True)
    assert result.unexpected_errors == 50 and not result.stopped
    assert len(result.first_errors) == 10


# -- the commands -----------------------------------------------------------------------------------
def _registered() -> bool:
    from s3dlio.cli.app import cli

    return "oplog" in cli.commands and "replay" in cli.commands


def _run_cli(args: Sequence[str]) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of ``s3dlio ARGS``.

    The installed entry point as a subprocess once the app registers the commands; until then
    a throwaway group of the app's kind with this module's commands.
    """
    if _registered():
        exe = Path(sys.executable).with_name("s3dlio")
        proc = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120)
        return proc.returncode, proc.stdout, proc.stderr
    from click.testing import CliRunner

    from s3dlio.cli.app import S3dlioGroup
    from s3dlio.cli.oplog import oplog_group, replay_command

    group = S3dlioGroup("s3dlio")
    group.add_command(oplog_group)
    group.add_command(replay_command)
    res = CliRunner().invoke(group, list(args))
    return res.exit_code, res.stdout, res.stderr


def test_cli_summarize_json(recording: Path) -> None:
    code, out, err = _run_cli(["oplog", "summarize", "--json", str(recording)])
    assert code == 0, err
    data = json.loads(out)
    assert {op: (d["count"], d["errors"], d["bytes"]) for op, d in data["ops"].items()} == RECORDED
    assert data["total"]["count"] == sum(v[0] for v in RECORDED.values())
    code, out, err = _run_cli(["oplog", "summarize", str(recording), str(recording)])
    assert code == 0, err
    assert "GET" in out and "ALL" in out and "p99" in out


def test_cli_replay(recording: Path) -> None:
    target = _mem("cli")
    code, out, err = _run_cli(["replay", str(recording), "--target", target, "--speed", "0", "--json"])
    assert code == 0, err
    data = json.loads(out)
    assert {op: (d["count"], d["errors"], d["bytes"]) for op, d in data["ops"].items()} == RECORDED
    assert data["lag_ms"] is None and data["unexpected_errors"] == 0
    code, out, err = _run_cli(
        ["replay", str(recording), "-t", target, "--as-fast-as-possible", "--ops", "get", "--prepare"]
    )
    assert code == 0, err
    assert "GET" in out and "PUT" not in out


def test_cli_replay_errors(recording: Path, tmp_path: Path) -> None:
    cases = [
        (["replay", str(tmp_path / "nope.tsv"), "-t", "mem://x/"], "nope.tsv"),
        (["replay", str(recording), "-t", "mem://x/", "--speed", "-1"], "--speed"),
        (["replay", str(recording), "-t", "mem://x/", "--ops", "GET,NOPE"], "NOPE"),
        (["replay", str(recording)], "--target"),
        (["oplog", "summarize", str(tmp_path / "nope.tsv")], "nope.tsv"),
    ]
    for args, word in cases:
        code, _out, err = _run_cli(args)
        assert code == 2, (args, err)
        assert word in err, (args, err)
    # a GET of an object the target lacks: stops with one clear line, exit 1
    code, _out, err = _run_cli(
        ["replay", str(recording), "-t", _mem("empty"), "--ops", "GET", "--speed", "0"]
    )
    assert code == 1
    assert "--continue-on-error" in err and "--prepare" in err
    code, out, err = _run_cli(
        ["replay", str(recording), "-t", _mem("empty"), "--ops", "GET", "--speed", "0", "--continue-on-error"]
    )
    assert code == 1 and "GET" in out
    assert "11 of 12 replayed operations failed" in err
