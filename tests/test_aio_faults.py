"""ClientPool against scripted raw-socket servers: real faults, no mocks."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

import warmline
from warmline import Backoff, ClientPool

from .conftest import fd_count
from .rawserver import OK_SMALL, Handler, RawServer, keepalive_handler, read_request, reset

pytestmark = pytest.mark.asyncio

FAST = Backoff(initial=0.02, maximum=0.1, jitter=0.1)


def respond(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def eventually(cond: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def one_then_close_on_next(srv_counts: dict[str, int]) -> Handler:
    """Answers the first request of each connection, then closes on the second
    without answering: the keep-alive race where the server closed an idle
    connection just as the client reused it."""

    def handler(conn: socket.socket, index: int) -> None:
        for answer in (True, False):
            req = read_request(conn)
            if req is None:
                break
            method = req.split(b" ")[0].decode()
            srv_counts[method] = srv_counts.get(method, 0) + 1
            if answer:
                conn.sendall(OK_SMALL)
        conn.close()

    return handler


async def test_stale_connection_idempotent_retried_post_not() -> None:
    counts: dict[str, int] = {}
    with RawServer(one_then_close_on_next(counts)) as srv:
        async with await ClientPool.connect(srv.url, connections=1, reconnect=FAST) as pool:
            async with pool.acquire(timeout=2) as slot:
                assert (await slot.get("/a")).content == b"ok"
                # Same lease: the server closes instead of answering this one.
                r = await slot.get("/b")
                assert r.content == b"ok"
            assert pool.stats().stale_retries == 1
            async with pool.acquire(timeout=2) as slot:
                # This connection already answered its one request (/b).
                with pytest.raises(warmline.ConnectionClosed) as info:
                    await slot.post("/c", json={})
                assert not info.value.received_any
                assert info.value.method == "POST"
                assert info.value.path == "/c"
    # GET /b was sent twice (once on the stale connection), the POST once.
    assert counts["GET"] == 3
    assert counts["POST"] == 1


async def test_retry_stale_can_be_turned_off() -> None:
    counts: dict[str, int] = {}
    with RawServer(one_then_close_on_next(counts)) as srv:
        async with (
            await ClientPool.connect(
                srv.url, connections=1, retry_stale=False, reconnect=FAST
            ) as pool,
            pool.acquire(timeout=2) as slot,
        ):
            await slot.get("/a")
            with pytest.raises(warmline.ConnectionClosed):
                await slot.get("/b")


async def test_idle_close_by_server_is_healed_in_background() -> None:
    def handler(conn: socket.socket, index: int) -> None:
        if read_request(conn) is not None:
            conn.sendall(OK_SMALL)
        time.sleep(0.05)
        conn.close()  # idle close after one response

    with RawServer(handler) as srv:
        async with await ClientPool.connect(srv.url, connections=2, reconnect=FAST) as pool:
            for _ in range(10):
                r = await pool.get("/x")
                assert r.content == b"ok"
                await asyncio.sleep(0.08)
            assert pool.stats().errors == {}
            await eventually(lambda: pool.available == 2)
            assert pool.stats().reconnects >= 10


async def test_reset_mid_body_then_healed() -> None:
    def handler(conn: socket.socket, index: int) -> None:
        if index > 0:
            keepalive_handler()(conn, index)
        elif read_request(conn) is not None:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
            time.sleep(0.05)
            reset(conn)

    with RawServer(handler) as srv:
        async with await ClientPool.connect(srv.url, connections=1, reconnect=FAST) as pool:
            with pytest.raises(warmline.ConnectionClosed) as info:
                await pool.get("/x")
            assert info.value.received_any
            r = await pool.get("/y")
            assert r.content == b"ok"
            assert pool.stats().errors == {"ConnectionClosed": 1}


async def test_server_stop_and_restart_on_same_port() -> None:
    srv = RawServer(keepalive_handler())
    port = srv.port
    backoff = Backoff(initial=0.05, maximum=0.2, jitter=0.1)
    pool = await ClientPool.connect(srv.url, connections=3, reconnect=backoff)
    try:
        assert (await pool.get("/a")).content == b"ok"
        srv.stop()
        await eventually(lambda: pool.stats().reconnect_failures >= 3)
        assert pool.try_acquire() is None
        with pytest.raises(warmline.PoolTimeout):
            await pool.acquire(timeout=0.1)
        srv = RawServer(keepalive_handler(), port=port)
        # Back to full size within the backoff bound (plus connect time).
        await eventually(lambda: pool.available == 3, timeout=backoff.bound() * 1.2 + 1.0)
        assert (await pool.get("/b")).content == b"ok"
    finally:
        await pool.close()
        srv.stop()


async def test_cancelled_request_never_leaks_its_late_response() -> None:
    def handler(conn: socket.socket, index: int) -> None:
        while (req := read_request(conn)) is not None:
            if b"/slow" in req:
                time.sleep(0.2)
                conn.sendall(respond(b"slow"))
            else:
                conn.sendall(respond(b"fast"))

    with RawServer(handler) as srv:
        async with await ClientPool.connect(srv.url, connections=1, reconnect=FAST) as pool:
            task = asyncio.ensure_future(pool.get("/slow"))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            for _ in range(3):
                r = await pool.get("/fast")
                assert r.content == b"fast"
            await asyncio.sleep(0.3)  # the late "slow" response would be here by now
            assert (await pool.get("/fast")).content == b"fast"
            assert srv.connections == 2


async def test_timeout_closes_the_connection() -> None:
    def handler(conn: socket.socket, index: int) -> None:
        while (req := read_request(conn)) is not None:
            if b"/never" in req:
                time.sleep(0.3)
                conn.sendall(respond(b"late"))
            else:
                conn.sendall(respond(b"fast"))

    with RawServer(handler) as srv:
        async with await ClientPool.connect(srv.url, connections=1, reconnect=FAST) as pool:
            with pytest.raises(warmline.ReadTimeout):
                await pool.get("/never", timeout=0.05)
            assert (await pool.get("/x")).content == b"fast"
            await asyncio.sleep(0.35)
            assert (await pool.get("/x")).content == b"fast"


async def test_drip_is_cut_by_the_request_deadline() -> None:
    def handler(conn: socket.socket, index: int) -> None:
        if read_request(conn) is None:
            return
        for b in b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100:
            conn.sendall(bytes([b]))
            time.sleep(0.02)

    with RawServer(handler) as srv:
        async with await ClientPool.connect(srv.url, connections=1, reconnect=FAST) as pool:
            t0 = time.monotonic()
            with pytest.raises(warmline.ReadTimeout):
                await pool.get("/drip", timeout=0.3)
            # The whole-request deadline, not reset by each byte (generous bound).
            assert time.monotonic() - t0 < 2.0


async def test_garbage_is_protocol_error_and_slot_replaced() -> None:
    def handler(conn: socket.socket, index: int) -> None:
        if index == 0:
            if read_request(conn) is not None:
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
            time.sleep(0.2)
            return
        keepalive_handler()(conn, index)

    with RawServer(handler) as srv:
        async with await ClientPool.connect(srv.url, connections=1, reconnect=FAST) as pool:
            with pytest.raises(warmline.ProtocolError):
                await pool.get("/x")
            assert (await pool.get("/y")).content == b"ok"
            assert srv.connections == 2


async def test_piggybacked_second_response_is_never_delivered() -> None:
    def handler(conn: socket.socket, index: int) -> None:
        if index == 0:
            if read_request(conn) is not None:
                conn.sendall(respond(b"one") + respond(b"evil"))
            time.sleep(0.2)
            return
        keepalive_handler(respond(b"good"))(conn, index)

    with RawServer(handler) as srv:
        async with await ClientPool.connect(srv.url, connections=1, reconnect=FAST) as pool:
            assert (await pool.get("/1")).content == b"one"
            assert (await pool.get("/2")).content == b"good"
            assert srv.connections == 2


async def test_connection_close_header_is_honoured() -> None:
    def handler(conn: socket.socket, index: int) -> None:
        if read_request(conn) is not None:
            conn.sendall(respond(b"bye", b"Connection: close\r\n"))
        time.sleep(0.1)

    with RawServer(handler) as srv:
        async with await ClientPool.connect(srv.url, connections=1, reconnect=FAST) as pool:
            for _ in range(3):
                assert (await pool.get("/x")).content == b"bye"
            assert srv.connections >= 3


async def test_no_leaks_after_many_requests_with_faults() -> None:
    served = {"n": 0}
    lock = threading.Lock()

    def handler(conn: socket.socket, index: int) -> None:
        while read_request(conn) is not None:
            with lock:
                served["n"] += 1
                n = served["n"]
            if n % 997 == 0:
                reset(conn)
                return
            if n % 1499 == 0:
                conn.sendall(b"garbage\r\n\r\n")
                return
            conn.sendall(respond(b"x" * (n % 50)))

    base_fds = fd_count()
    with RawServer(handler) as srv:
        pool = await ClientPool.connect(srv.url, connections=8, reconnect=FAST)
        ok = errors = 0

        async def worker(count: int) -> None:
            nonlocal ok, errors
            for _ in range(count):
                try:
                    r = await pool.get("/", timeout=5)
                    assert r.status == 200
                    ok += 1
                except warmline.WarmlineError:
                    errors += 1

        await asyncio.gather(*(worker(20_000 // 16) for _ in range(16)))
        assert ok + errors == 20_000
        assert errors > 0  # the faults did happen
        await eventually(lambda: pool.available == 8)
        await pool.close()
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert pending == []
    await eventually(lambda: fd_count() <= base_fds, timeout=5)
