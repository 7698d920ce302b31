"""KeepWarm: behind a server that closes connections idle for 1 s, a pool or
client idle for 2.5 s still finds live connections (issue 10).

Without keep-warm, every connection would be closed by the server by then
and the first request would meet a stale connection or a reconnect.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

import warmline

from .faultproxy import FLAVOURS, Flavour, PoolDriver
from .rawserver import RawServer
from .scripted import idle_close_handler

# GET, not HEAD: the scripted server answers every request with a body.
PING = warmline.KeepWarm(interval=0.3, method="GET", path="/ping")


@pytest.fixture
def server() -> Iterator[RawServer]:
    with RawServer(idle_close_handler(lambda index: 1.0)) as server:
        yield server


@pytest.mark.timeout(30)
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_keep_warm_keeps_a_quiet_pool_warm(flavour: Flavour, server: RawServer) -> None:
    with PoolDriver(flavour, server.url, connections=2, keep_warm=PING) as d:
        # connect() returns once our side is connected; the server counts
        # its accepts in its own thread.
        assert d.wait_for(lambda: server.connections == 2, timeout=5)
        accepted = server.connections
        time.sleep(2.5)  # well past the server's 1 s idle timeout
        r = d.post("/order")
        assert r.status == 200
        stats = d.stats()
        assert stats.keep_warm_pings >= 4  # ~every 0.3 s per slot, minus scheduling
        assert stats.stale_retries == 0 and stats.reconnects == 0
        assert server.connections == accepted  # no connection was lost or replaced
        assert stats.requests == 1  # pings are not user requests


@pytest.mark.timeout(30)
def test_without_keep_warm_the_server_closes_them(server: RawServer) -> None:
    """The control: the same quiet spell without KeepWarm loses the connections."""
    with PoolDriver("sync", server.url, connections=2) as d:
        assert d.wait_for(lambda: server.connections == 2, timeout=5)
        accepted = server.connections
        time.sleep(1.5)
        assert d.post("/order").status == 200
        assert server.connections > accepted


def test_keep_warm_refuses_bad_values() -> None:
    for kwargs in ({"interval": 0}, {"interval": -1}, {"method": "POST"}, {"path": "x"}):
        with pytest.raises(ValueError):
            warmline.KeepWarm(**kwargs)  # type: ignore[arg-type]


@pytest.mark.timeout(30)
def test_keep_warm_keeps_a_lazy_client_origin_warm(server: RawServer) -> None:
    """A client's origin not in ``warm`` opens lazily; its connections are kept
    warm from the first one on (both flavours)."""
    url = server.url + "/order"
    with warmline.Client(keep_warm=PING, limits=warmline.Limits(total=2, per_host=1)) as client:
        assert client.get(url).status == 200
        time.sleep(2.5)  # past the server's 1 s idle timeout
        assert client.get(url).status == 200
        stats = client.stats()[server.url]
        assert stats.keep_warm_pings >= 4 and stats.stale_retries == 0
    assert server.connections == 1  # one connection, kept warm all along

    async def aio() -> warmline.PoolStats:
        async with warmline.AsyncClient(
            keep_warm=PING, limits=warmline.Limits(total=2, per_host=1)
        ) as client:
            assert (await client.get(url)).status == 200
            await asyncio.sleep(2.5)
            assert (await client.get(url)).status == 200
            return client.stats()[server.url]

    stats = asyncio.run(aio())
    assert stats.keep_warm_pings >= 4 and stats.stale_retries == 0
    assert server.connections == 2  # the asyncio client's one connection, too
