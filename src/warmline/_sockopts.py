"""Socket options both shells set on a new TCP connection."""

from __future__ import annotations

import socket
from typing import Final

__all__ = ["LocalAddress", "local_addr", "tune"]

# SO_KEEPALIVE probing: first probe after 30 s idle, then every 10 s, give up
# after 3 unanswered: a silently dead peer is detected within about a minute
# (Linux defaults: 2 h 11 min).
_KEEPIDLE_S: Final = 30
_KEEPINTVL_S: Final = 10
_KEEPCNT: Final = 3

LocalAddress = str | tuple[str, int] | None


def tune(sock: socket.socket, *, tcp_keepalive: bool) -> None:
    """TCP_NODELAY (small requests leave at once, not after Nagle's ACK wait,
    RFC 896), and SO_KEEPALIVE with short probes when asked."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tcp_keepalive:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (
            ("TCP_KEEPIDLE", _KEEPIDLE_S),
            ("TCP_KEEPINTVL", _KEEPINTVL_S),
            ("TCP_KEEPCNT", _KEEPCNT),
        ):
            option = getattr(socket, name, None)
            if option is not None:  # not on every platform
                sock.setsockopt(socket.IPPROTO_TCP, option, value)


def local_addr(local_address: LocalAddress) -> tuple[str, int] | None:
    """``"127.0.0.2"`` or ``("127.0.0.2", 0)`` as a bind address, or None."""
    if local_address is None:
        return None
    if isinstance(local_address, str):
        return (local_address, 0)
    host, port = local_address
    return (host, port)
