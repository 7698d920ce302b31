"""How a request reaches an origin through a proxy: tunnel or absolute-form.

An http origin behind an HTTP(S) proxy is not tunnelled: the request goes to
the proxy with an absolute-form target, ``GET http://host:port/path``
(RFC 9112 §3.2.2), and the proxy's credentials ride on every request in
``Proxy-Authorization``. Everything else (https origins, any SOCKS proxy) is a
tunnel opened once per connection, after which requests are the same bytes
as on a direct connection.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from warmline.connectors._http_connect import HTTPConnectHandshake, authority
from warmline.connectors._proxy import Proxy
from warmline.connectors._socks5 import Socks5Handshake

if TYPE_CHECKING:
    from warmline._policy import Origin

__all__ = ["ForwardForm", "Handshake", "forward_form", "handshake_for", "uses_tunnel"]

Handshake = HTTPConnectHandshake | Socks5Handshake


@dataclasses.dataclass(frozen=True, slots=True)
class ForwardForm:
    """What a RequestWriter needs to send absolute-form requests to a proxy.

    Attributes:
        prefix: Put before every origin-form target: ``"http://host:port"``.
        headers: Default headers to add (``Proxy-Authorization`` when the
            proxy has credentials, then the Proxy's own headers).
    """

    prefix: str
    headers: tuple[tuple[str, str], ...]

    def __repr__(self) -> str:
        # The Proxy-Authorization value is a credential: never shown.
        names = ", ".join(name for name, _ in self.headers)
        return f"ForwardForm(prefix={self.prefix!r}, headers=[{names}])"


def uses_tunnel(origin: Origin, proxy: Proxy) -> bool:
    """Whether connections to ``origin`` through ``proxy`` open a tunnel."""
    return proxy.is_socks or origin.tls


def forward_form(origin: Origin, proxy: Proxy) -> ForwardForm | None:
    """The absolute-form prefix and headers for ``origin``, or None when tunnelled.

    Example:
        >>> from warmline._policy import Origin
        >>> f = forward_form(Origin.parse("http://example.com"), Proxy("http://u:p@proxy:3128"))
        >>> f.prefix, [name for name, _ in f.headers]
        ('http://example.com:80', ['Proxy-Authorization'])
    """
    if uses_tunnel(origin, proxy):
        return None
    auth = proxy.authorization()
    headers = ((("Proxy-Authorization", auth),) if auth else ()) + proxy.headers
    return ForwardForm(f"http://{authority(origin.host, origin.port)}", headers)


def handshake_for(proxy: Proxy, host: str, port: int) -> Handshake:
    """The tunnel handshake for ``proxy``; ``host`` is already resolved for socks5."""
    if proxy.is_socks:
        return Socks5Handshake(proxy, host, port)
    return HTTPConnectHandshake(proxy, host, port)
