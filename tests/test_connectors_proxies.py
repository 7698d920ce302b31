"""Opening connections through real proxies (pproxy; tinyproxy, dante, microsocks).

Each test opens a connection with the connectors' shell functions and sends
real requests on it with the shells' Connection classes, to granian.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import Iterator
from time import monotonic
from typing import Any

import pytest

from tests.conftest import TLSFiles
from tests.proxyservers import PASSWORD, USER, ProxyServer
from warmline._policy import Origin
from warmline._server.launch import Server, free_port
from warmline.aio._connection import Connection as AioConnection
from warmline.connectors import Proxy, forward_form
from warmline.connectors._aio import open_aio_transport
from warmline.connectors._sync import TLSInTLSSocket, open_sync_socket
from warmline.errors import ConnectError, ConnectTimeout, ProxyError
from warmline.http11 import RequestWriter, Response, ResponseReader
from warmline.sync._connection import Connection as SyncConnection

AUTH = (USER, PASSWORD)
BAD_PASSWORD = "wrong-Pa55word"


# -- proxy fixtures (one process per module) ---------------------------------------


# -- request helpers ---------------------------------------------------------------


def _writer(origin: Origin, proxy: Proxy) -> RequestWriter:
    form = forward_form(origin, proxy)
    if form is None:
        return RequestWriter(origin.host_header)
    return RequestWriter(origin.host_header, headers=form.headers, absolute_form_prefix=form.prefix)


def sync_roundtrips(
    url: str, proxy: Proxy, tls: ssl.SSLContext | None = None, n: int = 2
) -> list[Response]:
    """Open one connection through ``proxy`` and send ``n`` GET /echo on it."""
    origin = Origin.parse(url)
    sock = open_sync_socket(origin, proxy=proxy, tls=tls, connect_timeout=5.0)
    conn = SyncConnection(sock, ResponseReader())  # type: ignore[arg-type]
    writer = _writer(origin, proxy)
    try:
        return [
            conn.request(writer.build("GET", "/echo"), "GET", monotonic() + 5) for _ in range(n)
        ]
    finally:
        conn.close()


async def aio_roundtrips(
    url: str, proxy: Proxy, tls: ssl.SSLContext | None = None, n: int = 2
) -> list[Response]:
    loop = asyncio.get_running_loop()
    origin = Origin.parse(url)
    _, conn = await open_aio_transport(
        loop,
        origin,
        proxy=proxy,
        tls=tls,
        connect_timeout=5.0,
        protocol_factory=lambda: AioConnection(loop, ResponseReader()),
    )
    writer = _writer(origin, proxy)
    try:
        out = []
        for _ in range(n):
            waiter = conn.send(writer.build("GET", "/echo"), "GET", loop.time() + 5)
            assert waiter is not None
            out.append(await waiter)
        return out
    finally:
        conn.close()


def _seen(response: Response) -> dict[str, Any]:
    assert response.status == 200
    seen: dict[str, Any] = json.loads(response.content)
    return seen


# -- HTTP CONNECT and absolute-form -------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_sync_through_pproxy_with_auth(
    scheme: str, pp_auth: ProxyServer, granian: Server, granian_tls: Server, tls_files: TLSFiles
) -> None:
    url, tls = (
        (granian.url, None) if scheme == "http" else (granian_tls.url, tls_files.client_context())
    )
    responses = sync_roundtrips(url, Proxy(pp_auth.url(auth=AUTH)), tls)
    assert [_seen(r)["method"] for r in responses] == ["GET", "GET"]


@pytest.mark.asyncio
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_aio_through_pproxy_with_auth(
    scheme: str, pp_auth: ProxyServer, granian: Server, granian_tls: Server, tls_files: TLSFiles
) -> None:
    url, tls = (
        (granian.url, None) if scheme == "http" else (granian_tls.url, tls_files.client_context())
    )
    responses = await aio_roundtrips(url, Proxy(pp_auth.url(auth=AUTH)), tls)
    assert [_seen(r)["method"] for r in responses] == ["GET", "GET"]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_sync_through_tinyproxy(
    scheme: str, tiny: ProxyServer, granian: Server, granian_tls: Server, tls_files: TLSFiles
) -> None:
    url, tls = (
        (granian.url, None) if scheme == "http" else (granian_tls.url, tls_files.client_context())
    )
    # tinyproxy closes the client connection after every absolute-form
    # request without saying so (no "Connection: close"): one request there.
    n = 1 if scheme == "http" else 2
    responses = sync_roundtrips(url, Proxy(tiny.url(auth=AUTH)), tls, n=n)
    assert [_seen(r)["path"] for r in responses] == ["/echo"] * n


@pytest.mark.asyncio
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_aio_through_tinyproxy(
    scheme: str, tiny: ProxyServer, granian: Server, granian_tls: Server, tls_files: TLSFiles
) -> None:
    url, tls = (
        (granian.url, None) if scheme == "http" else (granian_tls.url, tls_files.client_context())
    )
    n = 1 if scheme == "http" else 2  # see test_sync_through_tinyproxy
    responses = await aio_roundtrips(url, Proxy(tiny.url(auth=AUTH)), tls, n=n)
    assert [_seen(r)["path"] for r in responses] == ["/echo"] * n


def test_absolute_form_reaches_the_origin_as_origin_form(
    tiny: ProxyServer, granian: Server
) -> None:
    # The proxy turns "GET http://host:port/echo" into "GET /echo" for the
    # origin and strips Proxy-Authorization (hop-by-hop for the proxy).
    (response,) = sync_roundtrips(granian.url, Proxy(tiny.url(auth=AUTH)), n=1)
    seen = _seen(response)
    assert seen["path"] == "/echo"
    assert "proxy-authorization" not in {k.lower() for k in dict(seen["headers"])}


# tinyproxy 1.11 answers a CONNECT with bad credentials 401, not 407: the
# status is passed on as the proxy said it.
WRONG_PASSWORD_STATUS = {"pproxy": 407, "tinyproxy": 401}


@pytest.mark.parametrize("server_name", ["pp_auth", "tiny"])
def test_wrong_password_status(
    server_name: str, request: pytest.FixtureRequest, granian_tls: Server, tls_files: TLSFiles
) -> None:
    server: ProxyServer = request.getfixturevalue(server_name)
    proxy = Proxy(server.url(auth=(USER, BAD_PASSWORD)))
    with pytest.raises(ProxyError) as info:
        sync_roundtrips(granian_tls.url, proxy, tls_files.client_context())
    assert info.value.status == WRONG_PASSWORD_STATUS[server.name]
    assert f"refused the tunnel: {info.value.status}" in str(info.value)
    _no_secret(info.value)


def test_missing_credentials_is_407(
    pp_auth: ProxyServer, granian_tls: Server, tls_files: TLSFiles
) -> None:
    with pytest.raises(ProxyError) as info:
        sync_roundtrips(granian_tls.url, Proxy(pp_auth.url()), tls_files.client_context())
    assert info.value.status == 407
    assert f"127.0.0.1:{pp_auth.port}" in str(info.value)


@pytest.mark.asyncio
async def test_aio_wrong_password_is_407(
    pp_auth: ProxyServer, granian_tls: Server, tls_files: TLSFiles
) -> None:
    proxy = Proxy(pp_auth.url(auth=(USER, BAD_PASSWORD)))
    with pytest.raises(ProxyError) as info:
        await aio_roundtrips(granian_tls.url, proxy, tls_files.client_context())
    assert info.value.status == 407
    _no_secret(info.value)


# -- an https:// proxy: TLS to the proxy, then TLS inside TLS ------------------------


def _tls_proxy(server: ProxyServer, tls_files: TLSFiles) -> Proxy:
    return Proxy(server.url("https", auth=AUTH), tls=tls_files.client_context())


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_sync_https_proxy(
    scheme: str, pp_tls: ProxyServer, granian: Server, granian_tls: Server, tls_files: TLSFiles
) -> None:
    url, tls = (
        (granian.url, None) if scheme == "http" else (granian_tls.url, tls_files.client_context())
    )
    origin = Origin.parse(url)
    sock = open_sync_socket(
        origin, proxy=_tls_proxy(pp_tls, tls_files), tls=tls, connect_timeout=5.0
    )
    try:
        # TLS inside TLS: the inner session is its own, verified for the origin.
        assert isinstance(sock, TLSInTLSSocket if tls else ssl.SSLSocket)
        assert not (isinstance(sock, TLSInTLSSocket) and sock.idle_stale())
    finally:
        sock.close()
    responses = sync_roundtrips(url, _tls_proxy(pp_tls, tls_files), tls)
    assert [_seen(r)["path"] for r in responses] == ["/echo", "/echo"]


@pytest.mark.asyncio
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_aio_https_proxy(
    scheme: str, pp_tls: ProxyServer, granian: Server, granian_tls: Server, tls_files: TLSFiles
) -> None:
    url, tls = (
        (granian.url, None) if scheme == "http" else (granian_tls.url, tls_files.client_context())
    )
    responses = await aio_roundtrips(url, _tls_proxy(pp_tls, tls_files), tls)
    assert [_seen(r)["path"] for r in responses] == ["/echo", "/echo"]


def test_https_proxy_with_an_untrusted_certificate(
    pp_tls: ProxyServer, granian_tls: Server, tls_files: TLSFiles
) -> None:
    proxy = Proxy(pp_tls.url("https", auth=AUTH))  # system CAs: the test CA is unknown
    with pytest.raises(ProxyError, match="certificate verification failed") as info:
        sync_roundtrips(granian_tls.url, proxy, tls_files.client_context())
    _no_secret(info.value)


# -- SOCKS5 -------------------------------------------------------------------------


SOCKS_CASES = ["pproxy-open", "pproxy-auth", "dante", "microsocks"]


@pytest.fixture
def socks(request: pytest.FixtureRequest) -> tuple[ProxyServer, tuple[str, str] | None]:
    name = request.param
    fixture = {
        "pproxy-open": "pp_open",
        "pproxy-auth": "pp_auth",
        "dante": "danted",
        "microsocks": "micro",
    }[name]
    server: ProxyServer = request.getfixturevalue(fixture)
    return server, (AUTH if name in ("pproxy-auth", "microsocks") else None)


@pytest.mark.parametrize("socks", SOCKS_CASES, indirect=True)
@pytest.mark.parametrize("flavour", ["socks5", "socks5h"])
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_sync_socks(
    socks: tuple[ProxyServer, tuple[str, str] | None],
    flavour: str,
    scheme: str,
    granian: Server,
    granian_tls: Server,
    tls_files: TLSFiles,
) -> None:
    server, auth = socks
    base, tls = (granian, None) if scheme == "http" else (granian_tls, tls_files.client_context())
    url = f"{scheme}://localhost:{base.port}"  # a name: who resolves it differs
    responses = sync_roundtrips(url, Proxy(server.url(flavour, auth=auth)), tls)
    assert [_seen(r)["path"] for r in responses] == ["/echo", "/echo"]


@pytest.mark.asyncio
@pytest.mark.parametrize("socks", SOCKS_CASES, indirect=True)
@pytest.mark.parametrize("flavour", ["socks5", "socks5h"])
async def test_aio_socks(
    socks: tuple[ProxyServer, tuple[str, str] | None],
    flavour: str,
    granian_tls: Server,
    tls_files: TLSFiles,
) -> None:
    server, auth = socks
    url = f"https://localhost:{granian_tls.port}"
    responses = await aio_roundtrips(
        url, Proxy(server.url(flavour, auth=auth)), tls_files.client_context()
    )
    assert [_seen(r)["path"] for r in responses] == ["/echo", "/echo"]


def test_socks5_resolves_here_and_socks5h_at_the_proxy(
    monkeypatch: pytest.MonkeyPatch, pp_open: ProxyServer, granian: Server
) -> None:
    looked_up: list[str] = []
    real = socket.getaddrinfo

    def spy(host: Any, *args: Any, **kwargs: Any) -> Any:
        looked_up.append(str(host))
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", spy)
    url = f"http://localhost:{granian.port}"
    sync_roundtrips(url, Proxy(pp_open.url("socks5h")), n=1)
    assert "localhost" not in looked_up
    sync_roundtrips(url, Proxy(pp_open.url("socks5")), n=1)
    assert "localhost" in looked_up


@pytest.mark.parametrize("server_name", ["pp_auth", "micro"])
def test_socks_wrong_password(
    server_name: str, request: pytest.FixtureRequest, granian: Server
) -> None:
    server: ProxyServer = request.getfixturevalue(server_name)
    proxy = Proxy(server.url("socks5h", auth=(USER, BAD_PASSWORD)))
    with pytest.raises(ProxyError) as info:
        sync_roundtrips(granian.url, proxy, n=1)
    # microsocks answers RFC 1929 status 1; pproxy closes the connection.
    assert "username/password" in str(info.value) or "closed the connection" in str(info.value)
    _no_secret(info.value)


def test_socks_without_credentials_where_needed(micro: ProxyServer, granian: Server) -> None:
    with pytest.raises(ProxyError, match="accepts none of the offered methods"):
        sync_roundtrips(granian.url, Proxy(micro.url("socks5h")), n=1)


def test_socks_reply_code_for_a_refused_origin(danted: ProxyServer) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ProxyError) as info:
        sync_roundtrips(dead, Proxy(danted.url("socks5")), n=1)
    assert info.value.status == 5  # connection refused
    assert "connection refused" in str(info.value)


@pytest.mark.asyncio
async def test_aio_socks_reply_code_for_a_refused_origin(danted: ProxyServer) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ProxyError) as info:
        await aio_roundtrips(dead, Proxy(danted.url("socks5")), n=1)
    assert info.value.status == 5


# -- a proxy that is down, or silent --------------------------------------------------


def test_proxy_down(granian_tls: Server, tls_files: TLSFiles) -> None:
    proxy = Proxy(f"http://{USER}:{PASSWORD}@127.0.0.1:{free_port()}")
    with pytest.raises(ProxyError, match="cannot connect to the proxy") as info:
        sync_roundtrips(granian_tls.url, proxy, tls_files.client_context())
    assert isinstance(info.value, ConnectError)
    _no_secret(info.value)


@pytest.mark.asyncio
async def test_aio_proxy_down(granian_tls: Server, tls_files: TLSFiles) -> None:
    proxy = Proxy(f"socks5h://{USER}:{PASSWORD}@127.0.0.1:{free_port()}")
    with pytest.raises(ProxyError, match="cannot connect to the proxy") as info:
        await aio_roundtrips(granian_tls.url, proxy, tls_files.client_context())
    _no_secret(info.value)


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """Accepts connections and never answers (a hung proxy)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


def test_silent_proxy_times_out(
    silent_listener: int, granian_tls: Server, tls_files: TLSFiles
) -> None:
    proxy = Proxy(f"http://127.0.0.1:{silent_listener}")
    origin = Origin.parse(granian_tls.url)
    with pytest.raises(ConnectTimeout):
        open_sync_socket(origin, proxy=proxy, tls=tls_files.client_context(), connect_timeout=0.2)


@pytest.mark.asyncio
async def test_aio_silent_proxy_times_out(
    silent_listener: int, granian_tls: Server, tls_files: TLSFiles
) -> None:
    proxy = Proxy(f"socks5://127.0.0.1:{silent_listener}")
    loop = asyncio.get_running_loop()
    with pytest.raises(ConnectTimeout):
        await open_aio_transport(
            loop,
            Origin.parse(granian_tls.url),
            proxy=proxy,
            tls=tls_files.client_context(),
            connect_timeout=0.2,
            protocol_factory=asyncio.Protocol,
        )


def _no_secret(exc: BaseException) -> None:
    """No credential in the error, its repr, or anything it chains."""
    seen = exc
    while seen is not None:
        for text in (str(seen), repr(seen), repr(getattr(seen, "__dict__", {}))):
            assert PASSWORD not in text and BAD_PASSWORD not in text
            assert USER not in text
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]


@pytest.mark.parametrize("kind", ["https", "socks5h"])
def test_uvloop_tunnels(
    kind: str, pp_tls: ProxyServer, pp_auth: ProxyServer, granian_tls: Server, tls_files: TLSFiles
) -> None:
    # uvloop's start_tls also runs over its own SSL transport (TLS in TLS).
    uvloop = pytest.importorskip("uvloop")
    server = pp_tls if kind == "https" else pp_auth
    proxy = Proxy(server.url(kind, auth=AUTH), tls=tls_files.client_context())
    responses = uvloop.run(aio_roundtrips(granian_tls.url, proxy, tls_files.client_context()))
    assert [_seen(r)["path"] for r in responses] == ["/echo", "/echo"]
