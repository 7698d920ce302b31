"""AtomicClientPool against scripted raw-socket servers: every way a server fails.

Each test scripts a tiny threaded server on 127.0.0.1 (``Script``): a handler
runs per accepted connection with its index (0, 1, ...) and writes whatever
bytes the scenario needs. Everything is bounded: socket timeouts, joins,
request counts.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from warmline import (
    AtomicClientPool,
    Backoff,
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    PoolTimeout,
    ProtocolError,
    ReadTimeout,
    ResponseReader,
    WriteTimeout,
)
from warmline._policy import Origin
from warmline.sync import open_connection

from .rawserver import Handler, RawServer, read_request, reset


def response(body: bytes, *extra: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" % len(body)
    return head + b"".join(h + b"\r\n" for h in extra) + b"\r\n" + body


def serve_forever(body: bytes = b"ok") -> Handler:
    """A well-behaved keep-alive server (bounded to 10,000 requests)."""

    def handler(conn: socket.socket, index: int) -> None:
        for _ in range(10_000):
            if read_request(conn) is None:
                return
            conn.sendall(response(body))

    return handler


def fd_count() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


FAST = Backoff(initial=0.01, maximum=0.1, multiplier=2.0, jitter=0.2)


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """Fail the test if it leaves file descriptors or threads behind."""
    fds, threads = fd_count(), threading.active_count()
    yield
    assert wait_for(lambda: threading.active_count() <= threads, 5.0), threading.enumerate()
    assert wait_for(lambda: fd_count() <= fds, 2.0)


# -- stale keep-alive ------------------------------------------------------------


def close_after_each_response(conn: socket.socket, index: int) -> None:
    # Answers one request, then closes the idle connection without saying so
    # (no Connection: close): what a server's keep-alive timeout does.
    if read_request(conn) is not None:
        conn.sendall(response(b"one"))
    time.sleep(0.01)


def close_on_second_request(conn: socket.socket, index: int) -> None:
    # Answers one request, then closes on reading the next without answering:
    # the race where the server's idle close crosses the client's reuse, so
    # no check before sending can see it.
    if read_request(conn) is not None:
        conn.sendall(response(b"one"))
        read_request(conn)


def test_stale_idempotent_requests_are_retried(no_leaks: None) -> None:
    with (
        RawServer(close_on_second_request) as server,
        AtomicClientPool.connect(server.url, connections=2, reconnect=FAST) as pool,
    ):
        for _ in range(10):
            assert pool.get("/x").content == b"one"
            assert pool.delete("/x").content == b"one"
        stats = pool.stats()
        assert stats.errors == {}
        assert stats.stale_retries >= 10
        assert stats.requests == 20


def test_stale_post_is_not_retried(no_leaks: None) -> None:
    with (
        RawServer(close_on_second_request) as server,
        AtomicClientPool.connect(server.url, connections=1, reconnect=FAST) as pool,
    ):
        assert pool.post("/order", json={"q": 1}).content == b"one"
        with pytest.raises(ConnectionClosed) as info:
            pool.post("/order", json={"q": 2}, acquire_timeout=2)
        assert info.value.received_any is False
        assert (info.value.method, info.value.path) == ("POST", "/order")
        assert info.value.origin == server.url
        assert pool.stats().stale_retries == 0
        assert pool.stats().errors == {"ConnectionClosed": 1}
        # The slot was healed: the next POST goes out on a fresh connection.
        assert pool.post("/order", json={"q": 3}, acquire_timeout=2).content == b"one"


def test_long_idle_slot_is_checked_before_reuse(no_leaks: None) -> None:
    # Past the staleness threshold, a non-blocking peek finds the server's
    # close before the request is sent: even a POST then succeeds.
    with (
        RawServer(close_after_each_response) as server,
        AtomicClientPool.connect(server.url, connections=1, reconnect=FAST) as pool,
    ):
        for _ in range(3):
            time.sleep(0.05)
            assert pool.post("/order", content=b"x", acquire_timeout=2).content == b"one"
        assert pool.stats().errors == {}


def test_dead_slot_in_try_acquire_is_healed_and_the_scan_goes_on(no_leaks: None) -> None:
    with (
        RawServer(serve_forever()) as server,
        AtomicClientPool.connect(server.url, connections=2, reconnect=FAST) as pool,
    ):
        a, b = pool.try_acquire(), pool.try_acquire()
        assert a is not None and b is not None
        slot_a, slot_b = a._slot, b._slot
        a.release()
        b.release()  # b is on top of the stack...
        assert slot_b is not None and slot_b.conn is not None
        slot_b.conn.close()  # ...and dead
        lease = pool.try_acquire()
        assert lease is not None and lease._slot is slot_a
        assert lease.get("/").content == b"ok"
        lease.release()
        assert wait_for(lambda: pool.available == 2)
        assert pool.stats().reconnects == 1


def test_idle_timeout_reconnects_before_reuse(no_leaks: None) -> None:
    with (
        RawServer(serve_forever()) as server,
        AtomicClientPool.connect(
            server.url, connections=1, idle_timeout=0.2, reconnect=FAST
        ) as pool,
    ):
        assert pool.get("/").content == b"ok"
        time.sleep(0.3)
        # Over-idle: sent to reconnect. The heal worker may replace it before
        # try_acquire's scan ends (then the slot it returns is the fresh one).
        lease = pool.try_acquire()
        if lease is not None:
            lease.release()
        assert pool.get("/", acquire_timeout=2).content == b"ok"
        assert pool.stats().reconnects >= 1
        assert server.connections >= 2


# -- broken responses ------------------------------------------------------------


def test_reset_mid_body(no_leaks: None) -> None:
    def handler(conn: socket.socket, index: int) -> None:
        if index == 0:
            if read_request(conn) is not None:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
                time.sleep(0.05)
                reset(conn)
            return
        serve_forever(b"whole")(conn, index)

    with (
        RawServer(handler) as server,
        AtomicClientPool.connect(server.url, connections=1, reconnect=FAST) as pool,
    ):
        with pytest.raises(ConnectionClosed) as info:
            pool.get("/x")
        assert info.value.received_any is True  # not a stale connection: no retry
        assert pool.stats().stale_retries == 0
        assert pool.get("/x", acquire_timeout=2).content == b"whole"
        assert pool.stats().reconnects == 1


def test_garbage_response_is_a_protocol_error_and_the_slot_is_replaced(
    no_leaks: None,
) -> None:
    def handler(conn: socket.socket, index: int) -> None:
        if index == 0:
            if read_request(conn) is not None:
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
            time.sleep(0.2)
            return
        serve_forever(b"fine")(conn, index)

    with (
        RawServer(handler) as server,
        AtomicClientPool.connect(server.url, connections=1, reconnect=FAST) as pool,
    ):
        with pytest.raises(ProtocolError):
            pool.get("/x")
        assert pool.get("/x", acquire_timeout=2).content == b"fine"
        assert pool.stats().errors == {"ProtocolError": 1}
        assert server.connections == 2


def test_bad_content_length_is_a_protocol_error(no_leaks: None) -> None:
    def handler(conn: socket.socket, index: int) -> None:
        if read_request(conn) is not None:
            if index == 0:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\nok")
                time.sleep(0.2)
                return
            conn.sendall(response(b"fine"))
            serve_forever(b"fine")(conn, index)

    with (
        RawServer(handler) as server,
        AtomicClientPool.connect(server.url, connections=1, reconnect=FAST) as pool,
    ):
        with pytest.raises(ProtocolError):
            pool.get("/x")
        assert pool.get("/x", acquire_timeout=2).content == b"fine"


def test_connection_close_response_is_not_reused(no_leaks: None) -> None:
    def handler(conn: socket.socket, index: int) -> None:
        if read_request(conn) is not None:
            conn.sendall(response(b"bye%d" % index, b"Connection: close"))

    with (
        RawServer(handler) as server,
        AtomicClientPool.connect(server.url, connections=1, reconnect=FAST) as pool,
    ):
        # Each response closes its connection; the waiter is woken by the heal.
        bodies = [pool.get("/", acquire_timeout=2).content for _ in range(3)]
        assert bodies == [b"bye0", b"bye1", b"bye2"]
        with pool.acquire(timeout=2) as slot:
            # Within one lease, the slot reconnects inline.
            assert slot.get("/").content == b"bye3"
            assert slot.get("/").content == b"bye4"
        assert pool.stats().errors == {}


def test_close_delimited_body(no_leaks: None) -> None:
    def handler(conn: socket.socket, index: int) -> None:
        if read_request(conn) is not None:
            conn.sendall(b"HTTP/1.1 200 OK\r\n\r\nuntil the end")

    with (
        RawServer(handler) as server,
        AtomicClientPool.connect(server.url, connections=1, reconnect=FAST) as pool,
    ):
        assert pool.get("/").content == b"until the end"
        assert pool.get("/", acquire_timeout=2).content == b"until the end"


# -- timeouts ----------------------------------------------------------------------


def test_timed_out_request_never_leaks_its_late_response(no_leaks: None) -> None:
    def handler(conn: socket.socket, index: int) -> None:
        if index == 0:
            if read_request(conn) is not None:
                time.sleep(0.3)
                with contextlib.suppress(OSError):
                    conn.sendall(response(b"late"))
            return
        serve_forever(b"fresh")(conn, index)

    with (
        RawServer(handler) as server,
        AtomicClientPool.connect(server.url, connections=1, reconnect=FAST) as pool,
    ):
        with pytest.raises(ReadTimeout):
            pool.get("/slow", timeout=0.1)
        assert pool.get("/", acquire_timeout=2).content == b"fresh"
        time.sleep(0.35)  # the late response has been sent by now
        for _ in range(3):
            assert pool.get("/", acquire_timeout=2).content == b"fresh"
        assert pool.stats().errors == {"ReadTimeout": 1}


class Interrupt(BaseException):
    """Stands for KeyboardInterrupt (pytest treats the real one specially)."""


class InterruptingReader(ResponseReader):
    def feed(self, data: bytes) -> None:  # type: ignore[override]
        raise Interrupt


def test_base_exception_mid_request_kills_the_connection(no_leaks: None) -> None:
    with (
        RawServer(serve_forever()) as server,
        AtomicClientPool.connect(server.url, connections=1, reconnect=FAST) as pool,
    ):
        lease = pool.acquire(timeout=1)
        conn = lease._slot.conn  # type: ignore[union-attr]
        assert conn is not None
        conn._reader = InterruptingReader()
        with pytest.raises(Interrupt):
            lease.get("/")
        assert not conn.alive
        lease.release()  # a dead connection goes to the healer, never back
        assert pool.get("/", acquire_timeout=2).content == b"ok"
        assert server.connections == 2


def test_drip_server_is_cut_by_the_request_deadline(no_leaks: None) -> None:
    sent: list[int] = []

    def handler(conn: socket.socket, index: int) -> None:
        if read_request(conn) is None:
            return
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for i in range(100):  # one byte every 20 ms: 2 s in all
            try:
                conn.sendall(b"x")
            except OSError:
                break
            sent.append(i)
            time.sleep(0.02)

    # Each byte arrives well within 0.25 s: only a deadline for the whole
    # request (not a timeout per recv) can cut this response.
    with (
        RawServer(handler) as server,
        AtomicClientPool.connect(server.url, connections=1, reconnect=FAST) as pool,
        pytest.raises(ReadTimeout),
    ):
        pool.get("/", timeout=0.25)
    assert len(sent) < 100


def test_pool_default_timeout(no_leaks: None) -> None:
    def handler(conn: socket.socket, index: int) -> None:
        read_request(conn)
        time.sleep(0.5)

    with (
        RawServer(handler) as server,
        AtomicClientPool.connect(server.url, connections=1, timeout=0.1, reconnect=FAST) as pool,
    ):
        with pytest.raises(ReadTimeout) as info:
            pool.get("/")
        assert info.value.path == "/"


def test_write_timeout_when_the_server_does_not_read(no_leaks: None) -> None:
    stop = threading.Event()

    def handler(conn: socket.socket, index: int) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stop.wait(3)  # never reads

    body = b"x" * (48 * 1024 * 1024)
    with RawServer(handler) as server:
        try:
            with (
                AtomicClientPool.connect(server.url, connections=1, reconnect=FAST) as pool,
                pytest.raises(WriteTimeout),
            ):
                pool.post("/upload", content=body, timeout=0.2)
        finally:
            stop.set()


# -- server down and back ----------------------------------------------------------


def test_server_stop_and_restart(caplog: pytest.LogCaptureFixture, no_leaks: None) -> None:
    backoff = Backoff(initial=0.02, maximum=0.2, multiplier=2.0, jitter=0.2)
    server = RawServer(serve_forever(b"up"))
    port = server.port
    pool = AtomicClientPool.connect(server.url, connections=4, reconnect=backoff, connect_timeout=1)
    try:
        assert pool.get("/").content == b"up"
        server.stop()
        # Every slot meets the dead server: found dead before use (no slot to
        # wait for) or on use (the stale retry's reconnect is refused); either
        # way the slot goes to the healer.
        with caplog.at_level(logging.WARNING, logger="warmline"):
            for _ in range(4):
                with pytest.raises((ConnectError, PoolTimeout)):
                    pool.get("/", acquire_timeout=0.5)
            assert pool.try_acquire() is None
            with pytest.raises(PoolTimeout):
                pool.acquire(timeout=0.1)
            with pytest.raises(PoolTimeout):
                pool.get("/", acquire_timeout=0.1)
            assert wait_for(lambda: pool.stats().reconnect_failures >= 8)
        assert pool.stats().reconnecting == 4
        # Failures are logged, but rate-limited: not one line per attempt.
        logged = [r for r in caplog.records if "reconnect" in r.getMessage()]
        assert 1 <= len(logged) < pool.stats().reconnect_failures

        server = RawServer(serve_forever(b"back"), port=port)
        # Back to full size within the backoff bound (0.2 s) plus slack for
        # thread scheduling on a loaded machine.
        assert wait_for(lambda: pool.available == 4, timeout=5.0)
        assert pool.stats().reconnecting == 0
        assert pool.get("/").content == b"back"
    finally:
        pool.close()
        server.stop()


def test_waiter_is_woken_by_a_heal(no_leaks: None) -> None:
    server = RawServer(serve_forever(b"up"))
    port = server.port
    pool = AtomicClientPool.connect(server.url, connections=1, reconnect=FAST, connect_timeout=1)
    try:
        server.stop()
        # The dead connection is found before use (healed: no slot to wait
        # for) or on use (the stale retry's reconnect is refused).
        with pytest.raises((ConnectError, PoolTimeout)):
            pool.get("/", acquire_timeout=0.5)
        got: list[bytes] = []
        waiter = threading.Thread(
            target=lambda: got.append(pool.get("/", acquire_timeout=5).content)
        )
        waiter.start()
        assert wait_for(lambda: len(pool._waiters) == 1)
        server = RawServer(serve_forever(b"healed"), port=port)
        waiter.join(5)
        assert got == [b"healed"]
    finally:
        pool.close()
        server.stop()


def test_close_while_healing_joins_the_worker(no_leaks: None) -> None:
    server = RawServer(serve_forever())
    pool = AtomicClientPool.connect(server.url, connections=2, reconnect=FAST)
    server.stop()
    # The server is gone: both slots fail and heal in the background.
    for _ in range(2):
        with pytest.raises((ConnectError, PoolTimeout)):
            pool.get("/", acquire_timeout=1)
    worker = pool._worker.watcher.thread
    assert worker is not None and worker.is_alive()
    pool.close()
    assert not worker.is_alive()
    assert pool.stats().reconnecting == 0


def test_release_after_close_closes_the_connection(no_leaks: None) -> None:
    with RawServer(serve_forever()) as server:
        pool = AtomicClientPool.connect(server.url, connections=2)
        lease = pool.acquire(timeout=1)
        done = threading.Event()
        used = threading.Event()

        def use() -> None:
            lease.get("/")
            used.set()
            done.wait(5)
            lease.release()  # on another thread, after close()

        t = threading.Thread(target=use)
        t.start()
        assert used.wait(5)
        pool.close()
        done.set()
        t.join(5)
        assert pool.available == 0
        assert pool.stats().in_use == 0


# -- Connection, directly ----------------------------------------------------------


def test_connection_request_after_server_close_is_connection_closed() -> None:
    with RawServer(close_after_each_response) as server:
        origin = Origin.parse(server.url)
        conn = open_connection(origin, tls=None, connect_timeout=1, reader=ResponseReader())
        try:
            assert conn.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET", None).content == b"one"
            assert wait_for(conn.stale, 2.0)  # the peek sees the server's FIN
            with pytest.raises(ConnectionClosed) as info:
                conn.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET", None)
            assert info.value.received_any is False
            assert not conn.alive
        finally:
            conn.close()


def test_connect_timeout() -> None:
    # A listener whose accept queue is full: Linux drops further SYNs, so a
    # connect to it can only time out.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(8):
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(listener.getsockname())
            fillers.append(s)
        origin = Origin.parse(f"http://127.0.0.1:{listener.getsockname()[1]}")
        try:
            open_connection(origin, tls=None, connect_timeout=0.2, reader=ResponseReader())
        except ConnectTimeout as exc:
            assert "within 0.2 s" in str(exc)
            assert isinstance(exc.__cause__, TimeoutError)
        except ConnectError:
            pytest.skip("this kernel refused instead of dropping the SYN")
        else:
            pytest.skip("this kernel accepted past the backlog")
    finally:
        for s in fillers:
            s.close()
        listener.close()
