"""Client: the blocking, thread-safe twin of AsyncClient, on AtomicClientPools."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any

from warmline._policy import TimeoutArg
from warmline._pool._attempts import resilient_sync
from warmline._pool._client import (
    ClientBase,
    ClientOptions,
    ResilienceStats,
)
from warmline._pool._verbs import ClientStreams, ClientVerbs
from warmline._redirects import Hop
from warmline.http11 import Response
from warmline.http11._writer import ContentArg, HeadersArg, ParamsArg
from warmline.resilience._drive import HedgeThreads
from warmline.sync._pool import AtomicClientPool
from warmline.sync._stream import StreamContext

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Client"]


class Client(ClientBase[AtomicClientPool], ClientVerbs[Response], ClientStreams[StreamContext]):
    """The blocking twin of :class:`warmline.AsyncClient`: the same options
    and semantics, any thread may call it. Its pools share one lock (a permit
    freed by one origin serves a waiter of another).

    Example:
        >>> with Client(proxy="http://user:pass@127.0.0.1:3128") as client:
        ...     r = client.get("https://api.exchange.example/api/v3/time")

    ``proxy=`` and ``trust_env=`` work as in AsyncClient: the tunnel opens
    once per connection, and ``trust_env=True`` reads the proxy variables
    once, at construction.
    """

    def start(self) -> None:
        """Pre-connect the ``warm`` origins, all at once (``with`` does it).

        Raises:
            ConnectError: A warm origin could not open all its connections.
        """
        settings = self._settings
        pending = [k for k in settings.warm if k not in self._pools]
        if not pending:
            return
        with ThreadPoolExecutor(len(pending), thread_name_prefix="warmline-warm") as ex:
            results = list(ex.map(self._open_warm, pending))
        for result in results:
            if isinstance(result, BaseException):
                self.close()
                raise result

    def _open_warm(self, key: str) -> BaseException | None:
        settings = self._settings
        url, connections = settings.warm[key]
        pool = AtomicClientPool(
            settings.config(url, connections=connections, lazy=False), self._lock
        )
        with self._lock:
            settings.admission.open += connections  # warm slots hold their permits
            self._register(key, pool)
        try:
            pool._connect_all(connections)
        except BaseException as exc:
            return exc
        return None

    _resilient_fn = staticmethod(resilient_sync)
    _stream_context = StreamContext

    def __init__(self, **options: Unpack[ClientOptions]) -> None:
        super().__init__(**options)
        # The slow paths of every pool of this client (a permit freed by one
        # origin serves a waiter of another), and the making of new pools.
        self._lock = threading.Lock()
        self._creating = threading.Lock()
        res = self._resilience
        if res is not None and res.hedge is not None:  # hedged attempts' threads
            workers = self._settings.limits.total * (1 + res.hedge.max_extra)
            self._hedges = HedgeThreads(workers, "client is closed")

    def _create(self, key: str, prefix: str) -> AtomicClientPool:
        with self._creating:  # concurrent first requests to an origin share one pool
            pool = self._pools.get(key)
            return pool if pool is not None else super()._create(key, prefix)

    def _new_pool(self, key: str, prefix: str) -> AtomicClientPool:
        settings = self._settings
        config = settings.config(prefix, connections=settings.limits.per_host, lazy=True)
        return AtomicClientPool(config, self._lock)

    def _following(
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
            response = self._send_once(
                hop.method, hop.url, params, hop.headers, hop.content, hop.json, timeout
            )
            params = None  # in the URL of every later hop already
            hop = self._redirected(response, hop, history)
        assert response is not None  # the first hop always goes
        return response

    def resilience_stats(self) -> dict[str, ResilienceStats]:
        """Per origin: ``retries``, ``hedges_sent``, ``hedges_won`` (a copy)."""
        return super().resilience_stats()

    def close(self) -> None:
        """Close every pool; requests in flight end with PoolClosed."""
        self._closed = True
        for pool in list(self._pools.values()):
            pool.close()
        if self._hedges is not None:
            self._hedges.shutdown()  # attempts still running end with PoolClosed

    def __enter__(self) -> Client:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
