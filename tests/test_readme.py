"""README.md runs as written, and CI runs exactly the README's two commands.

Every fenced block of README.md is code: ``python`` blocks run in a fresh interpreter of this
venv, ``bash`` blocks in bash from the repository root. The first two are the README's two
commands: the first (``bash .ci/setup && ...``) runs here without its install step, and both are,
line for line, what ``.ci/run`` runs. The skip policy that the README promises (a missing
dependency fails and says what to install; ``S3DLIO_ALLOW_SKIPS=1`` skips; one closing line names
every skip) is checked by running pytest, with this suite's conftest, on a small test file.
Python blocks in docs/ must at least compile.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from servers import AZURITE_NPM, REPO

README = REPO / "README.md"
CI_RUN = REPO / ".ci" / "run"
CI_SETUP = REPO / ".ci" / "setup"
SETUP = "bash .ci/setup"
SHELL = ("bash", "sh", "shell")
#: Fence languages that hold data or output, not code to run.
NOT_CODE = ("text", "console", "json", "toml", "yaml", "ini", "output")
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language, its text and the line its fence opens on."""

    path: Path
    lang: str
    code: str
    line: int

    @property
    def id(self) -> str:
        return f"{self.path.name}:{self.line}-{self.lang}"


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, in order."""
    text = path.read_text()
    return [
        Block(path, m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)
    ]


def ci_commands() -> list[str]:
    """What ``.ci/run`` runs: its lines less the shebang, comments and shell set-up (set, cd, export)."""
    lines = [line.strip() for line in CI_RUN.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith(("#", "set ", "cd ", "export "))]


def test_ci_runs_exactly_the_readme_commands() -> None:
    first, second = blocks(README)[:2]
    assert (first.lang, second.lang) == ("bash", "bash"), "the README opens with two bash commands"
    readme = [first.code.strip(), second.code.strip()]
    assert all("\n" not in command for command in readme), "each of the two commands is one line"
    assert ci_commands() == readme, f"{CI_RUN} must run the README's two commands, nothing else"
    assert re.search(r"^export S3DLIO_REQUIRE_ALL=1\b", CI_RUN.read_text(), re.MULTILINE)


def test_first_command_starts_with_the_setup_script() -> None:
    command = blocks(README)[0].code.strip()
    assert command.split(" && ")[0] == SETUP
    script = CI_SETUP.read_text()
    steps = [
        script.index("pip install torch==2.13.0"),  # torch first: the CPU build, not CUDA wheels
        script.index("pip install -e '.[all,dev]'"),
        script.index(f"npm install --prefix .ci --no-audit --no-fund {AZURITE_NPM}"),
    ]
    assert steps == sorted(steps)
    # Progress stays visible: no quiet flags anywhere.
    assert not re.search(r"(^|\s)(-q|--quiet|--silent)(\s|$)", script, re.MULTILINE)
    assert re.findall(r"^step (\d)/(\d) ", script, re.MULTILINE) == [(str(i), "4") for i in range(1, 5)]


def test_first_command_runs_after_setup() -> None:
    """The README's first command less ``bash .ci/setup`` (this venv is what it set up)."""
    rest = blocks(README)[0].code.strip().split(" && ")[1:]
    assert rest, "the first command makes a data set after setting up"
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", " && ".join(rest)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Uploaded 100 objects (total 104857600 bytes)" in proc.stdout
    assert "downloaded 100.00 MB" in proc.stdout  # 104857600 bytes in s3-cli's MB (2^20)


def _runnable() -> list[Block]:
    """README blocks that run here: all but the two commands (checked above) and data blocks."""
    return [block for block in blocks(README)[2:] if block.lang not in NOT_CODE]


@pytest.mark.parametrize("block", _runnable(), ids=lambda block: block.id)
def test_readme_block_runs(block: Block, tmp_path: Path) -> None:
    if block.lang == "python":
        argv = [sys.executable, "-c", block.code]
        cwd = tmp_path
    elif block.lang in SHELL:
        argv = ["bash", "-euo", "pipefail", "-c", block.code]
        cwd = REPO  # as a reader runs it: from the clone, with .venv/bin/... paths
    else:
        pytest.fail(
            f"{block.id}: a fenced block needs a language, python or bash to run, or one of {NOT_CODE}",
            pytrace=False,
        )
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{block.id} failed:\n{block.code}\n{proc.stdout}{proc.stderr}"


def test_readme_has_python_in_one_minute() -> None:
    python = [block for block in blocks(README) if block.lang == "python"]
    assert python, "README.md shows the Python API"
    calls = set(re.findall(r"s3dlio\.(\w+)\(", python[0].code))
    breadth = {"put", "get", "get_range", "list", "stat", "get_many", "delete", "upload", "download"}
    assert breadth | {"copy", "get_async"} <= calls


@pytest.mark.parametrize("doc", sorted((REPO / "docs").glob("*.md")), ids=lambda path: path.name)
def test_doc_python_blocks_compile(doc: Path) -> None:
    for block in blocks(doc):
        if block.lang == "python":
            try:
                compile(block.code, block.id, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
            except SyntaxError as exc:
                pytest.fail(f"{block.id}: {exc}", pytrace=False)


# -- the skip policy the README promises --------------------------------------------------------
POLICY_TESTS = """
import pytest
from servers import find_azurite, require


def test_needs_azurite():
    find_azurite()


def test_needs_a_package():
    require("s3dlio_no_such_package")


def test_importorskip():
    pytest.importorskip("s3dlio_no_such_package")


def test_skips_for_a_reason_of_its_own():
    pytest.skip("not a dependency")
"""


def _pytest_with_conftest(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run pytest with this suite's conftest (as a plugin) on POLICY_TESTS, in a clean environment."""
    (tmp_path / "test_policy.py").write_text(textwrap.dedent(POLICY_TESTS))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("S3DLIO_", "PYTEST_"))}
    clean.update(PYTHONPATH=str(REPO / "tests"), S3DLIO_AZURITE=str(tmp_path / "no-azurite"), **env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest", "test_policy.py"],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_missing_dependency_fails_and_says_what_to_install(tmp_path: Path) -> None:
    proc = _pytest_with_conftest(tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "3 failed, 1 skipped" in out
    assert f"npm install --prefix {REPO / '.ci'} --no-audit --no-fund {AZURITE_NPM}" in out
    assert out.count(".venv/bin/pip install -e '.[all,dev]'") >= 2  # require() and importorskip
    assert "S3DLIO_ALLOW_SKIPS=1 skips such tests instead" in out
    assert "s3dlio: 1 skipped: 1x not a dependency" in out


def test_allow_skips_skips_and_names_every_skip(tmp_path: Path) -> None:
    proc = _pytest_with_conftest(tmp_path, S3DLIO_ALLOW_SKIPS="1")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "4 skipped" in out
    summary = [line for line in out.splitlines() if line.startswith("s3dlio: ")]
    assert len(summary) == 1, out
    assert summary[0].startswith("s3dlio: 4 skipped: ")
    for reason in ("no azurite-blob at", "cannot import 's3dlio_no_such_package'", "not a dependency"):
        assert reason in summary[0]


def test_require_all_overrides_allow_skips(tmp_path: Path) -> None:
    proc = _pytest_with_conftest(tmp_path, S3DLIO_ALLOW_SKIPS="1", S3DLIO_REQUIRE_ALL="1")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "3 failed, 1 skipped" in out
