"""The client's limits, counted by the server: per host, total, the waiting queue.

One body, two flavours (``ClientDriver``): AsyncClient and Client. The server
(tests/countserver.py) counts open connections per origin and overall in one
selector thread, so its maxima are exact. Bounds on time here are hang checks,
far above what a healthy run takes.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import warmline
from tests.clientdriver import FLAVOURS, ClientDriver, Flavour, outcome, wait_for
from tests.countserver import CountServer
from tests.faultproxy import blackhole_listener


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> Flavour:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def server() -> Iterator[CountServer]:
    with CountServer(ports=5) as s:
        yield s


def ok(result: Any) -> bool:
    return getattr(result, "status", None) == 200


# -- per_host and total, under load -----------------------------------------------------
@pytest.mark.timeout(40)
def test_500_requests_to_5_origins_stay_within_per_host_and_total(
    flavour: Flavour, server: CountServer
) -> None:
    # total (12) < 5 origins x per_host (4): the total binds, and origins take
    # idle connections from each other (LRU eviction) as the load moves.
    limits = warmline.Limits(total=12, per_host=4)
    with ClientDriver(flavour, limits=limits, timeout=warmline.Timeouts(total=20)) as d:
        rng = random.Random(10)
        urls = [f"{rng.choice(server.urls)}/sleep/0.005" for _ in range(500)]
        results = d.many(urls)
        assert [r for r in results if not ok(r)] == []
        assert len(server.log) == 500
        for origin in server.origins:
            assert origin.max_open <= 4, origin
        assert server.max_open <= 12
        assert server.max_open == 12  # the limit was reached, so it was tested
        # Every permit is back: the client counts what the server sees open.
        assert wait_for(lambda: d.permits == server.open)


# -- the waiting queue -----------------------------------------------------------------
def queue_behind(d: ClientDriver, origin: str, paths: list[str]) -> list[Any]:
    """Submit one request per path, each only once the previous one waits."""
    futures = []
    for path in paths:
        before = d.waits(origin)
        futures.append(d.submit("GET", origin + path))
        assert wait_for(lambda before=before: d.waits(origin) > before), "never queued"
    return futures


@pytest.mark.timeout(20)
def test_waiters_are_served_first_come_first_served(flavour: Flavour, server: CountServer) -> None:
    origin = server.urls[0]
    limits = warmline.Limits(total=1, per_host=1)
    with ClientDriver(flavour, limits=limits, timeout=warmline.Timeouts(total=10)) as d:
        holder = d.submit("GET", origin + "/sleep/0.3")
        assert wait_for(lambda: len(server.log) == 1)
        waiters = queue_behind(d, origin, [f"/w/{i}" for i in range(6)])
        assert all(ok(outcome(f)) for f in [holder, *waiters])
        assert [path for _, path in server.log] == ["/sleep/0.3"] + [f"/w/{i}" for i in range(6)]
        assert server.origins[0].accepted == 1  # one connection served them all


@pytest.mark.timeout(20)
def test_a_waiter_times_out_after_timeouts_pool(flavour: Flavour, server: CountServer) -> None:
    origin = server.urls[0]
    limits = warmline.Limits(total=1, per_host=1)
    timeouts = warmline.Timeouts(pool=0.3, total=10)
    with ClientDriver(flavour, limits=limits, timeout=timeouts) as d:
        holder = d.submit("GET", origin + "/sleep/1.5")
        assert wait_for(lambda: len(server.log) == 1)
        start = time.monotonic()
        waiter = outcome(d.submit("GET", origin + "/small"))
        waited = time.monotonic() - start
        assert isinstance(waiter, warmline.PoolTimeout), waiter
        assert 0.25 <= waited < 1.3  # its pool timeout, not the holder's 1.5 s
        assert ok(outcome(holder))
        assert ok(d.get(origin + "/small"))  # the timed-out waiter left no trace


@pytest.mark.timeout(20)
def test_a_released_permit_wakes_exactly_one_waiter(flavour: Flavour, server: CountServer) -> None:
    origin = server.urls[0]
    limits = warmline.Limits(total=1, per_host=1)
    with ClientDriver(flavour, limits=limits, timeout=warmline.Timeouts(total=10)) as d:
        holder = d.submit("GET", origin + "/sleep/0.2")
        assert wait_for(lambda: len(server.log) == 1)
        waiters = queue_behind(d, origin, ["/sleep/0.4"] * 3)
        assert ok(outcome(holder))
        assert wait_for(lambda: len(server.log) == 2)
        time.sleep(0.15)  # time enough for a second (wrong) wake-up to show
        assert len(server.log) == 2
        assert [f.done() for f in waiters] == [False, False, False]
        assert all(ok(outcome(f)) for f in waiters)


@pytest.mark.timeout(20)
def test_a_permit_freed_by_one_origin_serves_a_waiter_of_another(
    flavour: Flavour, server: CountServer
) -> None:
    # keep_alive=False: each connection closes after its response and gives
    # its permit back; the waiter of the other origin must get it.
    a, b = server.urls[:2]
    limits = warmline.Limits(total=1, per_host=1)
    timeouts = warmline.Timeouts(pool=3, total=10)
    with ClientDriver(flavour, limits=limits, timeout=timeouts, keep_alive=False) as d:
        holder = d.submit("GET", a + "/sleep/0.2")
        assert wait_for(lambda: len(server.log) == 1)
        waiter = queue_behind(d, b, ["/small"])[0]
        assert ok(outcome(holder)) and ok(outcome(waiter))
        assert server.max_open == 1


@pytest.mark.timeout(20)
def test_an_origin_waiting_at_the_total_gets_the_idle_connection_of_another(
    flavour: Flavour, server: CountServer
) -> None:
    a, b = server.urls[:2]
    limits = warmline.Limits(total=1, per_host=1)
    timeouts = warmline.Timeouts(pool=1, total=10)
    with ClientDriver(flavour, limits=limits, timeout=timeouts) as d:
        holder = d.submit("GET", a + "/sleep/0.2")
        assert wait_for(lambda: len(server.log) == 1)
        waiter = queue_behind(d, b, ["/small"])[0]
        assert ok(outcome(holder))
        assert ok(outcome(waiter))


# -- isolation -------------------------------------------------------------------------
@pytest.mark.timeout(30)
def test_a_dead_origin_does_not_delay_a_healthy_one(flavour: Flavour, server: CountServer) -> None:
    port, holes = blackhole_listener()
    dead, healthy = f"http://127.0.0.1:{port}", server.urls[0]
    limits = warmline.Limits(total=12, per_host=4)
    timeouts = warmline.Timeouts(connect=2, pool=1.5, total=10)
    try:
        with ClientDriver(flavour, limits=limits, timeout=timeouts) as d:
            stuck = [d.submit("GET", dead + "/x") for _ in range(30)]  # 4 connect, 26 queue
            assert wait_for(lambda: d.waits(dead) >= 26)
            start = time.monotonic()
            futures = [d.submit("GET", healthy + f"/sleep/0.01?{i}") for i in range(60)]
            results = [outcome(f) for f in futures]
            took = time.monotonic() - start
            assert all(ok(r) for r in results), [r for r in results if not ok(r)][:3]
            # A hang check: the dead origin's queue waits 1.5 s, its connects 2 s.
            assert took < 1.4
            assert not any(f.done() for f in stuck)  # still stuck: the test was fair
            # The dead origin's requests end on their own timeouts.
            errors = [outcome(f) for f in stuck]
            timeouts_seen = (warmline.ConnectTimeout, warmline.PoolTimeout)
            assert all(isinstance(e, timeouts_seen) for e in errors), errors[:3]
            assert wait_for(lambda: d.permits == server.open)
    finally:
        for sock in holes:
            sock.close()


@pytest.mark.timeout(20)
def test_close_ends_requests_that_are_connecting(flavour: Flavour) -> None:
    port, holes = blackhole_listener()
    dead = f"http://127.0.0.1:{port}"
    timeouts = warmline.Timeouts(connect=2, total=10)
    try:
        d = ClientDriver(flavour, timeout=timeouts)
        stuck = [d.submit("GET", dead + "/x") for _ in range(3)]
        time.sleep(0.3)  # connecting now
        start = time.monotonic()
        if flavour == "sync":
            d.client.close()
        else:
            d.run(d.client.close())
        errors = [outcome(f) for f in stuck]
        assert time.monotonic() - start < 1.0  # not the 2 s connect timeout
        assert all(isinstance(e, warmline.PoolClosed) for e in errors), errors
        d.close()
    finally:
        for sock in holes:
            sock.close()


# -- timeouts leave nothing behind --------------------------------------------------------
@pytest.mark.timeout(20)
def test_requests_that_time_out_free_their_connections_for_the_queue(
    flavour: Flavour, server: CountServer
) -> None:
    origin = server.urls[0]
    limits = warmline.Limits(total=3, per_host=3)
    timeouts = warmline.Timeouts(pool=5, total=10)
    with ClientDriver(flavour, limits=limits, timeout=timeouts) as d:
        doomed = [d.submit("GET", origin + "/sleep/5", timeout=0.3) for _ in range(3)]
        assert wait_for(lambda: len(server.log) == 3)
        queued = queue_behind(d, origin, [f"/q/{i}" for i in range(5)])
        start = time.monotonic()
        assert all(ok(outcome(f)) for f in queued)
        assert time.monotonic() - start < 3.0  # served once the three timed out
        assert all(isinstance(outcome(f), warmline.WarmlineError) for f in doomed)
        assert wait_for(lambda: d.permits == server.open)


# -- cancellation (asyncio) ---------------------------------------------------------------
_OPENING_LEAK = (
    "issue 10 bug: aio ClientPool._wait, cancelled after a waiter was handed an OPENING "
    "slot (lazy pool) and before it resumed, calls _release(slot), which ignores a slot "
    "not IN_USE: the slot stays OPENING forever and its Admission permit is lost (the sync "
    "shell's _give_back calls open_failed instead)"
)


@pytest.mark.timeout(20)
def test_a_waiter_cancelled_as_it_is_served_gives_its_permit_back(server: CountServer) -> None:
    url = server.urls[0]
    limits = warmline.Limits(total=1, per_host=1)
    timeouts = warmline.Timeouts(pool=0.5, total=5)
    # keep_alive=False: the holder's connection closes, so the waiter is
    # served an empty slot to open (OPENING), not a ready one.
    with ClientDriver("aio", limits=limits, timeout=timeouts, keep_alive=False) as d:

        async def scenario() -> Any:
            waiter: list[asyncio.Future[Any]] = []

            async def holder() -> None:
                await d.client.get(url + "/sleep/0.2")  # its release serves the waiter
                waiter[0].cancel()  # in the same step: before the waiter resumes

            task = asyncio.ensure_future(holder())
            await asyncio.sleep(0.05)
            waiter.append(asyncio.ensure_future(d.client.get(url + "/small")))
            await asyncio.gather(task, *waiter, return_exceptions=True)
            assert waiter[0].cancelled()
            return await d.client.get(url + "/small")

        assert ok(d.run(scenario()))
        assert wait_for(lambda: d.permits == server.open)


@pytest.mark.timeout(40)
def test_a_cancellation_storm_loses_no_permit(server: CountServer) -> None:
    port, holes = blackhole_listener()
    good = server.urls[:2]
    dead = f"http://127.0.0.1:{port}"
    # total == 2 x per_host: after the storm a full total of requests needs
    # every permit back.
    limits = warmline.Limits(total=10, per_host=5)
    # pool=0.4: in the last step, a request that has to wait for a permit fails.
    timeouts = warmline.Timeouts(connect=5, pool=0.4, total=10)
    try:
        with ClientDriver("aio", limits=limits, timeout=timeouts) as d:

            async def storm() -> None:
                rng = random.Random(3)
                paths = ["/small", "/sleep/0.01", "/sleep/0.05", "/drip/3/0.01"]
                tasks = []
                for i in range(1000):
                    origin = dead if i % 10 == 0 else rng.choice(good)
                    url = origin + rng.choice(paths)
                    task = asyncio.ensure_future(d.client.get(url))
                    loop = asyncio.get_running_loop()
                    loop.call_later(rng.uniform(0, 0.08), task.cancel)
                    tasks.append(task)
                    if i % 50 == 0:
                        await asyncio.sleep(0.005)  # spread the cancels over the phases
                await asyncio.gather(*tasks, return_exceptions=True)

            d.run(storm())
            # Abandoned connections close; what stays open is what holds permits.
            assert wait_for(lambda: d.permits == server.open, timeout=2), (
                d.permits,
                server.open,
            )
            server.reset_max()
            full = [f"{good[i % 2]}/sleep/0.5" for i in range(10)]
            results = d.many(full)
            assert all(ok(r) for r in results), [r for r in results if not ok(r)][:3]
            assert server.max_open == 10
    finally:
        for sock in holes:
            sock.close()


# -- the thread client's pools ------------------------------------------------------------
@pytest.mark.timeout(30)
def test_concurrent_first_requests_to_an_origin_share_one_pool(server: CountServer) -> None:
    origin = server.urls[0]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: a race shows within a few clients
    try:
        with ThreadPoolExecutor(16) as threads:
            for _ in range(40):
                client = warmline.Client(limits=warmline.Limits(total=10, per_host=1))
                try:
                    results = list(threads.map(client.get, [origin + "/small"] * 16))
                finally:
                    client.close()
                assert all(ok(r) for r in results)
                assert server.origins[0].max_open <= 1
                assert wait_for(lambda: server.open == 0)
    finally:
        sys.setswitchinterval(switch)
