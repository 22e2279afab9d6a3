"""Keep secrets out of every line s3dlio or its dependencies print: one place that redacts.

What is hidden, wherever it appears in a message, a log record or an exception's text:

- the userinfo of a URL (``http://user:PASS@host`` -> ``http://host``), and of an endpoint
  written without its scheme (``user:PASS@host:9000`` -> ``host:9000``): endpoints are shown
  without it everywhere (errors, ``--json``, the op-log's ``endpoint`` column, reprs). It runs to
  the last ``@`` before the host, so a password holding ``@`` goes whole, and, after ``user:``,
  across ``/`` too (AWS secret keys hold ``/``; ``s3://KEY:SE/CRET@bucket/k`` -> ``s3://bucket/k``).
  An ``@`` after the host's ``/`` is part of a key and stays (``s3://b/user@example.com/f``), as
  does one after ``host:PORT/``; a password that is only digits before its ``/``, or longer than
  256 characters and holding ``/``, is not recognised;
- the values of the headers ``Authorization``, ``Proxy-Authorization``,
  ``X-Amz-Security-Token``, ``x-ms-copy-source-authorization`` and the customer-key
  headers, in every shape botocore, urllib3 and azure-core log them
  (``'Authorization': b'...'``, ``authorization: ...``, canonical-request lines);
- signed query strings: ``X-Amz-Signature=``, ``X-Amz-Credential=``,
  ``X-Amz-Security-Token=``, Azure SAS ``sig=`` (their other fields are kept);
- the signature botocore's debug log prints after ``Signature:`` for each request it signs;
- connection-string secrets: ``AccountKey=``, ``SharedAccessSignature=``, ``SharedAccessKey=``;
- the literal values of the secret settings in the environment (``AWS_SECRET_ACCESS_KEY``,
  ``AWS_SESSION_TOKEN``, ``AZURE_STORAGE_ACCOUNT_KEY``, ...), whatever surrounds them.

Library users who turn on dependency logging themselves add :class:`RedactingFilter` to
their handlers (``handler.addFilter(s3dlio.RedactingFilter())``), or call
:func:`install_log_redaction` to put it on every handler of the root logger. The CLI does
that whenever ``-v`` turns logging on.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re

__all__ = [
    "MASK", "RedactingFilter", "install_log_redaction", "redact", "redact_chain", "redact_url", "remember",
]  # fmt: skip

MASK = "***"

_HEADERS = (
    r"authorization|proxy-authorization|x-amz-security-token|x-ms-copy-source-authorization"
    r"|x-amz-server-side-encryption-customer-key|x-ms-encryption-key"
)
# 'Authorization': b'AWS4-HMAC...'  /  "X-Amz-Security-Token": "..."  (dict reprs of headers)
_QUOTED_HEADER = re.compile(rf"""(?i)(['"](?:{_HEADERS})['"]\s*:\s*b?)(['"])(.*?)(\2)""")
# authorization: AWS4-HMAC...  /  x-amz-security-token:TOKEN  (header dumps, canonical requests)
_PLAIN_HEADER = re.compile(rf"(?im)(\b(?:{_HEADERS})\s*[:=]\s*)([^\r\n'\"]+)")
# ?X-Amz-Signature=...&sig=...  (presigned URLs, SAS tokens)
_QUERY = re.compile(
    r"(?i)([?&;\s](?:x-amz-signature|x-amz-credential|x-amz-security-token|sig|signature)=)([^&\s'\"<>]+)"
)
# Signature:\n4f1c...  (botocore's debug log of each request it signs: the signature is the
# credential of that request for its 15 minutes)
_SIGNATURE_DUMP = re.compile(r"(?i)(\bsignature:\s*)([0-9a-z+/=_-]{16,})")
# AccountKey=...;  (Azure connection strings)
_CONNECTION = re.compile(r"(?i)\b((?:accountkey|sharedaccesssignature|sharedaccesskey)=)([^;\s'\"]+)")
# Userinfo is everything from ``scheme://`` (or, without a scheme, from the start of a word) to
# the last ``@`` of the authority. Secrets may hold ``@`` and ``/`` (AWS secret keys hold ``/``),
# so the authority's end is taken to be the first ``/`` after the last ``@`` whose host part
# (up to the next ``/``) holds no other ``@``; a ``/`` may sit inside userinfo only after a
# ``user:`` (a bucket, container or host never holds ``:``), and not after a port
# (``host:9000/a@b`` is a path). ``s3://bucket/user@example.com`` keeps its key: ``@`` after the
# host's ``/`` is never userinfo.
_NOT_URL = r"\s'\"<>"
_SECRET_WITH_SLASH = rf"[^/@:\[\]{_NOT_URL}]+:(?!//)(?!\d+[/?#])[^{_NOT_URL}]{{0,256}}?"
_HOST_FOLLOWS = rf"@(?![^/{_NOT_URL}]*@)"
# scheme://user:pass@host  ->  scheme://host
_USERINFO = re.compile(
    rf"(?i)\b([a-z][a-z0-9+.-]*://)(?:[^/{_NOT_URL}]*|{_SECRET_WITH_SLASH}){_HOST_FOLLOWS}"
)
# user:pass@host (an endpoint written without its scheme)  ->  host
_BARE_USERINFO = re.compile(rf"(?<![\w/@.:%+-]){_SECRET_WITH_SLASH}{_HOST_FOLLOWS}(?=[\w\[])")
# Text none of the patterns can match (most keys and paths): returned after one cheap search.
_MAYBE = re.compile(r"(?i)[@=]|authorization|security-token|customer-key|encryption-key|signature:")

#: Environment variables whose values are secrets wherever they appear.
SECRET_VARIABLES = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_CLIENT_SECRET",
)
# Shorter values are too likely to be ordinary words ("testing") to replace blindly; the
# patterns above still catch them in headers and query strings.
_MIN_LITERAL = 8


def redact(text: str) -> str:
    """``text`` with every secret s3dlio knows how to spot replaced by ``***``."""
    if not text:
        return text
    if _MAYBE.search(text):
        text = _USERINFO.sub(r"\1", text)
        text = _BARE_USERINFO.sub("", text)
        text = _QUOTED_HEADER.sub(rf"\1\2{MASK}\4", text)
        text = _PLAIN_HEADER.sub(rf"\1{MASK}", text)
        text = _QUERY.sub(rf"\1{MASK}", text)
        text = _SIGNATURE_DUMP.sub(rf"\1{MASK}", text)
        text = _CONNECTION.sub(rf"\1{MASK}", text)
    for value in _literal_secrets():
        if value in text:
            text = text.replace(value, MASK)
    return text


def redact_url(url: str) -> str:
    """``url`` without its userinfo (``http://user:pw@host:9000`` -> ``http://host:9000``, and
    ``user:pw@host:9000`` -> ``host:9000``): :func:`redact` under the name endpoints use."""
    return redact(url)


def redact_chain(exc: BaseException | None) -> None:
    """Redact, in place, the messages of ``exc`` and of the exceptions it chains: a dependency's
    error kept as the cause of s3dlio's is printed by every traceback (obstore's names the URL
    it requested, userinfo and all)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        with contextlib.suppress(Exception):  # a type whose args are read-only keeps them
            args = tuple(redact(a) if isinstance(a, str) else a for a in exc.args)
            if args != exc.args:
                exc.args = args
        exc = exc.__cause__ or exc.__context__


_remembered: set[str] = set()


def remember(*secrets: str | None) -> None:
    """Mask these values too wherever they appear (every Config hands over its secrets, so a
    client's key is masked like the environment's)."""
    _remembered.update(s for s in secrets if s and len(s) >= _MIN_LITERAL)


def _literal_secrets() -> tuple[str, ...]:
    return _longest_first(tuple(map(os.environ.get, SECRET_VARIABLES)), len(_remembered))


@functools.lru_cache(maxsize=16)
def _longest_first(environment: tuple[str | None, ...], _remembered_count: int) -> tuple[str, ...]:
    """The values worth masking, longest first so a secret containing another is replaced whole
    (cached: ``redact`` runs per listed key and per op-log line; ``_remembered`` only grows)."""
    values = {v for v in environment if v} | _remembered
    return tuple(sorted((v for v in values if len(v) >= _MIN_LITERAL), key=len, reverse=True))


class RedactingFilter(logging.Filter):
    """A logging filter that rewrites each record's message (and traceback) with :func:`redact`.

    Put it on handlers, not loggers: a handler's filters see the records every child logger
    (botocore, urllib3, azure) propagates to it; a logger's own filters do not.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record: let logging report it as usual
            return True
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> RedactingFilter:
    """Add one :class:`RedactingFilter` to every handler of ``logger`` (default: the root logger).

    Returns the filter, so it can be removed again (``handler.removeFilter``). Handlers added
    later need their own ``addFilter``.
    """
    target = logger or logging.getLogger()
    flt = RedactingFilter()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(flt)
    return flt
