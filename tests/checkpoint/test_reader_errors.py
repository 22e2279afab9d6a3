"""A read that fails under ``torch.load`` reaches the user as s3dlio's error, never as
``AttributeError: ... has no attribute 'read'``.

torch's zip reader reads through a C++ adapter: it calls ``readinto`` and, when that
raises, looks ``read`` up with the error still pending. Real failures here: a checkpoint
replaced between opening the reader and reading it (file://), and a GET whose body stalls
half-way or is cut short behind a fault proxy in front of moto (S3, both engines).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from large.faultproxy import Action, FaultProxy, numbered
from servers import MotoServer

import s3dlio
from s3dlio.errors import TransferError
from s3dlio.retry import ChangedError
from s3dlio_torch import S3Checkpoint, S3ReaderConstructor

torch = pytest.importorskip("torch")

CONSTRUCTORS = {
    "sequential": S3ReaderConstructor.sequential(),
    "ranged": S3ReaderConstructor.range_based(buffer_size=64 * 1024),
}


def _checkpoint(seed: int) -> bytes:
    buf = io.BytesIO()
    torch.save({"w": torch.full((600_000,), float(seed)), "b": torch.arange(10)}, buf)
    return buf.getvalue()


@pytest.mark.parametrize("constructor", list(CONSTRUCTORS))
def test_checkpoint_replaced_while_loading(tmp_path: Path, constructor: str) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(_checkpoint(1))
    ckpt = S3Checkpoint(reader_constructor=CONSTRUCTORS[constructor],
                        config=s3dlio.Config.resolve(part_size=64 * 1024))  # fmt: skip
    with pytest.raises(ChangedError) as caught, ckpt.reader(f"file://{path}") as f:
        f.read(100)  # the first block is read: the failure comes later, inside torch's zip reader
        f.seek(0)
        (tmp_path / "new.pt").write_bytes(_checkpoint(2))
        os.replace(tmp_path / "new.pt", path)  # the version the reader opened is gone
        torch.load(f)
    assert "changed" in str(caught.value).lower() or "etag" in str(caught.value).lower(), caught.value


@pytest.mark.parametrize("engine", ["fast", "portable"])
@pytest.mark.parametrize("fault", ["stall-body", "cut"])
@pytest.mark.parametrize("constructor", list(CONSTRUCTORS))
def test_get_failing_under_torch_load(moto_server: MotoServer, s3_bucket: str, engine: str, fault: str,
                                      constructor: str) -> None:  # fmt: skip
    uri = f"{s3_bucket}model.pt"
    s3dlio.put(uri, _checkpoint(1))

    def plan(k: int, method: str, path: str) -> Action:
        # the HEAD and the first blocks (torch's check of the zip header) pass: the failure
        # comes later, inside torch's zip reader
        return fault if method == "GET" and k > 3 else None

    proxy = FaultProxy(moto_server.port, numbered(plan))
    try:
        client = s3dlio.Client(engine=engine, endpoint_url=proxy.url, read_timeout=1, total_timeout=2,
                               max_attempts=2, part_size=64 * 1024)  # fmt: skip
        ckpt = S3Checkpoint(client=client, reader_constructor=CONSTRUCTORS[constructor])
        with pytest.raises(TransferError) as caught, ckpt.reader(uri) as f:
            torch.load(f)
    finally:
        proxy.stop()
    assert "model.pt" in str(caught.value), caught.value


def test_reader_works_after_a_failure_is_reported(tmp_path: Path) -> None:
    """The failure is raised once: a later read of the reader is a fresh read."""
    path = tmp_path / "model.pt"
    data = _checkpoint(1)
    path.write_bytes(data)
    with S3Checkpoint().reader(f"file://{path}") as f:
        assert f.read(10) == data[:10]
        f.seek(0)
        assert torch.load(f)["b"].tolist() == list(range(10))
