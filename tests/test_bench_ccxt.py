"""The bench's ccxt scenario: its fake exchange, and both ccxt rows against it."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest

from warmline._bench import clients, exchange, proxies, runner
from warmline._server import launch


@pytest.fixture(scope="module")
def fake_exchange() -> Iterator[launch.Server]:
    server = proxies.start_exchange(None)
    try:
        yield server
    finally:
        server.stop()


def _get(server: launch.Server, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_the_fake_exchange_answers_binance_paths(fake_exchange: launch.Server) -> None:
    status, body = _get(fake_exchange, exchange.TICKER_PATH)
    assert status == 200 and body == exchange.ticker_body()
    assert json.loads(body)["lastPrice"] == "97234.51"
    status, body = _get(fake_exchange, "/api/v3/exchangeInfo")
    assert status == 200 and json.loads(body)["symbols"][0]["symbol"] == "BTCUSDT"
    assert _get(fake_exchange, "/nowhere")[0] == 404


def test_the_scenario_compares_the_two_ccxt_rows() -> None:
    (sc,) = [s for s in runner.SCENARIOS if s.key == "ccxt"]
    assert sc.exchange and sc.clients == ("ccxt", "ccxt+warmline")
    assert clients.CLIENTS["ccxt+warmline"].replaces == "ccxt"
    assert clients.CLIENTS["ccxt"].module == "ccxt"  # "ccxt is not installed" otherwise


def test_urls_are_pointed_at_the_fake_exchange() -> None:
    urls = {"public": "https://api.binance.com/api/v3", "x": ["keep"], "sapi": "https://sapi"}
    pointed = clients._pointed(urls, "http://127.0.0.1:1")
    assert pointed["public"] == "http://127.0.0.1:1/api/v3"
    assert pointed["sapi"] == "https://sapi" and pointed["x"] == ["keep"]


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["ccxt", "ccxt+warmline"])
async def test_each_ccxt_row_fetches_the_ticker(fake_exchange: launch.Server, name: str) -> None:
    pytest.importorskip("ccxt")
    target = clients.Target((fake_exchange.url,), "GET", exchange.TICKER_PATH, 1, False)
    calls, close = await clients.make_async(name, target)
    try:
        for _ in range(3):
            status, body = await calls[0]()
            assert status == 200 and body == exchange.ticker_body()
    finally:
        await close()
