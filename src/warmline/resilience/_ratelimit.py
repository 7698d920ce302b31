"""A weighted rate limiter for asyncio and threads at once: GCRA plus a FIFO of waiters.

The rule lives in :class:`RateCore`, which is pure: every method takes ``now``
and nothing reads a clock, sleeps or locks, so rates and bursts are tested
exactly with a fake clock. :class:`RateLimiter` is the shell: one
``threading.Lock`` around the core, a clock, and the two ways to wait
(``await take()`` on an event loop, ``take_sync()`` in a thread). One
limiter object serves coroutines on any number of loops and threads at once.

GCRA (the generic cell rate algorithm) is a token bucket stored as one float:
the *theoretical arrival time* ``tat``. With ``T = per / rate`` seconds per
unit of weight and a bucket of ``burst`` units, a take of weight ``w`` at
``now`` conforms when ``max(tat, now) + w*T - now <= burst*T``, and then
moves ``tat`` there. The bucket holds ``burst - max(0, tat - now) / T`` units.
Over any span of ``t`` seconds at most ``burst + rate * t / per`` units pass.

Fairness: waiters form one FIFO queue. Only its head waits for budget (with a
timer until the moment its weight conforms); the others wait to be woken when
the head leaves. While anyone waits, ``try_take`` answers False, so a heavy
waiter at the head is never starved by light requests that arrive later.
Nothing is reserved for a waiter before it is served, so a waiter that is
cancelled or times out leaves no capacity behind.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Final

from warmline.errors import RateLimited
from warmline.resilience._retry import HeadersGet, parse_retry_after

__all__ = ["RateCore", "RateLimiter", "Waiter"]

# Float sums of many weights times T drift by a few ulps; without this slack
# the 10th take of weight 1 from a full bucket of 10 could be refused. It lets
# through at most a billionth of the burst more than the exact rule.
_SLACK: Final = 1e-9

# Statuses whose Retry-After pauses every caller of the limiter: 429 Too Many
# Requests (RFC 6585 §4) and 418, which Binance-style APIs send with an IP ban.
_PAUSE_STATUSES: Final = frozenset({418, 429})

_WAITING: Final = 0
_GRANTED: Final = 1
_CANCELLED: Final = 2


def _check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"RateLimiter {name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"RateLimiter {name} must be a finite number > 0, got {value!r}")
    return float(value)


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and not (isinstance(timeout, int | float) and timeout >= 0):
        raise ValueError(f"timeout must be None or a number >= 0, got {timeout!r}")


class Waiter:
    """One caller queued in a :class:`RateCore`; shells subclass it with ``wake``.

    Attributes:
        weight: The weight it waits for.
        state: Waiting, granted or cancelled (set by the core only).
    """

    __slots__ = ("state", "weight")

    def __init__(self, weight: float) -> None:
        self.weight = weight
        self.state = _WAITING

    def wake(self) -> bool:
        """Make the waiter poll again, from any thread; False if it never can."""
        raise NotImplementedError

    @property
    def granted(self) -> bool:
        return self.state == _GRANTED


class RateCore:
    """The limiter's state and rules, sans-I/O: every method takes ``now``.

    Not thread-safe by itself; :class:`RateLimiter` calls it under a lock.

    Args:
        rate: Units of weight allowed per ``per`` seconds.
        per: The period of ``rate``, in seconds.
        burst: Most units that may pass at once (bucket size); ``rate`` if None.

    Attributes:
        interval: Seconds per unit of weight (``per / rate``).
        burst: Bucket size in units.
        tat: Theoretical arrival time: the bucket is full from then on.
        paused_until: No take conforms before this time.
    """

    __slots__ = ("_limit", "burst", "interval", "paused_until", "queue", "queued_weight", "tat")

    def __init__(self, rate: float, per: float = 1.0, burst: float | None = None) -> None:
        rate = _check_positive("rate", rate)
        per = _check_positive("per", per)
        self.burst = rate if burst is None else _check_positive("burst", burst)
        self.interval = per / rate
        self._limit = self.burst * self.interval * (1.0 + _SLACK)
        self.tat = -math.inf
        self.paused_until = -math.inf
        self.queue: deque[Waiter] = deque()
        self.queued_weight = 0.0

    def check_weight(self, weight: float) -> None:
        """Refuse a weight that could never pass (above the burst) or is negative."""
        if not 0.0 <= weight <= self.burst:
            raise ValueError(f"weight must be in [0, burst={self.burst:g}], got {weight!r}")

    def try_take(self, now: float, weight: float) -> bool:
        """Take ``weight`` units if they conform now and nobody is queued."""
        if self.queue or now < self.paused_until:
            return False
        tat = self.tat if self.tat > now else now
        tat += weight * self.interval
        if tat - now > self._limit:
            return False
        self.tat = tat
        return True

    def delay(self, now: float, weight: float) -> float:
        """Seconds from ``now`` until ``weight`` units conform (queue ignored)."""
        tat = self.tat if self.tat > now else now
        ready = tat + weight * self.interval - self._limit
        return max(0.0, ready - now, self.paused_until - now)

    def available(self, now: float) -> float:
        """Units that could be taken now (0 while paused)."""
        if now < self.paused_until:
            return 0.0
        used = max(0.0, self.tat - now) / self.interval
        return max(0.0, self.burst - used)

    def enqueue(self, now: float, waiter: Waiter, timeout: float | None) -> None:
        """Queue ``waiter``, or raise RateLimited if its turn comes after ``timeout``.

        The estimate counts the weight of everyone queued ahead; it is exact
        unless a pause or an ``observe`` comes in between.
        """
        estimate = self.delay(now, self.queued_weight + waiter.weight)
        if timeout is not None and estimate > timeout:
            raise RateLimited(
                f"rate limit: weight {waiter.weight:g} would wait {estimate:.3f}s,"
                f" over the timeout of {timeout:g}s",
                retry_after=estimate,
            )
        self.queue.append(waiter)
        self.queued_weight += waiter.weight

    def poll(self, now: float, waiter: Waiter) -> float | None:
        """Serve ``waiter`` if it is at the head and conforms.

        Returns:
            0.0 when served (``waiter.granted``; the shell then wakes
            :meth:`head`), seconds to wait when it is the head, None when it
            must wait for the waiters ahead of it.
        """
        if self.queue[0] is not waiter:
            return None
        wait = self.delay(now, waiter.weight)
        if wait > 0.0:
            return wait
        self.tat = (self.tat if self.tat > now else now) + waiter.weight * self.interval
        waiter.state = _GRANTED
        self.queue.popleft()
        self._dequeued(waiter.weight)
        return 0.0

    def head(self) -> Waiter | None:
        """The waiter to be served next, if any."""
        return self.queue[0] if self.queue else None

    def cancel(self, waiter: Waiter) -> Waiter | None:
        """Drop a waiting ``waiter``; returns the new head to wake, if it changed."""
        if waiter.state != _WAITING:
            return None
        was_head = self.queue[0] is waiter
        waiter.state = _CANCELLED
        # Pruned now if it was the head; otherwise when it reaches the head,
        # so that cancelling is O(1) however long the queue.
        self._dequeued(waiter.weight)
        return self.head() if was_head else None

    def _dequeued(self, weight: float) -> None:
        # Cancelled waiters never stay at the head, so a non-empty queue always
        # means a live waiter is first (try_take relies on it).
        queue = self.queue
        while queue and queue[0].state == _CANCELLED:
            queue.popleft()
        self.queued_weight = self.queued_weight - weight if queue else 0.0

    def refund(self, weight: float) -> None:
        """Give back a take whose caller never got it (an interrupt after the grant).

        Removing one past take from the history can only leave more budget
        at every later moment, so moving ``tat`` back by its cost never lets
        more through than the rule allows.
        """
        self.tat -= weight * self.interval

    def pause_until(self, when: float) -> None:
        """No take before ``when``; an earlier pause is extended, never shortened."""
        self.paused_until = max(self.paused_until, when)

    def observe(
        self, now: float, used: float, limit: float | None, reset_after: float | None
    ) -> None:
        """Tighten the bucket to the server's own count; see RateLimiter.observe."""
        if not (math.isfinite(used) and used >= 0):
            raise ValueError(f"used must be a finite number >= 0, got {used!r}")
        if limit is None:
            remaining = self.burst - used
        else:
            _check_positive("limit", limit)
            remaining = (limit - used) * (self.burst / limit)
        remaining = min(self.burst, max(0.0, remaining))
        floor = now + (self.burst - remaining) * self.interval
        self.tat = max(self.tat, floor)
        if remaining <= 0.0 and reset_after is not None:
            self.pause_until(now + max(0.0, reset_after))


class _ThreadWaiter(Waiter):
    __slots__ = ("event",)

    def __init__(self, weight: float) -> None:
        super().__init__(weight)
        self.event = threading.Event()

    def wake(self) -> bool:
        self.event.set()
        return True


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _AsyncWaiter(Waiter):
    __slots__ = ("fut", "loop", "thread")

    def __init__(self, weight: float, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(weight)
        self.loop = loop
        self.thread = threading.get_ident()
        self.fut: asyncio.Future[None] | None = None

    def wake(self) -> bool:
        fut = self.fut
        if fut is None:
            return True
        if threading.get_ident() == self.thread:
            _resolve(fut)
            return True
        try:
            self.loop.call_soon_threadsafe(_resolve, fut)
        except RuntimeError:  # its loop is closed: it will never poll again
            return False
        return True


class RateLimiter:
    """A weighted rate limit shared by any number of coroutines and threads.

    ``try_take`` never waits (the hot path next to ``pool.try_acquire()``);
    ``await take()`` and ``take_sync()`` wait their turn in one FIFO queue,
    and raise :class:`~warmline.errors.RateLimited` at once when the wait
    would outlast their timeout. A 429 or 418 with ``Retry-After`` pauses
    the limiter for every caller (:meth:`on_response`), and :meth:`observe`
    tightens it to the server's own counter.

    Args:
        rate: Units of weight allowed per ``per`` seconds (> 0).
        per: The period of ``rate`` in seconds (> 0).
        burst: Most units that may pass at once; ``rate`` if None (a full
            period's budget, as in aiolimiter). A take heavier than this can
            never pass and raises ValueError.
        clock: Monotonic seconds; inject a fake one to test. Waiting still
            sleeps in real time.

    Note:
        A GCRA lets ``burst + rate * t / per`` units through in any span
        ``t``, so against a server that counts per fixed window (Binance:
        weight per calendar minute) a full burst at a window's end plus the
        refill can exceed the server's count. Feed the server's counter back
        with :meth:`observe`, or choose a smaller ``burst``.

    Example:
        >>> limiter = RateLimiter(1200, per=60.0)        # 1200 weight a minute
        >>> limiter.try_take(20)
        True

    Performance (CPython 3.11, a loaded 2-core VM; timeit best of runs and
    callgrind instructions; ``benchmarks/resilience_micro.py``): ``try_take``
    costs 0.29 µs / 3.7k instructions, granted or refused. Of that, the
    uncontended ``threading.Lock`` is 2.0k and the rule (``RateCore``) 1.6k.
    The lock stays: the limiter is shared by threads, and without it two
    threads can both see the same budget and both take it. For scale, the
    Python side of a pooled asyncio GET is 35k instructions
    (``benchmarks/hotpath.py``), and a real one adds its syscalls.
    """

    __slots__ = ("_burst", "_clock", "_core", "_lock")

    def __init__(
        self,
        rate: float,
        per: float = 1.0,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._core = RateCore(rate, per, burst)
        self._burst = self._core.burst
        self._clock = clock
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        core = self._core
        return (
            f"<RateLimiter {1.0 / core.interval:g}/s burst={core.burst:g}"
            f" waiting={len(core.queue)}>"
        )

    @property
    def burst(self) -> float:
        return self._burst

    @property
    def waiting(self) -> int:
        """Callers queued now (cancelled ones still in the queue included)."""
        return len(self._core.queue)

    def available(self) -> float:
        """Units that could be taken now, ignoring waiters (0 while paused)."""
        with self._lock:
            return self._core.available(self._clock())

    def paused_for(self) -> float:
        """Seconds left in the current pause (0.0 when not paused)."""
        with self._lock:
            return max(0.0, self._core.paused_until - self._clock())

    def try_take(self, weight: float = 1) -> bool:
        """Take ``weight`` units if available now; never waits, never queues.

        Returns False while paused or while other callers wait their turn.

        Raises:
            ValueError: ``weight`` is negative or above ``burst``.
        """
        if not 0.0 <= weight <= self._burst:
            self._core.check_weight(weight)
        # acquire/try/finally rather than `with`: 3,600 instead of 4,700
        # instructions per call (callgrind), the same guarantee.
        lock = self._lock
        lock.acquire()
        try:
            return self._core.try_take(self._clock(), weight)
        finally:
            lock.release()

    async def take(self, weight: float = 1, timeout: float | None = None) -> None:
        """Wait until ``weight`` units are granted, in FIFO order.

        Cancelling the caller at any point leaves nothing taken or reserved.

        Args:
            weight: Units to take, in [0, burst].
            timeout: Longest wait in seconds; None waits as long as needed.

        Raises:
            RateLimited: At once if the wait would exceed ``timeout`` (its
                ``retry_after`` says how long it would be), or when a pause
                that arrived meanwhile pushes the turn past it.
            ValueError: ``weight`` out of range or a bad timeout.
        """
        self._core.check_weight(weight)
        _check_timeout(timeout)
        with self._lock:
            now = self._clock()
            if self._core.try_take(now, weight):
                return
            waiter = _AsyncWaiter(weight, asyncio.get_running_loop())
            self._core.enqueue(now, waiter, timeout)
        deadline = None if timeout is None else now + timeout
        try:
            await self._wait_async(waiter, deadline)
        except BaseException:
            self._abandon(waiter)
            raise

    def take_sync(self, weight: float = 1, timeout: float | None = None) -> None:
        """Block the calling thread until ``weight`` units are granted (FIFO).

        Same contract as :meth:`take`; an exception while waiting (such as
        KeyboardInterrupt) leaves nothing taken or reserved.
        """
        self._core.check_weight(weight)
        _check_timeout(timeout)
        with self._lock:
            now = self._clock()
            if self._core.try_take(now, weight):
                return
            waiter = _ThreadWaiter(weight)
            self._core.enqueue(now, waiter, timeout)
        deadline = None if timeout is None else now + timeout
        try:
            self._wait_thread(waiter, deadline)
        except BaseException:
            self._abandon(waiter)
            raise

    async def _wait_async(self, waiter: _AsyncWaiter, deadline: float | None) -> None:
        loop = waiter.loop
        while True:
            fut = loop.create_future()
            with self._lock:
                waiter.fut = fut  # before polling, so that no wake-up is lost
                now = self._clock()
                delay = self._core.poll(now, waiter)
            if delay == 0.0:
                self._wake_next()
                return
            sleep = self._sleep_for(waiter, now, delay, deadline)
            handle = None if sleep is None else loop.call_later(sleep, _resolve, fut)
            try:
                await fut
            finally:
                if handle is not None:
                    handle.cancel()

    def _wait_thread(self, waiter: _ThreadWaiter, deadline: float | None) -> None:
        while True:
            with self._lock:
                waiter.event.clear()  # before polling, so that no wake-up is lost
                now = self._clock()
                delay = self._core.poll(now, waiter)
            if delay == 0.0:
                self._wake_next()
                return
            waiter.event.wait(self._sleep_for(waiter, now, delay, deadline))

    def _sleep_for(
        self, waiter: Waiter, now: float, delay: float | None, deadline: float | None
    ) -> float | None:
        """How long to sleep before polling again; RateLimited once past the deadline."""
        if deadline is None:
            return delay
        left = deadline - now
        if left <= 0.0:
            with self._lock:
                estimate = self._core.delay(now, waiter.weight)
            raise RateLimited(
                f"rate limit: weight {waiter.weight:g} not granted within the timeout",
                retry_after=estimate,
            )
        return left if delay is None else min(delay, left)

    def _abandon(self, waiter: Waiter) -> None:
        with self._lock:
            if waiter.granted:
                self._core.refund(waiter.weight)
                return
            nxt = self._core.cancel(waiter)
        self._wake_chain(nxt)

    def _wake_next(self) -> None:
        with self._lock:
            nxt = self._core.head()
        self._wake_chain(nxt)

    def _wake_chain(self, nxt: Waiter | None) -> None:
        # A waiter whose event loop is closed can never poll again; drop it so
        # it does not block the queue, and wake the one after it instead.
        while nxt is not None and not nxt.wake():
            with self._lock:
                nxt = self._core.cancel(nxt)

    def pause(self, seconds: float) -> None:
        """Let nothing through for ``seconds`` (all callers, at once)."""
        if not (isinstance(seconds, int | float) and seconds >= 0):
            raise ValueError(f"pause needs seconds >= 0, got {seconds!r}")
        with self._lock:
            self._core.pause_until(self._clock() + seconds)

    def pause_until(self, when: float) -> None:
        """Let nothing through before ``when`` (this limiter's clock, monotonic)."""
        if not (isinstance(when, int | float) and not math.isnan(when)):
            raise ValueError(f"pause_until needs a time, got {when!r}")
        with self._lock:
            self._core.pause_until(when)

    def on_response(
        self, status: int, headers_get: HeadersGet, *, now_epoch: float
    ) -> float | None:
        """Pause every caller when a 429 or 418 carries a usable ``Retry-After``.

        Args:
            status: The response status.
            headers_get: Case-insensitive header lookup
                (``response.headers.get``); asked for ``"retry-after"``.
            now_epoch: Current Unix time, for an HTTP-date ``Retry-After``.

        Returns:
            The pause in seconds, or None when the response pauses nothing.
        """
        if status not in _PAUSE_STATUSES:
            return None
        seconds = parse_retry_after(headers_get("retry-after"), now_epoch)
        if seconds is not None:
            self.pause(seconds)
        return seconds

    def observe(
        self, used: float, limit: float | None = None, *, reset_after: float | None = None
    ) -> None:
        """Correct the bucket from the server's own usage counter.

        For example Binance's ``X-MBX-USED-WEIGHT-1M`` (weight used in the
        current minute): ``limiter.observe(float(value), 1200)``. The
        remaining share ``(limit - used) / limit`` of the server's budget
        becomes the most this bucket may hold, scaled to ``burst`` (so a
        margin chosen with a smaller ``burst`` is kept). Without ``limit``,
        ``used`` counts in this limiter's units against ``burst``.

        The bucket is only ever tightened: a late response carrying an old,
        lower count cannot hand out budget the server no longer has.

        Args:
            used: Units the server counts as used now (>= 0).
            limit: The server's budget for its window, if known.
            reset_after: Seconds until the server's window resets; when the
                budget is spent, the limiter pauses until then.
        """
        with self._lock:
            self._core.observe(self._clock(), used, limit, reset_after)
