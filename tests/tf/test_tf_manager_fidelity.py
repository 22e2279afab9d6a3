"""s3dlio_tf's CheckpointManager against tf.train.CheckpointManager on a local directory (the oracle).

The same programs run on both, with only the path changed: a run rewound to an earlier step
(saves 100, 200, 300, then 210, 220), a number saved twice, TensorFlow's keyword arguments.
TensorFlow keeps the saves in save order; so must s3dlio, also for a manager opened later.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = pytest.importorskip("tensorflow")

import s3dlio  # noqa: E402
import s3dlio_tf  # noqa: E402
from s3dlio.checkpoint.retention import steps_to_delete  # noqa: E402
from s3dlio.errors import ConfigError  # noqa: E402


def number(path: str | None) -> int | None:
    """The checkpoint number of a TF prefix (``.../ckpt-210``) or an s3dlio step URI."""
    return None if path is None else int(path.rstrip("/").rsplit("-", 1)[-1])


def manager(which: str, ckpt: Any, where: str, **kwargs: Any) -> Any:
    if which == "tf":
        return tf.train.CheckpointManager(ckpt, where, **kwargs)
    return s3dlio_tf.CheckpointManager(ckpt, where, **kwargs)


def restored(which: str, path: str) -> float:
    fresh = tf.train.Checkpoint(v=tf.Variable(0.0))
    if which == "tf":
        fresh.restore(path).assert_consumed()
    else:
        s3dlio_tf.restore(fresh, path).assert_consumed()
    return float(fresh.v.numpy())


def places(base: str, tmp_path: Path, name: str) -> dict[str, str]:
    return {"tf": str(tmp_path / "oracle" / name), "s3dlio": f"{base}{name}/"}


# -- save order ------------------------------------------------------------------------------------
def test_a_rewound_run_keeps_and_restores_its_last_saves_like_tf(base: str, tmp_path: Path) -> None:
    def run(which: str, where: str) -> dict[str, Any]:
        ckpt = tf.train.Checkpoint(v=tf.Variable(0.0))
        m = manager(which, ckpt, where, max_to_keep=3)
        for step in (100, 200, 300, 210, 220):  # diverged after 300: rewound to 200, trained on
            ckpt.v.assign(float(step))
            m.save(checkpoint_number=step)
        fresh = tf.train.Checkpoint(v=tf.Variable(0.0))
        again = manager(which, fresh, where, max_to_keep=3)
        if which == "tf":
            fresh.restore(again.latest_checkpoint)
        else:
            again.restore_or_initialize()
        return {
            "latest": number(m.latest_checkpoint),
            "kept": [number(c) for c in m.checkpoints],
            "reopened": number(again.latest_checkpoint),
            "restored": float(fresh.v.numpy()),
        }

    expected = {"latest": 220, "kept": [300, 210, 220], "reopened": 220, "restored": 220.0}
    for which, where in places(base, tmp_path, "rewind").items():
        assert run(which, where) == expected, which
    assert s3dlio_tf.latest_checkpoint(f"{base}rewind/") == f"{base}rewind/step-00000220/"
    fresh = tf.train.Checkpoint(v=tf.Variable(0.0))
    s3dlio_tf.restore(fresh, f"{base}rewind/")  # a prefix restores the save made last
    assert float(fresh.v.numpy()) == 220.0


def test_max_to_keep_1_never_deletes_the_save_it_returns(base: str, tmp_path: Path) -> None:
    for which, where in places(base, tmp_path, "keep1").items():
        ckpt = tf.train.Checkpoint(v=tf.Variable(0.0))
        m = manager(which, ckpt, where, max_to_keep=1)
        for step in (100, 200, 300, 210):
            ckpt.v.assign(float(step))
            path = m.save(checkpoint_number=step)
        assert number(path) == 210 and [number(c) for c in m.checkpoints] == [210], which
        assert restored(which, path) == 210.0, which


def test_saving_a_number_again_replaces_it_and_makes_it_latest(base: str, tmp_path: Path) -> None:
    for which, where in places(base, tmp_path, "again").items():
        ckpt = tf.train.Checkpoint(v=tf.Variable(1.0))
        m = manager(which, ckpt, where, max_to_keep=3)
        m.save(checkpoint_number=5)
        m.save(checkpoint_number=6)
        ckpt.v.assign(2.0)
        path = m.save(checkpoint_number=5)
        assert [number(c) for c in m.checkpoints] == [6, 5] and number(m.latest_checkpoint) == 5, which
        assert restored(which, path) == 2.0, which

    ckpt = tf.train.Checkpoint(v=tf.Variable(3.0))  # the module-level save, as Checkpoint.write twice
    s3dlio_tf.save(ckpt, f"{base}w/", step=7)
    ckpt.v.assign(4.0)
    assert restored("s3dlio", s3dlio_tf.save(ckpt, f"{base}w/", step=7)) == 4.0


def test_a_replacement_dying_mid_upload_leaves_the_previous_save_latest(
    base: str, monkeypatch: pytest.MonkeyPatch, data_upload_dies: Callable[[int], None]
) -> None:
    uri = f"{base}crash/"
    ckpt = tf.train.Checkpoint(v=tf.Variable(5.0))
    m = s3dlio_tf.CheckpointManager(ckpt, uri, max_to_keep=3)
    m.save(checkpoint_number=5)
    ckpt.v.assign(6.0)
    m.save(checkpoint_number=6)
    data_upload_dies(100)
    ckpt.v.assign(55.0)
    with pytest.raises(ConnectionResetError):
        m.save(checkpoint_number=5)  # the old 5 is gone, the new one never committed
    monkeypatch.undo()
    assert m.latest_checkpoint == f"{uri}step-00000006/" and m.checkpoints == [f"{uri}step-00000006/"]
    assert restored("s3dlio", uri) == 6.0


def test_retention_keeps_the_step_just_committed_and_follows_save_order() -> None:
    # a rewound run committed 210 after 300: keep_last=1 must not delete what was just saved
    by_number, by_save = [100, 200, 210, 300], [100, 200, 300, 210]
    assert steps_to_delete(by_number, [], keep_last=1, keep_every=None, committed=210) == [100, 200]
    assert steps_to_delete(by_save, [], keep_last=1, keep_every=None) == [100, 200, 300]
    assert steps_to_delete(by_save, [250], keep_last=2, keep_every=None, committed=210) == [100, 200, 250]
    assert steps_to_delete(range(1, 11), [], keep_last=2, keep_every=4) == [1, 2, 3, 5, 6, 7]  # unchanged


# -- TensorFlow's arguments ------------------------------------------------------------------------
def test_checkpoint_name_and_save_options_are_taken(base: str) -> None:
    uri = f"{base}named/"
    ckpt = tf.train.Checkpoint(v=tf.Variable(8.0))
    m = s3dlio_tf.CheckpointManager(ckpt, uri, 2, None, "model")  # TF's positional order
    path = m.save(options=tf.train.CheckpointOptions())
    assert path == f"{uri}step-00000001/"
    assert any("/rank0-model.index." in u for u in s3dlio.list(path, recursive=True))  # model.index
    assert restored("s3dlio", path) == 8.0
    with pytest.raises(ConfigError, match="checkpoint_name='a/b'"):
        s3dlio_tf.CheckpointManager(ckpt, uri, checkpoint_name="a/b")


def test_keep_checkpoint_every_n_hours_is_refused_naming_keep_every(base: str) -> None:
    ckpt = tf.train.Checkpoint(v=tf.Variable(0.0))
    with pytest.raises(ConfigError, match="keep_checkpoint_every_n_hours=1.0.*keep_every"):
        s3dlio_tf.CheckpointManager(ckpt, f"{base}h/", keep_checkpoint_every_n_hours=1.0)
    s3dlio_tf.CheckpointManager(ckpt, f"{base}h/", keep_checkpoint_every_n_hours=None)  # TF's default


def test_tfrecord_compression_type_bytes_and_buffer_size_checked(s3_bucket: str, tmp_path: Path) -> None:
    local = str(tmp_path / "z.tfrecord")
    with tf.io.TFRecordWriter(local, "GZIP") as writer:
        for i in range(3):
            writer.write(b"r%d" % i)
    uri = f"{s3_bucket}z.tfrecord"
    with open(local, "rb") as f:
        data = f.read()
    assert gzip.decompress(data)  # really compressed
    s3dlio.put(uri, data)
    want = [bytes(r.numpy()) for r in tf.data.TFRecordDataset(local, compression_type=b"GZIP")]
    assert [bytes(r.numpy()) for r in s3dlio_tf.TFRecordDataset(uri, compression_type=b"GZIP")] == want
    names = tf.data.Dataset.from_tensor_slices([uri])
    graph = names.flat_map(lambda f: s3dlio_tf.TFRecordDataset(f, compression_type=b"GZIP", buffer_size=-1))
    assert [bytes(r) for r in graph.as_numpy_iterator()] == want
    for bad in (-5, 1.5):
        with pytest.raises(ConfigError, match=f"buffer_size={bad}"):
            s3dlio_tf.TFRecordDataset(uri, compression_type="GZIP", buffer_size=bad)
    with pytest.raises(ConfigError, match="compression_type=5"):
        s3dlio_tf.TFRecordDataset(uri, compression_type=5)  # type: ignore[arg-type]
