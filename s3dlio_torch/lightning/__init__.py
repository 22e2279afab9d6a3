"""Lightning checkpoints on object storage: ``Trainer(plugins=[S3LightningCheckpoint()])``.

The name and arguments of s3torchconnector's plugin, so swapping the import is enough.
``save_checkpoint`` streams ``torch.save`` through the multipart writer (the object appears
only once complete, so a failed save never leaves a checkpoint that looks whole),
``load_checkpoint`` reads through the seekable reader, and ``remove_checkpoint`` deletes the
object. Any URI s3dlio serves works (``s3://``, ``az://``, ``file://``, ``mem://``, plain paths).

Lightning's ``ModelCheckpoint`` and loggers check, list and write their directories through
fsspec. Importing ``s3dlio_torch`` already points fsspec's ``s3://`` and ``az://`` at s3dlio
(building the plugin does it again, eagerly): one client, one configuration, no s3fs, and a
``ModelCheckpoint(dirpath="s3://...")`` built before the plugin works. The default CSV logger
under ``Trainer(default_root_dir="s3://...")`` appends to its metrics file, which the fsspec
filesystem supports as s3fs does (the object is rewritten). For uploads in the background,
wrap the plugin in Lightning's ``AsyncCheckpointIO``.

>>> from lightning.pytorch import Trainer                              # doctest: +SKIP
>>> from lightning.pytorch.callbacks import ModelCheckpoint
>>> from s3dlio_torch.lightning import S3LightningCheckpoint
>>> trainer = Trainer(plugins=[S3LightningCheckpoint(region="us-east-1")],
...                   callbacks=[ModelCheckpoint(dirpath="s3://bucket/run1/", save_top_k=2, monitor="loss")])
>>> trainer.fit(model, ckpt_path="last")
>>> Trainer(default_root_dir="s3://bucket/run2/", plugins=[S3LightningCheckpoint()]).fit(model)
"""

from __future__ import annotations

import os
from typing import Any

from lightning.pytorch.plugins.io import CheckpointIO

from s3dlio import fsspec as s3dlio_fsspec
from s3dlio.client import Client
from s3dlio.config import Config
from s3dlio.ops import resolve

from .._compat import S3ClientConfig, client_config
from ..checkpoint import load, save

__all__ = ["S3LightningCheckpoint"]


class S3LightningCheckpoint(CheckpointIO):
    """A Lightning ``CheckpointIO`` that saves, loads and removes checkpoints through s3dlio.

    ``region``/``endpoint``/``s3client_config`` apply to this plugin's checkpoints only, over
    s3dlio's settings (which stay as they are), as for :class:`~s3dlio_torch.S3Checkpoint`;
    ``client`` (an :class:`s3dlio.Client`) gives all the settings instead. ``.region`` is the
    region given, as in s3torchconnector (None when s3dlio's configured one applies).
    """

    def __init__(
        self, region: str | None = None, s3client_config: S3ClientConfig | None = None,
        endpoint: str | None = None, *, config: Config | None = None, client: Client | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.region = region
        self.config = client_config(region, endpoint, s3client_config, config, client, "S3LightningCheckpoint")
        s3dlio_fsspec.register(["s3", "az"])

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike[str], storage_options: Any | None = None
    ) -> None:
        """``torch.save`` of ``checkpoint`` streamed to ``path``. ``storage_options`` must be None:
        settings come from the plugin's constructor (TypeError otherwise, as Lightning's
        ``TorchCheckpointIO`` raises)."""
        if storage_options is not None:
            raise TypeError(
                f"S3LightningCheckpoint.save_checkpoint({os.fspath(path)!r}, storage_options=...): "
                "s3dlio takes its settings from the plugin's constructor; pass them there "
                "(S3LightningCheckpoint(region=..., endpoint=..., s3client_config=...)), "
                "and storage_options=None"
            )
        save(checkpoint, os.fspath(path), config=self.config)

    def load_checkpoint(
        self, path: str | os.PathLike[str], map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """The checkpoint at ``path``; ``FileNotFoundError`` (s3dlio's NotFoundError) when absent."""
        return load(  # type: ignore[no-any-return]
            os.fspath(path), map_location=map_location, weights_only=weights_only, config=self.config
        )

    def remove_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Delete the checkpoint object at ``path``; nothing happens when it is already gone."""
        uri = os.fspath(path)
        parsed, store = resolve(uri, self.config)
        store.delete(parsed.key)  # a missing object is not an error

    def teardown(self) -> None:
        """Nothing to release: stores are shared by the process."""
