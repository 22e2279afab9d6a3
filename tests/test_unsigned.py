"""``unsigned=True`` (s3fs's and adlfs's ``anon=True``): requests carry no credentials at all,
even where credentials are configured; checked on the wire by a proxy in front of the servers."""

from __future__ import annotations

import pytest
from large.faultproxy import FaultProxy
from servers import Azurite, MotoServer

import s3dlio
from s3dlio.errors import PermissionDeniedError

ENGINES = ["fast", "portable"]


def _signed(proxy: FaultProxy) -> list[bool]:
    return ["authorization" in fields or "x-amz-security-token" in fields for _, _, _, fields in proxy.log]


@pytest.mark.parametrize("engine", ENGINES)
def test_s3_requests_carry_no_credentials(moto_server: MotoServer, s3_bucket: str, engine: str) -> None:
    bucket = s3_bucket.split("/")[2]
    moto_server.client().put_object(Bucket=bucket, Key="public.bin", Body=b"open data", ACL="public-read")
    moto_server.client().put_bucket_acl(Bucket=bucket, ACL="public-read")  # listing too
    proxy = FaultProxy(moto_server.port)
    try:
        anon = s3dlio.Client(engine=engine, endpoint_url=proxy.url, unsigned=True,
                             access_key_id="AKIAEXAMPLE", secret_access_key="configured-but-unused")  # fmt: skip
        assert bytes(anon.get(f"{s3_bucket}public.bin")) == b"open data"
        assert anon.list(s3_bucket) == [f"{s3_bucket}public.bin"]
        assert proxy.log and not any(_signed(proxy)), "an unsigned client sent credentials"
        proxy.log.clear()
        s3dlio.Client(engine=engine, endpoint_url=proxy.url).get(f"{s3_bucket}public.bin")
        assert all(_signed(proxy)), "the default client should sign"
        private = f"{bucket}-private"
        moto_server.client().create_bucket(Bucket=private)
        moto_server.client().put_object(Bucket=private, Key="k", Body=b"x")
        with pytest.raises(PermissionDeniedError, match="requests are unsigned"):
            anon.get(f"s3://{private}/k")
    finally:
        proxy.stop()
        s3dlio.delete(f"s3://{bucket}-private/", recursive=True)
        s3dlio.delete_bucket(f"s3://{bucket}-private")


@pytest.mark.parametrize("engine", ENGINES)
def test_azure_private_container_refuses_unsigned(azurite: Azurite, az_container: str, engine: str) -> None:
    """Azurite's containers are private: an unsigned read is denied with an error that says the
    requests were unsigned (not "check the key"), and the wire shows no Authorization header."""
    container = az_container.split("/")[2]
    azurite.client().get_container_client(container).upload_blob("private.bin", b"secret")
    proxy = FaultProxy(azurite.port)
    try:
        anon = s3dlio.Client(engine=engine, azure_endpoint=f"{proxy.url}/devstoreaccount1", unsigned=True,
                             max_attempts=1)  # fmt: skip
        for op in (lambda: anon.get(f"{az_container}private.bin"), lambda: anon.list(az_container)):
            with pytest.raises(PermissionDeniedError, match="requests are unsigned") as denied:
                op()
            assert "ACCOUNT_KEY" not in str(denied.value)
        assert proxy.log and not any(_signed(proxy))
    finally:
        proxy.stop()


def test_unsigned_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3DLIO_UNSIGNED", "1")
    assert s3dlio.Config.resolve().unsigned is True
