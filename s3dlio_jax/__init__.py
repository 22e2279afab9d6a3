"""JAX on s3dlio: Grain data sources, per-process array iterables, Orbax checkpoints.

>>> from s3dlio_jax import S3DataSource, CheckpointManager, save_args     # doctest: +SKIP
>>> source = S3DataSource.from_prefix("s3://bucket/train/", transform=decode)
>>> loader = grain.DataLoader(data_source=source, sampler=grain.samplers.IndexSampler(
...     len(source), shard_options=grain.sharding.ShardByJaxProcess(), shuffle=True, seed=0),
...     worker_count=8)
>>> mngr = ocp.CheckpointManager("s3://bucket/ckpt/", options=ocp.CheckpointManagerOptions(max_to_keep=3))
>>> mngr.save(step, args=ocp.args.StandardSave(params))    # Orbax's own API: the import set it up

The data names import without JAX, Orbax or Grain (Grain's worker processes import only
them); the checkpoint names load Orbax on first use. Importing this package makes Orbax's
standard API work on ``s3://`` and ``az://`` (:func:`enable_orbax`, run when Orbax is imported).
"""

from __future__ import annotations

from typing import Any

from s3dlio.fsspec_registry import register_lazily

from .data import S3DataSource, S3Iterable, load_npy, stack, to_array, to_bytes
from .orbax_io import enable_orbax, enable_orbax_after_import

# fsspec's s3:// and az:// (etils.epath, so Orbax's paths) reach s3dlio from import on; the
# filesystem classes load on first use. Orbax's standard API on s3:// and az:// is set up as
# soon as Orbax is imported (enable_orbax), without importing it here.
register_lazily()
enable_orbax_after_import()

_CHECKPOINT = (
    "ArrayTreeHandler",
    "ArrayTreeRestore",
    "ArrayTreeSave",
    "CheckpointManager",
    "LoaderStateHandler",
    "LoaderStateRestore",
    "LoaderStateSave",
    "manager_options",
    "restore_args",
    "save_args",
)

__all__ = [
    "S3DataSource",
    "S3Iterable",
    "enable_orbax",
    "load_npy",
    "stack",
    "to_array",
    "to_bytes",
    *_CHECKPOINT,
]


def __getattr__(name: str) -> Any:
    if name in _CHECKPOINT:
        try:
            from . import checkpoint
        except ImportError as exc:
            raise ImportError(
                f"s3dlio_jax.{name} needs JAX and Orbax: pip install 's3dlio[jax]' ({exc})"
            ) from exc
        return getattr(checkpoint, name)
    raise AttributeError(f"module 's3dlio_jax' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
