"""A streamed response's body on an asyncio connection.

While a body streams, an :class:`AioBody` stands in for the
:class:`~warmline.aio.Connection` as the transport's protocol
(``transport.set_protocol``): the connection's own ``data_received``, the
hot path of whole responses, keeps no streaming branch (uvloop caches a
protocol's callbacks, and ``set_protocol`` is the documented way to switch
them). When the body ends, the connection gets its transport back.

Backpressure: received pieces wait in a queue until the consumer asks; above
:data:`HIGH_WATER` buffered bytes the transport stops reading
(``pause_reading()``: the kernel's receive buffer fills, then TCP's window
closes, so the server slows down), and reading resumes once the consumer has
taken the queue below :data:`LOW_WATER`. Memory per stream is thus bounded by
``HIGH_WATER`` plus one read (uvloop reads up to 256 KiB at a time).

Release (``aclose()``, the end of ``async with``): a body read to its end
leaves the connection idle for the next request. Otherwise, when the rest
is known (Content-Length) to be at most ``drain_limit`` bytes, it is read
and dropped within :data:`DRAIN_TIMEOUT`, and the connection is reused; in
any other case (unknown or large rest, an error, a cancellation) the
connection is closed and its slot reconnects. A connection is never reused
with unread bytes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from time import perf_counter as _clock
from types import TracebackType
from typing import TYPE_CHECKING, Final, cast

from warmline.aio._connection import _aclose, _as_async
from warmline.errors import ConnectionClosed, ReadTimeout, StreamClosed, WarmlineError
from warmline.http11 import Response

if TYPE_CHECKING:
    from warmline.aio._connection import Connection
    from warmline.http11._upload import Upload

__all__ = ["DRAIN_TIMEOUT", "HIGH_WATER", "LOW_WATER", "AioBody", "StreamContext"]

# Buffered bytes above which the transport is paused, and below which it
# resumes. 256 KiB: aiohttp's StreamReader pauses at 2 x its 64 KiB limit
# (128 KiB); a little more lets one 256 KiB uvloop read land without an
# immediate pause.
HIGH_WATER: Final = 256 * 1024
LOW_WATER: Final = 64 * 1024

# How long a release waits for a small rest of the body to arrive (drain).
DRAIN_TIMEOUT: Final = 0.5


class AioBody(asyncio.Protocol):
    """The transport's protocol while one streamed response arrives; its body source.

    Args:
        conn: The idle connection the request goes out on.
        read_timeout: Longest wait for the next piece of the body (None: none).
        drain_limit: Largest known rest drained at release to keep the connection.
        decompress: Whether the response's ``iter_bytes`` decode.
        max_size: The body limit (decoded size too).
        on_release: Called once when the stream is released (the pool's
            slot release for ``pool.stream()``; None for ``slot.stream()``).
    """

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
        self._loop = conn._loop
        transport = conn._transport
        assert transport is not None
        self._transport = transport
        self._pieces: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._done = False
        self._released = False
        # A streamed upload still going, or ended early: never reuse.
        self._uploading = self._cut = False
        self._error: WarmlineError | None = None
        self._head: asyncio.Future[Response] = self._loop.create_future()
        self._more: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._read_timeout = read_timeout
        self._drain_limit = drain_limit
        self._on_release = on_release
        self.decompress = decompress
        self.max_size = max_size

    # -- starting ------------------------------------------------------------
    async def start(
        self, data: bytes, method: str, deadline: float | None, upload: Upload | None = None
    ) -> Response:
        """Send the request (``data``, then ``upload``'s pieces when its body
        is a stream); return its response once the head is in.

        Raises:
            ConnectionClosed: The connection was not usable (nothing sent).
            ReadTimeout: No complete head before ``deadline``.
        """
        conn = self._conn
        try:
            self._reader.start_stream(method)
        except WarmlineError as exc:
            conn._kill()  # unsolicited bytes arrived, or the peer closed
            raise ConnectionClosed(
                "connection closed before the request", received_any=False
            ) from exc
        conn.idle = False
        conn._stream = self
        self._transport.set_protocol(self)
        sent_at = _clock()
        self._transport.write(data)
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._head_late)
        try:
            if upload is not None:
                await self._upload(upload)
            head = await self._head
            head._elapsed = _clock() - sent_at  # to the head (Response.elapsed)
            return head
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                self._abort()
            # Left during an upload (cancelled, or its iterator raised): the
            # head is awaited by nobody now, and an error set on it later
            # (the close) would be logged as never retrieved.
            if not self._head.done():
                self._head.cancel()
            raise
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    async def _upload(self, upload: Upload) -> None:
        """Write a streamed request body after its head, one write per piece.

        Past the transport's high-water mark the next piece waits for
        ``resume_writing`` (or the head). A head that comes before the whole
        body is written (a 413, say) ends the upload; its body can still be
        read, and the connection is closed after it: the server may still
        expect the rest.
        """
        conn = self._conn
        head = self._head
        frames = upload.aframes() if upload.is_async else upload.frames()
        pieces = _as_async(frames)
        self._uploading = True
        try:
            async for frame in pieces:
                if head.done() or not conn.alive:
                    self._cut = True
                    break
                self._transport.write(frame)
                drained = conn._drained
                if drained is not None:
                    await asyncio.wait((drained, head), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            self._cut = True
            self._abort()  # a body cut short by an error: nothing may follow
            raise
        finally:
            self._uploading = False
            await pieces.aclose()
            await _aclose(frames)

    def _head_late(self) -> None:
        self._timer = None
        self._fail(ReadTimeout("response head not complete before the timeout"))

    # -- asyncio.Protocol ------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        reader = self._reader
        try:
            head = reader.feed_stream(data)
        except WarmlineError as exc:
            self._fail(exc)
            return
        self._keep(reader.take_body())
        if head is not None and not self._head.done():
            self._head.set_result(head)
        if reader.body_done:
            self._complete()
        elif self._buffered > HIGH_WATER and not self._paused:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        reader = self._reader
        if not self._done and self._error is None:
            try:
                head = reader.feed_eof_stream()
            except WarmlineError as err:
                err.__cause__ = exc
                self._error = err
                if not self._head.done():
                    self._head.set_exception(err)
            else:
                self._keep(reader.take_body())
                if head is not None and not self._head.done():
                    self._head.set_result(head)
                self._done = reader.body_done  # a body delimited by the close
        if not self._head.done():
            self._head.set_exception(ConnectionClosed("connection closed before a response"))
        self._wake()
        self._conn.connection_lost(exc)  # the pool learns that it is gone

    def pause_writing(self) -> None:
        self._conn.pause_writing()

    def resume_writing(self) -> None:
        self._conn.resume_writing()

    # -- BodySource ---------------------------------------------------------
    async def aread_piece(self) -> bytes | None:
        """The next piece of the body as sent, or None at its end."""
        while True:
            if self._released:
                raise StreamClosed("the stream is closed: its body can no longer be read")
            if self._pieces:
                piece = self._pieces.popleft()
                self._buffered -= len(piece)
                if self._paused and self._buffered <= LOW_WATER:
                    self._paused = False
                    self._transport.resume_reading()
                return piece
            if self._error is not None:
                raise self._error
            if self._done:
                return None
            await self._wait(self._read_timeout)

    async def _wait(self, timeout: float | None) -> None:
        more = self._more = self._loop.create_future()
        timer = None
        if timeout is not None:
            timer = self._loop.call_later(timeout, self._read_late, timeout)
        try:
            await more
        except asyncio.CancelledError:
            self._abort()  # cancelled mid-body: the rest is unknown, close
            raise
        finally:
            self._more = None
            if timer is not None:
                timer.cancel()

    def _read_late(self, timeout: float) -> None:
        self._fail(ReadTimeout(f"no body byte received for {timeout} s (read timeout)"))

    async def arelease(self, drain: bool = True) -> None:
        """Give the connection back: reused if the body is (or is quickly
        drained) complete, else closed. Idempotent."""
        if self._released:
            return
        self._released = True
        self._pieces.clear()
        self._buffered = 0
        if not self._done and self._error is None and drain:
            left = self._reader.body_left
            if 0 <= left <= self._drain_limit:
                await self._drain()
        if not self._done:
            self._abort()
        self._wake()
        on_release = self._on_release
        self._on_release = None
        if on_release is not None:
            on_release()

    async def _drain(self) -> None:
        if self._paused:
            self._paused = False
            self._transport.resume_reading()
        deadline = self._loop.time() + DRAIN_TIMEOUT
        while not self._done and self._error is None:
            left = deadline - self._loop.time()
            if left <= 0:
                return
            more = self._more = self._loop.create_future()
            timer = self._loop.call_later(left, self._wake)
            try:
                await more
            finally:
                timer.cancel()
                self._more = None

    def read_piece(self) -> bytes | None:
        raise StreamClosed("an asyncio stream: use aiter_bytes(), aread() and aclose()")

    def release(self, drain: bool = True) -> None:
        # A blocking close of an asyncio stream (e.g. Response.close()): no
        # drain is possible without awaiting, so close unless complete.
        if self._released:
            return
        self._released = True
        self._pieces.clear()
        if not self._done:
            self._abort()
        on_release = self._on_release
        self._on_release = None
        if on_release is not None:
            on_release()

    # -- internals ---------------------------------------------------------
    def _keep(self, pieces: list[bytes | bytearray | memoryview]) -> None:
        if self._released:
            return  # draining: dropped
        for piece in pieces:
            data = piece if type(piece) is bytes else bytes(piece)
            self._pieces.append(data)
            self._buffered += len(data)

    def _complete(self) -> None:
        """The body is complete: the connection gets its transport back."""
        self._done = True
        conn = self._conn
        if self._paused:
            self._paused = False
            self._transport.resume_reading()
        self._transport.set_protocol(cast("asyncio.BaseProtocol", conn))
        conn._stream = None
        conn.served = True
        if self._reader.keep_alive and not (self._cut or self._uploading):
            conn.idle = True
        else:
            conn._kill()  # Connection: close, or bytes after the response

    def _fail(self, exc: WarmlineError) -> None:
        if self._error is None and not self._done:
            self._error = exc
        if not self._head.done():
            self._head.set_exception(exc)
        self._abort()
        self._wake()

    def _abort(self) -> None:
        """Close the connection (it has unread bytes, or failed)."""
        if not self._done:
            self._conn._kill()

    def _wake(self) -> None:
        more = self._more
        if more is not None and not more.done():
            more.set_result(None)


class StreamContext:
    """What ``stream()`` returns: ``async with pool.stream(...) as response:``.

    On entry the request is sent and its head read; the body is read with
    the response's ``aiter_bytes()`` and friends. On exit the stream is
    closed (``aclose()``: the connection reused, drained or closed; see
    :mod:`warmline.aio._stream`); leaving with an exception, or a
    cancellation, closes the connection without draining.
    """

    __slots__ = ("_open", "_response")

    def __init__(self, open_stream: Callable[[], Awaitable[Response]]) -> None:
        self._open = open_stream
        self._response: Response | None = None

    async def __aenter__(self) -> Response:
        self._response = await self._open()
        return self._response

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        response = self._response
        self._response = None
        if response is None:
            return
        if et is None:
            await response.aclose()
        else:
            response._abandon()
