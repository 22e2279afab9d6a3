"""``latest_step()`` while another process saves with retention: never None once a step exists.

The writer commits step n+1 and then deletes step n (``keep_last=1``), so a complete
checkpoint exists at every instant; a reader that listed the steps just before that could
find the newest one unfinished and the older one gone, and answered None ("no checkpoint").
"""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

from s3dlio.checkpoint import CheckpointStore


def _save_forever(root: str, first_committed: mp.synchronize.Event) -> None:
    store = CheckpointStore(root, keep_last=1)
    step = 1
    store.save(step, {"w": b"x" * (1 << 20)})
    first_committed.set()
    while True:
        step += 1
        store.save(step, {"w": b"x" * (1 << 20)})


def test_latest_step_is_never_none_while_a_writer_saves_and_prunes(tmp_path: Path) -> None:
    root = f"file://{tmp_path}/ckpt/"
    ctx = mp.get_context("spawn")
    committed = ctx.Event()
    writer = ctx.Process(target=_save_forever, args=(root, committed), daemon=True)
    writer.start()
    try:
        assert committed.wait(60), "the writer did not commit its first step"
        reader = CheckpointStore(root)
        answers: list[int | None] = []
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            answers.append(reader.latest_step())
    finally:
        writer.kill()
        writer.join(10)
    assert None not in answers, f"{answers.count(None)} of {len(answers)} answers were None"
    assert len(set(answers)) > 1  # the writer did move on meanwhile
