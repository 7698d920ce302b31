"""Issue 9, item 2 (and 3): a pool stays warm behind a short keep-alive timeout.

The server closes a connection idle for 0.2-0.26 s (varied per connection so
that the pool's slots do not all die at the same instant), as many servers and
balancers do with a short keep-alive timeout. A pool must notice each close
and reconnect in the background, so that ``try_acquire()`` — which never
waits — finds a warm slot whenever an order comes: after a quiet second, and
when orders come every 0.3 s, each just after the server has closed every
connection it had. The same bodies run against both pools.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from typing import Any

import pytest

from warmline import Response

from .faultproxy import FLAVOURS, Flavour, PoolDriver
from .rawserver import RawServer
from .scripted import idle_close_handler, run

PACED_ORDERS = 15
PACE_S = 0.3


def keepalive_timeout(index: int) -> float:
    return 0.2 + 0.02 * (index % 4)


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    yield
    gc.collect()  # a leaked socket or transport is reported by the test that leaked it


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> Flavour:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def pool(flavour: Flavour) -> Iterator[PoolDriver]:
    with (
        RawServer(idle_close_handler(keepalive_timeout)) as server,
        PoolDriver(flavour, server.url, connections=4, connect_timeout=2) as driver,
    ):
        yield driver


def try_order(driver: PoolDriver) -> Any:
    """One order on ``try_acquire()``'s slot: a Response, or None if no slot was ready."""
    pool = driver.pool

    if driver.flavour == "aio":

        async def order() -> Response | None:
            slot = pool.try_acquire()
            if slot is None:
                return None
            with slot:
                return await slot.get("/", timeout=2)  # type: ignore[no-any-return]

        return run(driver, order)

    def order_sync() -> Response | None:
        slot = pool.try_acquire()
        if slot is None:
            return None
        with slot:
            return slot.get("/", timeout=2)  # type: ignore[no-any-return]

    return run(driver, order_sync)


@pytest.mark.timeout(30)
def test_a_slot_is_ready_after_a_quiet_second(pool: PoolDriver) -> None:
    """Item 2: after 1 s idle, every connection was closed by the server at least
    once; ``try_acquire()`` still finds a ready slot (healed in the background)."""
    for _ in range(2):
        time.sleep(1.0)
        result = try_order(pool)
        assert isinstance(result, Response), f"try_acquire() found no ready slot: {result}"
        assert result.content == b"ok"


@pytest.mark.timeout(30)
def test_paced_orders_always_find_a_ready_slot(pool: PoolDriver) -> None:
    """Item 2: an order every 0.3 s (just past the server's keep-alive timeout)
    never finds the pool cold: ``try_acquire()`` never returns None."""
    results = []
    for _ in range(PACED_ORDERS):
        time.sleep(PACE_S)
        results.append(try_order(pool))
    cold = [r for r in results if not isinstance(r, Response)]
    assert cold == [], f"{len(cold)} of {PACED_ORDERS} orders found no ready slot: {cold}"
