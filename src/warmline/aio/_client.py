"""AsyncClient: one warm client for any URL, on one ClientPool per origin."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from types import TracebackType
from typing import Any

from warmline._policy import DEFAULT, TimeoutArg
from warmline._pool._client import ClientBase
from warmline._pool._verbs import ClientVerbs
from warmline.aio._pool import ClientPool
from warmline.errors import PoolError
from warmline.http11 import Response
from warmline.http11._writer import ContentArg, HeadersArg, ParamsArg

__all__ = ["AsyncClient"]


class AsyncClient(ClientBase[ClientPool], ClientVerbs[Coroutine[Any, Any, Response]]):
    """One client for any URL: a warm ClientPool per origin, under shared limits.

    Example:
        >>> async with AsyncClient(warm={"https://api.exchange.example": 8}) as client:
        ...     r = await client.get("https://api.exchange.example/api/v3/time")
        ...     pool = client.pool("https://api.exchange.example")   # the hot path
        ...     slot = pool.try_acquire()

    Args:
        headers: Default headers of every request.
        base_url: Relative URLs (``"/time"``) are joined to this.
        limits: At most ``per_host`` connections per origin and ``total``
            overall (open or opening). A request over a limit waits, FIFO,
            up to ``Timeouts.pool``; at the total, the least recently used
            idle connection of another (not warm) origin is closed for it.
        timeout: A :class:`~warmline.Timeouts`, or seconds for the total.
        warm: ``{origin_url: connections}`` pre-connected at ``start()``, all
            at once, and kept warm (healed in the background). Other origins
            open connections lazily, one per concurrent need.
        keep_alive: False: one connection per request, ``Connection: close``.
        idle_timeout: Reconnect (warm) or close (lazy) a connection idle longer.
        max_lifetime: Replace a connection older than this when next idle.
        tcp_keepalive: SO_KEEPALIVE with short probes (on by default).
        keep_warm: A :class:`~warmline.KeepWarm`: idle connections send a
            cheap request every ``interval``, so no idle timeout finds them
            cold (warm origins; lazy ones too while they hold connections).
        local_address: Source address of every connection.
        tls: An ``ssl.SSLContext`` (default: verified with the system CAs).
        retry_stale: Re-send an idempotent request once when its kept-alive
            connection turned out closed.
        user_agent: User-Agent header; None for warmline's.
        reconnect: Backoff of a warm origin's reconnects.
        max_body_size, max_head_size, max_headers: Response limits.
        proxy: Reach every origin through this proxy: a URL
            (``http://[user:pass@]host:port``: CONNECT tunnels for https
            origins, absolute-form requests for http ones; ``https://...``:
            TLS to the proxy first; ``socks5://...``, names resolved here;
            ``socks5h://...``, resolved by the proxy) or a
            ``warmline.Proxy`` (custom proxy headers, the proxy's own TLS
            context). Each connection opens its tunnel once; pooled requests
            through it cost what direct ones do.
        trust_env: With no ``proxy``: choose one per origin from
            ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` and ``NO_PROXY``
            (either case, curl's and requests' rules), read once, here.
    """

    async def start(self) -> None:
        """Pre-connect the ``warm`` origins, all at once (``async with`` does it).

        Raises:
            ConnectError: A warm origin could not open all its connections.
        """
        settings = self._settings
        pending = [k for k in settings.warm if k not in self._pools]

        async def open_one(key: str) -> None:
            url, connections = settings.warm[key]
            pool = ClientPool(settings.config(url, connections=connections, lazy=False))
            settings.admission.open += connections  # warm slots hold their permits
            self._pools[key] = pool
            await pool._connect_all(connections)

        results = await asyncio.gather(*(open_one(k) for k in pending), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                await self.close()
                raise result

    def _new_pool(self, key: str, prefix: str) -> ClientPool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise PoolError("use an AsyncClient from its event loop (none runs here)") from None
        settings = self._settings
        return ClientPool(settings.config(prefix, connections=settings.limits.per_host, lazy=True))

    def _call(
        self,
        method: str,
        url: str,
        params: ParamsArg | None,
        headers: HeadersArg | None,
        content: ContentArg | None,
        json: Any,
        timeout: TimeoutArg,
    ) -> Coroutine[Any, Any, Response]:
        # Returns the pool's own coroutine: no frame of the client's per request.
        pool, target = self._lookup(url)
        return pool._call(method, target, params, headers, content, json, timeout, DEFAULT)

    async def close(self) -> None:
        """Close every pool; requests in flight end with PoolClosed."""
        self._closed = True
        pools = list(self._pools.values())
        await asyncio.gather(*(p.close() for p in pools), return_exceptions=True)

    async def __aenter__(self) -> AsyncClient:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
