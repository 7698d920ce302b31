"""Resilience tools: a retry policy, a shared rate limiter and last-good fallback.

- :class:`Retry`: when to repeat a failed request (sans-I/O; the pools and
  clients ask :meth:`Retry.decide` after each attempt).
- :class:`RateLimiter`: a weighted GCRA shared by coroutines and threads;
  ``try_take`` never waits, ``await take`` / ``take_sync`` wait in FIFO order.
- :class:`LastGood`: per key, the last good value served stale on error.
"""

from warmline.resilience._lastgood import KeyStats, LastGood, LastGoodResult
from warmline.resilience._ratelimit import RateCore, RateLimiter
from warmline.resilience._retry import DEFAULT_RETRY_STATUSES, Retry, parse_retry_after

__all__ = [
    "DEFAULT_RETRY_STATUSES",
    "KeyStats",
    "LastGood",
    "LastGoodResult",
    "RateCore",
    "RateLimiter",
    "Retry",
    "parse_retry_after",
]
