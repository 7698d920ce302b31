"""The asyncio hot path's own cost, without the kernel: an in-memory transport.

    uv run python -m benchmarks.hotpath MODE N
    # MODE: raw | pool.get | lease.get | client.get

Any pool MODE may end in ``+hook`` (one no-op ``on_response_end`` hook),
``+hooks`` (a no-op on every request callback), ``+latency``
(``latency=True``) or ``+retry`` (a ``Retry()`` that never triggers): the
cost of the option, against the same MODE without.

Every request is answered from memory on the next loop iteration, so what is
left is Python and the event loop: the part of a request warmline controls.
Count instructions, which do not depend on the machine's load:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python -m benchmarks.hotpath pool.get 5000   # minus the same with N=0

Figures (2026-11-21, uvloop, per request): raw asyncio.Protocol floor 25.6k
instructions, lease.get 31.2k, pool.get 35.4k. 2026-12-01: client.get 36.4k,
client.get+retry 38.6k (a Retry() that never triggers: +2.1k; it was +16.4k
before the client's retry happy path).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import uvloop

import warmline
import warmline.aio._pool as pool_module
from warmline._server.app import SMALL
from warmline.aio import ClientPool, Connection

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sat, 21 Nov 2026 01:00:39 GMT\r\n"
    b"Content-Type: application/json\r\nContent-Length: 100\r\nConnection: keep-alive\r\n\r\n"
    + SMALL
)


class MemoryTransport:
    """Answers every write with RESPONSE on the next loop iteration."""

    def __init__(self, protocol: asyncio.Protocol, loop: asyncio.AbstractEventLoop) -> None:
        self.protocol, self.loop, self.closing = protocol, loop, False

    def write(self, data: bytes) -> None:
        self.loop.call_soon(self.protocol.data_received, RESPONSE)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.closing = True

    close = abort

    def get_write_buffer_size(self) -> int:
        return 0


async def memory_connection(origin: Any, **kwargs: Any) -> Connection:
    loop = asyncio.get_running_loop()
    conn = Connection(loop, kwargs["reader"], kwargs.get("on_lost"))
    conn.connection_made(MemoryTransport(conn, loop))  # type: ignore[arg-type]
    return conn


class RawFloor(asyncio.Protocol):
    """The floor: a future per request, Content-Length framing only."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future[bytes] | None = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).lower()
        at = head.index(b"content-length:") + 15
        stop = head.find(b"\r\n", at)
        total = end + 4 + int(head[at : stop if stop > 0 else None])
        if len(self.buf) >= total and self.waiter is not None:
            body = bytes(self.buf[end + 4 : total])
            del self.buf[:total]
            self.waiter.set_result(body)


def _noop(event: object) -> None:
    pass


OBSERVE: dict[str, dict[str, Any]] = {
    "": {},
    "hook": {"hooks": warmline.Hooks(on_response_end=_noop)},
    "hooks": {
        "hooks": warmline.Hooks(
            on_request_start=_noop,
            on_slot_acquired=_noop,
            on_request_written=_noop,
            on_response_head=_noop,
            on_response_end=_noop,
            on_error=_noop,
        )
    },
    "latency": {"latency": True},
    # A Retry() that never triggers (every answer is a 200).
    "retry": {"retry": warmline.Retry()},
}


async def main(mode: str, n: int) -> None:
    loop = asyncio.get_running_loop()
    pool_module.open_connection = memory_connection  # type: ignore[assignment]
    mode, _, observe = mode.partition("+")
    options = OBSERVE[observe]
    pool = await ClientPool.connect("http://127.0.0.1:9", connections=1, **options)
    for _ in range(100):
        await pool.get("/small")
    if mode == "raw":
        raw = RawFloor()
        transport = MemoryTransport(raw, loop)
        request = b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n"
        for _ in range(n):
            raw.waiter = loop.create_future()
            transport.write(request)
            await raw.waiter
    elif mode == "pool.get":
        for _ in range(n):
            await pool.get("/small")
    elif mode == "client.get":
        client = warmline.AsyncClient(
            warm={"http://127.0.0.1:9": 1},
            timeout=warmline.Timeouts(read=None),
            tcp_keepalive=False,
            **options,
        )
        await client.start()
        url = "http://127.0.0.1:9/small"
        for _ in range(100):
            await client.get(url)
        for _ in range(n):
            await client.get(url)
        await client.close()
    elif mode == "lease.get":
        with pool.try_acquire() as lease:  # type: ignore[union-attr]
            for _ in range(n):
                await lease.get("/small")
    else:
        raise SystemExit(
            f"unknown mode {mode!r}: raw, pool.get, lease.get or client.get,"
            " each optionally +hook, +hooks, +latency or +retry"
        )
    await pool.close()


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], int(sys.argv[2])))
