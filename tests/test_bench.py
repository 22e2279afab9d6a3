"""``s3dlio bench``: every workload against mem:// and moto, counts checked against the op-log.

No timing assertions: only counts, orderings, shapes of the output and error messages.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import s3dlio
from s3dlio import bench, oplog
from s3dlio.bench.options import SizeSpec, parse_duration
from s3dlio.bench.runner import stable
from s3dlio.cli.bench import bench_command, main
from s3dlio.errors import ConfigError

SMALL: dict[str, Any] = {"obj_size": "1KiB-8KiB", "objects": 12, "concurrent": 4, "progress": False}
PREPARED = {"get", "stat", "list", "delete", "mixed", "loader"}


def _in_run(result: bench.BenchResult, path: Path) -> oplog.Summary:
    """The op-log's statistics of the requests issued in the run phase (prepare/cleanup left out)."""
    start, end = result.phases["run"]
    return oplog.summarize(r for r in oplog.read(path) if start <= r.start <= end)


def _check_ordered(op: bench.OpResult) -> None:
    for lat in (op.latency_ms, op.ttfb_ms):
        if lat is not None:
            assert 0 <= lat.p50 <= lat.p90 <= lat.p99 <= lat.max


@pytest.fixture(params=["mem", "s3"])
def target(request: pytest.FixtureRequest) -> str:
    if request.param == "s3":
        return str(request.getfixturevalue("s3_bucket"))
    return f"mem://bench-{random.getrandbits(32):08x}/"


@pytest.mark.parametrize("workload", bench.WORKLOADS)
def test_counts_match_the_oplog(workload: str, target: str, tmp_path: Path) -> None:
    log = tmp_path / "run.tsv.zst"
    s3dlio.init_op_log(log, lossless=True)
    try:
        result = bench.run(workload, target, ops=24, **SMALL)
    finally:
        assert s3dlio.finalize_op_log() == 0
    assert result.total.count == 24
    assert result.total.errors == 0, result.messages
    logged = _in_run(result, log)
    assert {op: s.count for op, s in logged.ops.items()} == {op: r.count for op, r in result.ops.items()}
    for op, r in result.ops.items():
        assert (logged.ops[op].bytes, logged.ops[op].objects) == (r.bytes, r.objects)
        _check_ordered(r)
    _check_ordered(result.total)
    if workload == "get":  # nothing but the run GETs: the whole file agrees too
        whole = oplog.summarize_files([log])
        assert whole.ops["GET"].count == result.ops["GET"].count
        assert whole.ops["PUT"].count == result.ranks[0]["prepared"] == 12
    assert s3dlio.list(target + result.base, recursive=True) == []  # cleaned up


def test_multipart_writes_through_open_writer_when_there_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[str] = []

    class Writer:  # the shape assumed of s3dlio.open_writer: a context manager with write()
        def __init__(self, uri: str) -> None:
            self.uri, self.parts = uri, bytearray()

        def __enter__(self) -> Writer:
            return self

        def __exit__(self, *exc: object) -> None:
            s3dlio.put(self.uri, bytes(self.parts))
            written.append(self.uri)

        def write(self, data: bytes) -> None:
            self.parts += data

    monkeypatch.setattr(s3dlio.ops, "open_writer", Writer, raising=False)
    result = bench.run("multipart", "mem://bench-mp/", ops=6, **SMALL)
    assert len(written) == result.ops["PUT"].count == 6
    assert not any("open_writer" in note for note in result.notes)


def test_noclear_keeps_the_objects(tmp_path: Path) -> None:
    result = bench.run("put", f"file://{tmp_path}/", ops=10, noclear=True, prefix="keep/", **SMALL)
    assert result.ops["PUT"].count == 10
    assert len(s3dlio.list(f"file://{tmp_path}/keep/", recursive=True)) == 10
    bench.run("get", f"file://{tmp_path}/", ops=10, prefix="gone/", **SMALL)
    assert not (tmp_path / "gone").exists()


def test_a_prefix_holding_objects_is_refused_and_left_alone(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The run overwrites its keys and deletes them at the end: it never starts where objects
    exist already (one named 00000000 would be overwritten, then deleted)."""
    for name in ("00000000", "keepme"):
        s3dlio.put(f"{target}run/r0/obj/{name}", b"precious")
    with pytest.raises(ConfigError, match=r"run/r0/obj/00000000.*another --prefix.*s3dlio rm -r "):
        bench.run("stat", target, prefix="run/", ops=5, **{**SMALL, "objects": 3})
    with pytest.raises(SystemExit) as exc:
        main(["stat", target, "--prefix", "run", "-n", "5", "--objects", "3"])
    assert exc.value.code == 2 and "objects exist there already" in capsys.readouterr().err
    assert s3dlio.list(target + "run/", recursive=True) == [f"{target}run/r0/obj/{n}" for n in ("00000000", "keepme")]
    assert bytes(s3dlio.get(f"{target}run/r0/obj/00000000")) == b"precious"


def test_mixed_weights_choose_the_operations() -> None:
    result = bench.run("mixed", "mem://bench-mix/", ops=40, weights={"stat": 1, "get": 0}, **SMALL)
    assert set(result.ops) == {"STAT"}


def test_autoterm_stops_a_stable_run() -> None:
    result = bench.run(
        "stat",
        "mem://bench-auto/",
        duration="30s",
        autoterm=True,
        autoterm_windows=2,
        autoterm_pct=99.9,
        **SMALL,
    )
    assert result.stopped_by == "autoterm"


def test_delete_stops_when_objects_run_out() -> None:
    result = bench.run("delete", "mem://bench-del/", duration="30s", batch=3, **SMALL)
    assert result.stopped_by == "exhausted"
    assert result.ops["DELETE"].objects == 12


def test_options() -> None:
    assert parse_duration("1m30s") == 90 and parse_duration("500ms") == 0.5 and parse_duration(2) == 2
    spec = SizeSpec.parse("4KiB-1MiB")
    rng = random.Random(1)
    assert all(4096 <= spec.draw(rng) <= 1 << 20 for _ in range(1000))
    assert SizeSpec.parse("1MiB").fixed and str(spec) == "4KiB-1MiB"
    assert stable([10, 100, 101, 99], 3, 5) and not stable([100, 50, 100], 3, 5)
    for bad in (
        {"obj_size": "0"},
        {"ops": 0},
        {"concurrent": 0},
        {"duration": "0s"},
        {"weights": {"get": 0}},
    ):
        with pytest.raises(ConfigError):
            bench.BenchOptions("mixed", **bad)  # type: ignore[arg-type]


def test_cli_json_table_and_plot(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["get", f"file://{tmp_path}/", "-n", "30", "--objects", "6", "--obj.size", "4KiB"]
    out = runner.invoke(bench_command, [*args, "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["total"]["count"] == 30 and data["ops"]["GET"]["count"] == 30
    assert data["per_rank"][0]["count"] == 30
    png = tmp_path / "run.png"
    out = runner.invoke(bench_command, [*args, "--plot", str(png)])
    assert out.exit_code == 0, out.output
    assert out.output.splitlines()[2].split()[:3] == ["op", "count", "errors"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["get", "mem://b/", "--obj.size", "0"], "--obj.size"),
        (["gett", "mem://b/"], "gett"),
        (["mixed", "mem://b/", "--get", "0", "--put", "0", "--stat", "0", "--delete", "0"], "sum to 0"),
        (["get", "mem://b/", "--get", "5"], "mixed workload only"),
        (["get", "mem://b/", "-d", "soon"], "duration"),
    ],
)
def test_bad_options_one_line_exit_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2
    assert len(err) == 1 and err[0].startswith("s3dlio: error:") and needle in err[0]


def test_installed_script_runs_bench(tmp_path: Path) -> None:
    from s3dlio.cli.app import cli

    script = shutil.which("s3dlio", path=os.path.dirname(sys.executable))
    assert "bench" in cli.commands and script is not None
    ok = subprocess.run([script, "bench", "stat", f"file://{tmp_path}/", "-n", "20", "--objects", "4", "--json"],
                        capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ops"]["STAT"]["count"] == 20
    bad = subprocess.run(
        [script, "bench", "get", "mem://b/", "--obj.size", "0"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc; empty where there is none)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(entry.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.parent.name))
    return found


def test_distributed_two_ranks_merge_exactly(tmp_path: Path) -> None:
    pytest.importorskip("torch.distributed")
    log = tmp_path / "run.tsv.zst"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "s3dlio.bench", "--op-log", str(log), "get", f"file://{tmp_path}/", "-n", "301",
           "--objects", "10", "--obj.size", "4KiB", "-c", "3", "--distributed", "--json"]  # fmt: skip
    env = {**os.environ, "S3DLIO_OPLOG_LOSSLESS": "true", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=120)
    finally:  # never leave ranks behind: torchrun starts each in a session of its own
        for pid in [*_children(proc.pid), proc.pid]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr[-3000:]
    data = json.loads(stdout.strip().splitlines()[-1])
    per_rank = [r["count"] for r in data["per_rank"]]
    assert data["ranks"] == 2 and sorted(per_rank) == [150, 151]
    assert data["total"]["count"] == sum(per_rank) == data["ops"]["GET"]["count"] == 301
    files = sorted(str(p) for p in tmp_path.glob("run*.tsv.zst"))
    assert len(files) == 2
    assert oplog.summarize_files(files).ops["GET"].count == 301


_PEAK = """
import json, resource, sys
from s3dlio import bench
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
before = rss()
result = bench.run(sys.argv[1], sys.argv[2], ops=8, concurrent=4, obj_size="96MiB", objects=4, progress=False)
print(json.dumps({"growth": rss() - before, "errors": result.total.errors, "bytes": result.total.bytes}))
"""


@pytest.mark.parametrize("workload", ["get", "multipart"])
def test_large_objects_stream_through_bounded_memory(workload: str, tmp_path: Path) -> None:
    """4 workers x 96 MiB objects: prepared, GET and multipart objects stream a part at a time,
    so peak memory grows by a few parts per worker, not by an object each (384 MiB before)."""
    env = {**os.environ, "S3DLIO_PART_SIZE": "2MiB"}
    out = subprocess.run([sys.executable, "-c", _PEAK, workload, f"file://{tmp_path}/"], env=env,
                         capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["errors"] == 0 and got["bytes"] == 8 * 96 * 2**20
    assert got["growth"] < 192 * 2**20, f"peak RSS grew by {got['growth'] / 2**20:.0f} MiB"


def test_put_bodies_that_cannot_fit_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"put: 2 workers x 16\.00 TiB objects need 32\.00 TiB .* lower --concurrent"):
        bench.run("put", "mem://never-written/", ops=1, concurrent=2, obj_size="16TiB", progress=False)
    with pytest.raises(ConfigError, match="mixed: 1 workers"):
        bench.run("mixed", "mem://never-written/", ops=1, concurrent=1, obj_size="16TiB", progress=False)
    with pytest.raises(ConfigError, match="multipart: 1 workers"):  # formats are generated whole
        bench.run("multipart", "mem://never-written/", ops=1, concurrent=1, obj_size="16TiB",
                  object_type="NPY", progress=False)  # fmt: skip


def test_ctrl_c_stops_the_run_reports_and_cleans_up(tmp_path: Path) -> None:
    """bench handles Ctrl-C itself: the measured part is reported and its objects deleted,
    however long that takes after the signal (the CLI's stuck-call watcher leaves it be)."""
    script = shutil.which("s3dlio", path=os.path.dirname(sys.executable))
    assert script is not None
    proc = subprocess.Popen([script, "bench", "put", f"file://{tmp_path}/b/", "-d", "60s", "--obj.size", "4KiB", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not any((tmp_path / "b").rglob("*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(3.0)  # thousands of objects: the clean-up takes longer than the watcher waits
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    result = json.loads(out)
    assert result["stopped_by"] == "interrupted", (out, err)
    assert result["ops"]["PUT"]["count"] > 0
    assert [p for p in (tmp_path / "b").rglob("*") if p.is_file()] == []
