"""A checkpoint store under one URI prefix: save (sync or async), latest, load, retention.

Every rank writes its own shards in parallel, then reports them; rank 0 checks the reported
sizes against a listing and writes the manifest last (see :mod:`.commit`). A checkpoint
exists once its manifest does, so a save that dies part-way leaves ``latest`` where it was.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Mapping
from io import BufferedIOBase
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from .. import _parallel
from ..buffers import byte_view
from ..client import Client
from ..config import Config
from ..errors import AlreadyExistsError
from ..large import open_writer
from ..store.base import put_new_retried
from . import layout, retention
from ._checksum import ALGORITHM, ChecksumWriter, checksum
from .async_save import AsyncSave, AsyncSaves, stage
from .commit import Coordinator, PollCoordinator, TorchCoordinator, _torch_dist, default_save_id, detect
from .errors import CheckpointCommitError
from .manifest import Manifest, RankReport, ShardRecord
from .reading import CheckpointReader

if TYPE_CHECKING:
    from collections.abc import Buffer

__all__ = ["CheckpointStore", "ShardSource"]

log = logging.getLogger("s3dlio.checkpoint")

#: A shard is a buffer (bytes, memoryview, numpy array), or a callable that writes it to a
#: binary stream (``lambda f: torch.save(state, f)``) so it never exists whole in memory.
ShardSource: TypeAlias = "Buffer | Callable[[BufferedIOBase], Any]"


class CheckpointStore(CheckpointReader):
    """Checkpoints of one training run under ``uri`` (``s3://bucket/run1/``, ``file:///ckpt``).

    ``rank``/``world_size`` default to torch.distributed's (when initialised), else to
    ``RANK``/``WORLD_SIZE``, else 0/1. ``spread`` puts shards under hashed prefixes (see
    :mod:`.layout`). ``keep_last``/``keep_every`` prune old checkpoints after each commit.
    ``coordinator``: ``"auto"`` (torch collective when initialised, else polling), ``"poll"``,
    or an object with ``gather(report)``. ``stale_after`` (seconds): at the start of each
    save rank 0 removes what saves killed mid-way left under ``uri`` and that has not been
    touched for this long (hidden temporaries, incomplete multipart uploads; see
    :func:`s3dlio.cleanup`); None turns that off. ``client`` (or ``config``): the settings of
    every request (default: the process-wide ones).
    """

    def __init__(
        self,
        uri: str,
        *,
        rank: int | None = None,
        world_size: int | None = None,
        framework: str = "bytes",
        spread: bool = False,
        keep_last: int | None = None,
        keep_every: int | None = None,
        commit_timeout: float = 600.0,
        max_in_flight: int | None = None,
        coordinator: Literal["auto", "poll"] | Coordinator = "auto",
        save_id: str | None = None,
        stale_after: float | None = 3600.0,
        config: Config | None = None,
        client: Client | None = None,
    ) -> None:
        rank, world_size = detect(rank, world_size)
        super().__init__(uri, rank=rank, max_in_flight=max_in_flight, config=config, client=client)
        retention.steps_to_delete([], [], keep_last, keep_every)  # validates the settings
        self.world_size = world_size
        self.framework = framework
        self.spread = spread
        self.keep_last = keep_last
        self.keep_every = keep_every
        self.commit_timeout = commit_timeout
        self.save_id = default_save_id() if save_id is None else save_id
        self._coordinator = coordinator
        self._async = AsyncSaves()
        if stale_after is not None and stale_after < 0:
            raise ValueError(f"{uri}: stale_after={stale_after!r}: give seconds (>= 0) or None")
        self.stale_after = stale_after

    # -- saving ------------------------------------------------------------------------------
    def save(
        self, step: int, shards: Mapping[str, ShardSource], metadata: Mapping[str, Any] | None = None
    ) -> Manifest | None:
        """Write this rank's ``shards`` for ``step`` and commit it when all ranks are done.

        Returns the manifest on rank 0 (None on other ranks). Raises the error of an earlier
        :meth:`save_async` first, if it failed.
        """
        self._async.wait()
        return self._save(step, shards, metadata, self._pick_coordinator(background=False))

    def save_async(
        self, step: int, shards: Mapping[str, ShardSource], metadata: Mapping[str, Any] | None = None
    ) -> AsyncSave:
        """Copy the buffers of ``shards`` and return; upload and commit in the background.

        Callables are called in the background: they must hold their own staged copy.
        The previous async save is waited for first, and its error raised here.
        """
        self._async.wait()
        staged = stage(shards)
        meta = dict(metadata or {})
        coordinator = self._pick_coordinator(background=True)
        return self._async.submit(
            step, self.step_uri(step), lambda: self._save(step, staged, meta, coordinator)
        )

    def wait(self) -> Manifest | None:
        """Wait for the async save in flight; raise its error (once) if it failed."""
        return self._async.wait()

    def _pick_coordinator(self, background: bool) -> Coordinator:
        chosen = self._coordinator
        if not isinstance(chosen, str):
            return chosen
        dist = _torch_dist()
        if (
            chosen == "auto"
            and not background
            and dist is not None
            and dist.get_world_size() == self.world_size
        ):
            return TorchCoordinator()
        return PollCoordinator(self._store, self._root, self._where, self.commit_timeout)

    def _save(
        self, step: int, shards: Mapping[str, ShardSource], metadata: Mapping[str, Any] | None,
        coordinator: Coordinator,
    ) -> Manifest | None:  # fmt: skip
        where = self.step_uri(step)
        items = [(layout.validate_name(name), src) for name, src in shards.items()]
        try:
            json.dumps(dict(metadata or {}))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: checkpoint metadata must be JSON-serialisable: {exc}") from None
        store = self._store
        self._remove_stale()
        if self._exists(self._root + layout.manifest_key(step)):
            raise CheckpointCommitError(f"{where}: already committed; delete it first (store.delete({step}))")
        failure: BaseException | None = None
        records: list[ShardRecord] = []
        tag = secrets.token_hex(4)  # this save's shard keys: no other save writes them
        try:
            store.delete(self._root + layout.rank_file_key(step, self.rank))  # a crashed attempt's report
            write = lambda it: self._write_shard(step, tag, *it)  # noqa: E731
            records = _parallel.map_bounded(write, items, self._in_flight)  # type: ignore[assignment]
        except Exception as exc:
            failure = exc
        error = None if failure is None else f"{type(failure).__name__}: {failure}"
        report = RankReport(step, self.rank, self.world_size, self.save_id, tuple(records), error)
        try:
            store.put(self._root + layout.rank_file_key(step, self.rank), report.to_json())
        except Exception:
            if failure is None:
                raise
        if failure is not None and isinstance(coordinator, PollCoordinator):
            raise failure
        reports = [report] if self.world_size == 1 else coordinator.gather(report)
        if failure is not None:
            raise failure
        if reports is None:
            return None
        try:
            failed = next((r for r in reports if r.error), None)
            if failed is not None:
                raise CheckpointCommitError(
                    f"{where}: not committed: rank {failed.rank} failed: {failed.error}; latest is unchanged"
                )
            return self._commit(step, reports, metadata) if self.rank == 0 else None
        except CheckpointCommitError:
            if self.rank == 0:  # no manifest names these shards, and no other save writes their keys
                self._discard([s.key for r in reports for s in r.shards])
            raise

    def _write_shard(self, step: int, tag: str, name: str, source: ShardSource) -> ShardRecord:
        key = layout.shard_key(step, self.rank, name, tag, spread=self.spread)
        if callable(source):
            with open_writer(self._where(self._root + key), config=self.config) as raw:
                counted = ChecksumWriter(raw)
                source(counted)
            return ShardRecord(self.rank, name, key, counted.size, counted.crc)
        view = byte_view(source)
        crc = checksum(view)
        if self._store.scheme in ("file", "direct"):  # fsynced before the manifest names it
            with open_writer(self._where(self._root + key), config=self.config) as raw:
                raw.write(view)
        else:
            self._store.put(self._root + key, view)
        return ShardRecord(self.rank, name, key, view.nbytes, crc)

    def _commit(self, step: int, reports: list[RankReport], metadata: Mapping[str, Any] | None) -> Manifest:
        where = self.step_uri(step)
        shards = tuple(s for r in sorted(reports, key=lambda r: r.rank) for s in r.shards)
        sizes = self._sizes(step)
        for s in shards:
            if sizes.get(self._root + s.key) != s.size:
                raise CheckpointCommitError(
                    f"{where}: not committed: shard {s.key} of rank {s.rank} should have {s.size} bytes, "
                    f"the listing shows {sizes.get(self._root + s.key)}; latest is unchanged"
                )
        manifest = Manifest(step, self.world_size, shards, self.framework, ALGORITHM, dict(metadata or {}))
        try:  # only where no manifest is: of two saves of one step racing, one commits
            put_new_retried(self._store, self._root + layout.manifest_key(step), manifest.to_json())
        except AlreadyExistsError:
            raise CheckpointCommitError(
                f"{where}: not committed: another save committed this step meanwhile (two writers of one "
                "step under one root; give each run its own root)"
            ) from None
        named = {self._root + s.key for s in shards}  # what crashed attempts at this step left goes
        self._discard(
            [k.removeprefix(self._root) for k in sizes if layout.is_shard_key(k) and k not in named]
        )
        if self.keep_last is not None or self.keep_every is not None:
            try:
                self.apply_retention(committed=step)
            except Exception as exc:  # noqa: BLE001 - the checkpoint is committed; pruning retries next time
                log.warning(
                    "%s: retention failed (%s); old checkpoints kept until the next save", self.uri, exc
                )
        return manifest

    def _discard(self, keys: list[str]) -> None:
        """Delete shards (keys relative to the root) that no manifest names."""
        try:
            _parallel.map_bounded(lambda key: self._store.delete(self._root + key), keys, self._in_flight)
        except Exception as exc:  # noqa: BLE001 - the commit error matters more; retention removes the rest
            log.warning("%s: could not delete shards no manifest names (%s)", self.uri, exc)

    def _remove_stale(self) -> None:
        """Rank 0: remove what killed saves left (temporaries, multipart uploads) under the root."""
        if self.rank != 0 or self.stale_after is None:
            return
        from ..cleanup import cleanup

        try:
            found = cleanup(self.uri, older_than=self.stale_after, config=self.config)
            removed = [item for item in found if item.removed]
        except Exception as exc:  # noqa: BLE001 - tidying up must never stop a save
            log.warning("%s: could not remove what earlier saves left (%s)", self.uri, exc)
            return
        if removed:
            log.info("%s: removed %d leftovers of interrupted saves", self.uri, len(removed))

    # -- deleting ---------------------------------------------------------------------------
    def delete(self, step: int) -> None:
        """Delete one checkpoint (manifest first, so it never looks complete half-deleted)."""
        retention.delete_step(self._store, self._root, step)

    def apply_retention(self, committed: int | None = None) -> list[int]:
        """Delete what ``keep_last``/``keep_every`` do not keep (never ``committed``, the step a
        save just returned as saved, even when a rewound run numbered it below the others);
        returns the deleted steps."""
        complete, incomplete = self._classify()
        doomed = retention.steps_to_delete(
            sorted(complete), incomplete, self.keep_last, self.keep_every, committed=committed
        )
        for step in doomed:
            self.delete(step)
        return doomed

    def __repr__(self) -> str:
        return f"CheckpointStore({self.uri!r}, rank={self.rank}, world_size={self.world_size})"
