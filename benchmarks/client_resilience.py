"""Client CPU per GET with and without resilience options, against granian.

    uv run python -m benchmarks.client_resilience [N] [ROUNDS]
    uv run python -m benchmarks.client_resilience memory VARIANT N   # for callgrind

Sequential GETs of /small through each client variant, all in one run
against one granian (pinned to CPU 1, the client to CPU 0), rounds
interleaved; the figure is the best round's client CPU (time.process_time)
per request, in µs:

- ``baseline``: the client ``_call`` as it was before resilience options
  (no branch: straight to the pool);
- ``plain``: today's client with ``retry=hedge=rate_limit=None``;
- ``retry``: ``retry=Retry()`` configured but never triggered (200s);
- ``retry+limit``: the same plus a client-wide RateLimiter that never binds.

The ``memory`` mode runs one asyncio variant on benchmarks.hotpath's
in-memory transport (no kernel, no server), for instruction counts, which
do not depend on the machine's load::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python -m benchmarks.client_resilience memory plain 5000
    # minus the same with N=0, divided by 5000
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import warmline
from warmline._policy import DEFAULT
from warmline._server.launch import start_granian
from warmline.resilience import RateLimiter, Retry

C = TypeVar("C")


class BaselineAsync(warmline.AsyncClient):
    def _call(
        self,
        method: str,
        url: str,
        params: Any,
        headers: Any,
        content: Any,
        json: Any,
        timeout: Any,
    ) -> Coroutine[Any, Any, warmline.Response]:
        pool, target = self._lookup(url)
        return pool._call(method, target, params, headers, content, json, timeout, DEFAULT)


class BaselineSync(warmline.Client):
    def _call(
        self,
        method: str,
        url: str,
        params: Any,
        headers: Any,
        content: Any,
        json: Any,
        timeout: Any,
    ) -> warmline.Response:
        pool, target = self._lookup(url)
        return pool._call(method, target, params, headers, content, json, timeout, DEFAULT)


def variants() -> dict[str, dict[str, Any]]:
    return {
        "baseline": {},
        "plain": {},
        "retry": {"retry": Retry()},
        "retry+limit": {"retry": Retry(), "rate_limit": RateLimiter(1e9, burst=1e9)},
    }


def rotated(clients: dict[str, C], r: int) -> list[tuple[str, C]]:
    """Each round starts with another variant, so no one always runs first."""
    items = list(clients.items())
    k = r % len(items)
    return items[k:] + items[:k]


async def run_async(url: str, n: int, rounds: int) -> dict[str, float]:
    best: dict[str, float] = {}
    clients: dict[str, warmline.AsyncClient] = {}
    for name, options in variants().items():
        cls = BaselineAsync if name == "baseline" else warmline.AsyncClient
        clients[name] = cls(warm={url: 1}, **options)
        await clients[name].start()
    for r in range(rounds):
        for name, client in rotated(clients, r):
            get = client.get
            for _ in range(200):  # warm up
                await get(url + "/small")
            start = time.process_time()
            for _ in range(n):
                await get(url + "/small")
            per = (time.process_time() - start) / n * 1e6
            best[name] = min(best.get(name, per), per)
    for client in clients.values():
        await client.close()
    return best


def run_sync(url: str, n: int, rounds: int) -> dict[str, float]:
    best: dict[str, float] = {}
    clients: dict[str, warmline.Client] = {}
    for name, options in variants().items():
        cls = BaselineSync if name == "baseline" else warmline.Client
        clients[name] = cls(warm={url: 1}, **options)
        clients[name].start()
    for r in range(rounds):
        for name, client in rotated(clients, r):
            get: Callable[..., warmline.Response] = client.get
            for _ in range(200):
                get(url + "/small")
            start = time.process_time()
            for _ in range(n):
                get(url + "/small")
            per = (time.process_time() - start) / n * 1e6
            best[name] = min(best.get(name, per), per)
    for client in clients.values():
        client.close()
    return best


async def run_memory(variant: str, n: int) -> None:
    import warmline.aio._pool as pool_module
    from benchmarks.hotpath import memory_connection

    pool_module.open_connection = memory_connection  # type: ignore[assignment]
    url = "http://127.0.0.1:9"
    cls = BaselineAsync if variant == "baseline" else warmline.AsyncClient
    client = cls(warm={url: 1}, **variants()[variant])
    await client.start()
    for _ in range(100):
        await client.get(url + "/small")
    for _ in range(n):
        await client.get(url + "/small")
    await client.close()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "memory":
        import uvloop

        uvloop.run(run_memory(sys.argv[2], int(sys.argv[3])))
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})
    with start_granian(cpu=1 if (os.cpu_count() or 1) > 1 else None) as server:
        results = {
            "aio": asyncio.run(run_async(server.url, n, rounds)),
            "sync": run_sync(server.url, n, rounds),
        }
    for flavour, best in results.items():
        base = best["baseline"]
        cells = "  ".join(
            f"{name} {us:6.1f} µs ({(us / base - 1) * 100:+.1f}%)" for name, us in best.items()
        )
        print(f"{flavour:5} {cells}")


if __name__ == "__main__":
    main()
