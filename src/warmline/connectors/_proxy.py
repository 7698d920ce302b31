"""A parsed proxy URL: where the proxy is, how to speak to it, its credentials.

Credentials are kept for the handshake and shown nowhere: ``repr``, ``str``,
``redacted`` and every error message carry ``***@`` at most, and the
errors raised while parsing never echo the URL given.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import unquote, urlsplit

from warmline.errors import InvalidRequest
from warmline.http11._writer import _check_name, _check_value

__all__ = ["DEFAULT_PROXY_PORTS", "Proxy", "ProxyArg", "as_proxy"]

# Ports when the URL names none: the scheme's own for HTTP(S) proxies (as
# urllib3 and requests do), RFC 1928's 1080 for SOCKS. curl differs: it
# assumes 1080 for every proxy without a port.
DEFAULT_PROXY_PORTS: Final = {"http": 80, "https": 443, "socks5": 1080, "socks5h": 1080}

# RFC 1929 §2: ULEN and PLEN are one octet each.
_SOCKS_CREDENTIAL_MAX: Final = 255


class Proxy:
    """A proxy to reach origins through (``warmline.Proxy``).

    Args:
        url: ``http://[user:pass@]host:port`` (CONNECT tunnels for https
            origins, absolute-form requests for http origins),
            ``https://...`` (TLS to the proxy first), ``socks5://...``
            (names resolved here) or ``socks5h://...`` (names resolved by
            the proxy). Percent-encoded credentials are decoded.
        headers: Extra headers for the proxy, sent with every CONNECT (and
            every absolute-form request) of an HTTP(S) proxy.
        tls: The SSLContext for the TLS connection to an ``https://`` proxy
            (None: verified against the system's CA store). The origin's TLS
            inside the tunnel uses the pool's own ``tls``.

    Raises:
        ValueError: Unsupported scheme, no host, a bad port, a path or query,
            SOCKS credentials over 255 bytes, or a bad header. The message
            never contains the URL's credentials.
        TypeError: ``url`` is not a str, or ``tls`` not an SSLContext.

    Example:
        >>> p = Proxy("http://alice:s3cret@127.0.0.1:3128")
        >>> p
        Proxy('http://***@127.0.0.1:3128')
    """

    __slots__ = ("_password", "_username", "headers", "host", "port", "scheme", "tls")

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        *,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if not isinstance(url, str):
            raise TypeError(f"proxy URL must be a str, not {type(url).__name__}")
        if tls is not None and not isinstance(tls, ssl.SSLContext):
            raise TypeError(f"tls must be an ssl.SSLContext or None, not {type(tls).__name__}")
        scheme, host, port, username, password = _parse(url)
        self.scheme: str = scheme
        self.host: str = host
        self.port: int = port
        self._username = username
        self._password = password
        self.tls = tls
        self.headers: tuple[tuple[str, str], ...] = _check_headers(headers)
        if self.is_socks:
            _check_socks_credentials(username, password)

    # -- what the shells ask -----------------------------------------------
    @property
    def is_socks(self) -> bool:
        """Whether this is a SOCKS5 proxy (``socks5://`` or ``socks5h://``)."""
        return self.scheme.startswith("socks")

    @property
    def remote_dns(self) -> bool:
        """Whether the proxy resolves origin names (``socks5h``, and HTTP CONNECT)."""
        return self.scheme != "socks5"

    @property
    def uses_tls(self) -> bool:
        """Whether the connection to the proxy itself is TLS (``https://``)."""
        return self.scheme == "https"

    @property
    def credentials(self) -> tuple[str, str] | None:
        """``(username, password)``, or None without credentials."""
        if self._username is None:
            return None
        return self._username, self._password or ""

    def authorization(self) -> str | None:
        """The ``Proxy-Authorization`` value (RFC 9110 §11.7.1, Basic), or None."""
        creds = self.credentials
        if creds is None:
            return None
        # RFC 7617 §2.1: UTF-8 is what every current proxy expects.
        token = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode("ascii")
        return f"Basic {token}"

    # -- how it is shown -----------------------------------------------------
    @property
    def redacted(self) -> str:
        """The URL with the credentials replaced by ``***`` (safe to log).

        The user name goes too: proxy vendors put account and session ids in it.
        """
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = "" if self._username is None else "***@"
        return f"{self.scheme}://{user}{host}:{self.port}"

    def __repr__(self) -> str:
        return f"Proxy({self.redacted!r})"

    def __str__(self) -> str:
        return self.redacted

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Proxy):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[object, ...]:
        return (self.scheme, self.host, self.port, self._username, self._password, self.headers)


ProxyArg = str | Proxy | None


def as_proxy(proxy: ProxyArg) -> Proxy | None:
    """``proxy=`` as given by a user (a URL, a Proxy or None) as a Proxy or None."""
    if proxy is None or isinstance(proxy, Proxy):
        return proxy
    if isinstance(proxy, str):
        return Proxy(proxy)
    raise TypeError(
        f"proxy must be a URL str, a warmline.Proxy or None, not {type(proxy).__name__}"
    )


def _parse(url: str) -> tuple[str, str, int, str | None, str | None]:
    """``(scheme, host, port, username, password)``; errors never echo the URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ValueError("invalid proxy URL (bad host or port)") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PROXY_PORTS:
        raise ValueError(f"proxy URL scheme must be http, https, socks5 or socks5h, got {scheme!r}")
    host = parts.hostname
    if not host or any(c in host for c in "\r\n\0 \t/\\@"):
        raise ValueError(f"proxy URL has no valid host ({scheme}://...)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"a proxy URL has no path or query ({scheme}://{host}...)")
    if port == 0:
        raise ValueError(f"proxy port must be 1-65535 ({scheme}://{host}:0)")
    username = None if parts.username is None else unquote(parts.username)
    password = None if parts.password is None else unquote(parts.password)
    return scheme, host, port or DEFAULT_PROXY_PORTS[scheme], username, password


def _check_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
) -> tuple[tuple[str, str], ...]:
    if headers is None:
        return ()
    items = headers.items() if isinstance(headers, Mapping) else headers
    out = []
    for name, value in items:
        try:
            _check_name(name)
            out.append((name, _check_value(value, name)))
        except InvalidRequest as exc:  # a constructor argument: ValueError
            raise ValueError(f"proxy header: {exc}") from None
    return tuple(out)


def _check_socks_credentials(username: str | None, password: str | None) -> None:
    for what, text in (("username", username), ("password", password)):
        if text is not None and not 0 < len(text.encode()) <= _SOCKS_CREDENTIAL_MAX:
            raise ValueError(f"a SOCKS5 {what} is 1-255 bytes (RFC 1929)")
