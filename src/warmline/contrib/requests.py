"""requests on warm pools (extra ``requests``): ``session.mount("https://", Adapter())``.

:class:`Adapter` is a requests transport adapter that sends each request
through a blocking, thread-safe warmline :class:`~warmline.Client`: requests
keeps its API (sessions, auth, cookies, redirects, hooks, ``iter_content``),
warmline keeps the connections.

How a request is carried over, and why:

- **URL, method, body.** The prepared URL goes as requests built it, without
  its userinfo (requests turned that into an ``Authorization`` header;
  warmline refuses credentials in URLs). A body given as a file or an
  iterator is read whole first and sent with a ``Content-Length``: warmline's
  writer does not stream uploads yet.
- **Headers.** Sent as requests prepared them (its ``User-Agent``,
  ``Accept``, ``Accept-Encoding`` replace warmline's defaults of the same
  name), except ``Content-Length`` and ``Transfer-Encoding`` (the writer
  frames the body and refuses them) and ``Connection``/``Keep-Alive`` (the
  pool decides when a connection is reused).
- **Response.** warmline has no streaming responses yet: the whole body is
  read before ``send`` returns, also with ``stream=True``; ``response.raw``
  is a ``urllib3.HTTPResponse`` over the body in memory, so ``iter_content``,
  ``iter_lines`` and ``raw.read(decode_content=True)`` work as usual and
  decode ``Content-Encoding`` the way requests always does. Cookies set by
  the server go to the session's jar.
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
  ``__cause__``.

Example:
    >>> import requests
    >>> from warmline.contrib.requests import Adapter
    >>> session = requests.Session()
    >>> session.mount("https://", Adapter(warm={"https://api.exchange.example": 4}))
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
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
    start = url.find("://") + 3
    end = len(url)
    for c in "/?#":
        i = url.find(c, start)
        if 0 <= i < end:
            end = i
    at = url.rfind("@", start, end)
    return url if at < 0 else url[:start] + url[at + 1 :]


def _headers(headers: Mapping[str, str | bytes]) -> list[tuple[str, str]]:
    fields = []
    for name, value in headers.items():
        if name.lower() in _DROPPED:
            continue
        fields.append((name, value if isinstance(value, str) else value.decode("latin-1")))
    return fields


def _body(body: Any) -> bytes | None:
    """The whole body: requests gives bytes, str, a file, or an iterable of chunks."""
    if body is None or isinstance(body, bytes):
        return body or None
    if isinstance(body, str):
        return body.encode("utf-8")
    if hasattr(body, "read"):
        data = body.read()
        return (data.encode("utf-8") if isinstance(data, str) else bytes(data)) or None
    if isinstance(body, Iterable):
        chunks = (c.encode("utf-8") if isinstance(c, str) else bytes(c) for c in body)
        return b"".join(chunks) or None
    raise TypeError(f"unsupported request body type {type(body).__name__}")


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
        try:
            r = self.client.request(
                request.method or "GET",
                _url(url),
                headers=_headers(request.headers),
                content=_body(request.body),
                timeout=request_timeout(timeout),
            )
        except errors.WarmlineError as exc:
            raise map_error(exc, request) from exc
        return self.build_response(request, r)

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
        """A requests response over a complete warmline response."""
        headers = urllib3.HTTPHeaderDict()
        for name, value in r.raw_headers:
            headers.add(name.decode("latin-1"), value.decode("latin-1"))
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(r.raw_content),
            headers=headers,
            status=r.status,
            reason=r.reason,
            version=11,
            preload_content=False,
            decode_content=True,
            request_method=request.method,
            request_url=request.url,
        )
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
