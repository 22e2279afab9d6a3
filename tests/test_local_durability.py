"""What a ``file://`` write makes durable (docs/cli.md, store/local.py): ``put_new`` (the
commit point of a checkpoint: its manifest), puts of at least ``SYNC_AT`` bytes and
``open_writer`` fsync the file before it gets its name and the directory after, and sync
the directories they create into their parents; small plain puts do not.

A power loss cannot be provoked in a test. What is observed instead is the calls the
guarantee rests on, in order, on a real filesystem: every ``os.fsync`` (which file or
directory, by inode) and the rename or link that names the object, both engines.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import s3dlio
from s3dlio.ops import resolve
from s3dlio.store.base import Store
from s3dlio.store.local import SYNC_AT

Event = tuple[str, tuple[int, int]]


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Event]]:
    """Every fsync (by the synced file's inode) and every rename/link (by the source's inode)."""
    seen: list[Event] = []
    fsync, replace, link = os.fsync, os.replace, os.link

    def ident(st: os.stat_result) -> tuple[int, int]:
        return st.st_dev, st.st_ino

    def on_fsync(fd: int) -> None:
        seen.append(("fsync", ident(os.fstat(fd))))
        fsync(fd)

    def on_replace(src: str, dst: str) -> None:
        seen.append(("name", ident(os.stat(src))))
        replace(src, dst)

    def on_link(src: str, dst: str) -> None:
        seen.append(("name", ident(os.stat(src))))
        link(src, dst)

    monkeypatch.setattr(os, "fsync", on_fsync)
    monkeypatch.setattr(os, "replace", on_replace)
    monkeypatch.setattr(os, "link", on_link)
    yield seen


def _store(engine: str, path: Path) -> tuple[Store, str]:
    parsed, store = resolve(f"file://{path}", s3dlio.Config.resolve(engine=engine))
    return store, parsed.key


def _id(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _assert_durable(events: list[Event], path: Path, new_dirs: tuple[Path, ...] = ()) -> None:
    file, directory = _id(path), _id(path.parent)
    assert ("fsync", file) in events, f"{path} was not fsynced"
    assert ("name", file) in events
    assert events.index(("fsync", file)) < events.index(("name", file)), "fsync must come before the name"
    after = events[events.index(("name", file)) :]
    assert ("fsync", directory) in after, "the directory was not fsynced after the name"
    for new in new_dirs:  # each created directory's entry is synced into its parent
        assert ("fsync", _id(new.parent)) in events, f"{new.parent} not fsynced after creating {new.name}"


@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_put_new_is_durable(tmp_path: Path, events: list[Event], engine: str) -> None:
    path = tmp_path / "a" / "b" / "manifest.json"
    store, key = _store(engine, path)
    store.put_new(key, b'{"step": 1}')
    assert path.read_bytes() == b'{"step": 1}'
    _assert_durable(events, path, (tmp_path / "a", tmp_path / "a" / "b"))
    assert not [p for p in path.parent.iterdir() if p.name != "manifest.json"], "the temporary was left"


@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_large_put_is_durable(tmp_path: Path, events: list[Event], engine: str) -> None:
    path = tmp_path / "new" / "shard.bin"
    store, key = _store(engine, path)
    store.put(key, bytes(SYNC_AT))
    assert path.stat().st_size == SYNC_AT
    _assert_durable(events, path, (tmp_path / "new",))


def test_open_writer_is_durable(tmp_path: Path, events: list[Event]) -> None:
    path = tmp_path / "w" / "big.bin"
    with s3dlio.open_writer(f"file://{path}") as w:
        w.write(b"x" * 1000)
    _assert_durable(events, path, (tmp_path / "w",))


@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_small_put_is_not_synced(tmp_path: Path, events: list[Event], engine: str) -> None:
    """The documented trade: small plain puts are atomic but not fsynced (2.8x cheaper)."""
    path = tmp_path / "small.bin"
    store, key = _store(engine, path)
    store.put(key, b"x" * 4096)
    assert path.read_bytes() == b"x" * 4096
    assert not [e for e in events if e[0] == "fsync"]
