"""A MockServer that answers like Binance's spot REST API, for ccxt's binance exchange."""

from __future__ import annotations

from typing import Any

from warmline.testing import MockServer, regex

SERVER_TIME = 1732147200123

SYMBOL = {
    "symbol": "BTCUSDT",
    "status": "TRADING",
    "baseAsset": "BTC",
    "baseAssetPrecision": 8,
    "quoteAsset": "USDT",
    "quotePrecision": 8,
    "quoteAssetPrecision": 8,
    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
    "icebergAllowed": True,
    "ocoAllowed": True,
    "isSpotTradingAllowed": True,
    "isMarginTradingAllowed": False,
    "filters": [
        {
            "filterType": "PRICE_FILTER",
            "minPrice": "0.01",
            "maxPrice": "1000000",
            "tickSize": "0.01",
        },
        {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000", "stepSize": "0.00001"},
    ],
    "permissions": [],
    "permissionSets": [["SPOT"]],
}

TICKER = {
    "symbol": "BTCUSDT",
    "priceChange": "1234.51",
    "priceChangePercent": "1.286",
    "weightedAvgPrice": "96500.12",
    "prevClosePrice": "96000.00",
    "lastPrice": "97234.51",
    "lastQty": "0.01",
    "bidPrice": "97234.50",
    "bidQty": "1.5",
    "askPrice": "97234.52",
    "askQty": "2.25",
    "openPrice": "96000.00",
    "highPrice": "98000.00",
    "lowPrice": "95000.00",
    "volume": "8913.3",
    "quoteVolume": "860123456.7",
    "openTime": SERVER_TIME - 86_400_000,
    "closeTime": SERVER_TIME,
    "firstId": 1,
    "lastId": 100,
    "count": 100,
}

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
