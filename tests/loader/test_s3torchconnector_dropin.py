"""Programs written from s3torchconnector's README, run with ``import s3dlio_torch as s3torchconnector``.

Every test points the environment at another region and at a closed port
(``AWS_ENDPOINT_URL=http://127.0.0.1:9``), and gives ``region=``/``endpoint=`` (moto's)
explicitly, as s3torchconnector's examples do: a request that ignored them would fail.
"""

from __future__ import annotations

import inspect
import io
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from _elsewhere import REGION, global_settings_unchanged

torch = pytest.importorskip("torch")
import torch.distributed.checkpoint as dcp  # noqa: E402
from torch.distributed.checkpoint.planner import SavePlan  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

import s3dlio  # noqa: E402
import s3dlio_torch as s3torchconnector  # noqa: E402
from s3dlio import oplog  # noqa: E402
from s3dlio.errors import ConfigError  # noqa: E402
from s3dlio.loader import PrefixSource  # noqa: E402
from s3dlio_torch import S3ClientConfig, S3ReaderConstructor  # noqa: E402
from s3dlio_torch.dcp import S3StorageReader, S3StorageWriter  # noqa: E402
from s3dlio_torch.lightning import S3LightningCheckpoint  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore:torch.distributed is disabled", "ignore:.*forked.*:RuntimeWarning"
)

COUNT = 24
MiB = 1 << 20


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3DLIO_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def bucket(s3_bucket: str) -> str:
    """A fresh moto bucket holding ``data/obj-NN`` (``NN`` as text) and one 3 MiB ``big/blob``."""
    s3dlio.put_many([(f"{s3_bucket}data/obj-{i:02d}", b"%02d" % i) for i in range(COUNT)])
    s3dlio.put(f"{s3_bucket}big/blob", bytes(range(256)) * (3 * MiB // 256))
    return s3_bucket


def read_number(reader: Any) -> int:
    """The README's transform shape: takes the S3Reader; module level so spawn can pickle it."""
    assert reader.bucket and reader.key.startswith("data/obj-")
    return int(reader.read())


def head_and_tail(reader: Any) -> tuple[str, bytes, bytes, int]:
    """Reads only parts of an object: seek, read, readinto, tell."""
    first = reader.read(4)
    end = reader.seek(0, 2)
    reader.seek(max(0, end - 4))
    buf = bytearray(4)
    got = reader.readinto(buf)
    return reader.key, first, bytes(buf[:got]), reader.tell()


# -- datasets ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("start", "reader"), [("fork", "sequential"), ("fork", "range_based"), ("spawn", "default")]
)
def test_iterable_dataset_readme(bucket: str, endpoint: str, start: str, reader: str) -> None:
    constructor = getattr(S3ReaderConstructor, reader)()
    dataset = s3torchconnector.S3IterableDataset.from_prefix(
        f"{bucket}data/", region=REGION, endpoint=endpoint, transform=read_number,
        reader_constructor=constructor, s3client_config=S3ClientConfig(max_attempts=3),
    )  # fmt: skip
    loader = DataLoader(dataset, batch_size=None, num_workers=2, multiprocessing_context=start)
    assert sorted(int(x) for x in loader) == list(range(COUNT))  # sharded: each object exactly once
    assert dataset.loader.config is not None and dataset.loader.config.max_attempts == 3
    assert dataset.region == REGION and global_settings_unchanged()


def test_range_based_items_cross_processes_and_read_in_the_parent(bucket: str, endpoint: str) -> None:
    dataset = s3torchconnector.S3IterableDataset.from_objects(
        [f"{bucket}big/blob", f"{bucket}data/obj-07"], region=REGION, endpoint=endpoint,
        reader_constructor=S3ReaderConstructor.range_based(buffer_size=64 * 1024),
    )  # fmt: skip
    items = list(DataLoader(dataset, batch_size=None, num_workers=2, multiprocessing_context="fork"))
    by_key = {item.key: item for item in items}
    assert isinstance(by_key["big/blob"], s3torchconnector.RangedS3Reader)
    assert by_key["data/obj-07"].read() == b"07"
    blob = by_key["big/blob"]
    blob.seek(1000)
    assert blob.read(3) == bytes([1000 % 256, 1001 % 256, 1002 % 256]) and blob.tell() == 1003


@pytest.mark.parametrize("reader", ["sequential", "range_based"])
def test_map_dataset_readme(bucket: str, endpoint: str, reader: str) -> None:
    dataset = s3torchconnector.S3MapDataset.from_prefix(
        bucket, region=REGION, endpoint=endpoint, transform=head_and_tail,
        reader_constructor=getattr(S3ReaderConstructor, reader)(),
    )  # fmt: skip
    loader = DataLoader(dataset, batch_size=None, num_workers=2, multiprocessing_context="fork")
    got = {key: (first, last, pos) for key, first, last, pos in loader}
    blob = bytes(range(256)) * (3 * MiB // 256)
    assert got["big/blob"] == (blob[:4], blob[-4:], len(blob))
    assert got["data/obj-05"] == (b"05", b"05", 2)  # short object: the 4-byte reads come back short
    assert len(got) == COUNT + 1


def gets(log: Path) -> tuple[int, int]:
    """(GET requests, bytes they returned) in an op-log."""
    records = [r for r in oplog.read(log) if r.op == "GET"]
    return len(records), sum(r.bytes for r in records)


@pytest.mark.parametrize(("reader", "most_bytes"), [("range_based", 128 * 1024), ("sequential", 3 * MiB)])
def test_reader_constructor_decides_what_is_fetched(
    bucket: str, endpoint: str, tmp_path: Path, reader: str, most_bytes: int
) -> None:
    kind = getattr(S3ReaderConstructor, reader)
    constructor = kind(buffer_size=64 * 1024) if reader == "range_based" else kind()
    dataset = s3torchconnector.S3MapDataset.from_objects(
        [f"{bucket}big/blob"], region=REGION, endpoint=endpoint, reader_constructor=constructor
    )
    log = tmp_path / "ops.tsv"
    s3dlio.init_op_log(log, lossless=True)
    try:
        item = dataset[0]
        item.seek(2 * MiB)
        assert item.read(10) == bytes((2 * MiB + i) % 256 for i in range(10))
    finally:
        assert s3dlio.finalize_op_log() == 0
    requests, nbytes = gets(log)
    endpoints = {r.endpoint for r in oplog.read(log)}
    assert endpoints == {endpoint}, endpoints  # every request went where endpoint= said
    if reader == "range_based":
        assert requests >= 1 and nbytes <= most_bytes, (requests, nbytes)  # only the 64 KiB block asked for
    else:
        assert nbytes == most_bytes  # the whole object, fetched before the item existed


def test_from_prefix_lists_when_the_dataset_is_built(bucket: str, endpoint: str, moto_server: Any) -> None:
    """s3torchconnector's iterable dataset lists at every ``__iter__``; s3dlio's lists once, when
    built (workers then fork with the key list): objects added later appear in a dataset built
    again, and one deleted meanwhile fails its epoch, or is skipped with ``on_error="skip"``."""

    def build(**options: Any) -> Any:
        return s3torchconnector.S3IterableDataset.from_prefix(
            f"{bucket}data/", region=REGION, endpoint=endpoint, transform=read_number, **options
        )

    dataset, strict = build(on_error="skip"), build()
    client, name = moto_server.client(), bucket[5:-1]
    client.put_object(Bucket=name, Key="data/obj-99", Body=b"99")
    client.delete_object(Bucket=name, Key="data/obj-00")
    with pytest.warns(RuntimeWarning, match="data/obj-00"):
        assert sorted(dataset) == list(range(1, COUNT))
    assert dataset.skipped == 1
    with pytest.raises(FileNotFoundError, match="data/obj-00"):
        list(strict)
    assert sorted(build()) == [*range(1, COUNT), 99]


def test_folder_markers_are_not_items(bucket: str, endpoint: str, moto_server: Any) -> None:
    """Empty ``data/`` and ``data/sub/`` objects (folder markers of consoles and tools) are not
    listed by ``from_prefix``; s3torchconnector yields them as empty items."""
    client, name = moto_server.client(), bucket[5:-1]
    for marker in ("data/", "data/sub/"):
        client.put_object(Bucket=name, Key=marker, Body=b"")
    client.put_object(Bucket=name, Key="data/obj-50", Body=b"50")
    expected = [*range(COUNT), 50]
    iterable = s3torchconnector.S3IterableDataset.from_prefix(
        f"{bucket}data/", region=REGION, endpoint=endpoint, transform=read_number
    )
    assert sorted(iterable) == expected
    mapped = s3torchconnector.S3MapDataset.from_prefix(f"{bucket}data/", region=REGION, endpoint=endpoint)
    assert sorted(int(mapped[i].read()) for i in range(len(mapped))) == expected


def test_range_based_refuses_record_formats(bucket: str, endpoint: str) -> None:
    with pytest.raises(ConfigError, match="records need the whole object"):
        s3torchconnector.S3IterableDataset.from_prefix(
            f"{bucket}data/", region=REGION, endpoint=endpoint, samples="tfrecord",
            reader_constructor=S3ReaderConstructor.range_based(),
        )  # fmt: skip


def refuse(reader: Any) -> None:
    """A transform that rejects its item, as user code does."""
    raise ValueError(f"bad sample {reader.key}")


@pytest.mark.parametrize("reader", ["sequential", "range_based"])
@pytest.mark.parametrize("kind", ["S3IterableDataset", "S3MapDataset"])
def test_transform_errors_keep_their_type(bucket: str, endpoint: str, kind: str, reader: str) -> None:
    """``except ValueError`` around the loop catches the transform's own error, as with
    s3torchconnector; a note names the object it failed on."""
    dataset = getattr(s3torchconnector, kind).from_objects(
        [f"{bucket}data/obj-03"], region=REGION, endpoint=endpoint, transform=refuse,
        reader_constructor=getattr(S3ReaderConstructor, reader)(),
    )  # fmt: skip
    with pytest.raises(ValueError, match="bad sample data/obj-03") as caught:
        next(iter(dataset)) if kind == "S3IterableDataset" else dataset[0]
    assert type(caught.value) is ValueError
    assert caught.value.__notes__ == [f"transform refuse failed on {bucket}data/obj-03"]


@pytest.mark.parametrize(
    "build",
    [
        lambda: s3torchconnector.S3IterableDataset.from_prefix("bucket/data/", region=REGION),
        lambda: s3torchconnector.S3MapDataset.from_objects(["s3://bucket/a", "bucket/b"], region=REGION),
        lambda: s3torchconnector.S3Checkpoint(REGION).writer("bucket/key.ckpt"),
        lambda: s3torchconnector.S3Checkpoint(REGION).reader("bucket/key.ckpt"),
    ],
    ids=["from_prefix", "from_objects", "writer", "reader"],
)
def test_a_uri_without_scheme_is_refused(build: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """s3torchconnector raises ValueError for ``bucket/key``; s3dlio would have read or written a
    local file under the working directory."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"no scheme.*write s3://bucket/\S+ for an object, or file:///"):
        build()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["S3MapDataset", "S3IterableDataset"])
def test_an_empty_object_list_is_an_empty_dataset(kind: str) -> None:
    """s3torchconnector's own tests build ``from_objects([])``; it reads nothing."""
    ds = getattr(s3torchconnector, kind).from_objects([], region=REGION)
    assert len(ds) == 0 and list(DataLoader(ds, batch_size=None)) == []


def test_an_unsharded_iterable_dataset_has_no_length(bucket: str, endpoint: str) -> None:
    """With ``enable_sharding=False`` every worker reads every object: a length of one worker's
    share made Lightning (which sizes an epoch from ``len(DataLoader)``) skip objects."""
    ds = s3torchconnector.S3IterableDataset.from_prefix(f"{bucket}data/", region=REGION, endpoint=endpoint,
                                                        enable_sharding=False)  # fmt: skip
    loader = DataLoader(ds, batch_size=None, num_workers=2)
    with pytest.raises(TypeError):
        len(loader)
    assert sorted(item.key for item in loader) == sorted([f"data/obj-{i:02d}" for i in range(COUNT)] * 2)


def test_explicit_file_uris_still_work(tmp_path: Path) -> None:
    checkpoint = s3torchconnector.S3Checkpoint(REGION)
    uri = f"file://{tmp_path}/ckpt/epoch0.ckpt"
    with checkpoint.writer(uri) as writer:
        torch.save({"w": torch.ones(3)}, writer)
    with checkpoint.reader(uri) as reader:
        assert torch.equal(torch.load(reader)["w"], torch.ones(3))
    items = s3torchconnector.S3MapDataset.from_objects([uri])
    assert items[0].key == uri.removeprefix("file:///")


# -- readers ----------------------------------------------------------------------------------------
def readers(bucket: str, endpoint: str) -> dict[str, Any]:
    """Every reader a user gets for ``big/blob``, by where it comes from."""
    client = s3torchconnector.S3Client(REGION, endpoint=endpoint)
    name, uri = bucket[5:-1], f"{bucket}big/blob"
    ranged = S3ReaderConstructor.range_based(buffer_size=64 * 1024)
    checkpoint = s3torchconnector.S3Checkpoint
    return {
        "get_object": client.get_object(name, "big/blob"),
        "get_object-range_based": client.get_object(name, "big/blob", reader_constructor=ranged),
        "checkpoint": checkpoint(REGION, endpoint).reader(uri),
        "checkpoint-range_based": checkpoint(REGION, endpoint, reader_constructor=ranged).reader(uri),
        "map_dataset": s3torchconnector.S3MapDataset.from_objects([uri], region=REGION, endpoint=endpoint)[0],
        "map_dataset-range_based": s3torchconnector.S3MapDataset.from_objects(
            [uri], region=REGION, endpoint=endpoint, reader_constructor=ranged)[0],
    }  # fmt: skip


SOURCES = ["get_object", "get_object-range_based", "checkpoint", "checkpoint-range_based", "map_dataset",
           "map_dataset-range_based"]  # fmt: skip


@pytest.mark.parametrize("source", SOURCES)
def test_every_reader_is_an_s3reader(bucket: str, endpoint: str, source: str) -> None:
    from s3dlio_torch.s3reader import RangedS3Reader, S3Reader, SequentialS3Reader

    reader = readers(bucket, endpoint)[source]
    assert isinstance(reader, s3torchconnector.S3Reader) and S3Reader is s3torchconnector.S3Reader
    assert (reader.bucket, reader.key) == (bucket[5:-1], "big/blob")
    if source.startswith("get_object") or source.startswith("map_dataset"):
        expected = RangedS3Reader if source.endswith("range_based") else SequentialS3Reader
        assert type(reader) is expected


@pytest.mark.parametrize("source", SOURCES)
def test_seek_stops_at_the_end(bucket: str, endpoint: str, source: str) -> None:
    """s3torchconnector's seek: past the end is the end, before the start a ValueError, an
    offset that is not an int a TypeError."""
    reader = readers(bucket, endpoint)[source]
    size = 3 * MiB
    assert reader.seek(size + 100) == size and reader.tell() == size and reader.read() == b""
    assert reader.seek(7, io.SEEK_END) == size
    assert reader.seek(-2, io.SEEK_END) == size - 2 and reader.read() == bytes([254, 255])
    assert reader.seek(10, io.SEEK_SET) == 10 and reader.seek(1 << 40, io.SEEK_CUR) == size
    assert reader.seek(-size, io.SEEK_CUR) == 0 and reader.read(2) == b"\x00\x01"
    with pytest.raises(ValueError, match="negative position -1"):
        reader.seek(-1)
    with pytest.raises(ValueError, match="negative position"):
        reader.seek(-size - 1, io.SEEK_END)
    with pytest.raises(TypeError, match="offset must be an int, got float 1.5"):
        reader.seek(1.5)
    with pytest.raises(ValueError, match="whence=3"):
        reader.seek(0, 3)
    assert reader.tell() == 2  # a refused seek moves nothing


@pytest.mark.parametrize("source", SOURCES)
def test_prefetch_starts_the_fetch(bucket: str, endpoint: str, source: str) -> None:
    """s3torchconnector's ``SequentialS3Reader.prefetch()``, on every reader: it starts what a
    lazy reader would fetch at its first read, and is a no-op on one already fetched."""
    reader = readers(bucket, endpoint)[source]
    reader.seek(MiB)
    reader.prefetch()
    if source == "checkpoint":  # the read-ahead from the position is under way before any read
        assert MiB // reader._block in reader._blocks
    reader.prefetch()  # twice is fine
    assert reader.tell() == MiB and reader.read(3) == bytes([0, 1, 2])


def test_prefetch_of_a_lazy_reader_finds_a_missing_object(bucket: str, endpoint: str) -> None:
    client = s3torchconnector.S3Client(REGION, endpoint=endpoint)
    reader = client.get_object(bucket[5:-1], "no/such", reader_constructor=S3ReaderConstructor.range_based())
    with pytest.raises(FileNotFoundError, match="no/such"):
        reader.prefetch()


# -- checkpoints ------------------------------------------------------------------------------------
def model() -> Any:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(512, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 2048))


def same_state(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    ("part_size", "parts"), [(None, 2), (5 * MiB, 3)], ids=["default-parts", "5MiB-parts"]
)
@pytest.mark.parametrize("reader", ["sequential", "range_based"])
def test_s3checkpoint_readme(
    bucket: str, endpoint: str, moto_server: Any, part_size: int | None, parts: int, reader: str
) -> None:
    client_config = S3ClientConfig() if part_size is None else S3ClientConfig(part_size=part_size)
    checkpoint = s3torchconnector.S3Checkpoint(
        region=REGION, endpoint=endpoint, s3client_config=client_config,
        reader_constructor=getattr(S3ReaderConstructor, reader)(),
    )  # fmt: skip
    net = model()  # 10.5 MiB of float32: 2 parts of 8 MiB, or 3 of 5 MiB
    uri = f"{bucket}checkpoints/epoch0.ckpt"
    with checkpoint.writer(uri) as writer:
        torch.save(net.state_dict(), writer)
    key = uri.removeprefix(bucket)
    etag = moto_server.client().head_object(Bucket=bucket[5:-1], Key=key)["ETag"]
    assert etag.strip('"').endswith(f"-{parts}"), etag  # the part size S3ClientConfig asked for
    with checkpoint.reader(uri) as reader_file:
        assert (reader_file.bucket, reader_file.key) == (bucket[5:-1], "checkpoints/epoch0.ckpt")
        state = torch.load(reader_file)
    assert same_state(state, net.state_dict())
    fresh = model()
    fresh.load_state_dict(state)
    assert global_settings_unchanged()


def test_a_tiny_part_size_still_reads_in_sane_blocks(bucket: str, endpoint: str, tmp_path: Path) -> None:
    """``S3ClientConfig(part_size=1)`` would cost a GET per byte read: the part size is raised
    to MIN_PART_SIZE (1 MiB) for reads, as S3 raises a writer's parts to 5 MiB."""
    from s3dlio_torch._compat import MIN_PART_SIZE

    tiny = S3ClientConfig(part_size=1)
    assert s3torchconnector.client_config(REGION, endpoint, tiny).part_size == MIN_PART_SIZE == MiB
    checkpoint = s3torchconnector.S3Checkpoint(REGION, endpoint, tiny)
    uri = f"{bucket}tiny-parts/x.pt"
    with checkpoint.writer(uri) as writer:
        torch.save(torch.arange(300_000, dtype=torch.int32), writer)  # 1.2 MiB: two blocks
    log = tmp_path / "ops.tsv"
    s3dlio.init_op_log(log, lossless=True)
    try:
        with checkpoint.reader(uri) as reader:
            assert len(reader.read(20000)) == 20000
            reader.seek(0)
            assert torch.equal(torch.load(reader), torch.arange(300_000, dtype=torch.int32))
        assert len(s3torchconnector.S3Client(REGION, endpoint=endpoint, s3client_config=tiny)
                   .get_object(bucket[5:-1], "tiny-parts/x.pt").read()) > MiB  # fmt: skip
    finally:
        assert s3dlio.finalize_op_log() == 0
    requests, _ = gets(log)
    assert requests <= 4, requests  # 2 blocks for the reader, 2 ranges for get_object


def test_dcp_readme(bucket: str, endpoint: str) -> None:
    net = model()
    uri = f"{bucket}dcp/step-1"
    writer = S3StorageWriter(region=REGION, path=uri, s3client_config=S3ClientConfig(part_size=5 * MiB),
                             endpoint=endpoint)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dcp.save(net.state_dict(), storage_writer=writer)
        target = torch.nn.Sequential(torch.nn.Linear(512, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 2048))
        state = target.state_dict()
        reader = S3StorageReader(REGION, uri, endpoint=endpoint,
                                 reader_constructor=S3ReaderConstructor.range_based())  # fmt: skip
        dcp.load(state, storage_reader=reader)
    target.load_state_dict(state)
    assert same_state(target.state_dict(), net.state_dict())
    assert writer.config.part_size == 5 * MiB and global_settings_unchanged()


def test_dcp_positional_arguments_are_s3torchconnectors(bucket: str, endpoint: str) -> None:
    """``S3StorageWriter(region, path, s3client_config, prefix_strategy, thread_count)`` and
    ``S3StorageReader(region, path, s3client_config, reader_constructor)``, in that order."""
    writer_args = ["region", "path", "s3client_config", "prefix_strategy", "thread_count"]
    assert list(inspect.signature(S3StorageWriter).parameters)[:5] == writer_args
    reader_args = ["region", "path", "s3client_config", "reader_constructor"]
    assert list(inspect.signature(S3StorageReader).parameters)[:4] == reader_args
    net = model()
    uri = f"{bucket}dcp-positional/step-1"
    writer = S3StorageWriter(REGION, uri, S3ClientConfig(part_size=5 * MiB), None, 4, endpoint=endpoint)
    assert writer.thread_count == 4 and writer.config.part_size == 5 * MiB
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dcp.save(net.state_dict(), storage_writer=writer)
        state = model().state_dict()
        for value in state.values():
            value.zero_()
        reader = S3StorageReader(REGION, uri, S3ClientConfig(), S3ReaderConstructor.dcp_optimized(0),
                                 endpoint=endpoint)  # fmt: skip
        dcp.load(state, storage_reader=reader)
    assert reader.max_gap == 0 and same_state(state, net.state_dict())


class CustomPrefixStrategy(s3torchconnector.dcp.S3PrefixStrategyBase):
    """The README's custom strategy, as written there."""

    def __init__(self, custom_param: str) -> None:
        super().__init__()
        self.custom_param = custom_param

    def generate_prefix(self, rank: int) -> str:
        return f"custom_{self.custom_param}/{rank}/"


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (lambda: s3torchconnector.dcp.RoundRobinPrefixStrategy(user_prefixes=["shard1", "shard2", "shard3"],
                                                               epoch_num=5), "shard1/epoch_5/__0_0.distcp"),  # fmt: skip
        (lambda: s3torchconnector.dcp.BinaryPrefixStrategy(epoch_num=1, min_prefix_len=10),
         "0000000000/epoch_1/__0_0.distcp"),
        (lambda: s3torchconnector.dcp.HexPrefixStrategy(min_prefix_length=4), "0000/__0_0.distcp"),
        (lambda: CustomPrefixStrategy("x"), "custom_x/0/0.distcp"),
        (lambda: None, "__0_0.distcp"),
    ],
    ids=["round-robin", "binary", "hex", "custom", "default"],
)
def test_dcp_prefix_strategies_readme(bucket: str, endpoint: str, strategy: Any, expected: str) -> None:
    """The README's prefix strategies: files land under the strategy's folders, .metadata at
    the path, and a reader that knows nothing of the strategy loads every tensor."""
    net = model()
    uri = f"{bucket}prefixed/step-1"
    writer = s3torchconnector.dcp.S3StorageWriter(region=REGION, path=uri, prefix_strategy=strategy(),
                                                  endpoint=endpoint)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dcp.save(net.state_dict(), storage_writer=writer)
        listed = s3dlio.Client(endpoint_url=endpoint, region=REGION).list(f"{uri}/", recursive=True)
        keys = sorted(found.removeprefix(f"{uri}/") for found in listed)
        assert keys == sorted([".metadata", expected]), keys
        state = model().state_dict()
        for value in state.values():
            value.zero_()
        dcp.load(state, storage_reader=S3StorageReader(REGION, uri, endpoint=endpoint))
    assert same_state(state, net.state_dict())


def test_prefix_strategies_spread_ranks_and_keep_files_inside() -> None:
    hexes = s3torchconnector.dcp.HexPrefixStrategy(prefix_count=18, min_prefix_length=1)
    assert [hexes(r).split("/")[0] for r in (0, 1, 15, 16, 17, 18)] == ["00", "10", "f0", "01", "11", "00"]
    binary = s3torchconnector.dcp.BinaryPrefixStrategy(prefix_count=4, min_prefix_length=3, epoch_num=2)
    assert [binary(r) for r in range(4)] == ["000/epoch_2/__0_", "100/epoch_2/__1_", "010/epoch_2/__2_",
                                             "110/epoch_2/__3_"]  # fmt: skip
    rr = s3torchconnector.dcp.RoundRobinPrefixStrategy(["a", "b/"])
    assert [rr(r) for r in range(3)] == ["a/__0_", "b/__1_", "a/__2_"]
    for bad in (["../up"], ["/abs"], ["a//b"], ["."], [], "shard1"):
        with pytest.raises(ConfigError, match="user_prefixes|prefix"):
            s3torchconnector.dcp.RoundRobinPrefixStrategy(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="min_prefix_length=0"):
        s3torchconnector.dcp.HexPrefixStrategy(min_prefix_length=0)
    with pytest.raises(ConfigError, match="epoch_num"):
        s3torchconnector.dcp.HexPrefixStrategy(epoch_num="5")  # type: ignore[arg-type]


def test_a_custom_prefix_cannot_leave_the_checkpoint(tmp_path: Path) -> None:
    """A strategy returning '../' would write beside the checkpoint folder: refused by name, at
    construction (rank 0) and again for each rank when the plans are made."""

    class Escaping(s3torchconnector.dcp.S3PrefixStrategyBase):
        def generate_prefix(self, rank: int) -> str:
            return "../outside/__0_" if rank == 0 else f"ok/__{rank}_"

    target = f"file://{tmp_path}/ckpt"
    with pytest.raises(ConfigError, match=r"S3StorageWriter: prefix '../outside/__0_' would leave the checkpoint"):
        s3torchconnector.dcp.S3StorageWriter(None, target, prefix_strategy=Escaping())

    class EscapingLater(s3torchconnector.dcp.S3PrefixStrategyBase):
        def generate_prefix(self, rank: int) -> str:
            return f"ok/__{rank}_" if rank == 0 else "a/../../__1_"

    writer = s3torchconnector.dcp.S3StorageWriter(None, target, prefix_strategy=EscapingLater())
    with pytest.raises(ConfigError, match=r"prefix 'a/../../__1_' would leave"):
        writer.prepare_global_plan([SavePlan([]), SavePlan([])])
    assert not (tmp_path / "outside").exists()


def test_prefixed_checkpoint_on_files_is_torchs_own_format(tmp_path: Path) -> None:
    """file:// with a prefix strategy: nested folders are made, and torch's own FileSystemReader
    loads the folder."""
    net = model()
    writer = s3torchconnector.dcp.S3StorageWriter(
        None, f"file://{tmp_path}/ckpt", prefix_strategy=s3torchconnector.dcp.HexPrefixStrategy(epoch_num=3)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dcp.save(net.state_dict(), storage_writer=writer)
        assert (tmp_path / "ckpt" / "0000000000" / "epoch_3" / "__0_0.distcp").is_file()
        state = model().state_dict()
        for value in state.values():
            value.zero_()
        dcp.load(state, storage_reader=dcp.FileSystemReader(str(tmp_path / "ckpt")))
    assert same_state(state, net.state_dict())


def test_dcp_optimized_reader_constructor(bucket: str, endpoint: str) -> None:
    """The README's DCP interface example: dcp_optimized() sets the reader's merge gap; the
    objects that read whole objects or ranges refuse it by name."""
    net = model()
    uri = f"{bucket}dcp-opt/step-1"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dcp.save(net.state_dict(), storage_writer=S3StorageWriter(REGION, uri, endpoint=endpoint))
        reader_constructor = S3ReaderConstructor.dcp_optimized()
        reader = S3StorageReader(region=REGION, path=uri, reader_constructor=reader_constructor, endpoint=endpoint)
        assert reader.max_gap == 32 * MiB
        assert S3StorageReader(REGION, uri, reader_constructor=S3ReaderConstructor.dcp_optimized(0)).max_gap == 0
        state = model().state_dict()
        for value in state.values():
            value.zero_()
        dcp.load(state, storage_reader=reader)
    assert same_state(state, net.state_dict())
    with pytest.raises(ConfigError, match=r"dcp_optimized\(\) is for dcp.S3StorageReader"):
        s3torchconnector.S3MapDataset.from_prefix(f"{bucket}data/", region=REGION, endpoint=endpoint,
                                                  reader_constructor=reader_constructor)  # fmt: skip
    with pytest.raises(ConfigError, match=r"S3Checkpoint: S3ReaderConstructor.dcp_optimized"):
        s3torchconnector.S3Checkpoint(REGION, reader_constructor=reader_constructor)
    with pytest.raises(ConfigError, match="max_gap_size=-1"):
        S3ReaderConstructor.dcp_optimized(-1)


def test_lightning_checkpoint_io(bucket: str, endpoint: str) -> None:
    io = S3LightningCheckpoint(REGION, S3ClientConfig(part_size=5 * MiB), endpoint)  # its positional order
    assert io.config.part_size == 5 * MiB and io.region == REGION
    uri = f"{bucket}lightning/epoch=0.ckpt"
    checkpoint = {"state_dict": model().state_dict(), "epoch": 0}
    io.save_checkpoint(checkpoint, uri, None)  # Lightning's CheckpointIO passes storage_options
    with pytest.raises(TypeError, match="settings from the plugin's constructor"):
        io.save_checkpoint(checkpoint, f"{bucket}lightning/other.ckpt", storage_options={"ACL": "private"})
    with pytest.raises(FileNotFoundError):  # nothing was written
        io.load_checkpoint(f"{bucket}lightning/other.ckpt")
    loaded = io.load_checkpoint(uri)
    assert loaded["epoch"] == 0 and same_state(loaded["state_dict"], checkpoint["state_dict"])
    io.remove_checkpoint(uri)
    io.remove_checkpoint(uri)  # already gone: nothing happens
    with pytest.raises(FileNotFoundError):
        io.load_checkpoint(uri)
    assert global_settings_unchanged()


# -- settings ---------------------------------------------------------------------------------------
def test_s3client_config_maps_onto_config() -> None:
    base = s3dlio.config.default_config()
    config = s3torchconnector.client_config(
        "eu-west-1", "http://127.0.0.1:1234",
        S3ClientConfig(throughput_target_gbps=25.0, part_size=16 * MiB, force_path_style=True, max_attempts=7),
    )  # fmt: skip
    assert (config.region, config.endpoint_url, config.part_size, config.max_attempts) == (
        "eu-west-1", "http://127.0.0.1:1234", 16 * MiB, 7,
    )  # fmt: skip
    assert s3dlio.config.default_config() is base and base.region != "eu-west-1"
    assert s3torchconnector.client_config("", "", None) == base  # empty strings mean unset
    unsigned = s3torchconnector.client_config(None, None, S3ClientConfig(unsigned=True))
    assert unsigned.unsigned and not base.unsigned
    assert s3torchconnector.client_config(None, None, S3ClientConfig(profile="custom-profile")).profile == "custom-profile"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"unsigned": True, "profile": "p"}, "unsigned requests use no credentials"),
        ({"part_size": 0}, "part_size=0"),
        ({"max_attempts": 0}, "max_attempts=0"),
        ({"throughput_target_gbps": 0}, "throughput_target_gbps"),
    ],
)
def test_s3client_config_refuses_what_it_cannot_honour(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        S3ClientConfig(**kwargs)


def test_wrong_argument_types_are_named() -> None:
    with pytest.raises(ConfigError, match="S3ReaderConstructor"):
        s3torchconnector.S3Checkpoint(reader_constructor="sequential")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="S3ClientConfig"):
        s3torchconnector.S3Checkpoint(s3client_config={"part_size": 1})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="pass a prefix strategy"):
        S3StorageWriter(REGION, "s3://bkt/ckpt", prefix_strategy=object())  # type: ignore[arg-type]


def test_put_object_takes_the_standard_storage_class(bucket: str, endpoint: str) -> None:
    client = s3torchconnector.S3Client(REGION, endpoint=endpoint)
    name = bucket[5:-1]
    with client.put_object(name, "classes/standard.bin", storage_class="STANDARD") as writer:
        writer.write(b"standard")
    assert client.get_object(name, "classes/standard.bin").read() == b"standard"
    with pytest.raises(ConfigError, match="storage_class='GLACIER'.*None or 'STANDARD'"):
        client.put_object(name, "classes/glacier.bin", storage_class="GLACIER")
    assert client.user_agent_prefix == f"s3dlio/{s3torchconnector.__version__}"


def test_submodules_resolve_in_a_fresh_process() -> None:
    """``import s3dlio_torch as s3torchconnector`` then ``s3torchconnector.lightning.X``, with
    nothing imported before (the lazy attributes, not an earlier import, must find them)."""
    program = (
        "import s3dlio_torch as s3torchconnector\n"
        "assert s3torchconnector.lightning.S3LightningCheckpoint.__module__ == 's3dlio_torch.lightning'\n"
        "assert s3torchconnector.dcp.S3StorageWriter.__module__ == 's3dlio_torch.dcp'\n"
        "s3torchconnector.dcp.RoundRobinPrefixStrategy, s3torchconnector.dcp.S3FileSystem\n"
        "constructor = s3torchconnector.s3reader.constructor\n"
        "assert constructor.S3ReaderConstructor is s3torchconnector.S3ReaderConstructor\n"
        "assert s3torchconnector.s3checkpoint.S3Checkpoint is s3torchconnector.S3Checkpoint\n"
        "assert s3torchconnector.s3writer.S3Writer is s3torchconnector.S3Writer\n"
        "from s3dlio_torch.s3reader import RangedS3Reader, S3Reader, SequentialS3Reader\n"
        "from s3dlio_torch.s3reader.constructor import S3ReaderConstructor\n"
        "from s3dlio_torch.s3map_dataset import S3MapDataset\n"
        "from s3dlio_torch.s3iterable_dataset import S3IterableDataset\n"
        "from s3dlio_torch.lightning.s3_lightning_checkpoint import S3LightningCheckpoint\n"
        "assert issubclass(SequentialS3Reader, S3Reader) and issubclass(RangedS3Reader, S3Reader)\n"
        "assert S3LightningCheckpoint is s3torchconnector.lightning.S3LightningCheckpoint\n"
        "import importlib.metadata\n"
        "assert s3torchconnector.__version__ == importlib.metadata.version('s3dlio')\n"
    )
    subprocess.run([sys.executable, "-c", program], check=True, timeout=120)


def test_names_of_s3torchconnector_resolve() -> None:
    from s3dlio_torch.s3reader import DCPS3ReaderConstructorProtocol, S3ReaderConstructorProtocol
    from s3dlio_torch.s3reader.protocol import S3ReaderConstructorProtocol as from_protocol
    from s3dlio_torch.s3reader.ranged import RangedS3Reader
    from s3dlio_torch.s3reader.s3reader import S3Reader
    from s3dlio_torch.s3reader.sequential import SequentialS3Reader

    assert (S3Reader, RangedS3Reader) == (s3torchconnector.S3Reader, s3torchconnector.RangedS3Reader)
    assert issubclass(SequentialS3Reader, S3Reader) and from_protocol is S3ReaderConstructorProtocol
    for kind in ("sequential", "range_based", "dcp_optimized", "default"):
        constructor = getattr(S3ReaderConstructor, kind)()
        assert isinstance(constructor, S3ReaderConstructorProtocol | DCPS3ReaderConstructorProtocol)
        expected = "sequential" if kind == "default" else kind
        assert S3ReaderConstructor.get_reader_type_string(constructor) == expected
    assert S3ReaderConstructor.get_reader_type_string(None) == "sequential"
    assert S3ReaderConstructor.get_reader_type_string(object()) == "unknown"  # type: ignore[arg-type]
    assert s3torchconnector.dcp.S3StorageWriter is S3StorageWriter
    assert s3torchconnector.lightning.S3LightningCheckpoint is S3LightningCheckpoint
    assert S3ReaderConstructor.default() == S3ReaderConstructor.sequential()
    assert S3ReaderConstructor.range_based().buffer_size == 8 * MiB
    assert issubclass(s3torchconnector.dcp.StorageWriter, S3StorageWriter)  # our earlier names stay
    assert issubclass(s3torchconnector.dcp.StorageReader, S3StorageReader)


# -- prefixes ---------------------------------------------------------------------------------------
PREFIX_KEYS = ("dot/v1.0/a.bin", "train.csv", "odd/a+b(1)/x", "rx/model.v1", "rx/model.v1.bak", "rx/modelXv1",
               "mini/train/0.bin", "mini/val//0.bin")  # fmt: skip


@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_from_prefix_is_a_plain_key_prefix(s3_bucket: str, moto_server: Any, engine: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """As in s3torchconnector: '.', '+', '(' are characters of the prefix, and a key the fast
    engine cannot address ('val//0.bin') neither breaks a listing it is not part of nor is lost
    from one it is part of."""
    monkeypatch.setenv("S3DLIO_ENGINE", engine)
    s3dlio.configure()
    bucket = s3_bucket[len("s3://") : -1]
    client = moto_server.client()  # boto3 writes the keys s3dlio's fast engine would refuse
    for key in PREFIX_KEYS:
        client.put_object(Bucket=bucket, Key=key, Body=b"k")

    def keys(prefix: str) -> list[str]:
        ds = s3torchconnector.S3MapDataset.from_prefix(f"{s3_bucket}{prefix}", region="us-east-1")
        return sorted(ds[i].key for i in range(len(ds)))

    assert keys("dot/v1.0") == ["dot/v1.0/a.bin"]
    assert keys("train.") == ["train.csv"]
    assert keys("odd/a+b(1)") == ["odd/a+b(1)/x"]
    assert keys("rx/model.v1") == ["rx/model.v1", "rx/model.v1.bak"]  # not modelXv1
    assert keys("mini/train") == ["mini/train/0.bin"]
    if engine == "portable":
        assert keys("mini/val/") == ["mini/val//0.bin"]
    else:  # listed, and reading it names the engine that can
        ds = s3torchconnector.S3MapDataset.from_prefix(f"{s3_bucket}mini/val/", region="us-east-1")
        with pytest.raises(s3dlio.InvalidUriError, match="S3DLIO_ENGINE=portable"):
            ds[0].read()
        assert len(ds) == 1
    # s3dlio's own loader: the last part may be a regex, and also selects the names it starts
    listed = PrefixSource(f"{s3_bucket}rx/model.v1", cache=False).keys()
    assert sorted(k.rsplit("/", 1)[1] for k in listed) == ["model.v1", "model.v1.bak", "modelXv1"]
    assert list(PrefixSource(f"{s3_bucket}dot/v1.0", cache=False).keys()) == [f"{s3_bucket}dot/v1.0/a.bin"]
