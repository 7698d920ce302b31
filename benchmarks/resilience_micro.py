"""Per-call cost of the resilience tools: `uv run python benchmarks/resilience_micro.py`.

Prints ns per call (best of 7 timeit repeats) of RateLimiter.try_take and its
parts (the pure rule, the lock, the clock read) and of Retry.decide for the
outcomes a shell meets. A micro-benchmark, not a test.

Wall-clock figures swing by 2x on a loaded VM; instruction counts do not.
``--loop CASE N`` just calls one case N times, for callgrind::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        python benchmarks/resilience_micro.py --loop "RateLimiter.try_take() granted" 20000

then subtract the count of ``--loop "lambda: None (call overhead)" 20000``
and divide by N.
"""

from __future__ import annotations

import sys
import threading
import time
import timeit
from collections.abc import Callable

from warmline.errors import ConnectError
from warmline.resilience import RateCore, RateLimiter, Retry


def ns_per_call(fn: Callable[[], object], number: int = 200_000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=7)) / number * 1e9


def limiter_cases() -> dict[str, Callable[[], object]]:
    # A rate so high that the bucket never empties: every call takes the
    # success path, the one a trading loop runs.
    limiter = RateLimiter(1e12, burst=1e12)
    refused = RateLimiter(1, burst=1)
    refused.try_take()
    core = RateCore(1e12, burst=1e12)
    lock = threading.Lock()
    clock = time.monotonic

    def lock_only() -> None:
        with lock:
            pass

    return {
        "RateLimiter.try_take() granted": limiter.try_take,
        "RateLimiter.try_take() refused": refused.try_take,
        "RateCore.try_take(now, 1) (rule only)": lambda: core.try_take(1.0, 1),
        "with threading.Lock(): pass": lock_only,
        "time.monotonic()": clock,
        "lambda: None (call overhead)": lambda: None,
    }


def retry_cases() -> dict[str, Callable[[], object]]:
    retry = Retry()
    ra = {"retry-after": "3"}.get
    err = ConnectError("refused")
    return {
        "Retry.decide 503 -> backoff": lambda: retry.decide(1, "GET", status=503, now_epoch=0.0),
        "Retry.decide 429 Retry-After: 3": lambda: retry.decide(
            1, "GET", status=429, headers_get=ra, now_epoch=0.0
        ),
        "Retry.decide 200 -> None": lambda: retry.decide(1, "GET", status=200, now_epoch=0.0),
        "Retry.decide ConnectError": lambda: retry.decide(1, "POST", error=err, now_epoch=0.0),
        "status in retry.statuses (shell guard)": lambda: 200 in retry.statuses,
    }


def main() -> None:
    cases = {**limiter_cases(), **retry_cases()}
    if len(sys.argv) == 4 and sys.argv[1] == "--loop":
        fn = cases[sys.argv[2]]
        for _ in range(int(sys.argv[3])):
            fn()
        return
    for name, fn in cases.items():
        print(f"{ns_per_call(fn):8.0f} ns  {name}")


if __name__ == "__main__":
    main()
