"""The request verbs, written once for the slots and pools of both shells.

A shell's slot class implements ``_send`` and ``_stream``, its pool class
``_call`` and ``_stream``; these mixins give them ``request``, ``stream`` and
one method per verb. The verbs spell their keywords out and pass them on as
one tuple, a :data:`Req`: forwarding ``**kwargs`` costs ~0.4 us per call on
CPython 3.11 (timeit), several percent of a pooled request, while a tuple
built here and unpacked where the request is written
(``RequestWriter.build_request``) costs about what passing its seven items
down each layer by position did (callgrind, benchmarks/hotpath.py: pool.get
35,321 -> 35,402 instructions per request, lease.get 31,082 -> 31,118).
``R`` is what a call returns: a coroutine (asyncio) or a Response; ``S``
what ``stream()`` returns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeAlias, TypeVar

from warmline._policy import DEFAULT, TimeoutArg
from warmline.http11._writer import ContentArg, HeadersArg, ParamsArg

__all__ = ["ClientStreams", "ClientVerbs", "PoolVerbs", "Req", "SlotVerbs", "with_headers"]

R = TypeVar("R")
S = TypeVar("S")

#: One request below the verbs: method (upper case), path, params, headers,
#: content, json, timeout.
Req: TypeAlias = tuple[
    str, str, ParamsArg | None, HeadersArg | None, ContentArg | None, Any, TimeoutArg
]


def with_headers(req: Req, headers: HeadersArg | None) -> Req:
    """``req`` with other headers (the hooks' trace context)."""
    return (req[0], req[1], req[2], headers, req[4], req[5], req[6])


class SlotVerbs(Generic[R, S]):
    """Verbs on a leased slot: ``slot.get(path, ...)``."""

    __slots__ = ()

    def _send(self, req: Req) -> R:
        raise NotImplementedError

    def _stream(self, req: Req) -> S:
        raise NotImplementedError

    def request(
        self,
        method: str,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> R:
        """Send one request.

        Args:
            method: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS (any case).
            path: Absolute path (``/...``), appended to the pool's base_path.
            params: Query parameters, percent-encoded.
            headers: Per-request headers (replace defaults of the same name).
            content: Raw body: bytes, or an iterable, async iterable or binary
                file of bytes (streamed; never sent twice).
            json: Body serialised as JSON (``Decimal`` as its exact digits).
            timeout: Seconds for the whole request, or None for none; the
                pool's ``timeout`` when not given (phases, ``Timeouts``, are
                set on the pool or client). 0 sends nothing and raises
                WriteTimeout.

        Raises:
            ReadTimeout, WriteTimeout, ConnectionClosed, ProtocolError,
            ResponseTooLarge, InvalidRequest, ConnectError, PoolError (the
            lease was released, or a request is in flight on it).
        """
        up = method.upper() if isinstance(method, str) else method
        return self._send((up, path, params, headers, content, json, timeout))

    def stream(
        self,
        method: str,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> S:
        """A streamed request on this slot; see the pool's ``stream()``.

        The slot stays leased when the stream ends; its next request waits
        for nothing (a stream closed early closed the connection, which the
        next request reopens).
        """
        up = method.upper() if isinstance(method, str) else method
        return self._stream((up, path, params, headers, content, json, timeout))

    def get(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> R:
        """``request("GET", ...)``."""
        return self._send(("GET", path, params, headers, content, json, timeout))

    def head(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> R:
        """``request("HEAD", ...)``."""
        return self._send(("HEAD", path, params, headers, content, json, timeout))

    def post(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> R:
        """``request("POST", ...)``."""
        return self._send(("POST", path, params, headers, content, json, timeout))

    def put(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> R:
        """``request("PUT", ...)``."""
        return self._send(("PUT", path, params, headers, content, json, timeout))

    def patch(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> R:
        """``request("PATCH", ...)``."""
        return self._send(("PATCH", path, params, headers, content, json, timeout))

    def delete(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> R:
        """``request("DELETE", ...)``."""
        return self._send(("DELETE", path, params, headers, content, json, timeout))

    def options(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> R:
        """``request("OPTIONS", ...)``."""
        return self._send(("OPTIONS", path, params, headers, content, json, timeout))


class PoolVerbs(Generic[R, S]):
    """Verbs on a pool: acquire, send, release: ``pool.get(path, ...)``."""

    __slots__ = ()

    def _call(self, req: Req, acquire_timeout: TimeoutArg) -> R:
        raise NotImplementedError

    def _stream(self, req: Req, acquire_timeout: TimeoutArg) -> S:
        raise NotImplementedError

    def request(
        self,
        method: str,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
        acquire_timeout: TimeoutArg = DEFAULT,
    ) -> R:
        """Send one request (acquire a slot, send, release).

        Args:
            method: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS (any case).
            path: Absolute path (``/...``), appended to the pool's base_path.
            params: Query parameters, percent-encoded.
            headers: Per-request headers (replace defaults of the same name).
            content: Raw body: bytes, or an iterable, async iterable or binary
                file of bytes (streamed; never sent twice).
            json: Body serialised as JSON (``Decimal`` as its exact digits).
            timeout: Seconds for the whole request, or None for none; the
                pool's ``timeout`` when not given (phases, ``Timeouts``, are
                set on the pool or client). 0 sends nothing and raises
                WriteTimeout.
            acquire_timeout: Seconds to wait for a ready slot; by default the
                request's total timeout, so that a pool whose server is down
                fails in bounded time.

        Raises:
            ReadTimeout, WriteTimeout, ConnectionClosed, ProtocolError,
            ResponseTooLarge, InvalidRequest, ConnectError, PoolTimeout, PoolClosed.
        """
        up = method.upper() if isinstance(method, str) else method
        return self._call((up, path, params, headers, content, json, timeout), acquire_timeout)

    def stream(
        self,
        method: str,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
        acquire_timeout: TimeoutArg = DEFAULT,
    ) -> S:
        """Send a request and read only its head; the body is read on demand.

        ``async with pool.stream("GET", path) as r:`` (asyncio) or
        ``with pool.stream("GET", path) as r:`` (threads). The body is then
        read with ``r.aiter_bytes(chunk_size)`` / ``r.iter_bytes(chunk_size)``
        (decoded), ``aiter_raw()`` / ``iter_raw()`` (as sent), the ``lines``
        twins, or ``await r.aread()`` / ``r.read()``; nothing is received
        before the consumer asks, so memory stays at one read. The slot is
        held until the block ends (or ``r.aclose()`` / ``r.close()``): read
        to the end, the connection is reused; left early, up to
        ``drain_limit`` bytes are drained, else it is closed. ``timeout``
        bounds the wait for the head, then each wait for more of the body
        (``Timeouts.read`` when set). Arguments otherwise as for :meth:`request`.

        Example:
            >>> async with pool.stream("GET", "/download") as r:
            ...     async for chunk in r.aiter_bytes(65536):
            ...         sink.write(chunk)
        """
        up = method.upper() if isinstance(method, str) else method
        return self._stream((up, path, params, headers, content, json, timeout), acquire_timeout)

    def get(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
        acquire_timeout: TimeoutArg = DEFAULT,
    ) -> R:
        """``request("GET", ...)``."""
        return self._call(("GET", path, params, headers, content, json, timeout), acquire_timeout)

    def head(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
        acquire_timeout: TimeoutArg = DEFAULT,
    ) -> R:
        """``request("HEAD", ...)``."""
        return self._call(("HEAD", path, params, headers, content, json, timeout), acquire_timeout)

    def post(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
        acquire_timeout: TimeoutArg = DEFAULT,
    ) -> R:
        """``request("POST", ...)``."""
        return self._call(("POST", path, params, headers, content, json, timeout), acquire_timeout)

    def put(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
        acquire_timeout: TimeoutArg = DEFAULT,
    ) -> R:
        """``request("PUT", ...)``."""
        return self._call(("PUT", path, params, headers, content, json, timeout), acquire_timeout)

    def patch(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
        acquire_timeout: TimeoutArg = DEFAULT,
    ) -> R:
        """``request("PATCH", ...)``."""
        return self._call(("PATCH", path, params, headers, content, json, timeout), acquire_timeout)

    def delete(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
        acquire_timeout: TimeoutArg = DEFAULT,
    ) -> R:
        """``request("DELETE", ...)``."""
        return self._call(
            ("DELETE", path, params, headers, content, json, timeout), acquire_timeout
        )

    def options(
        self,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
        acquire_timeout: TimeoutArg = DEFAULT,
    ) -> R:
        """``request("OPTIONS", ...)``."""
        return self._call(
            ("OPTIONS", path, params, headers, content, json, timeout), acquire_timeout
        )


class ClientVerbs(Generic[R]):
    """Verbs on a client, by URL: ``client.get("https://host/path", ...)``."""

    __slots__ = ()

    def _call(
        self,
        method: str,
        url: str,
        params: ParamsArg | None,
        headers: HeadersArg | None,
        content: ContentArg | None,
        json: Any,
        timeout: TimeoutArg,
    ) -> R:
        raise NotImplementedError

    def request(
        self,
        method: str,
        url: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> R:
        """Send one request to ``url`` on that origin's warm pool.

        Args:
            method: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS (any case).
            url: Absolute (``https://host[:port]/path?query``), or relative to
                the client's ``base_url``.
            params: Query parameters, percent-encoded (added to the URL's).
            headers: Per-request headers (replace the client's of the same name).
            content: Raw body.
            json: Body serialised as JSON (``Decimal`` as its exact digits).
            timeout: Seconds for the whole request, or None; the client's
                ``Timeouts.total`` when not given.

        Raises:
            InvalidRequest: A bad URL (no scheme or host, another scheme,
                userinfo, a bad port, CR/LF/NUL).
            PoolTimeout: No connection within ``Timeouts.pool``.
            PoolClosed: The client is closed.
            ConnectError, ReadTimeout, WriteTimeout, ConnectionClosed,
            ProtocolError, ResponseTooLarge: as for a pool's request.
        """
        return self._call(
            method.upper() if isinstance(method, str) else method,
            url,
            params,
            headers,
            content,
            json,
            timeout,
        )

    def get(
        self,
        url: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> R:
        """``request("GET", url, ...)``."""
        return self._call("GET", url, params, headers, content, json, timeout)

    def head(
        self,
        url: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> R:
        """``request("HEAD", url, ...)``."""
        return self._call("HEAD", url, params, headers, content, json, timeout)

    def post(
        self,
        url: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> R:
        """``request("POST", url, ...)``."""
        return self._call("POST", url, params, headers, content, json, timeout)

    def put(
        self,
        url: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> R:
        """``request("PUT", url, ...)``."""
        return self._call("PUT", url, params, headers, content, json, timeout)

    def patch(
        self,
        url: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> R:
        """``request("PATCH", url, ...)``."""
        return self._call("PATCH", url, params, headers, content, json, timeout)

    def delete(
        self,
        url: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> R:
        """``request("DELETE", url, ...)``."""
        return self._call("DELETE", url, params, headers, content, json, timeout)

    def options(
        self,
        url: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> R:
        """``request("OPTIONS", url, ...)``."""
        return self._call("OPTIONS", url, params, headers, content, json, timeout)


class ClientStreams(Generic[S]):
    """``stream()`` on a client, by URL (both clients; the one-shot functions
    have none)."""

    __slots__ = ()

    #: What ``stream()`` returns, given the call that opens the stream.
    _stream_context: Callable[[Callable[[], Any]], S]

    def _lookup(self, url: str) -> tuple[Any, str]:
        raise NotImplementedError

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
    ) -> S:
        """Send a request to ``url`` and read only its head.

        ``async with client.stream("GET", url) as r:`` (``AsyncClient``) or
        ``with client.stream("GET", url) as r:`` (``Client``). The body is
        read with ``r.aiter_bytes(chunk_size)`` / ``r.iter_bytes(chunk_size)``
        (decoded), the ``raw`` and ``lines`` twins, or ``await r.aread()`` /
        ``r.read()``; the connection is held until the block ends (see the
        pools' ``stream()``: reused, drained or closed). ``retry`` and
        ``hedge`` do not apply to streams. Arguments as for ``request()``.
        """
        up = method.upper()

        def open_stream() -> Any:
            # On entering the block: the origin's pool, then its stream (a
            # coroutine on asyncio, which the context awaits).
            pool, target = self._lookup(url)
            return pool._stream_call((up, target, params, headers, content, json, timeout), DEFAULT)

        return self._stream_context(open_stream)
