"""Client: the blocking, thread-safe twin of AsyncClient, on AtomicClientPools."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from time import monotonic
from types import TracebackType
from typing import TYPE_CHECKING, Any

from warmline._policy import DEFAULT, TimeoutArg
from warmline._pool._attempts import Attempt, attempts_sync
from warmline._pool._client import (
    ClientBase,
    ClientOptions,
    Resilience,
    ResilienceStats,
)
from warmline._pool._verbs import ClientVerbs
from warmline._redirects import Hop
from warmline.errors import PoolClosed, WarmlineError
from warmline.http11 import Response
from warmline.http11._upload import is_streamed
from warmline.http11._writer import ContentArg, HeadersArg, ParamsArg
from warmline.resilience._drive import SlotAttempts, race_sync
from warmline.resilience._hedge import Hedge
from warmline.resilience._race import HedgeRace
from warmline.sync._pool import AtomicClientPool
from warmline.sync._stream import StreamContext

if TYPE_CHECKING:
    from typing_extensions import Unpack

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

    def __init__(self, **options: Unpack[ClientOptions]) -> None:
        super().__init__(**options)
        # The slow paths of every pool of this client (a permit freed by one
        # origin serves a waiter of another), and the making of new pools.
        self._lock = threading.Lock()
        self._creating = threading.Lock()

    def _create(self, key: str, prefix: str) -> AtomicClientPool:
        with self._creating:  # concurrent first requests to an origin share one pool
            pool = self._pools.get(key)
            return pool if pool is not None else super()._create(key, prefix)

    def _new_pool(self, key: str, prefix: str) -> AtomicClientPool:
        settings = self._settings
        config = settings.config(prefix, connections=settings.limits.per_host, lazy=True)
        return AtomicClientPool(config, self._lock)

    def stream(
        self,
        method: str,
        url: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> StreamContext:
        """Send a request and read only its head: ``with client.stream("GET", url) as r:``.

        The body is read with ``r.iter_bytes(chunk_size)`` (decoded),
        ``r.iter_raw()``, ``r.iter_lines()`` or ``r.read()``; the connection
        is held until the block ends (see ``AtomicClientPool.stream``:
        reused, drained or closed). ``retry`` and ``hedge`` do not apply to
        streams. Arguments as for :meth:`request`.
        """
        up = method.upper()

        def open_stream() -> Response:
            pool, target = self._lookup(url)
            return pool._stream_call((up, target, params, headers, content, json, timeout), DEFAULT)

        return StreamContext(open_stream)

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

    def _retrying(
        self,
        res: Resilience,
        method: str,
        url: str,
        params: ParamsArg | None,
        headers: HeadersArg | None,
        content: ContentArg | None,
        json: Any,
        timeout: TimeoutArg,
    ) -> Response:
        """A retry policy's happy path (as ``AsyncClient._retrying``): the
        first attempt straight to the pool, the loop only after an error or
        a ``watched`` status."""
        # The clock only when a total timeout bounds the retries (0.35k
        # instructions).
        started = monotonic() if res.timed or timeout is not DEFAULT else 0.0
        pool, target = self._hits.get(url) or self._lookup(url)
        first: Response | WarmlineError
        try:
            first = pool._call((method, target, params, headers, content, json, timeout), DEFAULT)
        except WarmlineError as exc:
            first = exc
        else:
            if first.status not in res.watched:  # the cheap guard
                return first
        return self._resilient(
            res, method, url, params, headers, content, json, timeout, started, first
        )

    def _resilient(
        self,
        res: Resilience,
        method: str,
        url: str,
        params: ParamsArg | None,
        headers: HeadersArg | None,
        content: ContentArg | None,
        json: Any,
        timeout: TimeoutArg,
        started: float | None = None,
        first: Response | WarmlineError | None = None,
    ) -> Response:
        """The attempt loop: take from the limiters, send (hedged), retry
        (the asyncio client's loop, with blocking waits)."""
        key, pool, target = self._lookup_keyed(url)
        deadline = res.deadline_after(timeout, monotonic() if started is None else started)
        state = res.route(key)
        weight = res.weight(method, url) if state.limiters else 0.0
        # A streamed body is read once: never hedged, never retried.
        replayable = content is None or not is_streamed(content)
        call = (method, target, params, headers, content, json)

        def send() -> Response:
            return pool._call((*call, res.attempt_timeout(timeout, deadline, monotonic())), DEFAULT)

        def race(r: HedgeRace) -> Response:
            assert res.hedge is not None
            attempts = SlotAttempts(pool, call, timeout, deadline)
            submit = self._hedge_submit(res.hedge)
            response: Response = race_sync(r, submit, attempts.send, attempts.interrupt)
            return response

        a = Attempt(res, state, method, replayable, weight, deadline)
        return attempts_sync(a, send, race, first)

    def _hedge_submit(self, hedge: Hedge) -> Callable[[Callable[[], Response]], Future[Response]]:
        executor = self._hedge_executor(hedge)

        def submit(fn: Callable[[], Response]) -> Future[Response]:
            try:
                return executor.submit(fn)
            except RuntimeError:  # shut down by close() in another thread
                raise PoolClosed("client is closed") from None

        return submit

    def _hedge_executor(self, hedge: Hedge) -> ThreadPoolExecutor:
        executor: ThreadPoolExecutor | None = self.__dict__.get("_executor")
        if executor is None:
            with self._lock:
                if self._closed:
                    raise PoolClosed("client is closed")
                executor = self.__dict__.get("_executor")
                if executor is None:
                    workers = self._settings.limits.total * (1 + hedge.max_extra)
                    executor = ThreadPoolExecutor(workers, thread_name_prefix="warmline-hedge")
                    self.__dict__["_executor"] = executor
        return executor

    def resilience_stats(self) -> dict[str, ResilienceStats]:
        """Per origin: ``retries``, ``hedges_sent``, ``hedges_won`` (a copy)."""
        return super().resilience_stats()

    def close(self) -> None:
        """Close every pool; requests in flight end with PoolClosed."""
        self._closed = True
        for pool in list(self._pools.values()):
            pool.close()
        with self._lock:
            executor: ThreadPoolExecutor | None = self.__dict__.pop("_executor", None)
        if executor is not None:
            # Attempts still running end with PoolClosed now that the pools
            # are closed; nobody waits for their results.
            executor.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Client:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
