"""Hedged requests: an immutable policy that says when to send a request twice.

A request that has had no response ``after`` seconds after it was sent goes
out once more on another connection; the first response wins and the other
attempt is cancelled (asyncio: its connection is abandoned and heals, since
its state is unknown) or its result discarded (threads). Tail latency from
one slow connection or one slow server worker then costs ``after`` plus a
normal response time instead of the whole stall. Only methods in
``methods`` are hedged: a request the server may act on twice (a POST that
places an order) is never duplicated.

:class:`Hedge` is sans-I/O like :class:`~warmline.resilience.Retry`; so are
:class:`HedgeTracker` (one origin's budget and latencies) and the per-request
:class:`~warmline.resilience._race.HedgeRace` (when to send, who won, what to
drop), which the shells drive with their own tasks or threads
(:mod:`warmline.resilience._drive`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Final

from warmline._histogram import LatencyHistogram
from warmline._policy import IDEMPOTENT_METHODS

__all__ = ["MIN_SAMPLES", "WINDOW_S", "Hedge", "HedgeTracker"]


# The sliding window of the budget and of the p95, in seconds: the share of
# hedges and the latency quantile are taken over the last one to two windows
# (two fixed buckets: the current and the previous).
WINDOW_S: Final = 10.0
# A p95 from fewer samples than this says little: no hedging until then.
MIN_SAMPLES: Final = 20


@dataclasses.dataclass(frozen=True, slots=True)
class Hedge:
    """When to send an idempotent request again while the first is still out.

    After ``after`` seconds without a response, one more attempt is sent on
    another warm connection (and another ``after`` later, up to
    ``max_extra``). The first attempt to return a response wins; the others
    are cancelled and their connections discarded (state unknown). An
    attempt that fails while another is still running does not end the
    request; when all have failed, the first attempt's error is raised.

    ``budget`` caps the extra requests as a share of all requests of the
    origin over a sliding window (about 10 to 20 s), so a slow origin is not
    sent twice the load: the share is hedges over the requests that could
    be hedged (methods in ``methods``), counted when each begins. With a
    rate limiter on the client, a hedge is only
    sent when the limiter grants its weight at once (``try_take``).

    Args:
        after: Seconds to wait for a response before hedging (> 0), or
            ``"p95"``: the origin's running 95th percentile latency (no
            hedging until 20 requests have been seen).
        max_extra: Extra attempts at most (>= 1).
        budget: Extra requests as a share of all requests (0 < budget <= 1),
            or None for no cap.
        methods: Upper-case methods that may be hedged (RFC 9110 §9.2.2
            idempotent methods by default): a POST is never duplicated.

    Example:
        >>> Hedge(after=0.02).hedges("GET"), Hedge(after=0.02).hedges("POST")
        (True, False)
    """

    after: float | str = 0.005
    max_extra: int = 1
    budget: float | None = 0.05
    methods: frozenset[str] = IDEMPOTENT_METHODS

    def __post_init__(self) -> None:
        after = self.after
        if after != "p95":
            if isinstance(after, bool) or not isinstance(after, int | float):
                raise TypeError(f"Hedge.after must be seconds or 'p95', got {after!r}")
            if not (math.isfinite(after) and after > 0):
                raise ValueError(f"Hedge.after must be a finite number > 0, got {after!r}")
            object.__setattr__(self, "after", float(after))
        extra = self.max_extra
        if isinstance(extra, bool) or not isinstance(extra, int) or extra < 1:
            raise ValueError(f"Hedge.max_extra must be an int >= 1, got {extra!r}")
        budget = self.budget
        if budget is not None and (
            isinstance(budget, bool) or not isinstance(budget, int | float) or not 0 < budget <= 1
        ):
            raise ValueError(f"Hedge.budget must be in (0, 1] or None, got {budget!r}")
        methods = self.methods
        if isinstance(methods, str) or any(not isinstance(m, str) for m in methods):
            raise TypeError(f"Hedge.methods must be a set of str, got {methods!r}")
        object.__setattr__(self, "methods", frozenset(m.upper() for m in methods))

    def hedges(self, method: str) -> bool:
        """Whether a request with this (upper-case) method may be hedged."""
        return method in self.methods

    def tracker(self) -> HedgeTracker:
        """A new per-origin tracker of this policy's budget and latency."""
        return HedgeTracker(self)


class HedgeTracker:
    """One origin's hedging state: the budget's counts and the latencies.

    Sans-I/O: every method takes ``now`` (any monotonic clock, in seconds).
    Two fixed windows (current and previous) make the sliding window: O(1)
    per request, bounded memory (two histograms).
    """

    __slots__ = ("_hedges", "_hist", "_hists", "_policy", "_requests", "_window_start")

    def __init__(self, policy: Hedge) -> None:
        self._policy = policy
        self._window_start = -math.inf
        self._requests = [0, 0]  # previous window, current window
        self._hedges = [0, 0]
        self._hists = [LatencyHistogram(), LatencyHistogram()]
        self._hist = self._hists[1]

    def _roll(self, now: float) -> None:
        if now - self._window_start < WINDOW_S:
            return
        stale = now - self._window_start >= 2 * WINDOW_S
        self._window_start = now
        if stale:  # nothing recent: forget both windows
            self._requests, self._hedges = [0, 0], [0, 0]
            self._hists = [LatencyHistogram(), LatencyHistogram()]
        else:
            self._requests = [self._requests[1], 0]
            self._hedges = [self._hedges[1], 0]
            self._hists = [self._hists[1], LatencyHistogram()]
        self._hist = self._hists[1]

    def delay(self, now: float) -> float | None:
        """Seconds to wait before hedging a request sent now; None: don't."""
        after = self._policy.after
        if isinstance(after, float):
            return after
        self._roll(now)
        merged = self._hists[0].copy().merge(self._hists[1])
        if merged.count < MIN_SAMPLES:
            return None
        return merged.percentile(95.0)

    def begin(self, now: float) -> None:
        """A hedgeable request sends its first attempt: one more in the budget's share.

        Counted when it starts, not when it ends: a request still out (or
        one that fails) is a request the budget's share is taken of, and a
        burst of slow requests cannot hedge ahead of its own count.
        """
        self._roll(now)
        self._requests[1] += 1

    def allow(self, now: float) -> bool:
        """Whether the budget allows one more hedge now (and count it if so).

        At most ``budget`` extra attempts per request begun over the window:
        ``hedges + 1 <= budget * requests``, so the share of extra requests
        never goes above ``budget`` (with 0.05, the 20th request is the
        first that may be hedged).
        """
        self._roll(now)
        budget = self._policy.budget
        if budget is not None:
            requests = self._requests[0] + self._requests[1]
            hedges = self._hedges[0] + self._hedges[1]
            if hedges + 1 > budget * requests:
                return False
        self._hedges[1] += 1
        return True

    def record(self, latency: float, now: float) -> None:
        """A request was answered ``latency`` seconds after it began (the p95's sample)."""
        self._roll(now)
        self._hist.record(latency)
