"""Drive an AsyncClient or a Client the same way from a blocking test.

One test body, two flavours: the asyncio client lives on its own event loop
in a thread (every call runs there: a new origin's pool belongs to it); the
blocking client is called from threads. :meth:`ClientDriver.submit` starts a
request and returns a ``concurrent.futures.Future`` in both flavours, so a
test can hold requests in flight, queue more behind them, and look at the
server meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal, TypeVar

import warmline

Flavour = Literal["aio", "sync"]
FLAVOURS: tuple[Flavour, ...] = ("aio", "sync")
T = TypeVar("T")

# A call that has not finished by then is a hang: the test fails with it.
HANG_S = 20.0


class ClientDriver:
    """One AsyncClient or Client, started, driven from a blocking test.

    Args:
        flavour: ``"aio"`` (AsyncClient) or ``"sync"`` (Client).
        **options: Passed to the client's constructor.
    """

    def __init__(self, flavour: Flavour, **options: Any) -> None:
        self.flavour = flavour
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._threads = ThreadPoolExecutor(max_workers=600, thread_name_prefix="client-test")
        try:
            if flavour == "sync":
                self.client: Any = warmline.Client(**options)
                self.client.start()
            else:
                self.client = self.run(self._make(options))
        except BaseException:
            self._stop()
            raise

    async def _make(self, options: dict[str, Any]) -> warmline.AsyncClient:
        client = warmline.AsyncClient(**options)
        await client.start()
        return client

    def run(self, coro: Coroutine[Any, Any, T], bound: float = HANG_S) -> T:
        """Run ``coro`` on the client's loop and wait for it (at most ``bound`` s)."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(bound)
        except TimeoutError:
            if future.done():
                raise  # the call's own error (ReadTimeout is a TimeoutError too)
            future.cancel()
            raise AssertionError(f"hang: the call did not finish within {bound} s") from None

    def submit(self, method: str, url: str, **kw: Any) -> Future[Any]:
        """Start one request; its Future gives the Response or raises its error."""
        if self.flavour == "sync":
            return self._threads.submit(self.client.request, method, url, **kw)

        async def call() -> Any:
            return await self.client.request(method, url, **kw)

        return asyncio.run_coroutine_threadsafe(call(), self.loop)

    def get(self, url: str, **kw: Any) -> Any:
        return self.submit("GET", url, **kw).result(HANG_S)

    def many(self, urls: list[str], **kw: Any) -> list[Any]:
        """GET every URL at once; per URL, its Response or the exception raised."""
        futures = [self.submit("GET", u, **kw) for u in urls]
        return [outcome(f) for f in futures]

    def stats(self) -> dict[str, Any]:
        if self.flavour == "sync":
            return dict(self.client.stats())

        async def stats() -> dict[str, Any]:
            return dict(self.client.stats())

        return self.run(stats())

    def waits(self, origin: str) -> int:
        """Requests of ``origin`` that waited under the limits, so far."""
        stats = self.stats().get(origin)
        return 0 if stats is None else int(stats.acquire_waits)

    @property
    def permits(self) -> int:
        """Connections the client's limits count as open or opening."""
        return int(self.client._settings.admission.open)

    def close(self) -> None:
        try:
            if self.flavour == "sync":
                self.client.close()
            else:
                self.run(self.client.close())
        finally:
            self._stop()

    def _stop(self) -> None:
        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(cancel_rest(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self._threads.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ClientDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def outcome(future: Future[Any], bound: float = HANG_S) -> Any:
    """The future's result, or the exception it raised (a hang fails the test)."""
    try:
        return future.result(bound)
    except TimeoutError:
        if not future.done():
            raise AssertionError(f"hang: a request did not end within {bound} s") from None
        return future.exception()
    except Exception as exc:
        return exc


def wait_for(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Poll ``condition`` until true or ``timeout``; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()
