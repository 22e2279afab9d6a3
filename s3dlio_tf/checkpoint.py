"""``tf.train.Checkpoint`` and Keras weights on object storage, through the s3dlio checkpoint store.

TensorFlow 2.21's filesystem no longer speaks ``s3://``, so a save writes the checkpoint
into a local temporary directory (``Checkpoint.write``) and uploads its files as one step of
:class:`s3dlio.checkpoint.CheckpointStore`: checksummed, with the manifest written last, so
a save that dies mid-upload never becomes the latest. A restore downloads a step (every
file verified) and calls ``Checkpoint.restore`` on the local copy. Every function and the
manager take ``client=`` (an :class:`s3dlio.Client`): the settings of their requests.

Order is TensorFlow's: the latest checkpoint is the one saved last, not the highest number
(a run rewound to step 200 saves 210 after 300), and saving a number again replaces that
checkpoint. Each manifest records a save index (one more than the highest under the prefix),
so every process, and a manager opened later, sees the saves in the order they were made.

TensorFlow's own ``Checkpoint.restore`` cannot open an ``s3://`` path: for
``ckpt.restore(manager.latest_checkpoint)`` write ``s3dlio_tf.restore(ckpt, manager.latest_checkpoint)``.

>>> ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer)        # doctest: +SKIP
>>> path = s3dlio_tf.save(ckpt, "s3://bucket/run1/")                     # .../step-00000001/
>>> s3dlio_tf.restore(ckpt, s3dlio_tf.latest_checkpoint("s3://bucket/run1/")).assert_consumed()
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import operator
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import tensorflow as tf

import s3dlio
from s3dlio import parallel
from s3dlio.checkpoint import (
    CheckpointCorruptError,
    CheckpointError,
    CheckpointNotFoundError,
    CheckpointReader,
    CheckpointStore,
    Manifest,
    layout,
    retention,
)
from s3dlio.client import settings_of
from s3dlio.config import default_config
from s3dlio.errors import ConfigError
from s3dlio.uri import parse

if TYPE_CHECKING:
    from collections.abc import Buffer

__all__ = ["CheckpointManager", "latest_checkpoint", "load_weights", "restore", "save", "save_weights"]

log = logging.getLogger("s3dlio_tf")

FRAMEWORK = "tensorflow"
_PREFIX = "ckpt"  # the checkpoint's file prefix inside a step: ckpt.index, ckpt.data-00000-of-00001
_ORDER = "save_index"  # manifest metadata: saves numbered 1, 2, ... under one prefix, in save order


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


def _store(uri: str, client: s3dlio.Client | None = None) -> CheckpointStore:
    # One uploader: a TF checkpoint file set is complete on its own (TF gathers distributed
    # variables into it), so it is one shard set of rank 0 whatever the job's size. No
    # keep_last: pruning follows the save order (below), which the store does not know.
    return CheckpointStore(uri, rank=0, world_size=1, framework=FRAMEWORK, client=client)


def _save_index(manifest: Manifest) -> int:
    index = manifest.metadata.get(_ORDER)
    return index if isinstance(index, int) and not isinstance(index, bool) else 0


def _scan(reader: CheckpointReader) -> tuple[list[Manifest], list[int]]:
    """(complete checkpoints oldest save first, steps with a directory but no complete checkpoint).

    Ordered by the save index of their manifests; checkpoints saved without one (by older
    versions) come first, by commit time.
    """
    listed = (layout.parse_step(u) for u in s3dlio.list(reader.uri, config=reader.config) if u.endswith("/"))
    steps = sorted({s for s in listed if s is not None})

    def check(step: int) -> Manifest | None:
        try:
            return reader.check(step)
        except (CheckpointNotFoundError, CheckpointCorruptError):
            return None  # half-saved, or deleted meanwhile (another process pruning)
        except CheckpointError:  # a newer manifest format: neither complete nor ours to delete
            return None

    found = parallel.map_bounded(check, steps, (reader.config or default_config()).max_in_flight)
    complete = [m for m in found if isinstance(m, Manifest)]
    complete.sort(key=lambda m: (_save_index(m), m.created, m.step))
    incomplete = [s for s, m in zip(steps, found, strict=True) if m is None]
    return complete, incomplete


def _write(checkpoint: tf.train.Checkpoint, prefix: str, options: Any) -> None:
    if options is None:
        checkpoint.write(prefix)
    else:
        checkpoint.write(prefix, options=options)


def _save(store: CheckpointStore, checkpoint: tf.train.Checkpoint, step: Any,
          metadata: Mapping[str, Any] | None, chief: bool, prefix: str = _PREFIX,
          options: Any = None) -> tuple[int, list[int], list[int]]:  # fmt: skip
    """Save one step, replacing a checkpoint of the same number. Returns the step, the complete
    steps in save order (this one last) and the incomplete ones; no steps on a non-chief."""
    counter = checkpoint.save_counter  # as Checkpoint.save: counts every save, names it by default
    counter.assign_add(1)
    step = int(counter.numpy()) if step is None else _number(step)
    with tempfile.TemporaryDirectory(prefix="s3dlio-tf-save-") as tmp:
        _write(checkpoint, os.path.join(tmp, prefix), options)  # every worker writes (TF collectives)
        if not chief:
            return step, [], []
        complete, incomplete = _scan(store)
        index = 1 + max((_save_index(m) for m in complete), default=0)
        meta = {**dict(metadata or {}), "tensorflow": tf.__version__, "prefix": prefix, _ORDER: index}
        if any(m.step == step for m in complete) or step in incomplete:
            # Saving a number again replaces it, as TensorFlow overwrites its files. The old
            # manifest goes first: until the new one is written the step is incomplete, so a
            # crash in between leaves the latest at the previous save, never a half-written one.
            store.delete(step)
        shards = {name: _file_shard(os.path.join(tmp, name)) for name in sorted(os.listdir(tmp))}
        try:
            manifest = store.save(step, shards, meta)
        finally:
            _release(shards)
    assert manifest is not None  # rank 0 of world_size 1 always commits or raises
    return step, [*(m.step for m in complete if m.step != step), manifest.step], incomplete


def _number(step: Any) -> int:
    """A checkpoint number: an int, or an integer ``tf.Variable``/tensor, as TensorFlow takes it."""
    value = step.numpy() if hasattr(step, "numpy") else step
    try:
        number = operator.index(value)
    except TypeError:
        raise ConfigError(f"checkpoint number {step!r}: give an int or an integer tf.Variable") from None
    if number < 0:
        raise ConfigError(f"checkpoint number {number}: must be >= 0")
    return number


def save(checkpoint: tf.train.Checkpoint, uri_prefix: str, step: int | None = None, *,
         metadata: Mapping[str, Any] | None = None, chief: bool = True, options: Any = None,
         client: s3dlio.Client | None = None) -> str:  # fmt: skip
    """Save ``checkpoint`` under ``uri_prefix`` as one step; returns the step's URI.

    Like ``Checkpoint.save``, it increments ``checkpoint.save_counter`` and, without
    ``step``, numbers the checkpoint by it; a step saved before is replaced, as TensorFlow
    overwrites its files. The step becomes visible to :func:`latest_checkpoint` only when
    every file is uploaded. ``options``: a ``tf.train.CheckpointOptions`` for
    ``Checkpoint.write``. In multi-worker training call it on every worker with
    ``chief=False`` on all but the chief (only the chief uploads).
    """
    store = _store(uri_prefix, client)
    return store.step_uri(_save(store, checkpoint, step, metadata, chief, options=options)[0])


def _split(uri: str) -> tuple[str, int | None]:
    """(prefix, step) of a step URI (``.../step-00000003/``); (uri, None) for a prefix."""
    parsed = parse(uri)
    head, _, last = parsed.key.rstrip("/").rpartition("/")
    step = layout.parse_step(last) if last else None
    if step is None:
        return uri, None
    return str(parsed.with_key(head + "/" if head else "")), step


def latest_checkpoint(uri_prefix: str, *, client: s3dlio.Client | None = None) -> str | None:
    """The URI of the complete checkpoint saved last under ``uri_prefix``, or None.

    Saved last, not numbered highest, as ``tf.train.latest_checkpoint``.
    """
    reader = CheckpointReader(uri_prefix, client=client)
    complete = _scan(reader)[0]
    return reader.step_uri(complete[-1].step) if complete else None


def _local_dir(checkpoint: tf.train.Checkpoint) -> str:
    """A directory that lives as long as ``checkpoint``: variables created after the restore
    (optimizer slots, lazily built layers) are restored later, from these files."""
    path = tempfile.mkdtemp(prefix="s3dlio-tf-restore-")
    weakref.finalize(checkpoint, shutil.rmtree, path, True)
    return path


def restore(
    checkpoint: tf.train.Checkpoint, uri: str, *, local_dir: str | None = None, client: s3dlio.Client | None = None
) -> Any:
    """Restore ``checkpoint`` from a step URI, or from the step saved last under a prefix.

    The s3dlio form of ``checkpoint.restore(path)``, which TensorFlow cannot do for ``s3://``.

    Returns TensorFlow's load status (``assert_consumed()``, ``expect_partial()``). Every
    file is checksummed before TensorFlow reads any; the files stay in ``local_dir``
    (default: a temporary directory removed with ``checkpoint``) for deferred restores.
    """
    root, step = _split(uri)
    reader = CheckpointReader(root, client=client)
    if step is None:  # the save made last, not the highest number
        complete, incomplete = _scan(reader)
        if not complete:
            found = f"; step directories without a valid manifest: {incomplete}" if incomplete else ""
            raise CheckpointNotFoundError(f"{reader.uri}: no complete checkpoint to restore{found}")
        manifest = complete[-1]
    else:
        manifest = reader.manifest(step)
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

    As TensorFlow's: the ``max_to_keep`` checkpoints saved last are kept (None keeps all),
    :attr:`latest_checkpoint` is the one saved last, and saving a number again replaces it.
    ``keep_every`` also keeps steps that are multiples of it (s3dlio's stand-in for
    ``keep_checkpoint_every_n_hours``). ``checkpoint_name`` names the files inside each
    ``step-NNNNNNNN/`` directory. ``step_counter``/``checkpoint_interval`` skip saves as
    TensorFlow's manager does. State lives in the store, not in a local ``checkpoint`` file,
    so every process (and a manager opened later) sees the same :attr:`checkpoints`.
    Restore with :meth:`restore_or_initialize` or :func:`restore`: TensorFlow's
    ``checkpoint.restore(manager.latest_checkpoint)`` cannot open ``s3://``.
    """

    def __init__(
        self,
        checkpoint: tf.train.Checkpoint,
        directory: str,
        max_to_keep: int | None = 5,
        keep_checkpoint_every_n_hours: float | None = None,
        checkpoint_name: str = _PREFIX,
        step_counter: Any = None,
        checkpoint_interval: int | None = None,
        init_fn: Callable[[], Any] | None = None,
        last_checkpoint_step: int | None = None,
        *,
        keep_every: int | None = None,
        chief: bool = True,
        client: s3dlio.Client | None = None,
    ) -> None:
        if checkpoint_interval is not None and step_counter is None:
            raise ConfigError("checkpoint_interval= needs step_counter= (the variable that counts steps)")
        if keep_checkpoint_every_n_hours is not None:
            raise ConfigError(
                f"keep_checkpoint_every_n_hours={keep_checkpoint_every_n_hours!r}: not supported; "
                "keep_every=N keeps every checkpoint whose step is a multiple of N besides the newest max_to_keep"
            )
        try:
            layout.validate_name(f"{checkpoint_name}.index")
        except ValueError:
            raise ConfigError(
                f"checkpoint_name={checkpoint_name!r}: use letters, digits, '.', '_' or '-' (a file name "
                "inside each step directory)"
            ) from None
        retention.steps_to_delete([], [], max_to_keep, keep_every)  # ValueError for max_to_keep < 1, as TF
        self._checkpoint = checkpoint
        self._store = _store(directory, client)
        self._max_to_keep = max_to_keep
        self._keep_every = keep_every
        self._name = checkpoint_name
        self._client = client
        self._step_counter = step_counter
        self._interval = checkpoint_interval
        self._init_fn = init_fn
        self._chief = chief
        self._last_step = last_checkpoint_step

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
        """URIs of the complete checkpoints, oldest save first."""
        return [self._store.step_uri(m.step) for m in _scan(self._store)[0]]

    @property
    def latest_checkpoint(self) -> str | None:
        """URI of the complete checkpoint saved last, or None.

        Restore it with :func:`restore` (``s3dlio_tf.restore(ckpt, manager.latest_checkpoint)``).
        """
        complete = _scan(self._store)[0]
        return self._store.step_uri(complete[-1].step) if complete else None

    def _counter(self) -> int:
        value = self._step_counter
        return int(value.numpy() if hasattr(value, "numpy") else value)

    def save(self, checkpoint_number: Any = None, check_interval: bool = True, options: Any = None, *,
             metadata: Mapping[str, Any] | None = None) -> str | None:  # fmt: skip
        """Save a checkpoint (numbered ``checkpoint_number``, else the save counter) and prune.

        Returns its URI, or None when ``checkpoint_interval`` says it is too soon. A number
        saved before is replaced and becomes the latest. ``options``: a
        ``tf.train.CheckpointOptions`` for ``Checkpoint.write``.
        """
        if self._interval is not None:
            current = self._counter()
            if self._last_step is not None and (
                current == self._last_step or (check_interval and current < self._last_step + self._interval)
            ):
                return None
            self._last_step = current
        step, order, incomplete = _save(self._store, self._checkpoint, checkpoint_number, metadata,
                                        self._chief, self._name, options)  # fmt: skip
        if order and (self._max_to_keep is not None or self._keep_every is not None):
            self._prune(order, incomplete, step)
        return self._store.step_uri(step)

    def _prune(self, order: list[int], incomplete: list[int], step: int) -> None:
        """Delete what ``max_to_keep``/``keep_every`` do not keep, by save order; never ``step``."""
        keep_last, keep_every = self._max_to_keep, self._keep_every
        doomed = retention.steps_to_delete(order, incomplete, keep_last, keep_every, committed=step)
        try:
            for old in doomed:
                self._store.delete(old)
        except Exception as exc:  # noqa: BLE001 - the checkpoint is committed; pruning retries next time
            log.warning("%s: pruning failed (%s); old ones stay until the next save", self.directory, exc)

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
