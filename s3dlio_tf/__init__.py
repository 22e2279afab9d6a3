"""TensorFlow on s3dlio: ``tf.data`` sources and ``tf.train.Checkpoint``/Keras checkpoints.

>>> import s3dlio_tf                                                     # doctest: +SKIP
>>> ds = s3dlio_tf.TFRecordDataset("s3://bucket/train/", num_parallel_reads=8)
>>> ds = ds.map(parse).shuffle(10_000).batch(256)
>>> path = s3dlio_tf.save(tf.train.Checkpoint(model=model), "s3://bucket/run1/")
>>> s3dlio_tf.restore(tf.train.Checkpoint(model=model), path).assert_consumed()
"""

from __future__ import annotations

try:
    import tensorflow  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("s3dlio_tf needs TensorFlow: pip install 's3dlio[tf]'") from exc

from s3dlio.fsspec_registry import register_lazily

from .checkpoint import CheckpointManager, latest_checkpoint, load_weights, restore, save, save_weights
from .data import TFRecordDataset, dataset, list_files

# fsspec's s3:// and az:// reach s3dlio from import on; the filesystem classes load on first use.
register_lazily()

__all__ = [
    "CheckpointManager",
    "TFRecordDataset",
    "dataset",
    "latest_checkpoint",
    "list_files",
    "load_weights",
    "restore",
    "save",
    "save_weights",
]
