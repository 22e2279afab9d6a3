"""Find and remove what killed writers leave behind under a prefix (``s3dlio cleanup``).

A write that completes never leaves anything: every store writes to a hidden name or in
parts and makes the object appear at once. A process killed mid-write (SIGKILL, OOM, power)
cannot tidy up, and leaves, depending on the backend:

- ``s3://``: **incomplete multipart uploads**. They are invisible to ``ls``/``get`` but
  the service keeps (and bills) their parts until they are aborted. Found with
  ListMultipartUploads (their ``Initiated`` time is their age) and aborted.
- ``az://``: **uncommitted blocks**. A blob that has only uncommitted blocks is listed
  (``include=uncommittedblobs``) and removed by committing an empty block list only if no
  blob exists there (which discards the blocks) and deleting that empty blob. Blocks staged
  for a blob that does exist cannot be removed without rewriting the blob: Azure discards
  them after a week, and they are not reported.
- ``file://`` and ``direct://``: **hidden temporary files** (``.s3dlio-tmp-<pid>-<hex>``
  beside the target); their age is their modification time, which every write refreshes.
- every backend: objects whose last path segment starts with ``.s3dlio-tmp-``.

``mem://`` keeps nothing across processes, so there is nothing to clean. ``older_than``
spares leftovers younger than it: give it when writers may be running, or their uploads in
progress are removed too.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from . import _parallel
from .config import Config, default_config
from .errors import InvalidUriError
from .store.base import outside_prefix
from .store.local import TMP_PREFIX, map_errors
from .store.registry import open_store
from .uri import ObjectUri, parse

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .store.base import Store

__all__ = ["Leftover", "LeftoverKind", "cleanup", "cleanup_async", "parse_age"]

LeftoverKind = Literal["multipart-upload", "uncommitted-blocks", "temp-file"]

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)?\s*$", re.IGNORECASE)
_UNIT = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True, slots=True)
class Leftover:
    """One thing a killed writer left: what, where, since when, and what cleanup did with it."""

    uri: str
    kind: LeftoverKind
    #: When it was started (multipart uploads) or last written (files, blocks); None if unknown.
    modified: datetime | None
    size: int | None = None
    #: The multipart upload's id (S3 only).
    upload_id: str | None = None
    removed: bool = False
    #: Why it could not be removed, if it could not.
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for JSON output."""
        out = asdict(self)
        if self.modified is not None:
            out["modified"] = self.modified.isoformat().replace("+00:00", "Z")
        return out


def parse_age(value: str | float | timedelta | None) -> timedelta | None:
    """``"90s"``, ``"30m"``, ``"1h"``, ``"2d"``, ``"1w"``, a number of seconds, or a timedelta."""
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _AGE.match(value)
        if match is None:
            raise ValueError(f"age {value!r}: write a number with s, m, h, d or w, e.g. 1h or 30m")
        unit = match.group(2).lower() if match.group(2) else None
        seconds = float(match.group(1)) * _UNIT[unit]
    if seconds < 0:
        raise ValueError(f"age {value!r}: must not be negative")
    return timedelta(seconds=seconds)


def cleanup(
    uri: str,
    *,
    older_than: str | float | timedelta | None = None,
    dry_run: bool = False,
    config: Config | None = None,
) -> list[Leftover]:
    """Find what killed writers left under the prefix ``uri`` and remove it (see the module doc).

    ``older_than`` (``"1h"``, seconds or a timedelta) keeps leftovers younger than that, such
    as uploads still running; ``dry_run`` only reports. Returns every leftover found, each
    marked ``removed`` or with the ``error`` that kept it. Raises like the other operations
    when the bucket or container does not exist.
    """
    age = parse_age(older_than)
    parsed = parse(uri)
    if parsed.scheme in ("s3", "az") and not parsed.bucket:
        raise InvalidUriError(f"cleanup {uri}: name a bucket or container, e.g. {parsed.scheme}://bucket/prefix/")
    # The portable engine: obstore cannot list multipart uploads or uncommitted blocks.
    store = open_store(parsed, (config or default_config()).replace(engine="portable"))
    cutoff = None if age is None else datetime.now(UTC) - age
    found = [item for item in _find(parsed, store) if cutoff is None or _older(item, cutoff)]
    if dry_run:
        return found
    return [_remove(parsed, store, item) for item in found]


async def cleanup_async(
    uri: str,
    *,
    older_than: str | float | timedelta | None = None,
    dry_run: bool = False,
    config: Config | None = None,
) -> list[Leftover]:
    """Async twin of :func:`cleanup`."""
    return await _parallel.run_async(cleanup, uri, older_than=older_than, dry_run=dry_run, config=config)


def _older(item: Leftover, cutoff: datetime) -> bool:
    return item.modified is None or item.modified <= cutoff


# -- finding ---------------------------------------------------------------------------------
def _find(parsed: ObjectUri, store: Store) -> Iterator[Leftover]:
    if parsed.scheme in ("file", "direct"):
        yield from _temp_files(parsed)
        return
    if parsed.scheme == "s3":
        yield from _multipart_uploads(parsed, store)
    elif parsed.scheme == "az":
        yield from _uncommitted_blobs(parsed, store)
    yield from _temp_objects(parsed, store)


def _uri(parsed: ObjectUri, key: str) -> str:
    return str(parsed.with_key(key))


def _temp_files(parsed: ObjectUri) -> Iterator[Leftover]:
    """Hidden temporaries in the prefix's directory and every directory below the prefix."""
    directory, _, name_prefix = parsed.key.rpartition("/")
    if name_prefix and os.path.isdir("/" + parsed.key):  # file:///a/dir means the directory
        directory, name_prefix = parsed.key, ""
    top = "/" + directory
    with map_errors("cleanup", _uri(parsed, parsed.key)):
        try:
            entries = list(os.scandir(top))
        except (FileNotFoundError, NotADirectoryError):
            return
    for entry in sorted(entries, key=lambda e: e.name):
        if entry.name.startswith(TMP_PREFIX):
            item = _temp_file(parsed, entry.path)
            if item is not None:
                yield item
        elif entry.name.startswith(name_prefix) and entry.is_dir(follow_symlinks=False):
            for root, dirs, files in os.walk(entry.path):
                dirs.sort()
                for name in sorted(files):
                    if name.startswith(TMP_PREFIX):
                        item = _temp_file(parsed, os.path.join(root, name))
                        if item is not None:
                            yield item


def _temp_file(parsed: ObjectUri, path: str) -> Leftover | None:
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:  # finished (renamed) or removed meanwhile
        return None
    modified = datetime.fromtimestamp(st.st_mtime, UTC)
    return Leftover(_uri(parsed, path.lstrip("/")), "temp-file", modified, st.st_size)


def _temp_objects(parsed: ObjectUri, store: Store) -> Iterator[Leftover]:
    """Objects named like s3dlio's temporaries (checkpoints and tools that copy its naming)."""
    for item in store.list(parsed.key):
        if isinstance(item, str) or not item.key.rpartition("/")[2].startswith(TMP_PREFIX):
            continue
        yield Leftover(_uri(parsed, item.key), "temp-file", item.last_modified, item.size)


def _multipart_uploads(parsed: ObjectUri, store: Any) -> Iterator[Leftover]:
    client = store._client
    with store._errors("list_multipart_uploads", parsed.key):
        pages = client.get_paginator("list_multipart_uploads").paginate(Bucket=parsed.bucket, Prefix=parsed.key)
        for page in pages:
            for upload in page.get("Uploads", []):
                _check_under(parsed, store, upload["Key"], "list_multipart_uploads")
                yield Leftover(
                    _uri(parsed, upload["Key"]), "multipart-upload", upload.get("Initiated"),
                    upload_id=upload["UploadId"],
                )  # fmt: skip


def _uncommitted_blobs(parsed: ObjectUri, store: Any) -> Iterator[Leftover]:
    """Blobs that exist only as uncommitted blocks (a committed blob is listed without the flag)."""
    container = store._container
    with store._errors("list", parsed.key):
        committed = {b.name for b in container.list_blobs(name_starts_with=parsed.key or None)}
        listed = container.list_blobs(name_starts_with=parsed.key or None, include=["uncommittedblobs"])
        for blob in listed:
            _check_under(parsed, store, blob.name, "list")
            if blob.name not in committed:
                yield Leftover(_uri(parsed, blob.name), "uncommitted-blocks", blob.last_modified)


def _check_under(parsed: ObjectUri, store: Any, key: str, op: str) -> None:
    """Raise unless ``key`` is under the prefix: what a broken server lists outside it is not removed."""
    if not key.startswith(parsed.key):
        raise outside_prefix(op, str(parsed), store.endpoint, key)


# -- removing --------------------------------------------------------------------------------
def _remove(parsed: ObjectUri, store: Any, item: Leftover) -> Leftover:
    key = parse(item.uri).key
    try:
        if item.kind == "multipart-upload":
            with store._errors("abort_multipart_upload", key):
                store._client.abort_multipart_upload(Bucket=parsed.bucket, Key=key, UploadId=item.upload_id)
        elif item.kind == "uncommitted-blocks":
            _discard_blocks(store, key)
        elif parsed.scheme in ("file", "direct"):
            # FileNotFoundError: renamed into place or removed meanwhile, nothing left
            with map_errors("cleanup", item.uri), contextlib.suppress(FileNotFoundError):
                os.unlink("/" + key)
        else:
            store.delete(key)
    except Exception as exc:  # noqa: BLE001 - reported per leftover; the others still go
        return replace(item, error=str(exc) or type(exc).__name__)
    return replace(item, removed=True)


def _discard_blocks(store: Any, key: str) -> None:
    """Commit an empty block list where no blob exists (dropping the blocks), then delete it."""
    from azure.core import MatchConditions
    from azure.core.exceptions import HttpResponseError

    blob = store._container.get_blob_client(key)
    with store._errors("cleanup", key):
        try:
            empty = blob.commit_block_list([], if_none_match="*")
        except HttpResponseError as exc:
            if exc.status_code in (409, 412):  # committed meanwhile: a real blob now, keep it
                return
            raise
        blob.delete_blob(etag=empty["etag"], match_condition=MatchConditions.IfNotModified)
