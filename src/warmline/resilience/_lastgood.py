"""Graceful degradation: serve the last good value, marked stale, when a fetch fails.

:class:`LastGood` wraps any fetch (an HTTP call and its parsing, usually):
on success it remembers the value and when it was fetched, per key; on error
it hands back the last good value with ``stale=True``, its ``age`` and the
``error``, as long as that value is at most ``max_age`` seconds old.
Otherwise the error propagates. The same object serves coroutines
(``await get``) and threads (``get_sync``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar, cast

__all__ = ["KeyStats", "LastGood", "LastGoodResult"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclasses.dataclass(frozen=True, slots=True)
class LastGoodResult(Generic[V]):
    """What :meth:`LastGood.get` returns: a fresh value or the last good one.

    Attributes:
        value: The fetched value, or the last good one when ``stale``.
        stale: True when the fetch failed and this is an older value.
        age: Seconds since ``value`` was fetched (0.0 when fresh).
        error: The fetch's exception when ``stale``, else None.
    """

    value: V
    stale: bool
    age: float
    error: BaseException | None


@dataclasses.dataclass(frozen=True, slots=True)
class KeyStats:
    """Counters of one key (``LastGood.stats()``).

    Attributes:
        successes: Fetches that returned a value.
        failures: Fetches that raised (whether or not a stale value was served).
        stale_served: Failures answered with the last good value.
        age: Seconds since the last good value was fetched; None if none yet.
    """

    successes: int
    failures: int
    stale_served: int
    age: float | None


class _Entry(Generic[V]):
    __slots__ = ("at", "failures", "has_value", "stale_served", "successes", "value")

    def __init__(self) -> None:
        self.value: V | None = None
        self.at = 0.0
        self.has_value = False
        self.successes = 0
        self.failures = 0
        self.stale_served = 0


class LastGood(Generic[K, V]):
    """Per key, the last successful value and the rule for serving it stale.

    A failed fetch (one that raises an instance of ``catch``) returns the last
    good value marked stale if it is at most ``max_age`` seconds old, and
    re-raises the error otherwise (no value yet, or too old). Cancellation
    and ``KeyboardInterrupt`` are never caught. Concurrent gets of one key
    each run their own fetch (no coalescing); the newest success wins.

    At most ``max_keys`` keys are remembered: beyond that the least recently
    used key is forgotten, with its value and its counters.

    Args:
        max_age: Oldest value, in seconds, that may stand in for a failed
            fetch (``math.inf``: any age).
        max_keys: Keys remembered at most (LRU).
        catch: Exception types that fall back to the last good value.
        clock: Monotonic seconds; inject a fake one to test.

    Example:
        >>> prices: LastGood[str, float] = LastGood(max_age=5.0)
        >>> prices.get_sync("BTC", lambda: 97_000.0)
        LastGoodResult(value=97000.0, stale=False, age=0.0, error=None)
        >>> def down() -> float:
        ...     raise ConnectionError("exchange down")
        >>> prices.get_sync("BTC", down).stale
        True
    """

    __slots__ = ("_catch", "_clock", "_entries", "_lock", "max_age", "max_keys")

    def __init__(
        self,
        max_age: float,
        *,
        max_keys: int = 1024,
        catch: tuple[type[BaseException], ...] = (Exception,),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(max_age, bool) or not isinstance(max_age, int | float) or not max_age >= 0:
            raise ValueError(f"LastGood max_age must be a number >= 0, got {max_age!r}")
        if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1:
            raise ValueError(f"LastGood max_keys must be an int >= 1, got {max_keys!r}")
        if not isinstance(catch, tuple) or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in catch
        ):
            raise TypeError(f"LastGood catch must be a tuple of exception types, got {catch!r}")
        self.max_age = float(max_age)
        self.max_keys = max_keys
        self._catch = catch
        self._clock = clock
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()
        # Short critical sections only (dict bookkeeping); fetches run outside.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<LastGood {len(self._entries)} keys, max_age={self.max_age:g}s>"

    async def get(
        self, key: K, fetch: Callable[[], Awaitable[V]], *, timeout: float | None = None
    ) -> LastGoodResult[V]:
        """Await ``fetch()``; on failure fall back to the last good value.

        Args:
            key: Which value this is (a symbol, a URL...).
            fetch: An async callable returning the fresh value.
            timeout: Seconds the fetch may take; past it, it is cancelled and
                counts as a failure (``TimeoutError``, if ``catch`` covers it).

        Raises:
            The fetch's own exception, when no value younger than ``max_age``
            is remembered, or when it is not an instance of ``catch``.
        """
        try:
            if timeout is None:
                value = await fetch()
            else:
                async with asyncio.timeout(timeout):
                    value = await fetch()
        except self._catch as exc:
            result = self._failed(key, exc)
            if result is None:
                raise
            return result
        return self._succeeded(key, value)

    def get_sync(self, key: K, fetch: Callable[[], V]) -> LastGoodResult[V]:
        """Call ``fetch()`` in this thread; on failure fall back as :meth:`get` does."""
        try:
            value = fetch()
        except self._catch as exc:
            result = self._failed(key, exc)
            if result is None:
                raise
            return result
        return self._succeeded(key, value)

    def put(self, key: K, value: V) -> None:
        """Record ``value`` as fetched now (a success obtained elsewhere)."""
        self._succeeded(key, value)

    def peek(self, key: K) -> LastGoodResult[V] | None:
        """The remembered value as a stale result (any age), without fetching."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or not entry.has_value:
                return None
            age = self._clock() - entry.at
            return LastGoodResult(cast(V, entry.value), True, age, None)

    def forget(self, key: K) -> None:
        """Drop a key's value and counters."""
        with self._lock:
            self._entries.pop(key, None)

    def stats(self) -> dict[K, KeyStats]:
        """Counters per remembered key, oldest used first."""
        with self._lock:
            now = self._clock()
            return {
                key: KeyStats(
                    e.successes, e.failures, e.stale_served, now - e.at if e.has_value else None
                )
                for key, e in self._entries.items()
            }

    def _entry(self, key: K) -> _Entry[V]:
        entries = self._entries
        entry = entries.get(key)
        if entry is None:
            entry = entries[key] = _Entry()
            if len(entries) > self.max_keys:
                entries.popitem(last=False)
        else:
            entries.move_to_end(key)
        return entry

    def _succeeded(self, key: K, value: V) -> LastGoodResult[V]:
        with self._lock:
            entry = self._entry(key)
            entry.value = value
            entry.at = self._clock()
            entry.has_value = True
            entry.successes += 1
        return LastGoodResult(value, False, 0.0, None)

    def _failed(self, key: K, exc: BaseException) -> LastGoodResult[V] | None:
        with self._lock:
            entry = self._entry(key)
            entry.failures += 1
            if not entry.has_value:
                return None
            age = self._clock() - entry.at
            if not age <= self.max_age:
                return None
            entry.stale_served += 1
            return LastGoodResult(cast(V, entry.value), True, age, exc)
