"""A fake Binance spot REST API: the ``ccxt`` scenario's server.

``python -m warmline._bench.exchange LISTEN_PORT`` listens on 127.0.0.1 and
answers, from bytes built once, the three endpoints ccxt's ``binance``
calls for ``fetch_ticker``: ``/api/v3/exchangeInfo`` (markets, loaded
once), ``/api/v3/ticker/24hr`` and ``/api/v3/time``; 404 for anything else.
Keep-alive, HTTP/1.1, Content-Length framing. The payloads have the shape
of Binance's documented answers (one market, BTCUSDT), so ccxt parses them
as it would the real ones.

A Python server, not nginx: nginx would need an endpoint per path in the
bench's config; this one runs on the server's CPU like the tail
scenario's relay, and its CPU is not the client's.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any, Final

__all__ = ["SERVER_TIME", "SYMBOL", "TICKER", "TICKER_PATH", "main", "ticker_body"]

HOST: Final = "127.0.0.1"
SERVER_TIME: Final = 1732147200123
TICKER_PATH: Final = "/api/v3/ticker/24hr?symbol=BTCUSDT"

SYMBOL: Final[dict[str, Any]] = {
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

TICKER: Final[dict[str, Any]] = {
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


def ticker_body() -> bytes:
    """The ticker's body as served (its length is what a correct answer has)."""
    return json.dumps(TICKER, separators=(",", ":")).encode()


def _reply(status: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body
    )


def _answers() -> dict[bytes, bytes]:
    info = {"timezone": "UTC", "serverTime": SERVER_TIME, "rateLimits": [], "symbols": [SYMBOL]}
    return {
        b"/api/v3/ticker/24hr": _reply(b"200 OK", ticker_body()),
        b"/api/v3/exchangeInfo": _reply(b"200 OK", json.dumps(info).encode()),
        b"/api/v3/time": _reply(b"200 OK", b'{"serverTime":%d}' % SERVER_TIME),
    }


_NOT_FOUND: Final = _reply(b"404 Not Found", b'{"code":-1,"msg":"not here"}')


class _Exchange(asyncio.Protocol):
    """One connection: answer each complete request head (bodies skipped)."""

    def __init__(self, answers: dict[bytes, bytes]) -> None:
        self._answers = answers
        self._buf = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data
        out = []
        while (end := buf.find(b"\r\n\r\n")) >= 0:
            head = buf[:end]
            rest = buf[end + 4 :]
            length = _content_length(head)
            if len(rest) < length:
                break
            buf = rest[length:]
            target = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
            out.append(self._answers.get(target.split(b"?", 1)[0], _NOT_FOUND))
        self._buf = buf
        if out and self._transport is not None:
            self._transport.write(b"".join(out))


def _content_length(head: bytes) -> int:
    i = head.lower().find(b"\r\ncontent-length:")
    if i < 0:
        return 0
    line = head[i + 17 :].split(b"\r\n", 1)[0]
    return int(line.strip() or b"0")


async def _main(port: int) -> None:
    answers = _answers()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Exchange(answers), HOST, port, backlog=4096)
    async with server:
        await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 1:
        print("usage: python -m warmline._bench.exchange LISTEN_PORT", file=sys.stderr)
        return 2
    asyncio.run(_main(int(args[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
