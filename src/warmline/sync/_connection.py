"""One blocking HTTP/1.1 keep-alive connection on a socket (TCP, TLS or Unix).

The request is written with one ``sendall``; the response is read with
``recv_into`` a buffer preallocated per connection and fed to the sans-I/O
ResponseReader until it hands back a complete Response. Nothing is allocated
per request beyond the bytes that arrived.

The connection knows when it is dead: EOF, reset, protocol error,
``Connection: close``, a timed-out request, or any exception (including
KeyboardInterrupt) raised while a request was in flight. A dead connection is
closed at once and never carries another request, so a late response can never
reach the next user of the slot.

Through a proxy, the socket comes from ``warmline.connectors``: once the
tunnel is open it is an ordinary socket or SSLSocket, and a request costs
what a direct one does (client CPU per pooled GET, tunnel / direct, 3 runs
of 7x2,000: https through tinyproxy's CONNECT 1.09, 0.87, 0.98; http through
dante's SOCKS5 0.97, 1.07, 1.03). Only TLS inside TLS (an https origin behind an
``https://`` proxy) gives a :class:`~warmline.connectors._sync.TLSInTLSSocket`,
whose records are pumped in Python.

Timeouts use the socket's own timeout. A request without a deadline keeps the
socket blocking: ``sendall`` and ``recv_into``, two syscalls in all. With a
deadline, CPython waits in ``poll()`` before each ``recv`` (one syscall
more), and the time left is recomputed before every ``recv``.
"""

from __future__ import annotations

import _socket
import contextlib
import itertools
import math
import os
import select
import socket
import ssl
import sys
from time import monotonic
from time import perf_counter as _clock
from typing import Any, Final

from warmline._hooks import CloseReason
from warmline._policy import Origin
from warmline._pool._observe import close_reason_of, next_conn_id
from warmline._sockopts import LocalAddress, local_addr, tune
from warmline._tls import describe_tls_error
from warmline.connectors import Proxy
from warmline.connectors._sync import TLSInTLSSocket, open_sync_socket
from warmline.errors import (
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    ReadTimeout,
    WarmlineError,
    WriteTimeout,
)
from warmline.http11 import Response, ResponseReader
from warmline.http11._upload import Upload

__all__ = ["Connection", "open_connection"]

# What a Connection reads and writes: a socket, an SSLSocket, or the origin's
# TLS carried inside the TLS of an https:// proxy.
Stream = socket.socket | TLSInTLSSocket

# One recv reads up to this much. 256 KiB lets an 8 MiB body arrive in ~32
# reads instead of ~128 at 64 KiB, and costs nothing per request: the buffer
# is allocated once per connection and the kernel copies only what is there.
RECV_BUFFER_SIZE: Final = 256 * 1024

# A request deadline is honoured within this many seconds. Setting a socket's
# timeout is a syscall (~0.8 us); while the timeout left for a request is
# within this slack of the one already on the socket, it is reused. A recv
# that times out early is simply retried with the time really left.
_TIMEOUT_SLACK_S: Final = 0.001

# The C method, so that it can peek under an SSLSocket at the raw TCP stream
# (SSLSocket.recv refuses flags).
_raw_recv = _socket.socket.recv
_PEEK_FLAGS: Final = socket.MSG_PEEK | socket.MSG_DONTWAIT


class Connection:
    """A blocking HTTP/1.1 client connection: one request, then its response.

    Use :func:`open_connection` to make one. Not thread-safe: one thread at a
    time sends on it (the pool's slots guarantee that).

    Attributes:
        alive: False once the connection is closed or must not be reused.
    """

    __slots__ = (
        "_buf",
        "_interrupted",
        "_mv",
        "_poll",
        "_reader",
        "_sock",
        "_timeout",
        "_tls",
        "alive",
        "busy",
        "fd",
        "opened_at",
        "read_timeout",
        "served",
        "spin",
    )

    def __init__(self, sock: Stream, reader: ResponseReader) -> None:
        self._sock = sock
        self._reader = reader
        self._tls = isinstance(sock, ssl.SSLSocket)
        self._buf = bytearray(RECV_BUFFER_SIZE)
        self._mv = memoryview(self._buf)
        # The timeout currently set on the socket (None: blocking), tracked
        # here so that the untimed hot path never pays a settimeout syscall.
        self._timeout: float | None = sock.gettimeout()
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)
        self.alive = True
        self.read_timeout: float | None = None  # longest gap between received bytes
        # Seconds to poll for the response without blocking before the
        # blocking recv (0: off); see AtomicClientPool's spin option.
        self.spin = 0.0
        self.busy = False  # a request is in flight (one thread inside request())
        self.fd = sock.fileno()
        # Set when the connection is closed under a request in flight (slot
        # released by another thread, pool closed): that request raises it.
        self._interrupted: WarmlineError | None = None
        # Whether a response completed here: one that dies without serving
        # counts as a failed reconnect, so the backoff applies.
        self.served = False
        self.opened_at = monotonic()

    def __repr__(self) -> str:
        state = "alive" if self.alive else "closed"
        return f"<warmline.sync.Connection fd={self._sock.fileno()} {state}>"

    @property
    def received_any(self) -> bool:
        """Whether any byte of the current (or last) response arrived."""
        return self._reader.received_any

    def request(self, data: bytes, method: str, deadline: float | None) -> Response:
        """Send one request and read its complete response.

        Args:
            data: The whole request, as built by RequestWriter.
            method: Its method (a response to HEAD has no body).
            deadline: ``time.monotonic()`` by which the response must be
                complete, or None for no limit.

        Raises:
            WriteTimeout: The request was not sent before the deadline.
            ReadTimeout: The response was not complete before the deadline.
            ConnectionClosed: The peer closed or reset the connection first.
            ProtocolError: The response is not valid HTTP/1.1 (or too large).

        On any error, and on any exception at all raised while the request is
        in flight, the connection is closed: its state is unknown.
        """
        sock = self._sock
        reader = self._reader
        self.busy = True
        sent_at = _clock()  # Response.elapsed: see the asyncio Connection
        try:
            reader.start(method)
            if deadline is not None or self.read_timeout is not None:
                response = self._request_timed(
                    sock, reader, data, math.inf if deadline is None else deadline
                )
            else:
                if self._timeout is not None:
                    sock.settimeout(None)
                    self._timeout = None
                sock.sendall(data)
                # The hot path: one recv for a small response. recv_into a
                # buffer owned by the connection, then one exact-size copy
                # (mv[:n].tobytes(): ~120 ns for 250 B, bytes(mv[:n]) ~200 ns).
                # recv(262144) instead would malloc 256 KiB per call, which
                # glibc serves with mmap/munmap: ~30 us more per request.
                if self.spin:
                    self._spin()
                n = sock.recv_into(self._buf)
                got = reader.feed(self._mv[:n].tobytes()) if n else self._eof(reader)
                response = got if got is not None else self._read_rest(sock, reader)
        except BaseException as exc:
            # Any exception mid-request (KeyboardInterrupt included): bytes of
            # this response may still arrive, so nobody may use this socket
            # again.
            self.busy = False
            self.close()
            translated = self._translate(exc, reader)
            if translated is exc:
                raise
            raise translated from exc
        response._elapsed = _clock() - sent_at
        self.busy = False
        if self._interrupted is not None:
            self.close()  # closed under us just as the response completed
            raise self._interrupted
        if not self.alive:
            # close() ran on another thread while we were busy: it only shut
            # the socket down (to wake us); the close itself is ours.
            self.close()
        self.served = True
        if not reader.keep_alive:
            # Connection: close, HTTP/1.0, or a close-delimited body: RFC 9112
            # §9.6 - this connection carries no further request.
            self.close()
        return response

    def request_streamed(
        self, head: bytes, upload: Upload, method: str, deadline: float | None
    ) -> Response:
        """Send a head, then a streamed body piece by piece, and read the response.

        The slow twin of :meth:`request` (one ``sendall`` per framed piece);
        same errors, and the same rule: any exception closes the connection.
        """
        if upload.is_async:
            raise TypeError("an async iterable body needs the asyncio pool (warmline.aio)")
        sock = self._sock
        reader = self._reader
        timed = deadline is not None or self.read_timeout is not None
        until = math.inf if deadline is None else deadline
        self.busy = True
        sent_at = _clock()
        try:
            reader.start(method)
            if not timed and self._timeout is not None:
                sock.settimeout(None)
                self._timeout = None
            try:
                for frame in itertools.chain((head,), upload.frames()):
                    if timed:
                        self._arm(sock, until)
                    sock.sendall(frame)
            except TimeoutError as exc:
                raise WriteTimeout("request not sent before the timeout") from exc
            if timed:
                response = self._request_timed(sock, reader, b"", until)
            else:
                response = self._read_rest(sock, reader)
            response._elapsed = _clock() - sent_at
        except BaseException as exc:
            self.busy = False
            self.close()
            translated = self._translate(exc, reader)
            if translated is exc:
                raise
            raise translated from exc
        self.busy = False
        if self._interrupted is not None:
            self.close()
            raise self._interrupted
        if not self.alive:
            self.close()
        self.served = True
        if not reader.keep_alive:
            self.close()
        return response

    def _translate(self, exc: BaseException, reader: ResponseReader) -> BaseException:
        if self._interrupted is not None:
            return self._interrupted
        if isinstance(exc, OSError) and not isinstance(exc, WarmlineError):
            # Reset, broken pipe, TLS failure, a socket closed under us...
            return ConnectionClosed(f"connection lost: {exc}", received_any=reader.received_any)
        return exc

    def _read_rest(self, sock: Stream, reader: ResponseReader) -> Response:
        # A response larger than one recv (no deadline).
        recv_into = sock.recv_into
        buf = self._buf
        mv = self._mv
        feed = reader.feed
        while True:
            n = recv_into(buf)
            response = feed(mv[:n].tobytes()) if n else self._eof(reader)
            if response is not None:
                return response

    def _request_timed(
        self, sock: Stream, reader: ResponseReader, data: bytes, deadline: float
    ) -> Response:
        try:
            self._arm(sock, deadline)
            sock.sendall(data)
        except TimeoutError as exc:
            raise WriteTimeout("request not sent before the timeout") from exc
        if self.spin:
            self._spin()
        recv_into = sock.recv_into
        buf = self._buf
        mv = self._mv
        while True:
            try:
                # Recompute what is left before every recv: a server that
                # drips one byte at a time is cut by the request's deadline,
                # not granted a fresh timeout per byte.
                self._arm(sock, deadline)
                started = monotonic()
                n = recv_into(buf)
            except TimeoutError as exc:
                read = self.read_timeout
                if read is not None and monotonic() - started >= read - _TIMEOUT_SLACK_S:
                    raise ReadTimeout(f"no byte received for {read} s (read timeout)") from exc
                if deadline - monotonic() > 0:
                    continue  # woke up early within the slack: wait out the rest
                raise ReadTimeout("response not complete before the timeout") from exc
            if not n:
                return self._eof(reader)
            response = reader.feed(mv[:n].tobytes())
            if response is not None:
                return response

    def _arm(self, sock: Stream, deadline: float) -> None:
        remaining = deadline - monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline passed")
        read = self.read_timeout
        if read is not None and read < remaining:
            remaining = read  # inactivity: re-armed before every recv
        current = self._timeout
        if current is None or abs(current - remaining) > _TIMEOUT_SLACK_S:
            sock.settimeout(remaining)
            self._timeout = remaining

    def _eof(self, reader: ResponseReader) -> Response:
        # The peer closed: either the end of a close-delimited body (RFC 9112
        # §6.3 rule 8) or a connection lost before the response completed.
        response = reader.feed_eof()
        self.close()
        if response is None:
            raise ConnectionClosed("connection closed before a response", received_any=False)
        return response

    def _spin(self) -> None:
        # Latency mode: a fast answer is read without the scheduler's wake-up
        # of a blocked thread, at the price of a core busy for up to ``spin``
        # seconds per request.
        poll = self._poll.poll
        end = monotonic() + self.spin
        while not poll(0) and monotonic() < end:
            pass

    def busy_poll(self, seconds: float) -> bool:
        """Ask the kernel to busy-poll the device queue for this socket while a
        blocking recv waits (SO_BUSY_POLL, Linux; going above
        net.core.busy_read needs CAP_NET_ADMIN). Returns whether it took it."""
        option = getattr(socket, "SO_BUSY_POLL", 46 if sys.platform == "linux" else None)
        if option is None:
            return False
        setsockopt = getattr(self._sock, "setsockopt", None)  # not on TLS-in-TLS
        if setsockopt is None:
            return False
        try:
            setsockopt(socket.SOL_SOCKET, option, max(1, int(seconds * 1e6)))
        except OSError:
            return False
        return True

    def readable(self) -> bool:
        """Whether the socket has something to read (or a close), without blocking."""
        return bool(self._poll.poll(0))

    def stale(self) -> bool:
        """Whether this idle connection is closed or unusable, without blocking.

        One non-blocking peek (~1 us): an idle keep-alive connection has
        nothing to read, so EOF, a reset or any unexpected byte means the
        server closed it or broke the protocol. For TLS, the bytes may be
        session tickets (TLS 1.3 sends them after the handshake), so a
        non-blocking TLS read tells them apart.
        """
        if not self.alive:
            return True
        sock = self._sock
        if isinstance(sock, TLSInTLSSocket):
            # The raw peek sees the proxy's TLS records; the tunnel knows how
            # to look through both layers.
            return sock.idle_stale()
        try:
            peeked = _raw_recv(sock, 1, _PEEK_FLAGS)
        except BlockingIOError:
            return False
        except OSError:
            return True
        if not peeked:
            return True
        return not (self._tls and self._only_tls_records())

    def _only_tls_records(self) -> bool:
        # True if what is pending is TLS housekeeping (session tickets), now
        # consumed; False if it is a close_notify, an alert or application data.
        sock = self._sock
        assert isinstance(sock, ssl.SSLSocket)  # _tls
        try:
            sock.settimeout(0.0)
            sock.recv(1)
        except ssl.SSLWantReadError:
            return True
        except OSError:
            return False
        finally:
            self._timeout = None
            with contextlib.suppress(OSError):
                sock.settimeout(None)
        return False

    def close(self, error: WarmlineError | None = None) -> None:
        """Close the connection (idempotent).

        Args:
            error: If a request is in flight on another thread (its slot was
                released under it, or the pool closed), that request fails
                with this at once: the socket is shut down, which wakes its
                ``recv``, and that thread closes it.
        """
        self.alive = False
        if self.busy:
            if error is not None:
                self._interrupted = error
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            return
        self._sock.close()

    def forget(self) -> None:
        """Close this process's copy without a shutdown (after fork(): the
        parent's copy of the socket stays open and usable)."""
        self.alive = False
        with contextlib.suppress(OSError):
            os.close(self._sock.detach())


class ObservedConnection(Connection):
    """A Connection that reports its close, once, with the reason, to its pool's
    observer (hooks, DEBUG log; :mod:`warmline._pool._observe`). Chosen at open
    time when the pool has one; the plain class pays nothing for it.

    A close inside ``request()`` (a failure, ``Connection: close``) is
    reported when ``request()`` ends, with the reason its outcome gives; a
    close from the pool with the reason the observer finds.
    """

    __slots__ = ("_in_request", "_pending", "_reported", "conn_id", "observer")

    def __init__(self, sock: Stream, reader: ResponseReader) -> None:
        super().__init__(sock, reader)
        self.conn_id = next_conn_id()
        self.observer: Any = None
        self._in_request = False
        self._pending: tuple[CloseReason, BaseException | None] | None = None
        self._reported = False

    def _report(self, reason: CloseReason, error: BaseException | None) -> None:
        if self._reported or self.observer is None:
            return
        self._reported = True
        self.observer.closed(self, reason, error)

    def request_streamed(self, *args: Any, **kwargs: Any) -> Response:
        return self._reporting(super().request_streamed, *args, **kwargs)

    def _reporting(self, send: Any, *args: Any, **kwargs: Any) -> Response:
        # request()'s close reporting, for the streamed path (off the hot path).
        self._in_request = True
        try:
            response: Response = send(*args, **kwargs)
        except BaseException as exc:
            self._in_request = False
            if not self.alive:
                self._report(*(self._pending or (close_reason_of(exc), exc)))
            raise
        self._in_request = False
        if not self.alive:
            self._report(*(self._pending or (CloseReason.CONNECTION_CLOSE, None)))
        return response

    def request(self, *args: Any, **kwargs: Any) -> Response:
        self._in_request = True
        try:
            response = super().request(*args, **kwargs)
        except BaseException as exc:
            self._in_request = False
            if not self.alive:
                self._report(*(self._pending or (close_reason_of(exc), exc)))
            raise
        self._in_request = False
        if not self.alive:  # Connection: close, HTTP/1.0, a close-delimited body
            self._report(*(self._pending or (CloseReason.CONNECTION_CLOSE, None)))
        return response

    def close(self, error: WarmlineError | None = None) -> None:
        if not self._reported and self._pending is None and self.observer is not None:
            if self._in_request:
                if error is not None:  # from another thread, under a request in flight
                    self._pending = self.observer.classify(self, error)
            else:
                self._pending = self.observer.classify(self, error)
        super().close(error)
        if not self._in_request and self._pending is not None:
            self._report(*self._pending)

    def forget(self) -> None:
        super().forget()
        self._report(CloseReason.FORK, None)


def open_connection(
    origin: Origin,
    *,
    tls: ssl.SSLContext | None,
    connect_timeout: float | None,
    reader: ResponseReader,
    local_address: LocalAddress = None,
    tcp_keepalive: bool = False,
    read_timeout: float | None = None,
    proxy: Proxy | None = None,
    connecting: set[socket.socket] | None = None,
    observer: Any = None,
) -> Connection:
    """Open a blocking connection to ``origin`` (TCP, TLS or Unix socket).

    Args:
        origin: Where to connect.
        tls: Wrap the socket in TLS with this context (SNI and hostname
            checking use ``origin.host``), or None for plain text.
        connect_timeout: Seconds for the whole connect, TLS handshake
            included; None for the operating system's limit.
        reader: The ResponseReader this connection feeds.
        local_address: Bind to this source address (``"127.0.0.2"``).
        tcp_keepalive: Probe an idle peer (about a minute to notice it died).
        read_timeout: The longest gap allowed between received bytes.
        proxy: Go through this proxy (the tunnel, if any, opens here, once
            per connection); ignored for a Unix-socket origin.
        observer: The pool's observer: the connection is then an
            :class:`ObservedConnection`, which reports its close.

    Raises:
        ConnectTimeout: Not connected within ``connect_timeout``.
        ConnectError: Refused, unreachable, unresolvable, or TLS failed.
        ProxyError: The proxy is unreachable or refused (``status`` set).
    """
    cls = Connection if observer is None else ObservedConnection
    if proxy is not None and origin.uds is None:
        conn = cls(
            _open_via_proxy(origin, proxy, tls, connect_timeout, local_address, tcp_keepalive),
            reader,
        )
        conn.read_timeout = read_timeout
        if observer is not None:
            conn.observer = observer  # type: ignore[attr-defined]
        return conn
    deadline = None if connect_timeout is None else monotonic() + connect_timeout
    try:
        sock = _connect_socket(origin, connect_timeout, local_address, tcp_keepalive, connecting)
        try:
            if tls is not None:
                if deadline is not None:
                    sock.settimeout(max(deadline - monotonic(), 1e-6))
                sock = tls.wrap_socket(sock, server_hostname=origin.host)
            sock.settimeout(None)
        except BaseException:
            sock.close()
            raise
    except TimeoutError as exc:
        raise ConnectTimeout(
            f"not connected within {connect_timeout} s", origin=str(origin)
        ) from exc
    except ssl.SSLError as exc:  # CertificateError is an SSLError since 3.7
        raise ConnectError(describe_tls_error(exc), origin=str(origin)) from exc
    except OSError as exc:
        raise ConnectError(f"cannot connect: {exc}", origin=str(origin)) from exc
    conn = cls(sock, reader)
    conn.read_timeout = read_timeout
    if observer is not None:
        conn.observer = observer  # type: ignore[attr-defined]
    return conn


def _open_via_proxy(
    origin: Origin,
    proxy: Proxy,
    tls: ssl.SSLContext | None,
    connect_timeout: float | None,
    local_address: LocalAddress,
    tcp_keepalive: bool,
) -> Stream:
    # open_sync_socket raises warmline errors only (ProxyError, ConnectError,
    # ConnectTimeout), with the credentials redacted.
    sock = open_sync_socket(
        origin,
        proxy=proxy,
        tls=tls,
        connect_timeout=connect_timeout,
        local_address=local_addr(local_address),
    )
    if tcp_keepalive:
        # The probes go to the proxy: a dead proxy is a dead tunnel.
        raw = sock.raw_socket if isinstance(sock, TLSInTLSSocket) else sock
        try:
            tune(raw, tcp_keepalive=True)
        except OSError as exc:
            sock.close()
            raise ConnectError(f"cannot set TCP keep-alive: {exc}", origin=str(origin)) from exc
    return sock


def _connect_socket(
    origin: Origin,
    connect_timeout: float | None,
    local_address: LocalAddress,
    tcp_keepalive: bool,
    connecting: set[socket.socket] | None = None,
) -> socket.socket:
    if origin.uds is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(connect_timeout)
            sock.connect(origin.uds)
        except BaseException:
            sock.close()
            raise
        return sock
    sock = _connect_tcp(
        origin.host, origin.port, connect_timeout, local_addr(local_address), connecting
    )
    try:
        tune(sock, tcp_keepalive=tcp_keepalive)
    except BaseException:
        sock.close()
        raise
    return sock


def _connect_tcp(
    host: str,
    port: int,
    connect_timeout: float | None,
    bind: tuple[str, int] | None,
    connecting: set[socket.socket] | None = None,
) -> socket.socket:
    """Connect to the first address of ``host`` that answers, all within
    ``connect_timeout``: the name is resolved again on every call (a
    reconnect follows DNS), and each address gets an equal share of the time
    left, so a dead first address (a blackholed IPv6, say) cannot eat the
    whole timeout. ``socket.create_connection`` would give each address the
    whole timeout."""
    deadline = None if connect_timeout is None else monotonic() + connect_timeout
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    error: OSError = OSError(f"no address for {host}")
    for i, (family, kind, proto, _, address) in enumerate(infos):
        share = None
        if deadline is not None:
            left = deadline - monotonic()
            if left <= 0:
                raise TimeoutError(f"not connected within {connect_timeout} s")
            share = left / (len(infos) - i)
        sock = socket.socket(family, kind, proto)
        if connecting is not None:
            # The pool's close() shuts these down: on Linux that ends a
            # connect() in progress at once (ECONNRESET).
            connecting.add(sock)
        try:
            sock.settimeout(share)
            if bind is not None:
                sock.bind(bind)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        finally:
            if connecting is not None:
                connecting.discard(sock)
        return sock
    raise error
