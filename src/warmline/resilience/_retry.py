"""Retry policy: an immutable rule book that says whether, and when, to try again.

:class:`Retry` is sans-I/O: it reads no clock, sleeps nowhere and sends
nothing. A shell (pool or client) runs an attempt, then asks
:meth:`Retry.decide` with what happened; the answer is the number of seconds
to wait before the next attempt, or ``None`` to stop (return the response, or
raise the error). The semantics follow urllib3's ``Retry`` where they agree
with RFC 9110, with three deliberate differences noted on the class.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from email.utils import mktime_tz, parsedate_tz
from typing import Final

from warmline._policy import IDEMPOTENT_METHODS, Backoff
from warmline.errors import (
    ConnectError,
    ConnectionClosed,
    ProxyError,
    ReadTimeout,
    WriteTimeout,
)

__all__ = ["DEFAULT_RETRY_BACKOFF", "DEFAULT_RETRY_STATUSES", "Retry", "parse_retry_after"]

# 429: the server asks us to slow down (RFC 6585 §4); 502/503/504: a gateway or
# the server itself is briefly unavailable. 500 is left out: it usually means a
# bug that the same request will hit again.
DEFAULT_RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})

# 50 ms, 100 ms, 200 ms... up to 2 s, ±20 %: short enough for a trading
# request that still matters, spread so that many clients don't retry in step.
DEFAULT_RETRY_BACKOFF: Final = Backoff(initial=0.05, maximum=2.0, multiplier=2.0, jitter=0.2)

# A Retry-After of more digits than this is garbage, not a wait (10**10 s is
# three centuries); it also keeps float() away from a 400-digit integer.
_MAX_DELAY_DIGITS: Final = 10

# Errors after which the server may have seen (and acted on) the request. A
# tuple: isinstance() walks it faster than a `A | B` union object.
_SENT_ERRORS: Final = (ReadTimeout, WriteTimeout, ConnectionClosed)

HeadersGet = Callable[[str], str | None]


def parse_retry_after(value: str | None, now_epoch: float) -> float | None:
    """Seconds to wait according to a ``Retry-After`` value, or None if unusable.

    RFC 9110 §10.2.3 allows two forms: ``delay-seconds`` (``1*DIGIT``) and an
    ``HTTP-date``. A decimal such as ``"1.5"`` is not valid HTTP but some
    servers send it; it is accepted since it cannot be misread. A date in the
    past means "now" (0.0). Anything else (negative, empty, garbage, a date
    ``email.utils`` cannot parse) gives None so that the caller falls back to
    its backoff.

    Args:
        value: The header's value, or None when absent.
        now_epoch: The current Unix time (``time.time()``), only used for the
            HTTP-date form; passed in so that this function reads no clock.

    Example:
        >>> parse_retry_after("120", 0.0)
        120.0
        >>> parse_retry_after("Thu, 01 Jan 1970 00:00:30 GMT", 10.0)
        20.0
        >>> parse_retry_after("soon", 0.0) is None
        True
    """
    if value is None:
        return None
    value = value.strip()
    whole, dot, frac = value.partition(".")
    if whole.isascii() and whole.isdigit() and (not dot or (frac.isascii() and frac.isdigit())):
        if len(whole) > _MAX_DELAY_DIGITS:
            return None
        return float(value)
    return _parse_http_date(value, now_epoch)


def _parse_http_date(value: str, now_epoch: float) -> float | None:
    parsed = parsedate_tz(value)
    if parsed is None:
        return None
    if parsed[9] is None:
        # RFC 9110 §5.6.7: HTTP dates are always GMT; a missing zone is not
        # local time (which mktime_tz would assume).
        parsed = (*parsed[:9], 0)
    try:
        when = float(mktime_tz(parsed))
    except (OverflowError, ValueError):
        return None
    return max(0.0, when - now_epoch)


@dataclasses.dataclass(frozen=True, slots=True)
class Retry:
    """When to repeat a failed request: an immutable policy, off unless given.

    A request is retried at most ``total`` times (``total + 1`` attempts), and
    only when all of these hold:

    - the outcome is retryable: a status in ``statuses``, or an error below;
    - the request can be sent again: its body is replayable (bytes, not a
      stream already consumed), and its method is in ``methods`` unless
      nothing was sent at all;
    - the wait fits: a ``Retry-After`` above ``max_retry_after`` is not waited
      for (the response is returned as is), nor a wait longer than the time
      the request has left.

    Errors:

    - :class:`~warmline.errors.ConnectError` and
      :class:`~warmline.errors.ConnectTimeout`: always retryable, whatever the
      method, since not a byte of the request left. A
      :class:`~warmline.errors.ProxyError` whose proxy answered with a 4xx
      (407, 403) is not: it would answer the same again.
    - :class:`~warmline.errors.ReadTimeout`,
      :class:`~warmline.errors.WriteTimeout` and
      :class:`~warmline.errors.ConnectionClosed`: the server may have acted
      on the request, so only for a method in ``methods``.
    - Everything else (``ProtocolError``, ``PoolTimeout``, ``RateLimited``,
      ``InvalidRequest``, cancellation) is never retried: a malformed answer
      would be malformed again, and the pool and limiter timeouts already
      were the caller's budget.

    Differences from urllib3's ``Retry``, on purpose:

    - ``methods`` applies to retryable *statuses* too (as in urllib3), and
      ``POST``/``PATCH`` retry only when listed; but a connect error retries
      any method, since nothing was sent.
    - ``Retry-After`` is honoured on any status in ``statuses`` that carries
      it (urllib3: only 413, 429, 503), and replaces the backoff delay.
    - A ``Retry-After`` beyond ``max_retry_after`` stops retrying instead of
      sleeping for an hour.

    Args:
        total: Retries after the first attempt (0 disables retrying).
        statuses: Response statuses worth another attempt.
        methods: Upper-case methods that may be repeated after something was
            sent (RFC 9110 §9.2.2 idempotent methods by default).
        backoff: Delay before retry k is ``backoff.delay(k)`` (k = 1, 2...):
            ``initial`` first, growing by ``multiplier``, jittered. Use
            ``Backoff(initial=0, maximum=0)`` for immediate retries.
        respect_retry_after: Use the server's ``Retry-After`` as the delay.
        max_retry_after: Longest ``Retry-After`` waited for, in seconds.

    Example:
        >>> r = Retry(total=2, backoff=Backoff(initial=0.1, maximum=1.0, jitter=0.0))
        >>> r.decide(1, "GET", status=503, now_epoch=0.0)
        0.1
        >>> r.decide(1, "GET", status=429, headers_get={"retry-after": "3"}.get, now_epoch=0.0)
        3.0
        >>> r.decide(1, "POST", status=503, now_epoch=0.0) is None
        True
        >>> r.decide(3, "GET", status=503, now_epoch=0.0) is None  # attempts exhausted
        True

    Performance (CPython 3.11, a loaded 2-core VM; timeit best of runs, and
    callgrind instructions, which do not depend on load; command in
    ``benchmarks/resilience_micro.py``): ``decide`` for a status that is not
    retried, 0.11 µs / 1.9k instructions; a 503 retried after the backoff,
    0.64 µs / 9.0k (6.0k of them in ``Backoff.delay``); a 429 with
    ``Retry-After: 3``, 0.35 µs / 5.8k; a ConnectError, 0.6 µs / 8.9k. Shells
    call it only after an error or a status in ``statuses``, so a policy that
    does not trigger costs one frozenset lookup per response (0.03 µs).
    """

    total: int = 2
    statuses: frozenset[int] = DEFAULT_RETRY_STATUSES
    methods: frozenset[str] = IDEMPOTENT_METHODS
    backoff: Backoff = DEFAULT_RETRY_BACKOFF
    respect_retry_after: bool = True
    max_retry_after: float = 30.0

    def __post_init__(self) -> None:
        if isinstance(self.total, bool) or not isinstance(self.total, int) or self.total < 0:
            raise ValueError(f"Retry.total must be an int >= 0, got {self.total!r}")
        mra = self.max_retry_after
        if (
            isinstance(mra, bool) or not isinstance(mra, int | float) or not mra >= 0
        ):  # NaN fails too
            raise ValueError(f"Retry.max_retry_after must be a number >= 0, got {mra!r}")
        if not isinstance(self.backoff, Backoff):
            raise TypeError(f"Retry.backoff must be a Backoff, got {self.backoff!r}")
        # Normalise the sets once so that decide() does plain lookups; a list
        # or a lower-case method given by the user still works.
        statuses = frozenset(self.statuses)
        if any(isinstance(s, bool) or not isinstance(s, int) for s in statuses):
            raise TypeError(f"Retry.statuses must hold ints, got {self.statuses!r}")
        methods = self.methods
        if isinstance(methods, str) or any(not isinstance(m, str) for m in methods):
            raise TypeError(f"Retry.methods must be a set of str, got {methods!r}")
        object.__setattr__(self, "statuses", statuses)
        object.__setattr__(self, "methods", frozenset(m.upper() for m in methods))

    def decide(
        self,
        attempt: int,
        method: str,
        *,
        status: int | None = None,
        error: BaseException | None = None,
        headers_get: HeadersGet | None = None,
        replayable_body: bool = True,
        now_epoch: float,
        time_left: float | None = None,
        rand: float | None = None,
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to stop.

        Args:
            attempt: Attempts made so far, counting the one that just ended
                (1 after the first try).
            method: The request's method (upper case, as sent).
            status: The response status, when a response arrived.
            error: The exception the attempt raised, when it failed.
            headers_get: Case-insensitive lookup of a response header
                (``response.headers.get``); asked for ``"retry-after"``.
            replayable_body: False when the body was a stream that cannot be
                sent again (a consumed iterator or file).
            now_epoch: The current Unix time, for an HTTP-date ``Retry-After``.
            time_left: Seconds left before the request's own deadline, if any;
                a wait that does not fit stops retrying.
            rand: A number in [0, 1) for the backoff's jitter; drawn if None.

        Returns:
            The delay in seconds (0.0 means retry at once), or None: return
            the response, or re-raise the error.
        """
        if attempt > self.total:
            return None
        delay: float | None
        if error is not None:
            if not self._error_retryable(error, method, replayable_body):
                return None
            delay = self.backoff.delay(attempt, rand)
        elif status in self.statuses and replayable_body and method in self.methods:
            delay = self._status_delay(attempt, headers_get, now_epoch, rand)
        else:
            return None
        if delay is not None and time_left is not None and delay >= time_left:
            return None
        return delay

    def _error_retryable(self, error: BaseException, method: str, replayable: bool) -> bool:
        if isinstance(error, ConnectError):
            # Nothing was sent, so even a one-shot body is still unconsumed.
            if isinstance(error, ProxyError) and error.status is not None:
                return not 400 <= error.status < 500
            return True
        if isinstance(error, _SENT_ERRORS):
            return replayable and method in self.methods
        return False

    def _status_delay(
        self, attempt: int, headers_get: HeadersGet | None, now_epoch: float, rand: float | None
    ) -> float | None:
        if self.respect_retry_after and headers_get is not None:
            after = parse_retry_after(headers_get("retry-after"), now_epoch)
            if after is not None:
                return after if after <= self.max_retry_after else None
        return self.backoff.delay(attempt, rand)
