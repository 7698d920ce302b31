"""AsyncClient: one warm client for any URL, on one ClientPool per origin."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any

from warmline._policy import TimeoutArg
from warmline._pool._attempts import resilient_async
from warmline._pool._client import (
    ClientBase,
    ClientOptions,
    ResilienceStats,
)
from warmline._pool._verbs import ClientStreams, ClientVerbs
from warmline._redirects import Hop
from warmline.aio._pool import ClientPool
from warmline.aio._stream import StreamContext
from warmline.errors import PoolError
from warmline.http11 import Response
from warmline.http11._writer import ContentArg, HeadersArg, ParamsArg

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["AsyncClient"]


class AsyncClient(
    ClientBase[ClientPool], ClientVerbs[Coroutine[Any, Any, Response]], ClientStreams[StreamContext]
):
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
        retry: A :class:`~warmline.resilience.Retry`: send a request again
            after a retryable status or error, within its total timeout.
            Off by default.
        hedge: A :class:`~warmline.resilience.Hedge`: send an idempotent
            request once more when it has no response after ``hedge.after``;
            the first response wins, the other attempt is cancelled (its
            connection is abandoned and heals). Off by default.
        rate_limit: A :class:`~warmline.resilience.RateLimiter` every request
            takes from before each attempt (``await take(weight)``, bounded
            by the time the request has left; RateLimited beyond).
        rate_limits: ``{origin_url: RateLimiter}``: an origin's own limiter,
            taken after the client-wide one. A 429 or 418 with
            ``Retry-After`` pauses the origin's own limiter, else the
            client-wide one, for every caller at once.
        weight_of: ``(method, url) -> weight`` of a request in the limiters
            (``url`` as given to the verb); 1 when None.
        follow_redirects: Follow 301/302/303/307/308 (off by default: a
            trading client must not silently follow). 301-303 become a GET
            without a body (HEAD stays HEAD), 307/308 keep method and body;
            ``Authorization``, ``Cookie`` and ``Proxy-Authorization`` never
            cross origins (a redirect to another origin while the default
            headers carry one is refused with InvalidRequest); https to http
            is refused (InvalidRequest). ``r.history`` lists the redirects,
            ``r.url`` the final URL. Each hop has the request's timeout;
            streams do not follow.
        max_redirects: Most hops followed (TooManyRedirects beyond).
        decompress: Undo ``Content-Encoding`` (gzip, deflate; br, zstd
            with their extras) and send ``Accept-Encoding`` for them (on by
            default; see :class:`warmline.PoolOptions`). ``content`` is the
            decoded body, ``raw_content`` the bytes as sent.
        hooks: A :class:`warmline.Hooks` given to every origin's pool
            (callbacks per request phase and per connection event; a
            redirect hop is a request of its own). None costs nothing.
        latency: Latency histograms per origin in ``stats()`` (off by
            default; see :class:`warmline.PoolOptions`).

    Counters of retries and hedges: :meth:`resilience_stats`. With none of
    ``retry``, ``hedge``, ``rate_limit(s)`` set, a request goes straight to
    its pool, as if they did not exist.
    """

    _resilient_fn = staticmethod(resilient_async)
    _stream_context = StreamContext

    def __init__(self, **options: Unpack[ClientOptions]) -> None:
        if options.get("spin"):
            raise ValueError("spin= is for the thread client (Client)")
        super().__init__(**options)

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
            self._register(key, pool)
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

    async def _following(
        self,
        method: str,
        url: str,
        params: ParamsArg | None,
        headers: HeadersArg | None,
        content: ContentArg | None,
        json: Any,
        timeout: TimeoutArg,
    ) -> Response:
        """Send, then follow redirects (rules: :mod:`warmline._redirects`).
        Each hop has the request's own timeout."""
        hop: Hop | None = Hop(method, self._absolute(url), headers, content, json)
        history: list[Response] = []
        response: Response | None = None
        while hop is not None:
            response = await self._send_once(
                hop.method, hop.url, params, hop.headers, hop.content, hop.json, timeout
            )
            params = None  # in the URL of every later hop already
            hop = self._redirected(response, hop, history)
        assert response is not None  # the first hop always goes
        return response

    def resilience_stats(self) -> dict[str, ResilienceStats]:
        """Per origin: ``retries``, ``hedges_sent``, ``hedges_won`` (a copy).

        Example:
            >>> client.resilience_stats()["https://api.exchange.example:443"].retries
            0
        """
        return super().resilience_stats()

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
