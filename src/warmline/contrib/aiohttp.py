"""An aiohttp-shaped session on warm pools (extra ``aiohttp``), made for ccxt.

:class:`ClientSession` answers the part of ``aiohttp.ClientSession`` that
ccxt's ``async_support`` exchanges use for REST calls, and sends every
request through a warmline :class:`~warmline.AsyncClient`::

    import ccxt.async_support as ccxt
    from warmline.contrib.aiohttp import ClientSession

    session = ClientSession(warm={"https://api.binance.com": 4})
    exchange = ccxt.binance({"session": session})
    ticker = await exchange.fetch_ticker("BTC/USDT")
    await exchange.close()
    await session.close()          # ccxt leaves a session it was given open

The subset covered, exactly:

- ``ClientSession(client=None, *, headers=None, timeout=None,
  raise_for_status=False, **client_options)``; ``request(method, url,
  **kw)`` and ``get/post/put/patch/delete/head/options(url, **kw)``, each
  awaitable or an ``async with`` context manager; keywords ``params``,
  ``data`` (bytes, str, or a mapping sent form-encoded), ``json``,
  ``headers``, ``timeout`` (a ``ClientTimeout`` or seconds), ``proxy`` (only
  ``None``), ``ssl`` (only the default), ``allow_redirects`` and
  ``raise_for_status``; ``headers``, ``timeout``, ``closed``, ``connector``
  (always ``None``), ``close()``, ``async with``.
- :class:`ClientResponse`: ``status``, ``reason``, ``headers``
  (``CIMultiDictProxy``), ``raw_headers``, ``url``, ``method``, ``ok``,
  ``content_type``, ``charset``, ``history`` (empty), ``request_info``,
  ``await read()``, ``await text(encoding=None, errors="strict")``, ``await
  json(loads=..., content_type=...)``, ``content`` (``read()``,
  ``readany()``, ``iter_chunked(n)``, ``iter_any()``, ``at_eof()``),
  ``raise_for_status()``, ``get_encoding()``, ``release()``, ``close()``,
  ``closed``, ``async with``.
- Not covered: websockets (``ws_connect``, so ccxt.pro keeps its own
  session), cookies, multipart ``FormData``, proxies, per-request TLS
  settings, redirects (a 3xx is returned as it is; exchange APIs do not
  redirect), trailing ``auto_decompress=False``.

How a request is carried over, and why:

- **Bodies.** The whole body has arrived when the request returns, and
  ``content.iter_chunked(n)`` cuts it from memory: aiohttp's API gives no
  sign that a body will be streamed, and ccxt reads every body at once, so
  a streamed read (warmline's ``client.stream()``, a protocol switch per
  response) would tax every ccxt call to serve a use ccxt never has. For
  large downloads use warmline's ``stream()`` or the httpx transport.
  ``Content-Encoding`` (ccxt asks for gzip) is decoded on the first read,
  with warmline's decoders, bounded by the client's ``max_body_size``.
- **Headers.** The session's headers, then the request's (same name:
  the request wins). warmline owns ``Content-Length``, ``Transfer-Encoding``
  (the writer frames the body), ``Connection`` and ``Keep-Alive`` (the pool
  decides reuse): those are not sent as given. No ``Accept-Encoding`` is
  added: a compressed answer costs client CPU to decode; ccxt asks for it
  itself.
- **Timeouts.** ``ClientTimeout.total`` is the request's total; without
  one, the largest of ``connect``, ``sock_connect`` and ``sock_read`` (so a
  ten-second phase means about ten seconds), or no bound per request when
  ``sock_read`` is ``None`` too. The client's own
  :class:`~warmline.Timeouts` still apply under it.
- **Errors** are aiohttp's, so ccxt's handlers work unchanged (its
  ``RequestTimeout`` for timeouts, ``ExchangeNotAvailable`` for connection
  errors): ``ConnectionTimeoutError`` (connect, or no free connection in
  time), ``SocketTimeoutError`` (read), ``ServerTimeoutError`` (write), all
  also ``TimeoutError``; ``ClientOSError`` (refused, unreachable);
  ``ServerDisconnectedError`` (peer closed early); ``ClientPayloadError``
  (malformed, too large, undecodable); ``InvalidURL`` (a request warmline
  refuses to write); ``RuntimeError`` on a closed session, as aiohttp. The
  warmline error is chained as ``__cause__``.
"""

from __future__ import annotations

import json as _json
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Mapping
from types import TracebackType
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

try:
    import aiohttp
    from aiohttp import ClientTimeout
    from multidict import CIMultiDict, CIMultiDictProxy
    from yarl import URL
except ImportError as exc:  # tests/test_contrib_adapter_extras.py
    raise ImportError(
        "warmline.contrib.aiohttp needs aiohttp: pip install 'warmline[aiohttp]'"
    ) from exc

from warmline import errors
from warmline._policy import DEFAULT, TimeoutArg
from warmline.aio._client import AsyncClient
from warmline.http11 import Response, make_decoder

__all__ = ["ClientResponse", "ClientSession", "ClientTimeout", "request_timeout"]

_DROPPED: Final = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
_FORM: Final = "application/x-www-form-urlencoded"
_KEYWORDS: Final = frozenset(
    {
        "params",
        "data",
        "json",
        "headers",
        "timeout",
        "proxy",
        "ssl",
        "allow_redirects",
        "raise_for_status",
    }
)

# Most specific first: ConnectTimeout is a ConnectError.
_ERRORS: Final[tuple[tuple[type[errors.WarmlineError], type[aiohttp.ClientError]], ...]] = (
    (errors.ConnectTimeout, aiohttp.ConnectionTimeoutError),
    (errors.PoolTimeout, aiohttp.ConnectionTimeoutError),
    (errors.ReadTimeout, aiohttp.SocketTimeoutError),
    (errors.WriteTimeout, aiohttp.ServerTimeoutError),
    (errors.ConnectionClosed, aiohttp.ServerDisconnectedError),
    (errors.ProtocolError, aiohttp.ClientPayloadError),
    (errors.PoolClosed, aiohttp.ClientConnectionError),
)


def map_error(exc: errors.WarmlineError, url: str) -> Exception:
    """The aiohttp exception for a warmline error (raise it ``from exc``)."""
    message = str(exc)
    if isinstance(exc, errors.InvalidRequest):
        return aiohttp.InvalidURL(url, message)
    for ours, theirs in _ERRORS:
        if isinstance(exc, ours):
            return theirs(message)
    if isinstance(exc, errors.ConnectError):  # after ConnectTimeout, in the table
        return aiohttp.ClientOSError(None, message)
    return aiohttp.ClientError(message)


def request_timeout(timeout: Any) -> TimeoutArg:
    """warmline's total timeout for an aiohttp ``timeout=`` (a ``ClientTimeout`` or seconds).

    Returns:
        ``total`` when set; else the largest of ``connect``, ``sock_connect``
        and ``sock_read``, or ``None`` when ``sock_read`` is ``None``.
    """
    if timeout is None:
        return None
    if isinstance(timeout, int | float):
        return float(timeout)
    total = getattr(timeout, "total", None)
    if total is not None:
        return float(total)
    read = getattr(timeout, "sock_read", None)
    if read is None:
        return None
    phases = (getattr(timeout, "connect", None), getattr(timeout, "sock_connect", None), read)
    return float(max(p for p in phases if p is not None))


class StreamReader:
    """The ``response.content`` reader, over a body that has fully arrived."""

    def __init__(self, response: ClientResponse) -> None:
        self._response = response
        self._offset = 0

    def _take(self, n: int) -> bytes:
        body = self._response._body()
        end = len(body) if n < 0 else self._offset + n
        data = body[self._offset : end]
        self._offset += len(data)
        return data

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all the rest when ``n`` < 0); ``b""`` at the end."""
        return self._take(n)

    async def readany(self) -> bytes:
        """The rest of the body (it is all here already)."""
        return self._take(-1)

    def at_eof(self) -> bool:
        return self._offset >= len(self._response._body())

    async def iter_chunked(self, n: int) -> AsyncIterator[bytes]:
        """The rest of the body in pieces of ``n`` bytes."""
        while data := self._take(n):
            yield data

    async def iter_any(self) -> AsyncIterator[bytes]:
        """The rest of the body, in one piece."""
        if data := self._take(-1):
            yield data


class _Done:
    """An awaitable that is already done: ``release()`` works with or without ``await``."""

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # a generator that finishes at once


class ClientResponse:
    """A complete response, shaped like ``aiohttp.ClientResponse`` (see the module docs)."""

    def __init__(self, response: Response, method: str, url: str, session: ClientSession) -> None:
        self._response = response
        self.method = method
        self.status = response.status
        self.history: tuple[ClientResponse, ...] = ()
        self._url = url
        self._session = session
        self._decoded: bytes | None = None
        self._headers: CIMultiDictProxy[str] | None = None
        self._content: StreamReader | None = None
        self.closed = False

    @property
    def reason(self) -> str:
        return self._response.reason

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def url(self) -> URL:
        return URL(self._url, encoded=True)

    @property
    def raw_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        return tuple(self._response.raw_headers)

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        """The header fields, decoded as aiohttp does (UTF-8, surrogateescape)."""
        headers = self._headers
        if headers is None:
            fields = CIMultiDict(
                (k.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
                for k, v in self._response.raw_headers
            )
            headers = self._headers = CIMultiDictProxy(fields)
        return headers

    @property
    def content_type(self) -> str:
        """The media type of ``Content-Type``, lower-cased (aiohttp's default if absent)."""
        value = self._response.headers.get("content-type")
        if value is None:
            return "application/octet-stream"
        return value.partition(";")[0].strip().lower()

    @property
    def charset(self) -> str | None:
        return self._response.charset

    @property
    def content(self) -> StreamReader:
        if self._content is None:
            self._content = StreamReader(self)
        return self._content

    @property
    def request_info(self) -> aiohttp.RequestInfo:
        url = self.url
        return aiohttp.RequestInfo(url, self.method, CIMultiDictProxy(CIMultiDict()), url)

    def _body(self) -> bytes:
        """The body with its ``Content-Encoding`` undone (once)."""
        body = self._decoded
        if body is None:
            body = self._decoded = self._decode()
        return body

    def _decode(self) -> bytes:
        response = self._response
        coding = response.headers.get("content-encoding")
        if not coding or response.raw_content is not response.content:
            return response.content  # none, or decoded already by the client (decompress)
        try:
            decoder = make_decoder(coding, max_size=self._session._max_body_size)
            if decoder is None:
                return response.raw_content
            return decoder.feed(response.raw_content) + decoder.flush()
        except errors.WarmlineError as exc:
            raise aiohttp.ClientPayloadError(str(exc)) from exc

    async def read(self) -> bytes:
        """The whole body, decoded."""
        return self._body()

    def get_encoding(self) -> str:
        """The ``Content-Type`` charset, else UTF-8 (aiohttp's choice for JSON and text)."""
        return self._response.charset or "utf-8"

    async def text(self, encoding: str | None = None, errors: str = "strict") -> str:
        """The body as text, in ``encoding`` or the response's charset."""
        return self._body().decode(encoding or self.get_encoding(), errors)

    async def json(
        self,
        *,
        encoding: str | None = None,
        loads: Callable[[str], Any] = _json.loads,
        content_type: str | None = "application/json",
    ) -> Any:
        """The body parsed as JSON; ``None`` when empty.

        Raises:
            aiohttp.ContentTypeError: The media type is not ``content_type``
                (``None`` skips the check); JSON types like ``+json`` pass.
        """
        if content_type is not None and not _is_json_like(self.content_type, content_type):
            raise aiohttp.ContentTypeError(
                self.request_info,
                (),  # no redirects followed, so no history
                status=self.status,
                message=f"Attempt to decode JSON with unexpected mimetype: {self.content_type}",
                headers=self.headers,
            )
        text = (await self.text(encoding)).strip()
        return loads(text) if text else None

    def raise_for_status(self) -> None:
        """Raise ``aiohttp.ClientResponseError`` for a status of 400 or more."""
        if self.status >= 400:
            raise aiohttp.ClientResponseError(
                self.request_info,
                (),  # no redirects followed, so no history
                status=self.status,
                message=self.reason,
                headers=self.headers,
            )

    def release(self) -> _Done:
        """Nothing to give back: the connection was released when the body arrived."""
        self.closed = True
        return _Done()

    def close(self) -> None:
        self.closed = True

    async def __aenter__(self) -> ClientResponse:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ClientResponse({self._url}) [{self.status} {self.reason}]>"


def _is_json_like(actual: str, expected: str) -> bool:
    if expected == "application/json":
        return actual == expected or actual.endswith("+json") or "json" in actual
    return actual == expected


class _RequestContextManager:
    """What ``session.get(...)`` returns: awaitable, or ``async with`` (released on exit).

    The request's coroutine is made on first use, so one that is never used
    leaves no "never awaited" warning behind.
    """

    __slots__ = ("_args", "_response")

    def __init__(self, args: tuple[Any, ...]) -> None:
        self._args = args
        self._response: ClientResponse | None = None

    def _start(self) -> Awaitable[ClientResponse]:
        session, method, url, kwargs = self._args
        send: Callable[..., Awaitable[ClientResponse]] = session._send
        return send(method, url, **kwargs)

    def __await__(self) -> Generator[Any, None, ClientResponse]:
        return self._start().__await__()

    async def __aenter__(self) -> ClientResponse:
        self._response = await self._start()
        return self._response

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._response is not None:
            self._response.release()


class ClientSession:
    """An ``aiohttp.ClientSession`` look-alike on a warmline :class:`~warmline.AsyncClient`.

    Args:
        client: The client to send through; the caller closes it. When not
            given, the session makes one from ``client_options`` and closes
            it with itself.
        headers: Headers of every request (a request's own win).
        timeout: The default ``ClientTimeout`` (or seconds); the client's
            timeouts when not given.
        raise_for_status: Raise ``aiohttp.ClientResponseError`` for 4xx/5xx.
        **client_options: :class:`~warmline.AsyncClient` options (``warm=``,
            ``limits=``, ``timeout=`` as :class:`~warmline.Timeouts`...).

    Raises:
        TypeError: Both a client and options, or a client of another type.
    """

    connector: None = None  # no aiohttp connector: warmline's pools hold the connections

    def __init__(
        self,
        client: AsyncClient | None = None,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        timeout: ClientTimeout | float | None = None,
        raise_for_status: bool = False,
        **client_options: Any,
    ) -> None:
        if client is not None and client_options:
            raise TypeError("give a client or client options, not both")
        if client is not None and not isinstance(client, AsyncClient):
            raise TypeError(f"client must be a warmline.AsyncClient, got {type(client).__name__}")
        self._owns_client = client is None
        self.client = client if client is not None else AsyncClient(**client_options)
        self.headers: CIMultiDict[str] = CIMultiDict(headers or ())
        self.timeout = timeout
        self._timeout = DEFAULT if timeout is None else request_timeout(timeout)
        self._raise_for_status = raise_for_status
        self._max_body_size: int = self.client._settings._options["max_body_size"]
        self._started = False
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    # -- the verbs -----------------------------------------------------------
    def request(self, method: str, url: str | URL, **kwargs: Any) -> _RequestContextManager:
        """Send one request; await it or use it with ``async with``.

        Keywords: ``params``, ``data``, ``json``, ``headers``, ``timeout``,
        ``proxy`` (``None`` only), ``ssl`` (default only),
        ``allow_redirects`` (redirects are not followed), ``raise_for_status``.
        """
        return _RequestContextManager((self, method, url, kwargs))

    def get(self, url: str | URL, **kwargs: Any) -> _RequestContextManager:
        return _RequestContextManager((self, "GET", url, kwargs))

    def post(self, url: str | URL, **kwargs: Any) -> _RequestContextManager:
        return _RequestContextManager((self, "POST", url, kwargs))

    def put(self, url: str | URL, **kwargs: Any) -> _RequestContextManager:
        return _RequestContextManager((self, "PUT", url, kwargs))

    def patch(self, url: str | URL, **kwargs: Any) -> _RequestContextManager:
        return _RequestContextManager((self, "PATCH", url, kwargs))

    def delete(self, url: str | URL, **kwargs: Any) -> _RequestContextManager:
        return _RequestContextManager((self, "DELETE", url, kwargs))

    def head(self, url: str | URL, **kwargs: Any) -> _RequestContextManager:
        return _RequestContextManager((self, "HEAD", url, kwargs))

    def options(self, url: str | URL, **kwargs: Any) -> _RequestContextManager:
        return _RequestContextManager((self, "OPTIONS", url, kwargs))

    # -- sending -------------------------------------------------------------
    async def _send(self, method: str, url: str | URL, **kwargs: Any) -> ClientResponse:
        if self._closed:
            raise RuntimeError("Session is closed")
        _check_keywords(kwargs)
        if not self._started:
            self._started = True
            await self.client.start()  # pre-connect the warm origins
        target = str(url)
        headers = self._headers(kwargs.get("headers"))
        content = _content(kwargs.get("data"), headers)
        timeout = kwargs.get("timeout", DEFAULT)
        try:
            r = await self.client.request(
                method,
                target,
                params=_params(kwargs.get("params")),
                headers=headers,
                content=content,
                json=kwargs.get("json"),
                timeout=self._timeout if timeout is DEFAULT else request_timeout(timeout),
            )
        except errors.WarmlineError as exc:
            raise map_error(exc, target) from exc
        response = ClientResponse(r, method.upper(), target, self)
        if kwargs.get("raise_for_status", self._raise_for_status):
            response.raise_for_status()
        return response

    def _headers(self, given: Any) -> list[tuple[str, str]]:
        """The session's headers, then the request's; the same name: the request's."""
        fields: list[tuple[str, str]] = []
        names: set[str] = set()
        for name, value in given.items() if isinstance(given, Mapping) else given or ():
            lower = name.lower()
            if lower not in _DROPPED:
                fields.append((name, str(value)))
                names.add(lower)
        for name, value in self.headers.items():
            if name.lower() not in names and name.lower() not in _DROPPED:
                fields.append((name, value))
        return fields

    # -- closing -------------------------------------------------------------
    async def close(self) -> None:
        """Close the session (and the client if the session made it)."""
        self._closed = True
        if self._owns_client:
            await self.client.close()

    async def __aenter__(self) -> ClientSession:
        if not self._started:
            self._started = True
            await self.client.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<warmline ClientSession {'closed' if self._closed else 'open'}: {self.client!r}>"


def _check_keywords(kwargs: Mapping[str, Any]) -> None:
    unknown = kwargs.keys() - _KEYWORDS
    if unknown:
        raise TypeError(
            f"warmline's ClientSession does not support {', '.join(sorted(unknown))} "
            f"(supported: {', '.join(sorted(_KEYWORDS))})"
        )
    if kwargs.get("proxy") is not None:
        raise ValueError("warmline's ClientSession does not route through proxies yet (proxy=)")
    if kwargs.get("ssl", True) not in (True, None):
        raise ValueError("per-request ssl= is not supported: give the session tls=ssl_context")


def _params(params: Any) -> Any:
    """aiohttp also takes a query string; warmline wants pairs."""
    if isinstance(params, str):
        return parse_qsl(params, keep_blank_values=True)
    return params


def _content(data: Any, headers: list[tuple[str, str]]) -> bytes | None:
    """The body of ``data=``, adding the Content-Type aiohttp would add."""
    if data is None:
        return None
    has_type = any(name.lower() == "content-type" for name, _ in headers)
    if isinstance(data, bytes | bytearray | memoryview):
        if not has_type:
            headers.append(("Content-Type", "application/octet-stream"))
        return bytes(data)
    if isinstance(data, str):
        if not has_type:
            headers.append(("Content-Type", "text/plain; charset=utf-8"))
        return data.encode("utf-8")
    if isinstance(data, Mapping | list | tuple):
        if not has_type:
            headers.append(("Content-Type", _FORM))
        items = data.items() if isinstance(data, Mapping) else data
        return urlencode(list(items)).encode("ascii")
    raise TypeError(
        f"data of type {type(data).__name__} is not supported (bytes, str or a mapping; "
        "no FormData/multipart)"
    )
