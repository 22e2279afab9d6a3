"""Child processes for tests/jax/test_orbax_standard.py (run as ``python orbax_child.py MODE ...``).

Each mode is what a user program does, written as Orbax's documentation shows:

- ``stock-save DIR`` / ``stock-restore DIR``: stock Orbax on a local directory; s3dlio is never
  imported (the module check at the end proves it).
- ``killed-save DIR [MODE]``: saves step 1, then dies (``os._exit``) in the middle of step 2's array
  writes; ``MODE``: an Orbax ``AtomicityMode`` value given in ``AtomicityOptions``.
- ``sharded DIR``: imports s3dlio_jax before Orbax; 8 CPU devices; saves an array sharded over a (4, 2) mesh and restores it
  into (8,) and fully replicated shardings.
- ``multi DIR PORT INDEX``: one of two processes (``jax.distributed.initialize``, 4 CPU devices
  each); saves a global array, each process writing its own shards, then restores it
  (the test process then restores it whole, alone).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

MODE = sys.argv[1]
DEVICES = {"sharded": 8, "multi": 4}.get(MODE, 1)
os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={DEVICES}"
os.environ["JAX_PLATFORMS"] = "cpu"

if MODE == "sharded":  # s3dlio_jax first: Orbax is set up when it is imported afterwards
    import s3dlio_jax

    assert not s3dlio_jax.orbax_io.is_enabled()

import jax  # noqa: E402
import orbax.checkpoint as ocp  # noqa: E402

if not MODE.startswith("stock"):
    import s3dlio_jax  # the one documented import: Orbax on s3:// and az://

    assert s3dlio_jax.orbax_io.is_enabled()

from jax.sharding import Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

GLOBAL = np.arange(64 * 48, dtype=np.float32).reshape(64, 48) / 7


def tree(step: int) -> dict[str, Any]:
    """The stock-interop and killed-save state (numpy and jax leaves, several dtypes)."""
    return {
        "w": jax.numpy.asarray(GLOBAL * step),
        "b": jax.numpy.arange(5, dtype=jax.numpy.int32) + step,
        "h": jax.numpy.full((3, 3), step, jax.numpy.bfloat16),
    }


def abstract(state: Any) -> Any:
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)


def same(got: Any, want: Any) -> None:
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
        assert np.array_equal(np.asarray(a), np.asarray(b)), "values differ"


def stock(where: str, save: bool) -> None:
    mngr = ocp.CheckpointManager(where, options=ocp.CheckpointManagerOptions(max_to_keep=2))
    if save:
        mngr.save(3, args=ocp.args.StandardSave(tree(3)))
        mngr.wait_until_finished()
    else:
        assert mngr.latest_step() == 3, mngr.all_steps()
        same(mngr.restore(3, args=ocp.args.StandardRestore(abstract(tree(0)))), tree(3))
    mngr.close()
    assert not any(name.startswith("s3dlio") for name in sys.modules), "stock Orbax imported s3dlio"


def killed_save(where: str, atomicity: str = "") -> None:
    """``atomicity``: "" (Orbax's defaults) or an ``AtomicityMode`` value (``auto``, ``atomic_rename``)."""
    import s3dlio

    options = (
        {"atomicity_options": ocp.options.AtomicityOptions(mode=ocp.options.AtomicityMode(atomicity))}
        if atomicity
        else {}
    )
    mngr = ocp.CheckpointManager(where, options=ocp.CheckpointManagerOptions(max_to_keep=3, **options))
    mngr.save(1, args=ocp.args.StandardSave(tree(1)))
    mngr.wait_until_finished()
    put = s3dlio.put

    def dying_put(uri: str, data: Any, **kwargs: Any) -> None:
        put(uri, data, **kwargs)
        if "/2/" in uri and "/d/" in uri:  # step 2's first array data file is written: die now
            os._exit(17)

    s3dlio.put = dying_put
    mngr.save(2, args=ocp.args.StandardSave(tree(2)))
    mngr.wait_until_finished()
    raise AssertionError("the save of step 2 should have killed this process")


def sharded(where: str) -> None:
    devices = np.array(jax.devices())
    assert devices.size == 8
    saved_sharding = NamedSharding(Mesh(devices.reshape(4, 2), ("x", "y")), P("x", "y"))
    x = jax.device_put(GLOBAL, saved_sharding)
    assert len(x.addressable_shards) == 8
    state = {
        "x": x,
        "bias": jax.device_put(np.arange(8, dtype=np.int32), NamedSharding(saved_sharding.mesh, P())),
    }
    mngr = ocp.CheckpointManager(where, options=ocp.CheckpointManagerOptions(max_to_keep=1))
    mngr.save(5, args=ocp.args.StandardSave(state))
    mngr.wait_until_finished()

    mesh8 = Mesh(devices, ("d",))
    for spec in (P("d"), P()):
        target = {
            "x": jax.ShapeDtypeStruct(GLOBAL.shape, GLOBAL.dtype, sharding=NamedSharding(mesh8, spec)),
            "bias": jax.ShapeDtypeStruct((8,), np.int32, sharding=NamedSharding(mesh8, spec)),
        }
        got = mngr.restore(mngr.latest_step(), args=ocp.args.StandardRestore(target))
        assert got["x"].sharding == target["x"].sharding
        assert np.array_equal(np.asarray(got["x"]), GLOBAL)
        assert np.array_equal(np.asarray(got["bias"]), np.arange(8))
        if spec == P("d"):
            assert all(s.data.shape == (8, 48) for s in got["x"].addressable_shards)
        else:
            assert got["x"].is_fully_replicated
    mngr.close()
    print("sharded ok")


def multi(where: str, port: str, index: str) -> None:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=int(index))
    assert jax.process_count() == 2 and jax.device_count() == 8 and jax.local_device_count() == 4
    mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("x", "y"))
    sharding = NamedSharding(mesh, P("x", "y"))
    x = jax.make_array_from_callback(GLOBAL.shape, sharding, lambda idx: GLOBAL[idx])
    assert not x.is_fully_addressable
    mngr = ocp.CheckpointManager(where, options=ocp.CheckpointManagerOptions(max_to_keep=2))
    mngr.save(1, args=ocp.args.StandardSave({"x": x}))
    mngr.wait_until_finished()
    target = {
        "x": jax.ShapeDtypeStruct(GLOBAL.shape, GLOBAL.dtype, sharding=NamedSharding(mesh, P(None, "y")))
    }
    got = mngr.restore(mngr.latest_step(), args=ocp.args.StandardRestore(target))["x"]
    for shard in got.addressable_shards:
        assert np.array_equal(np.asarray(shard.data), GLOBAL[shard.index])
    mngr.close()
    print(f"multi {index} ok")


if __name__ == "__main__":
    args = sys.argv[2:]
    if MODE in ("stock-save", "stock-restore"):
        stock(args[0], save=MODE == "stock-save")
    elif MODE == "killed-save":
        killed_save(*args)
    elif MODE == "sharded":
        sharded(args[0])
    elif MODE == "multi":
        multi(*args)
    else:
        raise SystemExit(f"unknown mode {MODE}")
