"""Retry, rate limits and hedging on both clients, end to end against MockServer.

One body, two flavours: each test drives the asyncio client directly and the
blocking one through ``asyncio.to_thread``, so the same assertions hold for
both. Server-side counts come from the MockServer journal.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from email.utils import formatdate
from typing import Any

import pytest

import warmline
from warmline import Backoff
from warmline._policy import Origin
from warmline.errors import ConnectionClosed, InvalidRequest, RateLimited
from warmline.resilience import Hedge, RateLimiter, ResilienceStats, Retry
from warmline.testing import MockServer, Reply, Reset

from .resilience_helpers import Harness

FAST = Backoff(initial=0.0, maximum=0.0, jitter=0.0)  # retry at once


@pytest.fixture(params=["aio", "sync"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def gaps(server: MockServer) -> list[float]:
    times = [r.time for r in server.journal]
    return [b - a for a, b in itertools.pairwise(times)]


# -- retry -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_503_then_200_is_one_retry(flavour: str, warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/t").respond_with(Reply(503), Reply(200, body="ok")).times(2)
    async with Harness(flavour, retry=Retry(backoff=FAST)) as h:
        r = await h.request("GET", warmline_mock.url + "/t")
        assert (r.status, r.text) == (200, "ok")
        assert h.stats(warmline_mock.url) == ResilienceStats(retries=1)


@pytest.mark.asyncio
async def test_retries_stop_at_total(flavour: str, warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/t").respond(503).times(3)
    async with Harness(flavour, retry=Retry(total=2, backoff=FAST)) as h:
        assert (await h.request("GET", warmline_mock.url + "/t")).status == 503
        assert h.stats(warmline_mock.url).retries == 2


@pytest.mark.asyncio
async def test_reset_connection_is_retried_for_get(flavour: str, warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/t").respond_with(Reset(), Reply(200, body="ok")).times(2)
    async with Harness(flavour, retry=Retry(backoff=FAST)) as h:
        assert (await h.request("GET", warmline_mock.url + "/t")).text == "ok"
        assert h.stats(warmline_mock.url).retries == 1


@pytest.mark.asyncio
async def test_post_not_retried_unless_listed(flavour: str, warmline_mock: MockServer) -> None:
    warmline_mock.expect(method="POST", path="/order").respond_with(
        Reply(503), Reply(503), Reply(201)
    )
    url = warmline_mock.url + "/order"
    async with Harness(flavour, retry=Retry(backoff=FAST)) as h:
        assert (await h.request("POST", url, json={"q": 1})).status == 503
        assert len(warmline_mock.journal) == 1
        assert h.stats(warmline_mock.url).retries == 0
    listed = Retry(backoff=FAST, methods=frozenset({"GET", "POST"}))
    async with Harness(flavour, retry=listed) as h:
        assert (await h.request("POST", url, json={"q": 1})).status == 201
        assert h.stats(warmline_mock.url).retries == 1
    bodies = [r.json() for r in warmline_mock.journal]
    assert bodies == [{"q": 1}] * 3  # the replayed body is the same


@pytest.mark.asyncio
async def test_post_reset_is_not_replayed(flavour: str, warmline_mock: MockServer) -> None:
    warmline_mock.expect(method="POST").respond_with(Reset(), Reply(201)).at_most(1)
    async with Harness(flavour, retry=Retry(backoff=FAST)) as h:
        with pytest.raises(ConnectionClosed):
            await h.request("POST", warmline_mock.url + "/order", content=b"x")
    assert len(warmline_mock.journal) == 1


@pytest.mark.asyncio
async def test_retry_after_seconds_is_waited(flavour: str, warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/t").respond_with(
        Reply(429, headers={"Retry-After": "1"}), Reply(200)
    ).times(2)
    async with Harness(flavour, retry=Retry(backoff=FAST)) as h:
        assert (await h.request("GET", warmline_mock.url + "/t")).status == 200
    assert gaps(warmline_mock)[0] >= 0.9


@pytest.mark.asyncio
async def test_retry_after_http_date_is_waited(flavour: str, warmline_mock: MockServer) -> None:
    # One-second resolution: a date 1.5 s ahead means a wait in (0.5, 1.5].
    when = formatdate(time.time() + 1.5, usegmt=True)
    warmline_mock.expect(path="/t").respond_with(
        Reply(503, headers={"Retry-After": when}), Reply(200)
    ).times(2)
    async with Harness(flavour, retry=Retry(backoff=FAST)) as h:
        assert (await h.request("GET", warmline_mock.url + "/t")).status == 200
    assert gaps(warmline_mock)[0] >= 0.4


@pytest.mark.asyncio
async def test_retry_after_beyond_max_returns_the_response(
    flavour: str, warmline_mock: MockServer
) -> None:
    warmline_mock.expect(path="/t").respond(503, headers={"Retry-After": "60"}).once()
    async with Harness(flavour, retry=Retry(max_retry_after=5.0)) as h:
        r = await h.request("GET", warmline_mock.url + "/t")
        assert (r.status, r.headers["retry-after"]) == (503, "60")
        assert h.stats(warmline_mock.url).retries == 0


@pytest.mark.asyncio
async def test_retry_after_longer_than_time_left_returns_at_once(
    flavour: str, warmline_mock: MockServer
) -> None:
    warmline_mock.expect(path="/t").respond(503, headers={"Retry-After": "3"}).once()
    async with Harness(flavour, retry=Retry(), timeout=1.0) as h:
        started = time.monotonic()
        assert (await h.request("GET", warmline_mock.url + "/t")).status == 503
        assert time.monotonic() - started < 1.0  # returned, not slept for 3 s


@pytest.mark.asyncio
async def test_total_timeout_bounds_all_attempts(flavour: str, warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/t").respond(503, delay=0.3).at_least(1)
    retry = Retry(total=50, backoff=Backoff(initial=0.05, maximum=0.05, jitter=0.0))
    async with Harness(flavour, retry=retry) as h:
        started = time.monotonic()
        try:
            r = await h.request("GET", warmline_mock.url + "/t", timeout=1.0)
            assert r.status == 503
        except warmline.ReadTimeout:
            pass  # the last attempt ran out of the request's time
        assert time.monotonic() - started < 1.5
    assert len(warmline_mock.journal) <= 4


# -- rate limits ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_429_pauses_the_origin_limiter_for_every_caller(
    flavour: str, warmline_mock: MockServer
) -> None:
    warmline_mock.expect(path="/t").respond_with(
        Reply(429, headers={"Retry-After": "1"}), Reply(200)
    )
    limiter = RateLimiter(1000, burst=100)
    async with Harness(flavour, rate_limits={warmline_mock.url: limiter}) as h:
        url = warmline_mock.url + "/t"
        assert (await h.request("GET", url)).status == 429  # no retry policy: returned
        assert limiter.paused_for() > 0.5
        assert not limiter.try_take()  # the hot path sees the pause too
        results = await asyncio.gather(
            *(h.request("GET", url, timeout=0.3) for _ in range(20)), return_exceptions=True
        )
        assert all(isinstance(r, RateLimited) for r in results)
        assert len(warmline_mock.journal) == 1  # none of them reached the server
        assert (await h.request("GET", url, timeout=3.0)).status == 200
    assert gaps(warmline_mock)[0] >= 0.9


@pytest.mark.asyncio
async def test_client_wide_limiter_paused_when_the_origin_has_none(
    flavour: str, warmline_mock: MockServer
) -> None:
    warmline_mock.expect(path="/t").respond(418, headers={"Retry-After": "2"}).once()
    limiter = RateLimiter(1000)
    async with Harness(flavour, rate_limit=limiter) as h:
        assert (await h.request("GET", warmline_mock.url + "/t")).status == 418
        assert limiter.paused_for() > 1.0


@pytest.mark.asyncio
async def test_try_take_and_take_share_one_budget(flavour: str, warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/t").respond(200).times(2)
    limiter = RateLimiter(5, burst=2)  # one unit every 0.2 s
    async with Harness(flavour, rate_limit=limiter) as h:
        url = warmline_mock.url + "/t"
        assert limiter.try_take() and limiter.try_take()  # the hot path empties it
        assert not limiter.try_take()
        with pytest.raises(RateLimited):  # would wait ~0.2 s, more than it has
            await h.request("GET", url, timeout=0.05)
        assert len(warmline_mock.journal) == 0
        assert (await h.request("GET", url, timeout=2.0)).status == 200  # waits its turn
        assert not limiter.try_take()  # the client took the unit that came back
        assert (await h.request("GET", url, timeout=2.0)).status == 200
    assert gaps(warmline_mock)[0] >= 0.1


@pytest.mark.asyncio
async def test_weight_of_and_both_limiters_are_taken(
    flavour: str, warmline_mock: MockServer
) -> None:
    warmline_mock.expect(path="/heavy").respond(200).once()
    shared, own = RateLimiter(1, per=60.0, burst=10), RateLimiter(1, per=60.0, burst=10)
    seen: list[tuple[str, str]] = []

    def weight_of(method: str, url: str) -> float:
        seen.append((method, url))
        return 4.0

    options = {"rate_limit": shared, "rate_limits": {warmline_mock.url: own}}
    async with Harness(flavour, weight_of=weight_of, **options) as h:
        url = warmline_mock.url + "/heavy"
        assert (await h.request("GET", url)).status == 200
        assert seen == [("GET", url)]
        assert shared.available() == pytest.approx(6.0, abs=0.01)
        assert own.available() == pytest.approx(6.0, abs=0.01)


# -- hedging -------------------------------------------------------------------


@pytest.mark.warmline_mock(stop_timeout=2.0)
@pytest.mark.asyncio
async def test_slow_first_attempt_loses_to_the_hedge(
    flavour: str, warmline_mock: MockServer
) -> None:
    warmline_mock.expect(path="/t").respond_with(
        Reply(200, body="slow", delay=1.0), Reply(200, body="fast")
    ).times(2)
    async with Harness(flavour, hedge=Hedge(after=0.05, budget=None)) as h:
        r = await h.request("GET", warmline_mock.url + "/t")
        assert r.text == "fast"
        assert h.stats(warmline_mock.url) == ResilienceStats(hedges_sent=1, hedges_won=1)
        first, second = warmline_mock.journal
        assert first.connection_id != second.connection_id


@pytest.mark.asyncio
async def test_fast_answer_sends_no_hedge(flavour: str, warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/t").respond(200).times(5)
    async with Harness(flavour, hedge=Hedge(after=1.0, budget=None)) as h:
        for _ in range(5):
            assert (await h.request("GET", warmline_mock.url + "/t")).status == 200
        assert h.stats(warmline_mock.url) == ResilienceStats()


@pytest.mark.asyncio
async def test_post_is_never_hedged(flavour: str, warmline_mock: MockServer) -> None:
    warmline_mock.expect(method="POST", path="/order").respond(201, delay=0.3).once()
    async with Harness(flavour, hedge=Hedge(after=0.02, max_extra=3, budget=None)) as h:
        assert (await h.request("POST", warmline_mock.url + "/order", json={})).status == 201
        assert h.stats(warmline_mock.url).hedges_sent == 0


@pytest.mark.asyncio
async def test_hedge_waits_for_a_later_success_when_one_attempt_fails(
    flavour: str, warmline_mock: MockServer
) -> None:
    # The first attempt fails (a short body, then close) after the hedge went
    # out; the request waits for the hedge instead of raising.
    broken = Reply(200, body="x", headers={"Content-Length": "100"}, delay=0.15, close=True)
    warmline_mock.expect(path="/t").respond_with(broken, Reply(200, body="fast", delay=0.3))
    async with Harness(flavour, hedge=Hedge(after=0.05, budget=None)) as h:
        assert (await h.request("GET", warmline_mock.url + "/t")).text == "fast"
        assert h.stats(warmline_mock.url) == ResilienceStats(hedges_sent=1, hedges_won=1)
    assert len(warmline_mock.journal) == 2


@pytest.mark.asyncio
async def test_hedge_skipped_when_the_limiter_has_no_budget(
    flavour: str, warmline_mock: MockServer
) -> None:
    warmline_mock.expect(path="/t").respond(200, body="slow", delay=0.3).once()
    limiter = RateLimiter(1, per=60.0, burst=1)  # the first attempt takes it all
    async with Harness(flavour, hedge=Hedge(after=0.02, budget=None), rate_limit=limiter) as h:
        assert (await h.request("GET", warmline_mock.url + "/t")).text == "slow"
        assert h.stats(warmline_mock.url).hedges_sent == 0


@pytest.mark.warmline_mock(verify=False, stop_timeout=2.0)
@pytest.mark.asyncio
async def test_cancelled_hedged_request_leaves_no_task(warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/t").respond(200, delay=5.0).any_times()
    warmline_mock.expect(path="/u").respond(200).once()
    async with Harness("aio", hedge=Hedge(after=0.02, budget=None)) as h:
        call = asyncio.create_task(h.request("GET", warmline_mock.url + "/t"))
        await asyncio.to_thread(warmline_mock.wait_for_requests, 2, 5.0)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert asyncio.all_tasks() == {asyncio.current_task()}
        assert h.stats(warmline_mock.url).hedges_sent == 1
        # Both abandoned connections are replaced; the client serves again.
        r = await h.request("GET", warmline_mock.url + "/u")
        assert r.status == 200
        assert len({q.connection_id for q in warmline_mock.journal}) == 3


# -- the plain path and bad options ------------------------------------------


@pytest.mark.asyncio
async def test_no_policy_returns_the_pools_own_coroutine(warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/t").respond(200).once()
    async with Harness("aio") as h:
        coro = h.client.get(warmline_mock.url + "/t")
        assert coro.__qualname__ == "ClientPool._call"
        assert (await coro).status == 200
        assert h.client.resilience_stats() == {
            str(Origin.parse(warmline_mock.url)): ResilienceStats()
        }


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"retry": 3}, TypeError),
        ({"hedge": 0.05}, TypeError),
        ({"rate_limit": 10}, TypeError),
        ({"rate_limits": {"http://a": 10}}, TypeError),
        ({"rate_limits": {"ftp://a": RateLimiter(1)}}, InvalidRequest),
        ({"rate_limits": {"http://a/path": RateLimiter(1)}}, InvalidRequest),
        ({"rate_limit": RateLimiter(1), "weight_of": 2.0}, TypeError),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], error: type[Exception]) -> None:
    for cls in (warmline.Client, warmline.AsyncClient):
        with pytest.raises(error):
            cls(**options)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"after": 0}, ValueError),
        ({"after": float("nan")}, ValueError),
        ({"after": "1"}, TypeError),
        ({"after": "p99"}, TypeError),
        ({"budget": 0}, ValueError),
        ({"budget": 1.5}, ValueError),
        ({"max_extra": 0}, ValueError),
        ({"max_extra": True}, ValueError),
        ({"methods": "GET"}, TypeError),
    ],
)
def test_bad_hedge_is_refused(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        Hedge(**options)


def test_hedge_normalises_methods() -> None:
    hedge = Hedge(methods=frozenset({"get"}))
    assert hedge.hedges("GET") and not hedge.hedges("PUT")
    assert Hedge().hedges("GET") and not Hedge().hedges("POST")


def test_hedge_tracker_budget_and_p95() -> None:
    """The per-origin state, with a fake clock: the budget caps hedges as a
    share of requests over the window, and "p95" waits for enough samples."""
    from warmline.resilience._hedge import MIN_SAMPLES, WINDOW_S

    fixed = Hedge(after=0.01, budget=0.1).tracker()
    assert fixed.delay(0.0) == 0.01
    for i in range(50):
        fixed.begin(i * 0.01)
    granted = sum(fixed.allow(0.5) for _ in range(20))
    assert granted == 5  # 10 % of 50 requests
    # A window later the old requests still count (the previous window)...
    assert not fixed.allow(WINDOW_S + 0.1)
    # ...two windows later everything is forgotten: one hedge per request.
    assert fixed.allow(3 * WINDOW_S) is False  # 0 requests: at most 0.1 of 1
    assert Hedge(after=0.01, budget=None).tracker().allow(0.0)

    p95 = Hedge(after="p95").tracker()
    for i in range(MIN_SAMPLES - 1):
        p95.record(0.002, i * 0.001)
    assert p95.delay(0.05) is None  # too few samples: no hedging yet
    for i in range(80):
        p95.record(0.002 if i % 20 else 0.050, 0.05 + i * 0.001)
    delay = p95.delay(0.2)
    assert delay is not None and 0.0019 < delay < 0.0021
