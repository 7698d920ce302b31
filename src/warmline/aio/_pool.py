"""ClientPool: pre-connected, self-healing HTTP/1.1 slots for asyncio.

A pool owns N slots; each slot owns one keep-alive connection and its response
reader (the request writer, with its cache of built requests, is shared by the
pool's slots). Ready slots sit on a LIFO stack, so the warmest connection goes
out first. ``try_acquire()`` never awaits; ``acquire()`` waits in a FIFO that a
release or a healed slot wakes at once. A dead slot is healed in the background
with jittered exponential backoff until the pool closes.

Everything here runs on the event loop thread: no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Coroutine, Generator
from types import TracebackType
from typing import Any, Final

from warmline._config import PoolConfig
from warmline._policy import (
    DEFAULT,
    IDEMPOTENT_METHODS,
    Backoff,
    FailureLog,
    PoolStats,
    StatsCounters,
    TimeoutArg,
)
from warmline.aio._connection import Connection, open_connection
from warmline.errors import (
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    PoolClosed,
    PoolError,
    PoolTimeout,
    WarmlineError,
)
from warmline.http11 import (
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_MAX_HEAD_SIZE,
    DEFAULT_MAX_HEADERS,
    Response,
)
from warmline.http11._writer import ContentArg, HeadersArg, ParamsArg

__all__ = ["ClientPool", "ClientSlot"]

# A connection that stayed up this long before dying proves the server works
# (an idle close by a keep-alive timeout), even if it never served a request.
_PROVEN_AFTER_S: Final = 1.0

_READY: Final = 0
_IN_USE: Final = 1
_HEALING: Final = 2
_CLOSED: Final = 3


class _Slot:
    """Pool-internal state of one slot; users hold a ClientSlot lease instead."""

    __slots__ = ("conn", "failures", "idle_since", "pool", "state")

    def __init__(self, pool: ClientPool) -> None:
        self.pool = pool
        self.conn: Connection | None = None
        self.state = _HEALING
        self.idle_since = 0.0
        # Reconnects in a row whose connection failed, or died without serving
        # a response; the next attempt waits Backoff.delay(failures).
        self.failures = 0

    def on_conn_lost(self, conn: Connection) -> None:
        # Called by the protocol when its connection ends. A ready slot whose
        # connection died while idle (server closed it, network reset) is
        # healed now, not when the next caller trips over it.
        if conn is self.conn and self.state == _READY:
            self.pool._evict_ready(self)


class ClientSlot:
    """A leased slot: send requests on one warm connection, then release.

    Returned by ``try_acquire()`` and ``acquire()``. Use it as a context
    manager (``with slot:`` releases on exit) or call ``release()``. After
    release, the lease is spent: using it again raises PoolError.
    """

    __slots__ = ("_slot",)

    def __init__(self, slot: _Slot) -> None:
        self._slot: _Slot | None = slot

    def __repr__(self) -> str:
        s = self._slot
        return "<ClientSlot released>" if s is None else f"<ClientSlot {s.pool.origin}>"

    def __enter__(self) -> ClientSlot:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __del__(self) -> None:
        # A lease dropped without release() must not drain the pool.
        if self._slot is not None:
            with contextlib.suppress(Exception):
                self.release()

    def release(self) -> None:
        """Return the slot to its pool (idempotent)."""
        slot = self._slot
        if slot is not None:
            self._slot = None
            slot.pool._release(slot)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> Coroutine[Any, Any, Response]:
        """Send one request on this slot's connection; await the response.

        Args:
            method: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS.
            path: Absolute path (``/...``), appended to the pool's base_path.
            params: Query parameters, percent-encoded.
            headers: Per-request headers (replace defaults of the same name).
            content: Raw body. json: Body serialised as JSON.
            timeout: Seconds for the whole request; None for none; the pool's
                ``timeout`` when not given.

        Raises:
            ReadTimeout, WriteTimeout, ConnectionClosed, ProtocolError,
            ResponseTooLarge, InvalidRequest, ConnectError.
        """
        return self._send(method, path, params, headers, content, json, timeout)

    def _send(
        self,
        method: str,
        path: str,
        params: ParamsArg | None,
        headers: HeadersArg | None,
        content: ContentArg | None,
        json: Any,
        timeout: TimeoutArg,
    ) -> Coroutine[Any, Any, Response]:
        # A plain method returning the pool's coroutine: one coroutine frame
        # per request instead of one per layer.
        slot = self._slot
        if slot is None:
            raise PoolError("this slot was released; acquire a new one")
        return slot.pool._request(slot, method, path, params, headers, content, json, timeout, self)

    # The verbs spell their keywords out and pass them on by position:
    # forwarding **kwargs costs ~0.4 us per call on CPython 3.11 (timeit),
    # several percent of a whole request.
    def get(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> Coroutine[Any, Any, Response]:
        """``request("GET", ...)``."""
        return self._send("GET", path, params, headers, content, json, timeout)

    def head(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> Coroutine[Any, Any, Response]:
        """``request("HEAD", ...)``."""
        return self._send("HEAD", path, params, headers, content, json, timeout)

    def post(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> Coroutine[Any, Any, Response]:
        """``request("POST", ...)``."""
        return self._send("POST", path, params, headers, content, json, timeout)

    def put(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> Coroutine[Any, Any, Response]:
        """``request("PUT", ...)``."""
        return self._send("PUT", path, params, headers, content, json, timeout)

    def patch(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> Coroutine[Any, Any, Response]:
        """``request("PATCH", ...)``."""
        return self._send("PATCH", path, params, headers, content, json, timeout)

    def delete(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> Coroutine[Any, Any, Response]:
        """``request("DELETE", ...)``."""
        return self._send("DELETE", path, params, headers, content, json, timeout)

    def options(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> Coroutine[Any, Any, Response]:
        """``request("OPTIONS", ...)``."""
        return self._send("OPTIONS", path, params, headers, content, json, timeout)


class _Acquire:
    """What ``pool.acquire()`` returns: awaitable, and an async context manager."""

    __slots__ = ("_lease", "_pool", "_timeout")

    def __init__(self, pool: ClientPool, timeout: float | None) -> None:
        self._pool = pool
        self._timeout = timeout
        self._lease: ClientSlot | None = None

    def __await__(self) -> Generator[Any, None, ClientSlot]:
        return self._pool._acquire(self._timeout).__await__()

    async def __aenter__(self) -> ClientSlot:
        self._lease = await self._pool._acquire(self._timeout)
        return self._lease

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._lease is not None:
            self._lease.release()
            self._lease = None


class ClientPool:
    """Pre-connected, self-healing pool of HTTP/1.1 connections to one origin.

    Make one with ``await ClientPool.connect(url, ...)``; see that method for
    the options. All methods must be called from the event loop that made it.

    Example:
        >>> async with await ClientPool.connect("http://127.0.0.1:8080") as pool:
        ...     slot = pool.try_acquire()          # never awaits
        ...     async with pool.acquire(timeout=1.0) as slot:
        ...         r = await slot.get("/ticker", params={"symbol": "BTCUSDT"})
    """

    def __init__(self, config: PoolConfig) -> None:
        """Use :meth:`connect`; this only builds the empty pool."""
        self._config = config
        self.origin = config.origin
        # Copied out of the config: read on every request.
        self._writer = config.writer
        self._tls = config.tls
        self._connect_timeout = config.connect_timeout
        self._timeout = config.timeout
        self._backoff = config.backoff
        self._idle_timeout = config.idle_timeout
        self._retry_stale = config.retry_stale
        self._loop = asyncio.get_running_loop()
        self._slots = [_Slot(self) for _ in range(config.connections)]
        self._ready: list[_Slot] = []
        self._waiters: deque[asyncio.Future[_Slot]] = deque()
        self._healing: set[asyncio.Task[None]] = set()
        self._stats = StatsCounters()
        self._in_use = 0
        self._closed = False
        self._failure_log = FailureLog()
        self._sweeper: asyncio.TimerHandle | None = None

    # -- construction ------------------------------------------------------
    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        base_path: str = "",
        headers: HeadersArg | None = None,
        connections: int = 8,
        tls: ssl.SSLContext | bool | None = None,
        uds: str | None = None,
        connect_timeout: float | None = 5.0,
        timeout: float | None = None,
        reconnect: Backoff | None = None,
        idle_timeout: float | None = None,
        retry_stale: bool = True,
        require: int | None = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        max_head_size: int = DEFAULT_MAX_HEAD_SIZE,
        max_headers: int = DEFAULT_MAX_HEADERS,
        user_agent: str | None = None,
    ) -> ClientPool:
        """Open ``connections`` warm connections to ``url``, all at once.

        Args:
            url: ``http://host[:port]``, ``https://host[:port]`` or
                ``unix:///path.sock``; a path is an error (use base_path).
            base_path: Prefix of every request path, e.g. ``"/api/v3"``.
            headers: Default headers, validated and serialised once.
            connections: Number of slots.
            tls: None (verified with the system CA store for https), or an
                ``ssl.SSLContext`` of yours; False with https is an error.
            uds: Connect through this Unix socket (Host comes from ``url``).
            connect_timeout: Seconds to open one connection (TLS included).
            timeout: Default seconds for a whole request; None for none.
            reconnect: Backoff policy for healing dead slots.
            idle_timeout: Reconnect a slot idle longer than this before reuse
                (set it below the server's keep-alive timeout).
            retry_stale: Re-send an idempotent request once on a fresh
                connection when its kept-alive connection turned out closed
                before any response byte.
            require: Fail unless at least this many connect (default: all);
                the others heal in the background.
            max_body_size, max_head_size, max_headers: Response limits.
            user_agent: User-Agent header; None for warmline's default.

        Raises:
            ConnectError: Fewer than ``require`` connections opened.
            InvalidRequest: A bad URL, header or option.
        """
        config = PoolConfig.build(
            url,
            base_path=base_path,
            headers=headers,
            connections=connections,
            tls=tls,
            uds=uds,
            connect_timeout=connect_timeout,
            timeout=timeout,
            reconnect=reconnect,
            idle_timeout=idle_timeout,
            retry_stale=retry_stale,
            require=require,
            max_body_size=max_body_size,
            max_head_size=max_head_size,
            max_headers=max_headers,
            user_agent=user_agent,
        )
        pool = cls(config)
        await pool._connect_all(config.need)
        return pool

    async def _connect_all(self, need: int) -> None:
        results = await asyncio.gather(
            *(self._open(slot) for slot in self._slots), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if len(self._slots) - len(failures) < need:
            await self.close()
            first = failures[0]
            if not isinstance(first, Exception):
                raise first
            # All timed out: say so with the class, so callers catching
            # ConnectTimeout see it (it is also a ConnectError).
            timed_out = all(isinstance(f, ConnectTimeout) for f in failures)
            reason = first.message if isinstance(first, WarmlineError) else str(first)
            raise (ConnectTimeout if timed_out else ConnectError)(
                f"{len(self._slots) - len(failures)} of {len(self._slots)} connections "
                f"opened, {need} required: {reason}",
                origin=str(self.origin),
            ) from first
        for slot, result in zip(self._slots, results, strict=True):
            if isinstance(result, BaseException):
                self._heal(slot)
            else:
                self._put_ready(slot)
        if self._idle_timeout is not None:
            self._schedule_sweep()

    def _schedule_sweep(self) -> None:
        assert self._idle_timeout is not None
        self._sweeper = self._loop.call_later(self._idle_timeout / 2, self._sweep)

    def _sweep(self) -> None:
        # Reconnect ready slots that sat idle past idle_timeout now, in the
        # background, so that try_acquire finds them fresh instead of stale.
        if self._closed:
            return
        assert self._idle_timeout is not None
        horizon = self._loop.time() - self._idle_timeout
        for slot in [s for s in self._ready if s.idle_since < horizon]:
            self._evict_ready(slot)
        self._schedule_sweep()

    async def _open(self, slot: _Slot, connect_timeout: TimeoutArg = DEFAULT) -> None:
        reader = self._config.new_reader()
        slot.conn = await open_connection(
            self.origin,
            tls=self._tls,
            connect_timeout=self._connect_timeout
            if connect_timeout is DEFAULT
            else connect_timeout,
            reader=reader,
            on_lost=slot.on_conn_lost,
        )

    # -- acquire / release -------------------------------------------------
    def try_acquire(self) -> ClientSlot | None:
        """The warmest ready slot, or None. Never awaits, does no I/O.

        A dead or over-idle slot met on the way is sent to reconnect and the
        scan goes on.
        """
        slot = self._pop_ready()
        return None if slot is None else ClientSlot(slot)

    def _pop_ready(self) -> _Slot | None:
        ready = self._ready
        idle_timeout = self._idle_timeout
        while ready:
            slot = ready.pop()
            conn = slot.conn
            if (
                conn is not None
                and conn.idle
                and (idle_timeout is None or self._loop.time() - slot.idle_since <= idle_timeout)
            ):
                slot.state = _IN_USE
                self._in_use += 1
                return slot
            self._heal(slot)
        return None

    def acquire(self, timeout: float | None = None) -> _Acquire:
        """Wait for a slot: ``await pool.acquire()`` or ``async with pool.acquire():``.

        Waiters are served first come, first served, woken by a release or a
        healed slot.

        Raises:
            PoolTimeout: No slot within ``timeout`` seconds.
            PoolClosed: The pool is or got closed.
        """
        return _Acquire(self, timeout)

    async def _acquire(self, timeout: float | None) -> ClientSlot:
        slot = self._pop_ready()
        if slot is None:
            slot = await self._wait_for_slot(timeout)
        return ClientSlot(slot)

    async def _wait_for_slot(self, timeout: float | None) -> _Slot:
        if self._closed:
            raise PoolClosed("pool is closed", origin=str(self.origin))
        self._stats.acquire_waits += 1
        waiter: asyncio.Future[_Slot] = self._loop.create_future()
        self._waiters.append(waiter)
        timer = None
        if timeout is not None:
            timer = self._loop.call_later(timeout, self._expire, waiter, timeout)
        try:
            return await waiter
        except asyncio.CancelledError:
            # Cancelled after a slot was handed over: give it back.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release(waiter.result())
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _expire(self, waiter: asyncio.Future[_Slot], timeout: float) -> None:
        if not waiter.done():
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
            waiter.set_exception(
                PoolTimeout(f"no slot ready within {timeout} s", origin=str(self.origin))
            )

    def _release(self, slot: _Slot) -> None:
        if slot.state != _IN_USE:
            return
        self._in_use -= 1
        conn = slot.conn
        if (
            conn is not None
            and conn.idle
            and not self._waiters
            and not self._closed
            and self._idle_timeout is None
        ):
            # The hot path: back on the stack, warmest on top.
            slot.state = _READY
            self._ready.append(slot)
        elif self._closed:
            slot.state = _CLOSED
            if conn is not None:
                conn.close()
        elif conn is None or not conn.idle:
            # A response not fully read, a cancelled or failed request, or a
            # connection the server closed: never reused.
            self._heal(slot)
        else:
            self._put_ready(slot)

    def _put_ready(self, slot: _Slot) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                slot.state = _IN_USE
                self._in_use += 1
                waiter.set_result(slot)
                return
        slot.state = _READY
        if self._idle_timeout is not None:
            slot.idle_since = self._loop.time()
        self._ready.append(slot)

    def _evict_ready(self, slot: _Slot) -> None:
        with contextlib.suppress(ValueError):
            self._ready.remove(slot)
        self._heal(slot)

    # -- requests ----------------------------------------------------------
    async def _request(
        self,
        slot: _Slot,
        method: str,
        path: str,
        params: ParamsArg | None,
        headers: HeadersArg | None,
        content: ContentArg | None,
        json: Any,
        timeout: TimeoutArg,
        lease: ClientSlot | None,
    ) -> Response:
        # The hot path: build (usually a cache hit), one write, one future.
        # ``lease`` is only held: a lease dropped right after ``lease.get()``
        # returned this coroutine must not be collected, and so released,
        # while its request runs.
        try:
            data = self._writer.build(
                method, path, params=params, headers=headers, content=content, json=json
            )
        except WarmlineError as exc:
            self._stats.error(exc)
            exc.with_context(origin=str(self.origin), method=method, path=path)
            raise
        if timeout is DEFAULT:
            timeout = self._timeout
        deadline = None if timeout is None else self._loop.time() + timeout
        conn = slot.conn
        waiter = None if conn is None else conn.send(data, method, deadline)
        if waiter is None:
            return await self._recover(slot, None, data, method, path, deadline)
        try:
            response = await waiter
        except asyncio.CancelledError:
            assert conn is not None  # it sent the request
            conn.abandon()  # bytes were written: the connection state is unknown
            raise
        except WarmlineError as exc:
            return await self._recover(slot, exc, data, method, path, deadline)
        self._stats.requests += 1
        return response

    async def _recover(
        self,
        slot: _Slot,
        exc: WarmlineError | None,
        data: bytes,
        method: str,
        path: str,
        deadline: float | None,
    ) -> Response:
        """Off the hot path: a failed request, or a slot whose connection is gone.

        ``exc`` None means the previous response on this lease closed the
        connection: open a new one and send. A ConnectionClosed before any
        response byte on an idempotent request is sent once more on a fresh
        connection (RFC 9112 §9.3.1); everything else is raised, counted and
        given its context.
        """
        try:
            if exc is not None:
                if not (
                    isinstance(exc, ConnectionClosed)
                    and not exc.received_any
                    and self._retry_stale
                    and method.upper() in IDEMPOTENT_METHODS
                ):
                    raise exc
                self._stats.stale_retries += 1
            await self._reopen(slot, deadline)
            conn = slot.conn
            assert conn is not None
            waiter = conn.send(data, method, deadline)
            if waiter is None:  # closed between connect and now
                raise ConnectionClosed("connection closed before the request was sent")
            try:
                response = await waiter
            except asyncio.CancelledError:
                conn.abandon()
                raise
        except WarmlineError as err:
            self._stats.error(err)
            err.with_context(origin=str(self.origin), method=method, path=path)
            raise
        self._stats.requests += 1
        return response

    async def _reopen(self, slot: _Slot, deadline: float | None) -> None:
        if slot.conn is not None:
            slot.conn.close()
        timeout: TimeoutArg = DEFAULT
        if deadline is not None:
            # The request's deadline bounds its reconnect too.
            left = deadline - self._loop.time()
            if self._connect_timeout is None or left < self._connect_timeout:
                timeout = max(left, 0.0)
        try:
            await self._open(slot, timeout)
        except WarmlineError:
            self._stats.reconnect_failures += 1
            raise
        self._stats.reconnects += 1

    # -- healing -----------------------------------------------------------
    def _heal(self, slot: _Slot) -> None:
        conn = slot.conn
        if conn is not None:
            lived = self._loop.time() - conn.opened_at
            if conn.served or conn.alive or lived >= _PROVEN_AFTER_S:
                slot.failures = 0  # it worked, or we are recycling a live one
            else:
                # Died at once without serving anything: a server that accepts
                # and drops must meet the backoff, not a reconnect loop.
                slot.failures += 1
            conn.close()
        if self._closed:
            slot.state = _CLOSED
            return
        slot.state = _HEALING
        task = self._loop.create_task(self._heal_loop(slot))
        self._healing.add(task)
        task.add_done_callback(self._healing.discard)

    async def _heal_loop(self, slot: _Slot) -> None:
        failures = slot.failures
        while not self._closed:
            delay = self._backoff.delay(failures)
            if delay:
                await asyncio.sleep(delay)
                if self._closed:
                    break
            try:
                await self._open(slot)
            except WarmlineError as exc:
                failures += 1
                self._stats.reconnect_failures += 1
                self._failure_log.failure(self.origin, exc, failures)
                continue
            slot.failures = failures
            self._stats.reconnects += 1
            if self._closed:
                break
            self._put_ready(slot)
            return
        slot.state = _CLOSED
        if slot.conn is not None:
            slot.conn.close()

    # -- convenience -------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
        acquire_timeout: TimeoutArg = DEFAULT,
    ) -> Coroutine[Any, Any, Response]:
        """Acquire a slot, send one request, release it. See ClientSlot.request.

        Args:
            acquire_timeout: Seconds to wait for a ready slot; by default the
                request's ``timeout`` (so a pool whose server is down fails in
                bounded time when a timeout is set).
        """
        return self._call(method, path, params, headers, content, json, timeout, acquire_timeout)

    async def _call(
        self,
        method: str,
        path: str,
        params: ParamsArg | None,
        headers: HeadersArg | None,
        content: ContentArg | None,
        json: Any,
        timeout: TimeoutArg,
        acquire_timeout: TimeoutArg,
    ) -> Response:
        slot = self._pop_ready()
        if slot is None:
            if acquire_timeout is DEFAULT:
                acquire_timeout = self._timeout if timeout is DEFAULT else timeout
            slot = await self._wait_for_slot(acquire_timeout)
        try:
            return await self._request(
                slot, method, path, params, headers, content, json, timeout, None
            )
        finally:
            self._release(slot)

    # Explicit verbs, for the reason given at ClientSlot's.
    def get(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
        acquire_timeout: TimeoutArg = DEFAULT,
    ) -> Coroutine[Any, Any, Response]:
        """``request("GET", ...)``."""
        return self._call("GET", path, params, headers, content, json, timeout, acquire_timeout)

    def head(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
        acquire_timeout: TimeoutArg = DEFAULT,
    ) -> Coroutine[Any, Any, Response]:
        """``request("HEAD", ...)``."""
        return self._call("HEAD", path, params, headers, content, json, timeout, acquire_timeout)

    def post(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
        acquire_timeout: TimeoutArg = DEFAULT,
    ) -> Coroutine[Any, Any, Response]:
        """``request("POST", ...)``."""
        return self._call("POST", path, params, headers, content, json, timeout, acquire_timeout)

    def put(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
        acquire_timeout: TimeoutArg = DEFAULT,
    ) -> Coroutine[Any, Any, Response]:
        """``request("PUT", ...)``."""
        return self._call("PUT", path, params, headers, content, json, timeout, acquire_timeout)

    def patch(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
        acquire_timeout: TimeoutArg = DEFAULT,
    ) -> Coroutine[Any, Any, Response]:
        """``request("PATCH", ...)``."""
        return self._call("PATCH", path, params, headers, content, json, timeout, acquire_timeout)

    def delete(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
        acquire_timeout: TimeoutArg = DEFAULT,
    ) -> Coroutine[Any, Any, Response]:
        """``request("DELETE", ...)``."""
        return self._call("DELETE", path, params, headers, content, json, timeout, acquire_timeout)

    def options(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
        acquire_timeout: TimeoutArg = DEFAULT,
    ) -> Coroutine[Any, Any, Response]:
        """``request("OPTIONS", ...)``."""
        return self._call("OPTIONS", path, params, headers, content, json, timeout, acquire_timeout)

    # -- introspection -----------------------------------------------------
    @property
    def available(self) -> int:
        """Slots ready now (a dead one among them is found on acquire)."""
        return len(self._ready)

    @property
    def size(self) -> int:
        """Number of slots."""
        return len(self._slots)

    @property
    def closed(self) -> bool:
        return self._closed

    def stats(self) -> PoolStats:
        """A snapshot of the counters and the current slot states."""
        return self._stats.snapshot(
            ready=len(self._ready),
            in_use=self._in_use,
            reconnecting=len(self._healing),
            size=len(self._slots),
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<ClientPool {self.origin} {state}: {len(self._ready)} ready, "
            f"{self._in_use} in use, {len(self._healing)} reconnecting>"
        )

    # -- closing -----------------------------------------------------------
    async def close(self) -> None:
        """Close every connection, stop healing, wake waiters with PoolClosed."""
        if self._closed:
            return
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(PoolClosed("pool closed", origin=str(self.origin)))
        tasks = list(self._healing)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._ready.clear()
        for slot in self._slots:
            if slot.state != _IN_USE:
                slot.state = _CLOSED
                if slot.conn is not None:
                    slot.conn.close()

    async def __aenter__(self) -> ClientPool:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
