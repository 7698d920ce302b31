"""ClientPool: pre-connected, self-healing HTTP/1.1 slots for asyncio.

The asyncio shell of the pool core (:mod:`warmline._pool`): the core keeps
the slots, the ready stack, the waiter queue and the heal rules; this module
only does the I/O and the waiting, on the pool's event loop: connections are
``asyncio.Protocol`` objects, a waiter is a future, a heal is a task that
sleeps until the core's next attempt. No locks: everything runs on the loop
thread, and a release from any other thread hops onto it.
"""

from __future__ import annotations

import asyncio
import contextlib
from asyncio.events import _get_running_loop
from collections.abc import Coroutine, Generator
from time import monotonic
from types import TracebackType
from typing import TYPE_CHECKING, Any

from warmline._config import PoolConfig, PoolOptions
from warmline._policy import DEFAULT, TimeoutArg
from warmline._pool import Plan, Slot, Waiter, check_timeout
from warmline._pool._attempts import resilient_async
from warmline._pool._observe import aio_observed, aio_stream_observed
from warmline._pool._shell import BUSY, RELEASED_IN_FLIGHT, Lease, OnRelease, PoolShell
from warmline._pool._state import IN_USE, OPENING, READY
from warmline._pool._verbs import Req
from warmline.aio._background import Background
from warmline.aio._connection import Connection, open_connection
from warmline.aio._stream import AioBody, StreamContext
from warmline.errors import (
    ConnectionClosed,
    PoolClosed,
    PoolError,
    PoolTimeout,
    WarmlineError,
    WriteTimeout,
)
from warmline.http11 import Response
from warmline.http11._upload import StreamedBody, not_replayed

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["ClientPool", "ClientSlot"]

_ASlot = Slot[Connection]
ResponseCoro = Coroutine[Any, Any, Response]


class _Waiter(Waiter):
    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[None]) -> None:
        super().__init__()
        self.future = future


class ClientSlot(Lease[Connection, ResponseCoro, StreamContext]):
    """A leased slot of a :class:`ClientPool` (see :class:`~warmline._pool._shell.Lease`).

    Returned by ``try_acquire()`` and ``acquire()``. It may be released (or
    garbage-collected) on any thread; the release is carried out on the
    pool's loop, or, once that loop has ended, just closes the connection.
    """

    __slots__ = ()
    _pool: ClientPool


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


class ClientPool(PoolShell[Connection, ResponseCoro, StreamContext]):
    """Pre-connected, self-healing pool of HTTP/1.1 connections to one origin.

    Make one with ``await ClientPool.connect(url, ...)``; see that method for
    the options. A pool belongs to the event loop that made it: from another
    loop, or after that loop ended, its methods raise PoolError.

    Example:
        >>> async with await ClientPool.connect("http://127.0.0.1:8080") as pool:
        ...     slot = pool.try_acquire()          # never awaits
        ...     async with pool.acquire(timeout=1.0) as slot:
        ...         r = await slot.get("/ticker", params={"symbol": "BTCUSDT"})
    """

    _stream_context = StreamContext
    _observed_fns = (aio_observed, aio_stream_observed)
    _resilient_fn = staticmethod(resilient_async)

    def __init__(self, config: PoolConfig) -> None:
        """Use :meth:`connect`; this only builds the empty pool."""
        if config.spin:
            raise ValueError("spin= is for the thread pool (AtomicClientPool, Client)")
        self._loop = asyncio.get_running_loop()
        self._now = self._loop.time
        super().__init__(config)
        self._background = Background(self)
        # Connects a caller waits for (a cold slot's first use, an inline
        # reconnect): close() cancels them, and their callers get PoolClosed.
        self._connecting: set[asyncio.Task[Any]] = set()
        self._closed_on: set[asyncio.Task[Any]] = set()  # cancelled by close()

    # -- construction ------------------------------------------------------
    @classmethod
    async def connect(cls, url: str, **options: Unpack[PoolOptions]) -> ClientPool:
        """Open ``connections`` (default 8) warm connections to ``url``, all at once.

        Args:
            url: ``http://host[:port]``, ``https://host[:port]`` or
                ``unix:///path.sock``; a path is an error (use base_path).
            **options: The pool's options, the same for ``AtomicClientPool``:
                see :class:`warmline.PoolOptions`.

        Raises:
            ConnectError: Fewer than ``require`` connections opened
                (ConnectTimeout when every attempt timed out; ProxyError
                when the proxy refused, with its ``status``).
            InvalidRequest: A bad URL or header.
            ValueError, TypeError: An option out of range or of the wrong type
                (a bad proxy URL too; its credentials are never shown).
        """
        config = PoolConfig.build(url, **options)
        pool = cls(config)
        await pool._connect_all(config.need)
        return pool

    async def _connect_all(self, need: int) -> None:
        core = self._core
        slots = core.start_connect()
        plan: Plan[Connection] = Plan()
        if need == 0:  # nothing required: every slot opens in the background
            core.open_later(slots, self._loop.time(), plan)
        else:
            results = await asyncio.gather(
                *(self._open_conn(slot) for slot in slots), return_exceptions=True
            )
            error = core.connected(slots, results, need, self._origin, self._loop.time(), plan)
            if error is not None:
                for conn in plan.close:
                    conn.close()
                await self.close()  # and what opened
                raise error
        self._carry_out(plan)
        self._background.start()

    async def _open_for_caller(self, slot: _ASlot, deadline: float | None) -> Connection:
        """Open a connection a request waits for; ends with PoolClosed at close().

        The caller's own task connects (no task of ours: a new connection per
        request would pay two more loop turns); close() cancels it and the
        cancellation comes out as PoolClosed.
        """
        me = asyncio.current_task()
        if me is not None:
            self._connecting.add(me)
        try:
            return await self._open_conn(slot, self._connect_budget(deadline, self._loop.time()))
        except asyncio.CancelledError:
            if me is not None and me in self._closed_on:
                me.uncancel()
                raise PoolClosed("pool closed while connecting", origin=self._origin) from None
            raise
        finally:
            if me is not None:
                self._connecting.discard(me)

    async def _open_conn(self, slot: _ASlot, connect_timeout: TimeoutArg = DEFAULT) -> Connection:
        config = self._config

        def on_lost(conn: Connection) -> None:
            self._on_lost(slot, conn)

        if connect_timeout is DEFAULT:
            connect_timeout = config.connect_timeout
        obs = self._conn_observer()
        started = monotonic()
        conn = await open_connection(
            self.origin,
            **config.connect_options(),
            connect_timeout=connect_timeout,
            reader=config.new_reader() if obs is None else obs.new_reader(),
            on_lost=on_lost,
            observer=obs,
        )
        if obs is not None:
            obs.opened(conn, monotonic() - started)
        return conn

    def _on_lost(self, slot: _ASlot, conn: Connection) -> None:
        # A ready slot whose connection died while idle (server closed it,
        # network reset) heals now, not when the next caller trips over it.
        if conn is slot.conn and not self._loop.is_closed():
            self._decide(self._core.lost, slot, self._loop.time())

    def _carry_out(self, plan: Plan[Connection], error: WarmlineError | None = None) -> None:
        """Do what the core decided: close, wake, start heals."""
        for conn in plan.close:
            conn.close(error)
        for waiter in plan.wake:
            assert isinstance(waiter, _Waiter)
            if not waiter.future.done():
                waiter.future.set_result(None)
        for slot in plan.heal:
            self._background.heal(slot)
        for core in plan.redispatch:  # a client's other pool got a permit
            other: ClientPool = core.shell
            other._decide(core.dispatch)

    # -- loop affinity -------------------------------------------------------
    def _check_loop(self) -> None:
        if _get_running_loop() is not self._loop:
            raise self._wrong_loop()

    def _wrong_loop(self) -> PoolError:
        if self._core.closed:  # closed says more, from whatever loop
            return PoolClosed("pool is closed", origin=self._origin)
        if self._loop.is_closed():
            why = "its event loop is closed (an asyncio.run() that made it has ended)"
        else:
            why = "it belongs to another event loop"
        return PoolError(
            f"this pool cannot be used here: {why}; make one pool per event loop",
            origin=self._origin,
        )

    # -- acquire / release -------------------------------------------------
    def try_acquire(self) -> ClientSlot | None:
        """The warmest ready slot, or None. Never awaits, does no I/O.

        A dead or over-age slot met on the way is sent to reconnect and the
        scan goes on. Unlike ``acquire()``, it may take a slot ahead of
        waiters in ``acquire()``.

        Raises:
            PoolClosed: The pool is closed.
            PoolError: Called outside the pool's event loop.
        """
        if _get_running_loop() is not self._loop:
            raise self._wrong_loop()
        slot = self._pop()
        return None if slot is None else ClientSlot(self, slot)

    def _pop(self) -> _ASlot | None:
        core = self._core
        ready = core.ready
        while ready:
            # core.pop(), inlined: this is every request's first step.
            slot = ready.pop()
            slot.state = IN_USE
            conn = slot.conn
            if conn is not None and conn.idle and not (core.ages and self._aged(slot)):
                return slot
            self._check_loop()
            self._decide(core.discard, slot, self._loop.time())
        if core.closed:
            raise self._count(PoolClosed("pool is closed", origin=self._origin))
        self._check_loop()
        return None

    def _aged(self, slot: _ASlot) -> bool:
        return self._core.aged(slot, self._loop.time())

    def acquire(self, timeout: float | None = None) -> _Acquire:
        """Wait for a slot: ``await pool.acquire()`` or ``async with pool.acquire():``.

        Waiters are served first come, first served, woken by a release or a
        healed slot.

        Raises:
            PoolTimeout: No slot within ``timeout`` seconds.
            PoolClosed: The pool is or got closed.
            PoolError: Called outside the pool's event loop.
        """
        return _Acquire(self, check_timeout(timeout, "timeout"))

    async def _acquire(self, timeout: float | None) -> ClientSlot:
        self._check_loop()
        slot = None if self._core.waiters else self._pop()
        if slot is None:
            slot = await self._wait(timeout)
        return ClientSlot(self, slot)

    async def _wait(self, timeout: float | None, deadline: float | None = None) -> _ASlot:
        core = self._core
        loop = self._loop
        waiter = _Waiter(loop.create_future())
        plan: Plan[Connection] = Plan()
        core.add_waiter(waiter, plan)
        if waiter.error is not None:
            raise self._count(waiter.error)
        self._carry_out(plan)
        if waiter.slot is None:  # not served at once (an empty slot is, on a cold origin)
            await self._sleep_on(waiter, timeout)
        if waiter.error is not None:
            raise self._count(waiter.error)
        slot = waiter.slot
        assert slot is not None
        if slot.state is OPENING:
            await self._open_inline(slot, deadline)
        return slot

    async def _sleep_on(self, waiter: _Waiter, timeout: float | None) -> None:
        core = self._core
        loop = self._loop
        timer = None if timeout is None else loop.call_later(timeout, self._expire, waiter, timeout)
        try:
            await waiter.future
        except asyncio.CancelledError:
            if not core.remove_waiter(waiter) and waiter.slot is not None:
                self._give_back(waiter.slot)  # served, then cancelled
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _expire(self, waiter: _Waiter, timeout: float) -> None:
        if self._core.remove_waiter(waiter):
            waiter.error = PoolTimeout(f"no slot ready within {timeout} s", origin=self._origin)
            if not waiter.future.done():
                waiter.future.set_result(None)

    async def _open_inline(self, slot: _ASlot, deadline: float | None) -> None:
        """Open an empty slot's connection for its caller (a lazy slot's first use)."""
        core = self._core
        try:
            conn = await self._open_for_caller(slot, deadline)
        except BaseException as exc:
            self._decide(core.open_failed, slot, self._loop.time())
            if isinstance(exc, WarmlineError):
                self._count(exc)
            raise
        plan: Plan[Connection] = Plan()
        kept = core.opened(slot, conn, self._loop.time(), plan, keep=True)
        self._carry_out(plan)
        if not kept:
            raise self._count(PoolClosed("pool closed", origin=self._origin))
        if core.keep_warm is not None and not self._background.pinging:
            self._background.schedule_ping()  # a lazy pool's first connection: keep it warm

    def _release(self, slot: _ASlot) -> None:
        core = self._core
        conn = slot.conn
        usable = conn is not None and conn.idle
        if usable and core.fast and not (core.waiters or core.closed):
            # core.push(), inlined (the hot path): back on the stack, warmest
            # on top; the condition is core.fast_release().
            slot.state = READY
            core.ready.append(slot)
            return
        plan: Plan[Connection] = Plan()
        core.release(slot, usable, self._loop.time(), plan)
        # A connection still alive but not idle has a request in flight: it
        # fails now, with the reason, instead of waiting for its timeout.
        busy = conn is not None and conn.alive and not usable
        self._carry_out(plan, PoolError(RELEASED_IN_FLIGHT, origin=self._origin) if busy else None)

    def _release_lease(self, slot: _ASlot) -> None:
        # From the garbage collector too: on the loop's thread, while the
        # loop runs, a release is safe anywhere (it does not await).
        if _get_running_loop() is self._loop:
            self._release(slot)
        else:
            self._release_elsewhere(slot)

    _release_from_gc = _release_lease

    def _release_elsewhere(self, slot: _ASlot) -> None:
        """A release from another thread or loop, or after the loop ended."""
        loop = self._loop
        if not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed at this instant
                loop.call_soon_threadsafe(self._release, slot)
                return
        # The loop is gone: nobody will use this pool again; just close.
        conn = slot.conn
        slot.conn = None
        if conn is not None:
            conn.close()

    # -- requests ----------------------------------------------------------
    async def _request(self, slot: _ASlot, req: Req, lease: object) -> Response:
        # The hot path: build (usually a cache hit), one write, one future.
        # ``lease`` is only held: a lease dropped right after ``lease.get()``
        # returned this coroutine must not be collected, and so released,
        # while its request runs. The loop is checked where slots are handed
        # out (try_acquire, acquire, pool.get); a lease carried to another
        # loop is caught below, when its future cannot be awaited there.
        method = req[0]
        try:
            data = self._writer.build_request(req)
        except WarmlineError as exc:
            self._fail(exc, method, req[1])
            raise  # the exception itself, its chained cause kept
        except StreamedBody:  # an except clause costs nothing until raised
            return await self._request_streamed(slot, req)
        timeout = req[6]
        if timeout is DEFAULT:
            timeout = self._timeout
        elif timeout is not None:
            timeout = check_timeout(timeout, "timeout")
        if timeout is None:
            deadline = None
        elif timeout:
            deadline = self._loop.time() + timeout
        else:  # 0: already expired; sending would run a request nobody waits for
            raise self._fail(WriteTimeout("timeout of 0: nothing was sent"), method, req[1])
        conn = slot.conn
        waiter = None if conn is None else conn.send(data, method, deadline)
        if waiter is None:
            return await self._recover(slot, None, data, method, req[1], deadline)
        try:
            response = await waiter
        except asyncio.CancelledError:
            conn.abandon()  # type: ignore[union-attr]  # it sent the request
            raise
        except WarmlineError as exc:
            return await self._recover(slot, exc, data, method, req[1], deadline)
        except RuntimeError:
            conn.abandon()  # type: ignore[union-attr]
            if _get_running_loop() is not self._loop:
                raise self._fail(self._wrong_loop(), method, req[1]) from None
            raise
        self._stats.requests += 1
        return response

    async def _request_streamed(self, slot: _ASlot, req: Req) -> Response:
        """A streamed body: the head, then the pieces, then the response.

        Never sent twice: a stale connection's error is raised (with a note
        saying why it was not retried) instead of the core's one retry.
        """
        method, path = req[0], req[1]
        try:
            head, upload, deadline = self._upload_setup(req)
            conn = await self._idle_conn(slot, deadline)
            waiter = conn.send(head, method, deadline)
            if waiter is None:
                raise ConnectionClosed("connection closed before the request was sent")
            try:
                await conn.send_body(upload, waiter)
                response = await waiter
            except asyncio.CancelledError:
                conn.abandon()
                raise
            except WarmlineError as exc:
                raise not_replayed(exc) from exc.__cause__
        except WarmlineError as exc:
            self._fail(exc, method, path)
            raise  # the exception itself, its chained cause kept
        self._stats.requests += 1
        return response

    async def _idle_conn(self, slot: _ASlot, deadline: float | None) -> Connection:
        """The slot's connection, ready for a request: reopened if closed."""
        conn = slot.conn
        if conn is None or not conn.idle:
            if conn is not None and conn.alive:
                raise PoolError(BUSY)
            conn = await self._reopen(slot, deadline)
        return conn

    async def _recover(
        self,
        slot: _ASlot,
        exc: WarmlineError | None,
        data: bytes,
        method: str,
        path: str,
        deadline: float | None,
    ) -> Response:
        """Off the hot path: a failed request, or a slot whose connection is gone.

        ``exc`` None means the connection was not idle: closed (the previous
        response ended it: open a new one and send), or busy with another
        request (refused). A stale connection's idempotent request is sent
        once more on a fresh one (the core's rule); anything else is raised,
        counted and given its context.
        """
        try:
            if exc is not None:
                if not self._core.retry_stale(exc, method):
                    raise exc
            elif slot.conn is not None and slot.conn.alive:
                raise PoolError(BUSY)
            conn = await self._reopen(slot, deadline)
            waiter = conn.send(data, method, deadline)
            if waiter is None:  # closed between connect and now
                raise ConnectionClosed("connection closed before the request was sent")
            try:
                response = await waiter
            except asyncio.CancelledError:
                conn.abandon()
                raise
        except WarmlineError as err:
            self._fail(err, method, path)
            raise  # the exception itself, its chained cause kept
        self._stats.requests += 1
        return response

    async def _reopen(self, slot: _ASlot, deadline: float | None) -> Connection:
        self._before_reopen(slot)
        try:
            conn = await self._open_for_caller(slot, deadline)
        except WarmlineError:
            self._stats.reconnect_failures += 1
            raise
        return self._reopened(slot, conn)

    async def _call(self, req: Req, acquire_timeout: TimeoutArg) -> Response:
        # _take(), inlined: a coroutine less per request (callgrind: 1.3k
        # instructions of pool.get's 35k).
        if _get_running_loop() is not self._loop:
            raise self._wrong_loop()
        slot = None if self._core.waiters else self._pop()
        if slot is None:
            slot = await self._wait(self._acquire_wait(req[6], acquire_timeout))
        try:
            return await self._request(slot, req, None)
        finally:
            self._release(slot)

    async def _take(self, timeout: TimeoutArg, acquire_timeout: TimeoutArg) -> _ASlot:
        """A slot for the pool's own request (``pool.get()``), on its loop."""
        if _get_running_loop() is not self._loop:
            raise self._wrong_loop()
        slot = None if self._core.waiters else self._pop()
        if slot is None:
            slot = await self._wait(self._acquire_wait(timeout, acquire_timeout))
        return slot

    # -- streams -----------------------------------------------------------
    async def _stream_call(self, req: Req, acquire_timeout: TimeoutArg) -> Response:
        slot = await self._take(req[6], acquire_timeout)
        try:
            return await self._open_stream(slot, req, lambda: self._release(slot))
        except BaseException:
            self._release(slot)
            raise

    async def _open_stream(self, slot: _ASlot, req: Req, on_release: OnRelease) -> Response:
        data, upload, deadline, read_timeout = self._stream_setup(req)
        first = True
        while True:
            try:
                conn = await self._idle_conn(slot, deadline)
                body = AioBody(
                    conn, read_timeout=read_timeout, on_release=on_release, **self._body_options
                )
                return self._streamed(await body.start(data, req[0], deadline, upload), body)
            except WarmlineError as exc:
                self._stream_again(exc, req, first, upload)  # or raises it, counted
            first = False

    # -- closing -----------------------------------------------------------
    async def close(self) -> None:
        """Close every connection, stop healing, wake waiters with PoolClosed.

        Requests in flight fail at once with PoolClosed; no connection is
        opened after this. Leases released later just find their slot closed.
        """
        core = self._core
        if core.closed:
            return
        plan: Plan[Connection] = Plan()
        in_flight = core.close(plan)
        closed = PoolClosed("pool closed", origin=self._origin)
        for conn in in_flight:
            conn.close(closed)
        self._carry_out(plan)
        for task in list(self._connecting):  # callers' tasks: they end with PoolClosed
            self._closed_on.add(task)
            task.cancel()
        await self._background.stop()

    async def __aenter__(self) -> ClientPool:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
