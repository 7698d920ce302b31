"""A MockServer that answers like Binance's spot REST API, for ccxt's binance exchange."""

from __future__ import annotations

from typing import Any

from warmline._bench.exchange import SERVER_TIME, SYMBOL, TICKER
from warmline.testing import MockServer, regex

# The markets and the ticker are the bench's fake exchange's, so the
# bench's ccxt row and these tests parse the same answers.
DEPTH = {
    "lastUpdateId": 1027024,
    "bids": [["97234.50", "1.5"], ["97234.00", "0.75"]],
    "asks": [["97234.52", "2.25"], ["97235.00", "4.0"]],
}

ORDER = {
    "symbol": "BTCUSDT",
    "orderId": 28,
    "orderListId": -1,
    "clientOrderId": "x-warmline-1",
    "transactTime": SERVER_TIME,
    "price": "97000.00",
    "origQty": "0.01",
    "executedQty": "0.00",
    "cummulativeQuoteQty": "0.00",
    "status": "NEW",
    "timeInForce": "GTC",
    "type": "LIMIT",
    "side": "BUY",
    "workingTime": SERVER_TIME,
    "fills": [],
}


def install(server: MockServer) -> None:
    """Stub the endpoints ccxt's binance calls for markets, ticker, book and orders."""
    server.expect(method="GET", path="/api/v3/time").respond(
        json={"serverTime": SERVER_TIME}
    ).any_times()
    server.expect(method="GET", path="/api/v3/exchangeInfo").respond(
        json={"timezone": "UTC", "serverTime": SERVER_TIME, "rateLimits": [], "symbols": [SYMBOL]}
    ).any_times()
    server.expect(method="GET", path="/api/v3/ticker/24hr", query={"symbol": "BTCUSDT"}).respond(
        json=TICKER
    ).any_times()
    server.expect(method="GET", path="/api/v3/depth", query={"symbol": "BTCUSDT"}).respond(
        json=DEPTH
    ).any_times()
    server.expect(
        method="POST",
        path="/api/v3/order",
        headers={"X-MBX-APIKEY": "k"},
        body=regex(r".*symbol=BTCUSDT.*signature=[0-9a-f]{64}"),
    ).respond(json=ORDER).any_times()


def make_exchange(url: str, session: Any, **config: Any) -> Any:
    """ccxt's binance (spot only) with every API URL pointed at ``url``."""
    import ccxt.async_support as ccxt

    options = {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False, "fetchCurrencies": False}
    if session is not None:
        config["session"] = session
    exchange = ccxt.binance({"options": options, "enableRateLimit": False, **config})
    exchange.timeout_on_exit = 0  # close() would sleep 250 ms for websocket clients

    def swap(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("https://api.binance.com", url)
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        return value

    exchange.urls["api"] = swap(exchange.urls["api"])
    return exchange
