"""httpx on warm pools (extra ``httpx``): ``httpx.AsyncClient(transport=AsyncTransport())``.

:class:`AsyncTransport` and :class:`Transport` are httpx transports that send
each request through a warmline client (:class:`~warmline.AsyncClient`,
:class:`~warmline.Client`): httpx keeps its API (params, cookies, auth,
redirects, events, response decoding), warmline keeps the connections.

How a request is carried over, and why:

- **URL, method, body.** The URL goes as httpx built it (params merged,
  percent-encoded), without its userinfo (httpx turned that into an
  ``Authorization`` header; warmline refuses credentials in URLs). The
  request body is read whole first (``request.read()``) and sent with a
  ``Content-Length``: warmline's writer does not stream uploads yet.
- **Headers.** Sent as httpx built them (its ``User-Agent``, ``Accept``,
  ``Accept-Encoding`` replace warmline's defaults of the same name), except
  the fields warmline owns: ``Content-Length`` and ``Transfer-Encoding``
  (the writer frames the body and refuses them), ``Connection`` and
  ``Keep-Alive`` (the pool decides when a connection is reused), and a
  ``Host`` equal to the URL's (warmline writes the same line itself; a
  different ``Host`` is kept).
- **Response.** warmline has no streaming responses yet: the whole body is
  read before the transport returns, and handed to httpx as a ``ByteStream``.
  httpx decodes ``Content-Encoding`` itself, as with its own transport.
- **Timeouts.** httpx gives four phase timeouts per request (``connect``,
  ``read``, ``write``, ``pool``); a warmline request takes one total. The
  total is the **largest** of the four, so ``timeout=5.0`` still means about
  five seconds (the sum would make it twenty); it is ``None`` (no bound per
  request) when ``read`` or ``write`` is ``None``. The client's own
  :class:`~warmline.Timeouts` (connect 10 s, read inactivity 60 s by default)
  still apply under it; set them with ``timeout=`` on the transport.
- **Errors.** warmline's errors become httpx's: ``ConnectTimeout``,
  ``ReadTimeout``, ``WriteTimeout``, ``PoolTimeout``, ``ProxyError``,
  ``ConnectError``, ``RemoteProtocolError`` (the peer closed early, a
  malformed or too large response), ``LocalProtocolError`` (a request
  warmline refuses to write) and ``UnsupportedProtocol`` (not http/https);
  anything else is a ``TransportError``. The warmline error is chained as
  ``__cause__``.

Example:
    >>> import httpx
    >>> from warmline.contrib.httpx import AsyncTransport
    >>> async def main() -> None:
    ...     transport = AsyncTransport(warm={"https://api.exchange.example": 4})
    ...     async with httpx.AsyncClient(transport=transport) as client:
    ...         r = await client.get("https://api.exchange.example/api/v3/time")
"""

from __future__ import annotations

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
from warmline.sync._client import Client

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
    if phases.get("read") is None or phases.get("write") is None:
        return None
    return max(float(v) for v in phases.values() if v is not None)


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


def _response(r: Response) -> httpx.Response:
    """An httpx response over a complete warmline response."""
    return httpx.Response(
        r.status,
        headers=r.raw_headers,
        stream=httpx.ByteStream(r.raw_content),
        extensions={"http_version": _HTTP_VERSION, "reason_phrase": r.reason.encode("latin-1")},
    )


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
        """Send one request on a warm connection; the body comes back whole."""
        _check_scheme(request)
        body = await request.aread()
        try:
            r = await self.client.request(
                request.method,
                _url(request),
                headers=_headers(request),
                content=body or None,
                timeout=request_timeout(request),
            )
        except errors.WarmlineError as exc:
            raise map_error(exc, request) from exc
        return _response(r)

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
        """Send one request on a warm connection; the body comes back whole."""
        _check_scheme(request)
        body = request.read()
        try:
            r = self.client.request(
                request.method,
                _url(request),
                headers=_headers(request),
                content=body or None,
                timeout=request_timeout(request),
            )
        except errors.WarmlineError as exc:
            raise map_error(exc, request) from exc
        return _response(r)

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
