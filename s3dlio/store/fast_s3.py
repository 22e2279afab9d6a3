"""The fast engine's S3 store: obstore's ``S3Store`` with s3dlio's endpoint, credential chain,
timeouts and retries; buckets and folder markers go through the portable (boto3) store."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from obstore.store import S3Store

from ..config import Config
from ..errors import ConfigError, S3dlioError
from .fast import FastStore, PortableBuckets, build, client_options, log, retry_config

if TYPE_CHECKING:
    from .base import Upload

__all__ = ["FastS3Store"]


class FastS3Store(PortableBuckets, FastStore):
    """An S3 bucket; bucket create/delete/list go through the portable (boto3) store."""

    def __init__(self, bucket: str, config: Config) -> None:
        region = config.region or "us-east-1"
        kwargs: dict[str, Any] = {"region": region}
        hint = ""
        credentials = config.aws_credentials()
        if credentials == "unsigned":
            kwargs["skip_signature"] = True  # a denial says so (fast_errors)
        elif credentials == "keys":
            if config.profile:  # it must exist, as in botocore, and may name the region
                session_region = _boto3_credentials(config)[1]
                kwargs["region"] = config.region or session_region or region
            kwargs["access_key_id"] = config.access_key_id
            kwargs["secret_access_key"] = config.secret_access_key
            if config.session_token:
                kwargs["token"] = config.session_token
        else:
            provider, session_region = _boto3_credentials(config)
            kwargs["region"] = config.region or session_region or region
            if provider is not None:
                kwargs["credential_provider"] = provider
            elif config.profile:
                raise ConfigError(f"AWS profile {config.profile!r} has no credentials")
            else:
                kwargs["skip_signature"] = True  # public buckets still work; private ones say 403
                hint = (" (no AWS credentials were found, so the request was anonymous: set AWS_ACCESS_KEY_ID "
                        "and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)")  # fmt: skip
        # Always explicit, under the one key obstore ranks above the environment: it reads
        # AWS_ENDPOINT_URL_S3 itself, which would otherwise beat the configured endpoint (and,
        # empty, make every request panic). Path style, as MinIO, Ceph and moto need, and as
        # obstore's own default on AWS.
        endpoint = config.endpoint_url or f"https://s3.{kwargs['region']}.amazonaws.com"
        kwargs.update(config={"aws_endpoint_url_s3": endpoint}, virtual_hosted_style_request=False)
        kwargs["unsigned_payload"] = not config.sign_payload
        inner = build(
            "S3",
            S3Store,
            bucket,
            client_options=client_options(config, endpoint),
            retry_config=retry_config(config),
            **kwargs,
        )
        super().__init__(bucket, config, inner, scheme="s3", endpoint=endpoint)
        self._credential_hint = hint
        self._portable: Any = None

    def open_upload(self, key: str, *, part_size: int, content_type: str | None = None) -> Upload:
        from .upload_fast import StreamUpload

        self._check_key("put", key)
        return StreamUpload(self, key, part_size, content_type, self.config.max_in_flight)

    def _abort_leftovers(self, key: str, began: float) -> None:
        from ..retry import retrying
        from .upload_s3 import abort_upload

        store = self._bucket_store()
        now = datetime.now(UTC)
        since, abandoned = now - timedelta(seconds=time.monotonic() - began + 2), now - timedelta(days=1)

        def listing() -> Any:
            with store._errors("list_multipart_uploads", key):
                return store._client.list_multipart_uploads(Bucket=self.bucket, Prefix=key)

        try:
            left = self.config.total_timeout - (time.monotonic() - began)  # the put's budget: once at least
            found = retrying(listing, attempts=self.config.max_attempts, budget=max(0.0, left))
            for upload in found.get("Uploads", ()):
                if upload["Key"] == key and not abandoned < upload["Initiated"] < since:
                    abort_upload(store, key, upload["UploadId"])
        except S3dlioError as exc:  # the failure being reported matters more
            log.warning("put %s: could not abort the failed multipart upload: %s", self._uri(key), exc)

    def _bucket_store(self) -> Any:
        if self._portable is None:
            from .s3 import S3Store as PortableS3Store

            self._portable = PortableS3Store(self.bucket, self.config)
        return self._portable


def _boto3_credentials(config: Config) -> tuple[Any, str | None]:
    """boto3's credentials for ``config`` (profiles, SSO, web identity, instance roles; the
    session :func:`~s3dlio.store.s3.aws_session` ranks), refreshed by obstore, and its region."""
    from botocore.exceptions import BotoCoreError
    from obstore.auth.boto3 import Boto3CredentialProvider

    from .s3 import aws_session

    try:
        session = aws_session(config)
        if config.aws_credentials() == "keys" or session.get_credentials() is None:
            return None, session.region_name
        return Boto3CredentialProvider(session), session.region_name
    except BotoCoreError as exc:
        raise ConfigError(
            f"AWS credentials: {exc}; set AWS_PROFILE to a profile in ~/.aws/config, or unset it"
        ) from exc
