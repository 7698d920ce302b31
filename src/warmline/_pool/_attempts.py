"""A request with a retry policy, a hedge or rate limiters: its attempts.

Written once per flavour (one awaits, one blocks) and driven by both a
client (``send`` is its origin's pool's ``_call``) and a pool with
``retry=`` or ``hedge=`` (``send`` takes one of its own slots):
:func:`resilient_async` and :func:`resilient_sync` are what such a client
or pool calls per request. The decisions are
:class:`~warmline._pool._client.Resilience`'s and the hedge race's
(:mod:`warmline.resilience._race`); this module only waits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from time import monotonic
from typing import TYPE_CHECKING, Any, TypeAlias

from warmline._policy import DEFAULT, TimeoutArg
from warmline.errors import WarmlineError
from warmline.http11._response import Response
from warmline.http11._upload import is_streamed
from warmline.resilience._drive import HedgeThreads, SlotAttempts, race_async, race_sync

if TYPE_CHECKING:
    from warmline._pool._client import OriginState, Resilience
    from warmline._pool._verbs import Req
    from warmline.resilience._race import HedgeRace

__all__ = ["Attempt", "attempts_async", "attempts_sync", "resilient_async", "resilient_sync"]

#: Sends one attempt: ``send(req, acquire_timeout)``, a pool's ``_call``.
Send = Callable[["Req", TimeoutArg], Any]
#: What a first attempt gave the loop (None: nothing sent yet).
Outcome: TypeAlias = "Response | WarmlineError | None"


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

    @classmethod
    def of(
        cls, res: Resilience, key: str, url: str | None, req: Req, started: float | None
    ) -> Attempt:
        """``req``'s attempt on the origin ``key`` (``url``: weighs it in the
        limiters), its total timeout counted from ``started`` (None: now)."""
        method, content, timeout = req[0], req[4], req[6]
        deadline = res.deadline_after(timeout, monotonic() if started is None else started)
        state = res.route(key)
        weight = res.weight(method, url) if url is not None and state.limiters else 0.0
        # A streamed body is read once: never hedged, never retried.
        replayable = content is None or not is_streamed(content)
        return cls(res, state, method, replayable, weight, deadline)

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


async def resilient_async(
    res: Resilience,
    pool: Any,
    send: Send,
    url: str | None,
    hedges: HedgeThreads | None,
    req: Req,
    wait: TimeoutArg,
) -> Response:
    """``req`` under ``res``, each attempt ``send(req, wait)`` on ``pool``.

    Args:
        res: The policies.
        pool: The pool the attempts go to (its ``_key`` names it in ``res``).
        send: Sends one attempt: the pool's own ``_call``, or for a pool
            with ``retry=``/``hedge=``, the ``_call`` it had without them.
        url: The request's URL on a client (weighed by its limiters), or None.
        hedges: The thread flavour's hedge threads (None here).
        req: The request.
        wait: How long an attempt waits for a slot (``acquire_timeout``).

    A first attempt that needs no limiter and no hedge goes straight out; the
    happy path of a retry policy then costs this coroutine, a frozenset
    lookup, and a clock read when a total timeout applies. Callgrind on
    ``benchmarks/hotpath.py`` (per request, against the same mode without
    ``+retry``): ``pool.get+retry`` +2.8k instructions (39.4k), and
    ``client.get+retry`` +3.1k (40.7k), ~0.35 µs; through the whole loop
    every time it was +16k.
    """
    started = None
    first: Response | WarmlineError | None = None
    # Straight out when there is no limiter to take from and no hedge for
    # the method; the clock only when a total timeout bounds the retries.
    if res.plain or (res.direct and req[0] not in res.hedged):
        if res.timed or req[6] is not DEFAULT:
            started = monotonic()
        try:
            response: Response = await send(req, wait)
        except WarmlineError as exc:
            first = exc
        else:
            if response.status not in res.watched:  # the cheap guard
                return response
            first = response
    return await _loop_async(Attempt.of(res, pool._key, url, req, started), send, req, wait, first)


async def _loop_async(
    a: Attempt, send: Send, req: Req, wait: TimeoutArg, first: Outcome
) -> Response:
    # Apart from resilient_async: the closure's cells would cost its happy
    # path ~0.8k instructions.
    res, call, timeout, deadline = a.res, req[:6], req[6], a.deadline

    def one(_index: int) -> Coroutine[Any, Any, Response]:
        # Each attempt within what is left of the total timeout.
        return send((*call, res.attempt_timeout(timeout, deadline, monotonic())), wait)  # type: ignore[no-any-return]

    return await attempts_async(a, one, first)


def resilient_sync(
    res: Resilience,
    pool: Any,
    send: Send,
    url: str | None,
    hedges: HedgeThreads | None,
    req: Req,
    wait: TimeoutArg,
) -> Response:
    """:func:`resilient_async` with blocking waits: a hedged attempt leases a
    slot of ``pool``'s on one of the ``hedges`` threads."""
    started = None
    first: Response | WarmlineError | None = None
    # Straight out when there is no limiter to take from and no hedge for
    # the method; the clock only when a total timeout bounds the retries.
    if res.plain or (res.direct and req[0] not in res.hedged):
        if res.timed or req[6] is not DEFAULT:
            started = monotonic()
        try:
            response: Response = send(req, wait)
        except WarmlineError as exc:
            first = exc
        else:
            if response.status not in res.watched:  # the cheap guard
                return response
            first = response
    return _loop_sync(
        Attempt.of(res, pool._key, url, req, started), send, req, wait, first, pool, hedges
    )


def _loop_sync(
    a: Attempt,
    send: Send,
    req: Req,
    wait: TimeoutArg,
    first: Outcome,
    pool: Any,
    hedges: HedgeThreads | None,
) -> Response:
    res, call, timeout, deadline = a.res, req[:6], req[6], a.deadline

    def one() -> Response:
        return send((*call, res.attempt_timeout(timeout, deadline, monotonic())), wait)  # type: ignore[no-any-return]

    def race(r: HedgeRace) -> Response:
        assert hedges is not None
        attempts = SlotAttempts(pool, call, timeout, deadline, wait)
        response: Response = race_sync(r, hedges.submit, attempts.send, attempts.interrupt)
        return response

    return attempts_sync(a, one, race, first)
