"""s3dlio_torch.lightning: Lightning's CheckpointIO on object storage, with a real Trainer.

The plugin on its own on mem://, file:// and moto's S3; then Trainer runs that save through
ModelCheckpoint (top-k retention removes old checkpoints), resume from a checkpoint on S3, and
upload in the background through Lightning's AsyncCheckpointIO. Lightning's usual orders work
too: a ``ModelCheckpoint(dirpath="s3://...")`` built before the plugin (in a fresh process, so
only importing s3dlio_torch has pointed fsspec at s3dlio), and s3torchconnector's README form,
``Trainer(default_root_dir="s3://...", plugins=[...])`` with Lightning's default CSV logger,
which appends to its metrics file (``"ab"``).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pl = pytest.importorskip("lightning.pytorch")

from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402
from lightning.pytorch.plugins.io import AsyncCheckpointIO  # noqa: E402
from test_torch_checkpoint import assert_same, model_state  # noqa: E402

import s3dlio  # noqa: E402
from s3dlio_torch.lightning import S3LightningCheckpoint  # noqa: E402


class Regression(pl.LightningModule):  # type: ignore[misc]
    """A linear model on fixed random data: a few quick, deterministic steps."""

    def __init__(self, lr: float = 0.1) -> None:
        super().__init__()
        self.save_hyperparameters()  # as nearly every Lightning example does: hparams.yaml beside the logs
        self.layer = torch.nn.Linear(8, 1)

    def training_step(self, batch: Any, _: int) -> Any:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("loss", loss)
        self.log("progress", float(self.current_epoch))  # what ModelCheckpoint ranks by
        return loss

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def train_dataloader(self) -> Any:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(64, 8, generator=gen)
        return torch.utils.data.DataLoader(list(zip(x, x.sum(1, keepdim=True), strict=True)), batch_size=16)


def trainer(plugin: Any, callbacks: list[Any], max_epochs: int) -> Any:
    return pl.Trainer(
        max_epochs=max_epochs, plugins=[plugin], callbacks=callbacks, logger=False, accelerator="cpu",
        enable_progress_bar=False, enable_model_summary=False, deterministic=True,
    )  # fmt: skip


def test_save_load_remove(root: str) -> None:
    io = S3LightningCheckpoint(region="us-east-1")
    state = {**model_state(), "epoch": 3, "hyper_parameters": {"lr": 0.1}}
    io.save_checkpoint(state, root + "epoch=3.ckpt")
    assert_same(state, io.load_checkpoint(root + "epoch=3.ckpt", map_location="cpu"))
    io.remove_checkpoint(root + "epoch=3.ckpt")
    assert not s3dlio.exists(root + "epoch=3.ckpt")
    io.remove_checkpoint(root + "epoch=3.ckpt")  # already gone: nothing to do
    with pytest.raises(FileNotFoundError, match="epoch=3.ckpt"):
        io.load_checkpoint(root + "epoch=3.ckpt")


def test_failed_save_leaves_no_checkpoint(root: str) -> None:
    io = S3LightningCheckpoint()
    with pytest.raises(Exception, match="pickle|lambda"):
        io.save_checkpoint({"w": torch.ones(3), "bad": lambda: 0}, root + "bad.ckpt")
    assert not s3dlio.exists(root + "bad.ckpt")


def test_bad_arguments_are_named() -> None:
    with pytest.raises(TypeError, match="storage_options"):
        S3LightningCheckpoint().save_checkpoint({}, "mem://x/y.ckpt", storage_options={"a": 1})
    io = S3LightningCheckpoint(region="eu-west-3")  # this plugin's requests only; global settings stay
    assert io.config.region == "eu-west-3" and s3dlio.config.default_config().region == "us-east-1"


@pytest.mark.parametrize("backend", ["path", "s3"])
def test_trainer_keeps_top_k_and_resumes(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    base = request.getfixturevalue("s3_bucket") + "run/" if backend == "s3" else f"{tmp_path}/run/"

    def keep_two() -> ModelCheckpoint:
        return ModelCheckpoint(dirpath=base, filename="{epoch}", save_top_k=2, monitor="progress", mode="max")

    model = Regression()
    trainer(S3LightningCheckpoint(), [keep_two()], max_epochs=4).fit(model)
    saved = sorted(uri.rsplit("/", 1)[1] for uri in s3dlio.list(base))
    assert saved == ["epoch=2.ckpt", "epoch=3.ckpt"], saved  # epochs 0 and 1 were removed

    resumed = Regression()
    again = trainer(S3LightningCheckpoint(), [keep_two()], max_epochs=4)
    # Lightning looks at the directory through fsspec, which reaches s3dlio for s3:// too
    with pytest.warns(UserWarning, match="exists and is not empty"):
        again.fit(resumed, ckpt_path=base + "epoch=3.ckpt")  # all 4 epochs done: restores, trains nothing
    assert again.current_epoch == 4 and again.global_step == 16
    assert_same(model.state_dict(), resumed.state_dict())


def test_async_checkpoint_io_uploads_in_the_background(s3_bucket: str) -> None:
    base = s3_bucket + "async/"
    keep = ModelCheckpoint(dirpath=base, filename="last", save_top_k=1, monitor="progress", mode="max")
    model = Regression()
    trainer(AsyncCheckpointIO(S3LightningCheckpoint()), [keep], max_epochs=2).fit(model)
    state = S3LightningCheckpoint().load_checkpoint(base + "last.ckpt")
    assert state["epoch"] == 1
    assert_same(model.state_dict(), state["state_dict"])


# A fresh process: nothing but the imports has registered anything with fsspec; the callback is
# built before the plugin (without the import-time registration it fails: "Install s3fs").
_CALLBACK_FIRST = """
import json, sys
import torch
import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from s3dlio_torch.lightning import S3LightningCheckpoint
from test_lightning import Regression, trainer

base = sys.argv[1]
keep = ModelCheckpoint(dirpath=base, filename="{epoch}", save_top_k=2, monitor="progress", mode="max")
model = Regression()
trainer(S3LightningCheckpoint(), [keep], max_epochs=3).fit(model)
keep_again = ModelCheckpoint(dirpath=base, filename="{epoch}", save_top_k=2, monitor="progress", mode="max")
resumed = Regression()
again = trainer(S3LightningCheckpoint(), [keep_again], max_epochs=4)
again.fit(resumed, ckpt_path=base + "epoch=2.ckpt")  # one more epoch
saved = [(k, torch.equal(v, resumed.state_dict()[k])) for k, v in model.state_dict().items()]
print(json.dumps({"epoch": again.current_epoch, "step": again.global_step,
                  "best": keep.best_model_path, "changed": not all(same for _, same in saved)}))
"""


def test_model_checkpoint_built_before_the_plugin(s3_bucket: str) -> None:
    base = s3_bucket + "first/"
    here = str(Path(__file__).parent)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CALLBACK_FIRST), base],
        capture_output=True, text=True, timeout=240, env={**os.environ, "PYTHONPATH": here},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["best"] == base + "epoch=2.ckpt"
    assert (result["epoch"], result["step"]) == (4, 16)  # resumed after epoch 2, trained epoch 3
    assert result["changed"]  # the extra epoch moved the weights on from the first run's
    saved = sorted(uri.rsplit("/", 1)[1] for uri in s3dlio.list(base))
    assert saved == ["epoch=2.ckpt", "epoch=3.ckpt"], saved


def test_default_root_dir_with_the_default_logger(s3_bucket: str) -> None:
    root = s3_bucket + "root/"

    def run(model: Any, max_epochs: int, ckpt_path: str | None = None) -> Any:
        keep = ModelCheckpoint(filename="{epoch}", save_top_k=2, monitor="progress", mode="max")
        fit = pl.Trainer(
            default_root_dir=root, plugins=[S3LightningCheckpoint()], callbacks=[keep], max_epochs=max_epochs,
            log_every_n_steps=1, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
            deterministic=True,
        )  # fmt: skip
        fit.fit(model, ckpt_path=ckpt_path)
        return fit

    model = Regression()
    first = run(model, max_epochs=4)
    assert type(first.logger).__name__ == "CSVLogger"  # Lightning's default without tensorboard
    version = root + "lightning_logs/version_0/"
    saved = sorted(uri.rsplit("/", 1)[1] for uri in s3dlio.list(version + "checkpoints/"))
    assert saved == ["epoch=2.ckpt", "epoch=3.ckpt"], saved  # top-k removed epochs 0 and 1
    # the metrics file was written once per step, each time appended to ("a"): every step is there
    rows = list(csv.DictReader(bytes(s3dlio.get(version + "metrics.csv")).decode().splitlines()))
    assert sorted(int(row["step"]) for row in rows if row["loss"]) == list(range(16))
    assert b"lr: 0.1" in bytes(s3dlio.get(version + "hparams.yaml"))

    resumed = Regression()
    again = run(resumed, max_epochs=4, ckpt_path=version + "checkpoints/epoch=3.ckpt")
    assert again.current_epoch == 4 and again.global_step == 16
    assert again.logger.log_dir == root + "lightning_logs/version_1"  # the next version, found by listing
    assert_same(model.state_dict(), resumed.state_dict())
