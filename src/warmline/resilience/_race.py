"""The decisions of one hedged request, sans-I/O: a race of up to ``1 + max_extra`` attempts.

A shell (a client, later a pool) runs the attempts, each on a connection of
its own, and tells a :class:`HedgeRace` what happened; the race answers
with what to do next. It reads no clock (every call takes ``now``, any
monotonic clock in seconds), starts nothing and cancels nothing, so one
race serves the asyncio shells (tasks) and the thread shells (futures)
alike. The loop every shell runs::

    race = HedgeRace(hedge, tracker, stats, now, grant)   # attempt 0 is out
    start attempt 0
    while True:
        wait for the first attempt to end, at most race.wait(now) seconds
        if nothing ended:                     # the hedge timer fired
            if race.timer(now):
                start attempt race.launched - 1
            continue
        for each ended attempt i:
            if it returned a response: race.won(i, now); cancel race.losers(i); return it
            error = race.failed(i, exc)
            if error is not None: raise error    # no attempt left running

:func:`warmline.resilience._drive.race_async` and
:func:`~warmline.resilience._drive.race_sync` are that loop for asyncio
tasks and for a thread executor; a shell gives them a ``send`` callable
that sends the request once more on another connection.
"""

from __future__ import annotations

from collections.abc import Callable

from warmline.resilience._hedge import Hedge, HedgeTracker
from warmline.resilience._stats import ResilienceStats

__all__ = ["HedgeRace"]


class HedgeRace:
    """One hedged request: when to send another attempt, who won, what to drop.

    Made when the first attempt goes out (that counts the request in the
    budget's share). Attempts are numbered in launch order, 0 the first.

    Args:
        policy: The hedge policy.
        tracker: The origin's budget and latency state (shared by its races).
        stats: The origin's counters: ``hedges_sent`` and ``hedges_won``
            are counted here.
        now: When the first attempt was sent.
        grant: Asked once per hedge that the budget allows; False skips it
            (a rate limiter's ``try_take``: a hedge never waits for tokens).

    Example:
        >>> from warmline.resilience import Hedge, ResilienceStats
        >>> hedge = Hedge(after=0.005, budget=None)
        >>> stats = ResilienceStats()
        >>> race = HedgeRace(hedge, hedge.tracker(), stats, now=0.0)
        >>> race.wait(0.0)
        0.005
        >>> race.timer(0.005)  # no answer yet: send attempt 1
        True
        >>> race.wait(0.005) is None  # max_extra=1: no more hedges
        True
        >>> race.won(1, 0.006)
        >>> race.losers(1), stats.hedges_sent, stats.hedges_won
        ([0], 1, 1)
    """

    __slots__ = (
        "_delay",
        "_ended",
        "_error",
        "_error_index",
        "_grant",
        "_last",
        "_max",
        "_started",
        "_stats",
        "_tracker",
        "launched",
    )

    def __init__(
        self,
        policy: Hedge,
        tracker: HedgeTracker,
        stats: ResilienceStats,
        now: float,
        grant: Callable[[], bool] | None = None,
    ) -> None:
        tracker.begin(now)
        self._tracker = tracker
        self._stats = stats
        self._grant = grant
        self._max = policy.max_extra + 1
        self._started = self._last = now
        # The wait before each hedge, fixed for the race ("p95": the
        # origin's quantile now; None before enough samples: no hedging).
        self._delay = tracker.delay(now)
        self._ended: set[int] = set()
        self._error: BaseException | None = None
        self._error_index = -1
        self.launched = 1

    def wait(self, now: float) -> float | None:
        """Seconds to wait for an attempt to end before calling :meth:`timer`.

        None: no hedge will go out any more; wait for an attempt to end.
        """
        delay = self._delay
        if delay is None or self.launched >= self._max:
            return None
        return max(0.0, self._last + delay - now)

    def timer(self, now: float) -> bool:
        """The wait ran out with no attempt ended: True if one more must go out now.

        True counts a hedge sent; the shell starts attempt ``launched - 1``
        at once. False (the budget or ``grant`` refused): the race asks
        again one ``after`` later, while the attempts keep running.
        """
        delay = self._delay
        if delay is None or self.launched >= self._max:
            return False
        if now < self._last + delay:  # woken early: not due yet
            return False
        self._last = now
        grant = self._grant
        if not self._tracker.allow(now) or (grant is not None and not grant()):
            return False
        self.launched += 1
        self._stats.hedges_sent += 1
        return True

    def won(self, index: int, now: float) -> None:
        """Attempt ``index`` returned a response first: it is the request's answer."""
        self._ended.add(index)
        if index:
            self._stats.hedges_won += 1
        self._tracker.record(now - self._started, now)

    def losers(self, winner: int) -> list[int]:
        """The attempts to cancel (and whose connections to discard) now.

        After :meth:`won`, every attempt still running; pass ``-1`` when the
        request itself is abandoned (the caller was cancelled).
        """
        ended = self._ended
        return [i for i in range(self.launched) if i != winner and i not in ended]

    def failed(self, index: int, error: BaseException) -> BaseException | None:
        """Attempt ``index`` raised ``error``.

        Returns:
            The error to raise for the request when no attempt is left
            running (the earliest attempt's error), else None: keep waiting.
        """
        self._ended.add(index)
        if self._error is None or index < self._error_index:
            self._error, self._error_index = error, index
        if len(self._ended) < self.launched:
            return None
        return self._error
