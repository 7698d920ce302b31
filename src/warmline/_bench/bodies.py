"""The body scenarios' clients: a streamed download, and gzip for the raw floors.

``download``: each client reads a large body piece by piece as it arrives and
keeps only a byte count, the way its users stream a download: warmline
``stream()`` with ``aiter_bytes()``/``iter_bytes()``, aiohttp
``content.iter_chunked``, httpx ``stream()`` with ``aiter_bytes()``/
``iter_bytes()``, pycurl a WRITEFUNCTION, and two floors: a blocking socket
that ``recv_into``\\ s one 256 KiB buffer, and an ``asyncio.Protocol`` that
counts what ``data_received`` gets. A call returns ``(status, Length(n))``:
the runner checks only the length.

``gzip``: every HTTP client decodes ``Content-Encoding: gzip`` itself; the
raw floors read the compressed body and pass it to ``zlib.decompress``.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import zlib
from collections.abc import Callable
from typing import Any, cast

from warmline._bench.clients import (
    AsyncCall,
    AsyncClose,
    Result,
    SyncCall,
    SyncClose,
    Target,
    _content_end,
    _host_port,
    _raw_request,
)

__all__ = [
    "ASYNC_STREAMS",
    "STREAM_CLIENTS",
    "SYNC_STREAMS",
    "Length",
    "gunzip_async",
    "gunzip_sync",
]

# Pieces read at a time where the client asks for a size (aiohttp, the socket floor).
PIECE = 256 * 1024
# warmline bounds a body, streamed too, by max_body_size (64 MiB by default).
_NO_LIMIT = 1 << 40


class Length:
    """A streamed body's stand-in: its length, the only thing the runner checks."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


# ------------------------------------------------------------------- gzip
def gunzip_async(call: AsyncCall) -> AsyncCall:
    """A raw floor's call whose body is then gunzipped (its ``zlib`` cost counted)."""

    async def decoded() -> Result:
        status, body = await call()
        return status, zlib.decompress(cast(bytes, body), 31)

    return decoded


def gunzip_sync(call: SyncCall) -> SyncCall:
    """:func:`gunzip_async` for a blocking floor."""

    def decoded() -> Result:
        status, body = call()
        return status, zlib.decompress(cast(bytes, body), 31)

    return decoded


# ---------------------------------------------------------------- download
def _note_rss() -> None:
    # The child's peak RSS so far (Linux: KiB). The download runs after the
    # small-body scenarios in its child, so this is its peak, or theirs.
    from warmline._bench.clients import EXTRAS

    EXTRAS["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def noting_rss_async(close: AsyncClose) -> AsyncClose:
    """``close``, noting the process's peak RSS first (``peak_rss_mib``)."""

    async def noted() -> None:
        _note_rss()
        await close()

    return noted


def noting_rss_sync(close: SyncClose) -> SyncClose:
    """:func:`noting_rss_async` for a blocking client."""

    def noted() -> None:
        _note_rss()
        close()

    return noted


async def _warmline(target: Target) -> tuple[list[AsyncCall], AsyncClose]:
    import warmline

    pools = [
        await warmline.ClientPool.connect(o, connections=target.conc, max_body_size=_NO_LIMIT)
        for o in target.origins
    ]

    def bind(pool: warmline.ClientPool) -> AsyncCall:
        async def call() -> Result:
            n = 0
            async with pool.stream("GET", target.path) as r:
                async for piece in r.aiter_bytes():
                    n += len(piece)
            return r.status, Length(n)

        return call

    async def close() -> None:
        for pool in pools:
            await pool.close()

    return [bind(p) for p in pools], close


def _warmline_threads(target: Target) -> tuple[list[SyncCall], SyncClose]:
    import warmline

    pools = [
        warmline.AtomicClientPool.connect(o, connections=target.conc, max_body_size=_NO_LIMIT)
        for o in target.origins
    ]

    def bind(pool: warmline.AtomicClientPool) -> SyncCall:
        def call() -> Result:
            n = 0
            with pool.stream("GET", target.path) as r:
                for piece in r.iter_bytes():
                    n += len(piece)
            return r.status, Length(n)

        return call

    def close() -> None:
        for pool in pools:
            pool.close()

    return [bind(p) for p in pools], close


async def _aiohttp(target: Target) -> tuple[list[AsyncCall], AsyncClose]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=target.conc * len(target.origins))
    session = aiohttp.ClientSession(connector=connector, trust_env=False)

    def bind(url: str) -> AsyncCall:
        async def call() -> Result:
            n = 0
            async with session.get(url) as r:
                async for piece in r.content.iter_chunked(PIECE):
                    n += len(piece)
            return r.status, Length(n)

        return call

    return [bind(o + target.path) for o in target.origins], session.close


async def _httpx(target: Target) -> tuple[list[AsyncCall], AsyncClose]:
    import httpx

    client = httpx.AsyncClient(trust_env=False)

    def bind(url: str) -> AsyncCall:
        async def call() -> Result:
            n = 0
            async with client.stream("GET", url) as r:
                async for piece in r.aiter_bytes():
                    n += len(piece)
            return r.status_code, Length(n)

        return call

    return [bind(o + target.path) for o in target.origins], client.aclose


def _httpx_sync(target: Target) -> tuple[list[SyncCall], SyncClose]:
    import httpx

    client = httpx.Client(trust_env=False)

    def bind(url: str) -> SyncCall:
        def call() -> Result:
            n = 0
            with client.stream("GET", url) as r:
                for piece in r.iter_bytes():
                    n += len(piece)
            return r.status_code, Length(n)

        return call

    return [bind(o + target.path) for o in target.origins], client.close


def _pycurl(target: Target) -> tuple[list[SyncCall], SyncClose]:
    import pycurl

    handles: list[Any] = []

    def bind(url: str) -> SyncCall:
        c = pycurl.Curl()
        c.setopt(pycurl.URL, url)
        c.setopt(pycurl.PROXY, "")
        c.setopt(pycurl.NOSIGNAL, 1)
        handles.append(c)
        count = [0]

        def write(piece: bytes) -> None:
            count[0] += len(piece)

        c.setopt(pycurl.WRITEFUNCTION, write)

        def call() -> Result:
            count[0] = 0
            c.perform()
            return c.getinfo(pycurl.RESPONSE_CODE), Length(count[0])

        return call

    def close() -> None:
        for c in handles:
            c.close()

    return [bind(o + target.path) for o in target.origins], close


def _raw_socket(target: Target) -> tuple[list[SyncCall], SyncClose]:
    """The floor: one socket, ``recv_into`` one buffer until Content-Length is in."""
    socks: list[socket.socket] = []

    def bind(origin: str) -> SyncCall:
        sock = socket.create_connection(_host_port(origin))
        socks.append(sock)
        data = _raw_request(target, origin, close=False)()
        buf = bytearray(PIECE)
        view = memoryview(buf)

        def call() -> Result:
            sock.sendall(data)
            n = sock.recv_into(buf)
            head = bytearray(view[:n])
            total = _content_end(head)
            while total == -1:  # the head in pieces (it never is, here)
                got = sock.recv_into(buf)
                head += view[:got]
                n += got
                total = _content_end(head)
            if total < 0:
                raise ValueError("the download floor reads Content-Length bodies only")
            body_start = head.find(b"\r\n\r\n") + 4
            left = total - n
            while left > 0:
                got = sock.recv_into(buf, min(left, PIECE))
                if not got:
                    raise ConnectionError("connection closed")
                left -= got
            return int(head[9:12]), Length(total - body_start)

        return call

    def close() -> None:
        for sock in socks:
            sock.close()

    return [bind(o) for o in target.origins], close


class _Counting(asyncio.Protocol):
    """The asyncio floor: counts the bytes of one response at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.head = bytearray()
        self.left = -1
        self.status = 0
        self.length = 0
        self.waiter: asyncio.Future[Result] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.left < 0:  # still in the head
            self.head += data
            total = _content_end(self.head)
            if total == -1:
                return
            if total < 0:
                raise ValueError("the download floor reads Content-Length bodies only")
            start = self.head.find(b"\r\n\r\n") + 4
            self.status = int(self.head[9:12])
            self.length = total - start
            self.left = total - len(self.head)
            self.head.clear()
        else:
            self.left -= len(data)
        if self.left <= 0 and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.status, Length(self.length)))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("connection closed"))

    def send(self, data: bytes) -> asyncio.Future[Result]:
        self.left = -1
        self.waiter = waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(data)
        return waiter


async def _raw_proto(target: Target) -> tuple[list[AsyncCall], AsyncClose]:
    loop = asyncio.get_running_loop()
    protos: list[_Counting] = []

    async def bind(origin: str) -> AsyncCall:
        host, port = _host_port(origin)
        _, proto = await loop.create_connection(_Counting, host, port)
        protos.append(proto)
        data = _raw_request(target, origin, close=False)()

        def call() -> asyncio.Future[Result]:
            return proto.send(data)

        return call

    async def close() -> None:
        for proto in protos:
            if proto.transport is not None:
                proto.transport.close()

    return [await bind(o) for o in target.origins], close


ASYNC_STREAMS: dict[str, Callable[[Target], Any]] = {
    "warmline": _warmline,
    "raw-proto": _raw_proto,
    "aiohttp": _aiohttp,
    "httpx": _httpx,
}
SYNC_STREAMS: dict[str, Callable[[Target], tuple[list[SyncCall], SyncClose]]] = {
    "warmline-threads": _warmline_threads,
    "raw-socket": _raw_socket,
    "pycurl": _pycurl,
    "httpx-sync": _httpx_sync,
}
STREAM_CLIENTS = (*ASYNC_STREAMS, *SYNC_STREAMS)
