"""Client: the blocking, thread-safe twin of AsyncClient, on AtomicClientPools."""

from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from types import TracebackType
from typing import TYPE_CHECKING, Any

from warmline._policy import DEFAULT, TimeoutArg
from warmline._pool._client import (
    ClientBase,
    ClientOptions,
    OriginState,
    Resilience,
    ResilienceStats,
)
from warmline._pool._verbs import ClientVerbs
from warmline._redirects import Hop
from warmline.errors import PoolClosed, WarmlineError
from warmline.http11 import Response
from warmline.http11._upload import is_streamed
from warmline.http11._writer import ContentArg, HeadersArg, ParamsArg
from warmline.resilience._hedge import Hedge
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
        if self._follow:
            return self._following(method, url, params, headers, content, json, timeout)
        # _send_once, inlined: one call frame less per request.
        resilience = self._resilience
        if resilience is None:
            pool, target = self._hits.get(url) or self._lookup(url)
            return pool._call((method, target, params, headers, content, json, timeout), DEFAULT)
        return self._resilient(resilience, method, url, params, headers, content, json, timeout)

    def _send_once(
        self,
        method: str,
        url: str,
        params: ParamsArg | None,
        headers: HeadersArg | None,
        content: ContentArg | None,
        json: Any,
        timeout: TimeoutArg,
    ) -> Response:
        resilience = self._resilience
        if resilience is None:
            pool, target = self._hits.get(url) or self._lookup(url)
            return pool._call((method, target, params, headers, content, json, timeout), DEFAULT)
        return self._resilient(resilience, method, url, params, headers, content, json, timeout)

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
        while hop is not None:
            response = self._send_once(
                hop.method, hop.url, params, hop.headers, hop.content, hop.json, timeout
            )
            params = None  # in the URL of every later hop already
            hop = self._redirected(response, hop, history)
        return response

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
    ) -> Response:
        """The attempt loop: take from the limiters, send (hedged), retry."""
        key, pool, target = self._lookup_keyed(url)
        state = res.route(key)
        clock = time.monotonic
        if timeout is DEFAULT and res.total is None:
            deadline = None
        else:
            deadline = res.deadline_after(timeout, clock())
        limiters = state.limiters
        weight = res.weight(method, url) if limiters else 0.0
        hedge = res.hedge
        # A streamed body is read once: never hedged, never retried.
        replayable = content is None or not is_streamed(content)
        if hedge is not None and (method not in hedge.methods or not replayable):
            hedge = None
        attempt = 0
        while True:
            attempt += 1
            for limiter in limiters:
                if not limiter.try_take(weight):  # cheaper when budget is there
                    limiter.take_sync(weight, timeout=_left(deadline, clock()))
            # What is left of the request's total is each attempt's own
            # timeout: retries and their waits never outlast the request.
            budget = timeout if deadline is None else _left(deadline, clock())
            try:
                if hedge is None:
                    response = pool._call(
                        (method, target, params, headers, content, json, budget), DEFAULT
                    )
                else:
                    call: Call = (method, target, params, headers, content, json)
                    executor = self._hedge_executor(hedge)
                    response = _hedged(executor, pool, call, budget, deadline, hedge, state, weight)
            except WarmlineError as exc:
                left = None if deadline is None else deadline - clock()
                pause = res.after_error(attempt, method, exc, time.time(), left, replayable)
                if pause is None:
                    raise
            else:
                if response.status not in res.watched:  # the cheap guard
                    return response
                left = None if deadline is None else deadline - clock()
                pause = res.after_response(
                    state, attempt, method, response, time.time(), left, replayable
                )
                if pause is None:
                    return response
            state.stats.retries += 1
            time.sleep(pause)

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


def _left(deadline: float | None, now: float) -> float | None:
    return None if deadline is None else max(0.0, deadline - now)


Call = tuple[str, str, ParamsArg | None, HeadersArg | None, ContentArg | None, Any]


def _hedged(
    executor: ThreadPoolExecutor,
    pool: AtomicClientPool,
    call: Call,
    budget: TimeoutArg,
    deadline: float | None,
    hedge: Hedge,
    state: OriginState,
    weight: float,
) -> Response:
    """One attempt, hedged: the first response of up to ``1 + max_extra`` threads.

    The same rules as the asyncio client's; a loser is not interrupted (a
    blocking read cannot be), only its result is dropped, and a hedge not
    yet started is cancelled.
    """
    counters = state.stats
    hedging = state.hedging
    assert hedging is not None
    started = time.monotonic()

    def send() -> Response:
        timeout = budget if deadline is None else _left(deadline, time.monotonic())
        return pool._call((*call, timeout), DEFAULT)

    def launch() -> Future[Response]:
        try:
            return executor.submit(send)
        except RuntimeError:  # shut down by close() in another thread
            raise PoolClosed("client is closed") from None

    futures = [launch()]
    pending: set[Future[Response]] = {futures[0]}
    error: BaseException | None = None
    can_hedge = True
    try:
        while True:
            wait_for = hedging.delay(started) if can_hedge else None
            can_hedge = can_hedge and wait_for is not None  # "p95" before any data
            done, pending = wait(pending, timeout=wait_for, return_when=FIRST_COMPLETED)
            for future in futures:
                if future not in done:
                    continue
                exc = future.exception()
                if exc is None:
                    if future is not futures[0]:
                        counters.hedges_won += 1
                    now = time.monotonic()
                    hedging.record(now - started, now)
                    return future.result()
                error = error or exc
            if not pending:
                assert error is not None
                raise error
            if not done and can_hedge:
                if hedging.allow(time.monotonic()) and all(
                    limiter.try_take(weight) for limiter in state.limiters
                ):
                    future = launch()
                    futures.append(future)
                    pending.add(future)
                    counters.hedges_sent += 1
                can_hedge = len(futures) <= hedge.max_extra
    finally:
        for future in futures:
            future.cancel()  # only one not started yet stops; the others run out
