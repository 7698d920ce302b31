"""AtomicClientPool against real servers: granian always, nginx when installed.

Fixtures are module-scoped and local to this file (named ``sync_*``), so they
neither clash with nor depend on shared ones.
"""

from __future__ import annotations

import gc
import json
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from warmline import (
    AtomicClientPool,
    AtomicClientSlot,
    ConnectError,
    InvalidRequest,
    PoolClosed,
    PoolError,
    PoolTimeout,
)
from warmline._server.app import LARGE, SMALL
from warmline._server.launch import Server, free_port, nginx_path, start_granian, start_nginx
from warmline.sync import Connection

# -- fixtures ----------------------------------------------------------------


@pytest.fixture(scope="module")
def sync_granian() -> Iterator[Server]:
    with start_granian() as server:
        yield server


@pytest.fixture(scope="module")
def sync_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, ssl.SSLContext]]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    d = tmp_path_factory.mktemp("sync-tls")
    certfile, keyfile = d / "cert.pem", d / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(certfile), append=True)
    cert.private_key_pem.write_to_path(str(keyfile))
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    with start_granian(certfile=str(certfile), keyfile=str(keyfile)) as server:
        yield server, ctx


@pytest.fixture(scope="module")
def sync_uds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = str(tmp_path_factory.mktemp("sync-uds") / "granian.sock")
    with start_granian(uds=path):
        yield path


@pytest.fixture(scope="module")
def sync_nginx() -> Iterator[Server]:
    if nginx_path() is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light); nginx tier skipped")
    with start_nginx() as server:
        yield server


@pytest.fixture
def pool(sync_granian: Server) -> Iterator[AtomicClientPool]:
    with AtomicClientPool.connect(sync_granian.url, connections=4, connect_timeout=5) as p:
        yield p


def echo_headers(reply: dict[str, Any]) -> dict[str, str]:
    return {k.lower(): v for k, v in reply["headers"]}


# -- requests ------------------------------------------------------------------


def test_get_small(pool: AtomicClientPool) -> None:
    r = pool.get("/small")
    assert r.status == 200
    assert r.http_version == "1.1"
    assert r.content == SMALL
    assert r.json()["symbol"] == "BTCUSDT"
    assert r.headers["content-type"] == "application/json"


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_methods_reach_the_server(pool: AtomicClientPool, method: str) -> None:
    body = {"method": method, "n": 1}
    with pool.acquire(timeout=5) as slot:
        verb = getattr(slot, method.lower())
        r = verb("/echo", json=body) if method in {"POST", "PUT", "PATCH"} else verb("/echo")
    assert r.status == 200
    reply = r.json()
    assert reply["method"] == method
    assert reply["path"] == "/echo"
    if method in {"POST", "PUT", "PATCH"}:
        assert json.loads(reply["body"]) == body
        assert echo_headers(reply)["content-type"] == "application/json"
    else:
        assert reply["body"] == ""


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "get"])
def test_pool_level_verbs(pool: AtomicClientPool, method: str) -> None:
    r = getattr(pool, method)("/echo", content=b"raw-body", headers={"X-Test": "1"})
    reply = r.json()
    assert reply["method"] == method.upper()
    assert reply["body"] == "raw-body"
    assert echo_headers(reply)["x-test"] == "1"


def test_request_with_lower_case_method(pool: AtomicClientPool) -> None:
    # The reader must know it is a HEAD whatever the caller's spelling.
    r = pool.request("head", "/large")
    assert (r.status, r.content) == (200, b"")
    assert pool.request("get", "/small").content == SMALL


def test_head_has_no_body_and_keeps_framing(pool: AtomicClientPool) -> None:
    with pool.acquire(timeout=5) as slot:
        r = slot.head("/large")
        assert r.status == 200
        assert r.content == b""
        assert r.headers["content-length"] == str(len(LARGE))
        # The same connection still parses the next response correctly.
        assert slot.get("/small").content == SMALL
    assert pool.stats().reconnects == 0


def test_params_are_encoded(pool: AtomicClientPool) -> None:
    r = pool.get("/echo", params={"symbol": "BTC USDT", "limit": 5, "flag": True})
    assert r.json()["query"] == "symbol=BTC%20USDT&limit=5&flag=true"


def test_default_headers_and_base_path_reach_the_server(sync_granian: Server) -> None:
    with AtomicClientPool.connect(
        sync_granian.url,
        base_path="/echo",
        headers={"X-API-KEY": "secret-key"},
        user_agent="sync-test/1.0",
        connections=1,
    ) as pool:
        reply = pool.get("/orders", params={"id": "7"}).json()
    assert reply["path"] == "/echo/orders"
    assert reply["query"] == "id=7"
    headers = echo_headers(reply)
    assert headers["x-api-key"] == "secret-key"
    assert headers["user-agent"] == "sync-test/1.0"
    assert headers["host"] == f"127.0.0.1:{sync_granian.port}"


def test_chunked_body(pool: AtomicClientPool) -> None:
    r = pool.get("/chunked")
    assert r.status == 200
    assert r.content == b"".join(b"chunk-%d;" % i * 50 for i in range(20))
    assert pool.get("/small").content == SMALL  # framing intact afterwards


def test_large_bodies(pool: AtomicClientPool) -> None:
    assert pool.get("/large").content == LARGE
    n = 8 * 1024 * 1024
    r = pool.get(f"/bytes/{n}", timeout=20)
    assert len(r.content) == n
    assert r.content == LARGE * (n // len(LARGE))
    assert pool.get("/small").content == SMALL


def test_large_request_body(pool: AtomicClientPool) -> None:
    body = bytes(range(256)) * 4096  # 1 MiB
    reply = pool.post("/echo", content=body, timeout=20).json()
    assert reply["body"].encode("latin-1") == body


def test_status_codes_keep_the_connection(pool: AtomicClientPool) -> None:
    for status in (204, 404, 500):
        assert pool.get(f"/status/{status}").status == status
    assert pool.stats().reconnects == 0
    assert pool.stats().errors == {}


def test_https_with_trustme(sync_tls: tuple[Server, ssl.SSLContext]) -> None:
    server, ctx = sync_tls
    with AtomicClientPool.connect(server.url, tls=ctx, connections=2) as pool:
        assert pool.get("/small").content == SMALL
        assert pool.get("/large").content == LARGE
        reply = pool.post("/echo", json={"x": 1}).json()
        assert json.loads(reply["body"]) == {"x": 1}
        with pool.acquire(timeout=5) as slot:
            sock = slot._slot.conn._sock  # type: ignore[union-attr]
            assert isinstance(sock, ssl.SSLSocket)


def test_tls_session_tickets_are_not_taken_for_a_close(
    sync_tls: tuple[Server, ssl.SSLContext],
) -> None:
    # With the staleness check on every acquire, an idle TLS 1.3 connection
    # has unread session tickets: readable, but alive. It must be reused.
    server, ctx = sync_tls
    with AtomicClientPool.connect(server.url, tls=ctx, connections=1) as pool:
        for _ in range(5):
            time.sleep(0.01)
            assert pool.get("/small").content == SMALL
        assert pool.stats().reconnects == 0


def test_https_unknown_ca_is_refused(sync_tls: tuple[Server, ssl.SSLContext]) -> None:
    server, _ = sync_tls
    with pytest.raises(ConnectError, match="certificate verification failed"):
        AtomicClientPool.connect(server.url, connections=1)


def test_unix_socket(sync_uds: str) -> None:
    with AtomicClientPool.connect(f"unix://{sync_uds}", connections=2) as pool:
        assert pool.get("/small").content == SMALL
        reply = pool.get("/echo").json()
        assert echo_headers(reply)["host"] == "localhost"
    with AtomicClientPool.connect("http://api.local", uds=sync_uds, connections=1) as pool:
        assert echo_headers(pool.get("/echo").json())["host"] == "api.local"


# -- acquire / release -----------------------------------------------------------


def test_acquire_returns_a_lease_directly(pool: AtomicClientPool) -> None:
    lease = pool.acquire(timeout=1)
    assert isinstance(lease, AtomicClientSlot)
    assert pool.available == 3
    assert lease.get("/small").status == 200
    lease.release()
    lease.release()  # idempotent
    assert pool.available == 4
    with pytest.raises(PoolError, match="released"):
        lease.get("/small")
    assert "released" in repr(lease)


def test_try_acquire_exhaustion_and_timeout(pool: AtomicClientPool) -> None:
    leases = [pool.try_acquire() for _ in range(4)]
    assert all(lease is not None for lease in leases)
    assert pool.try_acquire() is None
    assert pool.available == 0
    with pytest.raises(PoolTimeout):
        pool.acquire(timeout=0.05)
    with pytest.raises(PoolTimeout):
        pool.get("/small", acquire_timeout=0.05)
    stats = pool.stats()
    assert (stats.in_use, stats.ready, stats.acquire_waits) == (4, 0, 2)
    for lease in leases:
        assert lease is not None
        lease.release()
    assert pool.available == 4
    assert pool.stats().in_use == 0


def test_try_acquire_is_lifo(pool: AtomicClientPool) -> None:
    a = pool.try_acquire()
    assert a is not None
    slot = a._slot
    a.release()
    b = pool.try_acquire()
    assert b is not None
    assert b._slot is slot  # the warmest connection goes out first
    b.release()


def test_lease_collected_without_release_returns_its_slot(pool: AtomicClientPool) -> None:
    lease = pool.try_acquire()
    assert lease is not None and pool.available == 3
    del lease
    gc.collect()
    assert pool.available == 4


def test_waiters_are_served_first_come_first_served(pool: AtomicClientPool) -> None:
    held = [pool.try_acquire() for _ in range(4)]
    order: list[int] = []
    lock = threading.Lock()

    def wait(i: int) -> None:
        with pool.acquire(timeout=10), lock:
            order.append(i)

    threads = []
    for i in range(3):
        t = threading.Thread(target=wait, args=(i,))
        t.start()
        threads.append(t)
        deadline = time.monotonic() + 5
        while len(pool._waiters) < i + 1 and time.monotonic() < deadline:
            time.sleep(0.001)  # make the arrival order certain
        assert len(pool._waiters) == i + 1
    # Each released slot wakes the oldest waiter; the waiter releases at once,
    # which wakes the next, so all three finish on one released slot.
    lease = held.pop()
    assert lease is not None
    lease.release()
    for t in threads:
        t.join(10)
    assert order == [0, 1, 2]
    for lease in held:
        assert lease is not None
        lease.release()
    assert pool.available == 4


def test_close_wakes_waiters_with_pool_closed(sync_granian: Server) -> None:
    pool = AtomicClientPool.connect(sync_granian.url, connections=1)
    held = pool.acquire(timeout=1)
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            pool.acquire(timeout=10)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=wait)
    t.start()
    deadline = time.monotonic() + 5
    while not pool._waiters and time.monotonic() < deadline:
        time.sleep(0.001)
    pool.close()
    t.join(5)
    assert len(errors) == 1 and isinstance(errors[0], PoolClosed)
    assert pool.closed
    # close() closes every connection, a leased one's too (issue 9, item 6):
    # the lease's next request says so, and its release is a no-op.
    with pytest.raises(PoolClosed):
        held.get("/small")
    held.release()
    assert pool.available == 0
    with pytest.raises(PoolClosed):
        pool.acquire(timeout=1)
    with pytest.raises(PoolClosed):  # not None, which would read as "busy"
        pool.try_acquire()
    pool.close()  # idempotent


def test_sixteen_threads_share_four_slots(sync_granian: Server) -> None:
    threads, per_thread = 16, 100
    run = f"t{time.monotonic_ns()}"
    in_use: set[int] = set()
    guard = threading.Lock()
    failures: list[str] = []
    pool = AtomicClientPool.connect(sync_granian.url, connections=4, timeout=10)

    def worker(t: int) -> None:
        for i in range(per_thread):
            ident = f"{run}-{t}-{i}"
            with pool.acquire(timeout=10) as slot:
                key = id(slot._slot)
                with guard:
                    if key in in_use:
                        failures.append(f"slot handed out twice ({ident})")
                    in_use.add(key)
                try:
                    reply = slot.get("/echo", params={"id": ident}, headers={"x-id": ident})
                finally:
                    with guard:
                        in_use.discard(key)
            got = reply.json()
            if got["query"] != f"id={ident}" or echo_headers(got)["x-id"] != ident:
                failures.append(f"{ident} got the response of {got['query']}")

    with pool:
        workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(50)
        assert not any(w.is_alive() for w in workers)
        assert failures == []
        assert pool.available == 4
        stats = pool.stats()
        assert stats.requests == threads * per_thread
        assert (stats.in_use, stats.ready, stats.errors) == (0, 4, {})
        seen = pool.get("/count").json()
    # The server saw every request exactly once: nothing was lost or re-sent.
    mine = {k: v for k, v in seen.items() if k.startswith(run)}
    assert len(mine) == threads * per_thread
    assert set(mine.values()) == {1}


def test_release_from_another_thread(pool: AtomicClientPool) -> None:
    lease = pool.acquire(timeout=1)
    assert lease.get("/small").status == 200
    t = threading.Thread(target=lease.release)
    t.start()
    t.join(5)
    assert pool.available == 4


# -- construction, introspection ---------------------------------------------------


def test_connect_refused_raises_connect_error() -> None:
    port = free_port()
    with pytest.raises(ConnectError, match="0 of 2 connections"):
        AtomicClientPool.connect(f"http://127.0.0.1:{port}", connections=2, connect_timeout=1)


def test_require_zero_opens_and_heals_in_the_background() -> None:
    port = free_port()
    with AtomicClientPool.connect(
        f"http://127.0.0.1:{port}", connections=2, require=0, connect_timeout=1
    ) as pool:
        assert pool.available == 0
        assert pool.try_acquire() is None
        assert pool.stats().reconnecting == 2
        with pytest.raises(PoolTimeout):
            pool.acquire(timeout=0.05)


@pytest.mark.parametrize(
    ("url", "kwargs", "error"),
    [
        ("http://127.0.0.1:1/path", {}, InvalidRequest),
        ("ftp://127.0.0.1", {}, InvalidRequest),
        ("http://127.0.0.1:1", {"connections": 0}, ValueError),
        ("http://127.0.0.1:1", {"connections": 2, "require": 3}, ValueError),
        ("http://127.0.0.1:1", {"headers": {"X-Bad": "a\r\nb"}}, InvalidRequest),
        ("https://127.0.0.1:1", {"tls": False}, InvalidRequest),
    ],
)
def test_bad_options(url: str, kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        AtomicClientPool.connect(url, **kwargs)


def test_invalid_request_leaves_the_slot_usable(pool: AtomicClientPool) -> None:
    with pool.acquire(timeout=1) as slot:
        with pytest.raises(InvalidRequest):
            slot.get("/x", headers={"X-Bad": "a\nb"})
        assert slot.get("/small").status == 200


def test_stats_and_repr(pool: AtomicClientPool) -> None:
    pool.get("/small")
    stats = pool.stats()
    assert (stats.size, stats.ready, stats.requests) == (4, 4, 1)
    assert stats.as_dict()["size"] == 4
    assert pool.size == 4 and not pool.closed
    assert "4 ready" in repr(pool)
    with pool.acquire(timeout=1) as slot:
        assert "AtomicClientSlot" in repr(slot)
        assert "1 in use" in repr(pool)
        assert isinstance(slot._slot.conn, Connection)  # type: ignore[union-attr]
        assert "alive" in repr(slot._slot.conn)  # type: ignore[union-attr]


def test_close_leaks_no_fds_or_threads(sync_granian: Server) -> None:
    def fds() -> int:
        return len(list(Path("/proc/self/fd").iterdir()))

    before_fds, before_threads = fds(), threading.active_count()
    for _ in range(3):
        with AtomicClientPool.connect(sync_granian.url, connections=4) as pool:
            for _ in range(10):
                pool.get("/small")
            with pool.acquire(timeout=1) as slot:
                slot.get("/small")
    assert fds() == before_fds
    assert threading.active_count() == before_threads


# -- nginx tier ----------------------------------------------------------------------


@pytest.mark.nginx
def test_nginx_small_large_and_echo(sync_nginx: Server) -> None:
    with AtomicClientPool.connect(
        sync_nginx.url, connections=2, headers={"X-API-KEY": "k1"}, user_agent="ua/2"
    ) as pool:
        assert pool.get("/small").content == SMALL
        assert pool.get("/large").content == LARGE
        r = pool.get("/echo", params={"a": "b c"})
        assert r.content == b"GET /echo?a=b%20c|k1|ua/2"
        assert pool.head("/large").content == b""
        assert pool.get("/missing").status == 404
        assert pool.stats().reconnects == 0
