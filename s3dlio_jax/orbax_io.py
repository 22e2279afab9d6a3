"""Orbax's own API on ``s3://`` and ``az://`` directories, with every byte moved by s3dlio.

:func:`enable_orbax` (run by ``import s3dlio_jax`` as soon as Orbax is imported) connects
three places where stock Orbax assumes GCS or a local disk:

1. **Paths** (``etils.epath``): ``s3://``/``az://`` go to fsspec, which s3dlio serves
   (:func:`s3dlio.fsspec.register`); with TensorFlow installed, epath would send them to
   TensorFlow's gfile, so ``EPATH_USE_TF=false`` is set (etils' own switch).
2. **Array bytes** (TensorStore under Orbax's type handlers): where Orbax builds a
   TensorStore kvstore for a checkpoint directory, an ``s3://``/``az://`` directory gets a
   kvstore served by :mod:`.tsgateway`, which answers TensorStore's requests with s3dlio
   calls. TensorStore writes its standard files (OCDBT or zarr) there, as it would anywhere.
3. **Commit**: with no ``atomicity_options``, steps on object storage commit with a commit
   file (``commit_success.txt``, written last) instead of a rename, which on object storage
   is a copy and a delete; Orbax does the same for ``gs://``.

Points 2 and 3 replace three functions of Orbax's private modules with wrappers that call
the originals for every other path. Their presence is checked first: an Orbax without them
gets a :class:`s3dlio.ConfigError` naming the supported versions, never a half-applied patch.
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import importlib.util
import logging
import os
import re
import sys
import threading
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

import s3dlio

__all__ = ["OBJECT_SCHEMES", "SUPPORTED_ORBAX", "enable_orbax", "enable_orbax_after_import", "is_enabled"]

#: Schemes whose Orbax directories s3dlio serves.
OBJECT_SCHEMES = ("s3", "az")
#: The orbax-checkpoint versions whose hook points were checked (major, minor).
SUPPORTED_ORBAX = ((0, 11), (0, 12))

log = logging.getLogger("s3dlio.jax")
_lock = threading.Lock()
_enabled = False
# "s3://b/k", or "s3:/b/k" as os.path.normpath leaves it inside Orbax's TensorStore specs.
_OBJECT_PATH = re.compile(r"^(s3|az):/+(?=[^/])")
# A URI with one slash after the scheme: epath takes it for a relative local path.
_ONE_SLASH = re.compile(r"^(s3|s3a|az|gs|hf|file|mem|direct):/(?!/)")


def _object_uri(path: Any) -> str | None:
    """``path`` as an ``s3://``/``az://`` URI when it names one (Orbax may have collapsed ``//``)."""
    text = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    match = _OBJECT_PATH.match(str(text))
    if match is None:
        return None
    return f"{match.group(1)}://{text[match.end() :]}"


def _check_orbax_path(path: Any) -> None:
    """Refuse an Orbax directory that epath took for a relative path (``s3:/bucket``), naming the fix."""
    text = str(os.fspath(path) if isinstance(path, os.PathLike) else path)
    match = _ONE_SLASH.match(text)
    if match is not None:
        scheme = match.group(1)
        raise s3dlio.InvalidUriError(
            f"Orbax checkpoint directory {text!r}: one slash after '{scheme}:', so etils.epath took it for a "
            f"relative local path; write {scheme}://{text[match.end() :]} (two slashes after the scheme). "
            "Orbax's paths take s3://, az://, gs:// and local paths"
        )


def _orbax_version() -> tuple[int, int]:
    parts = importlib.metadata.version("orbax-checkpoint").split(".")
    return int(parts[0]), int(re.sub(r"\D.*", "", parts[1]) or 0)


def _hook_points() -> tuple[ModuleType, ModuleType, ModuleType, ModuleType]:
    """Orbax's and etils' modules holding what is wrapped, checked to have it."""
    try:
        from etils.epath import gpath
        from orbax.checkpoint import checkpoint_manager
        from orbax.checkpoint._src.checkpointers import checkpointer
        from orbax.checkpoint._src.path import atomicity, atomicity_defaults, gcs_utils
        from orbax.checkpoint._src.serialization import tensorstore_utils
    except ImportError as exc:
        raise s3dlio.ConfigError(
            f"s3dlio_jax.enable_orbax: {exc}; install what it needs with pip install 's3dlio[jax]'"
        ) from exc
    wanted = [
        (tensorstore_utils, "_use_gcs_driver"),
        (gcs_utils, "get_kvstore_for_gcs"),
        (atomicity_defaults, "get_default_temporary_path_class"),
        (atomicity_defaults, "get_item_default_temporary_path_class"),
        (atomicity, "CommitFileTemporaryPath"),
        (gpath, "_is_tf_installed"),
        (checkpoint_manager.CheckpointManager, "__init__"),
        (checkpointer.Checkpointer, "restore"),
    ]
    gone = [f"{owner.__name__}.{name}" for owner, name in wanted if not hasattr(owner, name)]
    if gone:
        raise s3dlio.ConfigError(
            f"s3dlio_jax.enable_orbax: this orbax-checkpoint ({importlib.metadata.version('orbax-checkpoint')}) "
            f"or etils lacks {', '.join(gone)}; s3dlio_jax supports orbax-checkpoint "
            f"{', '.join(f'{a}.{b}' for a, b in SUPPORTED_ORBAX)}.x: pip install 'orbax-checkpoint<0.13' "
            "or upgrade s3dlio"
        )
    return tensorstore_utils, gcs_utils, atomicity_defaults, atomicity


def _wrap(owner: ModuleType | type, name: str, make: Callable[[Any], Any]) -> None:
    original = getattr(owner, name)
    if getattr(original, "__s3dlio_original__", None) is not None:
        return  # already wrapped (enable_orbax is idempotent)
    wrapper = make(original)
    wrapper.__s3dlio_original__ = original
    wrapper.__name__ = getattr(original, "__name__", name)
    wrapper.__doc__ = f"s3dlio: {name} for s3://, az:// directories; Orbax's own otherwise."
    setattr(owner, name, wrapper)


def enable_orbax() -> None:
    """Make Orbax's standard API work on ``s3://`` and ``az://`` through s3dlio (idempotent).

    Afterwards Orbax is used exactly as its documentation shows::

        import orbax.checkpoint as ocp
        import s3dlio_jax                      # calls enable_orbax() once Orbax is imported

        mngr = ocp.CheckpointManager("s3://bucket/run1", options=ocp.CheckpointManagerOptions(max_to_keep=2))
        mngr.save(step, args=ocp.args.StandardSave(state))
        mngr.restore(mngr.latest_step(), args=ocp.args.StandardRestore(abstract_state))

    Raises :class:`s3dlio.ConfigError` when Orbax or etils is missing or lacks a hook point.
    """
    global _enabled
    with _lock:
        if _enabled:
            return
        ts_utils, gcs_utils, atomicity_defaults, atomicity = _hook_points()
        from etils.epath import gpath

        from s3dlio import fsspec as s3dlio_fsspec

        s3dlio_fsspec.register(list(OBJECT_SCHEMES))  # also sets EPATH_USE_TF=false when TF is installed
        os.environ["EPATH_USE_TF"] = "false"
        gpath._is_tf_installed.cache_clear()  # epath may have asked before the variable was set

        def use_gcs_driver(original: Callable[[str], bool]) -> Callable[[str], bool]:
            def wrapper(directory: str) -> bool:
                if _object_uri(directory) is not None:
                    return True  # "remote": Orbax then asks get_kvstore_for_gcs for the kvstore
                return original(directory)

            return wrapper

        def kvstore_for(original: Callable[[str], dict[str, Any]]) -> Callable[[str], dict[str, Any]]:
            def wrapper(ckpt_path: str) -> dict[str, Any]:
                uri = _object_uri(ckpt_path)
                if uri is None:
                    return original(ckpt_path)
                from .tsgateway import kvstore_spec

                return kvstore_spec(uri)

            return wrapper

        def commit_file_default(original: Callable[..., Any]) -> Callable[..., Any]:
            def wrapper(path: Any, *, atomicity_options: Any = None) -> Any:
                _check_orbax_path(path)  # every save asks this first, before writing arrays
                if _object_uri(path) is None:
                    return original(path, atomicity_options=atomicity_options)
                # AUTO (Orbax's default, and v1's always) and COMMIT_FILE; ATOMIC_RENAME too:
                # a rename here is a copy, and a step killed mid-copy would look complete
                mode = getattr(atomicity_options, "mode", None)
                if getattr(mode, "value", mode) == "atomic_rename":
                    _warn_rename_once()
                return atomicity.CommitFileTemporaryPath

            return wrapper

        def checked_first(original: Callable[..., Any]) -> Callable[..., Any]:
            """Check the directory before Orbax reads it, or creates it as a local one."""

            def wrapper(self: Any, directory: Any, *args: Any, **kwargs: Any) -> Any:
                _check_orbax_path(directory)
                return original(self, directory, *args, **kwargs)

            return wrapper

        from orbax.checkpoint import checkpoint_manager
        from orbax.checkpoint._src.checkpointers import checkpointer

        _register_file_uris(gpath)
        _register_scheme_spellings(gpath)
        _wrap(checkpoint_manager.CheckpointManager, "__init__", checked_first)
        _wrap(checkpointer.Checkpointer, "restore", checked_first)
        _wrap(ts_utils, "_use_gcs_driver", use_gcs_driver)
        _wrap(gcs_utils, "get_kvstore_for_gcs", kvstore_for)
        _wrap(atomicity_defaults, "get_default_temporary_path_class", commit_file_default)
        _wrap(atomicity_defaults, "get_item_default_temporary_path_class", commit_file_default)
        _enabled = True


@functools.cache
def _warn_rename_once() -> None:
    log.warning(
        "Orbax AtomicityMode.ATOMIC_RENAME on s3:// or az:// would copy each step under its final name, "
        "where a save killed part-way looks complete; s3dlio commits with Orbax's commit file instead"
    )


def _register_file_uris(gpath: ModuleType) -> None:
    """``file:///abs/path`` as an Orbax directory: epath's local path ``/abs/path`` (etils' public
    ``register_path_cls``), so TensorStore's file driver writes it as it writes any local path."""
    from etils import epath

    try:
        epath.Path("file:///")
        return  # epath takes file:// already (registered before, by us or by a newer etils)
    except KeyError:
        pass

    def local(parts: tuple[Any, ...]) -> tuple[Any, ...]:
        if parts and isinstance(parts[0], str) and parts[0].startswith("file://"):
            path = s3dlio.parse(parts[0])
            return ("/" + path.key, *parts[1:])
        return parts

    class FileUriPath(gpath.PosixGPath):  # type: ignore[misc,valid-type,name-defined]
        """A ``file://`` URI as the local path it names (an instance of epath's own local path class)."""

        def __new__(cls, *parts: Any) -> Any:
            return gpath.PosixGPath(*local(parts))

    epath.register_path_cls("file://")(FileUriPath)


_SPELLINGS = {"S3://": "s3://", "s3a://": "s3://", "S3A://": "s3://", "AZ://": "az://", "Az://": "az://"}


def _register_scheme_spellings(gpath: ModuleType) -> None:
    """``S3://``, ``s3a://``, ``AZ://`` as epath paths (epath knows only ``s3://``, ``az://`` and
    fails with a bare ``KeyError``): schemes are case-insensitive, and s3dlio takes ``s3a`` for ``s3``."""
    from etils import epath

    def known(spelling: str) -> bool:
        try:
            epath.Path(spelling + "b")
            return True
        except KeyError:
            return False

    class SpelledPath(gpath.PosixGPath):  # type: ignore[misc,valid-type,name-defined]
        """A URI with another spelling of its scheme, as the path of the canonical one."""

        def __new__(cls, *parts: Any) -> Any:
            first = str(parts[0])
            for spelling, scheme in _SPELLINGS.items():
                if first.startswith(spelling):
                    return epath.Path(scheme + first[len(spelling) :], *parts[1:])
            return gpath.PosixGPath(*parts)

    unknown = [spelling for spelling in _SPELLINGS if not known(spelling)]
    if unknown:
        epath.register_path_cls(unknown)(SpelledPath)


def is_enabled() -> bool:
    """True once :func:`enable_orbax` has run in this process."""
    return _enabled


class _AfterOrbaxImport(importlib.abc.MetaPathFinder):
    """Runs :func:`enable_orbax` right after ``orbax.checkpoint`` is first imported."""

    def find_spec(
        self, name: str, path: Any = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name != "orbax.checkpoint":
            return None
        sys.meta_path[:] = [f for f in sys.meta_path if f is not self]  # once, and not for our own lookup
        spec = importlib.util.find_spec(name)
        loader = None if spec is None else spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            _enable_or_warn()

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _enable_or_warn() -> None:
    try:
        enable_orbax()
    except Exception as exc:  # noqa: BLE001 - never break `import orbax.checkpoint` itself
        warnings.warn(f"{exc} (Orbax on s3:// and az:// is not set up by s3dlio_jax)", stacklevel=3)


def enable_orbax_after_import() -> None:
    """:func:`enable_orbax` now if Orbax is imported, else right after ``orbax.checkpoint`` is."""
    if _enabled:
        return
    if "orbax.checkpoint" in sys.modules:
        _enable_or_warn()
    elif importlib.util.find_spec("orbax") is not None and not any(
        isinstance(f, _AfterOrbaxImport) for f in sys.meta_path
    ):
        sys.meta_path.insert(0, _AfterOrbaxImport())
