"""warmline.contrib.httpx: the real httpx on warmline's clients, against granian and MockServer."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

import warmline
from warmline import errors
from warmline._policy import DEFAULT
from warmline._server.launch import Server
from warmline.contrib.httpx import AsyncTransport, Transport, map_error, request_timeout
from warmline.testing import ABSENT, Close, Garbage, MockServer, Reply


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on (bound, then released)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    yield port


def _comparable(echo: dict[str, Any]) -> dict[str, Any]:
    """The echo of a request minus what differs between two connections' stacks."""
    headers = sorted(
        (k, v) for k, v in echo["headers"] if k not in ("connection", "content-length")
    )
    return {**echo, "headers": headers}


# -- against granian, compared with httpx's own transport --------------------------------


@pytest.mark.asyncio
async def test_requests_echo_like_httpx_default_transport(granian: Server) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [
        ("GET", {"params": {"symbol": "BTCUSDT", "limit": 5}}),
        ("GET", {"headers": {"X-Api-Key": "k1", "Accept": "application/json"}}),
        ("POST", {"json": {"side": "BUY", "qty": "0.01"}}),
        ("PUT", {"content": b"raw bytes"}),
        ("DELETE", {"params": {"id": "7"}}),
        ("PATCH", {"data": {"a": "1", "b": "x y"}}),
    ]
    url = granian.url + "/echo"
    async with (
        httpx.AsyncClient(transport=AsyncTransport()) as ours,
        httpx.AsyncClient() as theirs,
    ):
        for method, kwargs in calls:
            a = await ours.request(method, url, **kwargs)
            b = await theirs.request(method, url, **kwargs)
            assert (a.status_code, a.reason_phrase, a.http_version) == (200, "OK", "HTTP/1.1")
            assert _comparable(a.json()) == _comparable(b.json()), (method, kwargs)
            assert a.headers["content-type"] == b.headers["content-type"]


def test_blocking_transport_large_and_chunked_bodies(granian: Server) -> None:
    with httpx.Client(transport=Transport()) as ours, httpx.Client() as theirs:
        for path in ("/large", "/chunked", "/bytes/100000", "/small"):
            a, b = ours.get(granian.url + path), theirs.get(granian.url + path)
            assert (a.status_code, a.content) == (b.status_code, b.content), path
        head = ours.head(granian.url + "/large")
        assert head.status_code == 200 and head.content == b""
        assert ours.get(granian.url + "/status/503").status_code == 503


def test_iterator_request_body_goes_up_chunked(granian: Server) -> None:
    def parts() -> Iterator[bytes]:
        yield b"abc"
        yield b"def"

    with httpx.Client(transport=Transport()) as client:
        echo = client.post(granian.url + "/echo", content=parts()).json()
    fields = [tuple(h) for h in echo["headers"]]
    assert echo["body"] == "abcdef"
    assert ("transfer-encoding", "chunked") in fields
    assert "content-length" not in [k for k, _ in fields]


# -- against MockServer: what arrived, errors, connection reuse -------------------------


def test_fields_warmline_owns_are_sent_once(warmline_mock: MockServer) -> None:
    warmline_mock.expect(
        method="POST",
        path="/order",
        headers={"User-Agent": "bot/1", "X-Sig": "s", "Keep-Alive": ABSENT},
        json={"price": 1},
    ).respond(201, json={"orderId": 9}).once()
    with httpx.Client(transport=Transport(user_agent="warmline-ua")) as client:
        r = client.post(
            warmline_mock.url + "/order",
            json={"price": 1},
            headers={"User-Agent": "bot/1", "X-Sig": "s", "Keep-Alive": "5"},
        )
    assert (r.status_code, r.json()) == (201, {"orderId": 9})
    seen = warmline_mock.journal[0].headers
    for name in ("host", "user-agent", "content-length", "content-type"):
        assert len(seen.get_all(name)) == 1, name
    assert "transfer-encoding" not in seen


def test_a_different_host_header_is_kept(warmline_mock: MockServer) -> None:
    warmline_mock.expect(headers={"Host": "api.example"}).respond(body="ok").once()
    with httpx.Client(transport=Transport()) as client:
        assert client.get(warmline_mock.url + "/", headers={"Host": "api.example"}).text == "ok"
    assert warmline_mock.journal[0].headers.get_all("host") == ["api.example"]


def test_gzip_is_decoded_by_httpx_and_redirects_followed_by_httpx(
    warmline_mock: MockServer,
) -> None:
    warmline_mock.expect(path="/old").respond(302, headers={"Location": "/new"}).once()
    warmline_mock.expect(path="/new").respond(json={"price": "97000.5"}, gzip=True).once()
    with httpx.Client(transport=Transport(), follow_redirects=True) as client:
        r = client.get(warmline_mock.url + "/old")
    assert r.json() == {"price": "97000.5"}
    assert [h.status_code for h in r.history] == [302]
    assert r.url.path == "/new"


@pytest.mark.asyncio
async def test_connections_are_reused(warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/t").respond(json={"ok": True}).times(60)
    transport = AsyncTransport(limits=warmline.Limits(total=10, per_host=3))
    async with httpx.AsyncClient(transport=transport, base_url=warmline_mock.url) as client:
        for _ in range(10):
            assert (await client.get("/t")).status_code == 200
        rs = await asyncio.gather(*(client.get("/t") for _ in range(50)))
    assert all(r.json() == {"ok": True} for r in rs)
    ids = [r.connection_id for r in warmline_mock.journal]
    assert len(set(ids[:10])) == 1
    assert len(set(ids)) <= 3


def test_warm_origins_connect_when_the_client_opens(warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/t").respond(body="x").times(2)
    with httpx.Client(transport=Transport(warm={warmline_mock.url: 2})) as client:
        pool = client._transport.client.pool(warmline_mock.url)  # type: ignore[attr-defined]
        assert pool.available == 2
        client.get(warmline_mock.url + "/t")
        client.get(warmline_mock.url + "/t")
    assert len({r.connection_id for r in warmline_mock.journal}) == 1


@pytest.mark.asyncio
async def test_a_slow_server_raises_httpx_read_timeout(warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/slow").respond(body="late", delay=2.0).once()
    async with httpx.AsyncClient(transport=AsyncTransport(), timeout=0.2) as client:
        with pytest.raises(httpx.ReadTimeout) as info:
            await client.get(warmline_mock.url + "/slow")
    assert isinstance(info.value.__cause__, errors.ReadTimeout)
    assert info.value.request.url.path == "/slow"


def test_blocking_read_timeout(warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/slow").respond(body="late", delay=2.0).once()
    with (
        httpx.Client(transport=Transport()) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        client.get(warmline_mock.url + "/slow", timeout=httpx.Timeout(0.2))


@pytest.mark.asyncio
async def test_a_closed_port_raises_httpx_connect_error(closed_port: int) -> None:
    async with httpx.AsyncClient(transport=AsyncTransport()) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{closed_port}/")


@pytest.mark.parametrize("fault", [Close(), Garbage(b"not http\r\n\r\n")])
def test_a_broken_peer_raises_remote_protocol_error(
    warmline_mock: MockServer, fault: Close | Garbage
) -> None:
    warmline_mock.expect(path="/x").respond_with(fault).any_times()
    with (
        httpx.Client(transport=Transport(retry_stale=False)) as client,
        pytest.raises(httpx.RemoteProtocolError) as info,
    ):
        client.get(warmline_mock.url + "/x")
    assert isinstance(info.value.__cause__, errors.WarmlineError)


def test_an_unsupported_scheme_is_refused_before_sending() -> None:
    with httpx.Client(transport=Transport()) as client, pytest.raises(httpx.UnsupportedProtocol):
        client.get("ftp://127.0.0.1/file")


def test_a_pool_timeout_maps_to_httpx(warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/slow").respond(body="x", delay=1.0).any_times()
    timeouts = warmline.Timeouts(pool=0.1)
    transport = Transport(limits=warmline.Limits(total=1, per_host=1), timeout=timeouts)
    with httpx.Client(transport=transport) as client, ThreadPoolExecutor(2) as ex:
        first = ex.submit(client.get, warmline_mock.url + "/slow")
        warmline_mock.wait_for_requests(1)
        with pytest.raises(httpx.PoolTimeout):
            client.get(warmline_mock.url + "/slow")
        assert first.result().text == "x"


# -- units: the mappings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (errors.ConnectTimeout("t"), httpx.ConnectTimeout),
        (errors.ReadTimeout("t"), httpx.ReadTimeout),
        (errors.WriteTimeout("t"), httpx.WriteTimeout),
        (errors.PoolTimeout("t"), httpx.PoolTimeout),
        (errors.ProxyError("p"), httpx.ProxyError),
        (errors.ConnectError("c"), httpx.ConnectError),
        (errors.ConnectionClosed("c"), httpx.RemoteProtocolError),
        (errors.ProtocolError("p"), httpx.RemoteProtocolError),
        (errors.ResponseTooLarge("p"), httpx.RemoteProtocolError),
        (errors.InvalidRequest("i"), httpx.LocalProtocolError),
        (errors.PoolClosed("closed"), httpx.TransportError),
    ],
)
def test_every_error_maps_to_its_httpx_class(
    ours: errors.WarmlineError, theirs: type[httpx.TransportError]
) -> None:
    request = httpx.Request("GET", "http://127.0.0.1/x")
    mapped = map_error(ours.with_context(origin="http://127.0.0.1:80"), request)
    assert type(mapped) is theirs
    assert mapped.request is request
    assert "http://127.0.0.1:80" in str(mapped)


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [
        (None, DEFAULT),
        (httpx.Timeout(5.0), 5.0),
        (httpx.Timeout(1.0, connect=3.0), 3.0),
        (httpx.Timeout(1.0, pool=None), 1.0),
        (httpx.Timeout(1.0, connect=None), 1.0),
        (httpx.Timeout(None), None),
        (httpx.Timeout(1.0, read=None), None),
        (httpx.Timeout(1.0, write=None), None),
    ],
)
def test_phase_timeouts_become_one_total(timeout: httpx.Timeout | None, expected: object) -> None:
    extensions = {} if timeout is None else {"timeout": timeout.as_dict()}
    request = httpx.Request("GET", "http://127.0.0.1/", extensions=extensions)
    assert request_timeout(request) == expected


@pytest.mark.asyncio
async def test_a_given_client_is_used_and_left_open(warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/t").respond(body="x").times(2)
    async with warmline.AsyncClient() as mine:
        async with httpx.AsyncClient(transport=AsyncTransport(mine)) as client:
            assert (await client.get(warmline_mock.url + "/t")).text == "x"
        assert not mine.closed
        assert (await mine.get(warmline_mock.url + "/t")).content == b"x"


def test_constructor_misuse_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not both"):
        Transport(warmline.Client(), warm={})
    with pytest.raises(TypeError, match=r"warmline\.Client"):
        Transport(warmline.AsyncClient())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"warmline\.AsyncClient"):
        AsyncTransport(warmline.Client())  # type: ignore[arg-type]


def test_reply_reason_phrase_is_carried(warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/r").respond_with(Reply(299, reason="Fine Thanks")).once()
    with httpx.Client(transport=Transport()) as client:
        r = client.get(warmline_mock.url + "/r")
    assert (r.status_code, r.reason_phrase) == (299, "Fine Thanks")


def test_userinfo_goes_as_basic_auth_not_in_the_url(warmline_mock: MockServer) -> None:
    warmline_mock.expect(headers={"Authorization": "Basic dTpw"}).respond(body="in").once()
    url = warmline_mock.url.replace("http://", "http://u:p@") + "/private"
    with httpx.Client(transport=Transport()) as client:
        assert client.get(url).text == "in"
    assert warmline_mock.journal[0].target == "/private"
