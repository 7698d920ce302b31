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
:class:`~warmline.Backoff` and replaces at once an idle connection whose
peer closed, so ``try_acquire()`` finds a warm slot (the thread and its
epoll set: :mod:`warmline.sync._background`).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from time import monotonic
from types import TracebackType
from typing import TYPE_CHECKING, Any

from warmline._config import PoolConfig, PoolOptions
from warmline._policy import DEFAULT, TimeoutArg
from warmline._pool import Plan, Slot, Waiter, check_timeout
from warmline._pool._attempts import resilient_sync
from warmline._pool._observe import sync_observed, sync_stream_observed
from warmline._pool._shell import BUSY, RELEASED_IN_FLIGHT, Lease, OnRelease, PoolShell
from warmline._pool._state import OPENING
from warmline._pool._verbs import Req
from warmline.errors import (
    ConnectError,
    PoolClosed,
    PoolError,
    PoolTimeout,
    WarmlineError,
)
from warmline.http11 import Response
from warmline.http11._upload import StreamedBody, not_replayed
from warmline.sync._background import Worker, open_concurrently, reset_after_fork
from warmline.sync._connection import Connection, open_connection
from warmline.sync._stream import StreamContext, SyncBody

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["AtomicClientPool", "AtomicClientSlot"]

_TSlot = Slot[Connection]


class _Waiter(Waiter):
    """One thread blocked in acquire(), on its own lock until served."""

    __slots__ = ("lock",)

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.lock.acquire()  # held until the waiter is served


class AtomicClientSlot(Lease[Connection, Response, StreamContext]):
    """A leased slot of an :class:`AtomicClientPool` (see
    :class:`~warmline._pool._shell.Lease`), released from any thread. A lease
    garbage-collected without release returns its slot.
    """

    __slots__ = ()
    _pool: AtomicClientPool


class AtomicClientPool(PoolShell[Connection, Response, StreamContext]):
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

    _stream_context = StreamContext
    _observed_fns = (sync_observed, sync_stream_observed)
    _resilient_fn = staticmethod(resilient_sync)

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
        self._worker = Worker(self)
        reset_after_fork(self)

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
        if need == 0:  # nothing required: every slot opens in the background, now
            self._decide(core.open_later, slots, monotonic())
            return
        results = self._open_concurrently(len(slots))
        for slot, result in zip(slots, results, strict=True):
            if isinstance(result, Connection):
                self._worker.watch(slot, result)
        plan: Plan[Connection] = Plan()
        with self._lock:
            error = core.connected(slots, results, need, self._origin, monotonic(), plan)
        if error is not None:
            for conn in plan.close:
                conn.close()
            self.close()  # and what opened
            raise error
        self._carry_out(plan)
        if self._worker.watcher.watching or core.keep_warm is not None:
            self._worker.wake()  # watch and keep warm the idle connections from now on

    def _open_concurrently(self, n: int) -> list[Connection | BaseException]:
        """Open n connections at once (one thread each; one here if n is 1)."""
        if n == 1:
            try:
                return [self._open()]
            except WarmlineError as exc:
                return [exc]
        return open_concurrently(
            self._open,
            n,
            self._config.connect_timeout,
            lambda: ConnectError("not connected in time", origin=self._origin),
        )

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
    def _decide(self, op: Callable[..., object], *args: Any) -> None:
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
            self._worker.wake()
        for core in plan.redispatch:  # a client's other pool got a permit
            other: AtomicClientPool = core.shell
            other._decide(core.dispatch)

    def _release_lease(self, slot: _TSlot) -> None:
        self._release(slot)

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
            self._decide(core.discard, slot, monotonic())

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
        self._decide(core.add_waiter, waiter)
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

    def _open_inline(self, slot: _TSlot, deadline: float | None) -> None:
        try:
            conn = self._open(self._connect_budget(deadline, monotonic()))
        except BaseException as exc:
            self._decide(self._core.open_failed, slot, monotonic())
            if isinstance(exc, WarmlineError):
                if self._core.closed:  # close() ended the connect
                    raise self._count(PoolClosed("pool closed while connecting")) from exc
                self._count(exc)
            raise
        self._worker.watch(slot, conn)
        plan: Plan[Connection] = Plan()
        with self._lock:
            kept = self._core.opened(slot, conn, monotonic(), plan, keep=True)
        self._carry_out(plan)
        if not kept:
            raise self._count(PoolClosed("pool closed", origin=self._origin))
        if self._core.keep_warm is not None and self._worker.watcher.thread is None:
            self._worker.wake()  # a lazy pool's first connection: keep it warm too

    def _release(self, slot: _TSlot) -> None:
        core = self._core
        conn = slot.conn
        usable = conn is not None and conn.alive and not conn.busy
        if usable and core.fast:
            core.push(slot)
            # Append first, then look: see the module docstring.
            if core.waiters or core.closed:
                self._decide(core.dispatch)
            return
        plan: Plan[Connection] = Plan()
        with self._lock:
            core.release(slot, usable, monotonic(), plan)
            self._finish_gc_releases(plan)
        busy = conn is not None and conn.busy
        self._carry_out(plan, PoolError(RELEASED_IN_FLIGHT, origin=self._origin) if busy else None)

    # -- requests ----------------------------------------------------------
    def _request(self, slot: _TSlot, req: Req, lease: object = None) -> Response:
        method = req[0]
        core = self._core
        try:
            data = self._writer.build_request(req)
            timeout = req[6]
            pool_timeout = self._timeout  # checked at connect()
            if timeout is DEFAULT and pool_timeout != 0:  # the usual case, inlined
                deadline = None if pool_timeout is None else monotonic() + pool_timeout
            else:
                deadline = self._deadline(timeout)[1]
            conn = slot.conn  # _idle_conn(), inlined: the hot path
            if conn is None or not conn.alive:
                conn = self._reopen(slot, deadline)  # the last response closed it
            elif conn.busy:
                raise PoolError(BUSY)
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
            self._fail(exc, method, req[1])
            raise
        except StreamedBody:  # an except clause costs nothing until raised
            return self._request_streamed(slot, req)
        self._stats.requests += 1
        return response

    def _idle_conn(self, slot: _TSlot, deadline: float | None) -> Connection:
        """The slot's connection, ready for a request: reopened if closed."""
        conn = slot.conn
        if conn is None or not conn.alive:
            # The previous response on this lease closed the connection.
            return self._reopen(slot, deadline)
        if conn.busy:
            raise PoolError(BUSY)
        return conn

    def _request_streamed(self, slot: _TSlot, req: Req) -> Response:
        """A streamed body: head, pieces, response; never sent twice (a stale
        connection's error is raised, saying why, instead of the one retry)."""
        method = req[0]
        try:
            head, upload, deadline = self._upload_setup(req)
            conn = self._idle_conn(slot, deadline)
            try:
                response = conn.request_streamed(head, upload, method, deadline)
            except WarmlineError as exc:
                raise not_replayed(exc) from exc.__cause__
        except WarmlineError as exc:
            self._fail(exc, method, req[1])
            raise
        self._stats.requests += 1
        return response

    def _take(self, timeout: TimeoutArg, acquire_timeout: TimeoutArg) -> _TSlot:
        """A slot for the pool's own request (``pool.get()``)."""
        slot = None if self._core.waiters else self._pop()
        if slot is None:
            slot = self._wait(self._acquire_wait(timeout, acquire_timeout), None)
        return slot

    def _call(self, req: Req, acquire_timeout: TimeoutArg) -> Response:
        # No lease object: the pool holds the slot itself for the call.
        # _take(), inlined (the hot path).
        slot = None if self._core.waiters else self._pop()
        if slot is None:
            slot = self._wait(self._acquire_wait(req[6], acquire_timeout), None)
        try:
            return self._request(slot, req)
        finally:
            self._release(slot)

    # -- streams -----------------------------------------------------------
    def _stream_call(self, req: Req, acquire_timeout: TimeoutArg) -> Response:
        slot = self._take(req[6], acquire_timeout)
        try:
            return self._open_stream(slot, req, lambda: self._release(slot))
        except BaseException:
            self._release(slot)
            raise

    def _open_stream(self, slot: _TSlot, req: Req, on_release: OnRelease) -> Response:
        data, upload, deadline, read_timeout = self._stream_setup(req)
        first = True
        while True:
            try:
                conn = self._idle_conn(slot, deadline)
                body = SyncBody(
                    conn, read_timeout=read_timeout, on_release=on_release, **self._body_options
                )
                return self._streamed(body.start(data, req[0], deadline, upload), body)
            except WarmlineError as exc:
                self._stream_again(exc, req, first, upload)  # or raises it, counted
            first = False

    def _reopen(self, slot: _TSlot, deadline: float | None) -> Connection:
        """Reconnect a leased slot inline, on the caller's thread."""
        self._before_reopen(slot)
        try:
            conn = self._open(self._connect_budget(deadline, monotonic()))
        except WarmlineError as exc:
            if self._core.closed:  # close() ended the connect
                raise PoolClosed("pool closed while connecting") from exc
            self._stats.reconnect_failures += 1
            raise
        self._worker.watch(slot, self._reopened(slot, conn))
        return conn

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
        closed = PoolClosed("pool closed", origin=self._origin)
        for conn in in_flight:
            conn.close(closed)
        for sock in list(self._connecting):  # ends their connect() at once
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._carry_out(plan, closed)
        self._worker.stop()
        if self._hedges is not None:
            self._hedges.shutdown()  # attempts running end with PoolClosed

    def _after_fork(self) -> None:
        # In the child: the lock may have been held by a thread that does not
        # exist here, the worker is gone, and every socket is shared with the
        # parent. Start afresh without touching what the parent uses.
        self._lock = threading.Lock()
        self._gc_released = []
        if self._hedges is not None:
            self._hedges.after_fork()  # its threads are the parent's
        for conn in self._core.after_fork():
            conn.forget()
        self._worker.after_fork()

    def __enter__(self) -> AtomicClientPool:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
