"""Which keys a URI selects: a literal key, a prefix, or a regex as its last part.

Pure logic, no I/O. The rules (from the original product): the last path part may be a
regex; a trailing ``/`` means everything at that level; ``recursive`` drops ``/`` as a level
separator. A plain last part selects a name prefix when listing and an exact name otherwise
(``rm s3://b/obj_1`` must never remove ``obj_10``; ``get s3://b/model.v1`` never fetches
``modelXv1``: a ``.`` alone does not make a regex there). Destructive operations ask for
``literal``: the last part is then always an exact name, even with regex characters
(``rm s3://b/a+b.bin`` run twice must not delete ``aab.bin`` the second time); a regex is
only what ``pattern`` says.

A last part that is not a valid regex but holds ``*``, ``?`` or ``[`` is a shell glob
(``*.npz``, as the original's download took it), with :mod:`fnmatch` rules: ``*`` and ``?``
match any characters, ``/`` included where ``recursive`` lets names hold one (as the regex
``.*`` would). Any other invalid regex is a literal name with odd characters
(``report(final.txt``).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from .errors import InvalidUriError

__all__ = ["Selection", "is_pattern", "select"]

_META = frozenset(".^$*+?{}[]\\|()")
#: What makes a last part a regex where it names objects to act on (``exact``): a lone ``.``
#: does not, so ``model.v1`` is that one key, never ``modelXv1`` (the CLI and the API agree).
_REGEX = _META - {"."}
#: What makes a last part that is no valid regex a shell glob.
_GLOB = frozenset("*?[")


def is_pattern(last: str) -> bool:
    """True when ``last`` (a URI's last part) would be read as a regex or a glob where it names
    objects to act on: what a literal delete that found nothing may have meant as a pattern."""
    return bool(_REGEX.intersection(last))


@dataclass(frozen=True, slots=True)
class Selection:
    """``prefix`` goes to the server; ``matches`` filters keys relative to ``base``."""

    base: str
    prefix: str
    recursive: bool
    regex: re.Pattern[str] | None
    #: Besides ``regex``, a relative name selected when it equals (or, for listings, starts
    #: with) this literal; None when only ``regex`` decides.
    literal: str | None
    name_prefix: bool

    def matches(self, key: str) -> bool:
        """True when ``key`` (a full key, or a common prefix ending in ``/``) is selected."""
        if not key.startswith(self.prefix):  # a store that listed more than asked selects none of it
            return False
        rel = key[len(self.base) :]
        if not self.recursive:
            rel = rel.rstrip("/")
        if self.regex is not None and self.regex.fullmatch(rel):
            return True
        if self.literal is None:
            return False
        if self.name_prefix:
            return rel.startswith(self.literal)
        return rel == self.literal


def select(
    key: str, *, recursive: bool = False, pattern: str | None = None, exact: bool = False,
    literal: bool = False, plain_prefix: bool = False,
) -> Selection:  # fmt: skip
    """The selection for ``key``; ``exact`` turns a plain last part into an exact name (and one
    whose only regex character is ``.``: ``data.bin``), and ``literal`` any last part (regex
    characters are then just characters). ``plain_prefix``:
    the last part is a name prefix whatever its characters (s3torchconnector's ``from_prefix``).
    A last part that is a regex also selects, in listings, the names it starts (``v1.0`` lists
    ``v1.0/...``, ``train.`` lists ``train.csv``)."""
    base, slash, last = key.rpartition("/")
    base += slash
    regex = None
    if pattern is not None:
        regex = _compile(pattern, what="pattern")
        return Selection(base, key, recursive, regex, None, name_prefix=False)
    if not last:
        return Selection(base, base, recursive, None, "", name_prefix=True)
    if plain_prefix:
        return Selection(base, key, recursive, None, last, name_prefix=True)
    plain = literal or (exact and not is_pattern(last))
    head = None if plain else next((i for i, ch in enumerate(last) if ch in _META), None)
    matcher = None if head is None else _regex_or_glob(last, head)
    if matcher is not None:
        regex, head = matcher
        return Selection(base, base + last[:head], recursive, regex, last, name_prefix=not exact)
    return Selection(base, key, recursive, None, last, name_prefix=not (exact or literal))


def _regex_or_glob(last: str, head: int) -> tuple[re.Pattern[str], int] | None:
    """``last`` as a regex, else as a shell glob (``*.npz`` is no regex: nothing to repeat),
    with where its fixed start ends (what the listing's prefix may hold); None when it is
    neither: a literal name with odd characters (``report(final.txt``)."""
    try:
        return re.compile(last), head
    except re.error:
        if not _GLOB.intersection(last):
            return None
        return re.compile(fnmatch.translate(last)), min(last.index(ch) for ch in _GLOB if ch in last)


def _compile(pattern: str, *, what: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise InvalidUriError(f"{what} {pattern!r} is not a valid regular expression: {exc}") from None
