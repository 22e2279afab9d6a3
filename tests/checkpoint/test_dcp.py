"""torch.distributed.checkpoint through s3dlio_torch.dcp: single process, then a 2-rank gloo
group (dcp.save, dcp.load, dcp.async_save and the core store's collective commit), then a
1-process load of the 2-rank checkpoint."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
import torch.distributed.checkpoint as dcp  # noqa: E402

import s3dlio  # noqa: E402
from s3dlio_torch.dcp import S3dlioFileSystem, StorageReader, StorageWriter, merge_reads  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from servers import free_port  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:torch.distributed is disabled")


@pytest.fixture
def root(root: str) -> str:
    """conftest's prefix (mem://, file://, S3) as a directory name, which DCP joins with "/"."""
    return root + "dcp"


def state(rank: int = 0) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(42)
    return {
        "shared": torch.randn(64, 32, generator=gen),
        "ints": torch.arange(1000, dtype=torch.int64),
        "half": torch.randn(17, generator=gen).to(torch.bfloat16),
        f"rank{rank}": torch.full((8,), float(rank)),
        "extra": {"epoch": 3, "names": ["a", "b"]},
    }


def blank(ranks: range) -> dict[str, Any]:
    out: dict[str, Any] = {k: torch.zeros_like(v) for k, v in state().items() if isinstance(v, torch.Tensor)}
    out.pop("rank0")
    out.update({f"rank{r}": torch.zeros(8) for r in ranks})
    out["extra"] = {"epoch": 0, "names": []}
    return out


def same(a: dict[str, Any], b: dict[str, Any], keys: Any = None) -> bool:
    for key in keys or a:
        x, y = a[key], b[key]
        ok = torch.equal(x, y) and x.dtype == y.dtype if isinstance(x, torch.Tensor) else x == y
        if not ok:
            return False
    return True


def test_validate_checkpoint_id() -> None:
    for good in ("s3://b/ckpt", "az://cont/x", "file:///tmp/x", "mem://m/x"):
        assert StorageWriter.validate_checkpoint_id(good) and StorageReader.validate_checkpoint_id(good)
    for bad in ("/tmp/x", "s3:/b/x", "gs://b/x", "http://h/x"):
        assert not S3dlioFileSystem.validate_checkpoint_id(bad)
    with pytest.raises(ValueError, match="checkpoint id"):
        StorageWriter("relative/path")
    # any Path is claimed, as s3torchconnector does; the path itself is checked when used
    assert S3dlioFileSystem.validate_checkpoint_id(Path("/tmp/x"))
    assert StorageReader.validate_checkpoint_id(Path("relative"))
    with pytest.raises(ValueError, match="checkpoint id '/tmp/x'"):
        StorageWriter(Path("/tmp/x"))  # type: ignore[arg-type]


def test_merge_reads() -> None:
    items = [("a", 0, 10, 1), ("a", 10, 5, 2), ("a", 100, 5, 3), ("b", 0, 4, 4), ("a", 2000, 8, 5)]
    spans = merge_reads(items, max_gap=100, max_span=1000)  # type: ignore[arg-type]
    assert [(s.path, s.start, s.end, [i[0] for i in s.items]) for s in spans] == [
        ("a", 0, 105, [1, 2, 3]),
        ("a", 2000, 2008, [5]),
        ("b", 0, 4, [4]),
    ]
    assert len(merge_reads(items, max_gap=0, max_span=1000)) == 4  # type: ignore[arg-type]


def test_single_process_round_trip(root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    saved = state()
    dcp.save(saved, storage_writer=StorageWriter(root + "/sync"))
    assert s3dlio.exists(root + "/sync/.metadata") and not s3dlio.exists(root + "/sync/.metadata.tmp")
    fetches: list[Any] = []
    original = StorageReader._fetch
    monkeypatch.setattr(
        StorageReader, "_fetch", lambda self, span: fetches.append(span) or original(self, span)
    )
    loaded = blank(range(1))
    dcp.load(loaded, storage_reader=StorageReader(root + "/sync"))
    assert same(saved, loaded)
    assert len(fetches) == 1 and len(fetches[0].items) == 6  # 4 tensors + 2 values: one ranged GET
    dcp.async_save(saved, storage_writer=StorageWriter(root + "/async")).result()
    loaded = blank(range(1))
    dcp.load(loaded, storage_reader=StorageReader(root + "/async"))
    assert same(saved, loaded)


def _worker(rank: int, world: int, port: int, root: str) -> None:
    """One rank of the gloo group (module level, so spawn can pickle it)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    warnings.filterwarnings("ignore")
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        from s3dlio_torch.dcp.s3_prefix_strategy import RoundRobinPrefixStrategy  # s3torchconnector's path

        from s3dlio_torch.checkpoint import CheckpointManager
        from s3dlio_torch.dcp import S3StorageWriter

        mine = state(rank)
        strategy = RoundRobinPrefixStrategy(user_prefixes=["0000000000", "1000000000"], epoch_num=5)
        dcp.save(mine, storage_writer=S3StorageWriter(None, root + "/prefixed", prefix_strategy=strategy))
        dcp.save(mine, storage_writer=StorageWriter(root + "/sync"))
        loaded = {**blank(range(0)), f"rank{rank}": torch.zeros(8)}
        dcp.load(loaded, storage_reader=StorageReader(root + "/sync"))
        assert same(mine, loaded), f"rank {rank}: dcp.load differs"
        dcp.async_save(mine, storage_writer=StorageWriter(root + "/async")).result()
        dist.barrier()
        loaded = {**blank(range(0)), f"rank{rank}": torch.zeros(8)}
        dcp.load(loaded, storage_reader=StorageReader(root + "/async"))
        assert same(mine, loaded), f"rank {rank}: dcp.load after async_save differs"
        manager = CheckpointManager(root + "/core/")  # rank/world from torch.distributed, collective commit
        manifest = manager.save(7, {"model": mine})
        assert (manifest is not None) == (rank == 0) and (rank or manifest.world_size == 2)  # type: ignore[union-attr]
        dist.barrier()
        assert same(mine, manager.load()["model"]), f"rank {rank}: CheckpointManager.load differs"
        # a rank that fails is reported to every rank through the collective; nothing commits
        from s3dlio.checkpoint import CheckpointCommitError, CheckpointStore

        try:
            CheckpointStore(root + "/core/").save(8, {"model": (lambda f: 1 / 0) if rank == 1 else b"ok"})
            raised = "nothing"
        except (ZeroDivisionError, CheckpointCommitError) as exc:
            raised = type(exc).__name__
        assert raised == ("ZeroDivisionError" if rank else "CheckpointCommitError"), f"rank {rank}: {raised}"
        assert manager.latest_step() == 7
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("kind", ["s3", "file"])
def test_two_rank_gloo_then_one_process_load(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    base = request.getfixturevalue("s3_bucket") + "dcp2" if kind == "s3" else f"file://{tmp_path}/dcp2"
    torch.multiprocessing.spawn(_worker, args=(2, free_port(), base), nprocs=2, join=True)
    prefixed = sorted(uri.removeprefix(f"{base}/prefixed/") for uri in s3dlio.list(f"{base}/prefixed/", recursive=True))
    assert prefixed == [".metadata", "0000000000/epoch_5/__0_0.distcp", "1000000000/epoch_5/__1_0.distcp"]
    for name in ("sync", "async", "prefixed"):  # a different rank count: one process, no group
        loaded = blank(range(2))
        dcp.load(loaded, storage_reader=StorageReader(f"{base}/{name}"))
        assert same(state(0), loaded, ["shared", "ints", "half", "rank0", "extra"])
        assert torch.equal(loaded["rank1"], torch.full((8,), 1.0))
    from s3dlio.checkpoint import CheckpointStore

    assert CheckpointStore(base + "/core/").manifest(7).world_size == 2
