"""CLI fixtures: the installed ``s3dlio`` entry point as a subprocess, click's CliRunner, and a
fresh place to write on moto (s3), Azurite (az) and the filesystem (file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from servers import PIP_HINT, venv_tool

from s3dlio.cli import cli


def s3dlio_exe() -> str:
    """The installed console script next to this interpreter (this venv; never one from PATH)."""
    found = venv_tool("s3dlio")
    if found is None:
        pytest.fail(f"no s3dlio console script next to {sys.executable}: {PIP_HINT}", pytrace=False)
    return found


@pytest.fixture
def exe() -> str:
    """Path of the installed ``s3dlio`` console script."""
    return s3dlio_exe()


@dataclass
class Run:
    """What one run of the command left: exit status, stdout, stderr."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


@pytest.fixture
def sh(tmp_path: Path) -> Callable[..., Run]:
    """Run the installed ``s3dlio`` with the test environment, in ``tmp_path``."""
    exe = s3dlio_exe()

    def run(*args: str, cwd: Path | None = None) -> Run:
        proc = subprocess.run(
            [exe, *args],
            env=os.environ.copy(),
            cwd=cwd or tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def invoke(runner: CliRunner) -> Callable[..., Run]:
    """Run the click app in this process (fast; mem:// works here)."""

    def run(*args: str) -> Run:
        result: Result = runner.invoke(cli, list(args), catch_exceptions=False)
        return Run(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture(params=["s3", "az", "file"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty prefix ending in ``/`` on moto, Azurite or the filesystem."""
    if request.param == "s3":
        return str(request.getfixturevalue("s3_bucket"))
    if request.param == "az":
        return str(request.getfixturevalue("az_container"))
    path = tmp_path / "store"
    path.mkdir()
    return f"file://{path}/"
