"""The blocking shell of the connectors: open a socket to an origin, maybe via a proxy.

``open_sync_socket`` connects to the proxy (TLS to it for ``https://``), runs
the tunnel handshake with ``sendall``/``recv`` under one deadline, then
starts the origin's TLS inside the tunnel. The whole open, every handshake
included, is bounded by ``connect_timeout``.

TLS inside TLS (an https origin through an ``https://`` proxy):
``SSLContext.wrap_socket`` cannot nest, because an SSLSocket hands its file
descriptor to OpenSSL, so a second wrap would write the inner records raw on
the wire. The inner TLS is then an ``ssl.SSLObject`` over two MemoryBIOs,
pumped through the outer SSLSocket by :class:`TLSInTLSSocket`.
"""

from __future__ import annotations

import _socket
import socket
import ssl
from collections.abc import Callable
from time import monotonic
from typing import Any, Final, TypeVar

from warmline._policy import Origin
from warmline._tls import _system_context, describe_tls_error
from warmline.connectors._proxy import Proxy
from warmline.connectors._route import handshake_for, uses_tunnel
from warmline.errors import ConnectError, ConnectTimeout, ProxyError

__all__ = ["TLSInTLSSocket", "open_sync_socket"]

# A handshake message from a proxy is a few bytes to a few hundred; one recv
# of this size takes any of them whole.
_HANDSHAKE_RECV: Final = 4096

# One TLS record holds up to 16 KiB of plaintext (RFC 8446 §5.1) plus framing.
_RECORD_READ: Final = 17 * 1024

_T = TypeVar("_T")

# The C method, to peek at the raw TCP stream under an SSLSocket.
_raw_recv = _socket.socket.recv
_PEEK_FLAGS: Final = socket.MSG_PEEK | socket.MSG_DONTWAIT


def open_sync_socket(
    origin: Origin,
    *,
    proxy: Proxy,
    tls: ssl.SSLContext | None,
    connect_timeout: float | None,
    local_address: tuple[str, int] | None = None,
) -> socket.socket | TLSInTLSSocket:
    """A blocking socket to ``origin`` through ``proxy``, TLS done, timeout cleared.

    For an http origin behind an HTTP(S) proxy this is the connection to the
    proxy itself (requests then use absolute-form; see ``forward_form``).

    Args:
        origin: Where the requests go.
        proxy: The proxy to go through.
        tls: The origin's SSLContext (https origins), or None.
        connect_timeout: Seconds for everything (TCP, proxy TLS, handshake,
            origin TLS), or None for no limit.
        local_address: ``(host, port)`` to bind the local end to.

    Raises:
        ConnectTimeout: Not done within ``connect_timeout``.
        ProxyError: The proxy is unreachable, refused, failed its TLS, or
            broke its protocol (``status`` set when it answered).
        ConnectError: The origin's TLS handshake failed.
    """
    deadline = None if connect_timeout is None else monotonic() + connect_timeout
    where = str(origin)
    try:
        sock = _connect_proxy(proxy, connect_timeout, local_address, deadline)
    except TimeoutError as exc:
        raise _timeout(proxy, connect_timeout, where) from exc
    except ssl.SSLError as exc:
        raise _proxy_error(proxy, describe_tls_error(exc), where) from exc
    except OSError as exc:
        raise _proxy_error(proxy, f"cannot connect to the proxy: {exc}", where) from exc
    try:
        opened = _tunnel(sock, origin, proxy, tls, deadline) if uses_tunnel(origin, proxy) else sock
        opened.settimeout(None)
    except BaseException:
        sock.close()
        raise
    return opened


def _connect_proxy(
    proxy: Proxy,
    connect_timeout: float | None,
    local_address: tuple[str, int] | None,
    deadline: float | None,
) -> socket.socket:
    sock = socket.create_connection(
        (proxy.host, proxy.port), timeout=connect_timeout, source_address=local_address
    )
    try:
        # Handshakes and small requests must leave at once (Nagle, RFC 896).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if proxy.uses_tls:
            _arm(sock, deadline)
            ctx = proxy.tls or _system_context()
            sock = ctx.wrap_socket(sock, server_hostname=proxy.host)
    except BaseException:
        sock.close()
        raise
    return sock


def _tunnel(
    sock: socket.socket,
    origin: Origin,
    proxy: Proxy,
    tls: ssl.SSLContext | None,
    deadline: float | None,
) -> socket.socket | TLSInTLSSocket:
    where = str(origin)
    try:
        host = origin.host if proxy.remote_dns else _resolve(origin, proxy)
        _handshake(sock, proxy, host, origin.port, deadline)
        if tls is None:
            return sock
        _arm(sock, deadline)
        if isinstance(sock, ssl.SSLSocket):
            return TLSInTLSSocket(sock, tls, origin.host)
        return tls.wrap_socket(sock, server_hostname=origin.host)
    except TimeoutError as exc:
        raise _timeout(proxy, deadline and deadline - monotonic(), where) from exc
    except ssl.SSLError as exc:
        what = f"{describe_tls_error(exc)} (through {proxy.redacted})"
        raise ConnectError(what, origin=where) from exc
    except ProxyError as exc:
        raise exc.with_context(origin=where) from None
    except OSError as exc:
        raise _proxy_error(proxy, f"connection to the proxy lost: {exc}", where) from exc


def _handshake(
    sock: socket.socket, proxy: Proxy, host: str, port: int, deadline: float | None
) -> None:
    hs = handshake_for(proxy, host, port)
    out = hs.start()
    while True:
        if out:
            _arm(sock, deadline)
            sock.sendall(out)
        if hs.done:
            return
        _arm(sock, deadline)
        data = sock.recv(_HANDSHAKE_RECV)
        if not data:
            raise ProxyError(
                f"proxy {proxy.redacted} closed the connection during the handshake",
                proxy=proxy.redacted,
            )
        out = hs.feed(data)


def _resolve(origin: Origin, proxy: Proxy) -> str:
    """socks5:// resolves here; the first address is the one handed to the proxy."""
    try:
        infos = socket.getaddrinfo(origin.host, origin.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConnectError(f"cannot resolve {origin.host}: {exc}", origin=str(origin)) from exc
    return str(infos[0][4][0])


def _arm(sock: socket.socket, deadline: float | None) -> None:
    if deadline is None:
        sock.settimeout(None)
        return
    remaining = deadline - monotonic()
    if remaining <= 0:
        raise TimeoutError("connect deadline passed")
    sock.settimeout(remaining)


def _timeout(proxy: Proxy, connect_timeout: float | None, where: str) -> ConnectTimeout:
    return ConnectTimeout(f"not connected through {proxy.redacted} in time", origin=where)


def _proxy_error(proxy: Proxy, what: str, where: str) -> ProxyError:
    return ProxyError(f"{what} ({proxy.redacted})", proxy=proxy.redacted, origin=where)


class TLSInTLSSocket:
    """The origin's TLS session carried inside an SSLSocket to an https proxy.

    Has the part of the socket API the blocking Connection uses: ``sendall``,
    ``recv``, ``recv_into``, ``settimeout``, ``gettimeout``, ``fileno`` (the
    raw descriptor, for ``poll``), ``close``, ``shutdown``, ``detach``. Each call moves TLS records
    between the inner ``SSLObject``'s BIOs and the outer socket.
    """

    def __init__(self, outer: ssl.SSLSocket, ctx: ssl.SSLContext, server_hostname: str) -> None:
        self._outer = outer
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = ctx.wrap_bio(self._in, self._out, server_hostname=server_hostname)
        self._run(self._obj.do_handshake)

    # -- the socket API the shell uses ----------------------------------------
    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = self._run(self._obj.write, view)
            view = view[n:]

    def recv(self, size: int) -> bytes:
        return self._run(self._obj.read, size)

    def recv_into(self, buffer: bytearray | memoryview, nbytes: int = 0) -> int:
        # SSLObject.read(n, buffer) fills the buffer and returns a count.
        n: Any = self._run(self._obj.read, nbytes or len(buffer), buffer)
        return int(n)

    def settimeout(self, timeout: float | None) -> None:
        self._outer.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self._outer.gettimeout()

    def fileno(self) -> int:
        return self._outer.fileno()

    def pending(self) -> int:
        """Decrypted bytes ready to read without touching the socket."""
        return self._obj.pending()

    def getpeercert(self) -> object:
        return self._obj.getpeercert()

    def close(self) -> None:
        self._outer.close()

    def shutdown(self, how: int) -> None:
        """Shut the outer socket down (wakes a thread blocked in ``recv``)."""
        self._outer.shutdown(how)

    def detach(self) -> int:
        """Give up the descriptor without closing it (after ``fork()``)."""
        return self._outer.detach()

    @property
    def raw_socket(self) -> ssl.SSLSocket:
        """The socket to the proxy (for socket options)."""
        return self._outer

    def idle_stale(self) -> bool:
        """Whether this idle connection is closed or unusable, without blocking.

        The twin of the blocking Connection's ``stale()`` check for a plain
        SSLSocket: peek at the raw socket; if records are pending, read them
        through both TLS layers without blocking. Session tickets (of either
        layer) are consumed and leave it usable; a close, an alert or
        application data on an idle connection make it stale.
        """
        try:
            peeked = _raw_recv(self._outer, 1, _PEEK_FLAGS)
        except BlockingIOError:
            return False
        except OSError:
            return True
        if not peeked:
            return True
        timeout = self._outer.gettimeout()
        try:
            self._outer.settimeout(0.0)
            self.recv(1)
        except (ssl.SSLWantReadError, BlockingIOError):
            return False
        except OSError:
            return True
        finally:
            self._outer.settimeout(timeout)
        return True

    # -- pumping --------------------------------------------------------------
    def _run(self, op: Callable[..., _T], *args: Any) -> _T:
        """Call an SSLObject method, feeding it from the outer socket until it can finish."""
        while True:
            try:
                result = op(*args)
            except ssl.SSLWantReadError:
                self._flush()
                data = self._outer.recv(_RECORD_READ)
                if data:
                    self._in.write(data)
                else:
                    self._in.write_eof()  # the next call raises SSLEOFError
                continue
            self._flush()
            return result

    def _flush(self) -> None:
        """Send what the inner TLS produced (records, alerts) through the outer one."""
        pending = self._out.read()
        if pending:
            self._outer.sendall(pending)
