"""What the adapter streaming tests measure on a body served by ``/bytes/N``."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterable
from typing import NamedTuple


def pattern(start: int, n: int) -> bytes:
    """Bytes ``start`` to ``start + n`` of a ``/bytes/N`` body (i mod 256)."""
    return bytes((start + i) % 256 for i in range(n))


class Read(NamedTuple):
    total: int  # bytes read
    largest: int  # the largest chunk
    first: bytes  # the first 300 bytes
    peak: int  # tracemalloc's peak while reading


def read_traced(open_chunks: Callable[[], Iterable[bytes]]) -> Read:
    """Read every chunk ``open_chunks()`` gives under tracemalloc."""
    tracemalloc.start()
    try:
        total, largest, first = 0, 0, b""
        for chunk in open_chunks():
            first = first or chunk[:300]
            total += len(chunk)
            largest = max(largest, len(chunk))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return Read(total, largest, first, peak)
