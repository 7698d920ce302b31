"""Both pool flavours through the fault-injection proxy, in front of a real server.

Every fault of ``tests/faultproxy.py`` is applied to ClientPool (asyncio) and
AtomicClientPool (threads) talking to granian (nginx for a smaller matrix).
For each: every request ends with exactly one outcome (a response or a
WarmlineError) in bounded time, a connection in an unknown state is not
reused, and once the fault is cleared the pool is back to full strength.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from warmline import (
    Backoff,
    ConnectError,
    ConnectionClosed,
    PoolTimeout,
    ReadTimeout,
    Response,
    WarmlineError,
)
from warmline._server.app import LARGE
from warmline._server.launch import CHUNKED_BODY, Server

from .faultproxy import FLAVOURS, FaultProxy, Flavour, PoolDriver

FAST = Backoff(initial=0.02, maximum=0.2, multiplier=2.0, jitter=0.2)
# Slack on top of a timeout before a late outcome counts as a hang: generous,
# for a loaded 2-core machine.
SLACK = 1.5


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> Flavour:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def proxy(granian: Server) -> Iterator[FaultProxy]:
    with FaultProxy(granian.url) as p:
        yield p


@pytest.fixture
def pool(flavour: Flavour, proxy: FaultProxy) -> Iterator[PoolDriver]:
    with PoolDriver(flavour, proxy.url, connections=2, reconnect=FAST, connect_timeout=2) as d:
        yield d


def timed(driver: PoolDriver, path: str, **kwargs: Any) -> tuple[Any, float]:
    """One GET: (Response or the WarmlineError raised, seconds)."""
    start = time.monotonic()
    try:
        outcome: Any = driver.get(path, **kwargs)
    except WarmlineError as exc:
        outcome = exc
    return outcome, time.monotonic() - start


def assert_recovers(driver: PoolDriver, proxy: FaultProxy) -> None:
    """After clear(): requests on every slot at once succeed, the pool is full again."""
    proxy.clear()
    calls = [("GET", "/small", {"timeout": 5, "acquire_timeout": 5})] * (driver.size * 2)
    for outcome, _ in driver.run_many(calls, concurrency=driver.size):
        assert isinstance(outcome, Response), outcome
        assert outcome.status == 200
    assert driver.wait_for(lambda: driver.available == driver.size, timeout=5)


# -- plain forwarding, latency, bandwidth -------------------------------------------


def test_clean_forwarding_keeps_every_byte(pool: PoolDriver, proxy: FaultProxy) -> None:
    assert pool.get("/large").content == LARGE
    assert pool.get("/chunked").content == CHUNKED_BODY
    assert pool.post("/order", json={"qty": 1}).json() == {"qty": 1}
    assert pool.stats().errors == {}
    assert proxy.stats.accepted == 2  # the two warm connections, reused


def test_latency_and_jitter_are_survived_in_order(pool: PoolDriver, proxy: FaultProxy) -> None:
    proxy.configure(latency=0.02, jitter=0.03)
    calls = [("GET", f"/echo/{i}", {"timeout": 5, "acquire_timeout": 5}) for i in range(24)]
    results = pool.run_many(calls, concurrency=4)
    for i, (outcome, seconds) in enumerate(results):
        assert isinstance(outcome, Response), outcome
        assert outcome.json()["path"] == f"/echo/{i}"  # each its own answer
        assert seconds >= 0.035  # the proxy did delay both directions
    assert pool.stats().errors == {}


def test_latency_beyond_the_timeout_never_leaks_the_late_response(
    pool: PoolDriver, proxy: FaultProxy
) -> None:
    proxy.configure(latency=0.4)
    accepted = proxy.stats.accepted
    outcome, seconds = timed(pool, "/echo/late", timeout=0.15)
    assert isinstance(outcome, ReadTimeout), outcome
    assert seconds < 0.15 + SLACK
    proxy.clear()
    time.sleep(0.5)  # the late response has reached the old connection by now
    for i in range(6):
        assert pool.get(f"/echo/{i}", timeout=5, acquire_timeout=5).json()["path"] == f"/echo/{i}"
    assert proxy.stats.accepted > accepted  # the timed-out connection was replaced
    assert_recovers(pool, proxy)


def test_bandwidth_limit_delivers_intact_bytes(pool: PoolDriver, proxy: FaultProxy) -> None:
    proxy.configure(bandwidth=512 * 1024)
    outcome, seconds = timed(pool, "/large", timeout=10)
    assert isinstance(outcome, Response)
    assert outcome.content == LARGE
    assert seconds >= 0.08  # 64 KiB at 512 KiB/s: the limit was applied


def test_bandwidth_below_need_is_cut_by_the_deadline(pool: PoolDriver, proxy: FaultProxy) -> None:
    proxy.configure(bandwidth=8 * 1024)  # /large would take 8 s
    outcome, seconds = timed(pool, "/large", timeout=0.6)
    assert isinstance(outcome, ReadTimeout), outcome
    assert 0.55 <= seconds < 0.6 + SLACK
    assert proxy.stats.bytes_down > 0  # bytes were trickling in all along
    assert_recovers(pool, proxy)


# -- resets and closes -----------------------------------------------------------


def test_reset_mid_body(pool: PoolDriver, proxy: FaultProxy) -> None:
    proxy.configure(reset_after=1000)
    outcome, seconds = timed(pool, "/large", timeout=5)
    assert isinstance(outcome, ConnectionClosed), outcome
    assert seconds < 5
    assert pool.stats().stale_retries <= 1  # at most the one retry of a stale GET
    assert proxy.stats.resets >= 1
    assert_recovers(pool, proxy)


def test_reset_before_any_response_byte(pool: PoolDriver, proxy: FaultProxy) -> None:
    # The request reached the server; the connection dies before the answer:
    # a GET is sent once more on a fresh connection, a POST never.
    proxy.configure(reset_after=0)
    with pool.acquire() as slot:
        outcome = None
        try:
            slot.get("/small", timeout=5)
        except ConnectionClosed as exc:
            outcome = exc
        assert isinstance(outcome, ConnectionClosed)
        assert outcome.received_any is False
    assert pool.stats().stale_retries == 1
    with pool.acquire() as slot, pytest.raises(ConnectionClosed):
        slot.post("/order", json={}, timeout=5)
    assert pool.stats().stale_retries == 1
    assert_recovers(pool, proxy)


@pytest.mark.parametrize(("path", "after"), [("/large", 10), ("/large", 5000), ("/chunked", 150)])
def test_close_mid_response(pool: PoolDriver, proxy: FaultProxy, path: str, after: int) -> None:
    proxy.configure(close_after=after)
    outcome, _ = timed(pool, path, timeout=5)
    assert isinstance(outcome, ConnectionClosed), outcome
    assert outcome.received_any is True  # part of the answer came: never retried
    assert pool.stats().stale_retries == 0
    assert_recovers(pool, proxy)


def test_server_crash_resets_idle_connections(pool: PoolDriver, proxy: FaultProxy) -> None:
    assert pool.get("/small").status == 200
    assert proxy.reset_all() == 2
    # Idle connections were reset: GETs still succeed (healed, or retried once).
    for _ in range(4):
        assert pool.get("/small", timeout=5, acquire_timeout=5).status == 200
    assert_recovers(pool, proxy)


# -- stalls ------------------------------------------------------------------------


def test_stall_shorter_than_the_timeout_is_waited_out(pool: PoolDriver, proxy: FaultProxy) -> None:
    proxy.stall(0.3)
    outcome, seconds = timed(pool, "/small", timeout=5)
    assert isinstance(outcome, Response)
    assert seconds >= 0.25
    assert pool.stats().errors == {}


def test_stall_longer_than_the_timeout(pool: PoolDriver, proxy: FaultProxy) -> None:
    proxy.stall(3.0)
    outcome, seconds = timed(pool, "/small", timeout=0.3)
    assert isinstance(outcome, ReadTimeout), outcome
    assert seconds < 0.3 + SLACK
    assert_recovers(pool, proxy)  # clear() ends the stall


# -- connections dropped, refused, closed when idle ----------------------------------


def test_dropped_connections_fail_fast_then_recover(pool: PoolDriver, proxy: FaultProxy) -> None:
    proxy.configure(drop_new="close")
    proxy.reset_all()
    for _ in range(4):
        outcome, seconds = timed(pool, "/small", timeout=1, acquire_timeout=1)
        assert isinstance(outcome, ConnectionClosed | ConnectError | PoolTimeout), outcome
        assert seconds < 2 + SLACK
    assert proxy.stats.dropped >= 1
    assert_recovers(pool, proxy)


@pytest.mark.parametrize("mode", ["close", "reset"])
def test_no_reconnect_storm_when_every_connection_is_dropped(
    flavour: Flavour, proxy: FaultProxy, mode: str, request: pytest.FixtureRequest
) -> None:
    """A server (or balancer) that accepts and drops at once must meet backoff.

    Within one second, with Backoff(initial=0.05, maximum=0.5) and two slots,
    a pool may make a handful of attempts per slot; hundreds or thousands mean
    a busy loop that burns the client's CPU.
    """
    backoff = Backoff(initial=0.05, maximum=0.5, multiplier=2.0, jitter=0.2)
    with PoolDriver(flavour, proxy.url, connections=2, reconnect=backoff) as driver:
        proxy.configure(drop_new=mode)
        before = proxy.stats.accepted
        proxy.reset_all()
        requests = 0
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            # The thread pool notices dead connections only when used.
            if flavour == "sync":
                timed(driver, "/small", timeout=0.5, acquire_timeout=0.2)
                requests += 1
            time.sleep(0.05)
        attempts = proxy.stats.accepted - before
        # Per request at most: the stale retry's reconnect and the heal.
        assert attempts <= 2 * requests + 2 * 12, attempts
        assert_recovers(driver, proxy)


def test_refused_port_fails_fast_then_recovers(pool: PoolDriver, proxy: FaultProxy) -> None:
    proxy.refuse()
    proxy.reset_all()
    for _ in range(4):
        outcome, seconds = timed(pool, "/small", timeout=1, acquire_timeout=0.5)
        assert isinstance(outcome, ConnectError | PoolTimeout), outcome
        assert seconds < 1.5 + SLACK
    assert pool.wait_for(lambda: pool.stats().reconnect_failures >= 2, timeout=5)
    proxy.accept()
    assert pool.wait_for(lambda: pool.available == pool.size, timeout=FAST.bound() + 5)
    assert_recovers(pool, proxy)


def test_keepalive_race_idempotent_requests_never_fail(pool: PoolDriver, proxy: FaultProxy) -> None:
    # The "server" closes connections idle for 0.15 s; requests come just
    # before, at, and after that moment.
    proxy.configure(idle_close=0.15)
    for i in range(12):
        time.sleep(0.1 + 0.01 * i)
        assert pool.get("/small", timeout=5, acquire_timeout=5).status == 200
    assert pool.stats().errors == {}
    assert proxy.stats.idle_closes >= 1


def test_idle_timeout_below_the_servers_makes_posts_safe(
    flavour: Flavour, proxy: FaultProxy
) -> None:
    proxy.configure(idle_close=0.3)
    with PoolDriver(flavour, proxy.url, connections=2, reconnect=FAST, idle_timeout=0.1) as driver:
        for _ in range(3):
            time.sleep(0.4)  # past the server's idle close every time
            r = driver.post("/order", json={"n": 1}, timeout=5, acquire_timeout=5)
            assert r.json() == {"n": 1}
        assert driver.stats().errors == {}


def test_a_connection_that_never_answers_is_cut_by_the_timeout(
    pool: PoolDriver, proxy: FaultProxy
) -> None:
    proxy.configure(drop_new="hang")
    proxy.reset_all()
    for _ in range(3):
        outcome, seconds = timed(pool, "/small", timeout=0.3, acquire_timeout=0.5)
        assert isinstance(outcome, ReadTimeout | ConnectionClosed | PoolTimeout), outcome
        assert seconds < 0.8 + SLACK
    # A hung connection costs one timed-out request, then it is replaced; the
    # server "restarts" here so that the check below starts from a clean slate.
    proxy.clear()
    proxy.close_all()
    assert_recovers(pool, proxy)


# -- nginx ---------------------------------------------------------------------------


@pytest.mark.nginx
def test_nginx_through_the_proxy(flavour: Flavour, nginx: Server) -> None:
    with (
        FaultProxy(nginx.url) as proxy,
        PoolDriver(flavour, proxy.url, connections=2, reconnect=FAST) as driver,
    ):
        assert driver.get("/chunked").content == CHUNKED_BODY
        proxy.configure(latency=0.01, jitter=0.02)
        assert driver.get("/large", timeout=5).content == LARGE
        proxy.configure(latency=0.0, close_after=2000)
        outcome, _ = timed(driver, "/large", timeout=5)
        assert isinstance(outcome, ConnectionClosed) and outcome.received_any
        proxy.clear()
        proxy.configure(reset_after=0)
        outcome, _ = timed(driver, "/small", timeout=5)
        assert isinstance(outcome, ConnectionClosed) and not outcome.received_any
        proxy.clear()
        proxy.stall(2.0)
        outcome, seconds = timed(driver, "/small", timeout=0.3)
        assert isinstance(outcome, ReadTimeout) and seconds < 0.3 + SLACK
        assert_recovers(driver, proxy)
