"""How a connection's byte stream opens: directly, or through an HTTP(S) or SOCKS5 proxy.

The handshakes (HTTP CONNECT, SOCKS5) are sans-I/O state machines, bytes in
and bytes out; ``_sync`` and ``_aio`` drive them with blocking sockets and
asyncio transports. ``proxy_for`` picks a proxy from the environment.
"""

from warmline.connectors._env import bypasses_proxy, proxy_for
from warmline.connectors._http_connect import HTTPConnectHandshake
from warmline.connectors._proxy import Proxy, ProxyArg, as_proxy
from warmline.connectors._route import ForwardForm, forward_form, handshake_for, uses_tunnel
from warmline.connectors._socks5 import Socks5Handshake

__all__ = [
    "ForwardForm",
    "HTTPConnectHandshake",
    "Proxy",
    "ProxyArg",
    "Socks5Handshake",
    "as_proxy",
    "bypasses_proxy",
    "forward_form",
    "handshake_for",
    "proxy_for",
    "uses_tunnel",
]
