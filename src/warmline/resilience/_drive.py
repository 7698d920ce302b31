"""The hedge race's loop, once for asyncio tasks and once for a thread executor.

Both only move attempts and results between a :class:`HedgeRace` (which
decides) and the shell's ``send`` (which sends the request once on a
connection of its own): a client gives one that calls its origin's pool, a
pool one that sends on another of its slots. See :mod:`._race` for the loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from functools import partial
from typing import Any, TypeVar

from warmline._policy import DEFAULT, TimeoutArg
from warmline.errors import PoolClosed, PoolError
from warmline.resilience._race import HedgeRace

__all__ = ["HedgeThreads", "SlotAttempts", "race_async", "race_sync"]

R = TypeVar("R")


def _consume(task: asyncio.Task[Any]) -> None:
    # A loser's error is expected; reading it keeps asyncio from logging
    # "Task exception was never retrieved".
    if not task.cancelled():
        task.exception()


async def race_async(race: HedgeRace, send: Callable[[int], Coroutine[Any, Any, R]]) -> R:
    """Run ``race`` with asyncio tasks: the first response of its attempts.

    Args:
        race: The request's race (its first attempt counted as sent).
        send: ``send(i)`` makes the coroutine of attempt ``i``: the request
            sent once, on a connection no other attempt holds.

    Returns:
        The winning attempt's response. The losers are cancelled (their
        pools abandon their connections, whose state is unknown, and heal);
        when the caller is cancelled, every attempt is cancelled and awaited
        first, so no task outlives the request.

    Raises:
        Exception: The earliest attempt's error, once every attempt failed.
    """
    loop = asyncio.get_running_loop()
    clock = time.monotonic

    def start(index: int) -> asyncio.Task[R]:
        task = loop.create_task(send(index))
        task.add_done_callback(_consume)
        return task

    tasks = [start(0)]
    pending: set[asyncio.Task[R]] = {tasks[0]}
    winner = -1
    try:
        while True:
            done, pending = await asyncio.wait(
                pending, timeout=race.wait(clock()), return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                if race.timer(clock()):
                    task = start(len(tasks))
                    tasks.append(task)
                    pending.add(task)
                continue
            for index, task in enumerate(tasks):
                if task not in done:
                    continue
                exc = task.exception()
                if exc is None:
                    winner = index
                    race.won(index, clock())
                    return task.result()
                error = race.failed(index, exc)
                if error is not None:
                    raise error
    except BaseException:
        live = [tasks[i] for i in race.losers(winner)]
        for task in live:
            task.cancel()
        if live:  # the caller was cancelled: no attempt outlives it
            await asyncio.wait(live)
        raise
    finally:
        for i in race.losers(winner):
            tasks[i].cancel()


def race_sync(
    race: HedgeRace,
    submit: Callable[[Callable[[], R]], Future[R]],
    send: Callable[[int], R],
    interrupt: Callable[[int], None],
) -> R:
    """Run ``race`` on a thread executor: the first response of its attempts.

    Args:
        race: The request's race (its first attempt counted as sent).
        submit: Starts a call on another thread (``executor.submit``).
        send: ``send(i)`` sends attempt ``i`` and returns its response, on a
            connection no other attempt holds.
        interrupt: ``interrupt(i)`` stops attempt ``i`` from another thread
            (a blocking read cannot be cancelled: the shell shuts its socket
            down, so that its connection is discarded, never reused). Called
            for every loser; it must do nothing when the attempt already
            ended.

    Returns:
        The winning attempt's response.

    Raises:
        Exception: The earliest attempt's error, once every attempt failed.
    """
    clock = time.monotonic
    futures = [submit(partial(send, 0))]
    pending: set[Future[R]] = {futures[0]}
    winner = -1
    try:
        while True:
            done, pending = wait(pending, timeout=race.wait(clock()), return_when=FIRST_COMPLETED)
            if not done:
                if race.timer(clock()):
                    index = len(futures)
                    future = submit(partial(send, index))
                    futures.append(future)
                    pending.add(future)
                continue
            for index, future in enumerate(futures):
                if future not in done:
                    continue
                exc = future.exception()
                if exc is None:
                    winner = index
                    race.won(index, clock())
                    return future.result()
                error = race.failed(index, exc)
                if error is not None:
                    raise error
    finally:
        for i in race.losers(winner):
            futures[i].cancel()  # one not started yet never runs
            interrupt(i)


# What a hedged attempt that lost raises in its own thread (nobody reads it):
# a PoolError, so that the pool's stale-connection retry never sends it again.
_LOST = "hedged attempt lost the race: its connection is closed"


class SlotAttempts:
    """``send`` and ``interrupt`` for :func:`race_sync` on an ``AtomicClientPool``.

    Each attempt leases a slot of its own (``pool.acquire``, waiting as
    ``pool.get`` would) and sends on it, so that a loser can be stopped: a
    blocking read cannot be cancelled, but shutting its socket down (from
    the winner's thread) wakes it with an error, and the pool discards the
    connection on release. Like the asyncio client's cancelled loser, it is
    never reused in an unknown state, and its slot heals at once instead of
    waiting out the slow response. The lock orders an interrupt against the
    attempt's release, so a slot already handed back to the pool (and maybe
    to another request) is never touched.

    Args:
        pool: The ``AtomicClientPool`` to send on (typed loosely: this module
            is shared by the shells and imports none of them).
        call: ``(method, path, params, headers, content, json)``, as the
            pool's ``_request`` takes them (method upper case).
        timeout: The request's timeout argument (``DEFAULT``: the pool's).
        deadline: The request's deadline (``time.monotonic`` clock), or
            None: each attempt's timeout is what is left of it.
        wait: The request's ``acquire_timeout`` (``DEFAULT``: the pool's rule).
    """

    __slots__ = ("_call", "_deadline", "_lock", "_over", "_pool", "_slots", "_timeout", "_wait")

    def __init__(
        self,
        pool: Any,
        call: tuple[Any, ...],
        timeout: TimeoutArg,
        deadline: float | None,
        wait: TimeoutArg = DEFAULT,
    ) -> None:
        self._pool = pool
        self._call = call
        self._timeout = timeout
        self._deadline = deadline
        self._wait = wait
        self._lock = threading.Lock()
        self._slots: dict[int, Any] = {}
        self._over: set[int] = set()

    def send(self, index: int) -> Any:
        """Attempt ``index``: the request sent once on a slot of its own."""
        pool, deadline = self._pool, self._deadline
        timeout = self._timeout
        if deadline is not None:
            timeout = max(0.0, deadline - time.monotonic())
        lease = pool.acquire(timeout=pool._acquire_wait(timeout, self._wait))
        try:
            with self._lock:
                if index in self._over:
                    raise PoolError(_LOST)
                self._slots[index] = lease
            return lease._send((*self._call, timeout))
        finally:
            with self._lock:
                self._slots.pop(index, None)
            lease.release()

    def interrupt(self, index: int) -> None:
        """Stop attempt ``index`` (it lost): close its connection under its read."""
        with self._lock:
            self._over.add(index)
            lease = self._slots.get(index)
            slot = None if lease is None else lease._slot
            conn = None if slot is None else slot.conn
            # Only a read in flight is stopped: an attempt not yet sending
            # runs (a duplicate of an idempotent request, read to its end),
            # one already done hands back a connection in a known state.
            if conn is not None and conn.busy:
                conn.close(PoolError(_LOST))


class HedgeThreads:
    """The threads a blocking client's or pool's hedged attempts run on: an
    executor made on first use (most requests never hedge), shut down at
    ``close()`` without waiting (attempts still running end with PoolClosed,
    their connections closed under them).

    Args:
        workers: The most attempts at once (slots times one plus the extras).
        closed: PoolClosed's message once shut down.
    """

    __slots__ = ("_closed", "_executor", "_lock", "_message", "_workers")

    def __init__(self, workers: int, closed: str) -> None:
        self._workers = workers
        self._message = closed
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[[], R]) -> Future[R]:
        """Run ``fn`` on a hedge thread.

        Raises:
            PoolClosed: After :meth:`shutdown`.
        """
        executor = self._executor
        if executor is None:
            with self._lock:
                if self._closed:
                    raise PoolClosed(self._message)
                executor = self._executor
                if executor is None:
                    executor = ThreadPoolExecutor(
                        self._workers, thread_name_prefix="warmline-hedge"
                    )
                    self._executor = executor
        try:
            return executor.submit(fn)
        except RuntimeError:  # shut down by close() on another thread
            raise PoolClosed(self._message) from None

    def shutdown(self) -> None:
        """No more attempts; those running are not waited for."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def after_fork(self) -> None:
        """In a child process: the executor's threads are the parent's."""
        self._lock = threading.Lock()
        self._executor = None
