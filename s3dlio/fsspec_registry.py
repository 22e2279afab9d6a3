"""Point fsspec's ``s3://``, ``az://``, ``mem://`` and ``direct://`` at s3dlio without importing it.

The framework packages (``s3dlio_torch``, ``s3dlio_tf``, ``s3dlio_jax``) call
:func:`register_lazily` when they are imported, so ``fsspec.filesystem("s3")`` (Lightning's
``ModelCheckpoint(dirpath="s3://...")``, pandas, etils.epath) reaches s3dlio whatever order
the user builds objects in. fsspec is told the class *names*: ``s3dlio.fsspec`` is imported on
first use, so the cost at import is fsspec's own import and nothing when fsspec is absent.
:func:`s3dlio.fsspec.register` is the eager form, which also points etils.epath at fsspec.
"""

from __future__ import annotations

import importlib.util

__all__ = ["LAZY_CLASSES", "register_lazily"]

#: fsspec protocol -> the s3dlio filesystem class serving it (``file`` stays fsspec's own).
LAZY_CLASSES = {
    "s3": "s3dlio.fsspec.S3FileSystem",
    "s3a": "s3dlio.fsspec.S3FileSystem",
    "az": "s3dlio.fsspec.AzureFileSystem",
    "abfs": "s3dlio.fsspec.AzureFileSystem",
    "abfss": "s3dlio.fsspec.AzureFileSystem",
    "mem": "s3dlio.fsspec.MemoryFileSystem",
    "direct": "s3dlio.fsspec.DirectFileSystem",
}


def register_lazily() -> bool:
    """Register :data:`LAZY_CLASSES` with fsspec (``clobber=True``); False when fsspec is absent.

    A protocol whose class fsspec has already loaded (s3fs used earlier in the process) is
    replaced by the s3dlio class itself, since fsspec prefers a loaded class to a name.
    """
    if importlib.util.find_spec("fsspec") is None:
        return False
    import fsspec

    for protocol, target in LAZY_CLASSES.items():
        if protocol in fsspec.registry:
            module, _, name = target.rpartition(".")
            fsspec.register_implementation(protocol, getattr(importlib.import_module(module), name), clobber=True)
        else:
            fsspec.register_implementation(protocol, target, clobber=True)
    return True
