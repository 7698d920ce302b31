"""requests on warm pools (extra ``requests``): ``session.mount("https://", Adapter())``.

:class:`Adapter` is a requests transport adapter that sends each request
through a blocking, thread-safe warmline :class:`~warmline.Client`: requests
keeps its API (sessions, auth, cookies, redirects, hooks, ``iter_content``),
warmline keeps the connections.

How a request is carried over, and why:

- **URL, method, body.** The prepared URL goes as requests built it, without
  its userinfo (requests turned that into an ``Authorization`` header;
  warmline refuses credentials in URLs). A body given as a file or an
  iterator goes up as warmline's streamed upload, never joined in memory: a
  regular file with its ``Content-Length``, anything else (a generator, a
  ``BytesIO``) with ``Transfer-Encoding: chunked``, one chunk per piece. A
  streamed upload is read once: a stale keep-alive connection is not retried
  with it (warmline raises instead of sending a partial body).
- **Headers.** Sent as requests prepared them (its ``User-Agent``,
  ``Accept``, ``Accept-Encoding`` replace warmline's defaults of the same
  name), except ``Content-Length`` and ``Transfer-Encoding`` (the writer
  frames the body and refuses them) and ``Connection``/``Keep-Alive`` (the
  pool decides when a connection is reused).
- **Response, without ``stream=True``.** The whole body is read by
  warmline (``client.request``), decoded by warmline when it has the coding
  (gzip, deflate; br and zstd with their extras), and set as the response's
  content: no urllib3 response is built per request, which is most of what
  makes the adapter cheap (figures in ``Adapter._whole``). ``raw`` is a
  stand-in that makes, on first use, the ``urllib3.HTTPResponse`` requests
  would leave there (already read). A coding warmline did not undo is decoded by urllib3, as usual.
- **Response, with ``stream=True``.** ``send`` returns once the head is in
  (warmline's ``client.stream()``); ``response.raw`` is a
  ``urllib3.HTTPResponse`` whose file reads the body from the connection as
  it is asked for, so ``iter_content``, ``iter_lines`` and ``raw.read(n)``
  hold one piece at a time and decode ``Content-Encoding`` the way requests
  always does. The connection goes back when the body is read to its end or
  the response is closed: reused when complete or its small rest drained,
  else closed (never reused with unread bytes). While the body streams, the
  client's ``Timeouts.read`` bounds each wait. A streamed upload and a
  streamed response go together on one request.
- **Cookies** set by the server go to the response's and the session's jar.
- **Timeouts.** requests gives ``timeout`` as seconds, a ``(connect, read)``
  tuple or a ``urllib3.Timeout``; a warmline request takes one total. The
  total is the **larger** of connect and read, so ``timeout=5`` still means
  about five seconds; it is ``None`` (no bound per request) when read is
  ``None``. The client's own :class:`~warmline.Timeouts` (connect 10 s,
  read inactivity 60 s by default) still apply under it.
- **TLS and proxies.** Verification and client certificates are the
  client's ``tls=`` context, set once: the per-request ``verify`` is
  ignored (warmline always verifies with its context, never less), a
  per-request ``cert`` is refused. A proxy that requests selects for the URL
  (``proxies=``, or ``HTTP(S)_PROXY`` with ``trust_env``) raises
  ``requests.exceptions.ProxyError``: this adapter does not route through
  proxies yet.
- **Errors.** warmline's errors become requests': ``ConnectTimeout`` (also
  for no free connection within ``Timeouts.pool``), ``ReadTimeout``,
  ``Timeout`` (write), ``ProxyError``, ``ConnectionError`` (refused, peer
  closed early, malformed or too large response), ``InvalidURL``; anything
  else is a ``RequestException``. The warmline error is chained as
  ``__cause__``. While a streamed body is read, errors come the way
  urllib3's would: ``requests.exceptions.ConnectionError`` for a read
  timeout, ``ChunkedEncodingError`` for a peer that breaks off.

Example:
    >>> import requests
    >>> from warmline.contrib.requests import Adapter
    >>> session = requests.Session()
    >>> session.mount("https://", Adapter(warm={"https://api.exchange.example": 4}))
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from http.client import HTTPMessage
from typing import Any, Final

try:
    import requests
    import urllib3
    from requests.adapters import BaseAdapter
    from requests.cookies import extract_cookies_to_jar
    from requests.exceptions import RequestException
    from requests.structures import CaseInsensitiveDict
    from requests.utils import get_encoding_from_headers, select_proxy
except ImportError as exc:  # tests/test_contrib_adapter_extras.py
    raise ImportError(
        "warmline.contrib.requests needs requests: pip install 'warmline[requests]'"
    ) from exc

from warmline import errors
from warmline._policy import TimeoutArg
from warmline.http11 import Response
from warmline.http11._writer import ContentArg
from warmline.sync._client import Client

__all__ = ["Adapter", "map_error", "request_timeout"]

_DROPPED: Final = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})

# Most specific first: ConnectTimeout is a ConnectError, ProxyError too.
_ERRORS: Final[tuple[tuple[type[errors.WarmlineError], type[RequestException]], ...]] = (
    (errors.ConnectTimeout, requests.exceptions.ConnectTimeout),
    (errors.PoolTimeout, requests.exceptions.ConnectTimeout),
    (errors.ReadTimeout, requests.exceptions.ReadTimeout),
    (errors.WriteTimeout, requests.exceptions.Timeout),
    (errors.ProxyError, requests.exceptions.ProxyError),
    (errors.ConnectError, requests.exceptions.ConnectionError),
    (errors.ConnectionClosed, requests.exceptions.ConnectionError),
    (errors.ProtocolError, requests.exceptions.ConnectionError),
    (errors.InvalidRequest, requests.exceptions.InvalidURL),
)


def map_error(exc: errors.WarmlineError, request: requests.PreparedRequest) -> RequestException:
    """The requests exception for a warmline error (raise it ``from exc``)."""
    for ours, theirs in _ERRORS:
        if isinstance(exc, ours):
            return theirs(str(exc), request=request)
    return RequestException(str(exc), request=request)


def request_timeout(timeout: Any) -> TimeoutArg:
    """warmline's total timeout for requests' ``timeout=`` argument.

    Args:
        timeout: ``None``, seconds, a ``(connect, read)`` tuple, or a
            ``urllib3.Timeout``.

    Returns:
        The larger of connect and read (``None`` when read is ``None``);
        a ``urllib3.Timeout``'s ``total`` when it has one.

    Raises:
        ValueError: A tuple that is not two items, as requests says.
    """
    if timeout is None:
        return None  # requests' default: wait forever (warmline's phases still bound it)
    if isinstance(timeout, int | float):
        return float(timeout)
    if isinstance(timeout, urllib3.Timeout):
        if isinstance(timeout.total, int | float):
            return float(timeout.total)
        connect, read = timeout.connect_timeout, timeout.read_timeout
    elif isinstance(timeout, tuple):
        if len(timeout) != 2:
            raise ValueError(
                f"Invalid timeout {timeout}. Pass a (connect, read) timeout tuple, "
                "or a single float to set both timeouts to the same value."
            )
        connect, read = timeout
    else:
        raise TypeError(f"timeout must be seconds, a (connect, read) tuple or None: {timeout!r}")
    if not isinstance(read, int | float):
        return None  # None, or urllib3's "use the socket default" sentinel
    if isinstance(connect, int | float):
        return float(max(read, connect))
    return float(read)


def _url(url: str) -> str:
    """The URL without userinfo (requests already sent it as basic auth)."""
    if "@" not in url:
        return url  # the common case, one scan
    start = url.find("://") + 3
    end = len(url)
    for c in "/?#":
        i = url.find(c, start)
        if 0 <= i < end:
            end = i
    at = url.rfind("@", start, end)
    return url if at < 0 else url[:start] + url[at + 1 :]


def _headers(headers: Mapping[str, str | bytes]) -> list[tuple[str, str]]:
    """The prepared request's fields to send, as str pairs, minus warmline's own."""
    if isinstance(headers, CaseInsensitiveDict):
        # Its (lowercase name, (name, value)) pairs: no __getitem__ per field
        # as items() does (0.9 us against 2.2 us for requests' five fields).
        pairs: Iterable[tuple[str, tuple[str, str | bytes]]] = headers._store.items()
    else:
        pairs = ((name.lower(), (name, value)) for name, value in headers.items())
    fields = []
    for lower, (name, value) in pairs:
        if lower in _DROPPED:
            continue
        fields.append((name, value if isinstance(value, str) else value.decode("latin-1")))
    return fields


def _body(body: Any) -> ContentArg | None:
    """The body for warmline: requests gives bytes, str, a file, or an
    iterable of chunks; the last two go up streamed."""
    if body is None or isinstance(body, bytes):
        return body or None
    if isinstance(body, str):
        return body.encode("utf-8")
    if hasattr(body, "read"):
        return body  # type: ignore[no-any-return]
    if isinstance(body, Iterable):
        return _as_bytes(body)
    raise TypeError(f"unsupported request body type {type(body).__name__}")


def _as_bytes(chunks: Iterable[Any]) -> Iterator[bytes]:
    # requests allows str chunks (sent as UTF-8); warmline's writer takes bytes.
    for chunk in chunks:
        yield chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)


_Store = OrderedDict[str, tuple[str, str]]


def _fields(r: Response) -> tuple[CaseInsensitiveDict[str], _Store]:
    """The response's fields as requests holds them (repeated names joined by
    ", ", the first spelling kept, as urllib3 does), and the dict under them.

    Built straight into the dict a ``CaseInsensitiveDict`` keeps (lowercase
    name to ``(name, value)``, its layout since requests 1.x): 2.3 us for
    five fields against 4.9 us through its constructor.
    """
    store: _Store = OrderedDict()  # the type requests' own has
    for raw_name, raw_value in r.raw_headers:
        name = raw_name.decode("latin-1")
        key = name.lower()
        value = raw_value.decode("latin-1")
        seen = store.get(key)
        store[key] = (name, value) if seen is None else (seen[0], f"{seen[1]}, {value}")
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict.__new__(CaseInsensitiveDict)
    headers._store = store
    return headers, store


def _header_dict(r: Response) -> urllib3.HTTPHeaderDict:
    headers = urllib3.HTTPHeaderDict()
    for name, value in r.raw_headers:
        headers.add(name.decode("latin-1"), value.decode("latin-1"))
    return headers


def _decoded(r: Response, store: _Store) -> bytes | None:
    """The body as requests would give it, when warmline already has it:
    no coding, or one warmline undid; None when urllib3 must decode it."""
    coding = store.get("content-encoding")
    if coding is None or coding[1].strip().lower() == "identity":
        return r.content
    raw = r.raw_content
    return r.content if r.content is not raw or not raw else None


class _StreamFile(io.RawIOBase):
    """The file under a streamed response's ``raw``: reads a warmline stream
    as urllib3 asks, one piece in memory at a time.

    At the body's end, or on ``close()``, the warmline stream is closed,
    which gives its connection back (reused, drained or closed). warmline's
    errors become what urllib3 maps from a socket: ``TimeoutError`` (urllib3's
    ``ReadTimeoutError``) and ``ConnectionError`` (its ``ProtocolError``).
    """

    def __init__(self, response: Response) -> None:
        super().__init__()
        self._response = response
        self._pieces = response.iter_raw()
        self._rest = b""

    def readable(self) -> bool:
        return True

    def _piece(self) -> bytes:
        """The next bytes of the body, b"" at its end (then closed)."""
        rest = self._rest
        if rest:
            self._rest = b""
            return rest
        if self.closed:
            return b""
        try:
            return next(self._pieces)
        except StopIteration:
            self.close()
            return b""
        except errors.ReadTimeout as exc:
            self.close()
            raise TimeoutError(str(exc)) from exc
        except errors.WarmlineError as exc:
            self.close()
            raise ConnectionError(str(exc)) from exc

    def read1(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes of what has arrived (waits for one piece)."""
        piece = self._piece()
        if 0 <= size < len(piece):
            self._rest = piece[size:]
            return piece[:size]
        return piece

    def read(self, size: int | None = -1, /) -> bytes:
        """``size`` bytes, fewer only at the body's end; all of it when ``size`` < 0."""
        if size is None or size < 0:
            return self.readall()
        parts = []
        while size > 0 and (piece := self.read1(size)):
            parts.append(piece)
            size -= len(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readall(self) -> bytes:
        parts = []
        while piece := self._piece():
            parts.append(piece)
        return b"".join(parts)

    def readinto(self, buffer: Any) -> int:
        data = self.read1(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._rest = b""
            self._response.close()
        super().close()


class Adapter(BaseAdapter):
    """A requests transport adapter on a blocking warmline :class:`~warmline.Client`.

    Mount it for the URL prefixes it should serve; one adapter (one client)
    serves any number of origins, each on its own warm pool.

    Args:
        client: The client to send through; the caller closes it. When not
            given, the adapter makes one from ``client_options``, starts it
            (pre-connecting ``warm`` origins) and closes it with itself.
        **client_options: :class:`~warmline.Client` options (``warm=``,
            ``limits=``, ``timeout=``, ``tls=``...).

    Raises:
        TypeError: Both a client and options, or a client of another type.
        ConnectError: A ``warm`` origin could not be connected.
    """

    def __init__(self, client: Client | None = None, **client_options: Any) -> None:
        super().__init__()
        if client is not None and client_options:
            raise TypeError("give a client or client options, not both")
        if client is not None and not isinstance(client, Client):
            raise TypeError(f"client must be a warmline.Client, got {type(client).__name__}")
        self._owns_client = client is None
        self.client = client if client is not None else Client(**client_options)
        if self._owns_client:
            self.client.start()

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send one prepared request on a warm connection (``Session.send`` calls it).

        Raises:
            requests.exceptions.RequestException: A subclass, per the module docs.
            ValueError: A per-request ``cert`` (configure ``tls=`` instead).
        """
        url = request.url or ""
        self._check(request, url, cert, proxies)
        method = request.method or "GET"
        headers = _headers(request.headers)
        body = _body(request.body)
        seconds = request_timeout(timeout)
        client = self.client
        try:
            if stream:
                ctx = client.stream(
                    method, _url(url), headers=headers, content=body, timeout=seconds
                )
                return self.build_response(request, ctx.__enter__())
            r = client.request(method, _url(url), headers=headers, content=body, timeout=seconds)
        except errors.WarmlineError as exc:
            raise map_error(exc, request) from exc
        if stream:
            return self.build_response(request, r)
        return self._whole(request, r)

    def _whole(self, request: requests.PreparedRequest, r: Response) -> requests.Response:
        """The response for ``stream=False``, its body already in ``content``.

        Per GET of a 100-byte JSON from nginx, one session in a loop
        (2026-12-01; callgrind, the whole client process): stock requests
        1,960k instructions; this adapter when it built a urllib3 response
        per request and let requests read it, 1,212k (0.62x); with this
        path 1,010k (0.52x), 135-145 us of CPU against stock's 310-375.
        The rest is requests' own (``prepare_request`` alone is a third).
        """
        headers, store = _fields(r)
        content = _decoded(r, store)
        if content is None or "set-cookie" in store:
            return self.build_response(request, r)  # urllib3 decodes, or cookies to read
        response = requests.Response()
        response.raw = _SpentRaw(request, r)
        response._content = content
        response._content_consumed = True
        response.status_code = r.status
        response.headers = headers
        response.encoding = get_encoding_from_headers(headers)
        response.reason = r.reason
        response.url = request.url or ""
        response.request = request
        response.connection = self  # type: ignore[assignment]
        return response

    @staticmethod
    def _check(
        request: requests.PreparedRequest,
        url: str,
        cert: Any,
        proxies: Mapping[str, str] | None,
    ) -> None:
        if cert is not None:
            raise ValueError(
                "a per-request cert is not supported: give the Adapter "
                "tls=ssl_context with load_cert_chain(...) instead"
            )
        if proxies and select_proxy(url, dict(proxies)):
            raise requests.exceptions.ProxyError(
                "warmline's Adapter does not route through proxies yet; unset the proxy "
                "(or HTTP(S)_PROXY, or session.trust_env = False) for this URL",
                request=request,
            )

    def build_response(self, request: requests.PreparedRequest, r: Response) -> requests.Response:
        """A requests response over a warmline response, whole or streamed.

        Its ``raw`` is a ``urllib3.HTTPResponse`` that reads the body as sent
        (from memory, or from the connection for a stream) and decodes it.
        """
        headers = _header_dict(r)
        raw = _raw(request, r, headers)
        response = requests.Response()
        response.status_code = r.status
        response.headers = CaseInsensitiveDict(headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = raw
        response.reason = r.reason
        response.url = request.url or ""
        response.request = request
        # Typed HTTPAdapter in requests, but only send() is used on it (digest auth).
        response.connection = self  # type: ignore[assignment]
        if "set-cookie" in headers:
            # requests reads cookies from the http.client response under raw
            # (Session.send for the session's jar): give it the one part it reads.
            raw._original_response = _HeadOnly(headers)  # type: ignore[assignment]
            extract_cookies_to_jar(response.cookies, request, raw)
        return response

    def close(self) -> None:
        """Close the client if this adapter made it (``Session.close`` calls it)."""
        if self._owns_client:
            self.client.close()


def _raw(
    request: requests.PreparedRequest, r: Response, headers: urllib3.HTTPHeaderDict
) -> urllib3.HTTPResponse:
    body = io.BytesIO(r.raw_content) if r.is_stream_consumed else _StreamFile(r)
    return urllib3.HTTPResponse(
        body=body,
        headers=headers,
        status=r.status,
        reason=r.reason,
        version=11,
        preload_content=False,
        decode_content=True,
        request_method=request.method,
        request_url=request.url,
    )


class _SpentRaw:
    """``raw`` for ``stream=False``: a stand-in for the spent
    ``urllib3.HTTPResponse`` requests leaves there once it has the content,
    made on first use of anything but ``_original_response``.

    requests' ``Session.send`` reads ``raw._original_response`` of every
    response (cookies); few callers read more, and building the urllib3
    response with its header dict cost 12 us per request.
    """

    __slots__ = ("_made", "_request", "_response")

    _original_response = None  # no Set-Cookie: those take build_response

    def __init__(self, request: requests.PreparedRequest, r: Response) -> None:
        self._request = request
        self._response = r
        self._made: urllib3.HTTPResponse | None = None

    def __getattr__(self, name: str) -> Any:
        made = self._made
        if made is None:
            r = self._response
            made = self._made = _raw(self._request, r, _header_dict(r))
            made.read()  # spent, as requests leaves it
        return getattr(made, name)

    def __repr__(self) -> str:
        return f"<spent urllib3 response [{self._response.status}]>"


class _HeadOnly:
    """What requests and urllib3 touch of an ``http.client.HTTPResponse``: the
    header message (for cookies) and close/isclosed (nothing to close here)."""

    def __init__(self, headers: urllib3.HTTPHeaderDict) -> None:
        self.msg = HTTPMessage()
        for name, value in headers.iteritems():
            self.msg[name] = value

    def close(self) -> None:
        pass

    def isclosed(self) -> bool:
        return True
