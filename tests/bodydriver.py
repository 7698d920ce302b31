"""Drive a pool or a client of either flavour the same way from a blocking test.

The asyncio ones live on their own event loop in a thread (every call runs
there); the blocking ones are called directly. Paths are relative to the
server's URL for all four, so one test body covers ``ClientPool``,
``AtomicClientPool``, ``AsyncClient`` and ``Client``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import warmline

T = TypeVar("T")
KINDS = ("pool-aio", "pool-sync", "client-aio", "client-sync")
HANG_S = 20.0


class Driver:
    """One pool or client on ``url``; ``kind`` is one of :data:`KINDS`."""

    def __init__(self, kind: str, url: str, **options: Any) -> None:
        self.kind = kind
        self.url = url
        self.aio = kind.endswith("aio")
        self.client = kind.startswith("client")
        self.loop: asyncio.AbstractEventLoop | None = None
        if self.aio:
            self.loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
            self._thread.start()
        self.target: Any = self.run_maybe(self._open(options))

    async def _open_aio(self, options: dict[str, Any]) -> Any:
        if self.client:
            client = warmline.AsyncClient(**options)
            await client.start()
            return client
        return await warmline.ClientPool.connect(self.url, **options)

    def _open(self, options: dict[str, Any]) -> Any:
        if self.aio:
            return self._open_aio(options)
        if self.client:
            client = warmline.Client(**options)
            client.start()
            return client
        return warmline.AtomicClientPool.connect(self.url, **options)

    def run_maybe(self, value: Any) -> Any:
        """Run ``value`` on the loop if it is a coroutine (asyncio kinds)."""
        if self.loop is None or not asyncio.iscoroutine(value):
            return value
        return self.run(value)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(HANG_S)

    def where(self, path: str) -> str:
        return self.url + path if self.client else path

    def request(self, method: str, path: str, **kw: Any) -> Any:
        return self.call(lambda t: t.request(method, self.where(path), **kw))

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def call(self, fn: Callable[[Any], Any]) -> Any:
        """``fn(target)`` (a coroutine on the loop for asyncio kinds)."""
        if self.loop is None:
            return fn(self.target)

        async def run() -> Any:
            return await fn(self.target)

        return self.run(run())

    def close(self) -> None:
        try:
            self.run_maybe(self.target.close())
        finally:
            if self.loop is not None:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self._thread.join(5)
                self.loop.close()


def _consume_sync(r: Any, op: str) -> Any:
    if op == "read":
        return r.read()
    if op.startswith("bytes"):
        size = int(op[6:]) if ":" in op else None
        return list(r.iter_bytes(size))
    if op == "raw":
        return b"".join(r.iter_raw())
    if op == "lines":
        return list(r.iter_lines())
    if op == "first":
        return next(iter(r.iter_raw()))
    raise ValueError(op)


async def _consume_aio(r: Any, op: str) -> Any:
    if op == "read":
        return await r.aread()
    if op.startswith("bytes"):
        size = int(op[6:]) if ":" in op else None
        return [c async for c in r.aiter_bytes(size)]
    if op == "raw":
        return b"".join([c async for c in r.aiter_raw()])
    if op == "lines":
        return [line async for line in r.aiter_lines()]
    if op == "first":
        async for piece in r.aiter_raw():
            return piece
    raise ValueError(op)


def stream(d: Driver, path: str, op: str, **kw: Any) -> tuple[Any, Any]:
    """Open a stream on ``d``, consume it with ``op`` inside the block;
    returns (the response, what ``op`` gave). ``op``: read, bytes[:N], raw,
    lines, first (one raw piece, then the block ends)."""
    if d.loop is None:
        with d.target.stream("GET", d.where(path), **kw) as r:
            return r, _consume_sync(r, op)

    async def run(target: Any) -> tuple[Any, Any]:
        async with target.stream("GET", d.where(path), **kw) as r:
            return r, await _consume_aio(r, op)

    return d.call(run)  # type: ignore[no-any-return]
