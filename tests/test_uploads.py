"""Streamed request bodies (issue 11): iterables, async iterables, file objects.

A raw 127.0.0.1 server reads each body as framed (Content-Length or chunked),
hashes it and answers with what it saw, so a 64 MiB upload never sits whole in
the server's memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.rawserver import RawServer
from warmline import AsyncClient, AtomicClientPool, Client, ClientPool
from warmline.errors import ConnectionClosed, InvalidRequest, PoolClosed, TooManyRedirects
from warmline.http11._upload import Upload, is_streamed, make_upload

PIECE = bytes(range(256)) * 256  # 64 KiB
BIG_PIECES = 1024  # 64 MiB in all


class _Seen:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.lock = threading.Lock()


def _read_line(conn: socket.socket, buf: bytearray) -> bytes:
    while b"\r\n" not in buf:
        chunk = conn.recv(1 << 20)
        if not chunk:
            raise EOFError
        buf += chunk
    line, _, rest = bytes(buf).partition(b"\r\n")
    buf[:] = rest
    return line


def _read_exact(conn: socket.socket, buf: bytearray, n: int, digest: Any) -> None:
    while n:
        if not buf:
            chunk = conn.recv(min(n, 1 << 20))
            if not chunk:
                raise EOFError
            buf += chunk
        take = min(n, len(buf))
        digest.update(buf[:take])
        del buf[:take]
        n -= take


def _read_one(conn: socket.socket, buf: bytearray) -> dict[str, Any]:
    request_line = _read_line(conn, buf)
    headers: dict[str, str] = {}
    while line := _read_line(conn, buf):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    digest = hashlib.sha256()
    length = 0
    if headers.get("transfer-encoding") == "chunked":
        while size := int(_read_line(conn, buf), 16):
            _read_exact(conn, buf, size, digest)
            length += size
            assert _read_line(conn, buf) == b""
        assert _read_line(conn, buf) == b""
    else:
        length = int(headers.get("content-length", "0"))
        _read_exact(conn, buf, length, digest)
    return {
        "line": request_line.decode("latin-1"),
        "content-length": headers.get("content-length"),
        "transfer-encoding": headers.get("transfer-encoding"),
        "length": length,
        "sha256": digest.hexdigest(),
    }


def _handler(seen: _Seen, mode: str = "ok") -> Any:
    def handler(conn: socket.socket, index: int) -> None:
        conn.settimeout(10)
        buf = bytearray()
        try:
            for _ in range(20):
                info = _read_one(conn, buf)
                with seen.lock:
                    seen.bodies.append(info)
                if mode == "drop":  # read the whole request, then close unanswered
                    break
                if mode == "redirect":
                    head = b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /next\r\n"
                    conn.sendall(head + b"Content-Length: 0\r\n\r\n")
                    continue
                body = json.dumps(info).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        except (EOFError, OSError):
            pass
        finally:
            conn.close()

    return handler


def _gen(count: int, piece: bytes = PIECE) -> Iterator[bytes]:
    for _ in range(count):
        yield piece


async def _agen(count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        await asyncio.sleep(0)
        yield PIECE


def _expect(count: int) -> tuple[int, str]:
    digest = hashlib.sha256()
    for _ in range(count):
        digest.update(PIECE)
    return count * len(PIECE), digest.hexdigest()


@pytest.fixture
def seen() -> _Seen:
    return _Seen()


@pytest.fixture
def file_body(tmp_path: Path) -> Path:
    path = tmp_path / "body.bin"
    path.write_bytes(b"skip" + PIECE * 3)
    return path


# -- the asyncio pool ---------------------------------------------------------
@pytest.mark.asyncio
async def test_aio_pool_64_mib_generator_is_chunked(seen: _Seen) -> None:
    with RawServer(_handler(seen)) as srv:
        async with await ClientPool.connect(srv.url, connections=1) as pool:
            r = await pool.request("POST", "/up", content=_gen(BIG_PIECES), timeout=30)
            info = r.json()
            # the connection is kept and serves the next request
            r2 = await pool.request("POST", "/again", content=b"abc")
    assert (info["length"], info["sha256"]) == _expect(BIG_PIECES)
    assert info["transfer-encoding"] == "chunked" and info["content-length"] is None
    assert r2.json()["length"] == 3


@pytest.mark.asyncio
async def test_aio_pool_file_sends_content_length(seen: _Seen, file_body: Path) -> None:
    with RawServer(_handler(seen)) as srv:
        async with await ClientPool.connect(srv.url, connections=1) as pool:
            with file_body.open("rb") as f:
                f.seek(4)  # the length is what is left to read
                r = await pool.request("PUT", "/f", content=f)
    info = r.json()
    assert info["content-length"] == str(3 * len(PIECE)) and info["transfer-encoding"] is None
    assert (info["length"], info["sha256"]) == _expect(3)


@pytest.mark.asyncio
async def test_aio_pool_async_generator(seen: _Seen) -> None:
    with RawServer(_handler(seen)) as srv:
        async with await ClientPool.connect(srv.url, connections=1) as pool:
            r = await pool.request("POST", "/a", content=_agen(5))
    info = r.json()
    assert info["transfer-encoding"] == "chunked"
    assert (info["length"], info["sha256"]) == _expect(5)


@pytest.mark.asyncio
async def test_aio_pool_stale_retry_refused_for_a_generator(seen: _Seen) -> None:
    with RawServer(_handler(seen, "drop")) as srv:
        async with await ClientPool.connect(srv.url, connections=1, timeout=5) as pool:
            with pytest.raises(ConnectionClosed, match="read only once"):
                await pool.request("PUT", "/x", content=_gen(2))
            assert len(seen.bodies) == 1  # sent once, not retried
            # the control: a bytes body is retried once on a fresh connection
            with pytest.raises(ConnectionClosed):
                await pool.request("PUT", "/x", content=PIECE * 2)
            assert len(seen.bodies) == 3


# -- the thread pool ----------------------------------------------------------
def test_sync_pool_64_mib_generator_is_chunked(seen: _Seen) -> None:
    with (
        RawServer(_handler(seen)) as srv,
        AtomicClientPool.connect(srv.url, connections=1) as pool,
    ):
        r = pool.request("POST", "/up", content=_gen(BIG_PIECES), timeout=30)
        r2 = pool.request("POST", "/again", content=b"abcd")
    info = r.json()
    assert (info["length"], info["sha256"]) == _expect(BIG_PIECES)
    assert info["transfer-encoding"] == "chunked"
    assert r2.json()["length"] == 4


def test_sync_pool_file_sends_content_length(seen: _Seen, file_body: Path) -> None:
    with (
        RawServer(_handler(seen)) as srv,
        AtomicClientPool.connect(srv.url, connections=1) as pool,
        file_body.open("rb") as f,
    ):
        f.seek(4)
        r = pool.request("PUT", "/f", content=f)
    info = r.json()
    assert info["content-length"] == str(3 * len(PIECE)) and info["transfer-encoding"] is None
    assert (info["length"], info["sha256"]) == _expect(3)


def test_sync_pool_stale_retry_refused_for_a_generator(seen: _Seen) -> None:
    with (
        RawServer(_handler(seen, "drop")) as srv,
        AtomicClientPool.connect(srv.url, connections=1, timeout=5) as pool,
    ):
        with pytest.raises(ConnectionClosed, match="read only once"):
            pool.request("PUT", "/x", content=_gen(2))
        assert len(seen.bodies) == 1
        with pytest.raises(ConnectionClosed):
            pool.request("PUT", "/x", content=PIECE * 2)
        assert len(seen.bodies) == 3


def test_sync_pool_async_iterable_refused(seen: _Seen) -> None:
    with (
        RawServer(_handler(seen)) as srv,
        AtomicClientPool.connect(srv.url, connections=1) as pool,
        pytest.raises(TypeError, match="asyncio"),
    ):
        pool.request("POST", "/a", content=_agen(1))


def test_framing_of_pieces() -> None:
    chunked = make_upload(iter([b"ab", b"", bytearray(b"c"), memoryview(b"de")]))
    assert b"".join(chunked.frames()) == b"2\r\nab\r\n1\r\nc\r\n2\r\nde\r\n0\r\n\r\n"
    assert chunked.framing == b"Transfer-Encoding: chunked\r\n\r\n"
    # A BytesIO has no descriptor: its length is unknown, so it is chunked.
    assert make_upload(io.BytesIO(b"xyz")).length is None


def test_declared_length_mismatch_is_a_clear_error() -> None:
    with pytest.raises(InvalidRequest, match="ended after 3 of its 5"):
        list(Upload(iter([b"abc"]), 5, False).frames())
    with pytest.raises(InvalidRequest, match="longer than"):
        list(Upload(iter([b"abcdef"]), 5, False).frames())
    with pytest.raises(TypeError, match="must yield bytes"):
        list(make_upload(iter(["text"])).frames())


def test_streamed_detection() -> None:
    assert not is_streamed(b"x") and not is_streamed("x") and not is_streamed(None)
    assert is_streamed(iter([b"x"])) and is_streamed([b"x"]) and is_streamed(io.BytesIO())
    assert not is_streamed({"a": 1})  # a mapping stays a TypeError, as before


# -- the clients ----------------------------------------------------------------
@pytest.mark.asyncio
async def test_async_client_generator_and_file(seen: _Seen, file_body: Path) -> None:
    with RawServer(_handler(seen)) as srv:
        async with AsyncClient() as client:
            r = await client.request("POST", srv.url + "/g", content=_gen(3))
            with file_body.open("rb") as f:
                f.seek(4)
                r2 = await client.request("PUT", srv.url + "/f", content=f)
            r3 = await client.request("POST", srv.url + "/a", content=_agen(2))
    assert r.json()["transfer-encoding"] == "chunked"
    assert (r.json()["length"], r.json()["sha256"]) == _expect(3)
    assert r2.json()["content-length"] == str(3 * len(PIECE))
    assert (r3.json()["length"], r3.json()["sha256"]) == _expect(2)


def test_sync_client_generator_and_file(seen: _Seen, file_body: Path) -> None:
    with RawServer(_handler(seen)) as srv, Client() as client:
        r = client.request("POST", srv.url + "/g", content=_gen(3))
        with file_body.open("rb") as f:
            f.seek(4)
            r2 = client.request("PUT", srv.url + "/f", content=f)
    assert r.json()["transfer-encoding"] == "chunked"
    assert (r.json()["length"], r.json()["sha256"]) == _expect(3)
    assert r2.json()["content-length"] == str(3 * len(PIECE))


@pytest.mark.asyncio
async def test_async_client_307_with_a_generator_refused(seen: _Seen) -> None:
    with RawServer(_handler(seen, "redirect")) as srv:
        async with AsyncClient(follow_redirects=True) as client:
            with pytest.raises(InvalidRequest, match=r"307.*read only once"):
                await client.request("POST", srv.url + "/r", content=_gen(2))
            # the control: a bytes body is sent again to /next
            with pytest.raises(TooManyRedirects):
                await client.request("POST", srv.url + "/r", content=b"ab")
    assert seen.bodies[0]["line"].startswith("POST /r")
    assert sum(b["line"].startswith("POST /next") for b in seen.bodies) >= 1
    assert seen.bodies[1]["line"].startswith("POST /r")  # the generator went out once


def test_sync_client_307_with_a_generator_refused(seen: _Seen) -> None:
    with (
        RawServer(_handler(seen, "redirect")) as srv,
        Client(follow_redirects=True) as client,
        pytest.raises(InvalidRequest, match=r"307.*read only once"),
    ):
        client.request("POST", srv.url + "/r", content=_gen(2))
    assert [b["line"].split()[1] for b in seen.bodies] == ["/r"]


# -- stream(): a streamed upload and a streamed response on one request ----------


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_aio_stream_with_a_generator_upload(seen: _Seen) -> None:
    with RawServer(_handler(seen)) as srv:
        async with await ClientPool.connect(srv.url, connections=1) as pool:
            async with pool.stream("POST", "/up", content=_gen(BIG_PIECES), timeout=30) as r:
                info = json.loads(await r.aread())
            async with pool.stream("POST", "/a", content=_agen(3)) as r:
                info2 = json.loads(await r.aread())
            # read to its end: the connection serves the next request
            again = await pool.request("POST", "/again", content=b"abc")
            assert pool.stats().reconnects == 0
    assert (info["length"], info["sha256"]) == _expect(BIG_PIECES)
    assert info["transfer-encoding"] == "chunked"
    assert (info2["length"], info2["sha256"]) == _expect(3)
    assert again.json()["length"] == 3


def test_sync_stream_with_a_file_upload(seen: _Seen, file_body: Path) -> None:
    with (
        RawServer(_handler(seen)) as srv,
        AtomicClientPool.connect(srv.url, connections=1) as pool,
        file_body.open("rb") as f,
    ):
        f.seek(4)
        with pool.stream("PUT", "/f", content=f) as r:
            info = json.loads(b"".join(r.iter_bytes()))
        assert pool.request("POST", "/again", content=b"ab").json()["length"] == 2
        assert pool.stats().reconnects == 0
    assert info["content-length"] == str(3 * len(PIECE))
    assert (info["length"], info["sha256"]) == _expect(3)


def test_sync_stream_with_an_async_upload_is_refused(seen: _Seen) -> None:
    with (
        RawServer(_handler(seen)) as srv,
        AtomicClientPool.connect(srv.url, connections=1) as pool,
        pytest.raises(TypeError, match="asyncio"),
        pool.stream("POST", "/a", content=_agen(1)),
    ):
        pass


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_aio_stream_upload_is_not_sent_twice(seen: _Seen) -> None:
    with RawServer(_handler(seen, "drop")) as srv:
        async with await ClientPool.connect(srv.url, connections=1, timeout=5) as pool:
            with pytest.raises(ConnectionClosed, match="read only once"):
                async with pool.stream("PUT", "/x", content=_gen(2)):
                    pass
            assert len(seen.bodies) == 1  # sent once, not retried


def test_sync_stream_upload_is_not_sent_twice(seen: _Seen) -> None:
    with (
        RawServer(_handler(seen, "drop")) as srv,
        AtomicClientPool.connect(srv.url, connections=1, timeout=5) as pool,
    ):
        with (
            pytest.raises(ConnectionClosed, match="read only once"),
            pool.stream("PUT", "/x", content=_gen(2)),
        ):
            pass
        assert len(seen.bodies) == 1


def _early_413(conns: list[int]) -> Any:
    # Answer after the head, before reading the body; then read what comes.
    def handler(conn: socket.socket, index: int) -> None:
        conns.append(index)
        conn.settimeout(10)
        buf = bytearray()
        try:
            for _ in range(20):
                _read_line(conn, buf)
                while _read_line(conn, buf):
                    pass
                body = b"too large"
                conn.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\n\r\n" + body)
                buf.clear()
        except (EOFError, OSError):
            pass
        finally:
            conn.close()

    return handler


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_aio_stream_answered_mid_upload_stops_and_is_not_reused() -> None:
    sent: list[int] = []
    conns: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        for i in range(100_000):  # 6 GiB if nobody stopped it
            sent.append(i)
            await asyncio.sleep(0)
            yield PIECE

    with RawServer(_early_413(conns)) as srv:
        async with await ClientPool.connect(srv.url, connections=1) as pool:
            async with pool.stream("POST", "/big", content=endless(), timeout=20) as r:
                assert r.status == 413
                assert await r.aread() == b"too large"
            # The server may still expect the rest of that body: the next
            # request goes out on a new connection.
            assert (await pool.get("/next", timeout=10)).status == 413
    assert len(sent) < 100_000
    assert conns == [0, 1]


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_aio_stream_upload_cancelled_leaves_nothing_behind(seen: _Seen) -> None:
    import gc

    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))

    async def slow() -> AsyncIterator[bytes]:
        for _ in range(1000):
            await asyncio.sleep(0.01)
            yield PIECE

    with RawServer(_handler(seen)) as srv:
        async with await ClientPool.connect(srv.url, connections=1) as pool:

            async def up() -> int:
                async with pool.stream("POST", "/up", content=slow()) as r:
                    return r.status

            task = asyncio.create_task(up())
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The cut connection is never reused: the next request reconnects.
            assert (await pool.request("POST", "/next", content=b"ab")).json()["length"] == 2
            assert pool.stats().reconnects == 1
    await asyncio.sleep(0)
    gc.collect()
    await asyncio.sleep(0)
    assert reported == []  # no "Future exception was never retrieved"


def _silent(conn: socket.socket, index: int) -> None:
    # Reads the request, never answers, until the client closes.
    conn.settimeout(10)
    try:
        while conn.recv(1 << 16):
            pass
    except OSError:
        pass
    finally:
        conn.close()


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_aio_pool_closed_under_a_stream_says_pool_closed() -> None:
    with RawServer(_silent) as srv:
        pool = await ClientPool.connect(srv.url, connections=1)

        async def pieces() -> AsyncIterator[bytes]:
            for _ in range(1000):
                await asyncio.sleep(0.01)
                yield PIECE

        async def use() -> int:
            async with pool.stream("POST", "/up", content=pieces(), timeout=20) as r:
                return r.status

        task = asyncio.create_task(use())
        await asyncio.sleep(0.1)  # mid-upload
        await pool.close()
        with pytest.raises(PoolClosed):
            await task


@pytest.mark.timeout(60)
def test_sync_pool_closed_under_a_stream_says_pool_closed() -> None:
    with RawServer(_silent) as srv:
        pool = AtomicClientPool.connect(srv.url, connections=1)
        outcome: list[BaseException] = []

        def use() -> None:
            try:
                with pool.stream("POST", "/up", content=_gen(3), timeout=20):
                    pass
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=use)
        thread.start()
        time.sleep(0.1)
        pool.close()
        thread.join(10)
        assert not thread.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], PoolClosed), outcome
