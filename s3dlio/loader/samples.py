"""Samples from a fetched object: the whole object, or the records inside it.

``samples=`` names how: ``"object"`` (one sample, the buffer), ``"tfrecord"`` (one per
record, zero-copy views; CRCs checked), ``"tar"`` (WebDataset-style: members grouped by the
name before the first dot of their file name, ``{"jpg": view, "cls": view}``), ``"npz"``
(one sample, ``{name: array}``), or a callable ``(uri, buffer) -> list of data``.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..errors import ConfigError, S3dlioError
from .reader import BufferReader

if TYPE_CHECKING:
    from collections.abc import Buffer

__all__ = [
    "Sample",
    "SampleError",
    "SampleKind",
    "Splitter",
    "check_kind",
    "note_transform_error",
    "split_records",
]

SampleKind = Literal["object", "tfrecord", "tar", "npz"]
Splitter = Callable[[str, memoryview], Sequence[Any]]
_KINDS = ("object", "tfrecord", "tar", "npz")


class SampleError(S3dlioError):
    """Decoding one sample failed; the message names its URI and record. (An error of the
    user's transform propagates as it is, with a note naming the sample.)"""


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample: where it came from and its data.

    ``record`` is None for a whole object, the record number for TFRecord (and callables),
    the WebDataset key for tar members.
    """

    uri: str
    data: Any
    record: int | str | None = None

    @property
    def where(self) -> str:
        """The URI, with the record when there is one: for messages."""
        return self.uri if self.record is None else f"{self.uri} (record {self.record!r})"


def check_kind(kind: SampleKind | Splitter) -> None:
    """Fail early, naming the choices, for an unknown ``samples=``."""
    if not callable(kind) and kind not in _KINDS:
        raise ConfigError(
            f"samples={kind!r}: use one of {', '.join(_KINDS)} or a callable (uri, buffer) -> records"
        )


def split_records(kind: SampleKind | Splitter, uri: str, buffer: Buffer) -> list[Sample]:
    """The samples of one object, in file order. Bad bytes raise :class:`SampleError`."""
    view = memoryview(buffer).cast("B")
    try:
        if kind == "object":
            return [Sample(uri, view)]
        if kind == "tfrecord":
            from ..formats.tfrecord import iter_tfrecords

            return [Sample(uri, record, i) for i, record in enumerate(iter_tfrecords(view))]
        if kind == "tar":
            return _tar_samples(uri, view)
        if kind == "npz":
            from ..formats.npz import read_npz

            return [Sample(uri, read_npz(view))]
        assert callable(kind)
        return [Sample(uri, data, i) for i, data in enumerate(kind(uri, view))]
    except SampleError:
        raise
    except Exception as exc:
        name = kind if isinstance(kind, str) else getattr(kind, "__name__", repr(kind))
        raise SampleError(f"{uri}: cannot read it as {name}: {type(exc).__name__}: {exc}") from exc


def _tar_samples(uri: str, view: memoryview) -> list[Sample]:
    """Members grouped WebDataset-style; an uncompressed tar is sliced without copying."""
    samples: list[Sample] = []
    current: dict[str, Any] = {}
    key: str | None = None
    with tarfile.open(fileobj=BufferReader(view, uri), mode="r:*") as archive:
        sliceable = archive.fileobj is not None and isinstance(archive.fileobj, BufferReader)
        for member in archive:
            if not member.isfile():
                continue
            directory, _, name = member.name.rpartition("/")
            stem, dot, ext = name.partition(".")
            if not dot or stem == "":
                continue  # WebDataset skips names without an extension (and hidden files)
            member_key = f"{directory}/{stem}" if directory else stem
            if member_key != key and current:
                samples.append(Sample(uri, current, key))
                current = {}
            key = member_key
            if sliceable:
                current[ext] = view[member.offset_data : member.offset_data + member.size]
            else:
                extracted = archive.extractfile(member)
                current[ext] = memoryview(extracted.read() if extracted else b"")
    if current:
        samples.append(Sample(uri, current, key))
    return samples


def note_transform_error(sample: Sample, transform: Callable[[Any], Any], exc: Exception) -> None:
    """Add a note naming the transform and the sample to ``exc``, raised by the user's transform;
    then re-raise it (bare ``raise``), so its type stays (``except ValueError`` in the training
    loop still catches it), as in s3torchconnector."""
    name = getattr(transform, "__qualname__", None) or type(transform).__name__
    exc.add_note(f"transform {name} failed on {sample.where}")
