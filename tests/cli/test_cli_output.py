"""The output helpers: human numbers, one-line errors with causes, the progress line."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest

from s3dlio.cli._output import Progress, error_lines, mb, rate, seconds
from s3dlio.errors import NotFoundError


def test_numbers_use_the_original_megabytes() -> None:
    assert mb(25_165_824_000) == "24000.00"  # s3-cli's MB is 2^20 bytes
    assert mb(0) == "0.00"
    assert rate(10, 0) == 0.0 and rate(10, 4) == 2.5
    assert seconds(4.345053775) == "4.345s"


def test_error_lines_and_causes() -> None:
    try:
        try:
            raise OSError("connection reset")
        except OSError as inner:
            raise NotFoundError("get s3://b/k: not found; check the key") from inner
    except NotFoundError as exc:
        assert error_lines(exc) == ["s3dlio: error: get s3://b/k: not found; check the key"]
        assert error_lines(exc, verbose=1)[1] == "  caused by: OSError: connection reset"
    assert error_lines(ValueError("odd")) == ["s3dlio: error: ValueError: odd"]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_only_on_a_terminal_after_the_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TERM", raising=False)
    quiet = io.StringIO()
    with Progress("get", 10, stream=quiet, delay=0, interval=0.01) as progress:
        progress.advance(1, 100)
        time.sleep(0.05)
    assert quiet.getvalue() == ""

    fast = Tty()
    with Progress("get", 10, stream=fast, delay=5):
        pass  # finished before the delay: nothing drawn
    assert fast.getvalue() == ""

    tty = Tty()
    with Progress("get", 4, 4 * 2**20, stream=tty, delay=0, interval=0.01) as progress:
        progress.advance(2, 2 * 2**20)
        time.sleep(0.05)
    text = tty.getvalue()
    assert "get  [############............] 2/4 objects  2.00 MB" in text
    assert text.endswith("\r\x1b[K")  # the line is cleared at the end


def test_progress_line_without_totals() -> None:
    progress = Progress("ls", stream=io.StringIO(), enabled=False)
    progress.advance(3)
    assert progress.line().startswith("ls  3 objects  0.00 MB  ")
    spinner = Progress("delete", stream=io.StringIO(), enabled=False, counting=False)
    assert spinner.line().startswith("delete  ")


def test_remove_temp_files_removes_only_this_process_s(tmp_path: Path) -> None:
    from s3dlio.cli._output import remove_temp_files

    pid = os.getpid()
    (tmp_path / "sub").mkdir()
    mine = [tmp_path / f".s3dlio-tmp-{pid}-7f3a", tmp_path / "sub" / f".s3dlio-tmp-{pid}-1",
            tmp_path / f"a.bin.s3dlio-{pid}-12.tmp"]  # fmt: skip
    theirs = [tmp_path / f".s3dlio-tmp-{pid + 1}-7f3a", tmp_path / "a.bin", tmp_path / "sub" / "b.tmp"]
    for path in mine + theirs:
        path.write_bytes(b"x")
    remove_temp_files(str(tmp_path / "a.bin"), recursive=False)  # a file's directory, not below
    assert [p.exists() for p in mine] == [False, True, False] and all(p.exists() for p in theirs)
    remove_temp_files(str(tmp_path))
    assert not any(p.exists() for p in mine) and all(p.exists() for p in theirs)
    remove_temp_files(str(tmp_path / "never-made"))  # a directory never created: nothing to do
