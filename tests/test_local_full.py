"""A local write the filesystem refuses for lack of room: named clearly, at once, nothing left.

The process's file-size limit (``RLIMIT_FSIZE``, with SIGXFSZ ignored) makes the kernel refuse
a write past it (EFBIG) on any filesystem, as a full disk does (ENOSPC): no mount needed.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from s3dlio.errors import TransferError
from s3dlio.store.local import translate

_LIMITED_PUT = textwrap.dedent(
    """
    import resource, signal, sys, time
    import s3dlio
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
    began = time.monotonic()
    try:
        s3dlio.put(sys.argv[1], b"x" * (4 << 20))
    except Exception as exc:
        print(type(exc).__name__, exc, sep=": ")
        print(f"{time.monotonic() - began:.2f}")
    """
)


@pytest.mark.parametrize("scheme", ["file", "direct"])
def test_a_refused_write_is_named_at_once_and_leaves_nothing(scheme: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    folder = request.getfixturevalue("direct_dir") if scheme == "direct" else tmp_path
    uri = f"{scheme}://{folder}/big.bin"
    out = subprocess.run([sys.executable, "-c", _LIMITED_PUT, uri], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    message, seconds = out.stdout.strip().rsplit("\n", 1)
    # the filesystem's refusal, not a BufferError from cleaning up the O_DIRECT staging buffer
    assert message.startswith("TransferError: ") and "file too large" in message, message
    assert "attempts" not in message and float(seconds) < 2.0, out.stdout  # not retried
    assert os.listdir(folder) == []  # no partial file, no temporary


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EFBIG])
def test_no_room_is_not_retried(code: int) -> None:
    error = translate(OSError(code, os.strerror(code)), "put", "file:///x")
    assert isinstance(error, TransferError) and error.retried
