"""Orbax CheckpointManager on object storage through s3dlio (moto ``s3://``) and on files:
pytree round trips, steps and retention, and a data iterator's state saved next to the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

# "jax.numpy", not "jax": this directory (tests/jax) would pass for an empty "jax" package without JAX.
pytest.importorskip("jax.numpy")
import jax  # noqa: E402

ocp = pytest.importorskip("orbax.checkpoint")
grain = pytest.importorskip("grain")
from absl import flags  # noqa: E402 - Grain reads absl flags; outside absl.app.run mark them parsed

flags.FLAGS.mark_as_parsed()

import jax.numpy as jnp  # noqa: E402

import s3dlio  # noqa: E402
import s3dlio.fsspec  # noqa: E402
from s3dlio.checkpoint import CheckpointCorruptError  # noqa: E402
from s3dlio_jax import (  # noqa: E402
    CheckpointManager,
    S3DataSource,
    S3Iterable,
    manager_options,
    restore_args,
    save_args,
)


def state(step: int) -> dict[str, Any]:
    """A small model-like pytree: several dtypes, a scalar, an empty array, nested containers."""
    return {
        "params": {
            "w": jnp.arange(12, dtype=jnp.float32).reshape(3, 4) * step + 0.5,
            "b": jnp.full((4,), step, jnp.bfloat16),
        },
        "opt": [jnp.int8(-step), (jnp.zeros((2, 0)), jnp.array([True, step % 2 == 0]))],
        "step": jnp.int32(step),
    }


def assert_same(got: Any, want: Any) -> None:
    assert str(jax.tree_util.tree_structure(got)) == str(jax.tree_util.tree_structure(want))
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        assert isinstance(a, jax.Array)
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(np.asarray(a), np.asarray(b))


@pytest.fixture(params=["s3", "az", "file"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A checkpoint directory: on moto, on Azurite, or a local path."""
    if request.param in ("s3", "az"):
        return request.getfixturevalue("s3_bucket" if request.param == "s3" else "az_container") + "ckpt/run1"
    return str(tmp_path / "ckpt" / "run1")


def test_round_trip_steps_and_retention(where: str) -> None:
    mngr = CheckpointManager(where, max_to_keep=2)
    for step in (1, 2, 3):
        mngr.save(step, args=save_args(state(step)))
    mngr.wait_until_finished()
    assert mngr.all_steps() == [2, 3] and mngr.latest_step() == 3
    restored = mngr.restore(3, args=restore_args(state(0)))
    assert_same(restored.state, state(3))
    untyped = mngr.restore(2, args=restore_args()).state  # no target: nested dicts and lists
    assert untyped["params"]["w"].tolist() == state(2)["params"]["w"].tolist()
    assert isinstance(untyped["opt"][1], list) and untyped["opt"][1][0].shape == (2, 0)
    meta = mngr.item_metadata(3).state
    assert meta["params"]["b"] == jax.ShapeDtypeStruct((4,), jnp.bfloat16)
    mngr.close()

    listed = [u for u in s3dlio.list(where + "/") if u != where + "/"]  # not fsspec mkdir's folder marker
    assert sorted(u.rstrip("/").rsplit("/", 1)[-1] for u in listed) == ["2", "3"]  # step 1 pruned
    if "://" in where:  # object storage: committed in place: a commit file, no renamed temporary directory
        assert s3dlio.exists(f"{where}/3/commit_success.txt")
    again = CheckpointManager(where)
    assert again.all_steps() == [2, 3] and again.latest_step() == 3
    again.close()


def test_plain_orbax_manager_after_register(s3_bucket: str) -> None:
    s3dlio.fsspec.register()
    mngr = ocp.CheckpointManager(
        f"{s3_bucket}plain", options=manager_options(max_to_keep=1, enable_async_checkpointing=False)
    )
    mngr.save(7, args=save_args(state(7)))
    mngr.save(8, args=save_args(state(8)))
    assert mngr.all_steps() == [8]
    assert_same(mngr.restore(8, args=restore_args(state(0))).state, state(8))
    mngr.close()


def test_numpy_and_python_leaves_keep_their_types(tmp_path: Path) -> None:
    tree: dict[str, Any] = {
        "np": np.arange(5, dtype=np.float64) / 3,
        "i": np.int64(2**40),
        "n": 7,
        "x": 0.1,
        "j": jnp.ones(2),
    }
    mngr = CheckpointManager(tmp_path / "ck")
    mngr.save(0, args=save_args(tree))
    mngr.wait_until_finished()
    out = mngr.restore(0, args=restore_args(tree)).state
    assert (
        out["np"].dtype == np.float64 and np.array_equal(out["np"], tree["np"]) and out["np"].flags.writeable
    )
    assert out["i"] == 2**40 and isinstance(out["i"], np.int64)
    assert (out["n"], out["x"]) == (7, 0.1) and isinstance(out["n"], int)
    assert isinstance(out["j"], jax.Array)
    with pytest.raises(TypeError, match="key_data"):
        mngr.save(1, args=save_args({"rng": jax.random.key(0)}))
    for text in (np.array(["ab", "c"]), np.array([b"x"]), np.array([{}], dtype=object)):
        with pytest.raises(TypeError, match="StandardSave or ocp.args.JsonSave"):  # bytes are not values
            mngr.save(2, args=save_args({"t": text}))
    other_order = {"f": np.array([1.0, 2.5, -3.0], ">f4"), "i": np.array([1, 256], ">i8"), "s": np.float64(2.5)}
    other_order["s"] = other_order["s"].astype(">f8")
    mngr.save(3, args=save_args(other_order))
    mngr.wait_until_finished()
    back = mngr.restore(3, args=restore_args(other_order)).state
    for key, want in other_order.items():  # the values, in this machine's byte order
        assert np.array_equal(back[key], want) and back[key].dtype == want.dtype.newbyteorder("="), key
    mngr.close()


def test_shardings_and_bad_targets(s3_bucket: str) -> None:
    mngr = CheckpointManager(f"{s3_bucket}shard")
    mngr.save(1, args=save_args(state(1)))
    mngr.wait_until_finished()
    device = jax.sharding.SingleDeviceSharding(jax.devices()[-1])
    out = mngr.restore(1, args=restore_args(state(0), shardings=device)).state
    assert out["params"]["w"].sharding == device
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), state(0))
    assert_same(mngr.restore(1, args=restore_args(abstract)).state, state(1))
    with pytest.raises(ValueError, match="does not match the saved one"):
        mngr.restore(1, args=restore_args({"params": state(0)["params"]}))
    s3dlio.put(f"{s3_bucket}shard/1/state/leaves/00000.bin", b"\0" * 8)  # damage one leaf
    with pytest.raises(CheckpointCorruptError, match="damaged"):
        mngr.restore(1, args=restore_args(state(0)))
    mngr.close()


# -- the data iterator's state next to the model ------------------------------------------------------
class FirstValue(grain.transforms.Map):  # type: ignore[name-defined,misc]
    def map(self, element: np.ndarray) -> int:
        return int(element[0])


@pytest.fixture
def dataset(s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("S3DLIO_CACHE_DIR", str(tmp_path / "cache"))
    from s3dlio.formats.npy import npy_bytes

    base = f"{s3_bucket}data/"
    s3dlio.put_many([(f"{base}{i:02d}.npy", npy_bytes(np.full(2, i, np.int32))) for i in range(20)])
    return base


def grain_iterator(prefix: str) -> Any:
    from s3dlio_jax import load_npy

    source = S3DataSource.from_prefix(prefix, transform=load_npy)
    sampler = grain.samplers.IndexSampler(len(source), shuffle=True, seed=5, num_epochs=1)
    return iter(grain.DataLoader(data_source=source, sampler=sampler, operations=[FirstValue()]))


def test_grain_iterator_state_continues_after_restore(dataset: str, s3_bucket: str) -> None:
    where = f"{s3_bucket}ckpt/grain"
    it = grain_iterator(dataset)
    before = [next(it) for _ in range(7)]
    mngr = CheckpointManager(where)
    mngr.save(7, args=save_args(state(7), data_iter=it))
    mngr.wait_until_finished()
    rest = list(it)
    assert sorted(before + rest) == list(range(20))

    fresh = grain_iterator(dataset)
    restored = CheckpointManager(where).restore(None, args=restore_args(state(0), data_iter=fresh))
    assert_same(restored.state, state(7))
    assert list(fresh) == rest  # continues exactly where the saved iterator stopped
    assert s3dlio.exists(f"{where}/7/data_iter/process_0-of-1.json")
    mngr.close()


def test_s3iterable_state_continues_after_restore(dataset: str, tmp_path: Path) -> None:
    from s3dlio_jax import load_npy

    def make() -> S3Iterable:
        return S3Iterable.from_prefix(dataset, transform=load_npy, batch_size=3, shuffle=True, seed=2)

    it = make()
    stream = iter(it)
    head = [next(stream) for _ in range(2)]
    mngr = CheckpointManager(tmp_path / "ckpt")
    mngr.save(2, args=save_args(state(2), data_iter=it))
    mngr.wait_until_finished()
    rest = [b.tolist() for b in stream]
    fresh = make()
    mngr.restore(2, args=restore_args(state(0), data_iter=fresh))
    assert [b.tolist() for b in fresh] == rest
    seen = [int(r[0]) for r in np.concatenate(head)] + [r[0] for b in rest for r in b]
    assert sorted(seen) == list(range(20))
    mngr.close()


def test_a_crashed_save_is_never_a_step(s3_bucket: str) -> None:
    where = f"{s3_bucket}ckpt/crash"
    mngr = CheckpointManager(where)
    mngr.save(1, args=save_args(state(1)))
    mngr.close()
    s3dlio.put(f"{where}/2/state/leaves/00000.bin", b"half")  # a save of step 2 that died: no commit file
    again = CheckpointManager(where)
    assert again.all_steps() == [1] and again.latest_step() == 1
    again.close()
    cleaning = CheckpointManager(where, options=ocp.CheckpointManagerOptions(cleanup_tmp_directories=True))
    assert not s3dlio.list(f"{where}/2/", recursive=True)  # leftovers deleted when the manager starts
    cleaning.save(2, args=save_args(state(2)))
    cleaning.wait_until_finished()
    assert cleaning.all_steps() == [1, 2]
    cleaning.close()
