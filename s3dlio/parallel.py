"""Bounded concurrency on s3dlio's shared worker threads, for code built on top of s3dlio.

:func:`map_bounded` runs a function over a batch with at most ``max_in_flight`` calls at once
and returns the results in input order; :func:`iter_bounded` yields ``(item, result or
exception)`` in input order while keeping only a window of calls in flight, for streams too
long to hold. Both are what ``get_many``/``put_many`` use, so a framework layer that issues
its own requests (DCP's merged ranged reads, say) shares their threads and their
``Ctrl-C`` handling.
"""

from __future__ import annotations

from ._parallel import iter_bounded, map_bounded

__all__ = ["iter_bounded", "map_bounded"]
