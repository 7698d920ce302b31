"""Shared by the resilience tests: a server that holds chosen requests, and
a client of either flavour called with ``await``."""

from __future__ import annotations

import asyncio
import socket
import threading
from types import TracebackType
from typing import Any

import warmline
from warmline._policy import Origin
from warmline.resilience import ResilienceStats

from .rawserver import RawServer, read_request

# A held request is let go (FIN) after this long at most: nothing runs unbounded.
HOLD_CAP_S = 10.0
# How long a test waits for the client to close a loser's connection.
CLOSE_WAIT_S = 5.0


class HoldingServer:
    """Answers ``req=N conn=C`` to request N (arrival order), except those in ``hold``."""

    def __init__(self, hold: set[int]) -> None:
        self.hold = hold
        self.log: list[tuple[int, int]] = []  # (request number, connection index)
        self.closed: set[int] = set()  # connections the client closed while held
        self._cond = threading.Condition()
        self.server = RawServer(self._handle)

    @property
    def url(self) -> str:
        return self.server.url

    def _handle(self, conn: socket.socket, index: int) -> None:
        for _ in range(1000):
            if read_request(conn, timeout=HOLD_CAP_S) is None:
                return
            with self._cond:
                number = len(self.log)
                self.log.append((number, index))
            if number in self.hold:
                self._hold(conn, index)
                return
            body = b"req=%d conn=%d" % (number, index)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    def _hold(self, conn: socket.socket, index: int) -> None:
        # Never answer; see the client close the connection (EOF or reset).
        conn.settimeout(HOLD_CAP_S)
        try:
            closed = conn.recv(1) == b""
        except TimeoutError:
            closed = False
        except OSError:
            closed = True
        if closed:
            with self._cond:
                self.closed.add(index)
                self._cond.notify_all()

    def wait_closed(self, count: int) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.closed) >= count, CLOSE_WAIT_S)

    def requests_on(self, conn: int) -> list[int]:
        return [n for n, c in self.log if c == conn]

    def conn_of(self, number: int) -> int:
        return dict(self.log)[number]

    def stop(self) -> None:
        self.server.stop()


class Harness:
    """One client of either flavour (``"aio"`` or ``"sync"``), called with ``await``."""

    def __init__(self, flavour: str, **options: Any) -> None:
        self.flavour = flavour
        self.options = options
        self.client: Any = None

    async def __aenter__(self) -> Harness:
        if self.flavour == "aio":
            self.client = warmline.AsyncClient(**self.options)
            await self.client.start()
        else:
            self.client = warmline.Client(**self.options)
            await asyncio.to_thread(self.client.start)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.flavour == "aio":
            await self.client.close()
        else:
            await asyncio.to_thread(self.client.close)

    async def request(self, method: str, url: str, **kw: Any) -> warmline.Response:
        if self.flavour == "aio":
            response: warmline.Response = await self.client.request(method, url, **kw)
            return response
        return await asyncio.to_thread(self.client.request, method, url, **kw)

    async def get(self, url: str) -> warmline.Response:
        return await self.request("GET", url)

    def stats(self, origin_url: str) -> ResilienceStats:
        stats: ResilienceStats = self.client.resilience_stats()[str(Origin.parse(origin_url))]
        return stats


def parse_answer(body: str) -> tuple[int, int]:
    req, conn = body.split()
    return int(req.removeprefix("req=")), int(conn.removeprefix("conn="))
