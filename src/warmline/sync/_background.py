"""An AtomicClientPool's work off the request path, and its threads.

One daemon thread per pool heals dead slots, sends keep-warm pings and
watches the idle sockets with epoll (``EPOLLRDHUP``, edge-triggered: it
wakes when a peer closes, never for a response), so a connection a server
closes for idleness is replaced at once. :class:`Watcher` is the mechanism
(the thread, its epoll set, its wake-up pipe, fork); :class:`Worker` is what
one round does, on the core's decisions. The thread holds its worker (and so
its pool) only weakly: a pool dropped without ``close()`` lets it exit.
Without epoll (not Linux) the worker heals and pings only. The asyncio
pool's counterpart is :mod:`warmline.aio._background`. Also here: the
short-lived threads that open connections at ``connect()``.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import weakref
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, TypeVar

from warmline._policy import FailureLog
from warmline._pool import Plan, Slot
from warmline.errors import ConnectionClosed, WarmlineError

if TYPE_CHECKING:
    from warmline.sync._connection import Connection
    from warmline.sync._pool import AtomicClientPool

__all__ = ["Watcher", "Worker", "open_concurrently", "reset_after_fork"]

# The worker looks at its pool at least this often (exits once it is gone).
_WORKER_TICK_S: Final = 1.0
# close() waits this long for the worker; one inside a connect is abandoned
# (it closes what it opens once it sees the pool closed).
_CLOSE_JOIN_S: Final = 0.25

# epoll: wake on a peer's close only (not on data), once per close.
_WATCH_EVENTS: Final = getattr(select, "EPOLLRDHUP", 0) | getattr(select, "EPOLLET", 0)

T = TypeVar("T")


class _Closable(Protocol):
    def close(self) -> None: ...


K = TypeVar("K", bound=_Closable)


class _Owner(Protocol[T]):
    """What the worker thread calls (a :class:`Worker`)."""

    @property
    def watcher(self) -> Watcher[T]: ...

    def work_once(self) -> float | None: ...

    def peer_closed(self, closed: list[tuple[int, T]]) -> None: ...


class Watcher(Generic[T]):
    """A pool's worker thread and the idle sockets it watches (``T``: a slot).

    Args:
        name: The thread's name.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.thread: threading.Thread | None = None
        self._slots: dict[int, T] = {}
        self._epoll: Any = None
        self._wake_r = self._wake_w = -1
        # close() runs on the worker and in the pool's close(), maybe at once:
        # one of them gets the descriptors (closing one twice could close a
        # descriptor reused meanwhile).
        self._closing = threading.Lock()
        self._open()

    def _open(self) -> None:
        if hasattr(select, "epoll"):
            self._epoll = select.epoll()
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_w, False)
            self._epoll.register(self._wake_r, select.EPOLLIN)

    @property
    def watching(self) -> bool:
        """Whether idle sockets are watched here (epoll exists)."""
        return self._epoll is not None

    def watch(self, fd: int, slot: T) -> None:
        """Watch ``fd`` (the connection of ``slot``) for its peer's close."""
        epoll = self._epoll
        if epoll is None:
            return
        self._slots[fd] = slot
        with contextlib.suppress(OSError):
            epoll.register(fd, _WATCH_EVENTS)

    def start(self, owner: _Owner[T]) -> threading.Thread:
        """A new, not yet started, thread for ``owner`` (the caller starts it
        after letting go of its lock)."""
        self.thread = threading.Thread(
            target=_worker_main, args=(weakref.ref(owner),), name=self.name, daemon=True
        )
        return self.thread

    def wake(self) -> None:
        """Cut the worker's sleep short (it looks at its pool again)."""
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):  # full pipe: it is awake anyway
                os.write(self._wake_w, b"\0")

    def poll(self, timeout: float) -> list[tuple[int, T]] | None:
        """Sleep up to ``timeout``; the sockets whose peer closed, with their
        slots (None: the set was closed under us)."""
        epoll = self._epoll
        if epoll is None:
            threading.Event().wait(timeout)  # no epoll here: heal only
            return []
        try:
            events = epoll.poll(timeout)
        except (OSError, ValueError):  # closed by close()
            return None
        closed = []
        for fd, _ in events:
            if fd == self._wake_r:
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 4096)
                continue
            slot = self._slots.get(fd)
            if slot is not None:
                closed.append((fd, slot))
        return closed

    def close(self) -> None:
        """Close the epoll set and the pipe (the worker has ended, or never will)."""
        with self._closing:
            epoll, self._epoll = self._epoll, None
            fds = (self._wake_r, self._wake_w)
            self._wake_r = self._wake_w = -1
        if epoll is not None:
            epoll.close()
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._slots.clear()

    def after_fork(self) -> None:
        """In a child process: the thread is gone; start afresh, the parent's
        epoll set and pipe untouched (closing our copies does not affect it)."""
        self.thread = None
        self._closing = threading.Lock()  # a parent's thread may have held it
        if self._epoll is not None:
            self.close()
            self._open()


def _worker_main(ref: weakref.ref[_Owner[T]]) -> None:
    """The heal-and-watch loop; holds its pool only while it works on it."""
    while True:
        owner = ref()
        if owner is None:
            return
        sleep = owner.work_once()
        watcher = owner.watcher
        if sleep is None:
            watcher.close()
            return
        del owner
        closed = watcher.poll(sleep)
        if closed is None:
            return
        if closed:
            owner = ref()
            if owner is None:
                return
            owner.peer_closed(closed)
            del owner


class Worker:
    """The heals, keep-warm pings and peer-close watch of one AtomicClientPool,
    run on its worker thread (started on first need, by :meth:`wake`)."""

    __slots__ = ("__weakref__", "_failure_log", "_pool", "watcher")

    def __init__(self, pool: AtomicClientPool) -> None:
        self._pool = pool
        self._failure_log = FailureLog()
        self.watcher: Watcher[Slot[Connection]] = Watcher(f"warmline-heal {pool.origin}")

    def watch(self, slot: Slot[Connection], conn: Connection) -> None:
        """Replace ``conn`` at once if its peer closes it while idle."""
        self.watcher.watch(conn.fd, slot)

    def wake(self) -> None:
        """Start the thread, or cut its sleep short: there is work."""
        pool = self._pool
        watcher = self.watcher
        with pool._lock:
            thread = None
            if watcher.thread is None and not pool._core.closed:
                thread = watcher.start(self)
        if thread is not None:
            thread.start()
        else:
            watcher.wake()

    def stop(self) -> None:
        """At the pool's ``close()`` (the core already closed): the thread ends
        within a moment; the epoll set closes when it has."""
        watcher = self.watcher
        with self._pool._lock:
            thread, watcher.thread = watcher.thread, None
        watcher.wake()
        if thread is not None and thread is not threading.current_thread():
            thread.join(_CLOSE_JOIN_S)
        if thread is None or not thread.is_alive():
            watcher.close()

    def after_fork(self) -> None:
        """In a child process: a new thread, epoll set and pipe, if there is work."""
        self.watcher.after_fork()
        core = self._pool._core
        if not core.closed and not core.lazy:
            self.wake()

    def work_once(self) -> float | None:
        """One round: heal what is due, ping; how long to sleep (None: exit)."""
        pool = self._pool
        core = pool._core
        with pool._lock:
            if core.closed:
                self.watcher.thread = None
                return None
            due = core.due(monotonic())
        for i, slot in enumerate(due):
            started = monotonic()
            try:
                conn = pool._open()
            except Exception as exc:  # not only WarmlineError: the worker must survive
                # The origin is down or unreachable: the others due now would
                # most likely fail alike, each costing up to connect_timeout.
                # Back all of them off instead of trying each in turn.
                now = monotonic()
                with pool._lock:
                    failures = [core.open_failed(s, now, Plan()) for s in due[i:]]
                self._failure_log.failure(pool.origin, exc, max(failures))
                if pool._observer is not None:
                    pool._observer.heal(None, max(failures), now - started, exc)
                break
            if pool._observer is not None:
                pool._observer.heal(conn, 0, monotonic() - started, None)
            self.watch(slot, conn)
            pool._decide(core.opened, slot, conn, monotonic())
        if core.keep_warm is not None:
            with pool._lock:
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

    def _ping(self, slot: Slot[Connection]) -> None:
        """One keep-warm request on a slot the core took off the stack."""
        pool = self._pool
        method, data = pool._config.ping()
        conn = slot.conn
        started = monotonic()
        status: int | None = None
        error: WarmlineError | None = None
        try:
            if conn is not None and conn.alive:
                deadline = started + (pool._config.connect_timeout or 5.0)
                status = conn.request(data, method, deadline).status
                pool._stats.keep_warm_pings += 1
            else:
                error = ConnectionClosed("connection closed before the keep-warm ping")
        except WarmlineError as exc:
            error = exc  # the connection is dead: the release below heals it
        finally:
            pool._release(slot)
        if pool._observer is not None:
            pool._observer.keep_warm(conn, status, monotonic() - started, error)

    def peer_closed(self, closed: list[tuple[int, Slot[Connection]]]) -> None:
        """Idle connections whose peer closed: heal their slots now."""
        pool = self._pool
        now = monotonic()
        for fd, slot in closed:
            if slot.conn is not None and slot.conn.fd == fd:  # not replaced since
                pool._decide(pool._core.lost, slot, now)


def open_concurrently(
    open_one: Callable[[], K], n: int, timeout: float | None, late: Callable[[], BaseException]
) -> list[K | BaseException]:
    """Run ``open_one`` n times at once, one short-lived thread each (joined).

    Each result is what ``open_one`` returned or raised, or ``late()`` for a
    thread still running after ``timeout`` (plus a margin for thread
    scheduling on a loaded machine). A late thread's connection, if it ever
    opens, is closed by the thread itself: nothing leaks.
    """
    results: list[K | BaseException] = [late() for _ in range(n)]
    lock = threading.Lock()
    abandoned = False

    def work(i: int) -> None:
        try:
            result: K | BaseException = open_one()
        except BaseException as exc:
            result = exc
        with lock:
            if abandoned and not isinstance(result, BaseException):
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
        deadline = None if timeout is None else monotonic() + timeout + 5.0
        for t in threads:
            t.join(None if deadline is None else max(deadline - monotonic(), 0.0))
    finally:
        # What a thread stored before this point is ours to return (or to
        # close, if we are unwinding); a thread still connecting closes its
        # connection itself.
        with lock:
            abandoned = True
            snapshot = list(results)
    return snapshot


# Every pool of this process, for fork(): the child drops what it inherited.
_FORKABLE: weakref.WeakSet[Any] = weakref.WeakSet()


def reset_after_fork(pool: Any) -> None:
    """Call ``pool._after_fork()`` in a child process after ``os.fork()``."""
    _FORKABLE.add(pool)


def _after_fork_in_child() -> None:
    for pool in list(_FORKABLE):
        with contextlib.suppress(Exception):
            pool._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
