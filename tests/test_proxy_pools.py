"""The pools' and clients' promises through real proxies (issue 14).

Both pool flavours (through ``PoolDriver``) and both clients go through
tinyproxy (HTTP CONNECT, Basic auth), pproxy (HTTP, SOCKS5, TLS), dante
(SOCKS5) and microsocks (SOCKS5 with a password) to granian. A counting
``FaultProxy`` in front of a proxy sees every TCP connection made to it: one
per tunnel, so one CONNECT (or SOCKS5 handshake) per connection opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import warmline
from tests.conftest import TLSFiles
from tests.faultproxy import FLAVOURS, FaultProxy, Flavour, PoolDriver
from tests.proxyservers import PASSWORD, USER, ProxyServer, pproxy
from warmline._server.launch import Server, free_port
from warmline.connectors import Proxy
from warmline.errors import ConnectError, PoolClosed, ProxyError

AUTH = (USER, PASSWORD)
BAD_PASSWORD = "wrong-Pa55word"
FAST_HEAL = warmline.Backoff(initial=0.02, maximum=0.1, multiplier=2.0, jitter=0.1)


# -- proxies (one process per module) ----------------------------------------------


@contextlib.contextmanager
def counted(server: ProxyServer) -> Iterator[FaultProxy]:
    """A plain forwarder in front of ``server``: ``stats.accepted`` = tunnels opened."""
    with FaultProxy(("127.0.0.1", server.port)) as front:
        yield front


def front_url(front: FaultProxy, scheme: str = "http", auth: tuple[str, str] | None = None) -> str:
    creds = f"{auth[0]}:{auth[1]}@" if auth else ""
    return f"{scheme}://{creds}127.0.0.1:{front.port}"


def echoed(response: Any) -> dict[str, Any]:
    assert response.status == 200, response
    seen: dict[str, Any] = json.loads(response.content)
    return seen


def no_secret(*texts: object) -> None:
    for text in texts:
        shown = str(text)
        assert PASSWORD not in shown and BAD_PASSWORD not in shown and USER not in shown, shown


def error_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


# -- both pools through HTTP CONNECT: one tunnel per slot ---------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_pool_through_connect_reuses_each_tunnel(
    flavour: Flavour, tiny: ProxyServer, granian_tls: Server, tls_files: TLSFiles
) -> None:
    with (
        counted(tiny) as front,
        PoolDriver(
            flavour,
            granian_tls.url,
            connections=2,
            tls=tls_files.client_context(),
            proxy=front_url(front, auth=AUTH),
        ) as pool,
    ):
        assert pool.available == 2  # pre-connected: both tunnels open at connect()
        assert front.stats.accepted == 2
        results = pool.run_many([("GET", "/echo", {})] * 40, concurrency=2)
        assert [echoed(r)["path"] for r, _ in results] == ["/echo"] * 40
        # 40 requests, still one CONNECT per slot: the tunnel is the connection.
        assert front.stats.accepted == 2
        assert pool.stats().reconnects == 0
        no_secret(repr(pool.pool), pool.pool._config)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_pool_through_an_https_proxy_tls_in_tls(
    flavour: Flavour, pp_tls: ProxyServer, granian_tls: Server, tls_files: TLSFiles
) -> None:
    # The origin's TLS inside the proxy's TLS; in the blocking pool every
    # reuse looks through both layers for a close (stale()), and TLS 1.3
    # session tickets of either layer must not count as one.
    proxy = Proxy(pp_tls.url("https", auth=AUTH), tls=tls_files.client_context())
    with PoolDriver(
        flavour, granian_tls.url, connections=1, tls=tls_files.client_context(), proxy=proxy
    ) as pool:
        for _ in range(5):
            assert echoed(pool.get("/echo"))["method"] == "GET"
        assert pool.stats().reconnects == 0


def test_blocking_pool_closed_under_a_request_in_tls_in_tls(
    pp_tls: ProxyServer, granian_tls: Server, tls_files: TLSFiles
) -> None:
    # A slot closed under a request in flight shuts the tunnel's socket down,
    # which wakes the thread reading through both TLS layers: PoolClosed.
    ctx = tls_files.client_context()
    proxy = Proxy(pp_tls.url("https", auth=AUTH), tls=ctx)
    with FaultProxy(("127.0.0.1", granian_tls.port)) as slow:
        pool = warmline.AtomicClientPool.connect(
            f"https://127.0.0.1:{slow.port}", connections=1, tls=ctx, proxy=proxy
        )
        big = pool.get("/bytes/300000")  # many records, many recv_into calls
        assert len(big.content) == 300000
        slow.stall(3.0)
        outcome: list[BaseException | None] = []

        def call() -> None:
            try:
                pool.get("/echo")
            except BaseException as exc:
                outcome.append(exc)
            else:
                outcome.append(None)

        thread = threading.Thread(target=call)
        thread.start()
        deadline = time.monotonic() + 5
        while pool.stats().in_use == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # its request is written, its recv waits
        pool.close()
        thread.join(5)
        assert not thread.is_alive()
        assert isinstance(outcome[0], PoolClosed)


# -- a plain-http origin through an HTTP proxy: absolute-form ------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_plain_http_origin_through_http_proxy(
    flavour: Flavour, pp_auth: ProxyServer, granian: Server
) -> None:
    with (
        counted(pp_auth) as front,
        PoolDriver(flavour, granian.url, connections=1, proxy=front_url(front, auth=AUTH)) as pool,
    ):
        for _ in range(3):
            seen = echoed(pool.get("/echo", params={"q": "1"}))
            # The proxy turned "GET http://host:port/echo?q=1" into origin-form
            # and kept Proxy-Authorization for itself.
            assert seen["path"] == "/echo"
            assert "proxy-authorization" not in {k.lower() for k, _ in seen["headers"]}
        assert front.stats.accepted >= 1


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_stale_retry_through_a_proxy_that_closes_after_each_request(
    flavour: Flavour, tiny: ProxyServer, granian: Server
) -> None:
    # tinyproxy closes the client connection after each absolute-form request
    # without "Connection: close": the next GET finds its connection closed
    # before any response byte and is re-sent once on a fresh one.
    with PoolDriver(flavour, granian.url, connections=1, proxy=tiny.url(auth=AUTH)) as pool:
        for _ in range(3):
            assert echoed(pool.get("/echo"))["path"] == "/echo"


# -- SOCKS5 (resolved here) and SOCKS5h (resolved by the proxy) -----------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("case", ["dante-socks5", "microsocks-socks5h"])
def test_pool_through_socks(
    flavour: Flavour,
    case: str,
    request: pytest.FixtureRequest,
    granian_tls: Server,
    tls_files: TLSFiles,
) -> None:
    name, scheme = case.split("-")
    server: ProxyServer = request.getfixturevalue("danted" if name == "dante" else "micro")
    auth = AUTH if name == "microsocks" else None
    with (
        counted(server) as front,
        PoolDriver(
            flavour,
            f"https://localhost:{granian_tls.port}",  # a name: who resolves it differs
            connections=2,
            tls=tls_files.client_context(),
            proxy=front_url(front, scheme, auth),
        ) as pool,
    ):
        results = pool.run_many([("GET", "/echo", {})] * 10, concurrency=2)
        assert [echoed(r)["path"] for r, _ in results] == ["/echo"] * 10
        assert front.stats.accepted == 2


# -- healing through the proxy --------------------------------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_warm_pool_heals_after_the_proxy_restarts(
    flavour: Flavour, granian_tls: Server, tls_files: TLSFiles
) -> None:
    port = free_port()
    with (
        pproxy(auth=False, port=port) as first,
        PoolDriver(
            flavour,
            granian_tls.url,
            connections=2,
            tls=tls_files.client_context(),
            proxy=first.url(),
            reconnect=FAST_HEAL,
            connect_timeout=2.0,
        ) as pool,
    ):
        assert echoed(pool.get("/echo"))["path"] == "/echo"
        first.stop()  # every tunnel dies with it; reconnects are refused
        assert pool.wait_for(lambda: pool.stats().reconnect_failures > 0, timeout=10)
        with pproxy(auth=False, port=port):
            # Back on the same port: both slots heal through it, no request needed.
            assert pool.wait_for(lambda: pool.available == 2, timeout=10)
            results = pool.run_many([("GET", "/echo", {})] * 6, concurrency=2)
            assert [echoed(r)["path"] for r, _ in results] == ["/echo"] * 6
        assert pool.stats().reconnects >= 2


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_slot_heals_when_its_tunnel_is_cut(
    flavour: Flavour, tiny: ProxyServer, granian_tls: Server, tls_files: TLSFiles
) -> None:
    with (
        counted(tiny) as front,
        PoolDriver(
            flavour,
            granian_tls.url,
            connections=2,
            tls=tls_files.client_context(),
            proxy=front_url(front, auth=AUTH),
            reconnect=FAST_HEAL,
        ) as pool,
    ):
        assert front.reset_all() == 2  # the proxy's connections die mid-tunnel
        assert pool.wait_for(lambda: front.stats.accepted == 4 and pool.available == 2)
        assert echoed(pool.get("/echo"))["path"] == "/echo"


# -- errors: status, and no secret anywhere --------------------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_wrong_credentials(
    flavour: Flavour,
    pp_auth: ProxyServer,
    granian_tls: Server,
    tls_files: TLSFiles,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = pp_auth.url(auth=(USER, BAD_PASSWORD))
    # connect() reports "0 of 1 connections opened" as a ConnectError, the
    # proxy's ProxyError (with its status) chained as the cause.
    with pytest.raises(ConnectError) as info:
        PoolDriver(
            flavour, granian_tls.url, connections=1, tls=tls_files.client_context(), proxy=bad
        )
    proxy_errors = [e for e in error_chain(info.value) if isinstance(e, ProxyError)]
    assert proxy_errors and proxy_errors[0].status == 407
    assert "407" in str(info.value)
    for exc in error_chain(info.value):
        no_secret(str(exc), repr(exc), getattr(exc, "__dict__", {}))
    # In the background too: the heal loop's log lines carry no secret.
    caplog.set_level(logging.DEBUG, logger="warmline")
    with PoolDriver(
        flavour,
        granian_tls.url,
        connections=1,
        tls=tls_files.client_context(),
        proxy=bad,
        require=0,
        reconnect=FAST_HEAL,
    ) as pool:
        assert pool.wait_for(lambda: pool.stats().reconnect_failures >= 2)
        no_secret(repr(pool.pool), pool.pool._config, pool.stats())
    assert "refused the tunnel: 407" in caplog.text  # the log says what the proxy said
    no_secret(caplog.text)


@pytest.mark.parametrize("flavour", ["aio", "sync"])
def test_client_request_through_a_refusing_proxy_is_a_proxy_error(
    flavour: str, pp_auth: ProxyServer, granian_tls: Server, tls_files: TLSFiles
) -> None:
    bad = pp_auth.url(auth=(USER, BAD_PASSWORD))
    with ClientDriver(flavour, tls=tls_files.client_context(), proxy=bad) as client:
        with pytest.raises(ProxyError) as info:
            client.get(granian_tls.url + "/echo")
        assert info.value.status == 407
        assert info.value.proxy == f"http://***@127.0.0.1:{pp_auth.port}"
        for exc in error_chain(info.value):
            no_secret(str(exc), repr(exc))
        no_secret(repr(client.client))


def test_bad_proxy_arguments() -> None:
    with pytest.raises(ValueError) as info:
        warmline.Client(proxy=f"ftp://{USER}:{PASSWORD}@127.0.0.1:1")
    no_secret(str(info.value))
    with pytest.raises(TypeError):
        warmline.Client(proxy=3128)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        warmline.Client(trust_env="yes")  # type: ignore[arg-type]


# -- the clients ------------------------------------------------------------------------


class ClientDriver:
    """An AsyncClient (on its own loop, in a thread) or a Client, called alike."""

    def __init__(self, flavour: str, **options: Any) -> None:
        self.flavour = flavour
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        if flavour == "sync":
            self.client: Any = warmline.Client(**options)
            self.client.start()
        else:
            self.client = self.run(self._make(options))

    async def _make(self, options: dict[str, Any]) -> warmline.AsyncClient:
        client = warmline.AsyncClient(**options)
        await client.start()
        return client

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(20)

    def get(self, url: str) -> Any:
        if self.flavour == "sync":
            return self.client.get(url)

        async def call() -> Any:
            return await self.client.get(url)

        return self.run(call())

    def __enter__(self) -> ClientDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.flavour == "sync":
                self.client.close()
            else:
                self.run(self.client.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()


@pytest.mark.parametrize("flavour", ["aio", "sync"])
def test_clients_through_connect_and_absolute_form(
    flavour: str, pp_auth: ProxyServer, granian: Server, granian_tls: Server, tls_files: TLSFiles
) -> None:
    with (
        counted(pp_auth) as front,
        ClientDriver(
            flavour,
            tls=tls_files.client_context(),
            proxy=Proxy(front_url(front, auth=AUTH), headers={"X-Proxy-Tag": "t1"}),
            warm={granian_tls.url: 2},
        ) as client,
    ):
        assert front.stats.accepted == 2  # the warm origin's tunnels, at start
        for _ in range(4):
            assert echoed(client.get(granian_tls.url + "/echo"))["path"] == "/echo"
            assert echoed(client.get(granian.url + "/echo"))["path"] == "/echo"
        # Two tunnels for https, one forward connection for http.
        assert front.stats.accepted == 3


@pytest.mark.parametrize("flavour", ["aio", "sync"])
def test_clients_through_socks5h(
    flavour: str, micro: ProxyServer, granian_tls: Server, tls_files: TLSFiles
) -> None:
    with (
        counted(micro) as front,
        ClientDriver(
            flavour, tls=tls_files.client_context(), proxy=front_url(front, "socks5h", AUTH)
        ) as client,
    ):
        url = f"https://localhost:{granian_tls.port}/echo"
        assert [echoed(client.get(url))["path"] for _ in range(3)] == ["/echo"] * 3
        assert front.stats.accepted == 1


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_unix_socket_origin_ignores_the_proxy(flavour: Flavour, granian_uds: Server) -> None:
    assert granian_uds.uds is not None
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    with PoolDriver(
        flavour, "http://exchange.local", uds=granian_uds.uds, connections=1, proxy=dead_proxy
    ) as pool:
        assert echoed(pool.get("/echo"))["path"] == "/echo"


# -- trust_env ------------------------------------------------------------------------


def _clear_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_pool_trust_env(
    flavour: Flavour,
    monkeypatch: pytest.MonkeyPatch,
    tiny: ProxyServer,
    granian_tls: Server,
    tls_files: TLSFiles,
) -> None:
    _clear_proxy_env(monkeypatch)
    with counted(tiny) as front:
        monkeypatch.setenv("HTTPS_PROXY", front_url(front, auth=AUTH))
        monkeypatch.setenv("NO_PROXY", "example.com,.internal")
        options: dict[str, Any] = {"connections": 1, "tls": tls_files.client_context()}
        with PoolDriver(flavour, granian_tls.url, trust_env=True, **options) as pool:
            assert echoed(pool.get("/echo"))["path"] == "/echo"
        assert front.stats.accepted == 1
        with PoolDriver(flavour, granian_tls.url, **options) as pool:  # trust_env off
            assert echoed(pool.get("/echo"))["path"] == "/echo"
        monkeypatch.setenv("NO_PROXY", f"localhost,127.0.0.1:{granian_tls.port}")
        with PoolDriver(flavour, granian_tls.url, trust_env=True, **options) as pool:
            assert echoed(pool.get("/echo"))["path"] == "/echo"
        assert front.stats.accepted == 1  # neither went through the proxy


@pytest.mark.parametrize("flavour", ["aio", "sync"])
def test_client_trust_env_chooses_per_origin(
    flavour: str,
    monkeypatch: pytest.MonkeyPatch,
    tiny: ProxyServer,
    granian: Server,
    granian_tls: Server,
    tls_files: TLSFiles,
) -> None:
    _clear_proxy_env(monkeypatch)
    with counted(tiny) as front:
        monkeypatch.setenv("https_proxy", front_url(front, auth=AUTH))
        monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:1")  # lower case wins
        monkeypatch.setenv("no_proxy", f"127.0.0.1:{granian.port}")
        monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:1")  # http: bypassed by no_proxy
        with ClientDriver(flavour, tls=tls_files.client_context(), trust_env=True) as client:
            # Read once: later changes do not move this client's origins.
            monkeypatch.setenv("https_proxy", "http://127.0.0.1:1")
            assert echoed(client.get(granian_tls.url + "/echo"))["path"] == "/echo"
            assert echoed(client.get(granian.url + "/echo"))["path"] == "/echo"
        assert front.stats.accepted == 1


def test_trust_env_with_a_bad_variable_fails_at_construction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clear_proxy_env(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", f"gopher://{USER}:{PASSWORD}@127.0.0.1:1")
    with pytest.raises(ValueError, match=r"\$HTTPS_PROXY") as info:
        warmline.Client(trust_env=True)
    no_secret(str(info.value))
    warmline.Client(trust_env=False).close()  # not read at all
