"""Streamed responses on both pools and both clients, against granian, nginx
and MockServer: bounded memory, decoding, release (drain or close), errors."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

import warmline
from tests.bodydriver import KINDS, Driver, stream
from warmline._server.app import LARGE, TICKERS
from warmline._server.launch import Server
from warmline.errors import ResponseTooLarge, StreamClosed
from warmline.testing import MockServer


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def mock() -> Iterator[MockServer]:
    with MockServer() as server:
        yield server


def _driver(kind: str, url: str, **options: Any) -> Driver:
    if kind.startswith("pool"):
        options.setdefault("connections", 1)
    options.setdefault("timeout", 10.0)
    return Driver(kind, url, **options)


def _expected_digest(n: int) -> str:
    digest = hashlib.sha256()
    for _ in range(n // len(LARGE)):
        digest.update(LARGE)
    return digest.hexdigest()


def _hash_stream(d: Driver, path: str) -> tuple[str, int]:
    """Stream ``path``, hashing 64 KiB pieces; (hex digest, total bytes)."""

    def sync(target: Any) -> tuple[str, int]:
        digest, total = hashlib.sha256(), 0
        with target.stream("GET", d.where(path)) as r:
            for chunk in r.iter_bytes(65536):
                digest.update(chunk)
                total += len(chunk)
        return digest.hexdigest(), total

    async def aio(target: Any) -> tuple[str, int]:
        digest, total = hashlib.sha256(), 0
        async with target.stream("GET", d.where(path)) as r:
            async for chunk in r.aiter_bytes(65536):
                digest.update(chunk)
                total += len(chunk)
        return digest.hexdigest(), total

    return d.call(sync if d.loop is None else aio)  # type: ignore[no-any-return]


@pytest.mark.timeout(60)
def test_a_50_mib_body_streams_in_bounded_memory(kind: str, granian: Server) -> None:
    size = 50 * 1024 * 1024
    expected = _expected_digest(size)
    d = _driver(kind, granian.url, max_body_size=size)
    try:
        d.get("/small")  # the connection and its buffers exist before measuring
        tracemalloc.start()
        try:
            got, total = _hash_stream(d, f"/bytes/{size}")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert (got, total) == (expected, size)
        assert peak < 2 * 1024 * 1024, f"peak {peak} bytes while streaming 50 MiB"
        assert d.get("/small").status == 200  # the connection was reused or healed
    finally:
        d.close()


@pytest.mark.parametrize("path", ["/coded/gzip", "/coded/gzip?chunked", "/coded/br,zstd"])
def test_decoded_streaming_in_exact_chunks(kind: str, granian: Server, path: str) -> None:
    d = _driver(kind, granian.url)
    try:
        r, chunks = stream(d, path, "bytes:7")
        assert b"".join(chunks) == TICKERS
        assert all(len(c) == 7 for c in chunks[:-1]) and 0 < len(chunks[-1]) <= 7
        assert r.status == 200 and r.headers["content-encoding"] == path[7:].partition("?")[0]
        _, raw = stream(d, path, "raw")
        assert raw != TICKERS and len(raw) < len(TICKERS)
        _, whole = stream(d, path, "read")
        assert whole == TICKERS
    finally:
        d.close()


def test_nginx_gzip_stream(kind: str, nginx: Server) -> None:
    d = _driver(kind, nginx.url)
    try:
        for _ in range(2):
            _, whole = stream(d, "/gzip", "read")
            assert whole == TICKERS
    finally:
        d.close()


def test_lines_across_chunks(kind: str, mock: MockServer) -> None:
    mock.expect(path="/l").respond(body="alpha\nbeta\r\ngamma\rdelta\n\nend", chunked=3)
    d = _driver(kind, mock.url)
    try:
        _, lines = stream(d, "/l", "lines")
        assert lines == ["alpha", "beta", "gamma", "delta", "", "end"]
    finally:
        d.close()


def _ids(mock: MockServer) -> list[int]:
    return [req.connection_id for req in mock.journal]


def test_closed_early_a_small_rest_is_drained_and_the_connection_reused(
    kind: str, mock: MockServer
) -> None:
    mock.expect(path="/s").respond(body=b"x" * 40_000).any_times()
    mock.expect(path="/ok").respond(body=b"fine").any_times()
    d = _driver(kind, mock.url)
    try:
        r, first = stream(d, "/s", "first")
        assert first and r.status == 200
        assert d.get("/ok").content == b"fine"
        assert _ids(mock)[0] == _ids(mock)[1]  # the same server-side connection
        assert mock.connections_accepted == 1
    finally:
        d.close()


@pytest.mark.parametrize("shape", ["large", "chunked"])
def test_closed_early_a_large_or_unknown_rest_closes_the_connection(
    kind: str, mock: MockServer, shape: str
) -> None:
    if shape == "large":
        mock.expect(path="/big").respond(body=b"y" * (8 << 20)).any_times()
    else:
        mock.expect(path="/big").respond(body=b"y" * 300_000, chunked=1000).any_times()
    mock.expect(path="/ok").respond(body=b"fine").any_times()
    d = _driver(kind, mock.url)
    try:
        stream(d, "/big", "first")
        assert d.get("/ok").content == b"fine"  # correct, on a new connection
        first, second = _ids(mock)
        assert first != second
    finally:
        d.close()


def test_reading_after_close_is_stream_closed(kind: str, mock: MockServer) -> None:
    mock.expect(path="/s").respond(body=b"z" * 10_000).any_times()
    d = _driver(kind, mock.url)
    try:
        r, _ = stream(d, "/s", "first")
        with pytest.raises(StreamClosed):
            if d.loop is None:
                r.read()
            else:
                d.run(r.aread())
        r, whole = stream(d, "/s", "read")  # read to the end: content stays
        assert whole == b"z" * 10_000 and r.content == whole
    finally:
        d.close()


def test_a_streamed_bomb_stops_at_max_body_size(kind: str, mock: MockServer) -> None:
    bomb = gzip.compress(b"\0" * (8 << 20), compresslevel=9)
    mock.expect(path="/bomb").respond(body=bomb, headers={"Content-Encoding": "gzip"})
    mock.expect(path="/ok").respond(body=b"fine").any_times()
    d = _driver(kind, mock.url, max_body_size=1 << 20)
    try:
        with pytest.raises(ResponseTooLarge):
            stream(d, "/bomb", "bytes")
        assert d.get("/ok").content == b"fine"
    finally:
        d.close()


@pytest.mark.asyncio
async def test_cancelled_mid_stream_leaves_no_leak_and_the_slot_heals(mock: MockServer) -> None:
    mock.expect(path="/big").respond(body=b"q" * (4 << 20)).any_times()
    mock.expect(path="/ok").respond(body=b"fine").any_times()
    async with await warmline.ClientPool.connect(mock.url, connections=1) as pool:
        started = asyncio.Event()

        async def consume() -> None:
            async with pool.stream("GET", "/big") as r:
                async for _ in r.aiter_raw():
                    started.set()
                    await asyncio.sleep(10)

        task = asyncio.create_task(consume())
        await asyncio.wait_for(started.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pool.stats().in_use == 0
        r = await pool.get("/ok", timeout=5)
        assert r.content == b"fine"
        assert pool.stats().in_use == 0


@pytest.mark.asyncio
async def test_a_slow_consumer_pauses_the_transport(granian: Server) -> None:
    from warmline.aio._stream import HIGH_WATER

    pool = await warmline.ClientPool.connect(granian.url, connections=1)
    async with pool, pool.stream("GET", "/bytes/33554432") as r:
        source: Any = r._source
        await source.aread_piece()
        await asyncio.sleep(0.3)  # the server could send it all meanwhile
        assert source._paused
        assert source._buffered <= HIGH_WATER + 1024 * 1024
        total = 0
        async for chunk in r.aiter_raw():
            total += len(chunk)
        assert total > 0


def test_slot_stream_keeps_the_slot(kind: str, mock: MockServer) -> None:
    if kind.startswith("client"):
        pytest.skip("slots are a pool's")
    mock.expect(path="/s").respond(body=b"s" * 1000).any_times()
    d = _driver(kind, mock.url)
    try:

        def sync(pool: Any) -> bytes:
            with pool.acquire(timeout=5) as slot:
                with slot.stream("GET", "/s") as r:
                    body: bytes = r.read()
                assert pool.available == 0
                return body + slot.get("/s").content

        async def aio(pool: Any) -> bytes:
            async with pool.acquire(timeout=5) as slot:
                async with slot.stream("GET", "/s") as r:
                    body: bytes = await r.aread()
                assert pool.available == 0
                return body + (await slot.get("/s")).content

        assert d.call(sync if d.loop is None else aio) == b"s" * 2000
        assert mock.connections_accepted == 1
    finally:
        d.close()
