"""Orbax's standard API, written as Orbax's documentation shows, on moto ``s3://``, Azurite
``az://`` and local files after ``import s3dlio_jax``: StandardSave/Restore, PyTree, Composite
with JSON and Grain's iterator, ArraySave; retention (max_to_keep, keep_period, best_fn), async
saves; array bytes through s3dlio (op-log); a killed save; stock-Orbax interoperability;
sharded arrays over 8 CPU devices and over two processes (subprocesses: ``orbax_child.py``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("jax.numpy")
import jax  # noqa: E402

ocp = pytest.importorskip("orbax.checkpoint")
grain = pytest.importorskip("grain")
from absl import flags  # noqa: E402

flags.FLAGS.mark_as_parsed()

import jax.numpy as jnp  # noqa: E402

import s3dlio  # noqa: E402
import s3dlio.oplog  # noqa: E402
import s3dlio_jax  # noqa: E402,F401 - the one documented import

CHILD = Path(__file__).with_name("orbax_child.py")
CHILD_TIMEOUT = 240


def state(step: int) -> dict[str, Any]:
    return {
        "params": {
            "w": jnp.arange(24, dtype=jnp.float32).reshape(4, 6) * step + 0.25,
            "b": jnp.full((6,), step, jnp.bfloat16),
        },
        "opt": {"count": jnp.int32(step), "mu": [jnp.ones(3) * step, jnp.zeros((2, 2), jnp.int8)]},
    }


def abstract(tree: Any) -> Any:
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def assert_same(got: Any, want: Any) -> None:
    assert str(jax.tree.structure(got)) == str(jax.tree.structure(want))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(np.asarray(a), np.asarray(b))


@pytest.fixture(params=["s3", "az", "file", "local"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A checkpoint directory as Orbax takes it: s3:// (moto), az:// (Azurite), file:// or a local path."""
    if request.param in ("s3", "az"):
        return request.getfixturevalue("s3_bucket" if request.param == "s3" else "az_container") + "ckpt/run1"
    if request.param == "file":
        return f"file://{tmp_path}/ckpt/run1"
    return str(tmp_path / "ckpt" / "run1")


def _names(where: str) -> list[str]:
    """Every object/file under ``where``, relative to it; not the folder markers (``dir/``, empty)
    that s3dlio's fsspec ``mkdir`` writes on object storage so that a directory made exists."""
    if where.startswith("file://"):
        return _names(where.removeprefix("file://"))
    if "://" in where:
        listed = (u[len(where) + 1 :] for u in s3dlio.list(where + "/", recursive=True))
        return sorted(n for n in listed if n and not n.endswith("/"))
    return sorted(str(p.relative_to(where)) for p in Path(where).rglob("*") if p.is_file())


def test_the_documented_loop(where: str, tmp_path: Path) -> None:
    log = tmp_path / "ops.tsv.zst"
    s3dlio.init_op_log(log, lossless=True)
    try:
        mngr = ocp.CheckpointManager(where, options=ocp.CheckpointManagerOptions(max_to_keep=2))
        for step in range(3):
            mngr.save(step, args=ocp.args.StandardSave(state(step)))  # async: returns before the upload
        mngr.wait_until_finished()
        assert mngr.all_steps() == [1, 2] and mngr.latest_step() == 2
        restored = mngr.restore(mngr.latest_step(), args=ocp.args.StandardRestore(abstract(state(0))))
        assert_same(restored, state(2))
        mngr.close()
    finally:
        assert s3dlio.finalize_op_log() == 0
    names = _names(where)
    assert {n.split("/")[0] for n in names} == {"1", "2"}  # step 0 pruned
    assert "2/default/manifest.ocdbt" in names and any(
        n.startswith("2/default/ocdbt.process_0/d/") for n in names
    )
    if "://" in where and not where.startswith("file://"):
        # committed in place with a commit file: no temporary directory was renamed (copied)
        assert "2/commit_success.txt" in names and not any("tmp" in n for n in names)
        # the array bytes went through s3dlio: TensorStore's data files are in s3dlio's op-log
        records = list(s3dlio.oplog.read(log))
        puts = {r.file for r in records if r.op == "PUT"}
        gets = {r.file for r in records if r.op == "GET"}
        data = [n for n in names if "/ocdbt.process_0/d/" in n and n.startswith("2/")]
        assert data and all(any(f.endswith(n) for f in puts) for n in data)
        assert any(f.endswith("2/default/manifest.ocdbt") for f in gets)
    again = ocp.CheckpointManager(where)
    assert again.all_steps() == [1, 2]
    assert_same(again.restore(1, args=ocp.args.StandardRestore(abstract(state(0)))), state(1))
    again.close()


def test_pytree_composite_json_grain_and_array(where: str) -> None:
    source = grain.sources.RangeDataSource(0, 20, 1)
    sampler = grain.samplers.IndexSampler(len(source), shuffle=True, seed=3, num_epochs=1)
    it = iter(grain.DataLoader(data_source=source, sampler=sampler))
    head = [next(it) for _ in range(6)]
    vector = np.linspace(0, 1, 33, dtype=np.float64)
    mngr = ocp.CheckpointManager(where)
    mngr.save(
        6,
        args=ocp.args.Composite(
            params=ocp.args.PyTreeSave(state(6)),
            meta=ocp.args.JsonSave({"lr": 0.1, "name": "run1"}),
            data_iter=grain.checkpoint.CheckpointSave(it),
            vector=ocp.args.ArraySave(vector),
        ),
    )
    mngr.wait_until_finished()
    rest = list(it)
    assert sorted(head + rest) == list(range(20))

    fresh = iter(grain.DataLoader(data_source=source, sampler=sampler))
    mngr = ocp.CheckpointManager(where)
    out = mngr.restore(
        mngr.latest_step(),
        args=ocp.args.Composite(
            params=ocp.args.PyTreeRestore(
                abstract(state(0)),
                restore_args=ocp.checkpoint_utils.construct_restore_args(abstract(state(0))),
            ),
            meta=ocp.args.JsonRestore(),
            data_iter=grain.checkpoint.CheckpointRestore(fresh),
            vector=ocp.args.ArrayRestore(),
        ),
    )
    assert_same(out.params, state(6))
    assert out.meta == {"lr": 0.1, "name": "run1"}
    assert out.vector.dtype == np.float64 and np.array_equal(out.vector, vector)
    assert list(fresh) == rest  # the Grain iterator continues exactly where the saved one stopped
    mngr.close()


def test_the_checkpointers_of_orbaxs_guides(where: str) -> None:
    """Orbax's other documented entry points, without a manager: StandardCheckpointer,
    PyTreeCheckpointer, Checkpointer and AsyncCheckpointer over a handler."""
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(f"{where}/standard", state(1))
    checkpointer.wait_until_finished()
    assert_same(checkpointer.restore(f"{where}/standard", abstract(state(1))), state(1))
    with ocp.PyTreeCheckpointer() as pytree:
        pytree.save(f"{where}/pytree", state(2))
        assert_same(pytree.restore(f"{where}/pytree"), state(2))
    plain = ocp.Checkpointer(ocp.PyTreeCheckpointHandler())
    plain.save(f"{where}/plain", args=ocp.args.PyTreeSave(state(3)))
    assert_same(plain.restore(f"{where}/plain", args=ocp.args.PyTreeRestore(abstract(state(3)))), state(3))
    background = ocp.AsyncCheckpointer(ocp.StandardCheckpointHandler())
    background.save(f"{where}/async", args=ocp.args.StandardSave(state(4)))
    background.wait_until_finished()
    assert_same(
        background.restore(f"{where}/async", args=ocp.args.StandardRestore(abstract(state(4)))), state(4)
    )
    background.close()
    with pytest.raises(ValueError, match="exists"):  # Orbax's own refusal to overwrite, as on a disk
        checkpointer.save(f"{where}/standard", state(5))


def test_orbaxs_v1_api_commits_each_step_with_its_commit_file(s3_bucket: str) -> None:
    """Orbax's v1 API always passes ``AtomicityOptions(mode=AUTO)``: on object storage that must
    still mean a commit file, so a step without one is never listed or loaded."""
    v1 = pytest.importorskip("orbax.checkpoint.experimental.v1")
    where = f"{s3_bucket}ckpt/v1"
    policy = v1.training.save_decision_policies.ContinuousCheckpointingPolicy()
    with v1.training.Checkpointer(where, save_decision_policy=policy) as ckptr:
        for step in range(3):
            ckptr.save_pytree(step, {"x": jnp.arange(3) + step})
        ckptr.wait()
    names = _names(where)
    assert all(f"{step}/commit_success.txt" in names for step in range(3))
    assert not any("orbax-checkpoint-tmp" in n for n in names)
    s3dlio.delete(f"{where}/2/commit_success.txt")  # as a save killed before its commit leaves it
    with v1.training.Checkpointer(where) as ckptr:
        assert [c.step for c in ckptr.checkpoints] == [0, 1] and ckptr.latest.step == 1
        assert ckptr.load_pytree()["x"].tolist() == [1, 2, 3]


@pytest.mark.parametrize("where", ["s3", "az"], indirect=True)
def test_keep_period_and_best_fn(where: str) -> None:
    keep = ocp.CheckpointManager(
        where + "/period",
        options=ocp.CheckpointManagerOptions(max_to_keep=1, keep_period=4, enable_async_checkpointing=False),
    )
    for step in range(6):
        keep.save(step, args=ocp.args.StandardSave({"x": jnp.full(3, step)}))
    assert keep.all_steps() == [0, 4, 5]
    keep.close()

    losses = {1: 0.9, 2: 0.3, 3: 0.5, 4: 0.7, 5: 0.2}
    best = ocp.CheckpointManager(
        where + "/best",
        options=ocp.CheckpointManagerOptions(max_to_keep=2, best_fn=lambda m: m["loss"], best_mode="min"),
    )
    for step, loss in losses.items():
        best.save(step, args=ocp.args.StandardSave({"x": jnp.full(3, step)}), metrics={"loss": loss})
    best.wait_until_finished()
    assert best.all_steps() == [2, 5] and best.best_step() == 5
    best.close()
    reopened = ocp.CheckpointManager(
        where + "/best", options=ocp.CheckpointManagerOptions(best_fn=lambda m: m["loss"], best_mode="min")
    )
    assert reopened.best_step() == 5
    got = reopened.restore(2, args=ocp.args.StandardRestore({"x": jax.ShapeDtypeStruct((3,), jnp.int32)}))
    assert got["x"].tolist() == [2, 2, 2]
    reopened.close()


def test_root_metadata_of_orbaxs_guide(where: str) -> None:
    """``CheckpointManager(path, metadata=...)`` keeps it at the root; a fresh manager reads it back."""
    with ocp.CheckpointManager(where, metadata={"version": 1.1}) as mngr:
        mngr.save(0, args=ocp.args.StandardSave(state(0)))
        mngr.wait_until_finished()
        assert mngr.metadata().custom_metadata == {"version": 1.1}
    with ocp.CheckpointManager(where) as again:
        assert again.metadata().custom_metadata == {"version": 1.1} and again.all_steps() == [0]
    assert "metadata/_ROOT_METADATA" in _names(where)


def _layout(names: list[str]) -> list[str]:
    """File names with TensorStore's random data file names as ``*``, without commit files (the
    local run commits by rename instead)."""
    return sorted(
        {re.sub(r"/d/[0-9a-f]+$", "/d/*", n) for n in names if not n.endswith("commit_success.txt")}
    )


@pytest.mark.parametrize("where", ["s3", "az"], indirect=True)
def test_todelete_subdir_moves_old_steps_as_on_a_disk(where: str, tmp_path: Path) -> None:
    """``todelete_subdir``: pruned steps go to ``trash/`` instead of being deleted, as stock Orbax
    does on a local directory (run alongside), and restore from there."""
    options = ocp.CheckpointManagerOptions(max_to_keep=1, todelete_subdir="trash")
    disk = str(tmp_path / "disk")
    for directory in (where, disk):
        with ocp.CheckpointManager(directory, options=options) as mngr:
            for step in range(3):
                mngr.save(step, args=ocp.args.StandardSave(state(step)))
            mngr.wait_until_finished()
            assert mngr.all_steps() == [2]
    assert _layout(_names(where)) == _layout(_names(disk))
    assert {n.split("/")[0] for n in _names(where)} == {"2", "trash"}
    assert {n.split("/")[1] for n in _names(where) if n.startswith("trash/")} == {"0", "1"}
    for directory in (where, disk):
        with ocp.CheckpointManager(f"{directory}/trash") as trash:
            assert trash.all_steps() == [0, 1]
            assert_same(trash.restore(1, args=ocp.args.StandardRestore(abstract(state(0)))), state(1))


def test_a_directory_orbax_cannot_take_gets_an_s3dlio_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # epath takes "s3:/bucket" for a relative path: keep what it creates here
    with pytest.raises(s3dlio.InvalidUriError, match=r"write s3://bucket/ckpt \(two slashes"):
        ocp.CheckpointManager("s3:/bucket/ckpt")  # a resume script would find no step, and start over
    with pytest.raises(s3dlio.InvalidUriError, match=r"write s3://bucket/ckpt/5 \(two slashes"):
        ocp.StandardCheckpointer().restore("s3:/bucket/ckpt/5")
    with pytest.raises(s3dlio.InvalidUriError, match=r"write az://c/ckpt/0 \(two slashes"):
        ocp.StandardCheckpointer().save("az:/c/ckpt/0", {"x": jnp.ones(2)})
    assert not list(tmp_path.rglob("*"))  # refused before anything was created


def test_other_spellings_of_the_schemes_are_the_same_directory(s3_bucket: str) -> None:
    from etils import epath

    assert str(epath.Path("S3://b/run")) == str(epath.Path("s3a://b/run")) == "s3://b/run"
    assert str(epath.Path("AZ://c/run")) == "az://c/run"
    where = s3_bucket + "ckpt/spelled"
    with ocp.CheckpointManager(where.replace("s3://", "S3://")) as mngr:
        mngr.save(0, args=ocp.args.StandardSave({"x": jnp.arange(3)}))
    with ocp.CheckpointManager(where.replace("s3://", "s3a://")) as mngr:
        assert mngr.latest_step() == 0
    assert "0/commit_success.txt" in _names(where)


def test_a_changed_orbax_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from orbax.checkpoint._src.path import gcs_utils

    from s3dlio_jax import orbax_io

    monkeypatch.delattr(gcs_utils, "get_kvstore_for_gcs")
    with pytest.raises(s3dlio.ConfigError, match=r"lacks .*get_kvstore_for_gcs.*orbax-checkpoint<0.13"):
        orbax_io._hook_points()


# -- subprocesses: a killed save, stock Orbax, sharded and multi-process arrays -------------------
def child(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHILD), *args],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        env=os.environ,
    )


def check(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr[-4000:]


@pytest.mark.parametrize("atomicity", ["", "auto", "atomic_rename"])
def test_a_killed_save_never_becomes_latest(s3_bucket: str, atomicity: str) -> None:
    """Orbax's defaults; ``AtomicityOptions()`` (mode AUTO, what Orbax's v1 API always passes);
    and ATOMIC_RENAME, which on object storage would copy a step under its final name."""
    where = f"{s3_bucket}ckpt/killed"
    killed = child("killed-save", where, atomicity)
    assert killed.returncode == 17, killed.stderr[-4000:]  # died inside step 2's array writes
    assert any(n.startswith("2/") for n in _names(where))  # step 2 was part-written ...
    assert not any("orbax-checkpoint-tmp" in n for n in _names(where))  # in place: no rename to come
    options = (
        {"atomicity_options": ocp.options.AtomicityOptions(mode=ocp.options.AtomicityMode(atomicity))}
        if atomicity
        else {}
    )
    mngr = ocp.CheckpointManager(where, options=ocp.CheckpointManagerOptions(**options))
    assert mngr.all_steps() == [1] and mngr.latest_step() == 1  # ... and is not a step
    mngr.close()
    again = ocp.CheckpointManager(where, options=ocp.CheckpointManagerOptions(cleanup_tmp_directories=True))
    deadline = time.monotonic() + 60  # leftovers removed on request, in Orbax's background thread
    while any(n.startswith("2/") for n in _names(where)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(n.startswith("2/") for n in _names(where))
    again.save(2, args=ocp.args.StandardSave({"x": jnp.arange(4)}))
    again.wait_until_finished()
    assert again.all_steps() == [1, 2]
    assert again.restore(2, args=ocp.args.StandardRestore({"x": jax.ShapeDtypeStruct((4,), jnp.int32)}))[
        "x"
    ].tolist() == [0, 1, 2, 3]
    again.close()


def stock_tree(step: int) -> dict[str, Any]:
    """``stock_tree(step)``: what the child saves and expects (a mismatch fails both ways)."""
    grid = np.arange(64 * 48, dtype=np.float32).reshape(64, 48) / 7
    return {
        "w": jnp.asarray(grid * step),
        "b": jnp.arange(5, dtype=jnp.int32) + step,
        "h": jnp.full((3, 3), step, jnp.bfloat16),
    }


def test_stock_orbax_reads_a_local_copy_and_we_read_stock_orbax(s3_bucket: str, tmp_path: Path) -> None:
    # saved through s3dlio on S3, restored by stock Orbax (no s3dlio) from a local copy of the files
    ours = f"{s3_bucket}ckpt/ours"
    mngr = ocp.CheckpointManager(ours)
    mngr.save(3, args=ocp.args.StandardSave(stock_tree(3)))
    mngr.wait_until_finished()
    mngr.close()
    local = tmp_path / "copy"
    s3dlio.download(ours + "/", str(local), recursive=True)
    check(child("stock-restore", str(local)))

    # saved by stock Orbax on a local disk, uploaded as files, restored through s3dlio
    stock = tmp_path / "stock"
    check(child("stock-save", str(stock)))
    theirs = f"{s3_bucket}ckpt/theirs"
    s3dlio.upload(f"{stock}/**", theirs + "/")
    mngr = ocp.CheckpointManager(theirs)
    assert mngr.all_steps() == [3]
    assert_same(mngr.restore(3, args=ocp.args.StandardRestore(abstract(stock_tree(0)))), stock_tree(3))
    mngr.close()


def test_sharded_over_eight_devices_restores_into_other_shardings(s3_bucket: str) -> None:
    result = child("sharded", f"{s3_bucket}ckpt/sharded")
    check(result)
    assert "sharded ok" in result.stdout


def test_two_processes_each_write_their_shards(s3_bucket: str) -> None:
    from servers import free_port

    where = f"{s3_bucket}ckpt/multi"
    port = str(free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, str(CHILD), "multi", where, port, str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=CHILD_TIMEOUT) for p in procs]
    for i, (p, (out, err)) in enumerate(zip(procs, outputs, strict=True)):
        assert p.returncode == 0 and f"multi {i} ok" in out, err[-4000:]
    names = _names(where)
    # each process wrote its own OCDBT data; process 0 merged the manifests; one commit
    assert any(n.startswith("1/default/ocdbt.process_0/d/") for n in names)
    assert any(n.startswith("1/default/ocdbt.process_1/d/") for n in names)
    assert names.count("1/commit_success.txt") == 1
    # restored whole by one process (this one, one device)
    mngr = ocp.CheckpointManager(where)
    assert mngr.all_steps() == [1]
    grid = np.arange(64 * 48, dtype=np.float32).reshape(64, 48) / 7  # orbax_child.GLOBAL
    one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    got = mngr.restore(
        1, args=ocp.args.StandardRestore({"x": jax.ShapeDtypeStruct(grid.shape, grid.dtype, sharding=one)})
    )
    assert np.array_equal(np.asarray(got["x"]), grid)
    mngr.close()


def test_zarr_layout_without_ocdbt(s3_bucket: str, tmp_path: Path) -> None:
    """Orbax's other standard layout (one zarr array per leaf, use_ocdbt=False) on S3, readable locally."""
    where = f"{s3_bucket}ckpt/zarr"
    handler = ocp.PyTreeCheckpointHandler(use_ocdbt=False)
    mngr = ocp.CheckpointManager(where, item_handlers=handler)
    mngr.save(1, args=ocp.args.PyTreeSave(state(1)))
    mngr.wait_until_finished()
    names = _names(where)
    assert any(n.startswith("1/default/params.w/") for n in names) and not any("ocdbt" in n for n in names)
    restore = ocp.args.PyTreeRestore(
        abstract(state(0)), restore_args=ocp.checkpoint_utils.construct_restore_args(abstract(state(0)))
    )
    assert_same(mngr.restore(1, args=restore), state(1))
    mngr.close()
    local = tmp_path / "zarr"
    s3dlio.download(where + "/", str(local), recursive=True)
    stock = ocp.CheckpointManager(str(local), item_handlers=ocp.PyTreeCheckpointHandler(use_ocdbt=False))
    assert_same(stock.restore(1, args=restore), state(1))  # local path: Orbax's own file driver
    stock.close()
