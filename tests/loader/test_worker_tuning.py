"""Worker-process settings (s3dlio.loader.worker): applied in DataLoader workers, never in the parent.

The allocator half is checked by its effect, page faults, in a fresh interpreter.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from s3dlio.config import default_config
from s3dlio.loader import tune_worker_process

GLIBC = bool(getattr(os, "confstr", None) and os.confstr("CS_GNU_LIBC_VERSION"))

# In a fresh interpreter: fill and free a 16 MiB buffer twice; the second time's page faults.
REUSE = textwrap.dedent(
    """
    import json, resource, sys
    from s3dlio.loader import tune_worker_process
    applied = tune_worker_process() if sys.argv[1] == "tuned" else ()
    again = tune_worker_process() if sys.argv[1] == "tuned" else ()
    faults = []
    for _ in range(2):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        buffer = b"x" * (16 << 20)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        del buffer
    print(json.dumps({"applied": applied, "again": again, "faults": faults}))
    """
)


def _reuse(mode: str, **env: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", REUSE, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **env})  # fmt: skip
    return json.loads(out.stdout)  # type: ignore[no-any-return]


@pytest.mark.skipif(not GLIBC, reason="the allocator settings are glibc's")
def test_tuned_process_reuses_a_freed_body_instead_of_faulting_it_in_again() -> None:
    plain, tuned = _reuse("plain"), _reuse("tuned")
    assert tuned["applied"] == ["gc.freeze", "malloc"]
    assert tuned["again"] == []  # once per process
    pages = (16 << 20) // 4096
    assert plain["faults"][1] > pages // 2  # type: ignore[index]  # glibc's default: fresh pages again
    assert tuned["faults"][1] < pages // 20  # type: ignore[index]  # the freed buffer is reused


def test_turned_off_by_the_environment() -> None:
    assert _reuse("tuned", S3DLIO_TUNE_WORKERS="0")["applied"] == []


def test_turned_off_by_config_applies_nothing() -> None:
    before = gc.get_freeze_count()
    assert tune_worker_process(default_config().replace(tune_workers=False)) == ()
    assert gc.get_freeze_count() == before


# -- in DataLoader workers --------------------------------------------------------------------------
torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402

from s3dlio_torch import S3IterableDataset, S3MapDataset  # noqa: E402


def frozen(_reader: object) -> tuple[int, int]:
    """Transform: (pid, objects frozen out of collection) in the process reading the item."""
    return os.getpid(), gc.get_freeze_count()


@pytest.fixture
def objects(tmp_path: Path) -> list[str]:
    uris = []
    for i in range(8):
        path = tmp_path / f"obj-{i}"
        path.write_bytes(b"%d" % i)
        uris.append(path.as_uri())
    return uris


@pytest.mark.parametrize("kind", ["iterable", "map"])
def test_fork_workers_are_tuned_and_the_parent_is_not(objects: list[str], kind: str) -> None:
    before = gc.get_freeze_count()
    ds = S3IterableDataset.from_objects(objects, transform=frozen) if kind == "iterable" else (
        S3MapDataset.from_objects(objects, transform=frozen))  # fmt: skip
    seen = list(DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="fork"))
    assert len(seen) == len(objects)
    assert {pid for pid, _ in seen}.isdisjoint({os.getpid()})
    assert all(count > before for _, count in seen)  # the inherited objects are frozen
    assert gc.get_freeze_count() == before
    assert (ds[0] if kind == "map" else next(iter(ds)))[1] == before  # in the parent itself: never


def test_workers_left_alone_when_turned_off(objects: list[str]) -> None:
    before = gc.get_freeze_count()
    ds = S3IterableDataset.from_objects(
        objects, transform=frozen, config=default_config().replace(tune_workers=False)
    )
    seen = list(DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="fork"))
    assert [count for _, count in seen] == [before] * len(objects)
