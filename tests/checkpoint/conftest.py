"""The torch checkpoint tests' prefix: one per test on mem://, file:// and moto's S3."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import s3dlio


@pytest.fixture(params=["mem", "file", "s3"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "s3":
        yield request.getfixturevalue("s3_bucket") + "ckpt/"
    elif request.param == "file":
        yield f"file://{tmp_path}/ckpt/"
    else:
        uri = f"mem://torch-{id(request)}/ckpt/"
        yield uri
        s3dlio.delete(uri, recursive=True)
