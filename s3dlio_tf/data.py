"""``tf.data`` sources on s3dlio: objects (or their records) and TFRecord shards on object storage.

TensorFlow 2.21's own filesystem no longer speaks ``s3://``, so these read through s3dlio
and hand the bytes to ``tf.data``. Crossing from Python into a ``tf.data`` pipeline costs
about 100 us per element, so elements cross in chunks (one 1-D string tensor of up to
``chunk`` elements) and are unbatched inside TensorFlow: 30x faster for small records.

Order and sharding follow :mod:`s3dlio.loader`: a pure function of (seed, epoch), split
over ranks exactly once per epoch. Each new iteration of the dataset (``for``, ``repeat``,
``model.fit`` epochs) reads the next epoch, so ``shuffle=True`` reshuffles every pass.
"""

from __future__ import annotations

import fnmatch
import itertools
import logging
import operator
import os
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

import s3dlio
from s3dlio.client import Client, settings_of
from s3dlio.config import Config, default_config
from s3dlio.errors import ConfigError, NotFoundError, S3dlioError
from s3dlio.formats import FormatError
from s3dlio.formats.tfrecord import TruncatedRecordError, iter_tfrecords
from s3dlio.loader import (
    EpochPlan,
    Fetcher,
    KeySource,
    Loader,
    PrefixSource,
    Sample,
    as_source,
    prefetch,
    resolve_rank_world,
)
from s3dlio.loader.plan import Uneven
from s3dlio.loader.samples import SampleKind, Splitter

__all__ = ["TFRecordDataset", "dataset", "list_files"]

log = logging.getLogger("s3dlio_tf")

Source = KeySource | str | os.PathLike[str] | Sequence[str]
_STRING = tf.TensorSpec((), tf.string)
_CHUNK_BYTES = 16 << 20


def _source(source: Source, pattern: str | None, key_cache: bool | str, refresh: bool,
            config: Config | None) -> KeySource:  # fmt: skip
    if isinstance(source, str):
        return PrefixSource(source, pattern, True, key_cache, refresh, config)
    if pattern is not None:
        raise ConfigError(f"pattern={pattern!r} applies to a prefix URI, not to {type(source).__name__}")
    return as_source(source, config)


def _rank_world(
    rank: int | None, world_size: int | None, input_context: tf.distribute.InputContext | None
) -> tuple[int | None, int | None]:
    """``InputContext`` (``distribute_datasets_from_function``) gives the input pipeline as rank."""
    if input_context is None:
        return rank, world_size
    pipeline = (input_context.input_pipeline_id, input_context.num_input_pipelines)
    if (rank, world_size) not in ((None, None), pipeline):
        raise ConfigError(
            f"rank={rank} world_size={world_size} disagree with input_context "
            f"(input pipeline {pipeline[0]} of {pipeline[1]}); pass one or the other"
        )
    return pipeline


def _finish(ds: tf.data.Dataset, world_size: int, name: str | None = None) -> tf.data.Dataset:
    """Prefetch; and when we sharded, stop ``tf.distribute`` from sharding a second time."""
    if world_size > 1:
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        ds = ds.with_options(options)
    return ds.prefetch(tf.data.AUTOTUNE, name=name)


class _Epochs:
    """The epoch each new iteration reads: ``start``, then one more per iteration if ``advance``."""

    def __init__(self, start: int, advance: bool) -> None:
        self._counter = itertools.count(start) if advance else itertools.repeat(start)

    def next(self) -> int:
        return next(self._counter)


# -- chunking elements across the Python -> TensorFlow boundary -----------------------------------
def _to_bytes(sample: Sample) -> bytes:
    data = sample.data
    try:
        return bytes(memoryview(data))
    except TypeError:
        raise ConfigError(
            f"{sample.where}: the sample is a {type(data).__name__}, not bytes; pass transform= and "
            "output_signature= to turn it into tensors"
        ) from None


def _fixed(signature: Any) -> bool:
    """True when every leaf is a TensorSpec of fully known shape: elements can be stacked."""
    leaves = tf.nest.flatten(signature)
    return all(isinstance(s, tf.TensorSpec) and s.shape.is_fully_defined() for s in leaves)


def _stack(signature: Any, items: list[Any]) -> Any:
    """A chunk: each leaf of ``signature`` stacked over ``items`` along a new first axis."""
    if signature == _STRING:
        return np.array(items, dtype=object)
    specs = tf.nest.flatten(signature)
    columns: list[list[Any]] = [[] for _ in specs]
    for item in items:
        for column, value in zip(columns, tf.nest.flatten(item), strict=True):
            column.append(value)
    arrays = [
        np.array(col, dtype=object)
        if spec.dtype == tf.string
        else np.stack(col).astype(spec.dtype.as_numpy_dtype)
        for spec, col in zip(specs, columns, strict=True)
    ]
    return tf.nest.pack_sequence_as(signature, arrays)


def _chunked(items: Iterator[Any], size: int, nbytes: Callable[[Any], int]) -> Iterator[list[Any]]:
    """Lists of up to ``size`` items, cut early at 16 MiB so big objects cross one at a time."""
    chunk: list[Any] = []
    held = 0
    for item in items:
        chunk.append(item)
        held += nbytes(item)
        if len(chunk) >= size or held >= _CHUNK_BYTES:
            yield chunk
            chunk, held = [], 0
    if chunk:
        yield chunk


def _from_elements(make: Callable[[], Iterator[Any]], signature: Any, chunk: int) -> tf.data.Dataset:
    """A dataset of ``make()``'s elements, crossing into TensorFlow ``chunk`` at a time."""
    if chunk < 1:
        raise ConfigError(f"chunk={chunk}: must be at least 1")
    if chunk == 1 or not _fixed(signature):
        return tf.data.Dataset.from_generator(make, output_signature=signature)
    batched = tf.nest.map_structure(lambda s: tf.TensorSpec((None, *s.shape), s.dtype), signature)
    size = len if signature == _STRING else (lambda _: 0)

    def chunks() -> Iterator[Any]:
        for items in _chunked(make(), chunk, size):
            yield _stack(signature, items)

    return tf.data.Dataset.from_generator(chunks, output_signature=batched).unbatch()


# -- dataset(): objects or their samples, via the s3dlio Loader ---------------------------------------
def dataset(
    source: Source,
    *,
    samples: SampleKind | Splitter = "object",
    transform: Callable[[Sample], Any] | None = None,
    output_signature: Any = None,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    reshuffle_each_iteration: bool = True,
    rank: int | None = None,
    world_size: int | None = None,
    input_context: tf.distribute.InputContext | None = None,
    pattern: str | None = None,
    key_cache: bool | str = True,
    refresh: bool = False,
    chunk: int = 64,
    config: Config | None = None,
    client: Client | None = None,
    **loader_options: Any,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of the objects under a prefix (or a URI list, or a key file).

    Elements are scalar ``tf.string`` tensors: each object's bytes, or each record with
    ``samples="tfrecord"`` (any ``samples=`` of :class:`s3dlio.loader.Loader`). For decoded
    elements give ``transform(sample) -> value`` and its ``output_signature``.

    Each object is read exactly once per epoch across ``world_size`` ranks (``rank``/
    ``world_size``, else ``input_context`` from ``distribute_datasets_from_function``, else
    torch.distributed / ``RANK``/``WORLD_SIZE``); every rank gets the same count. Iteration
    ``k`` reads epoch ``epoch + k`` (``reshuffle_each_iteration=False``: always ``epoch``).
    Other keywords go to the Loader: ``max_in_flight``, ``max_bytes_in_flight``, ``uneven``,
    ``shuffle_group``, ``on_error``, ``retries``, ``hedge_after``, ``in_order``, ``block``.
    ``client`` (an :class:`s3dlio.Client`, or ``config``) gives the settings of every request.
    """
    config = settings_of(client, config, where="s3dlio_tf.dataset")
    if output_signature is None:
        if transform is not None:
            raise ConfigError("transform= needs output_signature= (the tf.TensorSpec of what it returns)")
        if samples in ("tar", "npz"):
            raise ConfigError(
                f"samples={samples!r} gives dicts, not bytes: pass transform= and output_signature="
            )
        output_signature, transform = _STRING, _to_bytes
    rank, world_size = _rank_world(rank, world_size, input_context)
    loader = Loader(
        _source(source, pattern, key_cache, refresh, config), config=config, samples=samples,
        transform=transform, shuffle=shuffle, seed=seed, rank=rank, world_size=world_size, **loader_options,
    )  # fmt: skip
    epochs = _Epochs(epoch, reshuffle_each_iteration)

    def elements() -> Iterator[Any]:
        return loader.iterate(0, 1, epochs.next())

    ds = _from_elements(elements, output_signature, chunk)
    if samples == "object" and loader.reading.on_error == "raise":
        ds = ds.apply(tf.data.experimental.assert_cardinality(len(loader)))  # Keras sees the epoch length
    return _finish(ds, loader.world_size)


# -- TFRecordDataset(): shards fetched whole, records split (CRC checked), interleaved -----------------
def _decompress(data: Any, compression: str, uri: str) -> tuple[Any, bool, FormatError | None]:
    """``(bytes, cut, failure)``, decoded as tf.data streams it: a GZIP stream that ends early
    (``cut``) yields what it decoded, its last record possibly partial; bytes that do not
    decode (garbage after the data: another gzip member that is none) fail after those before."""
    view = memoryview(data).cast("B")
    if compression == "" or view.nbytes == 0:  # an empty file has no records, as in tf.data
        return data, False, None
    out: list[bytes] = []
    try:
        while view.nbytes:
            stream = zlib.decompressobj(31 if compression == "GZIP" else 15)
            out.append(stream.decompress(view))
            if not stream.eof:  # tf.data: a cut GZIP stream ends quietly, a cut ZLIB one is DataLoss
                if compression == "GZIP":
                    return b"".join(out), True, None
                return b"".join(out), False, FormatError(f"{uri}: the ZLIB stream ends early (truncated)")
            if compression != "GZIP" or not stream.unused_data:  # ZLIB: one stream, the rest ignored
                break
            view = memoryview(stream.unused_data)  # concatenated gzip members, as gzip reads them
    except zlib.error as exc:
        failure = FormatError(f"{uri}: not {compression}-compressed ({exc}); check compression_type")
        return b"".join(out), False, failure
    return b"".join(out), False, None


def _compression(compression_type: str | bytes | None) -> str:
    value = compression_type or ""
    if isinstance(value, bytes | bytearray):  # tf.data takes bytes too
        value = value.decode("ascii", "replace")
    if not isinstance(value, str) or value.upper() not in ("", "GZIP", "ZLIB"):
        raise ConfigError(f"compression_type={compression_type!r}: use None, '', 'GZIP' or 'ZLIB'")
    return value.upper()


def _check_buffer_size(buffer_size: Any) -> None:
    """tf.data's rule (None, -1 for its default, or bytes >= 0), though shards are fetched whole."""
    if buffer_size is None or isinstance(buffer_size, tf.Tensor):
        return
    try:
        value = operator.index(buffer_size)
    except TypeError:
        value = None
    if value is None or value < -1:
        raise ConfigError(f"buffer_size={buffer_size!r}: use None, -1 or a number of bytes >= 0")


class _ShardReader:
    """Fetch one shard (retried), undo compression, and list its records (CRCs checked)."""

    def __init__(self, fetcher: Fetcher, compression: str, verify: bool) -> None:
        self.fetcher, self.compression, self.verify = fetcher, compression, verify

    def read(self, uri: str, compression: str | None = None) -> tuple[list[memoryview], S3dlioError | None]:
        """Shard ``uri``'s records, and the failure tf.data's reader raises (None: none): a missing
        object, or bytes that are no TFRecord file, after the records before it, as tf.data's."""
        found: list[memoryview] = []
        try:
            kind = self.compression if compression is None else compression
            data, cut, failure = _decompress(self.fetcher(uri), kind, uri)
            try:
                for record in iter_tfrecords(data, self.verify):
                    found.append(record)
            except TruncatedRecordError as exc:
                if not (cut or exc.header):  # tf.data ends quietly at a cut stream or header
                    raise
            if failure is not None:
                raise failure
        except (NotFoundError, FormatError) as exc:
            return found, _named(exc, uri)
        except S3dlioError as exc:
            named = _named(exc, uri)
            if named is exc:
                raise
            raise named from exc
        return found, None

    def records_array(self, uri: Any, compression: Any) -> tuple[np.ndarray, np.int32, bytes]:
        """``tf.numpy_function`` body: shard ``uri``'s records as a 1-D object array of bytes, and
        its failure as (code, message) for :func:`_raise_failure`."""
        name = uri.decode() if isinstance(uri, bytes) else str(uri)
        kind = compression.decode() if isinstance(compression, bytes) else str(compression)
        found, failure = self.read(name, _compression(kind))
        code, message = (_OK, "") if failure is None else _failure(failure)
        return _strings([bytes(r) for r in found]), np.int32(code), message.encode()


def _named(exc: S3dlioError, uri: str) -> S3dlioError:
    return exc if uri in str(exc) else type(exc)(f"{uri}: {exc}")


def _records_of(read: tuple[list[memoryview], S3dlioError | None]) -> Iterator[bytes]:
    """The records of :meth:`_ShardReader.read`, then its failure raised."""
    found, failure = read
    yield from (bytes(r) for r in found)
    if failure is not None:
        raise failure


# -- the errors tf.data's own reader raises ----------------------------------------------------------
# A Python callback (from_generator, numpy_function) can raise only InvalidArgumentError or
# UnknownError into TensorFlow, so a shard's failure travels as data, (records, code, message),
# and _raise_failure raises tf.data's NotFoundError or DataLossError inside the graph.
_OK, _NOT_FOUND, _DATA_LOSS = 0, 1, 2
_CHECKED = (tf.TensorSpec((None,), tf.string), tf.TensorSpec((), tf.int32), tf.TensorSpec((), tf.string))


def _strings(items: list[bytes]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)  # object, not "S": numpy would strip trailing NULs
    out[:] = items
    return out


def _failure(exc: BaseException) -> tuple[int, str]:
    """A missing object (NotFoundError) or bytes that are no TFRecord file (DataLossError)."""
    if isinstance(exc, NotFoundError):
        return _NOT_FOUND, str(exc)
    log.error("%s", exc)  # tf.errors.DataLossError cannot carry the URI and reason (_raise_failure)
    return _DATA_LOSS, str(exc)


def _record_chunks(read: Callable[[], Iterable[bytes]], size: int) -> Iterator[tuple[np.ndarray, int, str]]:
    """``read()``'s records in chunks of up to ``size`` (cut at 16 MiB), then its failure if any;
    the records before a failure still arrive, as from tf.data's reader."""
    chunk: list[bytes] = []
    held = 0
    failure: tuple[int, str] | None = None
    try:
        for record in read():
            chunk.append(record)
            held += len(record)
            if len(chunk) >= size or held >= _CHUNK_BYTES:
                yield _strings(chunk), _OK, ""
                chunk, held = [], 0
    except (NotFoundError, FormatError) as exc:
        failure = _failure(exc)
    if chunk:
        yield _strings(chunk), _OK, ""
    if failure is not None:
        yield _strings([]), *failure


def _raise_failure(records: tf.Tensor, code: tf.Tensor, message: tf.Tensor) -> tf.Tensor:
    """``records``; for a failure, the error tf.data's reader raises, from ops that fail so (no op
    raises a chosen error): a missing local file named by the message (NotFoundError: "<message>;
    No such file or directory"), and an inflate of a bad header (DataLossError, in TensorFlow's own
    words for a file not compressed as stated: "inflate() failed with error -3: incorrect header
    check"; the URI and reason are logged on ``s3dlio_tf``)."""

    def inflate(data: tf.Tensor) -> tf.Tensor:  # never succeeds: 0x0100 is no zlib header
        bad = tf.strings.join(["\x01\x00", data])
        return tf.expand_dims(tf.io.decode_compressed(bad, "ZLIB", name="see_the_s3dlio_tf_log"), 0)[:0]

    def not_found() -> tf.Tensor:  # a relative path that cannot exist; were it there, DataLossError
        return inflate(tf.io.read_file(tf.strings.join(["s3dlio: ", message])))

    return tf.switch_case(code, [lambda: records, not_found, lambda: inflate(message)])


def _checked(chunks: tf.data.Dataset) -> tf.data.Dataset:
    """Records from a dataset of :data:`_CHECKED` chunks, failures raised as tf.data's."""
    return chunks.map(_raise_failure).unbatch()


def _then_failure(records: tf.Tensor, code: tf.Tensor, message: tf.Tensor) -> tf.data.Dataset:
    """A shard's ``records``, then its failure (:data:`_OK`: none) raised."""
    chunks = tf.data.Dataset.from_tensors((records, tf.constant(_OK), tf.constant("")))
    return _checked(chunks.concatenate(tf.data.Dataset.from_tensors((records[:0], code, message))))


# -- TFRecordDataset on tensors: file names known only when the pipeline runs (graph mode) ----------
def _is_names_tensor(filenames: Any) -> bool:
    return isinstance(filenames, tf.data.Dataset) or (
        isinstance(filenames, tf.Tensor) and tf.is_symbolic_tensor(filenames)
    )


def _eager_names(filenames: Any) -> Any:
    """An eager string tensor (scalar or 1-D) as the list of names it holds; other values unchanged."""
    if isinstance(filenames, tf.Tensor) and not tf.is_symbolic_tensor(filenames):
        if filenames.dtype != tf.string or filenames.shape.rank not in (0, 1):
            raise ConfigError(
                f"filenames: a {filenames.dtype.name} tensor of shape {filenames.shape}; "
                "pass a scalar or 1-D tf.string tensor"
            )
        return [name.decode() for name in np.atleast_1d(filenames.numpy()).tolist()]
    if isinstance(filenames, np.ndarray):
        filenames = filenames.tolist()
    if isinstance(filenames, bytes):  # one file name, as tf.data takes it
        return [filenames.decode()]
    if isinstance(filenames, list | tuple):
        return [name.decode() if isinstance(name, bytes) else name for name in filenames]
    return filenames


def _tensor_records(
    filenames: tf.Tensor | tf.data.Dataset,
    compression_type: Any,
    num_parallel_reads: int | None,
    deterministic: bool | None,
    reader: _ShardReader,
    max_in_flight: int,
) -> tf.data.Dataset:
    """Records of the shards a string tensor (or dataset of them) names, read inside the pipeline.

    Each shard is one ``tf.numpy_function`` call that fetches it through s3dlio and returns
    its records; ``num_parallel_reads`` interleaves shards as ``tf.data.TFRecordDataset`` does.
    """
    if isinstance(filenames, tf.data.Dataset):
        if filenames.element_spec != _STRING:
            raise ConfigError(
                f"filenames: a dataset of {filenames.element_spec}; pass a dataset of scalar tf.string names"
            )
        names = filenames
    else:
        if filenames.dtype != tf.string:
            raise ConfigError(f"filenames: a {filenames.dtype.name} tensor; pass a tf.string tensor")
        names = tf.data.Dataset.from_tensor_slices(tf.reshape(filenames, [-1]))
    if isinstance(compression_type, tf.Tensor):
        compression = compression_type
    else:
        compression = tf.constant(_compression(compression_type))

    def shard(uri: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        records, code, message = tf.numpy_function(
            reader.records_array, [uri, compression], [tf.string, tf.int32, tf.string], stateful=True
        )
        records.set_shape([None])
        return records, tf.reshape(code, []), tf.reshape(message, [])

    if num_parallel_reads is None:  # shards in order, the next ones fetched while this one is read
        fetched = names.map(shard, num_parallel_calls=max_in_flight, deterministic=True)
        return fetched.prefetch(1).flat_map(_then_failure)
    return names.interleave(
        lambda uri: _then_failure(*shard(uri)), cycle_length=num_parallel_reads,
        block_length=1, num_parallel_calls=num_parallel_reads, deterministic=deterministic,
    )  # fmt: skip


def TFRecordDataset(  # noqa: N802 - named as tf.data.TFRecordDataset, which it replaces
    filenames: Source | tf.Tensor | tf.data.Dataset,
    compression_type: str | bytes | tf.Tensor | None = None,
    buffer_size: int | None = None,
    num_parallel_reads: int | None = None,
    name: str | None = None,
    *,
    deterministic: bool | None = None,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    reshuffle_each_iteration: bool = True,
    rank: int | None = None,
    world_size: int | None = None,
    input_context: tf.distribute.InputContext | None = None,
    uneven: Uneven | None = None,
    pattern: str | None = None,
    key_cache: bool | str = True,
    refresh: bool = False,
    verify: bool = True,
    max_in_flight: int = 4,
    max_bytes_in_flight: int | None = None,
    retries: int = 2,
    hedge_after: float | None = None,
    chunk: int = 256,
    config: Config | None = None,
    client: Client | None = None,
) -> tf.data.Dataset:
    """``tf.data.TFRecordDataset`` over TFRecord shards on object storage: same records, same order.

    ``filenames``: one file name (``str``, ``bytes``, a local ``pathlib.Path``), a list of
    them, a scalar or 1-D ``tf.string`` tensor, or a dataset of names, as tf.data takes them;
    or a prefix URI to list, ending with ``/`` or given with ``pattern=`` (e.g. ``r".*\\.tfrecord"``).
    A symbolic tensor (the ``f`` of ``files.interleave(lambda f: TFRecordDataset(f))`` or of a
    ``tf.function``) and a dataset of names are read as the pipeline runs, one
    ``tf.numpy_function`` call per shard; ``compression_type`` may then be a tensor too, and
    the listing, sharding and shuffling options (which need the names up front) are refused. ``num_parallel_reads=None`` reads shards one after
    another, fetching ``max_in_flight`` ahead; ``N`` (or ``tf.data.AUTOTUNE``) interleaves
    ``N`` shards record by record, like TensorFlow's. Shards are fetched whole and split
    with CRCs checked (``verify=False`` skips them). Ranks (``rank``/``world_size`` or
    ``input_context``) split the files as ``tf.data``'s FILE auto-sharding does, every
    ``world_size``-th file (``uneven="pad"``/``"drop"``: equal file counts, as the Loader);
    ``shuffle`` permutes the files per epoch; shuffle records with ``.shuffle(buffer)`` after.
    ``buffer_size`` is checked as tf.data does and otherwise unused. ``client`` (an :class:`s3dlio.Client`, or
    ``config``) gives the settings of every request.
    """
    _check_buffer_size(buffer_size)
    config = settings_of(client, config, where="TFRecordDataset")
    if isinstance(compression_type, tf.Tensor) and not tf.is_symbolic_tensor(compression_type):
        compression_type = compression_type.numpy().decode()
    filenames = _eager_names(filenames)
    if isinstance(filenames, os.PathLike):  # a local file, as tf.data takes it (not a key file)
        filenames = [os.fspath(filenames)]
    elif isinstance(filenames, str) and pattern is None and not filenames.endswith("/"):
        filenames = [filenames]  # one file, as tf.data takes it; a prefix to list ends with "/"
    if isinstance(filenames, list | tuple) and not filenames:  # no files, no records (tf.data)
        return tf.data.Dataset.from_tensor_slices(tf.constant([], tf.string))
    if _is_names_tensor(filenames) or isinstance(compression_type, tf.Tensor):
        _only_up_front(shuffle=shuffle, rank=rank, world_size=world_size, input_context=input_context,
                       uneven=uneven, pattern=pattern if _is_names_tensor(filenames) else None)  # fmt: skip
        fetch = _ShardReader(Fetcher(config, retries, hedge_after=hedge_after), "", verify)
        if not _is_names_tensor(filenames):
            filenames = tf.constant(list(_source(filenames, pattern, key_cache, refresh, config).keys()))
        return _tensor_records(filenames, compression_type, num_parallel_reads, deterministic, fetch,
                               max_in_flight)  # fmt: skip
    compression = _compression(compression_type)
    if chunk < 1:
        raise ConfigError(f"chunk={chunk}: must be at least 1")
    given = _rank_world(rank, world_size, input_context)  # only given ones: never RANK/WORLD_SIZE,
    rank, world_size = (0, 1) if given == (None, None) else resolve_rank_world(*given)  # as tf.data
    keys = _source(filenames, pattern, key_cache, refresh, config).keys()
    # uneven=None: the whole epoch's permutation, then every world_size-th file (tf.data's FILE sharding)
    plan = EpochPlan(
        len(keys), *((0, 1) if uneven is None else (rank, world_size)), shuffle, seed, uneven or "pad"
    )
    mine = slice(rank, None, world_size) if uneven is None else slice(None)
    reader = _ShardReader(Fetcher(config, retries, hedge_after=hedge_after), compression, verify)
    epochs = _Epochs(epoch, reshuffle_each_iteration)
    max_bytes = max_bytes_in_flight or (config or default_config()).max_bytes_in_flight

    def files() -> list[str]:
        return [keys[int(i)] for i in plan.rank_order(epochs.next())[mine]]

    if num_parallel_reads is None:

        def records() -> Iterator[bytes]:
            fetched = prefetch(reader.read, files(), max_in_flight=max_in_flight, max_bytes=max_bytes,
                               size=lambda got: sum(r.nbytes for r in got[0]))  # fmt: skip
            for _, result in fetched:
                if isinstance(result, BaseException):
                    raise result
                yield from _records_of(result)

        def chunks() -> Iterator[tuple[np.ndarray, int, str]]:
            return _record_chunks(records, chunk)

        ds = _checked(tf.data.Dataset.from_generator(chunks, output_signature=_CHECKED))
    else:

        def shard_chunks(uri: bytes) -> Iterator[tuple[np.ndarray, int, str]]:
            return _record_chunks(lambda: _records_of(reader.read(uri.decode())), chunk)

        def one(uri: tf.Tensor) -> tf.data.Dataset:
            return _checked(tf.data.Dataset.from_generator(shard_chunks, args=(uri,), output_signature=_CHECKED))

        names = tf.data.Dataset.from_generator(files, output_signature=_STRING)
        ds = names.interleave(
            one, cycle_length=num_parallel_reads, block_length=1,
            num_parallel_calls=num_parallel_reads, deterministic=deterministic,
        )  # fmt: skip
    return _finish(ds, world_size, name)


if not TYPE_CHECKING:  # a graph-mode builder: AutoGraph must call it as is, not try to convert it
    TFRecordDataset = tf.autograph.experimental.do_not_convert(TFRecordDataset)


def _only_up_front(**options: Any) -> None:
    """Refuse options that need the file names before the pipeline runs."""
    given = {k: v for k, v in options.items() if v is not None and v is not False}
    if given:
        names = ", ".join(f"{k}={v!r}" for k, v in given.items())
        raise ConfigError(
            f"TFRecordDataset({names}) with file names in a tensor: these need the names up front; "
            "pass a list of URIs or a prefix, or shard and shuffle the names dataset yourself "
            "(.shard(), .shuffle()) before .interleave()"
        )


# -- list_files(): tf.data.Dataset.list_files for object storage ---------------------------------------
_WILDCARD = re.compile(r"[*?\[]")


def _glob(pattern: str, config: Config | None) -> set[str]:
    """What ``pattern`` matches, as TensorFlow's ``matching_files``: objects and "directories"
    (common prefixes), each ``/``-part matched as a glob, so ``*`` never crosses ``/``; from one
    listing under the part before the first wildcard."""
    first = _WILDCARD.search(pattern)
    if first is None:
        return {pattern} if s3dlio.exists(pattern, config=config) else set()
    base = pattern[: pattern.rfind("/", 0, first.start()) + 1]
    parts = pattern[len(base) :].split("/")
    listed = s3dlio.list(pattern[: first.start()], recursive=len(parts) > 1, pattern="(?s).*", config=config)
    found = set()
    for uri in listed:
        names = uri.removeprefix(base).split("/")[: len(parts)]
        if len(names) == len(parts) and all(names) and all(map(fnmatch.fnmatchcase, names, parts)):
            found.add(base + "/".join(names))
    return found


def list_files(
    file_pattern: str | bytes | Sequence[str | bytes],
    shuffle: bool | None = None,
    seed: int | None = None,
    name: str | None = None,
    *,
    config: Config | None = None,
    client: Client | None = None,
) -> tf.data.Dataset:
    """``tf.data.Dataset.list_files`` for ``s3://``/``az://`` patterns, which TensorFlow cannot list.

    A dataset of the matching URIs, sorted, shuffled each iteration with ``seed`` unless
    ``shuffle=False``, as TensorFlow's. Globs: ``*``, ``?``, ``[...]`` within one ``/``-part; one
    listing per pattern, under its part before the first wildcard. No match raises
    ``tf.errors.InvalidArgumentError`` as TensorFlow does. Local paths go to TensorFlow's own.
    """
    config = settings_of(client, config, where="list_files")
    patterns = [file_pattern] if isinstance(file_pattern, str | bytes) else list(file_pattern)
    texts = [p.decode() if isinstance(p, bytes) else os.fspath(p) for p in patterns]
    if not any("://" in p and not p.startswith("file://") for p in texts):
        return tf.data.Dataset.list_files(texts, shuffle=shuffle, seed=seed, name=name)
    names = sorted(uri for p in texts for uri in _glob(p, config))
    if not names:
        raise tf.errors.InvalidArgumentError(None, None, f"No files matched pattern: {', '.join(texts)}")
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(names, tf.string), name=name)
    return ds.shuffle(len(names), seed=seed, name=name) if shuffle is None or shuffle else ds
