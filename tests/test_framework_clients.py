"""Every framework object takes ``client=`` and then talks to that client's server only.

The environment points at the session's moto server; each object here gets a Client for a
second moto server (its own process, so its data is its own) and must read and write there:
the bucket exists only on the second server, and boto3 checks what landed where. The
TensorFlow and JAX tests are named ``test_tensorflow_*``/``test_jax_*``: conftest runs those
after the fork tests.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from typing import IO, Any, cast

import pytest
import torch
from test_client import OtherMoto

import s3dlio
from s3dlio.client import settings_of
from s3dlio.errors import ConfigError

BUCKET = "framework-clients"


@pytest.fixture(scope="module")
def second() -> Iterator[OtherMoto]:
    server = OtherMoto()
    server.client().create_bucket(Bucket=BUCKET)
    yield server
    server.proc.kill()
    server.proc.wait()


@pytest.fixture
def client(moto_server: Any, second: OtherMoto) -> s3dlio.Client:
    """A client for the second server, while the environment names the first."""
    assert s3dlio.Config.resolve().endpoint_url == moto_server.endpoint != second.endpoint
    return s3dlio.Client(endpoint_url=second.endpoint)


def _put(server: OtherMoto, key: str, body: bytes) -> None:
    server.client().put_object(Bucket=BUCKET, Key=key, Body=body)


def _body(server: OtherMoto, key: str) -> bytes:
    return bytes(server.client().get_object(Bucket=BUCKET, Key=key)["Body"].read())


def _keys(server: OtherMoto, prefix: str) -> list[str]:
    listed = server.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(item["Key"] for item in listed)


def _read(reader: Any) -> bytes:
    return bytes(reader.read())


# -- torch -------------------------------------------------------------------------------------
@pytest.mark.parametrize("workers", [0, 1], ids=["in-process", "spawn-worker"])
def test_torch_datasets_read_through_the_client(second: OtherMoto, client: s3dlio.Client, workers: int) -> None:
    from s3dlio_torch import S3IterableDataset, S3MapDataset

    for i in range(4):
        _put(second, f"ds/{i}.bin", b"second-%d" % i)
    uri = f"s3://{BUCKET}/ds/"
    dataset = S3IterableDataset.from_prefix(uri, client=client, key_cache=False, transform=_read)
    context = multiprocessing.get_context("spawn") if workers else None
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=workers, multiprocessing_context=context
    )
    assert sorted(loader) == [b"second-%d" % i for i in range(4)]
    if not workers:
        mapped = S3MapDataset.from_prefix(uri, client=client, key_cache=False, transform=_read)
        assert [mapped[i] for i in range(len(mapped))] == [b"second-%d" % i for i in range(4)]


def test_torch_checkpoints_write_and_read_through_the_client(second: OtherMoto, client: s3dlio.Client) -> None:
    import s3dlio_torch
    from s3dlio_torch.lightning import S3LightningCheckpoint

    state = {"w": torch.arange(6, dtype=torch.float32)}
    ckpt = s3dlio_torch.S3Checkpoint(client=client)
    with ckpt.writer(f"s3://{BUCKET}/ckpt/a.pt") as f:
        torch.save(state, cast(IO[bytes], f))
    assert _body(second, "ckpt/a.pt").startswith(b"PK")  # torch's zip format, on the second server
    with ckpt.reader(f"s3://{BUCKET}/ckpt/a.pt") as f:
        assert torch.equal(torch.load(cast(IO[bytes], f))["w"], state["w"])
    s3dlio_torch.save(state, f"s3://{BUCKET}/ckpt/b.pt", client=client)
    assert torch.equal(s3dlio_torch.load(f"s3://{BUCKET}/ckpt/b.pt", client=client)["w"], state["w"])
    plugin = S3LightningCheckpoint(client=client)
    plugin.save_checkpoint({"step": 3}, f"s3://{BUCKET}/ckpt/l.ckpt")
    assert plugin.load_checkpoint(f"s3://{BUCKET}/ckpt/l.ckpt") == {"step": 3}
    manager = s3dlio_torch.CheckpointManager(f"s3://{BUCKET}/managed/", client=client)
    manager.save(1, {"model": state})
    assert torch.equal(manager.load()["model"]["w"], state["w"])
    assert "managed/step-00000001/manifest.json" in " ".join(_keys(second, "managed/"))
    assert _keys(second, "ckpt/") == ["ckpt/a.pt", "ckpt/b.pt", "ckpt/l.ckpt"]


def test_dcp_writer_and_reader_use_the_client(second: OtherMoto, client: s3dlio.Client) -> None:
    import torch.distributed.checkpoint as dcp

    from s3dlio_torch.dcp import StorageReader, StorageWriter

    uri = f"s3://{BUCKET}/dcp/step-1"
    state = {"w": torch.arange(10, dtype=torch.float32), "b": torch.ones(3)}
    with pytest.warns(UserWarning):  # no process group: torch warns and saves as one process
        dcp.save(state, storage_writer=StorageWriter(uri, client=client))
    assert "dcp/step-1/.metadata" in _keys(second, "dcp/")
    target = {"w": torch.zeros(10), "b": torch.zeros(3)}
    with pytest.warns(UserWarning):
        dcp.load(target, storage_reader=StorageReader(uri, client=client))
    assert torch.equal(target["w"], state["w"]) and torch.equal(target["b"], state["b"])


def test_fsspec_filesystem_uses_the_client(second: OtherMoto, client: s3dlio.Client) -> None:
    from s3dlio.fsspec import S3FileSystem

    fs = S3FileSystem(client=client)
    with fs.open(f"{BUCKET}/fs/x.txt", "wb") as f:
        f.write(b"through fsspec")
    assert _body(second, "fs/x.txt") == b"through fsspec"
    assert fs.cat_file(f"{BUCKET}/fs/x.txt") == b"through fsspec"


# -- conflicting settings ------------------------------------------------------------------------
def test_a_client_with_other_settings_is_refused(client: s3dlio.Client) -> None:
    import s3dlio_torch
    from s3dlio_torch.dcp import S3StorageReader, StorageWriter

    uri = f"s3://{BUCKET}/x/"
    config = s3dlio.Config.resolve()
    cases: list[tuple[str, Any]] = [
        ("config=", lambda: s3dlio_torch.S3IterableDataset.from_prefix(uri, client=client, config=config)),
        ("region=", lambda: s3dlio_torch.S3Checkpoint(region="eu-west-1", client=client)),
        ("endpoint=", lambda: StorageWriter(uri, endpoint="http://127.0.0.1:1", client=client)),
        ("s3client_config=", lambda: S3StorageReader(
            None, uri, s3dlio_torch.S3ClientConfig(), client=client)),
        ("config=", lambda: s3dlio_torch.save({}, uri + "a.pt", client=client, config=config)),
        ("config=", lambda: s3dlio.loader.Loader([uri + "a"], client=client, config=config)),
        ("config=", lambda: s3dlio.checkpoint.CheckpointStore(uri, client=client, config=config)),
    ]  # fmt: skip
    for named, build in cases:
        with pytest.raises(ConfigError, match=f"both client= and {named}"):
            build()
    with pytest.raises(ConfigError, match="pass an s3dlio.Client"):
        settings_of(client=config)  # type: ignore[arg-type]
    assert settings_of() is None and settings_of(client=client) == client.config


# -- TensorFlow and JAX (by these names conftest runs them last) --------------------------------
def test_tensorflow_tfrecords_and_checkpoints_use_the_client(second: OtherMoto, client: s3dlio.Client) -> None:
    import numpy as np
    import tensorflow as tf

    import s3dlio_tf
    from s3dlio.formats.tfrecord import write_tfrecords

    _put(second, "tf/0.tfrecord", write_tfrecords([b"r0", b"r1"]))
    _put(second, "tf/1.tfrecord", write_tfrecords([b"r2"]))
    records = s3dlio_tf.TFRecordDataset(f"s3://{BUCKET}/tf/", client=client, key_cache=False)
    assert [bytes(r.numpy()) for r in records] == [b"r0", b"r1", b"r2"]
    objects = s3dlio_tf.dataset(f"s3://{BUCKET}/tf/", client=client, key_cache=False)
    assert len(list(objects)) == 2
    ckpt = tf.train.Checkpoint(v=tf.Variable(np.arange(3.0)))
    where = s3dlio_tf.save(ckpt, f"s3://{BUCKET}/tfckpt/", client=client)
    assert s3dlio_tf.latest_checkpoint(f"s3://{BUCKET}/tfckpt/", client=client) == where
    ckpt.v.assign(np.zeros(3))
    s3dlio_tf.restore(ckpt, where, client=client).assert_consumed()
    assert list(ckpt.v.numpy()) == [0.0, 1.0, 2.0]
    assert any(k.endswith("manifest.json") for k in _keys(second, "tfckpt/"))
    with pytest.raises(ConfigError, match="both client= and config="):
        s3dlio_tf.TFRecordDataset(f"s3://{BUCKET}/tf/", client=client, config=s3dlio.Config.resolve())


def test_jax_grain_source_and_array_tree_use_the_client(
    second: OtherMoto, client: s3dlio.Client
) -> None:
    import numpy as np

    from s3dlio_jax.checkpoint import ArrayTreeHandler, ArrayTreeRestore, ArrayTreeSave
    from s3dlio_jax.data import S3DataSource

    for i in range(3):
        _put(second, f"grain/{i}", b"g%d" % i)
    source = S3DataSource.from_prefix(f"s3://{BUCKET}/grain/", client=client, key_cache=False)
    assert [bytes(source[i]) for i in range(len(source))] == [b"g0", b"g1", b"g2"]
    with pytest.raises(ConfigError, match="both client= and region="):
        S3DataSource.from_prefix(f"s3://{BUCKET}/grain/", client=client, region="eu-west-1")
    handler = ArrayTreeHandler(client=client)
    tree = {"a": np.arange(5, dtype=np.float32), "b": np.ones((2, 2), np.int32)}
    handler.save(f"s3://{BUCKET}/tree", ArrayTreeSave(tree))
    assert "tree/" in " ".join(_keys(second, "tree/"))
    restored = handler.restore(f"s3://{BUCKET}/tree", ArrayTreeRestore(tree))  # type: ignore[arg-type]
    assert np.array_equal(restored["a"], tree["a"]) and np.array_equal(restored["b"], tree["b"])
