"""Streamed request bodies: an iterable, async iterable or binary file object.

Sans-I/O: this module decides the framing (``Content-Length`` when the size is
known, else ``Transfer-Encoding: chunked``) and frames the pieces; the shells
write them. A streamed body is read once, so it is never sent again: not by
the stale retry, not by a redirect, not by a client retry or hedge.
"""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from typing import IO, Any, Final, TypeAlias

from warmline.errors import ConnectionClosed, InvalidRequest, WarmlineError

__all__ = [
    "READ_SIZE",
    "StreamArg",
    "StreamedBody",
    "Upload",
    "is_streamed",
    "make_upload",
    "not_replayed",
]

StreamArg: TypeAlias = Iterable[bytes] | AsyncIterable[bytes] | IO[bytes]

# Bytes read from a file object per piece: 64 KiB, the default socket buffer
# order of magnitude; a larger read only grows the copy held in memory.
READ_SIZE: Final = 64 * 1024
_LAST_CHUNK: Final = b"0\r\n\r\n"


class StreamedBody(TypeError):
    """Raised by ``RequestWriter.build`` for a streamed ``content``: the pool
    shells catch it and take their separate path (``build_head`` plus the
    pieces), so the bytes/str/json path pays nothing for it. A direct caller
    of ``build`` sees a TypeError that says where such a body goes."""

    def __init__(self) -> None:
        super().__init__(
            "content must be bytes, bytearray, memoryview or str for build(); a streamed "
            "body (iterable, async iterable, binary file object) goes through build_head()"
        )


def is_streamed(content: object) -> bool:
    """Whether ``content`` is a body read while sent (so it cannot be replayed)."""
    if content is None or isinstance(content, bytes | bytearray | memoryview | str):
        return False
    return (
        hasattr(content, "read")
        or isinstance(content, AsyncIterable)
        or (isinstance(content, Iterable) and not isinstance(content, Mapping))
    )


def _file_size(file: Any) -> int | None:
    """Bytes left to read in a regular file (size minus position), else None."""
    try:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        left: int = info.st_size - file.tell()
        return max(left, 0)
    except (AttributeError, OSError, ValueError):
        return None  # no descriptor (BytesIO), a pipe, an unseekable stream


class Upload:
    """One streamed body: its length (None: chunked) and its framed pieces."""

    __slots__ = ("_source", "is_async", "length")

    def __init__(self, source: Any, length: int | None, is_async: bool) -> None:
        self._source = source
        self.length = length
        self.is_async = is_async

    @property
    def framing(self) -> bytes:
        """The framing header line(s) and the blank line that ends the head."""
        if self.length is None:
            return b"Transfer-Encoding: chunked\r\n\r\n"
        return b"Content-Length: %d\r\n\r\n" % self.length

    def _pieces(self) -> Iterator[Any]:
        source = self._source
        if hasattr(source, "read"):
            read = source.read
            while piece := read(READ_SIZE):
                yield piece
        else:
            yield from source

    def frames(self) -> Iterator[bytes]:
        """The body as written to the wire (chunk framing included)."""
        sent = 0
        for piece in self._pieces():
            data = _checked(piece)
            if not data:
                continue  # an empty chunk would end a chunked body
            sent += len(data)
            yield self._frame(data, sent)
        yield from self._end(sent)

    async def aframes(self) -> AsyncIterator[bytes]:
        """:meth:`frames` for an async iterable source."""
        sent = 0
        async for piece in self._source:
            data = _checked(piece)
            if not data:
                continue
            sent += len(data)
            yield self._frame(data, sent)
        for frame in self._end(sent):
            yield frame

    def _frame(self, data: bytes | bytearray | memoryview, sent: int) -> bytes:
        if self.length is None:
            return b"%x\r\n" % len(data) + data + b"\r\n"
        if sent > self.length:
            raise InvalidRequest(
                f"streamed body longer than its Content-Length of {self.length} bytes"
            )
        return data if isinstance(data, bytes) else bytes(data)

    def _end(self, sent: int) -> Iterator[bytes]:
        if self.length is None:
            yield _LAST_CHUNK
        elif sent != self.length:
            raise InvalidRequest(
                f"streamed body ended after {sent} of its {self.length} bytes (Content-Length)"
            )


def _checked(piece: object) -> bytes | bytearray | memoryview:
    if isinstance(piece, bytes | bytearray):
        return piece
    if isinstance(piece, memoryview):
        return piece.cast("B") if piece.c_contiguous else piece.tobytes()
    raise TypeError(f"a streamed body must yield bytes, not {type(piece).__name__}")


def make_upload(content: Any) -> Upload:
    """The :class:`Upload` for a streamed ``content`` (see :func:`is_streamed`)."""
    if hasattr(content, "read"):
        return Upload(content, _file_size(content), False)
    if isinstance(content, AsyncIterable):
        return Upload(content, None, True)
    return Upload(content, None, False)


def not_replayed(exc: WarmlineError) -> WarmlineError:
    """The error to raise for a streamed request that failed: a stale
    connection's one retry is refused with a clear error, others pass."""
    if isinstance(exc, ConnectionClosed) and not exc.received_any:
        refused = ConnectionClosed(
            f"{exc}; not sent again: the request body is a stream, which is read only once",
            received_any=False,
        )
        refused.__cause__ = exc
        return refused
    return exc
