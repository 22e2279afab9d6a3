"""The house rules that keep the code simple, checked like any other behaviour.

- Data flows one way (DESIGN.md 1): the import-linter contract in pyproject.toml.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from servers import REPO, require


def test_layer_contract_holds() -> None:
    require("importlinter", "pip install import-linter (in the [dev] extra)")
    lint = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run(
        [str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


FRAMEWORKS = ("s3dlio_torch", "s3dlio_tf", "s3dlio_jax")


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module path) of every absolute import in ``path``: ``import a.b`` gives ``a.b``;
    ``from a import b`` gives ``a`` and ``a.b`` (``b`` may be a module)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _private(module: str) -> bool:
    return any(part.startswith("_") and not part.endswith("__") for part in module.split("."))


def test_frameworks_import_only_public_core_modules() -> None:
    bad = [
        f"{path.relative_to(REPO)}:{line}: {module}"
        for package in FRAMEWORKS
        for path in sorted((REPO / package).rglob("*.py"))
        for line, module in _imported_modules(path)
        if module.split(".")[0] == "s3dlio" and _private(module)
    ]
    assert not bad, "framework packages import private s3dlio modules (use public API):\n" + "\n".join(bad)
