"""The ASGI app that granian serves for the benchmark and the tests.

Endpoints (the same shapes as the nginx config of ``_server.nginx``):

- ``GET /small``: a ~100-byte JSON price ticker.
- ``GET /large``: 64 KiB of bytes 0..255 repeated.
- ``GET /bytes/N``: N bytes (capped at 64 MiB).
- ``GET /chunked``: a body sent in several chunks without a length.
- ``POST /order``: echoes the JSON body (the benchmark's order placement).
- ``/echo`` (any method): JSON of the request as the server saw it.
- ``/status/N``: an empty response with status N.
- ``/count``: how many requests each ``x-id`` header value was seen with.
- ``GET /coded/CODING``: :data:`TICKERS` with ``Content-Encoding: CODING``
  (gzip, deflate, br or zstd when the server has the package; a stack such
  as ``gzip,br`` applies them in that order); ``?chunked`` sends it in
  pieces without a length.
- ``GET /book.json``: :data:`BOOK` (~5 KB of JSON) gzipped, with
  ``Content-Encoding: gzip`` and a length, whatever the request asks (as
  nginx's ``gzip_static always`` serves it): the bench's gzip scenario.
- ``GET /stream/N``: N zero bytes (at most 1 GiB) with a length, sent in
  1 MiB pieces: the bench's streamed download.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Awaitable, Callable
from typing import Any

SMALL = (
    b'{"symbol":"BTCUSDT","price":"97234.51000000","bid":"97234.50",'
    b'"ask":"97234.52","time":1732147200123}'
)
LARGE = bytes(range(256)) * 256
# A ~2 KiB JSON ticker list: what an exchange's gzip-encoded answers look like.
TICKERS = (
    b"["
    + b",".join(
        b'{"symbol":"SYM%dUSDT","price":"%d.%08d","volume":"%d"}' % (i, 100 + i, i * 7919, i * 31)
        for i in range(32)
    )
    + b"]"
)
_MAX_BYTES = 64 * 1024 * 1024
# An order book, 100 levels a side: the size of a depth answer of an exchange
# API (~5 KB of JSON, ~1.9 KB gzipped), served gzipped at /book.json.
BOOK = (
    b'{"lastUpdateId":1027024,"bids":['
    + b",".join(
        b'["%d.%02d","%d.%08d"]' % (97234 - i, i % 100, i % 7, i * 7919) for i in range(100)
    )
    + b'],"asks":['
    + b",".join(
        b'["%d.%02d","%d.%08d"]' % (97235 + i, i % 100, i % 5, i * 104729) for i in range(100)
    )
    + b"]}"
)
BOOK_GZ = gzip.compress(BOOK, compresslevel=6, mtime=0)
_MAX_STREAM = 1 << 30
_STREAM_PIECE = b"\0" * (1 << 20)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_seen: dict[str, int] = {}


async def _body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


async def _reply(
    send: Send,
    status: int,
    body: bytes,
    ctype: bytes = b"application/json",
    more: list[bytes] | None = None,
) -> None:
    headers = [(b"content-type", ctype)]
    if more is None:
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if more is None:
        await send({"type": "http.response.body", "body": body})
        return
    for part in more:
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def encode(body: bytes, codings: str) -> bytes:
    """``body`` with each of the comma-separated ``codings`` applied in order."""
    import importlib
    import zlib

    for coding in codings.split(","):
        if coding == "gzip":
            body = gzip.compress(body, mtime=0)
        elif coding == "deflate":
            body = zlib.compress(body)
        elif coding == "br":
            body = importlib.import_module("brotli").compress(body)
        elif coding == "zstd":
            body = importlib.import_module("backports.zstd").compress(body)
        else:
            raise ValueError(f"unknown coding {coding!r}")
    return body


async def _reply_coded(send: Send, codings: str, body: bytes, more: list[bytes] | None) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-encoding", codings.encode())]
    if more is None:
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for part in [body] if more is None else more:
        await send({"type": "http.response.body", "body": part, "more_body": more is not None})
    if more is not None:
        await send({"type": "http.response.body", "body": b""})


async def _stream_zeros(send: Send, n: int) -> None:
    headers = [(b"content-type", b"application/octet-stream"), (b"content-length", b"%d" % n)]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    piece = _STREAM_PIECE
    while n > 0:
        part = piece if n >= len(piece) else piece[:n]
        n -= len(part)
        await send({"type": "http.response.body", "body": part, "more_body": n > 0})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path: str = scope["path"]
    body = await _body(receive)
    if path == "/small":
        await _reply(send, 200, SMALL)
    elif path == "/large":
        await _reply(send, 200, LARGE, b"application/octet-stream")
    elif path.startswith("/bytes/"):
        n = min(int(path[7:]), _MAX_BYTES)
        await _reply(
            send,
            200,
            LARGE * (n // len(LARGE)) + LARGE[: n % len(LARGE)],
            b"application/octet-stream",
        )
    elif path == "/book.json":
        await _reply_coded(send, "gzip", BOOK_GZ, None)
    elif path.startswith("/stream/"):
        await _stream_zeros(send, min(int(path[8:]), _MAX_STREAM))
    elif path == "/order":
        await _reply(send, 200, body)
    elif path == "/chunked":
        parts = [b"chunk-%d;" % i * 50 for i in range(20)]
        await _reply(send, 200, b"", b"text/plain", more=parts)
    elif path.startswith("/coded/"):
        coded = encode(TICKERS, path[7:])
        if scope["query_string"] == b"chunked":
            parts = [coded[i : i + 100] for i in range(0, len(coded), 100)]
            await _reply_coded(send, path[7:], b"", parts)
        else:
            await _reply_coded(send, path[7:], coded, None)
    elif path.startswith("/status/"):
        await _reply(send, int(path[8:]), b"")
    elif path == "/count":
        await _reply(send, 200, json.dumps(_seen).encode())
    else:
        headers = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
        for k, v in scope["headers"]:
            if k == b"x-id":
                key = v.decode("latin-1")
                _seen[key] = _seen.get(key, 0) + 1
        echo = {
            "method": scope["method"],
            "path": path,
            "raw_path": scope.get("raw_path", b"").decode("latin-1"),
            "query": scope["query_string"].decode("latin-1"),
            "headers": headers,
            "body": body.decode("latin-1"),
        }
        status = 404 if path != "/echo" and not path.startswith("/echo/") else 200
        await _reply(send, status, json.dumps(echo).encode())
