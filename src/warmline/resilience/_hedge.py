"""Hedged requests: an immutable policy that says when to send a request twice.

A request that has had no response ``delay`` seconds after it was sent goes
out once more on another connection; the first response wins and the other
attempt is cancelled (asyncio: its connection is abandoned and heals, since
its state is unknown) or its result discarded (threads). Tail latency from
one slow connection or one slow server worker then costs ``delay`` plus a
normal response time instead of the whole stall. Only methods in
``methods`` are hedged: a request the server may act on twice (a POST that
places an order) is never duplicated.

:class:`Hedge` is sans-I/O like :class:`~warmline.resilience.Retry`: the
clients read its fields and run the attempts themselves.
"""

from __future__ import annotations

import dataclasses
import math

from warmline._policy import IDEMPOTENT_METHODS

__all__ = ["Hedge"]


@dataclasses.dataclass(frozen=True, slots=True)
class Hedge:
    """When to send an idempotent request again while the first is still out.

    After ``delay`` seconds without a response, one more attempt is sent, and
    another every ``delay`` after that, up to ``max_extra`` extra attempts.
    The first attempt to return a response wins. An attempt that fails while
    another is still running does not end the request; when all have failed,
    the first attempt's error is raised (and a retry policy may act on it).

    A hedge is an extra request to the server: with a rate limiter on the
    client, a hedge is only sent when the limiter grants its weight at once
    (``try_take``); a hedge never waits for budget.

    Args:
        delay: Seconds to wait for a response before hedging (> 0). A value
            near the origin's p95 latency hedges about 5 % of requests.
        max_extra: Extra attempts at most (>= 1).
        methods: Upper-case methods that may be hedged (RFC 9110 §9.2.2
            idempotent methods by default).

    Example:
        >>> Hedge(delay=0.02).hedges("GET"), Hedge(delay=0.02).hedges("POST")
        (True, False)
    """

    delay: float = 0.05
    max_extra: int = 1
    methods: frozenset[str] = IDEMPOTENT_METHODS

    def __post_init__(self) -> None:
        delay = self.delay
        if isinstance(delay, bool) or not isinstance(delay, int | float):
            raise TypeError(f"Hedge.delay must be a number of seconds, got {delay!r}")
        if not (math.isfinite(delay) and delay > 0):
            raise ValueError(f"Hedge.delay must be a finite number > 0, got {delay!r}")
        extra = self.max_extra
        if isinstance(extra, bool) or not isinstance(extra, int) or extra < 1:
            raise ValueError(f"Hedge.max_extra must be an int >= 1, got {extra!r}")
        methods = self.methods
        if isinstance(methods, str) or any(not isinstance(m, str) for m in methods):
            raise TypeError(f"Hedge.methods must be a set of str, got {methods!r}")
        object.__setattr__(self, "delay", float(delay))
        object.__setattr__(self, "methods", frozenset(m.upper() for m in methods))

    def hedges(self, method: str) -> bool:
        """Whether a request with this (upper-case) method may be hedged."""
        return method in self.methods
