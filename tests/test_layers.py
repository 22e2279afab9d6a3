"""The house rules that keep the code simple, checked like any other behaviour.

- Data flows one way (DESIGN.md 1): the import-linter contract in pyproject.toml.
"""

from __future__ import annotations

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
