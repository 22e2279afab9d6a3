"""Local paths: where an object lands below a directory, and which files an upload takes.

Every code path that writes a local file for a key (``download``, ``get -o DIR``, ``copy``
and ``cp`` to ``file://``/``direct://``, the fsspec ``get``) asks :func:`plan`, the one place
that decides. A key is written only at its path below the target directory: a key whose
relative part is absolute, or has an empty (``a//b``), ``.`` or ``..`` segment, is refused,
and so is a key whose path another key of the same transfer also takes (or uses as a
directory), compared where the files really go (``b/x`` is ``a/x`` when the target holds
``b -> a``). Object stores hold such keys (S3 lists ``data/../../x`` as it was written), so a
downloader that joined paths naively would write outside its target or let one object
silently overwrite another. A path below a symbolic link in the target that resolves
outside it is refused too: creating the directories and the file would follow the link.

:func:`local_files` walks a local tree for ``upload``: dot-files are included unless asked
otherwise, a symbolic link that leaves the tree is followed only when asked, a link back to
a directory above it is never followed, and what was skipped comes back with the reason.
The file stores' listings enter directory links by the same :class:`Rules`. What cannot be
read is no skip but a failure: it stays among the files, and its upload fails.
"""

from __future__ import annotations

import errno
import fnmatch
import functools
import glob
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field

from .errors import InvalidUriError

__all__ = ["LocalFiles", "Rules", "Skipped", "check_inside", "key_problem", "leaves", "local_files", "plan"]


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
    # Collisions are found where the files really go: a symbolic link already in the target
    # (``b -> a``) sends ``b/x`` onto ``a/x``, so paths are compared once links are resolved.
    real_root, where = os.path.realpath(root), _Resolved()
    inside = real_root.rstrip(os.sep) + os.sep
    real: dict[int, str] = {}
    files: dict[str, list[int]] = {}
    dirs: dict[str, int] = {}
    for i, path in enumerate(out):
        if not isinstance(path, str):
            continue
        if not path.endswith(os.sep):  # a file's own name is replaced, never followed
            real[i] = resolved = os.path.join(where(os.path.dirname(path)), os.path.basename(path))
            files.setdefault(resolved, []).append(i)
            parent = os.path.dirname(resolved)
        else:  # a folder marker: the directory itself
            parent = real[i] = where(path.rstrip(os.sep))
        while parent.startswith(inside) and parent not in dirs:
            dirs[parent] = i
            parent = os.path.dirname(parent)
    leaves = _Escapes(root)
    for i, path in enumerate(out):
        if isinstance(path, str) and (link := leaves(os.path.dirname(path))) is not None:
            out[i] = _through_link(op, uris[i], path, link, root)
    for resolved, owners in files.items():
        if len(owners) > 1:
            for i in owners:
                others = ", ".join(uris[j] for j in owners if j != i)
                out[i] = _collision(op, uris[i], _shown(out[i], resolved), f"the local path of {others} too")
        elif resolved in dirs:
            i = owners[0]
            out[i] = _collision(op, uris[i], _shown(out[i], resolved), f"a directory {uris[dirs[resolved]]} needs")
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


class _Resolved:
    """Where a directory below the target really is: the real path of its deepest existing
    part, then the rest as written (cached per directory)."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def __call__(self, directory: str) -> str:
        found = self.seen.get(directory)
        if found is None:
            found = self.seen[directory] = os.path.realpath(directory)
        return found


def _shown(path: str | InvalidUriError, resolved: str) -> str:
    """A planned path for a message, with where it resolves to when a link takes it elsewhere."""
    if not isinstance(path, str):  # refused already (below a link that leaves the target)
        return resolved
    return path if path == resolved else f"{path} ({resolved} once symbolic links are resolved)"


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
    """What a local glob selects: ``files`` (sorted) keep their path relative to ``root``.

    A directory or file the walk could not read is among ``files``, and its error in
    ``unreadable``: its upload fails (counted and reported like any file that cannot be
    read); ``skipped`` holds only what the rules leave out on purpose."""

    root: str
    files: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    unreadable: dict[str, OSError] = field(default_factory=dict)


def local_files(pattern: str, *, include_hidden: bool = True, follow_links: bool = False) -> LocalFiles:
    """The files a local glob selects (``**`` is any depth), walked without surprises.

    ``include_hidden`` takes names starting with ``.`` (as ``aws s3 cp --recursive`` does;
    a pattern part that itself starts with ``.`` matches them either way). A symbolic link
    that resolves outside the glob's fixed directory is skipped unless ``follow_links``; a
    link to a directory above it (a loop) is always skipped; so are broken links, FIFOs,
    sockets and devices (:class:`Rules`). A directory below the glob's fixed directory that
    cannot be listed, or an entry whose status cannot be read, stays in ``files`` so that its
    upload fails; the fixed directory itself raises its OSError (callers name it with
    :func:`s3dlio.store.local.map_errors`). A pattern without glob characters names one file, taken as it is.
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


class Rules:
    """The rules of every walk of a local tree below ``root``: ``upload``'s (:func:`local_files`)
    and the file stores' listings (``ls``, ``cp``/``copy`` from a local directory, ``rm``).

    A symbolic link whose target stays inside ``root`` is followed; one that resolves outside
    it only with ``follow``; a link to a directory above it (a loop) never; a broken link and
    what is neither a file nor a directory are skipped. Each of these is a deliberate
    :class:`Skipped`. What cannot be read (a directory that cannot be listed, an entry whose
    status cannot be read) is not skipped: it is a failure, the ``OSError`` itself.
    """

    def __init__(self, root: str, follow: bool) -> None:
        self.root = root
        self.follow = follow
        self.real_root = os.path.realpath(root)
        self.inside_prefix = self.real_root.rstrip(os.sep) + os.sep

    def stat(self, path: str, link: bool) -> os.stat_result | Skipped | OSError | None:
        """The status of what ``path`` points to; None when it is gone (removed meanwhile)."""
        try:
            return os.stat(path)
        except OSError as exc:
            if link and exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return Skipped(path, "broken symbolic link")
            return None if exc.errno == errno.ENOENT else exc

    def skip(self, path: str, link: bool, st: os.stat_result, chain: frozenset[tuple[int, int]]) -> Skipped | None:
        """Why the walk does not take ``path`` (whose status is ``st``; ``chain`` holds the
        directories above it), or None when it takes it."""
        if link and not self.follow:
            real = os.path.realpath(path)
            if real != self.real_root and not real.startswith(self.inside_prefix):
                return Skipped(path, f"symbolic link to {real}, outside {self.root}; "
                                     "follow_links=True (CLI: -L/--copy-links) takes what it points to")  # fmt: skip
        if stat.S_ISDIR(st.st_mode):
            if (st.st_dev, st.st_ino) in chain:
                return Skipped(path, "symbolic link loop (a directory above it)")
        elif not stat.S_ISREG(st.st_mode):
            return Skipped(path, "not a regular file")
        return None


class _Walk:
    def __init__(self, found: LocalFiles, pattern: tuple[str, ...], hidden: bool, follow: bool) -> None:
        self.found = found
        self.pattern = pattern
        self.hidden = hidden
        self.rules = Rules(found.root, follow)

    def visit(self, directory: str, rel: tuple[str, ...], chain: frozenset[tuple[int, int]]) -> None:
        try:
            st = os.stat(directory)
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if not rel:  # the tree itself: nothing to upload (the caller names the error)
                raise
            # Not a deliberate skip: kept among the files, its upload fails with this error
            # (counted and reported as for a file that cannot be read).
            self.found.files.append(directory)
            self.found.unreadable[directory] = exc
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
        st = self.rules.stat(entry.path, link)
        if isinstance(st, Skipped):
            self.found.skipped.append(st)
            return
        if isinstance(st, OSError):  # its upload fails with this error, as for an unreadable file
            self.found.files.append(entry.path)
            self.found.unreadable[entry.path] = st
            return
        if st is None:
            return
        is_dir = stat.S_ISDIR(st.st_mode)
        if is_dir and not as_dir or not is_dir and not as_file:
            return
        skipped = self.rules.skip(entry.path, link, st, chain)
        if skipped is not None:
            self.found.skipped.append(skipped)
        elif is_dir:
            self.visit(entry.path, names, chain)
        else:
            self.found.files.append(entry.path)


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
