"""``s3dlio_tf`` where tf.data's own behaviour is the specification, on moto (and Azurite).

Each case runs the same pipeline twice, ``s3dlio_tf`` on ``s3://`` and ``tf.data`` on local copies
of the same files, and compares what comes out: the records, then the ``tf.errors`` type the
pipeline stops with (missing files, files not compressed as stated, corrupt or truncated files);
file names given as bytes; ``s3dlio_tf.list_files`` against ``tf.data.Dataset.list_files``.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = pytest.importorskip("tensorflow")

import s3dlio  # noqa: E402
import s3dlio_tf  # noqa: E402
from s3dlio.formats.tfrecord import write_tfrecords  # noqa: E402

PLAIN = write_tfrecords([b"rec-%d" % i for i in range(6)])
OTHER = write_tfrecords([b"other-%d" % i for i in range(4)])
CORRUPT = bytearray(PLAIN)
CORRUPT[len(PLAIN) // 2] ^= 0xFF  # inside the 4th record's data: the first three still count
FILES = {
    "plain": PLAIN,
    "other": OTHER,
    "other-GZIP": gzip.compress(OTHER),
    "other-ZLIB": zlib.compress(OTHER),
    "gzip": gzip.compress(PLAIN),
    "zlib": zlib.compress(PLAIN),
    "empty": b"",
    "corrupt": bytes(CORRUPT),
    "truncated": PLAIN[:-3],
    "junk": b"this is not a TFRecord file at all",
    "gzip-cut": gzip.compress(PLAIN)[: len(gzip.compress(PLAIN)) // 2],  # tf.data: what it decoded, no error
    "zlib-cut": zlib.compress(PLAIN)[: len(zlib.compress(PLAIN)) // 2],
    "gzip-no-trailer": gzip.compress(PLAIN)[:-4],
    "gzip-then-junk": gzip.compress(PLAIN) + b"garbage after the stream",
    "header-cut": PLAIN + PLAIN[:7],  # less than a header at the end: tf.data ends quietly
}
Outcome = tuple[list[bytes], type[Exception] | None]


@pytest.fixture
def where(s3_bucket: str, tmp_path: Path) -> tuple[Callable[[str], str], Callable[[str], str]]:
    """``FILES`` on moto and as local files: (uri of name, local path of name)."""
    s3dlio.put_many([(f"{s3_bucket}d/{name}.tfrecord", data) for name, data in FILES.items()])
    for name, data in FILES.items():
        (tmp_path / f"{name}.tfrecord").write_bytes(data)
    return (lambda name: f"{s3_bucket}d/{name}.tfrecord"), (lambda name: str(tmp_path / f"{name}.tfrecord"))


def outcome(ds: tf.data.Dataset) -> Outcome:
    """The records a pipeline gives, then the tf.errors type it stops with (None: it ends)."""
    got: list[bytes] = []
    try:
        for record in ds.as_numpy_iterator():
            got.append(record)
    except tf.errors.OpError as exc:
        return got, type(exc)
    return got, None


def both(
    where: Any, names: list[str], build: Callable[[Any, list[str]], tf.data.Dataset]
) -> tuple[Outcome, Outcome]:
    """(ours on s3://, tf.data's on the local copies) of ``build(reader, file names)``."""
    uri, path = where
    ours = outcome(build(s3dlio_tf.TFRecordDataset, [uri(n) for n in names]))
    theirs = outcome(build(tf.data.TFRecordDataset, [path(n) for n in names]))
    return ours, theirs


LIST = {
    "list": lambda reader, files, **kw: reader(files, **kw),
    "list-parallel2": lambda reader, files, **kw: reader(files, num_parallel_reads=2, **kw),
    "interleave": lambda reader, files, **kw: tf.data.Dataset.from_tensor_slices(files).interleave(
        lambda f: reader(f, **kw), cycle_length=2, num_parallel_calls=2
    ),
    "flat_map": lambda reader, files, **kw: tf.data.Dataset.from_tensor_slices(files).flat_map(
        lambda f: reader(f, **kw)
    ),
}


@pytest.mark.parametrize("pipeline", LIST.values(), ids=LIST.keys())
def test_a_missing_file_raises_not_found(where: Any, pipeline: Any) -> None:
    ours, theirs = both(where, ["plain", "missing", "other"], pipeline)
    assert theirs[1] is tf.errors.NotFoundError and theirs[0]  # the records before it come first
    assert ours == theirs
    with pytest.raises(tf.errors.NotFoundError, match=r"d/missing.tfrecord: not found; No such file"):
        list(pipeline(s3dlio_tf.TFRecordDataset, [where[0]("missing")]).as_numpy_iterator())


CASES = [
    ("plain", "ZLIB"), ("plain", "GZIP"), ("gzip", "ZLIB"), ("zlib", "GZIP"), ("gzip", ""), ("zlib", ""),
    ("junk", ""), ("junk", "GZIP"), ("corrupt", ""), ("truncated", ""), ("empty", ""), ("empty", "ZLIB"),
    ("empty", "GZIP"), ("gzip", "GZIP"), ("zlib", "ZLIB"), ("gzip-cut", "GZIP"), ("zlib-cut", "ZLIB"),
    ("gzip-no-trailer", "GZIP"), ("gzip-then-junk", "GZIP"), ("header-cut", ""),
]  # fmt: skip


@pytest.mark.parametrize(("name", "kind"), CASES, ids=[f"{n}-as-{k or 'none'}" for n, k in CASES])
@pytest.mark.parametrize("pipeline", LIST.values(), ids=LIST.keys())
def test_bytes_that_are_no_tfrecord_file_raise_data_loss(
    where: Any, name: str, kind: str, pipeline: Any, caplog: pytest.LogCaptureFixture
) -> None:
    then = f"other-{kind}" if kind else "other"  # a good file after it, as compressed as stated
    ours, theirs = both(
        where, [name, then], lambda reader, files: pipeline(reader, files, compression_type=kind)
    )
    assert ours == theirs
    if name in ("corrupt", "truncated"):  # the records before the bad one count
        good = 3 if name == "corrupt" else 5
        assert [r for r in theirs[0] if r.startswith(b"rec-")] == [b"rec-%d" % i for i in range(good)]
    if theirs[1] is not None:
        assert theirs[1] is tf.errors.DataLossError
        assert f"d/{name}.tfrecord: " in caplog.text  # the URI and s3dlio's reason, in the s3dlio_tf log


def test_not_compressed_as_stated_says_what_tensorflow_says(where: Any) -> None:
    uri, path = where
    for kind in ("ZLIB", "GZIP"):
        messages = []
        for reader, name in (
            (s3dlio_tf.TFRecordDataset, uri("plain")),
            (tf.data.TFRecordDataset, path("plain")),
        ):
            with pytest.raises(tf.errors.DataLossError) as caught:
                list(reader([name], compression_type=kind).as_numpy_iterator())
            messages.append(caught.value.message)
        assert all("inflate() failed with error -3: incorrect header check" in m for m in messages)


def test_file_names_as_bytes(where: Any) -> None:
    uri, path = where
    names = ["plain", "other"]
    expected = outcome(tf.data.TFRecordDataset([path(n).encode() for n in names]))
    assert expected[1] is None and len(expected[0]) == 10
    assert outcome(s3dlio_tf.TFRecordDataset([uri(n).encode() for n in names])) == expected
    assert outcome(s3dlio_tf.TFRecordDataset(np.array([uri(n).encode() for n in names]))) == expected
    assert outcome(s3dlio_tf.TFRecordDataset((uri("plain").encode(), uri("other")))) == expected
    one = outcome(tf.data.TFRecordDataset(path("plain").encode()))
    assert outcome(s3dlio_tf.TFRecordDataset(uri("plain").encode())) == one  # one name, not a prefix
    assert outcome(
        s3dlio_tf.TFRecordDataset([uri(n).encode() for n in names], num_parallel_reads=2)
    ) == outcome(tf.data.TFRecordDataset([path(n).encode() for n in names], num_parallel_reads=2))


def test_one_name_is_one_file_as_in_tf_data(
    s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name is that file, never a prefix or a pattern of its siblings (a "." is no wildcard);
    a local Path is a file; no files, no records; and RANK/WORLD_SIZE set by a launcher do not
    split the files (tf.data knows nothing of them: only rank=/world_size= shard)."""
    siblings = {"t.tfrecord": PLAIN, "t.tfrecord.bak": OTHER, "tXtfrecord": OTHER, "t.tfrecord-dir/x": OTHER}
    s3dlio.put_many([(f"{s3_bucket}one/{name}", data) for name, data in siblings.items()])
    (tmp_path / "t.tfrecord").write_bytes(PLAIN)
    expected = outcome(tf.data.TFRecordDataset(str(tmp_path / "t.tfrecord")))
    assert expected == ([b"rec-%d" % i for i in range(6)], None)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert outcome(s3dlio_tf.TFRecordDataset(f"{s3_bucket}one/t.tfrecord")) == expected
    assert outcome(s3dlio_tf.TFRecordDataset(tmp_path / "t.tfrecord")) == expected
    assert outcome(s3dlio_tf.TFRecordDataset([f"{s3_bucket}one/t.tfrecord"])) == expected
    assert outcome(s3dlio_tf.TFRecordDataset([])) == outcome(tf.data.TFRecordDataset([])) == ([], None)
    assert outcome(s3dlio_tf.TFRecordDataset(f"{s3_bucket}one/missing")) == (
        [], tf.errors.NotFoundError
    )  # at iteration, as a tf.errors type
    listed = outcome(s3dlio_tf.TFRecordDataset(f"{s3_bucket}one/", pattern=r"t\.tfrecord"))
    assert listed == expected  # a prefix and pattern= still list


# -- list_files ------------------------------------------------------------------------------------
TREE = [
    "train-00.tfrecord", "train-01.tfrecord", "train-02.tfrecord", "train-1x.tfrecord", "train-10.tfrecord",
    "eval-00.tfrecord", "train-03.tfrecord.gz", "sub/train-04.tfrecord", "sub/deeper/train-05.tfrecord",
    "other/train-06.tfrecord",
]  # fmt: skip
PATTERNS = [
    "train-*.tfrecord", "train-0?.tfrecord", "train-[01][0-9].tfrecord", "train-[!0]*", "*/train-*.tfrecord",
    "*/*/train-*", "train-02.tfrecord", "s*/train-0[4-5].tfrecord", "*",
]  # fmt: skip


@pytest.fixture(params=["s3", "az"])
def tree(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """``TREE`` on moto (``s3://``) or Azurite (``az://``) and in a local directory: (URI prefix, local prefix)."""
    bucket = request.getfixturevalue("s3_bucket" if request.param == "s3" else "az_container")
    s3dlio.put_many([(f"{bucket}tree/{name}", name.encode()) for name in TREE])
    for name in TREE:
        (tmp_path / "tree" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "tree" / name).write_bytes(name.encode())
    return f"{bucket}tree/", f"{tmp_path}/tree/"


def relative(ds: tf.data.Dataset, prefix: str) -> list[str]:
    return [name.decode().removeprefix(prefix) for name in ds.as_numpy_iterator()]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_list_files_matches_as_tensorflows(tree: tuple[str, str], pattern: str) -> None:
    remote, local = tree
    theirs = relative(tf.data.Dataset.list_files(local + pattern, shuffle=False), local)
    assert theirs and relative(s3dlio_tf.list_files(remote + pattern, shuffle=False), remote) == theirs


def test_list_files_shuffles_as_tensorflows(tree: tuple[str, str]) -> None:
    remote, local = tree
    ours = s3dlio_tf.list_files(remote + "train-*", seed=5)  # shuffle=None: shuffled, as in TF
    theirs = tf.data.Dataset.list_files(local + "train-*", seed=5)
    first, second = relative(ours, remote), relative(ours, remote)
    assert first == relative(theirs, local) and second == relative(theirs, local)
    assert first != second and sorted(first) == sorted(second)  # a new order each iteration
    both_patterns = [remote + "eval-*", (remote + "sub/*").encode()]
    assert relative(s3dlio_tf.list_files(both_patterns, shuffle=False), remote) == [
        "eval-00.tfrecord",
        "sub/deeper",  # a "directory", as TensorFlow's matching_files gives it
        "sub/train-04.tfrecord",
    ]
    records = s3dlio_tf.list_files(remote + "train-0[0-2].tfrecord", shuffle=False).map(tf.io.read_file)
    with pytest.raises(tf.errors.UnimplementedError):  # the names are s3:// URIs: read them with s3dlio_tf
        list(records)


def test_list_files_without_a_match_raises_as_tensorflow(tree: tuple[str, str]) -> None:
    remote, local = tree
    with pytest.raises(tf.errors.InvalidArgumentError, match="No files matched pattern: "):
        tf.data.Dataset.list_files(local + "nothing-*")
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=f"No files matched pattern: {remote}nothing-\\*"
    ):
        s3dlio_tf.list_files(remote + "nothing-*")
    local_too = s3dlio_tf.list_files(local + "train-0?.tfrecord", shuffle=False)  # local: TensorFlow's own
    assert relative(local_too, local) == ["train-00.tfrecord", "train-01.tfrecord", "train-02.tfrecord"]
