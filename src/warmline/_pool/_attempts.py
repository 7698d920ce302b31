"""The attempt loop of a request with a retry policy, a hedge or rate limiters.

Written once per flavour (one awaits, one blocks) and driven by both a
client (``send`` calls its origin's pool) and a pool with ``retry=`` or
``hedge=`` (``send`` acquires one of its own slots). The decisions are
:class:`~warmline._pool._client.Resilience`'s and the hedge race's
(:mod:`warmline.resilience._race`); this module only waits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from time import monotonic
from typing import TYPE_CHECKING, Any

from warmline.errors import WarmlineError
from warmline.http11._response import Response
from warmline.resilience._drive import race_async

if TYPE_CHECKING:
    from warmline._pool._client import OriginState, Resilience
    from warmline.resilience._race import HedgeRace

__all__ = ["Attempt", "attempts_async", "attempts_sync"]


class Attempt:
    """One request's part in the loop, looked up once.

    Args:
        res: The policies.
        state: The origin's limiters, counters and hedge tracker.
        method: The request's method.
        replayable: False for a streamed body: never sent twice.
        weight: Its weight in the limiters.
        deadline: When the whole request (every attempt and wait) must end,
            on ``time.monotonic``'s clock, or None.
    """

    __slots__ = ("deadline", "hedged", "method", "replayable", "res", "state", "weight")

    def __init__(
        self,
        res: Resilience,
        state: OriginState,
        method: str,
        replayable: bool,
        weight: float,
        deadline: float | None,
    ) -> None:
        self.res = res
        self.state = state
        self.method = method
        self.replayable = replayable
        self.weight = weight
        self.deadline = deadline
        self.hedged = res.hedge_for(method, replayable) is not None

    def race(self) -> HedgeRace:
        return self.res.race(self.state, monotonic(), self.weight)

    def after(self, attempt: int, outcome: Response | BaseException) -> float | None:
        return self.res.after(
            self.state, attempt, self.method, outcome, self.deadline, monotonic(), self.replayable
        )


async def attempts_async(
    a: Attempt,
    send: Callable[[int], Coroutine[Any, Any, Response]],
    first: Response | WarmlineError | None = None,
) -> Response:
    """Take from the limiters, send (hedged), retry; ``first``: the outcome of
    a first attempt the caller already sent."""
    res, limiters = a.res, a.state.limiters
    attempt = 0
    outcome: Response | BaseException | None = first
    while True:
        attempt += 1
        if outcome is None:
            for limiter in limiters:
                # try_take first: no coroutine when budget is there (3.5k
                # instructions less per GET); take() queues FIFO otherwise.
                if not limiter.try_take(a.weight):
                    await limiter.take(a.weight, timeout=res.time_left(a.deadline, monotonic()))
            try:
                response = await (race_async(a.race(), send) if a.hedged else send(0))
            except WarmlineError as exc:
                outcome = exc
            else:
                if response.status not in res.watched:  # the cheap guard
                    return response
                outcome = response
        wait = a.after(attempt, outcome)
        if wait is None:
            if isinstance(outcome, Response):
                return outcome
            raise outcome
        outcome = None
        await asyncio.sleep(wait)


def attempts_sync(
    a: Attempt,
    send: Callable[[], Response],
    race: Callable[[HedgeRace], Response],
    first: Response | WarmlineError | None = None,
) -> Response:
    """:func:`attempts_async` with blocking waits: ``send()`` sends once,
    ``race(r)`` runs a hedged attempt's race on the caller's threads."""
    res, limiters = a.res, a.state.limiters
    attempt = 0
    outcome: Response | BaseException | None = first
    while True:
        attempt += 1
        if outcome is None:
            for limiter in limiters:
                if not limiter.try_take(a.weight):  # cheaper when budget is there
                    limiter.take_sync(a.weight, timeout=res.time_left(a.deadline, monotonic()))
            try:
                response = race(a.race()) if a.hedged else send()
            except WarmlineError as exc:
                outcome = exc
            else:
                if response.status not in res.watched:  # the cheap guard
                    return response
                outcome = response
        pause = a.after(attempt, outcome)
        if pause is None:
            if isinstance(outcome, Response):
                return outcome
            raise outcome
        outcome = None
        time.sleep(pause)
