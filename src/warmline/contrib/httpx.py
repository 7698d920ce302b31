"""httpx on warm pools (extra ``httpx``): ``httpx.AsyncClient(transport=AsyncTransport())``.

:class:`AsyncTransport` and :class:`Transport` are httpx transports that send
each request through a warmline client (:class:`~warmline.AsyncClient`,
:class:`~warmline.Client`): httpx keeps its API (params, cookies, auth,
redirects, events, response decoding), warmline keeps the connections.

How a request is carried over, and why:

- **URL, method, body.** The URL goes as httpx built it (params merged,
  percent-encoded), without its userinfo (httpx turned that into an
  ``Authorization`` header; warmline refuses credentials in URLs). A body
  httpx holds in memory (``content=`` bytes, ``json=``, ``data=``) and a
  multipart body are sent whole with a ``Content-Length``; a body given as
  an iterator (``content=`` a generator, an async generator) goes up as
  warmline's streamed upload (``Transfer-Encoding: chunked``, one chunk per
  piece, never joined in memory). A streamed upload is read once: a stale
  keep-alive connection is not retried with it (warmline raises instead of
  sending a partial body).
- **Headers.** Sent as httpx built them (its ``User-Agent``, ``Accept``,
  ``Accept-Encoding`` replace warmline's defaults of the same name), except
  the fields warmline owns: ``Content-Length`` and ``Transfer-Encoding``
  (the writer frames the body and refuses them), ``Connection`` and
  ``Keep-Alive`` (the pool decides when a connection is reused), and a
  ``Host`` equal to the URL's (warmline writes the same line itself; a
  different ``Host`` is kept).
- **Response.** The transport returns once the response head is in
  (warmline's ``client.stream()``); the response's stream iterates the body
  as it arrives (as sent: httpx decodes ``Content-Encoding`` itself, as with
  its own transport), so ``client.stream(...)`` with ``aiter_bytes()`` holds
  one piece at a time, and ``aclose()``/``close()`` gives the connection
  back: reused when the body was read to its end or its small rest drained,
  else closed (never reused with unread bytes). httpx reads the whole body
  itself when not streaming: that path costs 7 % more than handing httpx
  a whole body did (callgrind, one GET of 100 bytes from nginx, the whole
  client process: 801k instructions against 749k; httpx's own transport
  1,589k), the price of one code path whose memory never grows with the
  body. A streamed upload and a streamed response go together on one
  request.
- **Timeouts.** httpx gives four phase timeouts per request (``connect``,
  ``read``, ``write``, ``pool``); a warmline request takes one total. The
  total is the **largest** of the four, so ``timeout=5.0`` still means about
  five seconds (the sum would make it twenty); it is ``None`` (no bound per
  request) when ``read`` or ``write`` is ``None``. The client's own
  :class:`~warmline.Timeouts` (connect 10 s, read inactivity 60 s by default)
  still apply under it; set them with ``timeout=`` on the transport. Once
  the head is in, the wait for each piece of a streamed body is bounded by
  the client's ``Timeouts.read`` (not httpx's ``read``: warmline's streams
  take their read timeout from the client).
- **Errors.** warmline's errors become httpx's: ``ConnectTimeout``,
  ``ReadTimeout``, ``WriteTimeout``, ``PoolTimeout``, ``ProxyError``,
  ``ConnectError``, ``RemoteProtocolError`` (the peer closed early, a
  malformed or too large response), ``LocalProtocolError`` (a request
  warmline refuses to write) and ``UnsupportedProtocol`` (not http/https);
  anything else is a ``TransportError``; the same while the body streams.
  The warmline error is chained as ``__cause__``.

Example:
    >>> import httpx
    >>> from warmline.contrib.httpx import AsyncTransport
    >>> async def main() -> None:
    ...     transport = AsyncTransport(warm={"https://api.exchange.example": 4})
    ...     async with httpx.AsyncClient(transport=transport) as client:
    ...         r = await client.get("https://api.exchange.example/api/v3/time")
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any, Final

try:
    import httpx
except ImportError as exc:  # tests/test_contrib_adapter_extras.py
    raise ImportError("warmline.contrib.httpx needs httpx: pip install 'warmline[httpx]'") from exc

from warmline import errors
from warmline._policy import DEFAULT, TimeoutArg
from warmline.aio._client import AsyncClient
from warmline.http11 import Response
from warmline.http11._writer import ContentArg
from warmline.sync._client import Client

try:  # not public in httpx; absent in some version, multipart is simply streamed
    from httpx._multipart import MultipartStream as _MultipartStream
except ImportError:  # pragma: no cover
    _MultipartStream = httpx.ByteStream  # type: ignore[misc,assignment]

__all__ = ["AsyncTransport", "Transport", "map_error", "request_timeout"]

# Fields warmline writes or manages itself (see the module docstring).
_DROPPED: Final = frozenset({b"content-length", b"transfer-encoding", b"connection", b"keep-alive"})
_HTTP_VERSION: Final = b"HTTP/1.1"

# Most specific first: ConnectTimeout is a ConnectError, ProxyError too.
_ERRORS: Final[tuple[tuple[type[errors.WarmlineError], type[httpx.TransportError]], ...]] = (
    (errors.ConnectTimeout, httpx.ConnectTimeout),
    (errors.PoolTimeout, httpx.PoolTimeout),
    (errors.ReadTimeout, httpx.ReadTimeout),
    (errors.WriteTimeout, httpx.WriteTimeout),
    (errors.ProxyError, httpx.ProxyError),
    (errors.ConnectError, httpx.ConnectError),
    (errors.ConnectionClosed, httpx.RemoteProtocolError),
    (errors.ProtocolError, httpx.RemoteProtocolError),
    (errors.InvalidRequest, httpx.LocalProtocolError),
)


def map_error(exc: errors.WarmlineError, request: httpx.Request) -> httpx.TransportError:
    """The httpx exception for a warmline error (raise it ``from exc``).

    Args:
        exc: What warmline raised.
        request: The httpx request it belongs to.
    """
    for ours, theirs in _ERRORS:
        if isinstance(exc, ours):
            return theirs(str(exc), request=request)
    return httpx.TransportError(str(exc), request=request)


def request_timeout(request: httpx.Request) -> TimeoutArg:
    """warmline's total timeout for an httpx request's ``timeout`` extension.

    Returns:
        The largest of the phase timeouts; ``None`` when ``read`` or ``write``
        is ``None``; the client's default when the extension is absent.
    """
    phases = request.extensions.get("timeout")
    if not phases:
        return DEFAULT
    read, write = phases.get("read"), phases.get("write")
    if read is None or write is None:
        return None
    # No generator: this runs per request (four known keys).
    connect, pool = phases.get("connect"), phases.get("pool")
    longest = max(read, write)
    if connect is not None and connect > longest:
        longest = connect
    if pool is not None and pool > longest:
        longest = pool
    return float(longest)


def _check_scheme(request: httpx.Request) -> None:
    scheme = request.url.scheme
    if scheme not in ("http", "https"):
        # httpx's own transport raises the same for e.g. ftp:// or a bare path.
        raise httpx.UnsupportedProtocol(
            f"request URL has an unsupported protocol {scheme + '://'!r}", request=request
        )


def _url(request: httpx.Request) -> str:
    """The URL to send: as httpx built it, without userinfo (httpx sent it as auth)."""
    url = request.url
    if not url.userinfo:
        return str(url)
    return f"{url.scheme}://{url.netloc.decode('ascii')}{url.raw_path.decode('ascii')}"


def _headers(request: httpx.Request) -> list[tuple[str, str]]:
    """The request's fields that warmline should send, as str pairs."""
    host = request.url.netloc
    fields = []
    for name, value in request.headers.raw:
        lower = name.lower()
        if lower in _DROPPED or (lower == b"host" and value == host):
            continue
        fields.append((name.decode("ascii"), value.decode("latin-1")))
    return fields


def _streamed(request: httpx.Request) -> bool:
    """Whether the request's body is an iterator to send as a streamed upload.

    httpx keeps bodies it built (bytes, JSON, forms) in a ``ByteStream``;
    multipart stays whole too (it knows its length, and a file part may be
    re-read), as before.
    """
    stream = request.stream
    return not isinstance(stream, httpx.ByteStream | _MultipartStream)


def _response(r: Response, stream: httpx.SyncByteStream | httpx.AsyncByteStream) -> httpx.Response:
    """An httpx response with warmline's head and ``stream`` as its body."""
    return httpx.Response(
        r.status,
        headers=r.raw_headers,
        stream=stream,
        extensions={"http_version": _HTTP_VERSION, "reason_phrase": r.reason.encode("latin-1")},
    )


class _AsyncBody(httpx.AsyncByteStream):
    """httpx's view of a warmline asyncio stream: the body as sent, piece by piece."""

    def __init__(self, response: Response, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for piece in self._response.aiter_raw():
                yield piece
        except errors.WarmlineError as exc:
            raise map_error(exc, self._request) from exc

    async def aclose(self) -> None:
        # Read to its end: the connection is reused. Else drained when the
        # rest is small, closed otherwise (warmline.aio._stream).
        await self._response.aclose()


class _SyncBody(httpx.SyncByteStream):
    """httpx's view of a warmline blocking stream."""

    def __init__(self, response: Response, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._response.iter_raw()
        except errors.WarmlineError as exc:
            raise map_error(exc, self._request) from exc

    def close(self) -> None:
        self._response.close()


def _check_client(client: Any, options: dict[str, Any], kind: type[Any]) -> None:
    if client is not None and options:
        raise TypeError("give a client or client options, not both")
    if client is not None and not isinstance(client, kind):
        raise TypeError(f"client must be a warmline.{kind.__name__}, got {type(client).__name__}")


class AsyncTransport(httpx.AsyncBaseTransport):
    """An httpx async transport on a warmline :class:`~warmline.AsyncClient`.

    Args:
        client: The client to send through; the caller closes it. When not
            given, the transport makes one from ``client_options`` and closes
            it with itself.
        **client_options: :class:`~warmline.AsyncClient` options (``warm=``,
            ``limits=``, ``timeout=``, ``tls=``...).

    Raises:
        TypeError: Both a client and options, or a client of another type.
    """

    def __init__(self, client: AsyncClient | None = None, **client_options: Any) -> None:
        _check_client(client, client_options, AsyncClient)
        self._owns_client = client is None
        self.client = client if client is not None else AsyncClient(**client_options)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send one request on a warm connection; return once its head is in."""
        _check_scheme(request)
        client = self.client
        method, url, headers = request.method, _url(request), _headers(request)
        timeout = request_timeout(request)
        try:
            content: ContentArg | None = (
                request.stream if _streamed(request) else (await request.aread()) or None
            )
            r = await client.stream(
                method, url, headers=headers, content=content, timeout=timeout
            ).__aenter__()
        except errors.WarmlineError as exc:
            raise map_error(exc, request) from exc
        return _response(r, _AsyncBody(r, request))

    async def __aenter__(self) -> AsyncTransport:
        """Pre-connect the client's ``warm`` origins (``httpx.AsyncClient`` calls it)."""
        await self.client.start()
        return self

    async def __aexit__(
        self,
        et: type[BaseException] | None = None,
        e: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client if this transport made it."""
        if self._owns_client:
            await self.client.close()


class Transport(httpx.BaseTransport):
    """An httpx transport on a blocking, thread-safe warmline :class:`~warmline.Client`.

    Args:
        client: The client to send through; the caller closes it. When not
            given, the transport makes one from ``client_options`` and closes
            it with itself.
        **client_options: :class:`~warmline.Client` options.

    Raises:
        TypeError: Both a client and options, or a client of another type.
    """

    def __init__(self, client: Client | None = None, **client_options: Any) -> None:
        _check_client(client, client_options, Client)
        self._owns_client = client is None
        self.client = client if client is not None else Client(**client_options)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send one request on a warm connection; return once its head is in."""
        _check_scheme(request)
        client = self.client
        method, url, headers = request.method, _url(request), _headers(request)
        timeout = request_timeout(request)
        try:
            content: ContentArg | None = (
                request.stream if _streamed(request) else request.read() or None
            )
            r = client.stream(
                method, url, headers=headers, content=content, timeout=timeout
            ).__enter__()
        except errors.WarmlineError as exc:
            raise map_error(exc, request) from exc
        return _response(r, _SyncBody(r, request))

    def __enter__(self) -> Transport:
        """Pre-connect the client's ``warm`` origins (``httpx.Client`` calls it)."""
        self.client.start()
        return self

    def __exit__(
        self,
        et: type[BaseException] | None = None,
        e: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the client if this transport made it."""
        if self._owns_client:
            self.client.close()
