"""The group: help, version, global options, exit codes, one-line errors, broken pipes, op-log."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import s3dlio
from s3dlio.cli import main
from s3dlio.oplog import read

Run = Any


def test_help_lists_commands_aliases_and_examples(invoke: Callable[..., Run]) -> None:
    out = invoke("--help").out
    for name in ("ls, list", "delete, rm", "stat", "get", "put", "upload", "download", "cp", "create-bucket",
                 "delete-bucket", "list-buckets", "--op-log", "--endpoint-url", "--region", "--ca-bundle"):  # fmt: skip
        assert name in out, name
    assert "Examples:" in out and "s3dlio put -c -n 100" in out
    put_help = invoke("put", "--help").out
    for text in ("20971520", "object_{}_of_{}.EXT", "dat (RAW)", "npz", "NPZ", "TFRECORD", "HDF5", "RAW", "default: 32"):
        assert text in put_help, text
    assert "default: 64" in invoke("get", "--help").out
    assert "Usage: s3dlio list [OPTIONS] URI" in invoke("list", "--help").out.replace(" ls ", " list ")


def test_version(sh: Callable[..., Run]) -> None:
    run = sh("--version")
    assert run.code == 0 and run.out.strip() == f"s3dlio {s3dlio.__version__}"


def test_object_types_match_the_formats_package() -> None:
    from s3dlio.cli.objects import OBJECT_TYPES
    from s3dlio.formats import OBJECT_TYPES as FORMATS

    assert tuple(OBJECT_TYPES) == tuple(FORMATS)


# -- usage and configuration errors: exit 2, one line -------------------------------------------
def one_line(run: Run, code: int) -> str:
    assert run.code == code, str(run)
    lines = run.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("s3dlio: error: "), run.err
    return str(lines[0])


def test_bad_uri_size_and_template_exit_2(sh: Callable[..., Run], tmp_path: Path) -> None:
    line = one_line(sh("ls", "s3:/bucket/key"), 2)
    assert "s3:/bucket/key" in line and "write s3://bucket/key" in line
    line = one_line(sh("put", "-s", "12QB", str(tmp_path) + "/"), 2)
    assert "12QB" in line and "8MiB" in line
    line = one_line(sh("put", "-n", "3", "-t", "same.dat", str(tmp_path) + "/"), 2)
    assert "'same.dat' has no '{}'" in line and "-t 'same_{}.dat'" in line
    assert not list(tmp_path.iterdir())  # nothing was written


def test_usage_errors_exit_2(invoke: Callable[..., Run]) -> None:
    assert "No such command 'frobnicate'" in one_line(invoke("frobnicate"), 2)
    assert "Missing argument" in one_line(invoke("get"), 2)
    assert "'bogus'" in one_line(invoke("put", "-o", "bogus", "mem://b/"), 2)
    assert "'x' is not a valid integer" in one_line(invoke("get", "-j", "x", "mem://b/k"), 2)
    assert "unknown scheme" in one_line(invoke("stat", "ftp://host/x"), 2)
    line = one_line(invoke("--endpoint-url", "localhost:9000", "ls", "s3://b/"), 2)
    assert "http://" in line
    line = one_line(invoke("--ca-bundle", "/nonexistent/ca.pem", "ls", "s3://b/"), 2)
    assert "/nonexistent/ca.pem" in line


def test_object_type_is_case_insensitive(invoke: Callable[..., Run]) -> None:
    run = invoke("put", "-o", "npy", "-s", "4k", "mem://types/")
    assert run.code == 0, str(run)
    from s3dlio.formats import decode_object

    array = decode_object("NPY", s3dlio.get("mem://types/object_0_of_1.npy"))
    assert array.nbytes > 0


def test_no_arguments_prints_help(invoke: Callable[..., Run]) -> None:
    run = invoke()
    assert run.code == 2 and "Usage: " in run.err


# -- runtime errors: exit 1 (or the error's code), causes with -v -------------------------------
def test_verbose_adds_the_cause(invoke: Callable[..., Run], tmp_path: Path) -> None:
    quiet = invoke("stat", str(tmp_path / "missing"))
    assert quiet.code == 1 and len(quiet.err.splitlines()) == 1
    loud = invoke("-v", "stat", str(tmp_path / "missing"))
    assert loud.code == 1 and loud.err.splitlines()[0] == quiet.err.splitlines()[0]
    assert "  caused by: " in loud.err
    handlers = list(logging.getLogger().handlers)
    assert "Traceback" in invoke("-vv", "stat", str(tmp_path / "missing")).err
    assert logging.getLogger().handlers == handlers  # -v logging is undone when the command ends


def test_interrupt_exits_130(invoke: Callable[..., Run], monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(uri: str) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(s3dlio.ops, "stat", interrupted)
    run = invoke("stat", "mem://b/k")
    assert run.code == 130 and run.err.strip() == "s3dlio: interrupted"


def test_main_exits_with_the_error_code(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["stat", str(tmp_path / "missing")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("s3dlio: error: ") and "missing" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["ls", "s3:/b"])
    assert exit_info.value.code == 2


def test_endpoint_url_option_is_used(invoke: Callable[..., Run], s3_bucket: str) -> None:
    assert invoke("put", "-s", "10", s3_bucket).code == 0
    run = invoke("--endpoint-url", "http://127.0.0.1:1", "--region", "us-east-1", "ls", s3_bucket)
    assert run.code == 1 and run.err.startswith("s3dlio: error: "), str(run)
    s3dlio.configure()
    assert invoke("ls", s3_bucket).out.endswith("Total objects: 1\n")


# -- pipes and the op-log -----------------------------------------------------------------------
def test_broken_pipe_exits_quietly(exe: str, tmp_path: Path) -> None:
    root = tmp_path / ("d" * 60)
    root.mkdir()
    for i in range(1200):  # ~200 bytes a line: well past the 64 KiB a pipe buffers
        (root / f"object-with-a-long-name-{i:05d}.bin").touch()
    proc = subprocess.Popen([exe, "ls", f"{root}/"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read()
    assert proc.wait(60) == 0
    assert first.startswith(b"file://") and err == b""
    shell = subprocess.run(
        f"set -o pipefail; '{exe}' ls '{root}/' | head -1",
        shell=True, capture_output=True, text=True, executable="/bin/bash", timeout=60,
    )  # fmt: skip
    assert shell.returncode == 0 and shell.stderr == "" and shell.stdout.startswith("file://"), shell


def test_op_log_is_written_even_on_error(sh: Callable[..., Run], tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"abc")
    log = tmp_path / "ops.tsv.zst"
    run = sh("--op-log", str(log), "get", str(tmp_path / "a.bin"))
    assert run.code == 0, str(run)
    records = list(read(log))
    assert [r.op for r in records] == ["GET"] and records[0].bytes == 3 and records[0].ok
    log2 = tmp_path / "ops.tsv"
    run = sh("--op-log", str(log2), "get", str(tmp_path / "missing.bin"))
    assert run.code == 1
    records = list(read(log2))
    assert len(records) == 1 and not records[0].ok and "missing.bin" in records[0].file


def test_op_log_bad_path_exits_2(invoke: Callable[..., Run], tmp_path: Path) -> None:
    line = one_line(invoke("--op-log", str(tmp_path / "no" / "dir" / "x.tsv"), "ls", str(tmp_path) + "/"), 2)
    assert "--op-log" in line
