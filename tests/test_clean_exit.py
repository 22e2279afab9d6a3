"""A process that used the background loop exits cleanly.

obstore's runtime threads hand results to s3dlio's background event loop with
``call_soon_threadsafe``; the caller can already have the result while such a thread is still
waking the loop. If the interpreter finalizes then, CPython ends that thread with
``pthread_exit`` through Rust frames, which aborts the process (exit -6 after a successful
``s3dlio get`` on Azurite, about 1 run in 17 on a loaded machine). Exit must wait for those
threads. Here a Python thread stands in for the runtime thread, held inside the hand-over.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import sys, threading, time
    from s3dlio import _parallel

    async def nothing():
        return None

    _parallel.on_loop(nothing())  # starts the background loop
    loop = _parallel._loop
    wake = loop._write_to_self

    inside = threading.Event()

    def slow_wake():  # a runtime thread descheduled just before it wakes the loop
        inside.set()
        time.sleep(0.3)
        wake()
        with open(sys.argv[1], "w") as f:  # still inside the hand-over
            f.write("handed over")

    loop._write_to_self = slow_wake

    def hand_over():
        loop.call_soon_threadsafe(lambda: None)

    threading.Thread(target=hand_over, daemon=True).start()
    inside.wait()  # the thread is inside call_soon_threadsafe; the main thread exits now
    """
)


def test_exit_waits_for_a_thread_handing_a_result_to_the_loop(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(marker)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert marker.read_text() == "handed over"  # the hand-over finished before finalization
