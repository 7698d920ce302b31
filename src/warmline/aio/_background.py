"""A ClientPool's work off the request path: heals, keep-warm pings, the idle sweep.

The pool core decides: which slot heals and when (its backoff), which idle
slots are due for a keep-warm ping, which are past their age. This module
runs those decisions on the pool's loop, as tasks (a heal, a ping) and
timers (the sweep, the next ping), and ``stop()`` ends all of them at
``close()``. Nothing here runs inside a caller's request; the thread pool's
counterpart is its worker (:mod:`warmline.sync._background`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from time import monotonic
from typing import TYPE_CHECKING, Any

from warmline._policy import FailureLog
from warmline._pool import Plan, Slot
from warmline._pool._state import HEALING
from warmline.errors import ConnectionClosed, WarmlineError

if TYPE_CHECKING:
    from warmline.aio._connection import Connection
    from warmline.aio._pool import ClientPool

__all__ = ["Background"]


class Background:
    """The heal tasks, keep-warm pings and idle sweep of one :class:`ClientPool`."""

    __slots__ = ("_failure_log", "_pinger", "_pool", "_sweeper", "_tasks")

    def __init__(self, pool: ClientPool) -> None:
        self._pool = pool
        self._tasks: set[asyncio.Task[None]] = set()
        self._failure_log = FailureLog()
        self._sweeper: asyncio.TimerHandle | None = None
        self._pinger: asyncio.TimerHandle | None = None

    @property
    def pinging(self) -> bool:
        """Whether keep-warm pings are scheduled."""
        return self._pinger is not None

    def start(self) -> None:
        """After ``connect()``: the sweep when the pool has ages, pings when it keeps warm."""
        core = self._pool._core
        if core.ages:
            self._schedule_sweep()
        if core.keep_warm is not None:
            self.schedule_ping()

    def heal(self, slot: Slot[Connection]) -> None:
        """Reconnect ``slot`` in the background, as the core's backoff allows."""
        self._spawn(self._heal_loop(slot))

    async def stop(self) -> None:
        """``close()``: no more timers; every heal and ping cancelled and awaited."""
        for timer in (self._sweeper, self._pinger):
            if timer is not None:
                timer.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = self._pool._loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the idle sweep ------------------------------------------------------
    def _schedule_sweep(self) -> None:
        pool = self._pool
        core = pool._core
        ages = [t for t in (core.idle_timeout, core.max_lifetime) if t is not None]
        self._sweeper = pool._loop.call_later(min(ages) / 2, self._sweep)

    def _sweep(self) -> None:
        # Reconnect ready slots past their age now, in the background, so
        # that try_acquire finds them fresh instead of stale.
        pool = self._pool
        if pool._core.closed:
            return
        plan: Plan[Connection] = Plan()
        pool._core.sweep(pool._loop.time(), plan)
        pool._carry_out(plan)
        self._schedule_sweep()

    # -- keep-warm pings -----------------------------------------------------
    def schedule_ping(self) -> None:
        """Wake when the next idle slot is due for a ping (the core says when)."""
        pool = self._pool
        core = pool._core
        assert core.keep_warm is not None
        due = core.next_ping()
        at = pool._loop.time() + core.keep_warm if due is None else due
        self._pinger = pool._loop.call_at(at, self._ping_due)

    def _ping_due(self) -> None:
        pool = self._pool
        core = pool._core
        if core.closed:
            return
        for slot in core.due_for_ping(pool._loop.time()):
            self._spawn(self._ping(slot))  # cancelled by stop() like the heals
        self.schedule_ping()

    async def _ping(self, slot: Slot[Connection]) -> None:
        """One keep-warm request on a slot the core took off the stack."""
        pool = self._pool
        method, data = pool._config.ping()
        conn = slot.conn
        connect_timeout = pool._config.connect_timeout
        deadline = pool._loop.time() + (connect_timeout or 5.0)
        started = monotonic()
        status: int | None = None
        error: WarmlineError | None = None
        try:
            waiter = None if conn is None else conn.send(data, method, deadline)
            if waiter is None:
                error = ConnectionClosed("connection closed before the keep-warm ping")
            else:
                status = (await waiter).status
                pool._stats.keep_warm_pings += 1
        except WarmlineError as exc:
            error = exc  # the connection is dead: the release below heals it
        except asyncio.CancelledError:
            if conn is not None:
                conn.abandon()
            raise
        finally:
            pool._release(slot)
        if pool._observer is not None:
            pool._observer.keep_warm(conn, status, monotonic() - started, error)

    # -- healing -------------------------------------------------------------
    async def _heal_loop(self, slot: Slot[Connection]) -> None:
        pool = self._pool
        core = pool._core
        loop = pool._loop
        while slot.state is HEALING and not core.closed:
            delay = slot.next_attempt - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            started = monotonic()
            try:
                conn = await pool._open_conn(slot)
            except WarmlineError as exc:
                failures = core.open_failed(slot, loop.time(), Plan())
                self._failure_log.failure(pool.origin, exc, failures)
                if pool._observer is not None:
                    pool._observer.heal(None, failures, monotonic() - started, exc)
                continue
            if pool._observer is not None:
                pool._observer.heal(conn, 0, monotonic() - started, None)
            plan: Plan[Connection] = Plan()
            core.opened(slot, conn, loop.time(), plan)
            pool._carry_out(plan)
            return
