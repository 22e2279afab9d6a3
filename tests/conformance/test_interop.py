"""The two engines store the same thing: what one writes, the other (and the service's own SDK)
reads under exactly the same key. A forked DataLoader worker on the portable engine must see
what its parent wrote on the fast engine, so this is part of fork safety, not a nicety.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from servers import Azurite, MotoServer

import s3dlio

from ._helpers import SPECIAL_KEYS

KEYS = ("plain", "dir/nested/obj.bin", *SPECIAL_KEYS)


def stored_keys(scheme: str, base: str, request: pytest.FixtureRequest) -> list[str]:
    """Keys as the service itself reports them (boto3, azure-storage-blob, os.walk)."""
    if scheme == "s3":
        server: MotoServer = request.getfixturevalue("moto_server")
        bucket = base[len("s3://") :].rstrip("/")
        pages = server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))
    if scheme == "az":
        azurite: Azurite = request.getfixturevalue("azurite")
        container = base[len("az://") :].rstrip("/")
        return sorted(azurite.client().get_container_client(container).list_blob_names())
    root = base[len("file://") :]
    return sorted(
        os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/")
        for d, _, fs in os.walk(root)
        for f in fs
    )


@pytest.mark.parametrize("scheme", ["s3", "az", "file"])
@pytest.mark.parametrize(("writer", "reader"), [("fast", "portable"), ("portable", "fast")])
def test_engines_share_objects(
    scheme: str, writer: str, reader: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if scheme == "s3":
        base = request.getfixturevalue("s3_bucket")
    elif scheme == "az":
        base = request.getfixturevalue("az_container")
    else:
        base = f"file://{tmp_path}/"
    values = {key: f"<{key}>".encode() for key in KEYS}

    s3dlio.configure(engine=writer)
    s3dlio.put_many((base + k, v) for k, v in values.items())
    assert stored_keys(scheme, base, request) == sorted(KEYS), "keys must be stored literally"

    s3dlio.configure(engine=reader)
    for key, value in values.items():
        assert bytes(s3dlio.get(base + key)) == value, key
        assert s3dlio.stat(base + key).size == len(value), key
    assert sorted(s3dlio.list(base, recursive=True)) == sorted(base + k for k in KEYS)
    assert s3dlio.delete(base, recursive=True) == len(KEYS)
    assert stored_keys(scheme, base, request) == []
