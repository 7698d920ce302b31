"""A streamed response's body on a blocking connection.

Backpressure is free here: nothing is received until the consumer asks for
the next piece, so memory per stream is one receive buffer (the
connection's, 256 KiB) plus the piece handed out.

Release follows the same rule as the asyncio shell (see
:mod:`warmline.aio._stream`): read to the end, the connection is reused;
otherwise a rest known to be at most ``drain_limit`` bytes is read and
dropped within :data:`DRAIN_TIMEOUT`, anything else closes the connection
(its slot reconnects). Never reused with unread bytes.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from time import monotonic
from time import perf_counter as _clock
from types import TracebackType
from typing import TYPE_CHECKING, Final

from warmline.errors import (
    ConnectionClosed,
    ReadTimeout,
    StreamClosed,
    WarmlineError,
    WriteTimeout,
)
from warmline.http11 import Response

if TYPE_CHECKING:
    from warmline.http11._upload import Upload
    from warmline.sync._connection import Connection

__all__ = ["DRAIN_TIMEOUT", "StreamContext", "SyncBody"]

# How long a release waits for a small rest of the body to arrive (drain).
DRAIN_TIMEOUT: Final = 0.5


class SyncBody:
    """One streamed response on a blocking connection; its body source.

    Args:
        conn: The live, idle connection the request goes out on.
        read_timeout: Longest wait for the next piece of the body (None: none).
        drain_limit: Largest known rest drained at release to keep the connection.
        decompress: Whether the response's ``iter_bytes`` decode.
        max_size: The body limit (decoded size too).
        on_release: Called once when the stream is released (the pool's
            slot release for ``pool.stream()``; None for ``slot.stream()``).
    """

    __slots__ = (
        "_conn",
        "_done",
        "_drain_limit",
        "_error",
        "_on_release",
        "_pieces",
        "_read_timeout",
        "_reader",
        "_released",
        "decompress",
        "max_size",
    )

    def __init__(
        self,
        conn: Connection,
        *,
        read_timeout: float | None,
        drain_limit: int,
        decompress: bool,
        max_size: int,
        on_release: Callable[[], None] | None,
    ) -> None:
        self._conn = conn
        self._reader = conn._reader
        self._pieces: deque[bytes] = deque()
        self._done = False
        self._released = False
        self._error: WarmlineError | None = None
        self._read_timeout = read_timeout
        self._drain_limit = drain_limit
        self._on_release = on_release
        self.decompress = decompress
        self.max_size = max_size

    def start(
        self, data: bytes, method: str, deadline: float | None, upload: Upload | None = None
    ) -> Response:
        """Send the request (``data``, then ``upload``'s pieces when its body
        is a stream) and read until its head is complete.

        Raises:
            WriteTimeout, ReadTimeout, ConnectionClosed, ProtocolError: As for
                a request; the connection is then closed.
        """
        conn = self._conn
        conn.busy = True
        try:
            self._reader.start_stream(method)
            sent_at = _clock()
            self._send(data, deadline)
            if upload is not None:
                if upload.is_async:
                    raise TypeError("an async iterable body needs the asyncio pool (warmline.aio)")
                for frame in upload.frames():
                    self._send(frame, deadline)
            head = None
            while head is None:
                head = self._receive(math.inf if deadline is None else deadline)
            head._elapsed = _clock() - sent_at  # to the head (Response.elapsed)
        except BaseException as exc:
            self._close_conn()
            # The pool's reason first (closed, or released under us), as for
            # a whole response; an OSError becomes ConnectionClosed.
            translated = self._conn._translate(exc, self._reader)
            if translated is exc:
                raise
            raise translated from exc
        return head

    def _send(self, data: bytes, deadline: float | None) -> None:
        conn = self._conn
        sock = conn._sock
        try:
            if deadline is None:
                self._untimed()
            else:
                conn._arm(sock, deadline)
            sock.sendall(data)
        except TimeoutError as exc:
            raise WriteTimeout("request not sent before the timeout") from exc

    def _untimed(self) -> None:
        conn = self._conn
        if conn._timeout is not None:
            conn._sock.settimeout(None)
            conn._timeout = None

    def _receive(self, deadline: float) -> Response | None:
        """One recv, fed to the reader; returns the head if it just completed."""
        conn = self._conn
        reader = self._reader
        if deadline == math.inf and conn.read_timeout is None:
            self._untimed()
        else:
            try:
                conn._arm(conn._sock, deadline)
            except TimeoutError as exc:
                raise ReadTimeout("response not complete before the timeout") from exc
        try:
            n = conn._sock.recv_into(conn._buf)
        except TimeoutError as exc:
            raise ReadTimeout("no byte received before the timeout") from exc
        if n:
            head = reader.feed_stream(conn._mv[:n].tobytes())
        else:
            head = reader.feed_eof_stream()
            if not reader.body_done:
                raise ConnectionClosed("connection closed before a response", received_any=False)
        for piece in reader.take_body():
            self._pieces.append(piece if type(piece) is bytes else bytes(piece))
        if reader.body_done:
            self._complete(eof=not n)
        return head

    # -- BodySource ---------------------------------------------------------
    def read_piece(self) -> bytes | None:
        """The next piece of the body as sent, or None at its end."""
        while True:
            if self._released:
                raise StreamClosed("the stream is closed: its body can no longer be read")
            if self._pieces:
                return self._pieces.popleft()
            if self._error is not None:
                raise self._error
            if self._done:
                return None
            timeout = self._read_timeout
            try:
                self._receive(math.inf if timeout is None else monotonic() + timeout)
            except BaseException as exc:
                self._close_conn()
                translated = self._conn._translate(exc, self._reader)
                if isinstance(translated, WarmlineError):
                    self._error = translated
                if translated is exc:
                    raise
                raise translated from exc

    def release(self, drain: bool = True) -> None:
        """Give the connection back: reused if the body is (or is quickly
        drained) complete, else closed. Idempotent."""
        if self._released:
            return
        self._released = True
        self._pieces.clear()
        if not self._done and self._error is None and drain:
            left = self._reader.body_left
            if 0 <= left <= self._drain_limit:
                self._drain()
        if not self._done:
            self._close_conn()
        on_release = self._on_release
        self._on_release = None
        if on_release is not None:
            on_release()

    def _drain(self) -> None:
        deadline = monotonic() + DRAIN_TIMEOUT
        try:
            while not self._done:
                self._receive(deadline)
                self._pieces.clear()
        except (WarmlineError, OSError):
            self._close_conn()

    async def aread_piece(self) -> bytes | None:
        raise StreamClosed("a blocking stream: use iter_bytes(), read() and close()")

    async def arelease(self, drain: bool = True) -> None:
        self.release(drain)

    # -- internals ---------------------------------------------------------
    def _complete(self, eof: bool) -> None:
        self._done = True
        conn = self._conn
        conn.busy = False
        conn.served = True
        if eof or not self._reader.keep_alive or not conn.alive:
            # Connection: close, a close-delimited body, extra bytes; or
            # closed by another thread while busy (it only shut it down).
            conn.close()

    def _close_conn(self) -> None:
        conn = self._conn
        conn.busy = False
        conn.close()


class StreamContext:
    """What ``stream()`` returns: ``with pool.stream(...) as response:``.

    On entry the request is sent and its head read; the body is read with
    the response's ``iter_bytes()`` and friends. On exit the stream is
    closed (``close()``: the connection reused, drained or closed; see
    :mod:`warmline.sync._stream`); leaving with an exception closes the
    connection without draining.
    """

    __slots__ = ("_open", "_response")

    def __init__(self, open_stream: Callable[[], Response]) -> None:
        self._open = open_stream
        self._response: Response | None = None

    def __enter__(self) -> Response:
        self._response = self._open()
        return self._response

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        response = self._response
        self._response = None
        if response is None:
            return
        if et is None:
            response.close()
        else:
            response._abandon()
