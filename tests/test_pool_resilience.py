"""``retry=`` and ``hedge=`` on the pools themselves (issue 13), both flavours.

The pools drive the clients' attempt loop (:mod:`warmline._pool._attempts`)
for their own requests (``pool.get()``); a leased slot's request is sent
once. Retries against MockServer (server-side counts from its journal);
hedges against the scripted server of ``test_hedge_faults`` that holds
chosen requests. No wall-clock assertions.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

import pytest

import warmline
from warmline import AtomicClientPool, Backoff, ClientPool, Hedge, Hooks, Retry
from warmline.errors import PoolClosed, PoolTimeout, ReadTimeout
from warmline.resilience import ResilienceStats
from warmline.testing import MockServer, Reply, Reset

from .resilience_helpers import HoldingServer, parse_answer

FAST = Backoff(initial=0.0, maximum=0.0, jitter=0.0)  # retry at once


@pytest.fixture(params=["aio", "sync"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Pool:
    """One pool of either flavour, called with ``await``."""

    def __init__(self, flavour: str, url: str, **options: Any) -> None:
        self.flavour = flavour
        self.url = url
        self.options = options
        self.pool: Any = None

    async def __aenter__(self) -> Pool:
        if self.flavour == "aio":
            self.pool = await ClientPool.connect(self.url, **self.options)
        else:
            self.pool = await asyncio.to_thread(AtomicClientPool.connect, self.url, **self.options)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.flavour == "aio":
            await self.pool.close()
        else:
            await asyncio.to_thread(self.pool.close)

    async def call(self, method: str, path: str, **kw: Any) -> warmline.Response:
        if self.flavour == "aio":
            response: warmline.Response = await self.pool.request(method, path, **kw)
            return response
        return await asyncio.to_thread(self.pool.request, method, path, **kw)

    async def on_lease(self, path: str) -> warmline.Response:
        if self.flavour == "aio":
            async with self.pool.acquire(timeout=2) as slot:
                response: warmline.Response = await slot.get(path)
                return response

        def blocking() -> warmline.Response:
            with self.pool.acquire(timeout=2) as slot:
                result: warmline.Response = slot.get(path)
                return result

        return await asyncio.to_thread(blocking)


# -- retry -------------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.asyncio
async def test_pool_retries_503_then_200(flavour: str, warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/t").respond_with(Reply(503), Reply(200, body="ok")).times(2)
    async with Pool(flavour, warmline_mock.url, connections=2, retry=Retry(backoff=FAST)) as p:
        r = await p.call("GET", "/t")
        assert (r.status, r.text) == (200, "ok")
        assert p.pool.resilience_stats() == ResilienceStats(retries=1)
    warmline_mock.verify()


@pytest.mark.timeout(30)
@pytest.mark.asyncio
async def test_pool_retry_stops_at_total(flavour: str, warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/t").respond(503).times(3)
    async with Pool(flavour, warmline_mock.url, retry=Retry(total=2, backoff=FAST)) as p:
        assert (await p.call("GET", "/t")).status == 503
        assert p.pool.resilience_stats().retries == 2
    warmline_mock.verify()


@pytest.mark.timeout(30)
@pytest.mark.asyncio
async def test_pool_retries_a_reset_get_not_a_post(flavour: str, warmline_mock: MockServer) -> None:
    warmline_mock.expect(method="GET").respond_with(Reset(), Reply(200, body="ok")).times(2)
    warmline_mock.expect(method="POST").respond_with(Reset(), Reply(201)).at_most(1)
    options: dict[str, Any] = {"retry": Retry(backoff=FAST), "retry_stale": False}
    async with Pool(flavour, warmline_mock.url, **options) as p:
        assert (await p.call("GET", "/t")).text == "ok"
        with pytest.raises(warmline.ConnectionClosed):
            await p.call("POST", "/order", json={"qty": 1})
        assert p.pool.resilience_stats().retries == 1
    assert [r.method for r in warmline_mock.journal] == ["GET", "GET", "POST"]


@pytest.mark.timeout(30)
@pytest.mark.asyncio
async def test_a_leased_slot_is_not_retried(flavour: str, warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/t").respond_with(Reply(503), Reply(200)).at_most(2)
    async with Pool(flavour, warmline_mock.url, retry=Retry(backoff=FAST)) as p:
        assert (await p.on_lease("/t")).status == 503
        assert p.pool.resilience_stats() == ResilienceStats()
    assert len(warmline_mock.journal) == 1


@pytest.mark.timeout(30)
@pytest.mark.asyncio
@pytest.mark.parametrize("later", [False, True], ids=["at_connect", "added_later"])
async def test_hooks_see_each_attempt(flavour: str, later: bool, warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/t").respond_with(Reply(503), Reply(502), Reply(200)).times(3)
    statuses: list[int | None] = []

    class Seen(Hooks):
        def on_response_end(self, event: Any) -> None:
            statuses.append(event.status)

    options: dict[str, Any] = {"retry": Retry(backoff=FAST)}
    if not later:
        options["hooks"] = Seen()
    async with Pool(flavour, warmline_mock.url, **options) as p:
        if later:  # as warmline.contrib.otel.instrument() adds its hooks
            p.pool._add_hooks(Seen())
        assert (await p.call("GET", "/t")).status == 200
    assert statuses == [503, 502, 200]


# -- hedge -------------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.asyncio
async def test_pool_hedges_a_held_request_on_another_slot(flavour: str, holding: Any) -> None:
    held = {2}
    server: HoldingServer = holding(held)
    options: dict[str, Any] = {
        "connections": 3,
        "hedge": Hedge(after=0.05, budget=None),
        "timeout": 20.0,  # longer than the hold: only the hedge can answer in time
    }
    async with Pool(flavour, server.url, **options) as p:
        answers = [parse_answer((await p.call("GET", "/t")).text) for _ in range(5)]
        assert server.wait_closed(len(held))
        stats = p.pool.resilience_stats()
    numbers = [n for n, _ in answers]
    assert 2 not in numbers and 3 in numbers  # request 2 held, its hedge (3) answered
    assert server.conn_of(3) != server.conn_of(2)
    assert stats.hedges_won >= 1
    assert stats.hedges_sent == len(server.log) - 5
    # The loser's connection was closed by the pool and never used again.
    assert server.requests_on(server.conn_of(2))[-1] == 2


@pytest.mark.timeout(30)
@pytest.mark.asyncio
async def test_hedged_post_is_sent_once(flavour: str, holding: Any) -> None:
    server: HoldingServer = holding({0})
    options: dict[str, Any] = {"hedge": Hedge(after=0.02, max_extra=2, budget=None)}
    async with Pool(flavour, server.url, connections=2, **options) as p:
        with pytest.raises(ReadTimeout):
            await p.call("POST", "/order", json={}, timeout=0.3)
        assert p.pool.resilience_stats() == ResilienceStats()
    assert len(server.log) == 1


@pytest.mark.timeout(20)
@pytest.mark.asyncio
async def test_hedged_get_waits_for_a_slot_no_longer_than_acquire_timeout(
    flavour: str, warmline_mock: MockServer
) -> None:
    # Every slot is leased: a hedged GET's first attempt must give up after
    # its acquire_timeout, not wait for the request timeout (none here: it
    # would wait for ever, and the test's timeout would end it).
    warmline_mock.expect(path="/t").respond(200)
    options: dict[str, Any] = {"connections": 1, "hedge": Hedge(after=0.05), "timeout": None}
    async with Pool(flavour, warmline_mock.url, **options) as p:
        if flavour == "aio":
            held = await p.pool.acquire(timeout=2)
        else:
            held = await asyncio.to_thread(p.pool.acquire, 2)
        with pytest.raises(PoolTimeout):
            await p.call("GET", "/t", acquire_timeout=0.2)
        held.release()
        assert (await p.call("GET", "/t", acquire_timeout=2)).status == 200


# -- misuse ------------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", ["retry", "hedge"])
def test_bad_policy_types_are_refused(name: str, warmline_mock: MockServer) -> None:
    with pytest.raises(TypeError, match=name):
        AtomicClientPool.connect(warmline_mock.url, **{name: 3})  # type: ignore[misc]


@pytest.mark.timeout(30)
@pytest.mark.asyncio
async def test_closed_pool_with_policies_says_closed(
    flavour: str, warmline_mock: MockServer
) -> None:
    warmline_mock.expect(path="/t").respond(200)
    options: dict[str, Any] = {"retry": Retry(backoff=FAST), "hedge": Hedge(after=0.01)}
    async with Pool(flavour, warmline_mock.url, **options) as p:
        assert (await p.call("GET", "/t")).status == 200
    with pytest.raises(PoolClosed):
        await p.call("GET", "/t")
