"""ClientPool against real servers: granian always, nginx when installed."""

from __future__ import annotations

import asyncio
import gc
import json
import ssl

import pytest

import warmline
from warmline import ClientPool, PoolClosed, PoolError, PoolTimeout
from warmline._server.app import LARGE, SMALL
from warmline._server.launch import Server

from .conftest import TLSFiles

pytestmark = pytest.mark.asyncio


def echo(r: warmline.Response) -> dict[str, object]:
    assert r.status == 200, r.content[:200]
    data: dict[str, object] = json.loads(r.content)
    return data


def header(data: dict[str, object], name: str) -> str | None:
    for k, v in data["headers"]:  # type: ignore[attr-defined]
        if k == name:
            return str(v)
    return None


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_methods_reach_the_server(granian: Server, method: str) -> None:
    async with await ClientPool.connect(granian.url, connections=2) as pool:
        r = await pool.request(method, "/echo", params={"q": "a b&c", "n": 3})
        data = echo(r)
        assert data["method"] == method
        assert data["query"] == "q=a%20b%26c&n=3"


async def test_head_has_no_body(granian: Server) -> None:
    async with await ClientPool.connect(granian.url, connections=1) as pool:
        r = await pool.head("/small")
        assert r.status == 200
        assert r.content == b""
        assert r.headers["content-length"] == str(len(SMALL))
        # the connection is still usable after a bodiless response
        assert (await pool.get("/small")).content == SMALL


async def test_json_body_and_default_headers_and_base_path(granian: Server) -> None:
    async with await ClientPool.connect(
        granian.url, base_path="/echo", headers={"X-API-KEY": "k123"}, connections=2
    ) as pool:
        order = {"symbol": "BTCUSDT", "side": "BUY", "qty": "0.01"}
        r = await pool.post("/order", json=order, headers={"X-Req": "7"})
        data = echo(r)
        assert data["path"] == "/echo/order"
        assert json.loads(str(data["body"])) == order
        assert header(data, "x-api-key") == "k123"
        assert header(data, "x-req") == "7"
        assert header(data, "content-type") == "application/json"
        assert r.json()["method"] == "POST"


async def test_chunked_and_large_bodies(granian: Server) -> None:
    async with await ClientPool.connect(granian.url, connections=1) as pool:
        r = await pool.get("/chunked")
        assert r.headers.get("transfer-encoding") == "chunked"
        assert r.content == b"".join(b"chunk-%d;" % i * 50 for i in range(20))
        assert (await pool.get("/large")).content == LARGE
        big = await pool.get(f"/bytes/{8 * 1024 * 1024}")
        assert len(big.content) == 8 * 1024 * 1024
        assert big.content[:256] == LARGE[:256]
        assert (await pool.get("/small")).content == SMALL


async def test_many_tasks_share_a_pool_of_four(granian: Server) -> None:
    async with await ClientPool.connect(granian.url, connections=4) as pool:

        async def one(i: int) -> None:
            async with pool.acquire(timeout=10) as slot:
                data = echo(await slot.get("/echo", params={"id": i}))
                assert data["query"] == f"id={i}"

        await asyncio.gather(*(one(i) for i in range(200)))
        assert pool.available == 4
        stats = pool.stats()
        assert stats.requests == 200
        assert stats.acquire_waits > 0
        assert stats.in_use == 0


async def test_tls_with_trusted_ca(granian_tls: Server, tls_files: TLSFiles) -> None:
    ctx = tls_files.client_context()
    async with await ClientPool.connect(granian_tls.url, tls=ctx, connections=2) as pool:
        assert (await pool.get("/small")).content == SMALL


async def test_tls_untrusted_is_refused(granian_tls: Server) -> None:
    with pytest.raises(warmline.ConnectError, match="certificate verif"):
        await ClientPool.connect(granian_tls.url, connections=1)


async def test_tls_false_with_https_is_an_error(granian_tls: Server) -> None:
    with pytest.raises(warmline.InvalidRequest):
        await ClientPool.connect(granian_tls.url, tls=False)


async def test_unix_socket(granian_uds: Server) -> None:
    assert granian_uds.uds is not None
    async with await ClientPool.connect(f"unix://{granian_uds.uds}", connections=2) as pool:
        assert (await pool.get("/small")).content == SMALL
    async with await ClientPool.connect(
        "http://exchange.local", uds=granian_uds.uds, connections=1
    ) as pool:
        assert header(echo(await pool.get("/echo")), "host") == "exchange.local"


async def test_nginx_tier(nginx: Server) -> None:
    async with await ClientPool.connect(
        nginx.url, base_path="/", headers={"X-API-KEY": "key9"}, connections=4
    ) as pool:
        assert (await pool.get("/small")).content == SMALL
        assert (await pool.get("/large")).content == LARGE
        r = await pool.get("/echo", params={"a": "1"})
        method_uri, key, _ua = r.text.split("|")
        assert method_uri == "GET /echo?a=1"
        assert key == "key9"
        r = await pool.post("/echo", json={"x": 1})
        assert r.text.startswith("POST /echo|")
        results = await asyncio.gather(*(pool.get("/small") for _ in range(100)))
        assert all(r.content == SMALL for r in results)
        assert pool.available == 4


# -- pool semantics --------------------------------------------------------


async def test_lifo_order(granian: Server) -> None:
    async with await ClientPool.connect(granian.url, connections=3) as pool:
        a = pool.try_acquire()
        b = pool.try_acquire()
        assert a is not None and b is not None
        conn_a = a._slot.conn  # type: ignore[union-attr]
        a.release()
        c = pool.try_acquire()
        assert c is not None
        assert c._slot.conn is conn_a  # type: ignore[union-attr]  # warmest first
        b.release()
        c.release()


async def test_try_acquire_returns_none_at_exhaustion(granian: Server) -> None:
    async with await ClientPool.connect(granian.url, connections=2) as pool:
        leases = [pool.try_acquire(), pool.try_acquire()]
        assert all(lease is not None for lease in leases)
        assert pool.try_acquire() is None
        assert pool.available == 0
        for lease in leases:
            assert lease is not None
            lease.release()
        assert pool.available == 2


async def test_acquire_waits_and_is_woken_by_release(granian: Server) -> None:
    async with await ClientPool.connect(granian.url, connections=1) as pool:
        held = pool.try_acquire()
        assert held is not None
        waiter = asyncio.ensure_future(pool.acquire(timeout=5))
        await asyncio.sleep(0.01)
        assert not waiter.done()
        held.release()
        got = await asyncio.wait_for(waiter, 1)
        assert (await got.get("/small")).content == SMALL
        got.release()


async def test_acquire_timeout(granian: Server) -> None:
    async with await ClientPool.connect(granian.url, connections=1) as pool:
        held = pool.try_acquire()
        with pytest.raises(PoolTimeout):
            await pool.acquire(timeout=0.05)
        assert held is not None
        held.release()
        assert pool.available == 1


async def test_waiters_are_fifo(granian: Server) -> None:
    async with await ClientPool.connect(granian.url, connections=1) as pool:
        held = pool.try_acquire()
        assert held is not None
        order: list[int] = []

        async def wait(i: int) -> None:
            async with pool.acquire(timeout=5):
                order.append(i)

        tasks = [asyncio.ensure_future(wait(i)) for i in range(5)]
        await asyncio.sleep(0.01)
        held.release()
        await asyncio.gather(*tasks)
        assert order == [0, 1, 2, 3, 4]


async def test_close_wakes_waiters_with_pool_closed(granian: Server) -> None:
    pool = await ClientPool.connect(granian.url, connections=1)
    held = pool.try_acquire()
    waiter = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0.01)
    await pool.close()
    with pytest.raises(PoolClosed):
        await waiter
    with pytest.raises(PoolClosed):
        await pool.acquire()
    with pytest.raises(PoolClosed):  # not None, which would read as "busy"
        pool.try_acquire()
    assert held is not None
    held.release()  # after close: just closes its connection
    assert pool.stats().in_use == 0


async def test_released_lease_cannot_be_used(granian: Server) -> None:
    async with await ClientPool.connect(granian.url, connections=1) as pool:
        lease = pool.try_acquire()
        assert lease is not None
        lease.release()
        lease.release()  # idempotent
        with pytest.raises(PoolError):
            await lease.get("/small")
        assert pool.available == 1


async def test_forgotten_lease_returns_when_collected(granian: Server) -> None:
    async with await ClientPool.connect(granian.url, connections=1) as pool:
        assert (await pool.try_acquire().get("/small")).status == 200  # type: ignore[union-attr]
        assert pool.available == 1


async def test_cancelled_waiter_does_not_lose_a_slot(granian: Server) -> None:
    async with await ClientPool.connect(granian.url, connections=1) as pool:
        held = pool.try_acquire()
        assert held is not None
        waiter = asyncio.ensure_future(pool.acquire(timeout=5))
        await asyncio.sleep(0.01)
        held.release()  # hands the slot to the waiter...
        waiter.cancel()  # ...which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert pool.available == 1


async def test_require_allows_partial_connect() -> None:
    with pytest.raises(warmline.ConnectError):
        await ClientPool.connect("http://127.0.0.1:1", connections=2, connect_timeout=1)
    pool = await ClientPool.connect(
        "http://127.0.0.1:1", connections=2, require=0, reconnect=warmline.Backoff(0.05, 0.1)
    )
    async with pool:
        assert pool.available == 0
        assert pool.try_acquire() is None
        with pytest.raises(PoolTimeout):
            await pool.acquire(timeout=0.2)
        assert pool.stats().reconnect_failures > 0


async def test_bad_urls() -> None:
    for url in ("ftp://x", "http://h/path", "http://", "http://u:p@h", "http://h:0"):
        with pytest.raises(warmline.InvalidRequest):
            await ClientPool.connect(url)


async def test_default_context_is_verified() -> None:
    from warmline._policy import Origin
    from warmline._tls import client_context

    ctx = client_context(Origin.parse("https://example.invalid"), None)
    assert ctx is not None
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname


async def test_idle_slots_are_reconnected_before_reuse(granian: Server) -> None:
    async with await ClientPool.connect(granian.url, connections=2, idle_timeout=0.1) as pool:
        first = pool.try_acquire()
        assert first is not None
        old_conn = first._slot.conn  # type: ignore[union-attr]
        first.release()
        await asyncio.sleep(0.35)  # past idle_timeout: the sweeper recycles both
        assert pool.stats().reconnects >= 2
        async with pool.acquire(timeout=5) as lease:
            assert lease._slot.conn is not old_conn  # type: ignore[union-attr]
            assert (await lease.get("/small")).content == SMALL


async def test_lower_case_head_has_no_body(granian: Server) -> None:
    async with await ClientPool.connect(granian.url, connections=1) as pool:
        r = await pool.request("head", "/small", timeout=5)
        assert r.status == 200
        assert r.content == b""
        assert (await pool.get("/small")).content == SMALL


async def test_a_dropped_lease_is_not_released_while_its_request_runs(granian: Server) -> None:
    async with await ClientPool.connect(granian.url, connections=1) as pool:
        lease = pool.try_acquire()
        assert lease is not None
        pending = lease.get("/small")
        del lease  # only the coroutine refers to the lease now
        gc.collect()
        assert pool.available == 0  # still leased: the request has not run yet
        assert (await pending).content == SMALL
        gc.collect()
        assert pool.available == 1
