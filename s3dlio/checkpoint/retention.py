"""Which old checkpoints to delete, and deleting one so it never looks complete half-way.

The choice is a pure function of the steps (tested without storage). Deletion removes the
manifest first: from then on the checkpoint is incomplete and ``latest`` skips it, however
far the deletion of its shards gets.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from . import layout

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["delete_step", "steps_to_delete"]


def steps_to_delete(
    complete: Iterable[int], incomplete: Iterable[int], keep_last: int | None, keep_every: int | None,
    *, committed: int | None = None,
) -> list[int]:  # fmt: skip
    """Steps to delete under ``keep_last``/``keep_every``, ascending.

    ``complete`` lists the complete checkpoints oldest save first: ascending step numbers
    where the save order is not known, in save order where the caller knows it (a run
    rewound to an earlier step saves lower numbers after higher ones). Kept: the last
    ``keep_last`` of them (all when None), every one whose step is a multiple of
    ``keep_every``, the last one, and ``committed`` (the step a save just committed: its
    caller has returned it as saved, whatever its number). Incomplete steps numbered below
    the highest complete one are leftovers of failed saves and go; higher ones may still be
    in progress and stay.
    """
    if keep_last is not None and keep_last < 1:
        raise ValueError(f"keep_last={keep_last}: must be at least 1 (None keeps all)")
    if keep_every is not None and keep_every < 1:
        raise ValueError(f"keep_every={keep_every}: must be at least 1")
    done = list(dict.fromkeys(complete))  # save order, each step once
    if not done:
        return []
    keep = set(done if keep_last is None else done[-keep_last:])
    if keep_every:
        keep.update(s for s in done if s % keep_every == 0)
    keep.add(done[-1])
    if committed is not None:
        keep.add(committed)
    highest = max(done)
    stale = {s for s in incomplete if s < highest and s != committed}
    return sorted((set(done) - keep) | stale)


def delete_step(store: Store, root: str, step: int) -> int:
    """Delete everything of one checkpoint, manifest first. Returns the objects deleted."""
    prefix = root + layout.step_prefix(step)
    store.delete(root + layout.manifest_key(step))
    keys = [item.key for item in store.list(prefix) if not isinstance(item, str)]
    for i in range(0, len(keys), 1000):
        # (mypy reads "list" in Store as its method: base.py should say builtins.list)
        for failure in store.delete_many(keys[i : i + 1000]):  # type: ignore[attr-defined]
            raise failure.error
    return len(keys) + 1
