"""Orbax checkpoints on object storage, with s3dlio moving the bytes.

Orbax's ``CheckpointManager`` keeps its own logic (steps, ``latest_step``, ``max_to_keep``,
async saves); s3dlio supplies the I/O underneath:

- **paths**: Orbax resolves ``s3://``/``az://`` directories through ``etils.epath``, whose
  backend is fsspec; :class:`CheckpointManager` registers :mod:`s3dlio.fsspec` for them.
- **commit**: on object storage a rename is a copy and a delete, so the manager uses Orbax's
  ``AtomicityMode.COMMIT_FILE``: a step is written in place and counts once its
  ``commit_success.txt`` exists (what Orbax does on GCS). A crashed save is never listed.
- **arrays**: Orbax's own handlers (``ocp.args.StandardSave``, ``PyTreeSave``, ``ArraySave``)
  work on ``s3://``/``az://`` once :func:`~.orbax_io.enable_orbax` has run (``import s3dlio_jax``
  does it): TensorStore's standard OCDBT files go through s3dlio (:mod:`.tsgateway`), sharded
  and multi-process arrays included. :class:`ArrayTreeHandler` is the simpler alternative for
  arrays one process holds whole: each leaf is one object of raw bytes (``leaves/NNNNN.bin``,
  CRC32C-checked) plus ``arraytree.json`` (tree paths, shapes, dtypes).
- **data state**: :class:`LoaderStateHandler` keeps an :class:`~.data.S3Iterable`'s position
  (``process_{i}-of-{n}.json``); Grain's own ``grain.checkpoint.CheckpointSave`` works too.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import google_crc32c
import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

import s3dlio
from s3dlio.checkpoint import CheckpointCorruptError, CheckpointVersionError
from s3dlio.client import settings_of
from s3dlio.config import Config, default_config

from .orbax_io import enable_orbax

__all__ = [
    "FORMAT",
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
]

FORMAT = "s3dlio.arraytree"
VERSION = 1
TREE_FILE = "arraytree.json"
_KINDS = {jax.tree_util.DictKey: "dict", jax.tree_util.SequenceKey: "seq", jax.tree_util.GetAttrKey: "attr",
          jax.tree_util.FlattenedIndexKey: "index"}  # fmt: skip


def _uri(directory: Any) -> str:
    """An Orbax directory (``epath.Path`` or str) as an s3dlio URI prefix ending in ``/``."""
    return str(os.fspath(directory)).rstrip("/") + "/"


def _in_flight(value: int | None, config: Config | None = None) -> int:
    return value or min(16, (config or default_config()).max_in_flight)


# -- leaves --------------------------------------------------------------------------------------
def _keys(path: Sequence[Any]) -> list[list[Any]]:
    out = []
    for entry in path:
        kind = _KINDS.get(type(entry))
        value = getattr(entry, "key", getattr(entry, "idx", getattr(entry, "name", None)))
        if kind is None or not isinstance(value, (str, int)):
            raise TypeError(
                f"checkpoint tree key {entry!r}: only dict/list/attribute keys of str or int are saved"
            )
        out.append([kind, value])
    return out


def _check(leaf: Any) -> None:
    """Fail early, naming the fix, for a leaf this handler cannot save."""
    if isinstance(leaf, jax.Array):
        if jax.numpy.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            raise TypeError(
                f"checkpoint leaf of dtype {leaf.dtype}: save jax.random.key_data(key) and rebuild the key "
                "with jax.random.wrap_key_data after restoring"
            )
        if not leaf.is_fully_addressable and not leaf.is_fully_replicated:
            raise ValueError(
                f"array of shape {leaf.shape} is sharded over processes; ArrayTreeHandler saves arrays one "
                "process can read whole (replicated or single-process). Save it with Orbax's "
                "ocp.args.StandardSave, which writes each process's shards (s3://, az:// included)"
            )
    elif not isinstance(leaf, (np.ndarray, np.generic, bool, int, float, complex)):
        raise TypeError(f"checkpoint leaf {leaf!r}: only arrays and numbers are saved")
    elif np.asarray(leaf).dtype.kind in "OUSV":  # their bytes are not their values
        raise TypeError(
            f"checkpoint leaf of dtype {np.asarray(leaf).dtype}: ArrayTreeHandler saves numeric and bool arrays; "
            "save text and objects with Orbax's ocp.args.StandardSave or ocp.args.JsonSave (in a Composite)"
        )


def _host(leaf: Any, copy: bool) -> np.ndarray:
    """The leaf on the host, C-contiguous; ``copy`` guarantees later changes cannot reach it."""
    _check(leaf)
    if isinstance(leaf, jax.Array):
        if not leaf.is_fully_addressable:
            leaf = leaf.addressable_data(0)  # replicated: any copy is the whole array
        host = np.asarray(jax.device_get(leaf), order="C")  # keeps 0-d (ascontiguousarray would not)
        return host.copy() if copy and not host.flags.owndata else host
    host = np.array(leaf, order="C") if copy else np.asarray(leaf, order="C")
    if not host.dtype.isnative:  # saved and restored in this machine's byte order, as values
        host = host.astype(host.dtype.newbyteorder("="))
    return host


def _flatten(tree: Any, copy: bool) -> list[tuple[str, list[list[Any]], np.ndarray]]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [(jax.tree_util.keystr(path), _keys(path), _host(leaf, copy)) for path, leaf in flat]


def _write(
    base: str,
    leaves: list[tuple[str, list[list[Any]], np.ndarray]],
    in_flight: int,
    config: Config | None = None,
) -> None:
    """Leaves first (concurrently), the tree file last."""

    def one(item: tuple[int, tuple[str, list[list[Any]], np.ndarray]]) -> dict[str, Any]:
        index, (path, keys, array) = item
        data = array.reshape(-1).view(np.uint8)
        name = f"leaves/{index:05d}.bin"
        s3dlio.put(base + name, data, config=config)
        return {"path": path, "keys": keys, "object": name, "shape": list(array.shape),
                "dtype": array.dtype.name, "size": int(data.nbytes), "crc32c": int(google_crc32c.value(data))}  # fmt: skip

    with ThreadPoolExecutor(max(1, min(in_flight, len(leaves)))) as pool:
        records = list(pool.map(one, enumerate(leaves)))
    doc = {"format": FORMAT, "version": VERSION, "leaves": records}
    s3dlio.put(base + TREE_FILE, json.dumps(doc, indent=1).encode(), config=config)


def _read_doc(base: str, config: Config | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(bytes(s3dlio.get(base + TREE_FILE, config=config)))
    if doc.get("format") != FORMAT:
        raise CheckpointCorruptError(
            f"{base}{TREE_FILE}: not an s3dlio array tree (format {doc.get('format')!r})"
        )
    if doc.get("version") != VERSION:
        raise CheckpointVersionError(
            f"{base}{TREE_FILE}: version {doc.get('version')!r}; this s3dlio reads version {VERSION}: upgrade s3dlio"
        )
    return doc


def _read_leaf(
    base: str, record: dict[str, Any], sharding: Any, target: Any, config: Config | None = None
) -> Any:
    """One leaf: a ``jax.Array`` (on ``sharding``), or numpy/Python when the target leaf is."""
    uri = base + record["object"]
    buf = s3dlio.get(uri, config=config)
    raw = np.frombuffer(buf, np.uint8)
    if raw.nbytes != record["size"] or int(google_crc32c.value(raw)) != record["crc32c"]:
        raise CheckpointCorruptError(
            f"{uri}: {raw.nbytes} bytes with a different CRC32C than saved ({record['size']} bytes); "
            "the checkpoint is damaged: restore another step"
        )
    host = raw.view(jax.numpy.dtype(record["dtype"])).reshape(record["shape"])
    if isinstance(target, np.ndarray):
        return host.copy()  # writable, and exact even for 64-bit dtypes without jax_enable_x64
    if isinstance(target, np.generic):
        return host[()]
    if isinstance(target, (bool, int, float, complex)):
        return host.item()
    if sharding is None:
        return jax.device_put(host)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def _unflatten(entries: list[tuple[list[list[Any]], Any]]) -> Any:
    """Nested dicts and lists from saved key paths (the tree without a restore target)."""
    root: dict[tuple[str, Any], Any] = {}
    for keys, value in entries:
        if not keys:
            return value
        node = root
        for kind, key in keys[:-1]:
            node = node.setdefault((kind, key), {})
        node[(keys[-1][0], keys[-1][1])] = value
    return _containers(root)


def _containers(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {k: _containers(v) for k, v in node.items()}
    if items and all(kind == "seq" for kind, _ in items):
        return [items[k] for k in sorted(items, key=lambda k: k[1])]
    return {key: value for (_, key), value in items.items()}


# -- the array handler -------------------------------------------------------------------------
class ArrayTreeHandler(ocp.AsyncCheckpointHandler):
    """Saves a pytree of arrays as objects through s3dlio; restores ``jax.Array``\\ s.

    Process ``primary_host`` writes (arrays must be readable whole by it: single-process or
    replicated). ``max_in_flight`` leaves move at once (default: the config's, at most 16).
    ``client`` (an :class:`s3dlio.Client`): the settings of its requests (default: the
    process-wide ones).
    """

    def __init__(
        self,
        max_in_flight: int | None = None,
        primary_host: int | None = 0,
        *,
        client: s3dlio.Client | None = None,
    ) -> None:
        self._in_flight = max_in_flight
        self._primary = primary_host
        self._config = settings_of(client, where="ArrayTreeHandler")

    def _writes(self) -> bool:
        return self._primary is None or jax.process_index() == self._primary

    async def async_save(self, directory: epath.Path, args: ArrayTreeSave) -> list[Any]:
        """Copy the leaves to the host now; upload them in Orbax's background commit."""
        if not self._writes():
            return []
        leaves = _flatten(args.item, copy=True)
        base, in_flight, config = _uri(directory), _in_flight(self._in_flight, self._config), self._config

        async def commit() -> None:
            _write(base, leaves, in_flight, config)

        return [ocp.future.CommitFutureAwaitingContractedSignals(commit(), name="s3dlio_arraytree_save")]

    def save(self, directory: epath.Path, args: ArrayTreeSave) -> None:
        if self._writes():
            _write(_uri(directory), _flatten(args.item, copy=False), _in_flight(self._in_flight, self._config),
                   self._config)  # fmt: skip

    def restore(self, directory: epath.Path, args: ArrayTreeRestore | None = None) -> Any:
        """The saved tree: the structure of ``args.item`` if given (checked), else nested dicts/lists."""
        args = args or ArrayTreeRestore()
        base = _uri(directory)
        records = _read_doc(base, self._config)["leaves"]
        shardings = _shardings(args, records, base)
        with ThreadPoolExecutor(max(1, min(_in_flight(self._in_flight, self._config), len(records)))) as pool:
            targets = [None] * len(records) if args.item is None else jax.tree_util.tree_leaves(args.item)
            arrays = list(
                pool.map(
                    lambda rst: _read_leaf(base, rst[0], rst[1], rst[2], self._config),
                    zip(records, shardings, targets, strict=True),
                )
            )
        if args.item is None:
            return _unflatten([(r["keys"], a) for r, a in zip(records, arrays, strict=True)])
        return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(args.item), arrays)

    def metadata(self, directory: epath.Path) -> Any:
        """The saved tree as ``jax.ShapeDtypeStruct`` leaves (nested dicts/lists); no array is read."""
        records = _read_doc(_uri(directory), self._config)["leaves"]
        return _unflatten(
            [
                (r["keys"], jax.ShapeDtypeStruct(tuple(r["shape"]), jax.numpy.dtype(r["dtype"])))
                for r in records
            ]
        )

    def finalize(self, directory: epath.Path) -> None:
        """Nothing to do: the tree file is written last."""

    def close(self) -> None:
        """Nothing to release."""


def _shardings(args: ArrayTreeRestore, records: list[dict[str, Any]], base: str) -> list[Any]:
    """One sharding (or None) per saved leaf, after checking ``args.item`` against the saved tree."""
    n = len(records)
    if args.item is not None:
        flat, _ = jax.tree_util.tree_flatten_with_path(args.item)
        paths = [jax.tree_util.keystr(p) for p, _ in flat]
        saved = [r["path"] for r in records]
        if paths != saved:
            extra, gone = sorted(set(paths) - set(saved)), sorted(set(saved) - set(paths))
            raise ValueError(
                f"restore {base}: the target tree does not match the saved one (target only: {extra[:5]}, "
                f"saved only: {gone[:5]}); restore without a target to get the saved structure"
            )
        for (path, leaf), r in zip(flat, records, strict=True):
            shape = getattr(leaf, "shape", None)
            if shape is not None and tuple(shape) != tuple(r["shape"]):
                raise ValueError(
                    f"restore {base}: {jax.tree_util.keystr(path)} has shape {r['shape']}, target {shape}"
                )
    if args.shardings is None:
        if args.item is None:
            return [None] * n
        return [getattr(leaf, "sharding", None) for leaf in jax.tree_util.tree_leaves(args.item)]
    if isinstance(args.shardings, jax.sharding.Sharding):
        return [args.shardings] * n
    given = jax.tree_util.tree_leaves(args.shardings, is_leaf=lambda x: isinstance(x, jax.sharding.Sharding))
    if len(given) != n:
        raise ValueError(
            f"restore {base}: {len(given)} shardings for {n} saved arrays; give one per leaf or one for all"
        )
    return given


@ocp.args.register_with_handler(ArrayTreeHandler, for_save=True)
@dataclasses.dataclass
class ArrayTreeSave(ocp.args.CheckpointArgs):
    """Save ``item``, a pytree of ``jax.Array``/numpy arrays/numbers, with :class:`ArrayTreeHandler`.

    The tree is checked here, before Orbax starts a save: a leaf it cannot hold fails now.
    """

    item: Any

    def __post_init__(self) -> None:
        for path, leaf in jax.tree_util.tree_flatten_with_path(self.item)[0]:
            _keys(path)
            _check(leaf)


@ocp.args.register_with_handler(ArrayTreeHandler, for_restore=True)
@dataclasses.dataclass
class ArrayTreeRestore(ocp.args.CheckpointArgs):
    """Restore with :class:`ArrayTreeHandler`.

    ``item``: a target tree (arrays or ``jax.ShapeDtypeStruct``\\ s) whose structure the result
    takes and whose ``sharding`` attributes place it; its numpy leaves and Python numbers come
    back as such (exact 64-bit values whatever ``jax_enable_x64``), the rest as ``jax.Array``.
    ``shardings``: one ``Sharding`` for every leaf, or a tree of them; default: the target's,
    else the default device.
    """

    item: Any = None
    shardings: Any = None


# -- loader state ----------------------------------------------------------------------------------
class LoaderStateHandler(ocp.CheckpointHandler):
    """Saves the position of an :class:`~.data.S3Iterable` (or any object with ``state_dict``/
    ``load_state_dict``): one ``process_{i}-of-{n}.json`` per process; restores it in place.
    ``client`` (an :class:`s3dlio.Client`): the settings of its requests."""

    def __init__(self, *, client: s3dlio.Client | None = None) -> None:
        self._config = settings_of(client, where="LoaderStateHandler")

    def _uri(self, directory: epath.Path) -> str:
        return f"{_uri(directory)}process_{jax.process_index()}-of-{jax.process_count()}.json"

    def save(self, directory: epath.Path, args: LoaderStateSave) -> None:
        s3dlio.put(
            self._uri(directory), json.dumps(args.item.state_dict(), indent=1).encode(), config=self._config
        )

    def restore(self, directory: epath.Path, args: LoaderStateRestore) -> Any:
        uri = self._uri(directory)
        try:
            state = json.loads(bytes(s3dlio.get(uri, config=self._config)))
        except s3dlio.NotFoundError as exc:
            raise s3dlio.NotFoundError(
                f"{uri}: no loader state for this process; was the checkpoint saved with as many processes?"
            ) from exc
        args.item.load_state_dict(state)
        return args.item

    def metadata(self, directory: epath.Path) -> None:
        return None

    def finalize(self, directory: epath.Path) -> None:
        """Nothing to do."""

    def close(self) -> None:
        """Nothing to release."""


@ocp.args.register_with_handler(LoaderStateHandler, for_save=True)
@dataclasses.dataclass
class LoaderStateSave(ocp.args.CheckpointArgs):
    """Save ``item.state_dict()`` (an :class:`~.data.S3Iterable` or :class:`s3dlio.loader.Loader`)."""

    item: Any


@ocp.args.register_with_handler(LoaderStateHandler, for_restore=True)
@dataclasses.dataclass
class LoaderStateRestore(ocp.args.CheckpointArgs):
    """Load the saved state into ``item`` (``item.load_state_dict``)."""

    item: Any


# -- the manager -------------------------------------------------------------------------------------
def manager_options(**kwargs: Any) -> ocp.CheckpointManagerOptions:
    """``ocp.CheckpointManagerOptions(**kwargs)`` with commit-file atomicity unless given."""
    kwargs.setdefault("atomicity_options", _COMMIT_FILE)
    return ocp.CheckpointManagerOptions(**kwargs)


_COMMIT_FILE = ocp.options.AtomicityOptions(mode=ocp.options.AtomicityMode.COMMIT_FILE)
_OBJECT_STORES = ("s3://", "az://")


def _orbax_directory(directory: str | os.PathLike[str]) -> str:
    path = os.fspath(directory)
    if path.startswith("file://"):
        return "/" + s3dlio.parse(path).key.rstrip("/")
    if "://" in path and not path.startswith((*_OBJECT_STORES, "gs://")):
        raise ValueError(
            f"CheckpointManager({path!r}): Orbax's paths (etils.epath) are s3://, az://, gs:// or local paths"
        )
    return path


class CheckpointManager(ocp.CheckpointManager):
    """Orbax's ``CheckpointManager``, ready for ``s3://``/``az://`` (and local) directories.

    It runs :func:`~.orbax_io.enable_orbax` (s3dlio for Orbax's paths and arrays) and, on object storage, commits
    steps with a commit file instead of renames unless ``options`` sets ``atomicity_options``.
    ``max_to_keep`` is a shortcut for the option. Everything else is Orbax's API::

        mngr = CheckpointManager("s3://bucket/run1", max_to_keep=3)
        mngr.save(step, args=save_args(state, data_iter=iterator))
        restored = mngr.restore(mngr.latest_step(), args=restore_args(state, data_iter=iterator))
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_to_keep: int | None = None,
        options: ocp.CheckpointManagerOptions | None = None,
        **kwargs: Any,
    ) -> None:
        enable_orbax()
        path = _orbax_directory(directory)
        options = options or ocp.CheckpointManagerOptions()
        if options.atomicity_options is None and path.startswith(_OBJECT_STORES):
            options = dataclasses.replace(options, atomicity_options=_COMMIT_FILE)
        if max_to_keep is not None:
            options = dataclasses.replace(options, max_to_keep=max_to_keep)
        super().__init__(path, options=options, **kwargs)


def _is_grain(iterator: Any) -> bool:
    return hasattr(iterator, "get_state") and hasattr(iterator, "set_state")


def save_args(state: Any, data_iter: Any = None, **items: Any) -> ocp.args.Composite:
    """``Composite(state=ArrayTreeSave(state), data_iter=<its handler's args>, **items)``.

    ``data_iter``: a Grain iterator (saved with Grain's handler) or an :class:`~.data.S3Iterable`.
    """
    args: dict[str, Any] = {"state": ArrayTreeSave(state), **items}
    if data_iter is not None:
        args["data_iter"] = _iter_args(data_iter, save=True)
    return ocp.args.Composite(**args)


def restore_args(
    target: Any = None, data_iter: Any = None, shardings: Any = None, **items: Any
) -> ocp.args.Composite:
    """The :class:`ocp.args.Composite` that restores what :func:`save_args` saved.

    ``data_iter`` is restored in place: it continues where the saved one stopped.
    """
    args: dict[str, Any] = {"state": ArrayTreeRestore(target, shardings), **items}
    if data_iter is not None:
        args["data_iter"] = _iter_args(data_iter, save=False)
    return ocp.args.Composite(**args)


def _iter_args(data_iter: Any, save: bool) -> ocp.args.CheckpointArgs:
    if _is_grain(data_iter):
        import grain

        return (
            grain.checkpoint.CheckpointSave(data_iter)
            if save
            else grain.checkpoint.CheckpointRestore(data_iter)
        )
    if hasattr(data_iter, "state_dict") and hasattr(data_iter, "load_state_dict"):
        return LoaderStateSave(data_iter) if save else LoaderStateRestore(data_iter)
    raise TypeError(
        f"data_iter={data_iter!r}: expected a Grain iterator (get_state/set_state) or an object with "
        "state_dict/load_state_dict (s3dlio_jax.S3Iterable)"
    )
