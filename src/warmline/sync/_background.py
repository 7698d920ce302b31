"""The thread pool's threads: its background worker (the thread, its epoll set
and its wake-up pipe) and the short-lived threads that open connections at
``connect()``.

One daemon thread per pool heals dead slots and watches the idle sockets with
epoll (``EPOLLRDHUP``, edge-triggered: it wakes when a peer closes, never for
a response), so a connection a server closes for idleness is replaced at once.
This module is the mechanism (thread, epoll, pipe, fork); what a round of
work does is the pool's (:meth:`AtomicClientPool._work_once`). The thread
holds its pool only weakly: a pool dropped without ``close()`` lets it exit.
Without epoll (not Linux) the worker heals only.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import weakref
from collections.abc import Callable
from time import monotonic
from typing import Any, Final, Generic, Protocol, TypeVar

__all__ = ["Watcher", "open_concurrently"]

# epoll: wake on a peer's close only (not on data), once per close.
_WATCH_EVENTS: Final = getattr(select, "EPOLLRDHUP", 0) | getattr(select, "EPOLLET", 0)

T = TypeVar("T")


class _Closable(Protocol):
    def close(self) -> None: ...


K = TypeVar("K", bound=_Closable)


class _Owner(Protocol[T]):
    """What the worker thread calls on its pool."""

    @property
    def _watcher(self) -> Watcher[T]: ...

    def _work_once(self) -> float | None: ...

    def _peer_closed(self, closed: list[tuple[int, T]]) -> None: ...


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
        epoll, self._epoll = self._epoll, None
        if epoll is not None:
            epoll.close()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._wake_r = self._wake_w = -1
        self._slots.clear()

    def after_fork(self) -> None:
        """In a child process: the thread is gone; start afresh, the parent's
        epoll set and pipe untouched (closing our copies does not affect it)."""
        self.thread = None
        if self._epoll is not None:
            self.close()
            self._open()


def _worker_main(ref: weakref.ref[_Owner[T]]) -> None:
    """The heal-and-watch loop; holds its pool only while it works on it."""
    while True:
        pool = ref()
        if pool is None:
            return
        sleep = pool._work_once()
        watcher = pool._watcher
        if sleep is None:
            watcher.close()
            return
        del pool
        closed = watcher.poll(sleep)
        if closed is None:
            return
        if closed:
            pool = ref()
            if pool is None:
                return
            pool._peer_closed(closed)
            del pool


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
