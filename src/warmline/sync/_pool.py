"""AtomicClientPool: pre-connected, self-healing HTTP/1.1 slots for threads.

The thread shell of the pool core (:mod:`warmline._pool`): the same options,
methods and semantics as :class:`warmline.ClientPool`, on blocking sockets,
safe to share between threads. The core decides; this module does the I/O,
the blocking and the locking.

Concurrency design
------------------

Hot path (a slot is ready, nobody waits): ``try_acquire`` is one
``list.pop()`` and release one ``list.append()`` plus attribute reads. No
lock is taken. What this relies on from the GIL:

* ``list.pop()`` and ``list.append()`` are atomic: two threads never pop the
  same slot, and a slot is never lost.
* Bytecodes execute in one global order (sequential consistency), which makes
  the lost-wakeup argument below hold for plain attribute and list accesses.

Slow path (waiting, waking, healing, closing): one ``threading.Lock`` around
the core's bookkeeping only; what the core decides (close sockets, wake
waiters, wake the healer) is carried out after the lock is let go, so no
syscall runs under it. A release appends the slot *then* checks for
waiters; a waiter registers itself *then* looks for a ready slot, both under
the lock. Whichever runs second sees the other: no lost wakeup, and no
waiter sleeps while a slot is ready. Waiters are served FIFO, each blocked on
its own lock, which the releaser hands the slot through.

The lock is not re-entrant, and nothing re-enters it: a lease collected by the
garbage collector (which may run inside a locked section on any thread) does
not take the lock; its slot is queued and the next holder of the lock, or
the collector itself when the lock is free, finishes the release.

Free-threaded CPython (3.13t): list operations stay atomic (per-object locks),
but the "append, then check the waiters" pattern needs a store-load fence
that two different per-object locks do not give. The release path would take
the pool lock around its append and check; measure before choosing.

Background: one daemon worker thread per pool reconnects dead slots with
:class:`~warmline.Backoff` and watches every idle connection with epoll
(``EPOLLRDHUP``, edge-triggered: it wakes when a peer closes, never for a
response), so a connection a server closes for idleness is replaced at once
and ``try_acquire()`` finds a warm slot. It holds the pool only weakly: a
pool dropped without ``close()`` lets its worker exit.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import weakref
from collections.abc import Callable
from time import monotonic
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from warmline._config import PoolConfig, PoolOptions
from warmline._policy import (
    DEFAULT,
    FailureLog,
    TimeoutArg,
)
from warmline._pool import Plan, Slot, Waiter, check_timeout, connect_verdict
from warmline._pool._observe import sync_call_hooked, sync_request_hooked, sync_stream_hooked
from warmline._pool._shell import RELEASED_IN_FLIGHT, Lease, PoolShell
from warmline._pool._state import IN_USE, OPENING
from warmline.errors import (
    ConnectError,
    ConnectionClosed,
    InvalidRequest,
    PoolClosed,
    PoolError,
    PoolTimeout,
    WarmlineError,
    WriteTimeout,
)
from warmline.http11 import (
    Response,
)
from warmline.http11._upload import STREAM_UPLOAD_UNSUPPORTED, StreamedBody, not_replayed
from warmline.http11._writer import ContentArg, HeadersArg, ParamsArg
from warmline.sync._connection import Connection, open_connection
from warmline.sync._stream import SyncBody

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["AtomicClientPool", "AtomicClientSlot"]

_TSlot = Slot[Connection]

# The worker looks at its pool at least this often (exits once it is gone).
_WORKER_TICK_S: Final = 1.0
# close() waits this long for the worker; one inside a connect is abandoned
# (it closes what it opens once it sees the pool closed).
_CLOSE_JOIN_S: Final = 0.25
# epoll: wake on a peer's close only (not on data), once per close.
_WATCH_EVENTS: Final = getattr(select, "EPOLLRDHUP", 0) | getattr(select, "EPOLLET", 0)


# Every pool of this process, for fork(): the child drops what it inherited.
_POOLS: weakref.WeakSet[AtomicClientPool] = weakref.WeakSet()


class _Waiter(Waiter):
    """One thread blocked in acquire(), on its own lock until served."""

    __slots__ = ("lock",)

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.lock.acquire()  # held until the waiter is served


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


class AtomicClientSlot(Lease[Connection, Response]):
    """A leased slot of an :class:`AtomicClientPool` (see
    :class:`~warmline._pool._shell.Lease`), released from any thread. A lease
    garbage-collected without release returns its slot.
    """

    __slots__ = ()
    _pool: AtomicClientPool

    def __del__(self) -> None:
        # A lease dropped without release() must not drain the pool. The
        # collector may run anywhere, even inside the pool's locked section.
        slot = self._slot
        if slot is not None:
            self._slot = None
            with contextlib.suppress(Exception):
                self._pool._release_from_gc(slot)

    def stream(
        self,
        method: str,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> StreamContext:
        """A streamed request on this slot: ``with slot.stream("GET", path) as r:``.

        Arguments as for :meth:`request`; see :meth:`AtomicClientPool.stream`.
        The slot stays leased when the stream ends.
        """
        slot = self._slot
        if slot is None:
            raise PoolError("this slot was released; acquire a new one")
        pool = self._pool
        up = method.upper()
        if pool._observer is not None and pool._observer.requests_on:
            return StreamContext(
                lambda: sync_stream_hooked(
                    pool, slot, up, path, params, headers, content, json, timeout, DEFAULT
                )
            )
        return StreamContext(
            lambda: pool._open_stream(slot, up, path, params, headers, content, json, timeout, None)
        )

    def release(self) -> None:
        """Return the slot to its pool (idempotent)."""
        slot = self._slot
        if slot is not None:
            self._slot = None
            self._pool._release(slot)


class AtomicClientPool(PoolShell[Connection, Response]):
    """Thread-safe, pre-connected, self-healing pool of HTTP/1.1 connections.

    Make one with ``AtomicClientPool.connect(url, ...)``; see that method for
    the options. Any thread may acquire and release slots. A pool survives
    ``os.fork()``: the child drops the connections it inherited (the
    parent's stay open) and reconnects its own.

    Example:
        >>> with AtomicClientPool.connect("http://127.0.0.1:8080") as pool:
        ...     slot = pool.try_acquire()          # never blocks; None if none ready
        ...     with pool.acquire(timeout=1.0) as slot:
        ...         r = slot.get("/ticker", params={"symbol": "BTCUSDT"})
        ...     r = pool.get("/time")              # acquire + request + release
    """

    def __init__(self, config: PoolConfig, lock: threading.Lock | None = None) -> None:
        """Use :meth:`connect`; this only builds the empty pool.

        Args:
            config: The validated options.
            lock: The lock of the slow paths; a Client's pools share one,
                since a permit freed in one pool serves a waiter of another.
        """
        super().__init__(config)
        self._lock = lock if lock is not None else threading.Lock()
        # Sockets in connect() (ours: healing, inline): close() ends them.
        self._connecting: set[socket.socket] = set()
        self._gc_released: list[_TSlot] = []
        self._failure_log = FailureLog()
        self._worker: threading.Thread | None = None
        self._watch: dict[int, _TSlot] = {}
        self._epoll: Any = None
        self._wake_r = self._wake_w = -1
        self._open_watch()
        _POOLS.add(self)

    def _open_watch(self) -> None:
        if hasattr(select, "epoll"):
            self._epoll = select.epoll()
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_w, False)
            self._epoll.register(self._wake_r, select.EPOLLIN)

    # -- construction ------------------------------------------------------
    @classmethod
    def connect(cls, url: str, **options: Unpack[PoolOptions]) -> AtomicClientPool:
        """Open ``connections`` (default 8) warm connections to ``url``, all at once.

        The same options and behaviour as ``ClientPool.connect``; see
        :class:`warmline.PoolOptions`.

        Raises:
            ConnectError: Fewer than ``require`` connections opened
                (ConnectTimeout when every attempt timed out; ProxyError
                when the proxy refused).
            InvalidRequest: A bad URL or header.
            ValueError, TypeError: An option out of range or of the wrong type.
        """
        config = PoolConfig.build(url, **options)
        pool = cls(config)
        pool._connect_all(config.need)
        return pool

    def _connect_all(self, need: int) -> None:
        core = self._core
        with self._lock:
            slots = core.start_connect()
        if need == 0:
            # Nothing required: every slot opens in the background, now.
            self._locked(self._open_later, slots)
            return
        results = self._open_concurrently(len(slots))
        failures = [r for r in results if isinstance(r, BaseException)]
        error = connect_verdict(failures, len(slots), need, self._origin)
        if error is not None:
            for r in results:
                if isinstance(r, Connection):
                    r.close()
            self.close()
            raise error
        for slot, result in zip(slots, results, strict=True):
            if isinstance(result, Connection):
                self._watch_conn(slot, result)
                self._locked(core.opened, slot, result, monotonic())
            else:
                self._locked(core.open_failed, slot, monotonic())
        if self._epoll is not None or core.keep_warm is not None:
            self._wake_worker()  # watch and keep warm the idle connections from now on

    def _open_later(self, slots: list[_TSlot], plan: Plan[Connection]) -> None:
        now = monotonic()
        for slot in slots:
            self._core.open_failed(slot, now, plan)  # OPENING -> HEALING
            slot.failures = 0
            slot.next_attempt = now

    def _open_concurrently(self, n: int) -> list[Connection | BaseException]:
        """Open n connections at once, one short-lived thread each (joined)."""
        if n == 1:
            try:
                return [self._open()]
            except WarmlineError as exc:
                return [exc]
        results: list[Connection | BaseException] = [
            ConnectError("not connected in time", origin=self._origin) for _ in range(n)
        ]
        lock = threading.Lock()
        abandoned = False

        def work(i: int) -> None:
            try:
                result: Connection | BaseException = self._open()
            except BaseException as exc:
                result = exc
            with lock:
                if abandoned and isinstance(result, Connection):
                    result.close()  # connect() gave up on us: don't leak it
                else:
                    results[i] = result

        threads = [
            threading.Thread(target=work, args=(i,), name="warmline-connect", daemon=True)
            for i in range(n)
        ]
        try:
            for t in threads:
                t.start()
            # connect_timeout bounds each connect (DNS aside); the margin
            # covers thread scheduling on a loaded machine.
            connect_timeout = self._config.connect_timeout
            deadline = None if connect_timeout is None else monotonic() + connect_timeout + 5.0
            for t in threads:
                t.join(None if deadline is None else max(deadline - monotonic(), 0.0))
        finally:
            # What a thread stored before this point is ours to return (or to
            # close, if we are unwinding); a thread still connecting closes
            # its connection itself.
            with lock:
                abandoned = True
                snapshot = list(results)
        return snapshot

    def _open(self, connect_timeout: TimeoutArg = DEFAULT) -> Connection:
        config = self._config
        if connect_timeout is DEFAULT:
            connect_timeout = config.connect_timeout
        obs = self._conn_observer()
        started = monotonic()
        conn = open_connection(
            self.origin,
            **config.connect_options(),
            connect_timeout=connect_timeout,
            reader=config.new_reader() if obs is None else obs.new_reader(),
            connecting=self._connecting,
            observer=obs,
        )
        if obs is not None:
            obs.opened(conn, monotonic() - started)
        if config.spin:
            conn.spin = config.spin
            conn.busy_poll(config.spin)  # best effort: where the kernel allows it
        return conn

    # -- the lock and the plans ------------------------------------------------
    def _locked(self, op: Callable[..., object], *args: Any) -> None:
        """Run a core operation under the lock, then carry out its plan."""
        plan: Plan[Connection] = Plan()
        with self._lock:
            op(*args, plan)
            self._finish_gc_releases(plan)
        self._carry_out(plan)
        if self._gc_released:
            self._try_gc_releases()

    def _carry_out(self, plan: Plan[Connection], error: WarmlineError | None = None) -> None:
        for conn in plan.close:
            conn.close(error)
        for waiter in plan.wake:
            assert isinstance(waiter, _Waiter)
            waiter.lock.release()
        if plan.heal:
            self._wake_worker()
        for core in plan.redispatch:  # a client's other pool got a permit
            other: AtomicClientPool = core.shell
            other._locked(core.dispatch)

    def _release_from_gc(self, slot: _TSlot) -> None:
        self._gc_released.append(slot)
        self._try_gc_releases()

    def _try_gc_releases(self) -> None:
        # Whoever lets go of the lock looks again, so a queued release is
        # never stranded (see the module docstring).
        while self._gc_released and self._lock.acquire(blocking=False):
            plan: Plan[Connection] = Plan()
            try:
                self._finish_gc_releases(plan)
            finally:
                self._lock.release()
            self._carry_out(plan, PoolError(RELEASED_IN_FLIGHT, origin=self._origin))

    def _finish_gc_releases(self, plan: Plan[Connection]) -> None:
        pending = self._gc_released
        now = monotonic()
        while pending:
            slot = pending.pop()
            conn = slot.conn
            usable = conn is not None and conn.alive and not conn.busy
            self._core.release(slot, usable, now, plan)

    # -- acquire / release -------------------------------------------------
    def try_acquire(self) -> AtomicClientSlot | None:
        """The warmest ready slot, or None. Never blocks.

        A dead or over-age slot met on the way is sent to reconnect and the
        scan goes on. Unlike ``acquire()``, it may take a slot ahead of
        threads waiting in ``acquire()``.

        Raises:
            PoolClosed: The pool is closed.
        """
        slot = self._pop()
        return None if slot is None else AtomicClientSlot(self, slot)

    def _pop(self) -> _TSlot | None:
        core = self._core
        while True:
            slot = core.pop()  # atomic: no two threads get the same slot
            if slot is None:
                if core.closed:
                    raise self._count(PoolClosed("pool is closed", origin=self._origin))
                return None
            conn = slot.conn
            if conn is not None and conn.alive and self._usable(slot, conn):
                return slot
            self._locked(core.discard, slot, monotonic())

    def _usable(self, slot: _TSlot, conn: Connection) -> bool:
        if self._core.ages and self._core.aged(slot, monotonic()):
            return False
        # An idle keep-alive connection has nothing to read. If it is readable,
        # the server closed or reset it, or sent bytes nobody asked for, which
        # the next request would otherwise read as its answer: look (stale()
        # tells TLS session tickets from a close). poll(0) is ~0.7 us, paid
        # on every reuse, outside any lock.
        return not conn.readable() or not conn.stale()

    def acquire(self, timeout: float | None = None) -> AtomicClientSlot:
        """Wait for a slot; the lease is also a context manager.

        ``with pool.acquire(timeout=1.0) as slot:`` or
        ``slot = pool.acquire(); ...; slot.release()``. Waiters are served
        first come, first served, woken by a release or a healed slot.

        Raises:
            PoolTimeout: No slot within ``timeout`` seconds.
            PoolClosed: The pool is or got closed.
        """
        wait = check_timeout(timeout, "timeout")
        slot = None if self._core.waiters else self._pop()
        if slot is None:
            slot = self._wait(wait, None)
        return AtomicClientSlot(self, slot)

    def _wait(self, timeout: float | None, deadline: float | None) -> _TSlot:
        core = self._core
        waiter = _Waiter()
        # Register first, then look for a ready slot (in add_waiter): a
        # release that appended before is found here, one that appends after
        # sees us.
        self._locked(core.add_waiter, waiter)
        raised = True
        try:
            served = waiter.lock.acquire(timeout=-1 if timeout is None else timeout)
            raised = False
        finally:
            if raised or not served:
                with self._lock:
                    queued = core.remove_waiter(waiter)
                if queued:
                    waiter.error = PoolTimeout(
                        f"no slot ready within {timeout} s", origin=self._origin
                    )
                elif raised and waiter.slot is not None:
                    # The wait raised (a signal handler's exception, a
                    # KeyboardInterrupt) after a slot was handed over: give
                    # it back, never strand it.
                    self._give_back(waiter.slot)
                # else: served between the expiry and the lock; keep it.
        if waiter.error is not None:
            raise self._count(waiter.error)
        slot = waiter.slot
        assert slot is not None
        if slot.state is OPENING:
            self._open_inline(slot, deadline)
        return slot

    def _give_back(self, slot: _TSlot) -> None:
        if slot.state is OPENING:
            self._locked(self._core.open_failed, slot, monotonic())
        else:
            self._release(slot)

    def _open_inline(self, slot: _TSlot, deadline: float | None) -> None:
        try:
            conn = self._open(self._connect_budget(deadline, monotonic()))
        except BaseException as exc:
            self._locked(self._core.open_failed, slot, monotonic())
            if isinstance(exc, WarmlineError):
                if self._core.closed:  # close() ended the connect
                    raise self._count(PoolClosed("pool closed while connecting")) from exc
                self._count(exc)
            raise
        self._watch_conn(slot, conn)
        plan: Plan[Connection] = Plan()
        with self._lock:
            kept = self._core.opened(slot, conn, monotonic(), plan, keep=True)
        self._carry_out(plan)
        if not kept:
            raise self._count(PoolClosed("pool closed", origin=self._origin))
        if self._core.keep_warm is not None and self._worker is None:
            self._wake_worker()  # a lazy pool's first connection: keep it warm too

    def _release(self, slot: _TSlot) -> None:
        core = self._core
        conn = slot.conn
        usable = conn is not None and conn.alive and not conn.busy
        if usable and core.fast:
            core.push(slot)
            # Append first, then look: see the module docstring.
            if core.waiters or core.closed:
                self._locked(core.dispatch)
            return
        plan: Plan[Connection] = Plan()
        with self._lock:
            core.release(slot, usable, monotonic(), plan)
            self._finish_gc_releases(plan)
        busy = conn is not None and conn.busy
        self._carry_out(plan, PoolError(RELEASED_IN_FLIGHT, origin=self._origin) if busy else None)

    # -- requests ----------------------------------------------------------
    def _request(
        self,
        slot: _TSlot,
        method: str,
        path: str,
        params: ParamsArg | None,
        headers: HeadersArg | None,
        content: ContentArg | None,
        json: Any,
        timeout: TimeoutArg,
        lease: object = None,
    ) -> Response:
        core = self._core
        try:
            if params is None and headers is None and content is None and json is None:
                data = self._writer.build(method, path)  # no keywords to pass: ~0.1 us less
            else:
                data = self._writer.build(
                    method, path, params=params, headers=headers, content=content, json=json
                )
            if timeout is DEFAULT:
                timeout = self._timeout
            elif timeout is not None:
                timeout = check_timeout(timeout, "timeout")
            if timeout is None:
                deadline = None
            elif timeout > 0:
                deadline = monotonic() + timeout
            else:
                raise WriteTimeout("timeout of 0: nothing was sent")
            conn = slot.conn
            if conn is None or not conn.alive:
                # The previous response on this lease closed the connection.
                conn = self._reopen(slot, deadline)
            elif conn.busy:
                raise PoolError("a request is already in flight on this slot; one at a time")
            try:
                response = conn.request(data, method, deadline)
            except WarmlineError as exc:
                if not core.retry_stale(exc, method):
                    raise
                # The kept-alive connection was closed under us before any
                # byte of the response: RFC 9112 §9.3.1 allows one retry.
                conn = self._reopen(slot, deadline)
                response = conn.request(data, method, deadline)
        except WarmlineError as exc:
            self._stats.error(exc)
            exc.with_context(origin=self._origin, method=method, path=path)
            raise
        except StreamedBody:  # an except clause costs nothing until raised
            return self._request_streamed(slot, method, path, params, headers, content, timeout)
        self._stats.requests += 1
        return response

    def _request_streamed(
        self,
        slot: _TSlot,
        method: str,
        path: str,
        params: ParamsArg | None,
        headers: HeadersArg | None,
        content: ContentArg | None,
        timeout: TimeoutArg,
    ) -> Response:
        """A streamed body: head, pieces, response; never sent twice (a stale
        connection's error is raised, saying why, instead of the one retry)."""
        try:
            head, upload = self._writer.build_head(
                method, path, params=params, headers=headers, content=content
            )
            if timeout is DEFAULT:
                timeout = self._timeout
            timeout = check_timeout(timeout, "timeout")
            if timeout == 0:
                raise WriteTimeout("timeout of 0: nothing was sent")
            deadline = None if timeout is None else monotonic() + timeout
            conn = slot.conn
            if conn is None or not conn.alive:
                conn = self._reopen(slot, deadline)
            elif conn.busy:
                raise PoolError("a request is already in flight on this slot; one at a time")
            try:
                response = conn.request_streamed(head, upload, method, deadline)
            except WarmlineError as exc:
                raise not_replayed(exc) from exc.__cause__
        except WarmlineError as exc:
            self._stats.error(exc)
            exc.with_context(origin=self._origin, method=method, path=path)
            raise
        self._stats.requests += 1
        return response

    def _call(
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
        # No lease object: the pool holds the slot itself for the call.
        slot = None if self._core.waiters else self._pop()
        if slot is None:
            slot = self._wait(self._acquire_wait(timeout, acquire_timeout), None)
        try:
            return self._request(slot, method, path, params, headers, content, json, timeout)
        finally:
            self._release(slot)

    # -- the hooked request path (bound on the instance; see _pool/_observe) ------
    _request_hooked = sync_request_hooked
    _call_hooked = sync_call_hooked

    # -- streams -----------------------------------------------------------
    def stream(
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
    ) -> StreamContext:
        """Send a request and read only its head: ``with pool.stream("GET", p) as r:``.

        The body is then read with ``r.iter_bytes(chunk_size)`` (decoded),
        ``r.iter_raw()`` (as sent), ``r.iter_lines()`` or ``r.read()``; the
        slot is held until the block ends (or ``r.close()``). Nothing is
        received before the consumer asks, so memory stays at one read.
        ``timeout`` bounds the wait for the head, and then each wait for
        more of the body (``Timeouts.read`` when the pool has one).
        Arguments otherwise as for :meth:`request`.

        Example:
            >>> with pool.stream("GET", "/download") as r:
            ...     for chunk in r.iter_bytes(65536):
            ...         sink.write(chunk)
        """
        up = method.upper()
        return StreamContext(
            lambda: self._stream_call(
                up, path, params, headers, content, json, timeout, acquire_timeout
            )
        )

    def _stream_call(
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
        if self._observer is not None and self._observer.requests_on:
            return sync_stream_hooked(
                self, None, method, path, params, headers, content, json, timeout, acquire_timeout
            )
        slot = None if self._core.waiters else self._pop()
        if slot is None:
            slot = self._wait(self._acquire_wait(timeout, acquire_timeout), None)
        try:
            return self._open_stream(
                slot,
                method,
                path,
                params,
                headers,
                content,
                json,
                timeout,
                lambda: self._release(slot),
            )
        except BaseException:
            self._release(slot)
            raise

    def _open_stream(
        self,
        slot: _TSlot,
        method: str,
        path: str,
        params: ParamsArg | None,
        headers: HeadersArg | None,
        content: ContentArg | None,
        json: Any,
        timeout: TimeoutArg,
        on_release: Callable[[], None] | None,
    ) -> Response:
        """Send on ``slot`` and return the response with its body source attached."""
        config = self._config
        try:
            try:
                data = self._writer.build(
                    method, path, params=params, headers=headers, content=content, json=json
                )
            except StreamedBody:
                raise InvalidRequest(STREAM_UPLOAD_UNSUPPORTED) from None
            if timeout is DEFAULT:
                timeout = self._timeout
            timeout = check_timeout(timeout, "timeout")
            if timeout == 0:
                raise WriteTimeout("timeout of 0: nothing was sent")
            deadline = None if timeout is None else monotonic() + timeout
            read_timeout = config.read_timeout if config.read_timeout is not None else timeout
            for attempt in (0, 1):
                conn = slot.conn
                if conn is None or not conn.alive:
                    conn = self._reopen(slot, deadline)
                elif conn.busy:
                    raise PoolError("a request is already in flight on this slot; one at a time")
                body = SyncBody(
                    conn,
                    read_timeout=read_timeout,
                    drain_limit=config.drain_limit,
                    decompress=config.decompress,
                    max_size=config.max_body_size,
                    on_release=on_release,
                )
                try:
                    response = body.start(data, method, deadline)
                except WarmlineError as exc:
                    if attempt or not self._core.retry_stale(exc, method):
                        raise
                    continue  # a stale keep-alive connection: once more on a new one
                break
        except WarmlineError as exc:
            self._stats.error(exc)
            exc.with_context(origin=self._origin, method=method, path=path)
            raise
        self._stats.requests += 1
        response._source = body
        return response

    def _reopen(self, slot: _TSlot, deadline: float | None) -> Connection:
        """Reconnect a leased slot inline, on the caller's thread."""
        if self._core.closed:
            raise PoolClosed("pool closed")
        if slot.state is not IN_USE:
            raise PoolError(RELEASED_IN_FLIGHT)
        if slot.conn is not None:
            slot.conn.close()
            slot.conn = None
        try:
            conn = self._open(self._connect_budget(deadline, monotonic()))
        except WarmlineError as exc:
            if self._core.closed:  # close() ended the connect
                raise PoolClosed("pool closed while connecting") from exc
            self._stats.reconnect_failures += 1
            raise
        if self._core.closed or slot.state is not IN_USE:
            conn.close()
            raise PoolClosed("pool closed") if self._core.closed else PoolError(RELEASED_IN_FLIGHT)
        self._stats.reconnects += 1
        self._watch_conn(slot, conn)
        slot.conn = conn
        return conn

    # -- the worker: healing and watching ----------------------------------
    def _watch_conn(self, slot: _TSlot, conn: Connection) -> None:
        epoll = self._epoll
        if epoll is None:
            return
        self._watch[conn.fd] = slot
        with contextlib.suppress(OSError):
            epoll.register(conn.fd, _WATCH_EVENTS)

    def _wake_worker(self) -> None:
        with self._lock:
            start = self._worker is None and not self._core.closed
            if start:
                worker = threading.Thread(
                    target=_worker_main,
                    args=(weakref.ref(self),),
                    name=f"warmline-heal {self.origin}",
                    daemon=True,
                )
                self._worker = worker
        if start:
            worker.start()
        elif self._wake_w >= 0:
            with contextlib.suppress(OSError):  # full pipe: it is awake anyway
                os.write(self._wake_w, b"\0")

    def _work_once(self) -> float | None:
        """One round of the worker: heal what is due; how long to sleep (None: exit)."""
        core = self._core
        with self._lock:
            if core.closed:
                self._worker = None
                return None
            due = core.due(monotonic())
        for i, slot in enumerate(due):
            started = monotonic()
            try:
                conn = self._open()
            except Exception as exc:  # not only WarmlineError: the worker must survive
                # The origin is down or unreachable: the others due now would
                # most likely fail alike, each costing up to connect_timeout.
                # Back all of them off instead of trying each in turn.
                now = monotonic()
                with self._lock:
                    failures = [core.open_failed(s, now, Plan()) for s in due[i:]]
                self._failure_log.failure(self.origin, exc, max(failures))
                if self._observer is not None:
                    self._observer.heal(None, max(failures), now - started, exc)
                break
            if self._observer is not None:
                self._observer.heal(conn, 0, monotonic() - started, None)
            self._watch_conn(slot, conn)
            self._locked(core.opened, slot, conn, monotonic())
        if core.keep_warm is not None:
            with self._lock:
                pings = core.due_for_ping(monotonic())
            for slot in pings:
                self._ping(slot)
        # A slot released since this round is not in next_ping(): with
        # keep-warm, look again within half an interval.
        tick = _WORKER_TICK_S if core.keep_warm is None else min(_WORKER_TICK_S, core.keep_warm / 2)
        times = [t for t in (core.next_due(), core.next_ping()) if t is not None]
        if not times:
            return tick
        return min(max(min(times) - monotonic(), 0.0), tick)

    def _ping(self, slot: _TSlot) -> None:
        """One keep-warm request, on the worker, on a slot the core took off the stack."""
        method, data = self._config.ping()
        conn = slot.conn
        started = monotonic()
        status: int | None = None
        error: WarmlineError | None = None
        try:
            if conn is not None and conn.alive:
                deadline = started + (self._config.connect_timeout or 5.0)
                status = conn.request(data, method, deadline).status
                self._stats.keep_warm_pings += 1
            else:
                error = ConnectionClosed("connection closed before the keep-warm ping")
        except WarmlineError as exc:
            error = exc  # the connection is dead: the release below heals it
        finally:
            self._release(slot)
        if self._observer is not None:
            self._observer.keep_warm(conn, status, monotonic() - started, error)

    def _on_events(self, events: list[tuple[int, int]]) -> None:
        now = monotonic()
        for fd, _ in events:
            if fd == self._wake_r:
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 4096)
                continue
            slot = self._watch.get(fd)
            if slot is not None and slot.conn is not None and slot.conn.fd == fd:
                self._locked(self._core.lost, slot, now)

    # -- closing and forking --------------------------------------------------
    def close(self) -> None:
        """Close every connection, stop healing, wake waiters with PoolClosed.

        Requests in flight on other threads fail at once with PoolClosed; no
        connection is opened after this. Returns promptly: a reconnect in
        progress is abandoned (it closes what it opens).
        """
        plan: Plan[Connection] = Plan()
        with self._lock:
            in_flight = self._core.close(plan)
            worker = self._worker
            self._worker = None
        closed = PoolClosed("pool closed", origin=self._origin)
        for conn in in_flight:
            conn.close(closed)
        for sock in list(self._connecting):  # ends their connect() at once
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._carry_out(plan, closed)
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"\0")
        if worker is not None and worker is not threading.current_thread():
            worker.join(_CLOSE_JOIN_S)
        if worker is None or not worker.is_alive():
            self._close_watch()

    def _close_watch(self) -> None:
        epoll, self._epoll = self._epoll, None
        if epoll is not None:
            epoll.close()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._wake_r = self._wake_w = -1
        self._watch.clear()

    def _after_fork(self) -> None:
        # In the child: the lock may have been held by a thread that does not
        # exist here, the worker is gone, and every socket is shared with the
        # parent. Start afresh without touching what the parent uses.
        self._lock = threading.Lock()
        self._gc_released = []
        self._worker = None
        for conn in self._core.after_fork():
            conn.forget()
        if self._epoll is not None:
            self._epoll.close()
            for fd in (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._watch.clear()
            self._open_watch()
        if not self._core.closed and not self._core.lazy:
            self._wake_worker()

    def __enter__(self) -> AtomicClientPool:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _worker_main(ref: weakref.ref[AtomicClientPool]) -> None:
    """The heal-and-watch loop; holds its pool only while it works on it."""
    while True:
        pool = ref()
        if pool is None:
            return
        sleep = pool._work_once()
        epoll = pool._epoll
        if sleep is None:
            if epoll is not None:
                pool._close_watch()
            return
        del pool
        if epoll is None:
            threading.Event().wait(sleep)  # no epoll here: heal only
            continue
        try:
            events = epoll.poll(sleep)
        except (OSError, ValueError):  # closed under us by close()
            return
        if events:
            pool = ref()
            if pool is None:
                return
            pool._on_events(events)
            del pool


def _reset_after_fork() -> None:
    for pool in list(_POOLS):
        with contextlib.suppress(Exception):
            pool._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
