"""warmline.contrib.aiohttp: the session alone (vs real aiohttp) and under the real ccxt."""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
import pytest

import warmline
from warmline import errors
from warmline._server.launch import Server
from warmline.contrib.aiohttp import ClientSession, ClientTimeout, map_error, request_timeout
from warmline.testing import Close, MockServer


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


# -- the session against granian, compared with aiohttp ---------------------------------


@pytest.mark.asyncio
async def test_requests_echo_like_aiohttp(granian: Server) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [
        ("GET", {"params": {"symbol": "BTCUSDT", "limit": "5"}}),
        ("GET", {"headers": {"X-Api-Key": "k1"}}),
        ("POST", {"data": b"timestamp=1&signature=ab"}),
        ("PUT", {"data": "text"}),
        ("PATCH", {"data": {"a": "1", "b": "x y"}}),
        ("DELETE", {"params": "id=7&x="}),
    ]
    url = granian.url + "/echo"
    keep = {"content-type", "x-api-key", "host"}
    async with ClientSession() as ours, aiohttp.ClientSession() as theirs:
        for method, kwargs in calls:
            async with ours.request(method, url, **kwargs) as a:
                mine = await a.json()
            async with theirs.request(method, url, **kwargs) as b:
                other = await b.json()
            assert (a.status, a.reason, a.content_type) == (b.status, b.reason, b.content_type)
            for echo in (mine, other):
                echo["headers"] = sorted((k, v) for k, v in echo["headers"] if k in keep)
            assert mine == other, (method, kwargs)


@pytest.mark.asyncio
async def test_response_api(granian: Server) -> None:
    async with ClientSession(headers={"X-Session": "s"}) as session:
        r = await session.get(granian.url + "/small")
        assert r.ok and r.status == 200 and r.method == "GET"
        assert r.headers["Content-Type"] == "application/json"
        assert (await r.json())["symbol"] == "BTCUSDT"
        assert str(r.url) == granian.url + "/small"
        assert r.charset is None and r.get_encoding() == "utf-8"
        r.release()
        await r.release()
        assert r.closed
        async with session.get(granian.url + "/large") as r:
            chunks = [c async for c in r.content.iter_chunked(10_000)]
            assert b"".join(chunks) == bytes(range(256)) * 256 and len(chunks) == 7
            assert r.content.at_eof()
            with pytest.raises(aiohttp.ContentTypeError):
                await r.json()
        async with session.get(granian.url + "/status/404") as r:
            with pytest.raises(aiohttp.ClientResponseError) as info:
                r.raise_for_status()
            assert info.value.status == 404
            assert await r.json() is None
        with pytest.raises(aiohttp.ClientResponseError):
            await session.get(granian.url + "/status/500", raise_for_status=True)
        echo = await (await session.get(granian.url + "/echo", headers={"x-session": "r"})).json()
        assert [v for k, v in echo["headers"] if k == "x-session"] == ["r"]


@pytest.mark.asyncio
async def test_gzip_is_decoded_and_timeouts_errors_are_aiohttps(warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/gz").respond(json={"a": 1}, gzip=True).once()
    warmline_mock.expect(path="/slow").respond(body="late", delay=2.0).once()
    warmline_mock.expect(path="/gone").respond_with(Close()).any_times()
    async with ClientSession(retry_stale=False) as session:
        assert await (await session.get(warmline_mock.url + "/gz")).json() == {"a": 1}
        with pytest.raises(aiohttp.SocketTimeoutError) as timeout:
            await session.get(warmline_mock.url + "/slow", timeout=ClientTimeout(total=0.2))
        assert isinstance(timeout.value, TimeoutError)
        assert isinstance(timeout.value.__cause__, errors.ReadTimeout)
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await session.get(warmline_mock.url + "/gone")
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"http://127.0.0.1:{_closed_port()}/")
        with pytest.raises(aiohttp.InvalidURL):
            await session.get("ftp://127.0.0.1/")
    with pytest.raises(RuntimeError, match="Session is closed"):
        await session.get(warmline_mock.url + "/gz")


@pytest.mark.asyncio
async def test_unsupported_options_fail_clearly() -> None:
    async with ClientSession() as session:
        with pytest.raises(TypeError, match="cookies"):
            await session.get("http://127.0.0.1:9/", cookies={"a": "b"})
        with pytest.raises(ValueError, match="proxies"):
            await session.get("http://127.0.0.1:9/", proxy="http://127.0.0.1:8")
        with pytest.raises(ValueError, match="tls="):
            await session.get("http://127.0.0.1:9/", ssl=False)
        with pytest.raises(TypeError, match="FormData"):
            await session.post("http://127.0.0.1:9/", data=aiohttp.FormData({"a": "b"}))
    with pytest.raises(TypeError, match="not both"):
        ClientSession(warmline.AsyncClient(), warm={})


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [
        (None, None),
        (3, 3.0),
        (ClientTimeout(total=10, sock_connect=10, sock_read=10), 10.0),
        (ClientTimeout(sock_connect=2, sock_read=5), 5.0),
        (ClientTimeout(connect=7, sock_read=5), 7.0),
        (ClientTimeout(connect=7), None),
    ],
)
def test_client_timeouts_become_one_total(timeout: Any, expected: float | None) -> None:
    assert request_timeout(timeout) == expected


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (errors.ConnectTimeout("t"), aiohttp.ConnectionTimeoutError),
        (errors.PoolTimeout("t"), aiohttp.ConnectionTimeoutError),
        (errors.ReadTimeout("t"), aiohttp.SocketTimeoutError),
        (errors.WriteTimeout("t"), aiohttp.ServerTimeoutError),
        (errors.ConnectError("c"), aiohttp.ClientOSError),
        (errors.ConnectionClosed("c"), aiohttp.ServerDisconnectedError),
        (errors.ProtocolError("p"), aiohttp.ClientPayloadError),
        (errors.InvalidRequest("i"), aiohttp.InvalidURL),
        (errors.RateLimited("r"), aiohttp.ClientError),
    ],
)
def test_every_error_maps_to_its_aiohttp_class(
    ours: errors.WarmlineError, theirs: type[Exception]
) -> None:
    assert type(map_error(ours, "http://127.0.0.1/x")) is theirs
