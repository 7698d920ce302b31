"""Client: the blocking, thread-safe twin of AsyncClient, on AtomicClientPools."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

from warmline._policy import DEFAULT, TimeoutArg
from warmline._pool._client import ClientBase
from warmline._pool._verbs import ClientVerbs
from warmline.http11 import Response
from warmline.http11._writer import ContentArg, HeadersArg, ParamsArg
from warmline.sync._pool import AtomicClientPool

__all__ = ["Client"]


class Client(ClientBase[AtomicClientPool], ClientVerbs[Response]):
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
            self._pools[key] = pool
        try:
            pool._connect_all(connections)
        except BaseException as exc:
            return exc
        return None

    @property
    def _lock(self) -> threading.Lock:
        lock: threading.Lock | None = self.__dict__.get("_shared_lock")
        if lock is None:
            lock = self.__dict__.setdefault("_shared_lock", threading.Lock())
        return lock

    def _new_pool(self, key: str, prefix: str) -> AtomicClientPool:
        settings = self._settings
        config = settings.config(prefix, connections=settings.limits.per_host, lazy=True)
        return AtomicClientPool(config, self._lock)

    def _call(
        self,
        method: str,
        url: str,
        params: ParamsArg | None,
        headers: HeadersArg | None,
        content: ContentArg | None,
        json: Any,
        timeout: TimeoutArg,
    ) -> Response:
        pool, target = self._lookup(url)
        return pool._call(method, target, params, headers, content, json, timeout, DEFAULT)

    def close(self) -> None:
        """Close every pool; requests in flight end with PoolClosed."""
        self._closed = True
        for pool in list(self._pools.values()):
            pool.close()

    def __enter__(self) -> Client:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
