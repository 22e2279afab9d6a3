"""Fixtures of the TensorFlow tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(params=["s3", "file"])
def base(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh place for checkpoints: a moto bucket or a local directory."""
    if request.param == "s3":
        yield request.getfixturevalue("s3_bucket")
    else:
        yield f"file://{tmp_path}/store/"
