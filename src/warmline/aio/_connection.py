"""One HTTP/1.1 keep-alive connection on an ``asyncio.Protocol``.

The protocol feeds every received chunk to the sans-I/O ResponseReader and
resolves one future per request; there is no task, lock or stream object per
request. The connection knows when it is dead: EOF, reset, protocol error,
``Connection: close``, or a request cancelled or timed out after its bytes
were written. A dead connection is never reused.

Through a proxy, ``warmline.connectors`` opens the tunnel and hands the
transport over to the Connection; from then on it is an ordinary transport
and a request costs what a direct one does (client CPU per pooled GET,
through tinyproxy's CONNECT / direct, https, 3 runs of 7x2,000: 1.10, 1.01,
1.03; through dante's SOCKS5, http: 0.95, 1.06, 0.99).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import ssl
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from time import perf_counter as _clock
from typing import Any, cast

from warmline._hooks import CloseReason
from warmline._policy import Origin
from warmline._pool._observe import next_conn_id
from warmline._sockopts import LocalAddress, local_addr, tune
from warmline._tls import describe_tls_error
from warmline.connectors import Proxy
from warmline.connectors._aio import open_aio_transport
from warmline.errors import (
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    ReadTimeout,
    WarmlineError,
    WriteTimeout,
)
from warmline.http11 import Response, ResponseReader
from warmline.http11._upload import Upload

__all__ = ["Connection", "open_connection"]


class Connection(asyncio.Protocol):
    """An HTTP/1.1 client connection: write one request, await one response.

    Use :func:`open_connection` to make one. ``send()`` may only be called
    while ``idle``; callers (the pool's slots) guarantee that.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        reader: ResponseReader,
        on_lost: Callable[[Connection], None] | None = None,
    ) -> None:
        self._loop = loop
        self._reader = reader
        self._on_lost = on_lost
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[Response] | None = None
        self._timer: asyncio.TimerHandle | None = None
        # alive: the transport is open and trusted. idle: alive with no
        # request outstanding, i.e. ready for send(). Plain attributes, read
        # on every request.
        self.alive = False
        self.idle = False
        # Whether any response completed on this connection: one that dies
        # without serving counts as a failed reconnect (backoff applies).
        self.served = False
        self.opened_at = 0.0  # loop.time() when connected
        self.tcp_keepalive = False
        # The longest gap allowed between received bytes: see ReadTimedConnection.
        self.read_timeout: float | None = None
        # Set while the transport's write buffer is over its high-water mark
        # (pause_writing): a streamed upload waits on it before writing more.
        self._drained: asyncio.Future[None] | None = None
        # The streamed body reading this connection now (its protocol), so
        # that close(error) fails it with the reason, as it fails a waiter.
        self._stream: Any = None
        # time.perf_counter() when the current request was sent, for
        # Response.elapsed: two clock reads per request, +949 instructions on
        # benchmarks.hotpath pool.get (35,405 -> 36,354, callgrind; +1,314 with
        # perf_counter_ns ints). No cheaper clock has the resolution: uvloop's
        # loop.time() is the iteration's cached time, in milliseconds.
        self._sent_at = 0.0

    # -- asyncio.Protocol -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but quack.
        self._transport = cast(asyncio.Transport, transport)
        self.alive = self.idle = True
        self.opened_at = self._loop.time()
        sock = transport.get_extra_info("socket")
        if sock is not None:
            tune(sock, tcp_keepalive=self.tcp_keepalive)

    def data_received(self, data: bytes) -> None:
        try:
            response = self._reader.feed(data)
        except WarmlineError as exc:
            self._fail(exc)
            return
        if response is None:
            return
        response._elapsed = _clock() - self._sent_at
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.served = True
        if self._reader.keep_alive:
            self.idle = True
        else:
            # Connection: close, HTTP/1.0, a close-delimited body or bytes after
            # the response: this connection must not carry another request.
            self._kill()
        waiter = self._waiter
        self._waiter = None
        if waiter is not None:
            # Done only if its task was cancelled this very iteration (the
            # handler then abandons the connection); asking first would cost
            # every response a call, and contextlib.suppress ~3.6k
            # instructions (callgrind): a bare try costs nothing.
            try:  # noqa: SIM105
                waiter.set_result(response)
            except asyncio.InvalidStateError:
                pass

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost follows

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = self._loop.create_future()

    def resume_writing(self) -> None:
        self._wake_writer()

    def _wake_writer(self) -> None:
        drained = self._drained
        self._drained = None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = self.idle = False
        self._cancel_timer()
        self._wake_writer()
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            try:
                response = self._reader.feed_eof()
            except WarmlineError as err:
                err.__cause__ = exc
                waiter.set_exception(err)
            else:
                if response is not None:
                    response._elapsed = _clock() - self._sent_at
                    waiter.set_result(response)
                else:
                    closed = ConnectionClosed("connection closed before a response")
                    closed.__cause__ = exc
                    waiter.set_exception(closed)
        if self._on_lost is not None:
            self._on_lost(self)

    # -- requests ----------------------------------------------------------
    @property
    def received_any(self) -> bool:
        """Whether any byte of the current response arrived."""
        return self._reader.received_any

    def send(
        self, data: bytes, method: str, deadline: float | None
    ) -> asyncio.Future[Response] | None:
        """Write one request; the future resolves with its response.

        Returns None, writing nothing, when the connection is not ``idle``
        (closed, or busy): the caller then reconnects.

        Args:
            data: The whole request, as built by RequestWriter.
            method: Its method (a HEAD response has no body).
            deadline: ``loop.time()`` by which the response must be complete,
                or None. On expiry the future fails with ReadTimeout (or
                WriteTimeout if the request was not yet sent) and the
                connection is closed: its state is unknown.
        """
        if not self.idle:
            return None
        try:
            self._reader.start(method)
        except WarmlineError:
            self._kill()  # unsolicited bytes arrived, or the peer closed
            return None
        self.idle = False
        waiter: asyncio.Future[Response] = self._loop.create_future()
        self._waiter = waiter
        self._sent_at = _clock()
        self._transport.write(data)  # type: ignore[union-attr]  # idle implies a transport
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_deadline)
        return waiter

    async def send_body(self, upload: Upload, waiter: asyncio.Future[Response]) -> None:
        """Write a streamed body after :meth:`send` wrote its head.

        One ``transport.write`` per piece; past the transport's high-water
        mark the next piece waits for ``resume_writing`` (or the response, or
        the connection's end). A response that completes before the whole
        body is written (a 413, a redirect) ends the upload, and the
        connection is closed: the server may still expect the rest.
        """
        transport = self._transport
        assert transport is not None
        frames = upload.aframes() if upload.is_async else upload.frames()
        pieces = _as_async(frames)
        try:
            async for frame in pieces:
                if waiter.done() or not self.alive:
                    break
                transport.write(frame)
                drained = self._drained
                if drained is not None:
                    await asyncio.wait((drained, waiter), return_when=asyncio.FIRST_COMPLETED)
            else:
                return
        except BaseException:
            self.abandon()  # a body cut short: nothing may follow on this connection
            raise
        finally:
            await pieces.aclose()
            await _aclose(frames)
        if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
            self._kill()  # answered mid-upload: the rest of the body is unsent

    def abandon(self) -> None:
        """The request was cancelled mid-flight: the state is unknown, close."""
        self._waiter = None
        self._kill()

    def close(self, error: WarmlineError | None = None) -> None:
        """Close the connection (idempotent).

        Args:
            error: Fail a request in flight with this (a slot released under
                it, a pool closed); without one, nobody waits any more.
        """
        waiter = self._waiter
        self._waiter = None
        if self._loop.is_closed():
            self._close_without_loop()
            return
        self._kill()
        if error is not None:
            if waiter is not None and not waiter.done():
                waiter.set_exception(error)
            elif self._stream is not None:
                self._stream._fail(error)

    def _close_without_loop(self) -> None:
        # The loop has ended (a lease collected after asyncio.run returned):
        # the transport cannot schedule anything any more, so close its
        # socket directly instead of leaving it to a ResourceWarning.
        self.alive = self.idle = False
        self._timer = None
        transport = self._transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        raw = getattr(sock, "_sock", sock)  # asyncio wraps it in a TransportSocket
        with contextlib.suppress(Exception):
            raw.close()
        # asyncio's selector transports would still warn "unclosed transport"
        # when collected; the socket is closed, so tell them (uvloop's close
        # their handle themselves).
        if hasattr(transport, "_sock"):
            with contextlib.suppress(Exception):
                transport._sock = None

    # -- internals ---------------------------------------------------------
    def _on_deadline(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        self._expire(
            WriteTimeout("request not sent before the timeout")
            if self._unsent()
            else ReadTimeout("response not complete before the timeout")
        )

    def _expire(self, exc: WarmlineError) -> None:
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self._kill()

    def _unsent(self) -> bool:
        transport = self._transport
        return transport is not None and transport.get_write_buffer_size() > 0

    def _fail(self, exc: WarmlineError) -> None:
        waiter = self._waiter
        self._waiter = None
        self._kill()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _kill(self) -> None:
        self.alive = self.idle = False
        self._cancel_timer()
        transport = self._transport
        if transport is not None and not transport.is_closing():
            # abort(): drop unsent bytes and RST; nothing on this connection
            # may reach anyone any more.
            transport.abort()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _ReadWatch:
    """One timer per event loop that checks every connection with a read
    timeout, instead of a timer per request.

    A ``call_at`` armed and cancelled per request cost a pooled GET ~44 %
    more client CPU (uvloop, c=64, nginx: 7.95 against 5.53 us per request);
    this costs a set insertion and a clock read per request. The price is
    precision: a silent connection is cut between ``read`` and about
    ``read * 1.25`` seconds (a tick is an eighth of the shortest read timeout
    watched; silence is noticed at the first tick after the last chunk).
    """

    __slots__ = ("conns", "handle", "loop", "tick")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.conns: set[ReadTimedConnection] = set()
        self.handle: asyncio.TimerHandle | None = None
        self.tick = math.inf

    def watch(self, conn: ReadTimedConnection, read: float) -> None:
        self.conns.add(conn)
        tick = max(read / 8, 0.005)
        if self.handle is None or tick < self.tick:
            if self.handle is not None:
                self.handle.cancel()
            self.tick = tick
            self.handle = self.loop.call_later(tick, self.check)

    def check(self) -> None:
        self.handle = None
        now = self.loop.time()
        for conn in list(self.conns):
            read = conn.read_timeout
            if conn._waiter is None or read is None:
                self.conns.discard(conn)  # answered (or closed) since
            elif conn.rx != conn._rx_seen:
                conn._rx_seen, conn._quiet_since = conn.rx, now  # bytes came in
            elif now - conn._quiet_since >= read:
                self.conns.discard(conn)
                conn._expire(ReadTimeout(f"no byte received for {read} s (read timeout)"))
        if self.conns and not self.loop.is_closed():
            self.handle = self.loop.call_later(self.tick, self.check)


_WATCHES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _ReadWatch] = (
    weakref.WeakKeyDictionary()
)


async def _as_async(frames: Iterator[bytes] | AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    if isinstance(frames, AsyncIterator):
        async for frame in frames:
            yield frame
    else:
        for frame in frames:
            yield frame


async def _aclose(frames: Iterator[bytes] | AsyncIterator[bytes]) -> None:
    close = getattr(frames, "aclose", None)
    if close is not None:
        await close()
    else:
        getattr(frames, "close", lambda: None)()


class ReadTimedConnection(Connection):
    """A Connection that also enforces ``read_timeout``: the longest gap
    between two received bytes (a silently dropped connection cannot hang a
    request), checked by its loop's :class:`_ReadWatch` from the count of
    received chunks (no clock read per chunk). A subclass, so that a pool
    without a read timeout pays nothing for it in ``send``."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        reader: ResponseReader,
        on_lost: Callable[[Connection], None] | None = None,
    ) -> None:
        super().__init__(loop, reader, on_lost)
        self.rx = 0  # data_received calls so far: progress, without a clock read
        self._rx_seen = 0
        self._quiet_since = 0.0
        watch = _WATCHES.get(loop)
        if watch is None:
            watch = _WATCHES[loop] = _ReadWatch(loop)
        self._watch = watch

    def data_received(self, data: bytes) -> None:
        self.rx += 1
        super().data_received(data)

    def send(
        self, data: bytes, method: str, deadline: float | None
    ) -> asyncio.Future[Response] | None:
        waiter = super().send(data, method, deadline)  # the total's timer, if any
        if waiter is not None:
            read = self.read_timeout
            assert read is not None
            self._rx_seen = self.rx
            self._quiet_since = self._loop.time()
            self._watch.watch(self, read)
        return waiter


class ObservedConnection(Connection):
    """A Connection that reports its close, once, with the reason, to its pool's
    observer (hooks, DEBUG log; :mod:`warmline._pool._observe`). Chosen at open
    time when the pool has one; the plain class pays nothing for it.

    Every way a connection ends goes through ``_kill`` (or ``connection_lost``
    for a peer's close); the methods that know why note the reason first.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        reader: ResponseReader,
        on_lost: Callable[[Connection], None] | None = None,
    ) -> None:
        super().__init__(loop, reader, on_lost)
        self.conn_id = next_conn_id()
        self.observer: Any = None
        self._close_reason: CloseReason | None = None
        self._close_error: BaseException | None = None
        self._reported = False

    def _note(self, reason: CloseReason, error: BaseException | None = None) -> None:
        if self._close_reason is None:
            self._close_reason, self._close_error = reason, error

    def _report(self) -> None:
        if self._reported or self.observer is None or self._transport is None:
            return
        self._reported = True
        reason = self._close_reason
        if reason is None:  # killed by data_received (no keep-alive) or by send()
            reader = self._reader
            keep = reader.keep_alive and not reader.leftover
            reason = CloseReason.PEER_CLOSED if keep else CloseReason.CONNECTION_CLOSE
        self.observer.closed(self, reason, self._close_error)

    def _kill(self) -> None:
        super()._kill()
        self._report()

    def abandon(self) -> None:
        self._note(CloseReason.NOT_REUSABLE)
        super().abandon()

    def _expire(self, exc: WarmlineError) -> None:
        self._note(CloseReason.NOT_REUSABLE, exc)
        super()._expire(exc)

    def _fail(self, exc: WarmlineError) -> None:
        self._note(CloseReason.PROTOCOL_ERROR, exc)
        super()._fail(exc)

    def close(self, error: WarmlineError | None = None) -> None:
        if not self._reported and self.observer is not None:
            self._note(*self.observer.classify(self, error))
        super().close(error)
        self._report()

    def connection_lost(self, exc: Exception | None) -> None:
        self._note(CloseReason.PEER_CLOSED, exc)
        super().connection_lost(exc)
        self._report()


class ObservedReadTimedConnection(ReadTimedConnection, ObservedConnection):
    """An observed connection with a read timeout."""


async def open_connection(
    origin: Origin,
    *,
    tls: ssl.SSLContext | None,
    connect_timeout: float | None,
    reader: ResponseReader,
    on_lost: Callable[[Connection], None] | None = None,
    local_address: LocalAddress = None,
    tcp_keepalive: bool = False,
    read_timeout: float | None = None,
    proxy: Proxy | None = None,
    observer: Any = None,
) -> Connection:
    """Open a connection to ``origin`` (TCP, TLS or Unix socket), maybe via ``proxy``.

    With an ``observer`` (the pool's, see :mod:`warmline._pool._observe`) the
    connection is an :class:`ObservedConnection` that reports its close.

    The proxy's tunnel (if any) opens here, once per connection, within
    ``connect_timeout``; a proxy is ignored for a Unix-socket origin.

    Raises:
        ConnectTimeout: Not connected (handshakes included) within
            ``connect_timeout`` seconds.
        ConnectError: Refused, unreachable, unresolvable, or TLS failed.
        ProxyError: The proxy is unreachable or refused (``status`` set).
    """
    loop = asyncio.get_running_loop()

    cls: type[Connection]
    if observer is None:
        cls = Connection if read_timeout is None else ReadTimedConnection
    else:
        cls = ObservedConnection if read_timeout is None else ObservedReadTimedConnection

    def factory() -> Connection:
        conn = cls(loop, reader, on_lost)
        conn.tcp_keepalive = tcp_keepalive
        conn.read_timeout = read_timeout
        if observer is not None:
            conn.observer = observer  # type: ignore[attr-defined]
        return conn

    if proxy is not None and origin.uds is None:
        # Raises warmline errors only, with the credentials redacted.
        _, proto = await open_aio_transport(
            loop,
            origin,
            proxy=proxy,
            tls=tls,
            connect_timeout=connect_timeout,
            protocol_factory=factory,
            local_address=local_addr(local_address),
        )
        return proto
    kwargs: dict[str, Any] = {}
    if tls is not None:
        kwargs = {"ssl": tls, "server_hostname": origin.host}
    made: list[Connection] = []

    def tracked() -> Connection:
        conn = factory()
        made.append(conn)
        return conn

    try:
        return await _open_direct(loop, tracked, origin, connect_timeout, local_address, kwargs)
    except BaseException:
        # A timeout or a cancellation that lands just as the transport was
        # made (asyncio.timeout's exit, a cancel between the connect and our
        # next line) must not leave that connection open behind our back.
        for conn in made:
            conn.close()
        raise


async def _open_direct(
    loop: asyncio.AbstractEventLoop,
    factory: Callable[[], Connection],
    origin: Origin,
    connect_timeout: float | None,
    local_address: LocalAddress,
    kwargs: dict[str, Any],
) -> Connection:
    try:
        async with asyncio.timeout(connect_timeout):
            if origin.uds is not None:
                _, proto = await loop.create_unix_connection(factory, origin.uds, **kwargs)
            else:
                bind = local_addr(local_address)
                if bind is not None:
                    kwargs["local_addr"] = bind
                proto = await _connect_tcp(loop, factory, origin, connect_timeout, kwargs)
    except TimeoutError as exc:
        raise ConnectTimeout(
            f"not connected within {connect_timeout} s", origin=str(origin)
        ) from exc
    except ssl.SSLError as exc:
        raise ConnectError(describe_tls_error(exc), origin=str(origin)) from exc
    except OSError as exc:
        raise ConnectError(f"cannot connect: {exc}", origin=str(origin)) from exc
    return proto


async def _connect_tcp(
    loop: asyncio.AbstractEventLoop,
    factory: Callable[[], Connection],
    origin: Origin,
    connect_timeout: float | None,
    kwargs: dict[str, Any],
) -> Connection:
    """Connect to the first address of the origin's name that answers, all
    within ``connect_timeout``, each address getting an equal share of the
    time left (as the thread shell does), so a dead first address (a
    blackholed IPv6, say) cannot eat the whole timeout. The name is resolved
    again on every connect.

    Not asyncio's ``happy_eyeballs_delay``: on CPython 3.11 a connect raced
    that way and then cancelled leaves its socket open (measured: a storm of
    1,000 cancelled requests left connections the pools no longer knew), and
    uvloop has no such option.
    """
    if _is_ip(origin.host):
        # An address: nothing to resolve (getaddrinfo would cost a trip
        # through the executor's thread, ~60 us, on every connect).
        _, proto = await loop.create_connection(factory, origin.host, origin.port, **kwargs)
        return proto
    infos = await loop.getaddrinfo(origin.host, origin.port, type=socket.SOCK_STREAM)
    deadline = None if connect_timeout is None else loop.time() + connect_timeout
    error: BaseException = OSError(f"no address for {origin.host}")
    for i, (family, _, _, _, address) in enumerate(infos):
        share = None if deadline is None else (deadline - loop.time()) / (len(infos) - i)
        try:
            async with asyncio.timeout(share):
                _, proto = await loop.create_connection(
                    factory, str(address[0]), int(address[1]), family=family, **kwargs
                )
            return proto
        except (OSError, TimeoutError) as exc:
            error = exc  # ssl.SSLError included: the next address may do
    raise error


def _is_ip(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return True
    return False
