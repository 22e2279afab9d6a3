"""The fast engine's Azure store: obstore's ``AzureStore`` with account, key or SAS and endpoint
from s3dlio's settings (connection strings and the emulator included); containers, folder
markers and multipart uploads go through azure-storage-blob.

obstore also reads ``AZURE_*`` variables itself (``AZURE_STORAGE_USE_EMULATOR``,
``AZURITE_BLOB_STORAGE_URL``, ``AZURE_SKIP_SIGNATURE``, ``AZURE_STORAGE_TOKEN``,
``AZURE_STORAGE_ACCESS_KEY``, ``AZURE_STORAGE_SAS_KEY``, ...), and some of them outrank the
arguments it is given: the emulator flag makes it ignore ``endpoint``, a token or key in the
environment signs instead of the SAS passed. So every setting s3dlio resolves is passed
explicitly, and the credential it chose through ``credential_provider``, which outranks them
all: both engines send the same requests to the same endpoint, signed the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import obstore
from obstore import exceptions as obx
from obstore.store import AzureStore

from ..config import Config
from ..errors import PermissionDeniedError, TransferError
from .azure import AzureTarget, azure_target, blob_too_large, check_key, denied_fix
from .fast import FastStore, PortableBuckets, build, client_options, retry_config
from .upload_azure import check_committed

if TYPE_CHECKING:
    from .base import Upload

__all__ = ["FastAzureStore"]

#: The service's code in a denial fast_errors maps: ``access denied (CODE); ...``.
_DENIED_CODE = re.compile(r"access denied \((\w+)\)")
#: How obstore words a blob its batch delete was refused (a GenericError, else retried).
_BATCH_REFUSED = re.compile(r"Bulk delete request failed for key .*\(code: (40[13])\)")


class FastAzureStore(PortableBuckets, FastStore):
    """An Azure Blob container; container create/delete/list go through azure-storage-blob."""

    _delete_batch = 256  # Azure's blob batch limit
    _lists_own_marker = False

    def __init__(self, container: str, config: Config, account: str | None = None) -> None:
        target = azure_target(config, account, container)
        inner = build(
            "Azure",
            AzureStore,
            container,
            client_options=client_options(config, target.endpoint),
            retry_config=retry_config(config),
            **_azure_settings(target),
        )
        super().__init__(container, config, inner, scheme="az", endpoint=target.endpoint)
        self._account = account
        self._sas = bool(target.sas)
        self._credential_hint = " (AZURE_STORAGE_ACCOUNT_NAME / AZURE_STORAGE_ACCOUNT_KEY)"
        self._portable: Any = None

    @contextmanager
    def _errors(self, op: str, key: str) -> Iterator[None]:
        """FastStore's mapping, with denials worded as the portable engine words them
        (:func:`~s3dlio.store.azure.denied_fix`: a SAS-signed request's names the SAS, not the
        account key), a refused batch delete among them (not a TransferError to retry)."""
        try:
            with super()._errors(op, key):
                yield
        except (PermissionDeniedError, TransferError) as exc:
            refused = _BATCH_REFUSED.search(str(exc.__cause__ or ""))
            if isinstance(exc, TransferError) and refused is None:
                raise
            if isinstance(exc, PermissionDeniedError) and (not self._sas or self.config.unsigned):
                raise
            code = refused[1] if refused else m[1] if (m := _DENIED_CODE.search(str(exc))) else "403"
            fix = denied_fix(op, code, unsigned=self.config.unsigned, sas=self._sas)
            raise PermissionDeniedError(f"{op} {self._uri(key)}: access denied ({code}); {fix}") from exc.__cause__

    def _check_key(self, op: str, key: str) -> None:
        check_key(op, self._uri(key), key)  # before FastStore's check, which names the portable engine
        super()._check_key(op, key)

    def open_upload(self, key: str, *, part_size: int, content_type: str | None = None) -> Upload:
        from .upload_azure import AzureUpload  # obstore cannot discard staged blocks

        self._check_key("put", key)
        return AzureUpload(self._bucket_store(), key, part_size, content_type)

    def _put(self, key: str, view: memoryview, multipart: bool, chunk: int, concurrency: int) -> None:
        """FastStore's put; a multi-block one is taken only once a HEAD finds the blob its Put
        Block List committed (:func:`~s3dlio.store.upload_azure.check_committed`). Over an append
        or page blob, whose name Azure stages no blocks under, it is one Put Blob instead, which
        replaces a blob of any type (the old one stays until it succeeds), as a small put does."""
        with self._errors("put", key):
            try:
                reply = obstore.put(
                    self._inner, key, view, use_multipart=multipart, chunk_size=chunk, max_concurrency=concurrency
                )
            except obx.AlreadyExistsError as exc:  # obstore's word for any 409
                if not multipart or "<Code>InvalidBlobType</Code>" not in str(exc):
                    raise
                blob_too_large(self._uri(key), view.nbytes)
                obstore.put(self._inner, key, view, use_multipart=False)
                return
        if multipart:
            check_committed(self, key, self._uri(key), view.nbytes, reply.get("e_tag"))

    def _bucket_store(self) -> Any:
        if self._portable is None:
            from .azure import AzureStore as PortableAzureStore

            self._portable = PortableAzureStore(self.bucket, self.config, account=self._account)
        return self._portable


def _azure_settings(target: AzureTarget) -> dict[str, Any]:
    """obstore's arguments for :func:`~s3dlio.store.azure.azure_target`'s answer: each one it
    would otherwise take from the environment given explicitly (module docstring)."""
    settings: dict[str, Any] = {
        "account_name": target.account,
        "endpoint": target.endpoint,
        "use_emulator": False,  # else obstore sends to AZURITE_BLOB_STORAGE_URL or :10000, whatever the endpoint
        "skip_signature": target.anonymous,
    }
    credential: dict[str, Any] | None = None
    if target.anonymous:
        pass
    elif target.account_key:
        credential = {"access_key": target.account_key, "expires_at": None}
    elif target.sas:
        credential = {"sas_token": target.sas, "expires_at": None}
    if credential is not None:  # else Entra ID: obstore's own chain
        settings["credential_provider"] = _Static(credential)
    return settings


class _Static:
    """A credential provider that always answers the credential s3dlio chose (obstore caches
    it: ``expires_at`` None). Its repr hides the secret."""

    def __init__(self, credential: dict[str, Any]) -> None:
        self._credential = credential

    def __call__(self) -> dict[str, Any]:
        return self._credential

    def __repr__(self) -> str:
        return f"_Static({sorted(self._credential)})"
