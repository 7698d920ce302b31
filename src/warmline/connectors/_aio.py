"""The asyncio shell of the connectors: a transport to an origin, maybe via a proxy.

A small handshake protocol owns the transport while the tunnel opens; then
``loop.start_tls()`` starts the origin's TLS over it (over the proxy's own
TLS transport for an ``https://`` proxy: start_tls accepts an SSL transport
since Python 3.11), and the caller's protocol takes the transport over with
``transport.set_protocol()`` + ``protocol.connection_made()``. After that the
transport is an ordinary one: a request through a tunnel costs what a direct
one does.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from typing import Any, TypeVar

from warmline._policy import Origin
from warmline._tls import _system_context, describe_tls_error
from warmline.connectors._proxy import Proxy
from warmline.connectors._route import Handshake, handshake_for, uses_tunnel
from warmline.errors import ConnectError, ConnectTimeout, ProxyError

__all__ = ["open_aio_transport"]

_P = TypeVar("_P", bound=asyncio.BaseProtocol)


async def open_aio_transport(
    loop: asyncio.AbstractEventLoop,
    origin: Origin,
    *,
    proxy: Proxy,
    tls: ssl.SSLContext | None,
    connect_timeout: float | None,
    protocol_factory: Callable[[], _P],
    local_address: tuple[str, int] | None = None,
) -> tuple[asyncio.Transport, _P]:
    """Open a transport to ``origin`` through ``proxy`` and hand it to a new protocol.

    For an http origin behind an HTTP(S) proxy this is the connection to the
    proxy itself (requests then use absolute-form; see ``forward_form``).

    Args:
        loop: The running loop (asyncio's or uvloop's).
        origin: Where the requests go.
        proxy: The proxy to go through.
        tls: The origin's SSLContext (https origins), or None.
        connect_timeout: Seconds for everything (TCP, proxy TLS, handshake,
            origin TLS), or None for no limit.
        protocol_factory: Makes the protocol that gets the open transport.
        local_address: ``(host, port)`` to bind the local end to.

    Raises:
        ConnectTimeout: Not done within ``connect_timeout``.
        ProxyError: The proxy is unreachable, refused, failed its TLS, or
            broke its protocol (``status`` set when it answered).
        ConnectError: The origin's TLS handshake failed.
    """
    where = str(origin)
    try:
        async with asyncio.timeout(connect_timeout):
            transport, shake = await _connect_proxy(loop, proxy, local_address, where)
            try:
                transport = await _open_tunnel(loop, transport, shake, origin, proxy, tls)
                protocol = protocol_factory()
                transport.set_protocol(protocol)
                protocol.connection_made(transport)
                transport.resume_reading()
            except BaseException:
                transport.abort()
                raise
    except TimeoutError as exc:
        raise ConnectTimeout(
            f"not connected through {proxy.redacted} within {connect_timeout} s", origin=where
        ) from exc
    return transport, protocol


async def _connect_proxy(
    loop: asyncio.AbstractEventLoop,
    proxy: Proxy,
    local_address: tuple[str, int] | None,
    where: str,
) -> tuple[asyncio.Transport, _HandshakeProtocol]:
    kwargs: dict[str, Any] = {"local_addr": local_address}
    if proxy.uses_tls:
        kwargs.update(ssl=proxy.tls or _system_context(), server_hostname=proxy.host)
    try:
        transport, shake = await loop.create_connection(
            lambda: _HandshakeProtocol(loop), proxy.host, proxy.port, **kwargs
        )
    except ssl.SSLError as exc:
        raise _proxy_error(proxy, describe_tls_error(exc), where) from exc
    except OSError as exc:
        raise _proxy_error(proxy, f"cannot connect to the proxy: {exc}", where) from exc
    # uvloop's transports are not asyncio.Transport subclasses, but quack.
    return transport, shake


async def _open_tunnel(
    loop: asyncio.AbstractEventLoop,
    transport: asyncio.Transport,
    shake: _HandshakeProtocol,
    origin: Origin,
    proxy: Proxy,
    tls: ssl.SSLContext | None,
) -> asyncio.Transport:
    """Run the handshake and the origin's TLS; returns the transport to use."""
    where = str(origin)
    if not uses_tunnel(origin, proxy):
        transport.pause_reading()  # resumed once the caller's protocol has it
        return transport
    host = origin.host if proxy.remote_dns else await _resolve(loop, origin)
    try:
        await shake.run(handshake_for(proxy, host, origin.port))
    except ProxyError as exc:
        raise exc.with_context(origin=where) from None
    if tls is None:
        return transport
    try:
        tunnelled = await loop.start_tls(transport, shake, tls, server_hostname=origin.host)
    except ssl.SSLError as exc:
        raise ConnectError(
            f"{describe_tls_error(exc)} (through {proxy.redacted})", origin=where
        ) from exc
    except OSError as exc:
        raise _proxy_error(proxy, f"connection to the proxy lost: {exc}", where) from exc
    if tunnelled is None:  # the connection closed during the TLS handshake
        raise _proxy_error(proxy, "connection to the proxy lost during TLS", where)
    return tunnelled


async def _resolve(loop: asyncio.AbstractEventLoop, origin: Origin) -> str:
    """socks5:// resolves here; the first address is the one handed to the proxy."""
    try:
        infos = await loop.getaddrinfo(origin.host, origin.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConnectError(f"cannot resolve {origin.host}: {exc}", origin=str(origin)) from exc
    return str(infos[0][4][0])


def _proxy_error(proxy: Proxy, what: str, where: str) -> ProxyError:
    return ProxyError(f"{what} ({proxy.redacted})", proxy=proxy.redacted, origin=where)


class _HandshakeProtocol(asyncio.Protocol):
    """Owns the transport while a tunnel handshake runs; then gives it up.

    Reading is paused as soon as the handshake is done, so not one byte meant
    for the next protocol (or the TLS layer) can land here.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._handshake: Handshake | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._proxy = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Handshake messages are tiny: they must not wait for Nagle's ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def run(self, handshake: Handshake) -> asyncio.Future[None]:
        """Start the handshake; the future resolves when the tunnel is open."""
        assert self._transport is not None
        self._handshake = handshake
        self._proxy = handshake._proxy.redacted
        self._waiter = self._loop.create_future()
        self._transport.write(handshake.start())
        return self._waiter

    def data_received(self, data: bytes) -> None:
        waiter, handshake = self._waiter, self._handshake
        if waiter is None or handshake is None or waiter.done():
            return  # cannot happen: reading is paused once done
        try:
            out = handshake.feed(data)
        except ProxyError as exc:
            waiter.set_exception(exc)
            return
        transport = self._transport
        assert transport is not None
        if out:
            transport.write(out)
        if handshake.done:
            transport.pause_reading()
            waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            err = ProxyError(
                f"proxy {self._proxy} closed the connection during the handshake",
                proxy=self._proxy,
            )
            err.__cause__ = exc
            waiter.set_exception(err)
