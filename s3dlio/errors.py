"""One exception hierarchy for every backend and engine.

::

    S3dlioError
     ├── NotFoundError          (also FileNotFoundError)
     ├── PermissionDeniedError  (also PermissionError)
     ├── AlreadyExistsError     (also FileExistsError)
     ├── InvalidArgumentError   (also ValueError): an argument's value is out of range
     │    └── InvalidUriError  a URI s3dlio cannot parse
     ├── ArgumentTypeError      (also TypeError): an argument of the wrong type
     ├── ConfigError            (also ValueError)
     └── TransferError          (also OSError): the service failed, timed out or was unreachable

Engines translate their dependency's errors into these at one place each (``map_errors`` in
the engine module), so callers never see a botocore, obstore or azure exception. The public
functions check their arguments first (``s3dlio/_check.py``); their messages name the function,
the parameter and what was given: ``get_range: offset must be an int >= 0, got 1.5 (float)``.
"""

from __future__ import annotations

import sys

from ._redact import redact, redact_chain

#: Why a request sent with ``unsigned=True`` was denied: every engine and backend says this.
UNSIGNED_DENIED = (
    "requests are unsigned (unsigned=True / S3DLIO_UNSIGNED): only public buckets and containers answer them"
)

__all__ = [
    "AlreadyExistsError",
    "ArgumentTypeError",
    "ConfigError",
    "InvalidArgumentError",
    "InvalidUriError",
    "NotFoundError",
    "PermissionDeniedError",
    "S3dlioError",
    "TransferError",
]


class S3dlioError(Exception):
    """Base of every error s3dlio raises on purpose. Its message never holds a secret, nor do
    those of the errors it chains: built while handling a dependency's error (which becomes
    its cause or context), it redacts that one's message too."""

    #: Exit status the CLI uses when this error ends a command.
    exit_code: int = 1

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))
        redact_chain(sys.exception())


class NotFoundError(S3dlioError, FileNotFoundError):
    """The object, bucket, container or path does not exist."""


class PermissionDeniedError(S3dlioError, PermissionError):
    """The service refused the credentials or the operation."""


class AlreadyExistsError(S3dlioError, FileExistsError):
    """The bucket or object already exists and the operation will not overwrite it."""


class InvalidArgumentError(S3dlioError, ValueError):
    """An argument of the right type whose value is wrong (a negative offset, ``max_in_flight=0``)."""

    exit_code = 2


class ArgumentTypeError(S3dlioError, TypeError):
    """An argument of the wrong type (``get_range(uri, "2")``, ``get_many("s3://b/k")``)."""

    exit_code = 2


class InvalidUriError(InvalidArgumentError):
    """A URI that s3dlio cannot parse."""


class ConfigError(S3dlioError, ValueError):
    """A setting (argument, environment variable or .env entry) is missing or wrong."""

    exit_code = 2


class TransferError(S3dlioError, OSError):
    """The request failed after retries: server error, timeout, unreachable endpoint, short body."""

    #: True once a retry loop gave up on this error (attempts or time spent): an outer loop
    #: must not retry it again, or attempts and time would multiply.
    retried: bool = False
