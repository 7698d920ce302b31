"""The real ccxt (binance) on warmline.contrib.aiohttp.ClientSession, against MockServer,
compared call for call with ccxt on its own aiohttp session."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from warmline.contrib.aiohttp import ClientSession
from warmline.testing import MockServer

from .ccxt_binance import install, make_exchange

ccxt = pytest.importorskip("ccxt.async_support", reason="ccxt is a test dependency")


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


# -- the real ccxt, on warmline's session and on its own aiohttp session -----------------

Call = Callable[[Any], Awaitable[Any]]
CALLS: list[tuple[str, Call]] = [
    ("fetch_time", lambda ex: ex.fetch_time()),
    ("fetch_ticker", lambda ex: ex.fetch_ticker("BTC/USDT")),
    ("fetch_order_book", lambda ex: ex.fetch_order_book("BTC/USDT", 5)),
    ("create_order", lambda ex: ex.create_order("BTC/USDT", "limit", "buy", 0.01, 97000)),
]


async def _run_all(url: str, session: Any) -> list[Any]:
    exchange = make_exchange(url, session, apiKey="k", secret="s")
    try:
        results = [await call(exchange) for _, call in CALLS]
    finally:
        await exchange.close()
    results[3].pop("clientOrderId", None)  # random per call: ccxt makes one up
    results[3]["info"].pop("clientOrderId", None)
    return results


@pytest.mark.asyncio
async def test_ccxt_binance_gives_the_same_results_as_on_aiohttp(
    warmline_mock: MockServer,
) -> None:
    install(warmline_mock)
    async with ClientSession() as session:
        ours = await _run_all(warmline_mock.url, session)
        assert not session.closed  # ccxt leaves a session it was given to its owner
    theirs = await _run_all(warmline_mock.url, None)
    assert ours == theirs
    assert ours[1]["last"] == 97234.51 and ours[2]["bids"][0] == [97234.5, 1.5]
    half = len(warmline_mock.journal) // 2
    sent = [(r.method, r.path, r.headers.get("x-mbx-apikey")) for r in warmline_mock.journal]
    assert sent[:half] == sent[half:]
    order = warmline_mock.journal[half - 1]
    assert order.method == "POST" and "signature=" in order.text
    assert order.headers["content-type"] == "application/x-www-form-urlencoded"
    assert len({r.connection_id for r in warmline_mock.journal[:half]}) == 1


@pytest.mark.asyncio
async def test_ccxt_session_set_after_construction(warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/api/v3/time").respond(json={"serverTime": 7}).times(1)
    exchange = make_exchange(warmline_mock.url, None)
    exchange.session = ClientSession()
    assert await exchange.fetch_time() == 7
    await exchange.close()  # closes the session it did not get through its config
    assert exchange.session is None


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ({"status": 400, "json": {"code": -1121, "msg": "Invalid symbol."}}, "BadSymbol"),
        ({"status": 429, "json": {"code": -1003, "msg": "Too many requests."}}, "DDoSProtection"),
        ({"status": 503, "body": "maintenance"}, "ExchangeNotAvailable"),
    ],
)
async def test_ccxt_error_paths_match_aiohttp(
    warmline_mock: MockServer, reply: dict[str, Any], error: str
) -> None:
    warmline_mock.expect(path="/api/v3/ticker/price").respond(**reply).times(2)
    raised = []
    async with ClientSession() as session:
        for s in (session, None):
            exchange = make_exchange(warmline_mock.url, s)
            try:
                with pytest.raises(ccxt.BaseError) as info:
                    await exchange.publicGetTickerPrice({"symbol": "BTCUSDT"})
                raised.append(type(info.value))
            finally:
                await exchange.close()
    assert raised[0] is raised[1]
    assert issubclass(raised[0], getattr(ccxt, error))


@pytest.mark.asyncio
async def test_ccxt_timeouts_and_refused_connections(warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/api/v3/time").respond(json={"serverTime": 1}, delay=2.0).once()
    async with ClientSession() as session:
        exchange = make_exchange(warmline_mock.url, session, timeout=200)
        with pytest.raises(ccxt.RequestTimeout):
            await exchange.fetch_time()
        await exchange.close()
        exchange = make_exchange(f"http://127.0.0.1:{_closed_port()}", session)
        with pytest.raises(ccxt.ExchangeNotAvailable):
            await exchange.fetch_time()
        await exchange.close()
