"""Payloads, byte comparison and leftover checks shared by the large-object tests."""

from __future__ import annotations

import functools
import os
from typing import Any

import pytest
from servers import Backend

MiB = 1024 * 1024
#: S3's smallest part; moto enforces it, so the tests use it as the part size.
PART = 5 * MiB


@functools.cache
def payload(size: int, seed: int = 0) -> bytes:
    """``size`` pseudo-random bytes, made once per session."""
    import numpy as np

    return np.random.default_rng(seed).bytes(size)


def assert_bytes(got: Any, want: bytes) -> None:
    """``got`` (any buffer) equals ``want``; on a mismatch say where, without dumping megabytes."""
    data = memoryview(got).cast("B").tobytes()
    assert len(data) == len(want), f"size {len(data)} != expected {len(want)}"
    if data != want:
        first = next(i for i in range(len(want)) if data[i] != want[i])
        raise AssertionError(f"bytes differ first at offset {first} of {len(want)}")


def leftovers(request: pytest.FixtureRequest, backend: Backend, key: str) -> list[str]:
    """What an aborted upload of ``key`` left behind: multipart uploads, staged blocks, temp files."""
    from s3dlio.uri import parse

    parsed = parse(backend.uri(key))
    if backend.scheme == "s3":
        client = request.getfixturevalue("moto_server").client()
        uploads = client.list_multipart_uploads(Bucket=parsed.bucket).get("Uploads", [])
        return [u["Key"] for u in uploads]
    if backend.scheme == "az":
        from azure.core.exceptions import ResourceNotFoundError

        blob = (
            request.getfixturevalue("azurite")
            .client()
            .get_container_client(parsed.bucket)
            .get_blob_client(key)
        )
        try:
            return [b.id for b in blob.get_block_list("uncommitted")[1]]
        except ResourceNotFoundError:
            return []
    if backend.scheme in ("file", "direct"):
        return os.listdir("/" + parsed.key.rpartition("/")[0])
    import s3dlio

    return s3dlio.list(backend.base, recursive=True)
