"""Local paths: where an object lands below a directory, and which files an upload takes.

Every code path that writes a local file for a key (``download``, ``get -o DIR``, ``copy``
and ``cp`` to ``file://``/``direct://``, the fsspec ``get``) asks :func:`plan`, the one place
that decides. A key is written only at its path below the target directory: a key whose
relative part is absolute, or has an empty (``a//b``), ``.`` or ``..`` segment, is refused,
and so is a key whose path another key of the same transfer also takes (or uses as a
directory). Object stores hold such keys (S3 lists ``data/../../x`` as it was written), so a
downloader that joined paths naively would write outside its target or let one object
silently overwrite another. A path below a symbolic link in the target that resolves
outside it is refused too: creating the directories and the file would follow the link.

:func:`local_files` walks a local tree for ``upload``: dot-files are included unless asked
otherwise, a symbolic link that leaves the tree is followed only when asked, a link back to
a directory above it is never followed, and what was skipped comes back with the reason.
"""

from __future__ import annotations

import fnmatch
import functools
import glob
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field

from .errors import InvalidUriError

__all__ = ["LocalFiles", "Skipped", "check_inside", "key_problem", "leaves", "local_files", "plan"]


# -- keys -> local paths -----------------------------------------------------------------------
def key_problem(rel: str) -> str | None:
    """Why ``rel`` (a key relative to a transfer's base) has no safe local path, or None.

    A trailing ``/`` marks a directory ("folder marker" object) and is allowed; ``""`` is
    the marker of the target directory itself.
    """
    if rel.startswith("/"):
        return "it is absolute (starts with '/')"
    body = rel[:-1] if rel.endswith("/") else rel
    if not body:
        return None
    for segment in body.split("/"):
        if segment == "":
            return "it has an empty segment ('//')"
        if segment in (".", ".."):
            return f"it has a '{segment}' segment"
        if "\0" in segment:
            return "it holds a NUL character"
    return None


def check_key(op: str, uri: str, rel: str) -> None:
    """Raise :class:`InvalidUriError` when ``rel`` would not stay below a local directory."""
    problem = key_problem(rel)
    if problem is not None:
        raise InvalidUriError(
            f"{op} {uri}: refused, its local path could fall outside the target directory or onto "
            f"another key's ({problem}); nothing was written for it. "
            "Fetch it alone to a file you name: s3dlio get URI -o FILE"
        )


def plan(op: str, root: str, rels: Sequence[str], uris: Sequence[str]) -> list[str | InvalidUriError]:
    """The local path below ``root`` of each relative key, or the error that refuses it.

    Paths of directory markers end with ``os.sep``. Two keys that take one path (or a file
    path that another key needs as a directory) are both refused, each error naming the other.
    """
    root = os.path.abspath(root)
    out: list[str | InvalidUriError] = []
    for rel, uri in zip(rels, uris, strict=True):
        try:
            check_key(op, uri, rel)
        except InvalidUriError as exc:
            out.append(exc)
            continue
        out.append(os.path.join(root, *rel.split("/")))
    files: dict[str, list[int]] = {}
    dirs: dict[str, int] = {}
    for i, path in enumerate(out):
        if not isinstance(path, str):
            continue
        if not path.endswith(os.sep):
            files.setdefault(path, []).append(i)
            parent = os.path.dirname(path)
        else:  # a folder marker: the directory itself
            parent = path.rstrip(os.sep)
        while len(parent) > len(root) and parent not in dirs:
            dirs[parent] = i
            parent = os.path.dirname(parent)
    leaves = _Escapes(root)
    for i, path in enumerate(out):
        if isinstance(path, str) and (link := leaves(os.path.dirname(path))) is not None:
            out[i] = _through_link(op, uris[i], path, link, root)
    for path, owners in files.items():
        if len(owners) > 1:
            for i in owners:
                others = ", ".join(uris[j] for j in owners if j != i)
                out[i] = _collision(op, uris[i], path, f"the local path of {others} too")
        elif path in dirs:
            out[owners[0]] = _collision(op, uris[owners[0]], path, f"a directory {uris[dirs[path]]} needs")
    return out


def check_inside(op: str, uri: str, root: str, path: str) -> None:
    """Raise :class:`InvalidUriError` when ``path``, below the directory ``root``, is below a
    symbolic link that leaves ``root`` (a path not below ``root`` is the caller's own choice)."""
    root, path = os.path.abspath(root), os.path.abspath(path)
    if path.startswith(root.rstrip(os.sep) + os.sep):
        link = _Escapes(root)(os.path.dirname(path))
        if link is not None:
            raise _through_link(op, uri, path, link, root)


def leaves(root: str, path: str) -> bool:
    """True when ``path``, below the directory ``root``, resolves outside it (a symbolic link on
    the way, or the path itself one): what an upload of ``root`` does not take unasked."""
    root, path = os.path.abspath(root), os.path.abspath(path)
    if not path.startswith(root.rstrip(os.sep) + os.sep):
        return False
    inside = os.path.realpath(root).rstrip(os.sep) + os.sep
    return not (os.path.realpath(path) + os.sep).startswith(inside)


def _through_link(op: str, uri: str, path: str, link: str, root: str) -> InvalidUriError:
    return InvalidUriError(
        f"{op} {uri}: refused, its local path {path} is below {link}, a symbolic link that leaves "
        f"the target directory {root}; nothing was written for it. Remove the link, or write to "
        "another directory"
    )


class _Escapes:
    """Which directory below ``root`` leads outside it through a symbolic link (cached per directory)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.inside = os.path.realpath(root).rstrip(os.sep) + os.sep
        self.seen: dict[str, str | None] = {root: None}

    def __call__(self, directory: str) -> str | None:
        """The first directory on the way from ``root`` to ``directory`` that resolves outside
        ``root``, or None (what does not exist yet resolves where its parent does)."""
        if directory in self.seen:
            return self.seen[directory]
        parent = os.path.dirname(directory)
        found = self(parent) if len(parent) >= len(self.root) else None
        if found is None and not (os.path.realpath(directory) + os.sep).startswith(self.inside):
            found = directory
        self.seen[directory] = found
        return found


def _collision(op: str, uri: str, path: str, what: str) -> InvalidUriError:
    return InvalidUriError(
        f"{op} {uri}: refused, its local path {path} is {what}; none of them was written there. "
        "Fetch each alone to a file you name: s3dlio get URI -o FILE"
    )


# -- local tree -> files to upload ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Skipped:
    """A local path the walk did not upload, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True, slots=True)
class LocalFiles:
    """What a local glob selects: ``files`` (sorted) keep their path relative to ``root``."""

    root: str
    files: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def local_files(pattern: str, *, include_hidden: bool = True, follow_links: bool = False) -> LocalFiles:
    """The files a local glob selects (``**`` is any depth), walked without surprises.

    ``include_hidden`` takes names starting with ``.`` (as ``aws s3 cp --recursive`` does;
    a pattern part that itself starts with ``.`` matches them either way). A symbolic link
    that resolves outside the glob's fixed directory is skipped unless ``follow_links``; a
    link to a directory above it (a loop) is always skipped; so are broken links and what
    cannot be read. A pattern without glob characters names one file, taken as it is.
    """
    pattern = os.path.abspath(os.path.expanduser(pattern))
    parts = pattern.split(os.sep)
    names = [_unescape(part) for part in parts]
    if None not in names:  # one path, perhaps escaped (glob.escape): taken as it is
        path = os.sep.join(name for name in names if name is not None)
        return LocalFiles(os.path.dirname(path), [path] if os.path.isfile(path) else [])
    first = names.index(None)
    root = os.sep.join(name for name in names[:first] if name is not None) or os.sep
    found = LocalFiles(root)
    if os.path.isdir(root):
        _Walk(found, tuple(parts[first:]), include_hidden, follow_links).visit(root, (), frozenset())
    found.files.sort()
    return found


def _unescape(part: str) -> str | None:
    """The literal name a pattern part stands for (``a[[]1]`` is ``a[1]``), or None for a glob."""
    name = part.replace("[[]", "[").replace("[*]", "*").replace("[?]", "?")
    return name if glob.escape(name) == part else None


class _Walk:
    def __init__(self, found: LocalFiles, pattern: tuple[str, ...], hidden: bool, follow: bool) -> None:
        self.found = found
        self.pattern = pattern
        self.hidden = hidden
        self.follow = follow
        real = os.path.realpath(found.root)
        self.real_root = real
        self.inside_prefix = real.rstrip(os.sep) + os.sep

    def visit(self, directory: str, rel: tuple[str, ...], chain: frozenset[tuple[int, int]]) -> None:
        try:
            st = os.stat(directory)
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            self.found.skipped.append(Skipped(directory, f"cannot read the directory ({exc.strerror})"))
            return
        chain = chain | {(st.st_dev, st.st_ino)}
        for entry in entries:
            names = (*rel, entry.name)
            as_file = _match(self.pattern, names, self.hidden, False)
            as_dir = _match(self.pattern, names, self.hidden, True)
            if not (as_file or as_dir):
                continue
            self._entry(entry, names, as_file, as_dir, chain)

    def _entry(
        self, entry: os.DirEntry[str], names: tuple[str, ...], as_file: bool, as_dir: bool,
        chain: frozenset[tuple[int, int]],
    ) -> None:  # fmt: skip
        link = entry.is_symlink()
        try:
            st = os.stat(entry.path)
        except OSError as exc:
            why = "broken symbolic link" if link else f"cannot read it ({exc.strerror})"
            self.found.skipped.append(Skipped(entry.path, why))
            return
        is_dir = stat.S_ISDIR(st.st_mode)
        if is_dir and not as_dir or not is_dir and not as_file:
            return
        if link and not self.follow:
            real = os.path.realpath(entry.path)
            if real != self.real_root and not real.startswith(self.inside_prefix):
                self.found.skipped.append(Skipped(
                    entry.path,
                    f"symbolic link to {real}, outside {self.found.root}; "
                    "follow_links=True (CLI: --copy-links) uploads what it points to",
                ))  # fmt: skip
                return
        if is_dir:
            if (st.st_dev, st.st_ino) in chain:
                self.found.skipped.append(Skipped(entry.path, "symbolic link loop (a directory above it)"))
                return
            self.visit(entry.path, names, chain)
        elif stat.S_ISREG(st.st_mode):
            self.found.files.append(entry.path)
        else:
            self.found.skipped.append(Skipped(entry.path, "not a regular file"))


@functools.lru_cache(maxsize=4096)
def _match(pattern: tuple[str, ...], names: tuple[str, ...], hidden: bool, partial: bool) -> bool:
    """True when ``names`` matches ``pattern`` (``partial``: when a path below it could)."""
    if not names:
        return bool(pattern) if partial else all(part == "**" for part in pattern)
    if not pattern:
        return False
    part, name = pattern[0], names[0]
    if part == "**":
        if _match(pattern[1:], names, hidden, partial):
            return True
        return (hidden or not name.startswith(".")) and _match(pattern, names[1:], hidden, partial)
    if name.startswith(".") and not hidden and not part.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, part) and _match(pattern[1:], names[1:], hidden, partial)
