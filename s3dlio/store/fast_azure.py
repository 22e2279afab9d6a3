"""The fast engine's Azure store: obstore's ``AzureStore`` with account, key or SAS and endpoint
from s3dlio's settings (connection strings and the emulator included); containers, folder
markers and multipart uploads go through azure-storage-blob."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import obstore
from obstore.store import AzureStore

from ..config import Config
from .azure import azure_target
from .fast import FastStore, PortableBuckets, build, client_options, retry_config
from .upload_azure import check_committed

if TYPE_CHECKING:
    from .base import Upload

__all__ = ["FastAzureStore"]


class FastAzureStore(PortableBuckets, FastStore):
    """An Azure Blob container; container create/delete/list go through azure-storage-blob."""

    _delete_batch = 256  # Azure's blob batch limit
    _lists_own_marker = False

    def __init__(self, container: str, config: Config, account: str | None = None) -> None:
        settings = _azure_settings(config, account, container)
        endpoint = settings["endpoint"]
        inner = build(
            "Azure",
            AzureStore,
            container,
            client_options=client_options(config, endpoint),
            retry_config=retry_config(config),
            **settings,
        )
        super().__init__(container, config, inner, scheme="az", endpoint=endpoint)
        self._account = account
        self._credential_hint = " (AZURE_STORAGE_ACCOUNT_NAME / AZURE_STORAGE_ACCOUNT_KEY)"
        self._portable: Any = None

    def open_upload(self, key: str, *, part_size: int, content_type: str | None = None) -> Upload:
        from .upload_azure import AzureUpload  # obstore cannot discard staged blocks

        self._check_key("put", key)
        return AzureUpload(self._bucket_store(), key, part_size, content_type)

    def _put(self, key: str, view: memoryview, multipart: bool, chunk: int, concurrency: int) -> None:
        """FastStore's put; a multi-block one is taken only once a HEAD finds the blob its Put
        Block List committed (:func:`~s3dlio.store.upload_azure.check_committed`)."""
        with self._errors("put", key):
            reply = obstore.put(
                self._inner, key, view, use_multipart=multipart, chunk_size=chunk, max_concurrency=concurrency
            )
        if multipart:
            check_committed(self, key, self._uri(key), view.nbytes, reply.get("e_tag"))

    def _bucket_store(self) -> Any:
        if self._portable is None:
            from .azure import AzureStore as PortableAzureStore

            self._portable = PortableAzureStore(self.bucket, self.config, account=self._account)
        return self._portable


def _azure_settings(config: Config, account: str | None, container: str) -> dict[str, Any]:
    """obstore's arguments for :func:`~s3dlio.store.azure.azure_target`'s answer, the endpoint
    always among them: obstore would otherwise take AZURE_STORAGE_ENDPOINT from the environment."""
    target = azure_target(config, account, container)
    settings: dict[str, Any] = {"account_name": target.account, "endpoint": target.endpoint}
    if target.anonymous:
        settings["skip_signature"] = True
    if target.account_key:
        settings["account_key"] = target.account_key
    if target.sas:
        settings["sas_key"] = target.sas
    return settings
