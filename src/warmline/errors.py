"""The one exception tree of warmline.

Every error warmline raises is a :class:`WarmlineError`. Subclasses name the
phase that failed (pool, connect, write, read, protocol, request building), so
callers can catch exactly what they can handle. Each error carries the origin
and, where known, the method and path of the request it belongs to, survives
pickling (for process pools and logging handlers), and chains the low-level
exception it came from (``raise ... from exc``).
"""

from __future__ import annotations

import builtins
from typing import Any

__all__ = [
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "DecodingError",
    "HTTPStatusError",
    "InvalidRequest",
    "PoolClosed",
    "PoolError",
    "PoolTimeout",
    "ProtocolError",
    "ProxyError",
    "RateLimited",
    "ReadTimeout",
    "ResponseTooLarge",
    "StreamClosed",
    "Timeout",
    "TooManyRedirects",
    "WarmlineError",
    "WriteTimeout",
]


class WarmlineError(Exception):
    """Root of every error warmline raises.

    Attributes:
        message: What went wrong, in words.
        origin: ``scheme://host:port`` of the pool, when known.
        method: The request method, when the error belongs to a request.
        path: The request path, when the error belongs to a request.
    """

    def __init__(
        self,
        message: str,
        *,
        origin: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.origin = origin
        self.method = method
        self.path = path

    def __str__(self) -> str:
        where = " ".join(p for p in (self.method, self.path) if p)
        if self.origin:
            where = f"{self.origin} {where}" if where else self.origin
        return f"{self.message} ({where})" if where else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # The default reduce replays only positional args; the context is
        # keyword-only, so restore it from the instance dict.
        return (type(self), (self.message,), dict(self.__dict__))

    def with_context(
        self, *, origin: str | None = None, method: str | None = None, path: str | None = None
    ) -> WarmlineError:
        """Fill in context that the raising layer did not know; returns self."""
        self.origin = self.origin or origin
        self.method = self.method or method
        self.path = self.path or path
        return self


class Timeout(WarmlineError, builtins.TimeoutError):
    """Base of every timeout; also a builtin ``TimeoutError``."""


class PoolError(WarmlineError):
    """The pool could not hand out a slot."""


class PoolTimeout(PoolError, Timeout):
    """``acquire(timeout=...)`` expired before a slot became ready."""


class PoolClosed(PoolError):
    """The pool is closed (or closed while the caller was waiting)."""


class ConnectError(WarmlineError):
    """A connection could not be opened (refused, DNS, TLS handshake...)."""


class ConnectTimeout(ConnectError, Timeout):
    """Opening a connection took longer than ``connect_timeout``."""


class ReadTimeout(Timeout):
    """The response did not complete within the request's timeout."""


class WriteTimeout(Timeout):
    """The request could not be sent within the request's timeout."""


class ConnectionClosed(WarmlineError):
    """The peer closed the connection before a complete response arrived.

    Attributes:
        received_any: Whether any byte of the response had arrived; a request
            on a stale keep-alive connection fails with ``received_any=False``
            and is safe to retry when idempotent.
    """

    def __init__(
        self,
        message: str,
        *,
        received_any: bool = False,
        origin: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message, origin=origin, method=method, path=path)
        self.received_any = received_any


class ProtocolError(WarmlineError):
    """The peer sent something that is not valid HTTP/1.1."""


class ResponseTooLarge(ProtocolError):
    """The response exceeded a configured limit (head size, header count, body)."""


class InvalidRequest(WarmlineError):
    """The request cannot be sent as given (CR/LF/NUL in a header, bad URL...)."""


class DecodingError(ProtocolError):
    """A response body's Content-Encoding could not be decoded (corrupt stream)."""


class ProxyError(ConnectError):
    """The proxy refused or failed to open the tunnel.

    Attributes:
        proxy: The proxy's URL without credentials.
        status: The proxy's HTTP status (407, 403, 502...) or SOCKS5 reply
            code, when it answered.
    """

    def __init__(
        self,
        message: str,
        *,
        proxy: str | None = None,
        status: int | None = None,
        origin: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message, origin=origin, method=method, path=path)
        self.proxy = proxy
        self.status = status


class HTTPStatusError(WarmlineError):
    """``Response.raise_for_status()`` met a 4xx or 5xx status.

    Attributes:
        status: The response's status code.
        response: The response itself (not kept when the error is pickled).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        response: Any = None,
        origin: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message, origin=origin, method=method, path=path)
        self.status = status
        self.response = response

    def __reduce__(self) -> tuple[Any, ...]:
        state = dict(self.__dict__)
        state["response"] = None  # a response holds buffers and a connection's state
        return (type(self), (self.message,), state)


class TooManyRedirects(WarmlineError):
    """A request was redirected more than ``max_redirects`` times."""


class RateLimited(WarmlineError):
    """A rate limiter would make the caller wait past its timeout.

    Attributes:
        retry_after: Seconds until enough budget is back, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        origin: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message, origin=origin, method=method, path=path)
        self.retry_after = retry_after


class StreamClosed(WarmlineError):
    """A streamed response's body was read after the stream was closed or released."""
