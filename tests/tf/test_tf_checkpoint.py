"""s3dlio_tf checkpoints under real TensorFlow/Keras, on the moto S3 server and local files.

Round trips are exact (every variable, optimizer slots included); latest/retention follow
the store; a save that fails mid-upload leaves the previous checkpoint as the latest.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import s3dlio  # noqa: E402
import s3dlio_tf  # noqa: E402
from s3dlio.checkpoint import CheckpointNotFoundError  # noqa: E402


def build(seed: int) -> tuple[Any, Any, tf.train.Checkpoint]:
    """A small Keras model and Adam with their slots built, in a tf.train.Checkpoint."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    optimizer = keras.optimizers.Adam(0.01)
    optimizer.build(model.trainable_variables)
    return model, optimizer, tf.train.Checkpoint(model=model, optimizer=optimizer, step=tf.Variable(0))


def train(model: Any, optimizer: Any, steps: int = 2) -> None:
    model.compile(optimizer=optimizer, loss="mse")
    rng = np.random.default_rng(steps)
    model.fit(rng.standard_normal((8, 4)), rng.standard_normal((8, 1)), epochs=steps, verbose=0)


def values(ckpt: tf.train.Checkpoint) -> list[np.ndarray]:
    return [v.numpy() for v in [*ckpt.model.variables, *ckpt.optimizer.variables, ckpt.step]]


def assert_equal(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


# -- tf.train.Checkpoint ------------------------------------------------------------------------------
def test_checkpoint_round_trip_is_exact(base: str) -> None:
    model, optimizer, ckpt = build(0)
    train(model, optimizer)
    ckpt.step.assign(42)
    path = s3dlio_tf.save(ckpt, f"{base}run/")
    assert path == f"{base}run/step-00000001/" and int(ckpt.save_counter) == 1
    assert s3dlio_tf.latest_checkpoint(f"{base}run/") == path

    _, _, fresh = build(1)
    assert not np.array_equal(values(fresh)[0], values(ckpt)[0])
    status = s3dlio_tf.restore(fresh, path)
    status.assert_consumed()
    assert_equal(values(fresh), values(ckpt))
    assert int(fresh.save_counter) == 1  # so the next save is step 2, as with Checkpoint.save
    _, _, from_prefix = build(2)
    s3dlio_tf.restore(from_prefix, f"{base}run/").assert_consumed()  # a prefix restores its latest
    assert_equal(values(from_prefix), values(ckpt))


@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")  # inside Keras
@pytest.mark.parametrize("field", ["name", "prefix"])
def test_a_planted_manifest_never_writes_outside_local_dir(tmp_path: Path, field: str) -> None:
    """Whoever can write the checkpoint's bucket could name a shard (or the prefix) with a path."""
    import json

    _, _, ckpt = build(0)
    path = s3dlio_tf.save(ckpt, f"file://{tmp_path}/store/run/")
    doc = json.loads(bytes(s3dlio.get(path + "manifest.json")))
    if field == "name":
        doc["shards"][0]["name"] = "../escaped"
    else:
        doc["metadata"]["prefix"] = "../escaped"
    s3dlio.put(path + "manifest.json", json.dumps(doc).encode())
    local = tmp_path / "restore" / "here"
    with pytest.raises(s3dlio.checkpoint.CheckpointError, match="escaped"):
        s3dlio_tf.restore(build(1)[2], path, local_dir=str(local))
    assert not list((tmp_path / "restore").glob("escaped*"))


def test_keras_weights_round_trip(base: str) -> None:
    model, optimizer, _ = build(0)
    train(model, optimizer, steps=1)
    s3dlio_tf.save_weights(model, f"{base}weights/final.weights.h5")
    other, _, _ = build(3)
    s3dlio_tf.load_weights(other, f"{base}weights/final.weights.h5")
    assert_equal([v.numpy() for v in other.variables], [v.numpy() for v in model.variables])
    with pytest.raises(s3dlio.NotFoundError, match="nothing.weights.h5"):
        s3dlio_tf.load_weights(other, f"{base}weights/nothing.weights.h5")


def test_latest_after_three_saves_and_restore_from_empty_prefix(s3_bucket: str) -> None:
    _, _, ckpt = build(0)
    saved = []
    for step in (10, 20, 30):
        ckpt.step.assign(step)
        saved.append(s3dlio_tf.save(ckpt, f"{s3_bucket}run/", step=step))
    assert s3dlio_tf.latest_checkpoint(f"{s3_bucket}run/") == saved[-1] == f"{s3_bucket}run/step-00000030/"
    _, _, fresh = build(1)
    s3dlio_tf.restore(fresh, saved[1]).assert_consumed()  # an older step on request
    assert int(fresh.step) == 20

    empty = f"{s3_bucket}empty/"
    assert s3dlio_tf.latest_checkpoint(empty) is None
    with pytest.raises(CheckpointNotFoundError, match=f"{empty}: no complete checkpoint"):
        s3dlio_tf.restore(fresh, empty)


def test_manager_keeps_max_to_keep_and_restores_or_initializes(s3_bucket: str) -> None:
    _, _, ckpt = build(0)
    uri = f"{s3_bucket}managed/"
    initialized = []
    manager = s3dlio_tf.CheckpointManager(ckpt, uri, max_to_keep=2, init_fn=lambda: initialized.append(1))
    assert manager.restore_or_initialize() is None and initialized == [1]
    for step in range(1, 5):
        ckpt.step.assign(step * 100)
        assert manager.save() == f"{uri}step-{step:08d}/"
    assert manager.checkpoints == [f"{uri}step-00000003/", f"{uri}step-00000004/"]
    assert manager.latest_checkpoint == f"{uri}step-00000004/"
    assert not any("step-00000001" in u or "step-00000002" in u for u in s3dlio.list(uri, recursive=True))

    _, _, fresh = build(1)
    again = s3dlio_tf.CheckpointManager(fresh, uri, max_to_keep=2)
    assert again.restore_or_initialize() == f"{uri}step-00000004/"
    assert int(fresh.step) == 400 and int(fresh.save_counter) == 4
    assert again.save() == f"{uri}step-00000005/"  # numbering continues after a restart


def test_manager_checkpoint_interval(tmp_path: Path) -> None:
    _, _, ckpt = build(0)
    counter = tf.Variable(0, dtype=tf.int64)
    manager = s3dlio_tf.CheckpointManager(
        ckpt, f"file://{tmp_path}/", max_to_keep=None, step_counter=counter, checkpoint_interval=10
    )
    saved = []
    for step in (0, 5, 10, 12, 25):
        counter.assign(step)
        saved.append(manager.save() is not None)
    assert saved == [True, False, True, False, True]


def test_save_interrupted_mid_upload_leaves_latest_alone(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch, data_upload_dies: Callable[[int], None]
) -> None:
    _, _, ckpt = build(0)
    uri = f"{s3_bucket}run/"
    ckpt.step.assign(1)
    first = s3dlio_tf.save(ckpt, uri)

    data_upload_dies(1000)
    ckpt.step.assign(2)
    with pytest.raises(ConnectionResetError):
        s3dlio_tf.save(ckpt, uri)
    monkeypatch.undo()
    assert s3dlio_tf.latest_checkpoint(uri) == first
    _, _, fresh = build(1)
    s3dlio_tf.restore(fresh, uri).assert_consumed()
    assert int(fresh.step) == 1
