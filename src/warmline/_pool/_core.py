"""The pool core: slots, the ready stack, the waiter queue and the heal rules.

Sans-I/O: no sockets, no asyncio, no threads, no clock reads. A shell (asyncio
or threads) owns the connections and the waiting; it tells the core what
happened, passing ``now`` on its own clock, and the core decides what to do:
which slot goes out, which waiter is served or failed, which connections to
close, which slots to reconnect and when. The decisions come back in a
:class:`Plan` that the shell carries out after the core returns (for the
thread shell, after it lets go of its lock: no syscall under the lock).

Costs: the hot path (:meth:`PoolCore.pop`, :meth:`PoolCore.push`) is one list
operation and one attribute store, so the thread shell can run it without a
lock under the GIL (``list.pop``/``list.append`` are atomic). Every other
operation is O(1) except where noted (``lost`` removes a slot from the middle
of the ready stack: O(ready), only when an idle connection dies).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Final, Generic, Protocol, TypeVar

from warmline._policy import IDEMPOTENT_METHODS, Backoff, PoolStats, StatsCounters
from warmline._pool._state import CLOSED, EMPTY, HEALING, IN_USE, OPENING, READY, move
from warmline.errors import (
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    PoolClosed,
    ProxyError,
    WarmlineError,
)

__all__ = [
    "PROVEN_AFTER_S",
    "Admission",
    "ConnLike",
    "Plan",
    "PoolCore",
    "Slot",
    "Waiter",
    "check_timeout",
    "connect_verdict",
]

# A connection that stayed up this long before its peer closed it proves that
# the server accepts us: its end is an idle close (a keep-alive timeout, 0.3 s
# on some servers), not a failure. One that dies sooner without ever serving
# a response is a server or balancer that accepts and drops: the next
# reconnect meets the backoff, so a dead origin cannot drive a reconnect loop.
PROVEN_AFTER_S: Final = 0.05


class ConnLike(Protocol):
    """What the core reads of a shell's connection (attributes, no I/O), and
    the one call the shells make on any of them (the core never calls it)."""

    @property
    def served(self) -> bool: ...

    @property
    def opened_at(self) -> float: ...

    def close(self, error: WarmlineError | None = None) -> None: ...


C = TypeVar("C", bound=ConnLike)


class Slot(Generic[C]):
    """One slot: its state, its connection and its reconnect bookkeeping."""

    __slots__ = ("conn", "failures", "idle_since", "index", "next_attempt", "state")

    def __init__(self, index: int) -> None:
        self.index = index
        self.state = EMPTY
        self.conn: C | None = None
        self.idle_since = 0.0  # when it last became ready (age checks only)
        # Reconnects in a row that failed, or whose connection died at once
        # without serving; the next attempt waits Backoff.delay(failures).
        self.failures = 0
        self.next_attempt = 0.0

    def __repr__(self) -> str:
        return f"<Slot {self.index} {self.state.name}>"


class Waiter:
    """A caller waiting for a slot; the shell subclasses it to add how it waits.

    The core serves a waiter by setting ``slot`` (a slot ``IN_USE``, or one
    ``OPENING`` that the waiter must open itself) or fails it by setting
    ``error``, and lists it in ``Plan.wake`` for the shell to wake.
    """

    __slots__ = ("error", "slot")

    def __init__(self) -> None:
        self.slot: Slot[Any] | None = None
        self.error: WarmlineError | None = None


class Plan(Generic[C]):
    """What the shell must do after a core call: wake, close, reconnect."""

    __slots__ = ("close", "heal", "redispatch", "wake")

    def __init__(self) -> None:
        self.wake: list[Waiter] = []
        self.close: list[C] = []
        self.heal: list[Slot[C]] = []
        # Other pools of the same client that a freed permit lets serve
        # their waiters: the shell calls their dispatch() next.
        self.redispatch: list[PoolCore[Any]] = []

    def __bool__(self) -> bool:
        return bool(self.wake or self.close or self.heal or self.redispatch)


_MISSING: Final[Any] = object()


class Admission:
    """Permits for a client's connections, open or opening, across its pools.

    ``Limits.total`` of them. A pool that needs one and finds none first
    closes the least recently used idle connection of another pool (its
    slot empties); failing that, its waiters wait, and the pool queues here
    (FIFO across pools) to be dispatched when a permit frees.
    """

    __slots__ = ("cores", "open", "total", "waiting")

    def __init__(self, total: int) -> None:
        self.total = total
        self.open = 0
        self.cores: list[PoolCore[Any]] = []
        self.waiting: OrderedDict[PoolCore[Any], None] = OrderedDict()

    def take(self, core: PoolCore[Any], plan: Plan[Any]) -> bool:
        """One permit for ``core``, evicting another pool's LRU idle one if need be."""
        if self.open < self.total or self._evict_for(core, plan):
            self.open += 1
            return True
        return False

    def give(self, plan: Plan[Any]) -> None:
        """A connection closed: its permit goes to the pool that waited longest."""
        self.open -= 1
        self._hand_over(plan)

    def wait(self, core: PoolCore[Any]) -> None:
        """``core`` has waiters and found no permit: queue it (once)."""
        if core not in self.waiting:
            self.waiting[core] = None
            if len(self.waiting) == 1:
                self._set_fast()

    def rebalance(self, plan: Plan[Any]) -> None:
        """A connection went idle while pools wait for a permit: close the
        least recently used idle one for the pool that waited longest."""
        if self.waiting and self._evict_for(next(iter(self.waiting)), plan):
            self._hand_over(plan)

    def _hand_over(self, plan: Plan[Any]) -> None:
        while self.waiting:
            core, _ = self.waiting.popitem(last=False)
            if core.waiters and core.empty and not core.closed:
                plan.redispatch.append(core)
                break
        if not self.waiting:
            self._set_fast()

    def _set_fast(self) -> None:
        # While any pool waits for a permit, every release must take the slow
        # path (to see whether its connection should go to that pool); the
        # hot path stays as cheap as a lone pool's the rest of the time.
        waiting = bool(self.waiting)
        for core in self.cores:
            core.fast = core.always_fast and not waiting

    def _evict_for(self, core: PoolCore[Any], plan: Plan[Any]) -> bool:
        # O(pools): the least recently used ready slot sits at the bottom of
        # each pool's LIFO stack.
        victim: PoolCore[Any] | None = None
        for other in self.cores:
            if other is core or not other.lazy or not other.ready or other.closed:
                continue  # warm (pre-connected) origins are never evicted
            if victim is None or other.ready[0].idle_since < victim.ready[0].idle_since:
                victim = other
        if victim is None:
            return False
        victim.evict_lru(plan)
        return True


class PoolCore(Generic[C]):
    """The state of one pool of ``size`` slots to one origin.

    Args:
        size: Number of slots.
        backoff: Delays between reconnect attempts.
        idle_timeout: A slot ready for longer than this is reconnected.
        max_lifetime: A connection older than this is replaced when it is
            next idle.
        lazy: Slots start empty and return to empty when their connection
            ends (opened on demand); otherwise dead slots heal in the
            background.
        keep_alive: False: a connection serves one request and closes.
        keep_warm: Ping a slot idle this long (seconds; see KeepWarm).
        admission: The client-wide permits this pool's connections need.
        retry_stale: Allow the one stale-connection retry (:meth:`retry_stale`).
        origin: For error messages.
    """

    def __init__(
        self,
        size: int,
        *,
        backoff: Backoff,
        idle_timeout: float | None = None,
        max_lifetime: float | None = None,
        lazy: bool = False,
        keep_alive: bool = True,
        keep_warm: float | None = None,
        retry_stale: bool = True,
        origin: str = "",
        admission: Admission | None = None,
    ) -> None:
        self.slots: list[Slot[C]] = [Slot(i) for i in range(size)]
        self.ready: list[Slot[C]] = []
        self.empty: list[Slot[C]] = list(self.slots) if lazy else []
        self.waiters: OrderedDict[Waiter, None] = OrderedDict()
        self.backoff = backoff
        self.idle_timeout = idle_timeout
        self.max_lifetime = max_lifetime
        # Whether a release must look at the clock (age rules): the shells
        # skip the clock read on the hot path when not.
        self.ages = idle_timeout is not None or max_lifetime is not None
        # Whether a usable slot may go back without the slow path (no age
        # rule, connections are reused): the shells test this on release.
        self.always_fast = not self.ages and keep_alive and keep_warm is None
        self.fast = self.always_fast
        self.keep_alive = keep_alive
        self.keep_warm = keep_warm
        self.lazy = lazy
        self.admission = admission
        if admission is not None:
            admission.cores.append(self)
        self.allow_stale_retry = retry_stale
        self.origin = origin
        self.closed = False
        self.stats = StatsCounters()
        self.shell: Any = None  # the pool object that drives this core

    # -- the hot path -------------------------------------------------------
    def pop(self) -> Slot[C] | None:
        """The warmest ready slot, now IN_USE, or None. The shell then checks
        that its connection is usable and, if not, calls :meth:`discard`."""
        try:
            slot = self.ready.pop()
        except IndexError:
            return None
        slot.state = IN_USE
        return slot

    def push(self, slot: Slot[C]) -> None:
        """Return a usable slot to the stack. Only when :meth:`fast_release` holds."""
        slot.state = READY
        self.ready.append(slot)

    def fast_release(self) -> bool:
        """Whether a usable slot may go straight back with :meth:`push`."""
        return self.fast and not (self.waiters or self.closed)

    # -- taking slots ---------------------------------------------------------
    def _permit(self, plan: Plan[C]) -> bool:
        admission = self.admission
        if admission is None or admission.take(self, plan):
            return True
        admission.wait(self)
        return False

    def _unpermit(self, plan: Plan[C]) -> None:
        if self.admission is not None:
            self.admission.give(plan)

    def evict_lru(self, plan: Plan[Any]) -> None:
        """Close the least recently used ready connection; its slot empties
        and its permit goes to the pool that asked (Admission.take)."""
        slot = self.ready.pop(0)
        conn = slot.conn
        slot.conn = None
        if conn is not None:
            plan.close.append(conn)
        move(slot, EMPTY)
        self.empty.append(slot)
        if self.admission is not None:
            self.admission.open -= 1

    def add_waiter(self, waiter: Waiter, plan: Plan[C]) -> None:
        """Queue a waiter (FIFO), then serve whoever can be served now."""
        if self.closed:
            waiter.error = PoolClosed("pool is closed", origin=self.origin)
            plan.wake.append(waiter)
            return
        self.waiters[waiter] = None
        self.stats.acquire_waits += 1
        self.dispatch(plan)

    def remove_waiter(self, waiter: Waiter) -> bool:
        """Take a waiter off the queue (timeout, cancel), O(1).

        Returns False if it was already served or failed: the caller then
        owns ``waiter.slot`` (and must release it) or raises ``waiter.error``.
        """
        return self.waiters.pop(waiter, _MISSING) is not _MISSING

    def dispatch(self, plan: Plan[C]) -> None:
        """Serve waiters first come first served, from ready then empty slots."""
        waiters = self.waiters
        if self.closed:
            self._close_ready(plan)
            return
        while waiters:
            slot = self.pop()
            if slot is None:
                if not self.empty or not self._permit(plan):
                    return
                slot = self.empty.pop()
                move(slot, OPENING)
            waiter, _ = waiters.popitem(last=False)
            waiter.slot = slot
            plan.wake.append(waiter)

    # -- giving slots back ----------------------------------------------------
    def release(self, slot: Slot[C], usable: bool, now: float, plan: Plan[C]) -> None:
        """A lease ends. ``usable``: its connection is idle and may be reused."""
        if slot.state is not IN_USE:
            return  # released twice, or the pool closed under the lease
        if self.closed:
            self._close_slot(slot, plan)
        elif not usable or not self.keep_alive or self.aged(slot, now):
            self.retire(slot, now, plan)
        else:
            slot.idle_since = now
            slot.state = READY
            self.ready.append(slot)
            self.dispatch(plan)
            if self.admission is not None and self.admission.waiting:
                self.admission.rebalance(plan)

    def discard(self, slot: Slot[C], now: float, plan: Plan[C]) -> None:
        """A slot just popped turned out unusable (dead, stale or aged)."""
        self.retire(slot, now, plan)

    def lost(self, slot: Slot[C], now: float, plan: Plan[C]) -> None:
        """An idle connection died (peer closed, reset): heal it now."""
        if slot.state is not READY:
            return  # in use: its user finds out; or already retired
        try:
            self.ready.remove(slot)
        except ValueError:
            return  # popped by a thread at this instant: it checks the connection
        self.retire(slot, now, plan)

    def retire(self, slot: Slot[C], now: float, plan: Plan[C]) -> None:
        """Close the slot's connection; reconnect it (warm) or empty it (lazy)."""
        conn = slot.conn
        slot.conn = None
        if conn is not None:
            slot.failures = 0 if self.proven(conn, now) else slot.failures + 1
            plan.close.append(conn)
        if self.closed:
            move(slot, CLOSED)
        elif self.lazy:
            move(slot, EMPTY)
            self.empty.append(slot)
            self._unpermit(plan)
            self.dispatch(plan)
        else:
            move(slot, HEALING)
            slot.next_attempt = now + self.backoff.delay(slot.failures)
            plan.heal.append(slot)

    def proven(self, conn: C, now: float) -> bool:
        """Whether a connection's end says nothing bad about the server."""
        return conn.served or now - conn.opened_at >= PROVEN_AFTER_S

    def aged(self, slot: Slot[C], now: float) -> bool:
        """Whether a ready slot is past ``idle_timeout`` or its connection past
        ``max_lifetime`` (then it is replaced rather than reused)."""
        if not self.ages:
            return False
        if self.idle_timeout is not None and now - slot.idle_since > self.idle_timeout:
            return True
        conn = slot.conn
        return (
            self.max_lifetime is not None
            and conn is not None
            and now - conn.opened_at > self.max_lifetime
        )

    def sweep(self, now: float, plan: Plan[C]) -> None:
        """Retire every ready slot past its age, before anyone trips on it."""
        for slot in [s for s in self.ready if self.aged(s, now)]:
            self.lost(slot, now, plan)

    # -- keeping warm -----------------------------------------------------------
    def due_for_ping(self, now: float) -> list[Slot[C]]:
        """Ready slots idle for the keep-warm interval, taken off the stack
        (IN_USE, held by the pool) for their ping; release them after it."""
        if self.keep_warm is None or self.closed:
            return []
        horizon = now - self.keep_warm
        due = [s for s in self.ready if s.idle_since <= horizon]
        for slot in due:
            self.ready.remove(slot)
            move(slot, IN_USE)
        return due

    def next_ping(self) -> float | None:
        """When the next keep-warm ping is due (None: none to send)."""
        if self.keep_warm is None or not self.ready:
            return None
        return min(s.idle_since for s in self.ready) + self.keep_warm

    # -- opening and healing --------------------------------------------------
    def opened(
        self, slot: Slot[C], conn: C, now: float, plan: Plan[C], *, keep: bool = False
    ) -> bool:
        """A connection opened for ``slot`` (connect(), a heal, or with ``keep``
        a caller's first use, who keeps the slot IN_USE). Returns False if the
        pool closed meanwhile (the connection is then in ``plan.close``)."""
        if self.closed:
            plan.close.append(conn)
            slot.state = CLOSED  # close() closed the slot already
            return False
        slot.conn = conn
        if keep:
            move(slot, IN_USE)
            return True
        if slot.state is HEALING:
            self.stats.reconnects += 1
        slot.idle_since = now
        move(slot, READY)
        self.ready.append(slot)
        self.dispatch(plan)
        return True

    def open_failed(self, slot: Slot[C], now: float, plan: Plan[C]) -> int:
        """Opening failed; returns the failures in a row (for the log)."""
        slot.failures += 1
        if slot.state is HEALING:
            self.stats.reconnect_failures += 1
            slot.next_attempt = now + self.backoff.delay(slot.failures)
        elif slot.state is OPENING:
            if self.lazy and not self.closed:
                move(slot, EMPTY)
                self.empty.append(slot)
                self._unpermit(plan)
                self.dispatch(plan)  # a waiter may try in its turn
            elif not self.closed:
                move(slot, HEALING)
                slot.next_attempt = now + self.backoff.delay(slot.failures)
                plan.heal.append(slot)
        return slot.failures

    def due(self, now: float) -> list[Slot[C]]:
        """Healing slots whose next attempt is due (O(size): the healer's pace)."""
        return [s for s in self.slots if s.state is HEALING and s.next_attempt <= now]

    def next_due(self) -> float | None:
        """When the next reconnect is due, or None if no slot heals."""
        times = [s.next_attempt for s in self.slots if s.state is HEALING]
        return min(times) if times else None

    # -- connect() ------------------------------------------------------------
    def start_connect(self) -> list[Slot[C]]:
        """connect(): every empty slot goes OPENING, to be opened at once."""
        slots = [s for s in self.slots if s.state is EMPTY]
        self.empty.clear()
        for slot in slots:
            move(slot, OPENING)
        return slots

    def open_later(self, slots: list[Slot[C]], now: float, plan: Plan[C]) -> None:
        """connect(require=0): the slots open in the background, due now."""
        for slot in slots:
            self.open_failed(slot, now, plan)  # OPENING -> HEALING
            slot.failures = 0
            slot.next_attempt = now

    def connected(
        self,
        slots: list[Slot[C]],
        results: list[Any],
        need: int,
        origin: str,
        now: float,
        plan: Plan[C],
    ) -> BaseException | None:
        """connect()'s opens ended: each result a connection or what its open
        raised. Record them; the error to raise when fewer than ``need``
        opened (see :func:`connect_verdict`), else None."""
        failures: list[BaseException] = []
        for slot, result in zip(slots, results, strict=True):
            if isinstance(result, BaseException):
                failures.append(result)
                self.open_failed(slot, now, plan)
            else:
                self.opened(slot, result, now, plan)
        return connect_verdict(failures, len(slots), need, origin)

    # -- requests -------------------------------------------------------------
    def retry_stale(self, exc: WarmlineError, method: str) -> bool:
        """Whether a request that failed with ``exc`` is sent once more on a fresh
        connection: its kept-alive connection was closed before any byte of the
        response arrived, and re-sending it is safe (RFC 9112 §9.3.1: idempotent
        methods only). ``method`` is upper case (the shells' entry points see to
        it)."""
        if (
            self.allow_stale_retry
            and isinstance(exc, ConnectionClosed)
            and not exc.received_any
            and method in IDEMPOTENT_METHODS
        ):
            self.stats.stale_retries += 1
            return True
        return False

    # -- closing and forking ----------------------------------------------------
    def close(self, plan: Plan[C]) -> list[C]:
        """Close the pool: fail waiters, close every connection, stop healing.

        Returns the connections of slots in use, which the shell must also
        close, failing any request in flight on them with PoolClosed.
        """
        in_flight: list[C] = []
        if self.closed:
            return in_flight
        self.closed = True
        while self.waiters:
            waiter, _ = self.waiters.popitem(last=False)
            waiter.error = PoolClosed("pool closed", origin=self.origin)
            plan.wake.append(waiter)
        self.ready.clear()
        self.empty.clear()
        for slot in self.slots:
            if slot.conn is not None:
                (in_flight if slot.state is IN_USE else plan.close).append(slot.conn)
                slot.conn = None
            if slot.state is not EMPTY and slot.state is not CLOSED:
                self._unpermit(plan)
            slot.state = CLOSED
        if self.admission is not None:
            self.admission.cores.remove(self)
            self.admission.waiting.pop(self, None)
        return in_flight

    def _close_ready(self, plan: Plan[C]) -> None:
        # Slots pushed back by a lock-free release that raced close().
        while self.ready:
            self._close_slot(self.ready.pop(), plan)

    def _close_slot(self, slot: Slot[C], plan: Plan[C]) -> None:
        if slot.conn is not None:
            plan.close.append(slot.conn)
            slot.conn = None
        move(slot, CLOSED)

    def after_fork(self) -> list[C]:
        """In a forked child: forget every connection (they are the parent's
        too) and every waiter (their threads did not survive the fork); every
        live slot reconnects. Returns the connections, for the shell to drop
        without a shutdown (which would cut the parent's)."""
        inherited = [s.conn for s in self.slots if s.conn is not None]
        self.waiters.clear()
        self.ready.clear()
        self.empty.clear()
        for slot in self.slots:
            slot.conn = None
            slot.failures = 0
            slot.next_attempt = 0.0
            if slot.state is CLOSED:
                continue
            if self.lazy:
                slot.state = EMPTY
                self.empty.append(slot)
            else:
                slot.state = HEALING
        return inherited

    # -- introspection ----------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Slots per state name (lower case)."""
        out = {state.name.lower(): 0 for state in type(EMPTY)}
        for slot in self.slots:
            out[slot.state.name.lower()] += 1
        return out

    def snapshot(self) -> PoolStats:
        c = self.counts()
        return self.stats.snapshot(
            ready=c["ready"],
            in_use=c["in_use"] + c["opening"],
            reconnecting=c["healing"],
            size=len(self.slots),
        )

    def describe(self) -> str:
        c = self.counts()
        state = "closed" if self.closed else "open"
        return (
            f"{self.origin} {state}: {c['ready']} ready, {c['in_use'] + c['opening']} in use, "
            f"{c['healing']} reconnecting"
        )


def check_timeout(value: object, name: str, *, allow_none: bool = True) -> float | None:
    """Validate a timeout option: a finite number >= 0, ``inf`` (none) or None.

    Raises:
        TypeError: Not a number (a str, say).
        ValueError: Negative or NaN.
    """
    if value is None:
        if allow_none:
            return None
        raise ValueError(f"{name} must be a number of seconds, not None")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds or None, got {value!r}")
    if math.isnan(value) or value < 0:
        raise ValueError(f"{name} must be >= 0 seconds (or None for no limit), got {value!r}")
    if math.isinf(value):
        return None
    return float(value)


def connect_verdict(
    failures: list[BaseException], size: int, need: int, origin: str
) -> BaseException | None:
    """connect()'s verdict once every attempt ended: None if enough opened.

    When too few opened: the error to raise (a non-Exception, e.g. a
    KeyboardInterrupt, as is); ``ProxyError`` (with the proxy's status) when
    every failure was the proxy's refusal, ``ConnectTimeout`` when every one
    timed out, so that callers catching them see them; else ``ConnectError``.
    """
    opened = size - len(failures)
    if opened >= need:
        return None
    first = failures[0]
    if not isinstance(first, Exception):
        return first
    reason = first.message if isinstance(first, WarmlineError) else str(first)
    message = f"{opened} of {size} connections opened, {need} required: {reason}"
    error: ConnectError
    if all(isinstance(f, ProxyError) for f in failures):
        # The proxy refused: say so with its class, status and (redacted) URL.
        assert isinstance(first, ProxyError)
        error = ProxyError(message, proxy=first.proxy, status=first.status, origin=origin)
    elif all(isinstance(f, ConnectTimeout) for f in failures):
        error = ConnectTimeout(message, origin=origin)
    else:
        error = ConnectError(message, origin=origin)
    error.__cause__ = first
    return error
