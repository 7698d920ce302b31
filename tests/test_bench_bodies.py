"""The bench's body scenarios: the streamed-download clients and the gzip floors,
against granian (any size) and nginx (its fixed sizes), checked for what they
count and decode."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator

import pytest

from warmline._bench import bodies, clients
from warmline._bench.clients import Target
from warmline._server import launch
from warmline._server.app import BOOK

SIZE = (1 << 20) + 5  # not a multiple of any piece size


def _installed(name: str) -> bool:
    info = clients.CLIENTS[name]
    return importlib.util.find_spec(info.module) is not None


@pytest.fixture(scope="module")
def granian() -> Iterator[str]:
    with launch.start_granian() as server:
        yield server.url


@pytest.mark.parametrize("name", list(bodies.SYNC_STREAMS))
def test_sync_download_clients_count_the_body(granian: str, name: str) -> None:
    if not _installed(name):
        pytest.skip(f"{name} is not installed")
    target = Target((granian,), "GET", f"/stream/{SIZE}", 1, False, stream=True)
    calls, close = clients.make_sync(name, target)
    try:
        for _ in range(2):  # twice: the connection is reused after a whole body
            status, body = calls[0]()
            assert (status, len(body)) == (200, SIZE)
    finally:
        close()
    assert clients.EXTRAS["peak_rss_mib"] > 0


@pytest.mark.parametrize("name", list(bodies.ASYNC_STREAMS))
def test_async_download_clients_count_the_body(granian: str, name: str) -> None:
    if not _installed(name):
        pytest.skip(f"{name} is not installed")
    target = Target((granian,), "GET", f"/stream/{SIZE}", 1, False, stream=True)

    async def run() -> list[tuple[int, int]]:
        calls, close = await clients.make_async(name, target)
        try:
            return [(s, len(b)) for s, b in [await calls[0](), await calls[0]()]]
        finally:
            await close()

    assert asyncio.run(run()) == [(200, SIZE), (200, SIZE)]


@pytest.mark.parametrize("start", ["granian", "nginx"])
def test_the_gzip_floors_decode_the_book(start: str) -> None:
    if start == "nginx" and launch.nginx_path() is None:
        pytest.skip("nginx is not installed")
    server = launch.start_granian() if start == "granian" else launch.start_nginx()
    with server:
        target = Target((server.url,), "GET", "/book.json", 1, False, gunzip=True)
        calls, close = clients.make_sync("raw-socket", target)
        try:
            assert calls[0]() == (200, BOOK)
        finally:
            close()

        async def run() -> object:
            acalls, aclose = await clients.make_async("raw-proto", target)
            try:
                return await acalls[0]()
            finally:
                await aclose()

        assert asyncio.run(run()) == (200, BOOK)


def test_nginx_serves_the_download_sizes() -> None:
    if launch.nginx_path() is None:
        pytest.skip("nginx is not installed")
    size = launch.STREAM_SIZES[0]
    with launch.start_nginx() as server:
        target = Target((server.url,), "GET", f"/stream/{size}", 1, False, stream=True)
        calls, close = clients.make_sync("raw-socket", target)
        try:
            status, body = calls[0]()
        finally:
            close()
    assert (status, len(body)) == (200, size)
