"""Scripted raw-socket servers for fault tests (127.0.0.1 only, bounded).

A test gives a handler ``handler(conn, index)`` that runs, in its own thread,
for each accepted connection (``index`` counts connections from 0). The
handler reads requests with :func:`read_request` and writes whatever bytes
the scenario needs: garbage, a reset, a stall, a close.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable

Handler = Callable[[socket.socket, int], None]

OK_SMALL = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


def read_request(conn: socket.socket, timeout: float = 5.0) -> bytes | None:
    """Read one request head (and a Content-Length body); None on EOF or error."""
    conn.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk or len(data) > 1 << 20:
                return None
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            rest += chunk
    except OSError:
        return None
    return head + b"\r\n\r\n" + rest


def reset(conn: socket.socket) -> None:
    """Close with RST instead of FIN (SO_LINGER 0)."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


class RawServer:
    """A threaded TCP server on 127.0.0.1 running ``handler`` per connection.

    ``connections`` counts the connections accepted so far.
    """

    def __init__(self, handler: Handler, port: int = 0) -> None:
        self.handler = handler
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(128)
        self.sock.settimeout(0.05)
        self.port: int = self.sock.getsockname()[1]
        self.connections = 0
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            index = self.connections
            self.connections += 1
            self._conns.append(conn)
            t = threading.Thread(target=self._run, args=(conn, index), daemon=True)
            self._threads.append(t)
            t.start()

    def _run(self, conn: socket.socket, index: int) -> None:
        # The connection ends when its handler returns (a FIN, or whatever
        # the handler did to it first).
        with contextlib.suppress(OSError):
            self.handler(conn, index)
        with contextlib.suppress(OSError):
            conn.close()

    def stop(self) -> None:
        """Stop accepting, close every connection, join the threads (bounded)."""
        self._stop.set()
        self._accept.join(5)
        self.sock.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()
        for t in self._threads:
            t.join(5)

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def keepalive_handler(response: bytes = OK_SMALL, max_requests: int = 10_000) -> Handler:
    """A well-behaved keep-alive server: answers every request with ``response``."""

    def handler(conn: socket.socket, index: int) -> None:
        for _ in range(max_requests):
            if read_request(conn) is None:
                break
            conn.sendall(response)
        conn.close()

    return handler
