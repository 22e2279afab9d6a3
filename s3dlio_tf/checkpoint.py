"""``tf.train.Checkpoint`` and Keras weights on object storage, through the s3dlio checkpoint store.

TensorFlow 2.21's filesystem no longer speaks ``s3://``, so a save writes the checkpoint
into a local temporary directory (``Checkpoint.write``) and uploads its files as one step of
:class:`s3dlio.checkpoint.CheckpointStore`: checksummed, with the manifest written last, so
a save that dies mid-upload never becomes the latest. A restore downloads a step (every
file verified) and calls ``Checkpoint.restore`` on the local copy. Every function and the
manager take ``client=`` (an :class:`s3dlio.Client`): the settings of their requests.

>>> ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer)        # doctest: +SKIP
>>> path = s3dlio_tf.save(ckpt, "s3://bucket/run1/")                     # .../step-00000001/
>>> s3dlio_tf.restore(ckpt, s3dlio_tf.latest_checkpoint("s3://bucket/run1/")).assert_consumed()
"""

from __future__ import annotations

import contextlib
import mmap
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import tensorflow as tf

import s3dlio
from s3dlio.checkpoint import CheckpointError, CheckpointReader, CheckpointStore, layout
from s3dlio.client import settings_of
from s3dlio.errors import ConfigError
from s3dlio.uri import parse

if TYPE_CHECKING:
    from collections.abc import Buffer

__all__ = ["CheckpointManager", "latest_checkpoint", "load_weights", "restore", "save", "save_weights"]

FRAMEWORK = "tensorflow"
_PREFIX = "ckpt"  # the checkpoint's file prefix inside a step: ckpt.index, ckpt.data-00000-of-00001


def _file_shard(path: str) -> Buffer:
    """A local file as a shard buffer: a read-only map, so uploading copies nothing in Python."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return b""
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def _release(buffers: Mapping[str, Any]) -> None:
    for buffer in buffers.values():
        if isinstance(buffer, mmap.mmap):
            with contextlib.suppress(BufferError):  # still viewed somewhere: the GC closes it
                buffer.close()


def _store(uri: str, keep_last: int | None = None, keep_every: int | None = None,
           client: s3dlio.Client | None = None) -> CheckpointStore:  # fmt: skip
    # One uploader: a TF checkpoint file set is complete on its own (TF gathers distributed
    # variables into it), so it is one shard set of rank 0 whatever the job's size.
    return CheckpointStore(uri, rank=0, world_size=1, framework=FRAMEWORK, keep_last=keep_last,
                           keep_every=keep_every, client=client)  # fmt: skip


def _save(store: CheckpointStore, checkpoint: tf.train.Checkpoint, step: int | None,
          metadata: Mapping[str, Any] | None, chief: bool) -> str:  # fmt: skip
    counter = checkpoint.save_counter  # as Checkpoint.save: counts every save, names it by default
    counter.assign_add(1)
    step = int(counter.numpy()) if step is None else int(step)
    meta = {**dict(metadata or {}), "tensorflow": tf.__version__, "prefix": _PREFIX}
    with tempfile.TemporaryDirectory(prefix="s3dlio-tf-save-") as tmp:
        checkpoint.write(os.path.join(tmp, _PREFIX))  # every worker writes (TF collectives)
        if chief:
            shards = {name: _file_shard(os.path.join(tmp, name)) for name in sorted(os.listdir(tmp))}
            try:
                store.save(step, shards, meta)
            finally:
                _release(shards)
    return store.step_uri(step)


def save(checkpoint: tf.train.Checkpoint, uri_prefix: str, step: int | None = None, *,
         metadata: Mapping[str, Any] | None = None, chief: bool = True,
         client: s3dlio.Client | None = None) -> str:  # fmt: skip
    """Save ``checkpoint`` under ``uri_prefix`` as one step; returns the step's URI.

    Like ``Checkpoint.save``, it increments ``checkpoint.save_counter`` and, without
    ``step``, numbers the checkpoint by it. The step becomes visible to
    :func:`latest_checkpoint` only when every file is uploaded. In multi-worker training
    call it on every worker with ``chief=False`` on all but the chief (only the chief uploads).
    """
    return _save(_store(uri_prefix, client=client), checkpoint, step, metadata, chief)


def _split(uri: str) -> tuple[str, int | None]:
    """(prefix, step) of a step URI (``.../step-00000003/``); (uri, None) for a prefix."""
    parsed = parse(uri)
    head, _, last = parsed.key.rstrip("/").rpartition("/")
    step = layout.parse_step(last) if last else None
    if step is None:
        return uri, None
    return str(parsed.with_key(head + "/" if head else "")), step


def latest_checkpoint(uri_prefix: str, *, client: s3dlio.Client | None = None) -> str | None:
    """The URI of the newest complete checkpoint under ``uri_prefix``, or None."""
    reader = CheckpointReader(uri_prefix, client=client)
    step = reader.latest_step()
    return None if step is None else reader.step_uri(step)


def _local_dir(checkpoint: tf.train.Checkpoint) -> str:
    """A directory that lives as long as ``checkpoint``: variables created after the restore
    (optimizer slots, lazily built layers) are restored later, from these files."""
    path = tempfile.mkdtemp(prefix="s3dlio-tf-restore-")
    weakref.finalize(checkpoint, shutil.rmtree, path, True)
    return path


def restore(
    checkpoint: tf.train.Checkpoint, uri: str, *, local_dir: str | None = None, client: s3dlio.Client | None = None
) -> Any:
    """Restore ``checkpoint`` from a step URI, or from the latest step under a prefix.

    Returns TensorFlow's load status (``assert_consumed()``, ``expect_partial()``). Every
    file is checksummed before TensorFlow reads any; the files stay in ``local_dir``
    (default: a temporary directory removed with ``checkpoint``) for deferred restores.
    """
    root, step = _split(uri)
    reader = CheckpointReader(root, client=client)
    manifest = reader.manifest(step)  # CheckpointNotFoundError names the URI when there is none
    where = reader.step_uri(manifest.step)
    if manifest.framework != FRAMEWORK:
        raise CheckpointError(
            f"{where}: saved by {manifest.framework!r}, not s3dlio_tf; restore it with that framework's loader"
        )
    prefix = str(manifest.metadata.get("prefix", _PREFIX))
    if os.path.basename(prefix) != prefix or prefix in ("", ".", ".."):  # a file name in local_dir, no path
        raise CheckpointError(f"{where}: manifest names checkpoint prefix {prefix!r}, not a file name")
    files = reader.load(manifest.step)  # shard names are checked file names (CheckpointCorruptError)
    directory = local_dir or _local_dir(checkpoint)
    os.makedirs(directory, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)
    return checkpoint.restore(os.path.join(directory, prefix))


class CheckpointManager:
    """``tf.train.CheckpointManager`` with an object-storage ``directory`` (``s3://bucket/run1/``).

    ``max_to_keep`` newest checkpoints are kept (None keeps all; ``keep_every`` also keeps
    steps that are multiples of it). ``step_counter``/``checkpoint_interval`` skip saves as
    TensorFlow's manager does. State lives in the store, not in a local ``checkpoint`` file,
    so every process sees the same :attr:`checkpoints`.
    """

    def __init__(
        self,
        checkpoint: tf.train.Checkpoint,
        directory: str,
        max_to_keep: int | None = 5,
        *,
        keep_every: int | None = None,
        step_counter: Any = None,
        checkpoint_interval: int | None = None,
        init_fn: Callable[[], Any] | None = None,
        chief: bool = True,
        client: s3dlio.Client | None = None,
    ) -> None:
        if checkpoint_interval is not None and step_counter is None:
            raise ConfigError("checkpoint_interval= needs step_counter= (the variable that counts steps)")
        self._checkpoint = checkpoint
        self._store = _store(directory, max_to_keep, keep_every, client)
        self._client = client
        self._step_counter = step_counter
        self._interval = checkpoint_interval
        self._init_fn = init_fn
        self._chief = chief
        self._last_step: int | None = None

    @property
    def directory(self) -> str:
        return self._store.uri

    @property
    def checkpoint(self) -> tf.train.Checkpoint:
        return self._checkpoint

    @property
    def checkpoint_interval(self) -> int | None:
        return self._interval

    @property
    def checkpoints(self) -> list[str]:
        """URIs of the complete checkpoints, oldest first."""
        return [self._store.step_uri(step) for step in self._store.steps()]

    @property
    def latest_checkpoint(self) -> str | None:
        """URI of the newest complete checkpoint, or None."""
        step = self._store.latest_step()
        return None if step is None else self._store.step_uri(step)

    def _counter(self) -> int:
        value = self._step_counter
        return int(value.numpy() if hasattr(value, "numpy") else value)

    def save(self, checkpoint_number: int | None = None, check_interval: bool = True, *,
             metadata: Mapping[str, Any] | None = None) -> str | None:  # fmt: skip
        """Save a checkpoint (numbered ``checkpoint_number``, else the save counter) and prune.

        Returns its URI, or None when ``checkpoint_interval`` says it is too soon.
        """
        if self._interval is not None:
            current = self._counter()
            if self._last_step is not None and (
                current == self._last_step or (check_interval and current < self._last_step + self._interval)
            ):
                return None
            self._last_step = current
        return _save(self._store, self._checkpoint, checkpoint_number, metadata, self._chief)

    def restore_or_initialize(self) -> str | None:
        """Restore the latest checkpoint and return its URI; with none, call ``init_fn`` and return None."""
        latest = self.latest_checkpoint
        if latest is None:
            if self._init_fn is not None:
                self._init_fn()
            return None
        restore(self._checkpoint, latest, client=self._client)
        if self._step_counter is not None:
            self._last_step = self._counter()
        return latest


# -- Keras weights ---------------------------------------------------------------------------------
_WEIGHTS = "model.weights.h5"  # Keras 3 insists on this suffix locally; the object may be named anything


def save_weights(model: Any, uri: str, *, client: s3dlio.Client | None = None) -> None:
    """``model.save_weights`` to the object ``uri`` (written in one PUT: whole or not at all)."""
    with tempfile.TemporaryDirectory(prefix="s3dlio-tf-weights-") as tmp:
        path = os.path.join(tmp, _WEIGHTS)
        model.save_weights(path)
        data = _file_shard(path)
        try:
            s3dlio.put(uri, data, config=settings_of(client, where="save_weights"))
        finally:
            _release({"weights": data})


def load_weights(model: Any, uri: str, *, client: s3dlio.Client | None = None, **kwargs: Any) -> None:
    """``model.load_weights`` from the object ``uri``; ``kwargs`` go to Keras (``skip_mismatch``)."""
    data = s3dlio.get(uri, config=settings_of(client, where="load_weights"))
    with tempfile.TemporaryDirectory(prefix="s3dlio-tf-weights-") as tmp:
        path = os.path.join(tmp, _WEIGHTS)
        with open(path, "wb") as f:
            f.write(data)
        model.load_weights(path, **kwargs)
