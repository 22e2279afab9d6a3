"""s3dlio_torch.checkpoint: torch.save/load streaming, S3Checkpoint, CheckpointManager.

Exact tensor equality on mem://, file:// and moto's S3.
"""

from __future__ import annotations

import io
import threading
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import s3dlio  # noqa: E402
from s3dlio.checkpoint import CheckpointCorruptError, CheckpointNotFoundError  # noqa: E402
from s3dlio_torch.checkpoint import CheckpointManager, S3Checkpoint, load, save  # noqa: E402


@pytest.fixture(autouse=True)
def _no_dist_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "TORCHELASTIC_RUN_ID", "S3DLIO_CHECKPOINT_RUN_ID"):
        monkeypatch.delenv(name, raising=False)


def model_state(seed: int = 0) -> dict[str, Any]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))
    optim = torch.optim.Adam(model.parameters())
    model(torch.randn(8, 32)).sum().backward()
    optim.step()
    return {"model": model.state_dict(), "optim": optim.state_dict()}


def assert_same(a: Any, b: Any) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        assert a == b


def odd_tensors() -> dict[str, Any]:
    base = torch.arange(48, dtype=torch.float32).reshape(6, 8)
    return {
        "bf16": torch.randn(5, 7).to(torch.bfloat16),
        "int8": torch.randint(-100, 100, (33,), dtype=torch.int8),
        "strided": base.t(),  # non-contiguous view
        "view_a": base[1],  # two views of one storage
        "view_b": base[2:4],
        "empty": torch.empty(0, 3),
        "meta": {"step": 7, "name": "x"},
    }


def test_save_load_round_trip(root: str) -> None:
    state = {**model_state(), **odd_tensors()}
    save(state, root + "model.pt")
    assert_same(state, load(root + "model.pt"))
    assert_same(state["model"], load(root + "model.pt", map_location="cpu")["model"])


def test_failed_save_writes_nothing(root: str) -> None:
    with pytest.raises(Exception, match="pickle|lambda"):
        save({"w": torch.ones(3), "bad": lambda: 0}, root + "bad.pt")
    assert not s3dlio.exists(root + "bad.pt")


def test_s3checkpoint_writer_reader(root: str) -> None:
    ckpt = S3Checkpoint(region="us-east-1")
    state = model_state(1)
    with ckpt.writer(root + "epoch1.pt") as f:
        torch.save(state, f)
    with ckpt.reader(root + "epoch1.pt") as f:
        assert f.seekable() and f.readinto(bytearray(4)) == 4
        f.seek(0)
        assert_same(state, torch.load(f))
    other = S3Checkpoint(region="eu-west-3")  # this object's requests only; global settings stay
    assert other.config.region == "eu-west-3" and s3dlio.config.default_config().region == "us-east-1"


def test_manager_round_trip_and_retention(root: str) -> None:
    manager = CheckpointManager(root, keep_last=2, spread=True)
    states = {step: model_state(step) for step in (10, 20, 30)}
    for step, state in states.items():
        manifest = manager.save(step, state, metadata={"step": step})
        assert manifest is not None and manifest.framework == "torch"
    assert manager.steps() == [20, 30] and manager.latest_step() == 30
    assert_same(states[30], manager.load())
    assert_same(states[20]["optim"], manager.load(20)["optim"])


def test_manager_async_save_overlaps_a_training_step(root: str) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(16, 16)
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    manager = CheckpointManager(root)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    handle = manager.save_async(1, {"model": model.state_dict()})
    model(torch.randn(4, 16)).sum().backward()  # a training step while the upload runs
    optim.step()
    assert not torch.equal(model.weight, before["weight"])
    assert handle.result() is not None
    assert_same(before, manager.load()["model"])  # the staged state, not the changed one


def test_manager_errors_restore_nothing(root: str) -> None:
    manager = CheckpointManager(root)
    with pytest.raises(CheckpointNotFoundError, match="no complete checkpoint"):
        manager.load()
    manager.save(1, {"model": model_state()["model"], "optim": model_state()["optim"]})
    record = manager.store.manifest(1).rank_shards(0)["optim"]
    data = bytearray(s3dlio.get(manager.store.uri + record.key))
    data[len(data) // 2] ^= 0x01
    s3dlio.put(manager.store.uri + record.key, bytes(data))
    with pytest.raises(CheckpointCorruptError, match=r"step-00000001/: shard .*rank0-optim\.\w+\.bin fails"):
        manager.load()


def test_manager_loads_another_ranks_state(root: str) -> None:
    """Two ranks (rank 1 on a thread, commit by polling); one process then loads rank 1's state."""
    kwargs: dict[str, Any] = {"world_size": 2, "coordinator": "poll", "commit_timeout": 30}
    rank1 = threading.Thread(
        target=lambda: CheckpointManager(root, rank=1, **kwargs).save(5, {"model": {"r": torch.tensor([1])}})
    )
    rank1.start()
    manifest = CheckpointManager(root, rank=0, **kwargs).save(5, {"model": {"r": torch.tensor([0])}})
    rank1.join()
    assert manifest is not None and manifest.world_size == 2
    reader = CheckpointManager(root, rank=0, world_size=1)
    assert reader.load(rank=1)["model"]["r"].item() == 1
    assert reader.load()["model"]["r"].item() == 0


def test_reader_is_a_real_file(root: str) -> None:
    save(torch.arange(10), root + "t.pt")
    with S3Checkpoint().reader(root + "t.pt") as f:
        assert isinstance(f, io.IOBase) and f.read(2) == b"PK"
