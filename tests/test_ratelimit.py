"""RateLimiter: the pure GCRA core with a fake clock, then real threads and asyncio.

The real-time tests use short intervals (a few ms per unit) and assert
ordering and counts, never how fast anything ran.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from email.utils import formatdate

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warmline.errors import RateLimited, WarmlineError
from warmline.resilience import RateCore, RateLimiter
from warmline.resilience._ratelimit import Waiter


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Probe(Waiter):
    """A core waiter that records its wake-ups."""

    __slots__ = ("woken",)

    def __init__(self, weight: float) -> None:
        super().__init__(weight)
        self.woken = 0

    def wake(self) -> bool:
        self.woken += 1
        return True


# --- the pure core ----------------------------------------------------------


def test_full_bucket_then_exact_rate() -> None:
    core = RateCore(10, per=1.0, burst=10)
    assert [core.try_take(0.0, 1) for _ in range(11)] == [True] * 10 + [False]
    assert not core.try_take(0.05, 1)
    assert core.try_take(0.1, 1)
    assert not core.try_take(0.1, 1)
    assert core.delay(0.1, 1) == pytest.approx(0.1)
    assert core.delay(0.1, 3) == pytest.approx(0.3)


def test_burst_defaults_to_rate_and_per_scales() -> None:
    core = RateCore(1200, per=60.0)
    assert core.burst == 1200
    assert core.interval == pytest.approx(0.05)
    assert core.try_take(0.0, 1200)
    assert not core.try_take(0.0, 1)
    assert core.available(1.0) == pytest.approx(20.0)


def test_weights() -> None:
    core = RateCore(10, burst=10)
    assert core.try_take(0.0, 5)
    assert core.try_take(0.0, 5)
    assert not core.try_take(0.0, 0.5)
    assert core.try_take(0.0, 0)
    assert core.try_take(0.25, 2.5)
    assert core.available(0.25) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("bad", [0, -1, math.inf, math.nan])
@pytest.mark.parametrize("name", ["rate", "per", "burst"])
def test_bad_numbers_are_refused(name: str, bad: float) -> None:
    kwargs: dict[str, float] = {"rate": 10.0, "per": 1.0, "burst": 5.0, name: bad}
    with pytest.raises(ValueError, match=name):
        RateLimiter(**kwargs)  # type: ignore[arg-type]


def test_non_numbers_are_refused() -> None:
    with pytest.raises(TypeError):
        RateLimiter("10")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        RateLimiter(True)


@pytest.mark.parametrize("weight", [-1, 10.5, math.nan, math.inf])
def test_weight_that_can_never_pass_is_a_value_error_at_the_call(weight: float) -> None:
    limiter = RateLimiter(10, burst=10)
    with pytest.raises(ValueError, match="weight"):
        limiter.try_take(weight)
    with pytest.raises(ValueError, match="weight"):
        limiter.take_sync(weight)
    with pytest.raises(ValueError, match="weight"):
        asyncio.run(limiter.take(weight))


@settings(max_examples=60, deadline=None)
@given(
    rate=st.sampled_from([1.0, 7.0, 100.0]),
    burst=st.sampled_from([1.0, 3.0, 10.0]),
    steps=st.lists(
        st.tuples(st.floats(0, 0.5), st.sampled_from([0.5, 1.0, 1.0, 2.0, 3.0])), max_size=60
    ),
)
def test_no_window_ever_exceeds_burst_plus_rate(
    rate: float, burst: float, steps: list[tuple[float, float]]
) -> None:
    core = RateCore(rate, burst=burst)
    now, taken = 0.0, []
    for dt, weight in steps:
        now += dt
        if weight <= burst and core.try_take(now, weight):
            taken.append((now, weight))
    for i, (t0, _) in enumerate(taken):
        total = 0.0
        for t1, weight in taken[i:]:
            total += weight
            assert total <= burst + rate * (t1 - t0) + 1e-6


def test_fifo_head_is_not_starved_by_light_requests() -> None:
    core = RateCore(10, burst=10)
    assert core.try_take(0.0, 10)
    heavy, light = Probe(8), Probe(1)
    core.enqueue(0.0, heavy, None)
    core.enqueue(0.0, light, None)
    assert not core.try_take(0.2, 1)  # budget for one, but someone is queued
    assert core.poll(0.2, light) is None  # not its turn
    assert core.poll(0.2, heavy) == pytest.approx(0.6)
    assert core.poll(0.8, heavy) == 0.0
    assert heavy.granted
    assert core.head() is light
    assert core.poll(0.8, light) == pytest.approx(0.1)
    assert core.poll(0.9, light) == 0.0
    assert core.head() is None
    assert core.queued_weight == 0.0


def test_enqueue_refuses_a_wait_past_the_timeout_counting_the_queue() -> None:
    core = RateCore(10, burst=10)
    core.try_take(0.0, 10)
    core.enqueue(0.0, Probe(5), None)
    with pytest.raises(RateLimited) as info:
        core.enqueue(0.0, Probe(5), timeout=0.9)
    assert info.value.retry_after == pytest.approx(1.0)
    assert isinstance(info.value, WarmlineError)
    assert len(core.queue) == 1
    core.enqueue(0.0, Probe(5), timeout=1.0)
    assert len(core.queue) == 2


def test_cancel_leaves_nothing_reserved() -> None:
    core = RateCore(10, burst=10)
    core.try_take(0.0, 10)
    tat = core.tat
    a, b, c = Probe(3), Probe(3), Probe(3)
    for w in (a, b, c):
        core.enqueue(0.0, w, None)
    assert core.cancel(b) is None  # not the head: nobody to wake
    assert core.queued_weight == pytest.approx(6)
    assert core.cancel(a) is c  # the head: the cancelled b behind it is skipped
    assert list(core.queue) == [c]
    assert core.cancel(c) is None
    assert core.cancel(c) is None  # twice is harmless
    assert not core.queue
    assert core.queued_weight == 0.0
    assert core.tat == tat
    assert core.try_take(1.0, 10)


def test_refund_gives_back_exactly_one_take() -> None:
    core = RateCore(10, burst=10)
    core.try_take(0.0, 10)
    core.refund(4)
    assert core.available(0.0) == pytest.approx(4)


def test_pause_blocks_everything_and_is_never_shortened() -> None:
    core = RateCore(10, burst=10)
    core.pause_until(5.0)
    core.pause_until(2.0)
    assert core.paused_until == 5.0
    assert not core.try_take(4.9, 1)
    assert core.available(4.9) == 0.0
    assert core.delay(1.0, 1) == pytest.approx(4.0)
    assert core.try_take(5.0, 10)  # budget refilled during the pause


def test_observe_tightens_to_the_server_count() -> None:
    core = RateCore(1200, per=60.0)
    core.observe(0.0, used=1100, limit=1200, reset_after=None)
    assert core.available(0.0) == pytest.approx(100)
    core.observe(0.0, used=100, limit=1200, reset_after=None)  # older, lower: ignored
    assert core.available(0.0) == pytest.approx(100)


def test_observe_scales_to_a_smaller_burst_and_pauses_when_spent() -> None:
    core = RateCore(1000, per=60.0)
    core.observe(0.0, used=600, limit=1200, reset_after=None)
    assert core.available(0.0) == pytest.approx(500)
    core.observe(0.0, used=1300, limit=1200, reset_after=12.0)
    assert core.available(0.0) == 0.0
    assert core.paused_until == 12.0


def test_observe_without_limit_counts_against_burst() -> None:
    core = RateCore(10, burst=10)
    core.observe(0.0, used=7, limit=None, reset_after=None)
    assert core.available(0.0) == pytest.approx(3)
    with pytest.raises(ValueError):
        core.observe(0.0, used=-1, limit=None, reset_after=None)
    with pytest.raises(ValueError):
        core.observe(0.0, used=1, limit=0, reset_after=None)


# --- the shell with a fake clock ---------------------------------------------


def test_try_take_with_injected_clock() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, per=1.0, burst=2, clock=clock)
    assert limiter.try_take() and limiter.try_take()
    assert not limiter.try_take()
    clock.now += 0.5
    assert limiter.try_take()
    assert limiter.available() == pytest.approx(0.0, abs=1e-9)
    assert "burst=2" in repr(limiter)


def test_take_refuses_at_once_when_the_wait_exceeds_the_timeout() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, burst=1, clock=clock)
    assert limiter.try_take()
    with pytest.raises(RateLimited) as info:
        limiter.take_sync(1, timeout=0.5)
    assert info.value.retry_after == pytest.approx(1.0)
    with pytest.raises(RateLimited):
        asyncio.run(limiter.take(1, timeout=0))
    assert limiter.waiting == 0
    with pytest.raises(ValueError, match="timeout"):
        limiter.take_sync(1, timeout=-1)


@pytest.mark.parametrize("status", [429, 418])
def test_on_response_pauses_every_caller(status: int) -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock)
    assert limiter.on_response(status, {"retry-after": "2"}.get, now_epoch=0.0) == 2.0
    assert limiter.paused_for() == pytest.approx(2.0)
    assert not limiter.try_take()
    clock.now += 2.0
    assert limiter.try_take()


def test_on_response_http_date_and_non_pausing_answers() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock)
    date = {"retry-after": formatdate(1_000_030.0, usegmt=True)}.get
    assert limiter.on_response(429, date, now_epoch=1_000_000.0) == 30.0
    assert limiter.paused_for() == pytest.approx(30.0)
    fresh = RateLimiter(100, clock=clock)
    assert fresh.on_response(503, {"retry-after": "5"}.get, now_epoch=0.0) is None
    assert fresh.on_response(429, {"retry-after": "later"}.get, now_epoch=0.0) is None
    assert fresh.on_response(429, dict[str, str]().get, now_epoch=0.0) is None
    assert fresh.paused_for() == 0.0


def test_pause_arguments_are_checked() -> None:
    limiter = RateLimiter(10)
    with pytest.raises(ValueError):
        limiter.pause(-1)
    with pytest.raises(ValueError):
        limiter.pause_until(math.nan)


def test_observe_through_the_shell() -> None:
    limiter = RateLimiter(1200, per=60.0, clock=FakeClock())
    limiter.observe(1195, 1200)
    assert limiter.try_take(5)
    assert not limiter.try_take(1)


# --- real asyncio --------------------------------------------------------------

# 5 ms per unit: waits in these tests stay in the tens of milliseconds.
FAST = 200.0


@pytest.mark.asyncio
async def test_async_waiters_are_served_in_fifo_order() -> None:
    limiter = RateLimiter(FAST, burst=4)
    assert limiter.try_take(4)
    order: list[str] = []

    async def take(name: str, weight: float) -> None:
        await limiter.take(weight, timeout=5.0)
        order.append(name)

    heavy = asyncio.create_task(take("heavy", 4))
    await asyncio.sleep(0)
    lights = [asyncio.create_task(take(f"light{i}", 1)) for i in range(5)]
    await asyncio.sleep(0)
    assert limiter.waiting == 6
    assert not limiter.try_take(1)  # nobody jumps the queue
    await asyncio.gather(heavy, *lights)
    assert order == ["heavy"] + [f"light{i}" for i in range(5)]
    assert limiter.waiting == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("where", ["head-sleeping", "behind", "queued-in-the-same-tick"])
async def test_cancelling_an_async_waiter_leaves_nothing_reserved(where: str) -> None:
    limiter = RateLimiter(FAST, burst=4)
    assert limiter.try_take(4)
    tat = limiter._core.tat
    victim_first = where != "behind"
    first = asyncio.create_task(limiter.take(4))
    if where != "queued-in-the-same-tick":
        await asyncio.sleep(0)
    second = asyncio.create_task(limiter.take(2))
    await asyncio.sleep(0)
    victim, survivor = (first, second) if victim_first else (second, first)
    victim.cancel()
    with pytest.raises(asyncio.CancelledError):
        await victim
    assert limiter._core.tat == tat  # nothing was taken for the cancelled one
    await asyncio.wait_for(survivor, 5.0)
    assert limiter.waiting == 0
    assert limiter._core.queued_weight == 0.0
    assert limiter._core.tat > tat  # the survivor was served


@pytest.mark.asyncio
async def test_a_pause_seen_by_100_concurrent_callers() -> None:
    limiter = RateLimiter(1000)
    limiter.on_response(429, {"retry-after": "1"}.get, now_epoch=0.0)

    async def caller() -> float | None:
        assert not limiter.try_take()
        try:
            await limiter.take(1, timeout=0.05)
        except RateLimited as exc:
            return exc.retry_after
        return None

    results = await asyncio.gather(*(caller() for _ in range(100)))
    assert all(r is not None and 0.5 < r <= 1.0 for r in results)
    assert limiter.waiting == 0


@pytest.mark.asyncio
async def test_a_pause_during_the_wait_ends_in_rate_limited_at_the_deadline() -> None:
    limiter = RateLimiter(FAST, burst=1)
    assert limiter.try_take(1)
    task = asyncio.create_task(limiter.take(1, timeout=0.05))
    await asyncio.sleep(0)
    limiter.pause(10.0)
    with pytest.raises(RateLimited) as info:
        await task
    assert info.value.retry_after is not None and info.value.retry_after > 9.0
    assert limiter.waiting == 0


# --- real threads, and both flavours on one limiter --------------------------


def run_threads(targets: list[Callable[[], None]]) -> None:
    threads = [threading.Thread(target=t) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10.0)
    assert not any(t.is_alive() for t in threads)


def test_thread_waiters_are_served_in_fifo_order() -> None:
    limiter = RateLimiter(FAST, burst=4)
    assert limiter.try_take(4)
    order: list[int] = []

    def taker(i: int, weight: float) -> Callable[[], None]:
        def run() -> None:
            limiter.take_sync(weight, timeout=5.0)
            order.append(i)

        return run

    # Start them one at a time so that queue order is known.
    threads = []
    for i, weight in enumerate([4, 1, 1, 3, 1]):
        t = threading.Thread(target=taker(i, weight))
        t.start()
        threads.append(t)
        deadline = time.monotonic() + 5.0
        while limiter.waiting < i + 1 and time.monotonic() < deadline and t.is_alive():
            time.sleep(0.0005)
    for t in threads:
        t.join(10.0)
    assert order == [0, 1, 2, 3, 4]


def test_an_interrupted_thread_waiter_leaves_nothing_reserved() -> None:
    calls = 0
    real = time.monotonic

    def clock() -> float:
        nonlocal calls
        calls += 1
        if calls == 3:  # inside the waiter's first poll
            raise KeyboardInterrupt
        return real()

    limiter = RateLimiter(FAST, burst=4, clock=clock)
    assert limiter.try_take(4)  # call 1
    tat = limiter._core.tat
    with pytest.raises(KeyboardInterrupt):
        limiter.take_sync(4)  # call 2 to enqueue, call 3 interrupts
    assert limiter.waiting == 0
    assert limiter._core.tat == tat
    limiter.take_sync(4, timeout=5.0)  # the queue still works
    assert limiter.waiting == 0


def test_threads_see_a_pause_at_once() -> None:
    limiter = RateLimiter(1000)
    limiter.pause(1.0)
    results: list[float | None] = []

    def caller() -> None:
        try:
            limiter.take_sync(1, timeout=0.01)
        except RateLimited as exc:
            results.append(exc.retry_after)

    run_threads([caller] * 20)
    assert len(results) == 20
    assert all(r is not None and r > 0.5 for r in results)


def test_both_flavours_share_one_budget() -> None:
    clock_reads: list[float] = []

    def clock() -> float:
        now = time.monotonic()
        clock_reads.append(now)
        return now

    limiter = RateLimiter(FAST, burst=5, clock=clock)
    granted: list[float] = []
    lock = threading.Lock()

    def record() -> None:
        with lock:
            granted.append(time.monotonic())

    def thread_taker() -> None:
        for _ in range(10):
            limiter.take_sync(1, timeout=5.0)
            record()

    async def async_takers() -> None:
        async def one() -> None:
            for _ in range(10):
                await limiter.take(1, timeout=5.0)
                record()

        await asyncio.gather(*(one() for _ in range(3)))

    start = time.monotonic()
    run_threads([thread_taker, thread_taker, lambda: asyncio.run(async_takers())])
    elapsed = time.monotonic() - start
    assert len(granted) == 50
    # The GCRA bound over the whole run, in units: burst + rate * elapsed.
    assert len(granted) <= 5 + FAST * elapsed + 1e-6
    assert limiter.waiting == 0


def test_try_take_from_many_threads_never_over_admits() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, burst=100, clock=clock)
    wins: list[int] = []

    def hammer() -> None:
        n = sum(limiter.try_take() for _ in range(500))
        wins.append(n)

    run_threads([hammer] * 4)
    assert sum(wins) == 100  # the fake clock never moves: exactly the burst
