"""Fixtures of the TensorFlow tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(params=["s3", "file"])
def base(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh place for checkpoints: a moto bucket or a local directory."""
    if request.param == "s3":
        yield request.getfixturevalue("s3_bucket")
    else:
        yield f"file://{tmp_path}/store/"


@pytest.fixture
def data_upload_dies(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """``data_upload_dies(n)``: from then on, each save's data file breaks off after ``n``
    bytes with ConnectionResetError (``monkeypatch.undo()`` ends it)."""
    import s3dlio_tf.checkpoint as tfckpt

    real = tfckpt._file_shard

    def arm(written: int) -> None:
        def dying(path: str) -> Any:
            if ".data-" not in path:
                return real(path)

            def half_then_die(stream: Any) -> None:
                stream.write(b"x" * written)
                raise ConnectionResetError("connection lost mid-upload")

            return half_then_die

        monkeypatch.setattr(tfckpt, "_file_shard", dying)

    return arm
