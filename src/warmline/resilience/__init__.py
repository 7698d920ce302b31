"""Resilience tools: retry, hedged requests, a shared rate limiter, last-good fallback.

- :class:`Retry`: when to repeat a failed request (sans-I/O; the pools and
  clients ask :meth:`Retry.decide` after each attempt).
- :class:`RateLimiter`: a weighted GCRA shared by coroutines and threads;
  ``try_take`` never waits, ``await take`` / ``take_sync`` wait in FIFO order.
- :class:`Hedge`: when to send an idempotent request again while the first
  is still out (sans-I/O: each hedged request is a ``HedgeRace`` of
  :mod:`warmline.resilience._race`, which ``race_async`` / ``race_sync`` of
  :mod:`warmline.resilience._drive` run on tasks or threads).
- :class:`LastGood`: per key, the last good value served stale on error.

The clients (``AsyncClient``, ``Client``) take ``retry=``, ``hedge=``,
``rate_limit=`` (client-wide), ``rate_limits={origin_url: limiter}`` and
``weight_of=``, and count retries and hedges per origin in
``client.resilience_stats()`` (:class:`ResilienceStats`).

How a pool or client shell drives them (one attempt loop per request)::

    attempt = 0
    while True:
        attempt += 1
        if limiter is not None:                      # before acquiring a slot
            await limiter.take(weight, timeout=time_left)   # take_sync in threads
        try:
            response = await send_once(...)
        except WarmlineError as exc:
            wait = retry.decide(attempt, method, error=exc,
                                replayable_body=replayable, now_epoch=time.time(),
                                time_left=time_left)
            if wait is None:
                raise
        else:
            if limiter is not None:
                limiter.on_response(response.status, response.headers.get,
                                    now_epoch=time.time())
            if response.status not in retry.statuses:   # the cheap guard
                return response
            wait = retry.decide(attempt, method, status=response.status,
                                headers_get=response.headers.get,
                                replayable_body=replayable, now_epoch=time.time(),
                                time_left=time_left)
            if wait is None:
                return response
            # read or discard the body before the slot goes back
        count the retry in stats and hooks; sleep(wait)

``limiter.on_response`` runs on every response, retried or not, so that a 429
or 418 pauses every caller of that origin at once. The clients' loop is this
one with its decisions in ``warmline._pool._client.Resilience`` (``after``
counts the retry; ``race`` makes a hedged attempt's ``HedgeRace``).
"""

from warmline.resilience._hedge import Hedge
from warmline.resilience._lastgood import KeyStats, LastGood, LastGoodResult
from warmline.resilience._ratelimit import RateCore, RateLimiter
from warmline.resilience._retry import DEFAULT_RETRY_STATUSES, Retry, parse_retry_after
from warmline.resilience._stats import ResilienceStats

__all__ = [
    "DEFAULT_RETRY_STATUSES",
    "Hedge",
    "KeyStats",
    "LastGood",
    "LastGoodResult",
    "RateCore",
    "RateLimiter",
    "ResilienceStats",
    "Retry",
    "parse_retry_after",
]
