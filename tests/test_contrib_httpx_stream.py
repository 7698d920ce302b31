"""warmline.contrib.httpx streaming both ways: real httpx against granian and MockServer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

import warmline
from warmline._server.launch import Server
from warmline.contrib.httpx import AsyncTransport, Transport
from warmline.testing import MockServer, Reply, Reset, Stall

from .streamcheck import pattern, read_traced

SIZE = 8 * 1024 * 1024  # granian's /bytes/N: N bytes of a 0..255 pattern


def test_a_large_body_streams_in_chunks_with_bounded_memory(granian: Server) -> None:
    url = f"{granian.url}/bytes/{SIZE}"
    with httpx.Client(transport=Transport()) as client:
        client.get(granian.url + "/small")  # connect first: its buffers are not the stream's

        def chunks() -> Iterator[bytes]:
            with client.stream("GET", url) as r:
                assert r.status_code == 200
                yield from r.iter_bytes(65536)

        read = read_traced(chunks)
    assert read.total == SIZE and read.largest == 65536
    assert read.first == pattern(0, 300)
    assert read.peak < 2 * 1024 * 1024, read.peak  # the 8 MiB body never sits in memory


@pytest.mark.asyncio
async def test_async_stream_gives_pieces_as_they_arrive(granian: Server) -> None:
    url = f"{granian.url}/bytes/{SIZE}"
    async with httpx.AsyncClient(transport=AsyncTransport()) as client:
        pieces = 0
        total = 0
        async with client.stream("GET", url) as r:
            async for chunk in r.aiter_raw():
                pieces += 1
                total += len(chunk)
        assert total == SIZE and pieces > 8  # not one joined body
        again = await client.get(granian.url + "/small")  # the pool still serves
        assert again.status_code == 200


def test_early_close_closes_the_connection(warmline_mock: MockServer) -> None:
    big = b"z" * (2 * 1024 * 1024)
    warmline_mock.expect(path="/big").respond(body=big)
    warmline_mock.expect(path="/small").respond(body=b"ok")
    with httpx.Client(transport=Transport()) as client:
        with client.stream("GET", warmline_mock.url + "/big") as r:
            first = next(r.iter_raw())
            assert 0 < len(first) < len(big)
        # The rest (2 MiB) is above drain_limit: that connection is closed,
        # and the next request goes out on a new one.
        assert client.get(warmline_mock.url + "/small").content == b"ok"
    ids = [rec.connection_id for rec in warmline_mock.journal]
    assert len(ids) == 2 and ids[0] != ids[1]


@pytest.mark.asyncio
async def test_read_to_the_end_reuses_the_connection(warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/big").respond(body=b"y" * 300_000, chunked=True)
    async with httpx.AsyncClient(transport=AsyncTransport()) as client:
        for _ in range(3):
            async with client.stream("GET", warmline_mock.url + "/big") as r:
                assert len(await r.aread()) == 300_000
    assert len({rec.connection_id for rec in warmline_mock.journal}) == 1


def test_a_small_unread_rest_is_drained_and_the_connection_kept(
    warmline_mock: MockServer,
) -> None:
    warmline_mock.expect(path="/few").respond(body=b"k" * 4000)
    with httpx.Client(transport=Transport()) as client:
        for _ in range(2):
            with client.stream("GET", warmline_mock.url + "/few") as r:
                assert r.status_code == 200  # body left unread, 4 kB < drain_limit
    assert len({rec.connection_id for rec in warmline_mock.journal}) == 1


def test_a_reset_mid_body_raises_httpx_error_while_iterating(
    warmline_mock: MockServer,
) -> None:
    warmline_mock.expect(path="/cut").respond_with(Reset(reply=Reply(body=b"r" * 500_000)))
    with (
        httpx.Client(transport=Transport()) as client,
        client.stream("GET", warmline_mock.url + "/cut") as r,
    ):
        assert r.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError) as info:
            for _ in r.iter_raw():
                pass
    assert info.value.__cause__ is not None


@pytest.mark.asyncio
async def test_a_stall_mid_body_raises_httpx_read_timeout(warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/stall").respond_with(
        Stall(seconds=5.0, after=200_000, reply=Reply(body=b"s" * 400_000))
    )
    # While the body streams, the client's Timeouts.read bounds each wait.
    transport = AsyncTransport(timeout=warmline.Timeouts(read=0.3))
    async with (
        httpx.AsyncClient(transport=transport) as client,
        client.stream("GET", warmline_mock.url + "/stall") as r,
    ):
        with pytest.raises(httpx.ReadTimeout):
            async for _ in r.aiter_raw():
                pass


@pytest.mark.asyncio
async def test_an_async_iterator_body_goes_up_as_a_streamed_upload(
    warmline_mock: MockServer,
) -> None:
    warmline_mock.expect(method="POST", path="/up").respond(json={"ok": True})

    async def parts() -> AsyncIterator[bytes]:
        for i in range(50):
            yield b"%04d" % i

    async with httpx.AsyncClient(transport=AsyncTransport()) as client:
        r = await client.post(warmline_mock.url + "/up", content=parts())
    assert r.json() == {"ok": True}
    (received,) = warmline_mock.journal
    assert received.body == b"".join(b"%04d" % i for i in range(50))
    assert received.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in received.headers


def test_a_bytes_body_still_goes_with_a_length(warmline_mock: MockServer) -> None:
    warmline_mock.expect(method="POST", path="/up").respond(body=b"")

    def parts() -> Iterator[bytes]:
        yield b"x"

    with httpx.Client(transport=Transport()) as client:
        client.post(warmline_mock.url + "/up", content=b"abc")
        client.post(warmline_mock.url + "/up", files={"f": ("a.txt", b"hello")})
        client.post(warmline_mock.url + "/up", content=parts())
    plain, multipart, streamed = warmline_mock.journal
    assert plain.headers["content-length"] == "3"
    assert int(multipart.headers["content-length"]) == len(multipart.body)
    assert streamed.headers["transfer-encoding"] == "chunked"
