"""The fast engine's Azure store: obstore's ``AzureStore`` with account, key or SAS and endpoint
from s3dlio's settings (connection strings and the emulator included); containers, folder
markers and multipart uploads go through azure-storage-blob."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from obstore.store import AzureStore

from ..config import AZURITE_ACCOUNT, AZURITE_KEY, Config
from ..errors import ConfigError
from .fast import FastStore, PortableBuckets, build, client_options, retry_config

if TYPE_CHECKING:
    from .base import Upload

__all__ = ["FastAzureStore"]


class FastAzureStore(PortableBuckets, FastStore):
    """An Azure Blob container; container create/delete/list go through azure-storage-blob."""

    _delete_batch = 256  # Azure's blob batch limit
    _lists_own_marker = False

    def __init__(self, container: str, config: Config, account: str | None = None) -> None:
        settings = _azure_settings(config, account, container)
        endpoint = settings.get("endpoint") or f"https://{settings['account_name']}.blob.core.windows.net"
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

    def _bucket_store(self) -> Any:
        if self._portable is None:
            from .azure import AzureStore as PortableAzureStore

            self._portable = PortableAzureStore(self.bucket, self.config, account=self._account)
        return self._portable


def _azure_settings(config: Config, account: str | None, container: str) -> dict[str, Any]:
    """Account, key/SAS and endpoint from config, connection string and emulator defaults."""
    parts = _connection_string(config.azure_connection_string)
    emulator = config.azure_use_emulator or parts.get("usedevelopmentstorage", "").lower() == "true"
    name = (
        account
        or config.azure_account_name
        or parts.get("accountname")
        or (AZURITE_ACCOUNT if emulator else None)
    )
    if not name:
        raise ConfigError(
            f"az://{container}: no storage account; set AZURE_STORAGE_ACCOUNT_NAME or write "
            f"https://ACCOUNT.blob.core.windows.net/{container}/key"
        )
    settings: dict[str, Any] = {"account_name": name}
    key = (
        config.azure_account_key
        or parts.get("accountkey")
        or (AZURITE_KEY if emulator and name == AZURITE_ACCOUNT else None)
    )
    if config.unsigned:
        settings["skip_signature"] = True
    elif key:
        settings["account_key"] = key
    if parts.get("sharedaccesssignature") and not config.unsigned:
        settings["sas_key"] = parts["sharedaccesssignature"]
    endpoint = config.azure_endpoint or parts.get("blobendpoint")
    if not endpoint and "endpointsuffix" in parts:
        endpoint = f"{parts.get('defaultendpointsprotocol', 'https')}://{name}.blob.{parts['endpointsuffix']}"
    if not endpoint and emulator:
        endpoint = f"http://127.0.0.1:10000/{name}"
    if endpoint:
        settings["endpoint"] = endpoint.rstrip("/")
    return settings


def _connection_string(value: str | None) -> dict[str, str]:
    """``Key=Value;...`` pairs, keys lower-cased (values such as account keys contain ``=``)."""
    parts: dict[str, str] = {}
    for piece in (value or "").split(";"):
        name, sep, val = piece.partition("=")
        if sep and name.strip():
            parts[name.strip().lower()] = val.strip()
    return parts
