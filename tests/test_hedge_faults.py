"""Hedged requests against a scripted server that holds chosen responses.

The server numbers requests in arrival order (over all connections) and
never answers the ones it is told to hold, until the client closes their
connection. Every answer names the server-side request and connection it
came from, so the tests see which attempt won; the server records which
connections the client closed. Both client flavours, no wall-clock
assertions: waits are bounded, and a hang fails the test.

Also the race's decisions alone (:class:`warmline.resilience._race.HedgeRace`),
with a fake clock.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from typing import Any

import pytest

import warmline
from warmline.errors import ConnectionClosed, ReadTimeout
from warmline.resilience import Hedge, ResilienceStats
from warmline.resilience._drive import race_async, race_sync
from warmline.resilience._race import HedgeRace

from .resilience_helpers import HOLD_CAP_S, Harness, parse_answer


@pytest.fixture(params=["aio", "sync"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.timeout(30)
@pytest.mark.asyncio
async def test_held_requests_are_answered_by_the_hedge(flavour: str, holding: Any) -> None:
    held = {3, 8}  # server-side request numbers never answered
    server = holding(held)
    requests = 10
    options: dict[str, Any] = {
        "hedge": Hedge(after=0.1, budget=None),
        "limits": warmline.Limits(per_host=4, total=4),
        "warm": {server.url: 3},
        # Longer than the hold: a loser that was not stopped would still
        # be waiting when the client's close is checked.
        "timeout": warmline.Timeouts(total=2 * HOLD_CAP_S),
    }
    async with Harness(flavour, **options) as h:
        answers = [parse_answer((await h.get(server.url + "/t")).text) for _ in range(requests)]
        assert server.wait_closed(len(held))
        stats = h.stats(server.url)
    # Each held request was answered by the very next one the server saw:
    # its hedge, on another connection.
    numbers = [n for n, _ in answers]
    for n in held:
        assert n + 1 in numbers and n not in numbers
        assert server.conn_of(n + 1) != server.conn_of(n)
    # Every request the server saw beyond the client's own was a hedge; a
    # slow machine may hedge a request that was not held (it then may lose).
    assert stats.hedges_sent == len(server.log) - requests
    assert stats.hedges_won >= len(held)
    assert stats.retries == 0
    # The losers' connections were closed by the client and never reused:
    # the held request is the last one each of them carried.
    for n in held:
        conn = server.conn_of(n)
        assert conn in server.closed
        assert server.requests_on(conn)[-1] == n


@pytest.mark.timeout(30)
@pytest.mark.asyncio
async def test_held_post_is_not_hedged(flavour: str, holding: Any) -> None:
    server = holding({0})
    options: dict[str, Any] = {
        "hedge": Hedge(after=0.02, max_extra=3, budget=None),
        "warm": {server.url: 2},
        "timeout": warmline.Timeouts(total=0.5),
    }
    async with Harness(flavour, **options) as h:
        if flavour == "aio":
            call = h.client.post(server.url + "/order", json={})
        else:
            call = asyncio.to_thread(h.client.post, server.url + "/order", json={})
        with pytest.raises((ReadTimeout, ConnectionClosed)):
            await call
        assert h.stats(server.url) == ResilienceStats()
    assert len(server.log) == 1  # never duplicated


@pytest.mark.timeout(30)
@pytest.mark.asyncio
async def test_hedge_beyond_the_budget_is_not_sent(flavour: str, holding: Any) -> None:
    # budget=0.05: one hedge per 20 requests begun. Request 0 is held: the
    # budget (0.05 of 1) refuses its hedge, so it waits out its timeout.
    server = holding({0})
    options: dict[str, Any] = {
        "hedge": Hedge(after=0.02, budget=0.05),
        "warm": {server.url: 2},
        "timeout": warmline.Timeouts(total=0.3),
    }
    async with Harness(flavour, **options) as h:
        with pytest.raises(ReadTimeout):
            await h.get(server.url + "/t")
        assert h.stats(server.url) == ResilienceStats()
    assert len(server.log) == 1


# -- the race alone, with a fake clock -------------------------------------------


def _race(hedge: Hedge, now: float = 0.0, **kw: Any) -> tuple[HedgeRace, ResilienceStats]:
    stats = ResilienceStats()
    return HedgeRace(hedge, hedge.tracker(), stats, now, **kw), stats


def test_race_sends_hedges_after_each_delay_up_to_max_extra() -> None:
    race, stats = _race(Hedge(after=0.01, max_extra=2, budget=None))
    assert race.wait(0.0) == 0.01
    assert race.timer(0.005) is False  # woken early: not due
    assert race.wait(0.005) == pytest.approx(0.005)
    assert race.timer(0.01) is True and race.launched == 2
    assert race.wait(0.01) == pytest.approx(0.01)  # the next one, after another delay
    assert race.timer(0.02) is True and race.launched == 3
    assert race.wait(0.02) is None and race.timer(1.0) is False
    race.won(2, 0.021)
    assert sorted(race.losers(2)) == [0, 1]
    assert stats == ResilienceStats(hedges_sent=2, hedges_won=1)


def test_race_first_attempt_winning_counts_no_win() -> None:
    race, stats = _race(Hedge(after=0.01, budget=None))
    assert race.timer(0.01)
    race.won(0, 0.012)
    assert race.losers(0) == [1]
    assert stats == ResilienceStats(hedges_sent=1, hedges_won=0)


def test_race_raises_the_earliest_attempts_error_once_all_failed() -> None:
    race, _ = _race(Hedge(after=0.01, budget=None))
    assert race.timer(0.01)
    late, early = ConnectionClosed("hedge"), ReadTimeout("first")
    assert race.failed(1, late) is None  # attempt 0 still runs: keep waiting
    assert race.failed(0, early) is early
    assert race.losers(-1) == []


def test_race_grant_refusal_is_not_a_hedge_and_asks_again_later() -> None:
    grants = iter([False, True])
    race, stats = _race(Hedge(after=0.01, budget=None), grant=lambda: next(grants))
    assert race.timer(0.01) is False and stats.hedges_sent == 0
    assert race.wait(0.01) == pytest.approx(0.01)
    assert race.timer(0.02) is True and stats.hedges_sent == 1


def test_budget_share_counts_requests_when_they_begin() -> None:
    hedge = Hedge(after=0.01, budget=0.05)
    tracker, stats = hedge.tracker(), ResilienceStats()
    sent = 0
    for i in range(200):  # every request is slow: each would hedge if it could
        race = HedgeRace(hedge, tracker, stats, float(i))
        sent += race.timer(i + 0.01)
        race.won(0, i + 0.5)
    assert sent == stats.hedges_sent == 10  # 5 % of 200, never above
    race = HedgeRace(Hedge(after="p95"), Hedge(after="p95").tracker(), stats, 0.0)
    assert race.wait(0.0) is None and race.timer(1.0) is False  # no p95 yet


# -- the drivers, with a scripted "send on another slot" ---------------------------


class Scripted:
    """``send(i)`` for the drivers: attempt ``i`` ends when the test says so."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.cancelled: list[int] = []
        self.gates: dict[int, asyncio.Future[str]] = {}

    async def send(self, index: int) -> str:
        self.started.append(index)
        gate = self.gates[index] = asyncio.get_running_loop().create_future()
        try:
            return await gate
        except asyncio.CancelledError:
            self.cancelled.append(index)
            raise

    async def started_count(self, n: int) -> None:
        for _ in range(500):  # bounded: a few seconds at most
            if len(self.started) >= n:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"only {self.started} started")


@pytest.mark.timeout(10)
@pytest.mark.asyncio
async def test_race_async_hedge_wins_and_the_loser_is_cancelled() -> None:
    race, stats = _race(Hedge(after=0.01, budget=None), now=time.monotonic())
    sent = Scripted()
    call = asyncio.ensure_future(race_async(race, sent.send))
    await sent.started_count(2)  # the hedge went out: attempt 0 never answered
    sent.gates[1].set_result("from 1")
    assert await call == "from 1"
    await asyncio.sleep(0)  # the loser's cancellation runs
    assert sent.cancelled == [0]
    assert stats == ResilienceStats(hedges_sent=1, hedges_won=1)


@pytest.mark.timeout(10)
@pytest.mark.asyncio
async def test_race_async_caller_cancelled_cancels_every_attempt() -> None:
    race, _ = _race(Hedge(after=0.01, budget=None), now=time.monotonic())
    sent = Scripted()
    call = asyncio.ensure_future(race_async(race, sent.send))
    await sent.started_count(2)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert sorted(sent.cancelled) == [0, 1]
    assert asyncio.all_tasks() == {asyncio.current_task()}


@pytest.mark.timeout(10)
def test_race_sync_interrupts_the_loser() -> None:
    race, stats = _race(Hedge(after=0.01, budget=None), now=time.monotonic())
    release = {0: threading.Event(), 1: threading.Event()}
    interrupted: list[int] = []

    def send(index: int) -> str:
        if index == 1:
            return "from 1"
        assert release[0].wait(5.0)  # held until interrupted
        return "from 0"

    def interrupt(index: int) -> None:
        interrupted.append(index)
        release[index].set()

    with concurrent.futures.ThreadPoolExecutor(2) as executor:
        assert race_sync(race, executor.submit, send, interrupt) == "from 1"
    assert interrupted == [0]
    assert stats == ResilienceStats(hedges_sent=1, hedges_won=1)
