"""s3dlio: fast object storage I/O for AI/ML — S3, Azure Blob, local and O_DIRECT files, memory.

>>> import s3dlio
>>> s3dlio.put("mem://demo/hello.txt", b"hi")
>>> bytes(s3dlio.get("mem://demo/hello.txt"))
b'hi'
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._redact import RedactingFilter, install_log_redaction, redact
from .cleanup import Leftover, cleanup, cleanup_async
from .client import Client
from .config import Config, configure
from .errors import (
    AlreadyExistsError,
    ArgumentTypeError,
    ConfigError,
    InvalidArgumentError,
    InvalidUriError,
    NotFoundError,
    PermissionDeniedError,
    S3dlioError,
    TransferError,
)
from .large import (
    get_into,
    get_into_async,
    get_many_into,
    get_many_into_async,
    open_reader,
    open_writer,
    open_writer_async,
)
from .oplog import finalize_op_log, init_op_log, is_op_log_active, set_client_id
from .ops import *  # noqa: F403 - the operations are the package's API
from .ops import __all__ as _ops_all
from .store import ObjectMeta
from .uri import ObjectUri, join, parse

try:
    __version__ = version("s3dlio")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "AlreadyExistsError",
    "ArgumentTypeError",
    "Client",
    "Config",
    "ConfigError",
    "InvalidArgumentError",
    "InvalidUriError",
    "NotFoundError",
    "ObjectMeta",
    "ObjectUri",
    "Leftover",
    "RedactingFilter",
    "cleanup",
    "cleanup_async",
    "install_log_redaction",
    "redact",
    "PermissionDeniedError",
    "S3dlioError",
    "TransferError",
    "__version__",
    "configure",
    "finalize_op_log",
    "init_op_log",
    "is_op_log_active",
    "set_client_id",
    "join",
    "parse",
    "get_into",
    "get_into_async",
    "get_many_into",
    "get_many_into_async",
    "open_reader",
    "open_writer",
    "open_writer_async",
    *_ops_all,
]
