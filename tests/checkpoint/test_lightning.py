"""s3dlio_torch.lightning: Lightning's CheckpointIO on object storage, with a real Trainer.

The plugin on its own on mem://, file:// and moto's S3; then Trainer runs that save through
ModelCheckpoint (top-k retention removes old checkpoints), resume from a checkpoint on S3, and
upload in the background through Lightning's AsyncCheckpointIO.
"""

from __future__ import annotations

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

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(8, 1)

    def training_step(self, batch: Any, _: int) -> Any:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("loss", loss)
        self.log("progress", float(self.current_epoch))  # what ModelCheckpoint ranks by
        return loss

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)

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
