"""LastGood: fresh, stale-on-error, too old, per-key stats, LRU cap; both flavours."""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from warmline.errors import ConnectError, ReadTimeout
from warmline.resilience import KeyStats, LastGood, LastGoodResult


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def failing(exc: BaseException) -> Callable[[], Any]:
    def fetch() -> float:
        raise exc

    return fetch


def afailing(exc: BaseException) -> Callable[[], Awaitable[float]]:
    async def fetch() -> float:
        raise exc

    return fetch


async def avalue(v: float) -> float:
    return v


def test_fresh_then_stale_then_too_old() -> None:
    clock = FakeClock()
    lg: LastGood[str, float] = LastGood(max_age=5.0, clock=clock)
    assert lg.get_sync("BTC", lambda: 1.0) == LastGoodResult(1.0, False, 0.0, None)
    clock.now += 3.0
    err = ConnectError("down")
    r = lg.get_sync("BTC", failing(err))
    assert (r.value, r.stale, r.age, r.error) == (1.0, True, 3.0, err)
    clock.now += 2.0
    assert lg.get_sync("BTC", failing(err)).age == 5.0  # exactly max_age still serves
    clock.now += 0.5
    with pytest.raises(ConnectError) as info:
        lg.get_sync("BTC", failing(err))
    assert info.value is err


def test_no_value_yet_raises_the_error() -> None:
    lg: LastGood[str, float] = LastGood(max_age=5.0)
    with pytest.raises(ReadTimeout):
        lg.get_sync("ETH", failing(ReadTimeout("slow")))
    assert lg.stats()["ETH"] == KeyStats(0, 1, 0, None)


def test_a_success_refreshes_the_age() -> None:
    clock = FakeClock()
    lg: LastGood[str, float] = LastGood(max_age=5.0, clock=clock)
    lg.get_sync("k", lambda: 1.0)
    clock.now += 4.0
    lg.get_sync("k", lambda: 2.0)
    clock.now += 4.0
    r = lg.get_sync("k", failing(ValueError("bad json")))
    assert (r.value, r.age) == (2.0, 4.0)


def test_per_key_stats() -> None:
    clock = FakeClock()
    lg: LastGood[str, float] = LastGood(max_age=10.0, clock=clock)
    lg.get_sync("a", lambda: 1.0)
    lg.get_sync("a", lambda: 1.5)
    lg.get_sync("a", failing(OSError()))
    lg.get_sync("b", lambda: 2.0)
    with pytest.raises(OSError):
        lg.get_sync("c", failing(OSError()))
    clock.now += 1.0
    assert lg.stats() == {
        "a": KeyStats(successes=2, failures=1, stale_served=1, age=1.0),
        "b": KeyStats(successes=1, failures=0, stale_served=0, age=1.0),
        "c": KeyStats(successes=0, failures=1, stale_served=0, age=None),
    }


def test_errors_outside_catch_propagate_but_count() -> None:
    lg: LastGood[str, float] = LastGood(max_age=10.0, catch=(ConnectError,))
    lg.get_sync("a", lambda: 1.0)
    assert lg.get_sync("a", failing(ConnectError("x"))).stale
    with pytest.raises(ValueError):
        lg.get_sync("a", failing(ValueError("parser bug")))
    with pytest.raises(KeyboardInterrupt):
        LastGood[str, float](max_age=10.0).get_sync("a", failing(KeyboardInterrupt()))
    assert lg.stats()["a"].failures == 1  # only the caught failure


def test_lru_cap_forgets_the_least_recently_used_key() -> None:
    lg: LastGood[int, int] = LastGood(max_age=10.0, max_keys=3)
    for k in (1, 2, 3):
        lg.get_sync(k, lambda k=k: k)  # type: ignore[misc]
    lg.get_sync(1, lambda: 1)  # 1 is now the most recent
    lg.get_sync(4, lambda: 4)
    assert list(lg.stats()) == [3, 1, 4]
    assert len(lg) == 3
    assert lg.peek(2) is None


def test_put_peek_forget() -> None:
    clock = FakeClock()
    lg: LastGood[str, str] = LastGood(max_age=1.0, clock=clock)
    lg.put("k", "v")
    clock.now += 7.0
    assert lg.peek("k") == LastGoodResult("v", True, 7.0, None)
    lg.forget("k")
    assert lg.peek("k") is None
    lg.forget("k")  # twice is harmless
    assert "0 keys" in repr(lg)


def test_infinite_max_age_serves_any_age() -> None:
    clock = FakeClock()
    lg: LastGood[str, int] = LastGood(max_age=math.inf, clock=clock)
    lg.put("k", 1)
    clock.now += 1e9
    assert lg.get_sync("k", failing(OSError())).value == 1


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"max_age": -1}, ValueError),
        ({"max_age": math.nan}, ValueError),
        ({"max_age": "5"}, ValueError),
        ({"max_age": 1, "max_keys": 0}, ValueError),
        ({"max_age": 1, "max_keys": 1.5}, ValueError),
        ({"max_age": 1, "catch": Exception}, TypeError),
        ({"max_age": 1, "catch": (int,)}, TypeError),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], exc: type[Exception]) -> None:
    with pytest.raises(exc):
        LastGood(**kwargs)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_async_fresh_stale_too_old() -> None:
    clock = FakeClock()
    lg: LastGood[str, float] = LastGood(max_age=2.0, clock=clock)
    assert (await lg.get("k", lambda: avalue(3.0))).value == 3.0
    clock.now += 1.0
    r = await lg.get("k", afailing(ConnectError("down")))
    assert (r.value, r.stale, r.age) == (3.0, True, 1.0)
    clock.now += 5.0
    with pytest.raises(ConnectError):
        await lg.get("k", afailing(ConnectError("down")))
    assert lg.stats()["k"] == KeyStats(1, 2, 1, 6.0)


@pytest.mark.asyncio
async def test_async_timeout_counts_as_a_failure_and_serves_stale() -> None:
    lg: LastGood[str, float] = LastGood(max_age=60.0)
    await lg.get("k", lambda: avalue(1.0))
    never = asyncio.Event()

    async def hang() -> float:
        await never.wait()
        return 2.0

    r = await lg.get("k", hang, timeout=0.01)
    assert r.stale and isinstance(r.error, TimeoutError)
    assert r.value == 1.0


@pytest.mark.asyncio
async def test_async_cancellation_is_not_swallowed() -> None:
    lg: LastGood[str, float] = LastGood(max_age=60.0)
    await lg.get("k", lambda: avalue(1.0))
    started = asyncio.Event()

    async def hang() -> float:
        started.set()
        await asyncio.Event().wait()
        return 2.0

    task = asyncio.create_task(lg.get("k", hang))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert lg.stats()["k"].failures == 0


def test_threads_share_one_last_good() -> None:
    lg: LastGood[int, int] = LastGood(max_age=60.0, max_keys=8)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(200):
                key = i % 10
                if i % 3:
                    lg.get_sync(key, lambda i=i: i)  # type: ignore[misc]
                else:
                    # No value yet, or evicted: the error propagates, allowed.
                    with contextlib.suppress(OSError):
                        lg.get_sync(key, failing(OSError()))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10.0)
    assert not errors
    assert len(lg) == 8
