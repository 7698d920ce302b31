"""A raw-socket HTTP/1.1 server on several ports that counts connections exactly.

For the client's limit tests: each port is one origin, and the server keeps,
per origin and overall, how many connections are open now and the most ever
open at once, as the server sees them. One thread runs every socket through
one selector, and in each round it reads (and so sees every FIN) before it
accepts. A client that closes a connection before it opens the next one
(what a limit requires) sends the FIN before the SYN, so the count never
shows a spurious overlap the way a thread per connection could.

Paths:

* ``/sleep/S``: answer after S seconds (holds the connection busy).
* ``/stall``: send the head (Content-Length: 10) and then nothing.
* ``/drip/N/S``: send the head, then N body bytes, one every S seconds.
* anything else: ``200`` with body ``ok`` at once.

Nothing is answered with ``Connection: close``: the server never closes a
connection itself, so every close it sees is the client's.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

HOST = "127.0.0.1"
_TICK_S = 0.02


def _ok(body: bytes = b"ok") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


@dataclass
class Conn:
    """One accepted connection, as the server saw it."""

    origin: int
    peer: tuple[str, int]
    opened_at: float
    sock: socket.socket
    buf: bytes = b""
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    pending: int = 0  # requests received and not fully answered
    closed_at: float | None = None
    cut: bool = False  # the client closed it with a request unanswered

    @property
    def closed(self) -> bool:
        return self.closed_at is not None


@dataclass
class Origin:
    """Counts of one port."""

    port: int
    accepted: int = 0
    open: int = 0
    max_open: int = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


class CountServer:
    """``ports`` origins on 127.0.0.1, one selector thread; use as a context manager."""

    def __init__(self, ports: int = 1) -> None:
        self.origins: list[Origin] = []
        self.conns: list[Conn] = []
        self.log: list[tuple[int, str]] = []  # (origin, path) in arrival order
        self.open = 0
        self.max_open = 0
        self._sel = selectors.DefaultSelector()
        self._listeners: list[socket.socket] = []
        for index in range(ports):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((HOST, 0))
            sock.listen(1024)
            sock.setblocking(False)
            self._listeners.append(sock)
            self._sel.register(sock, selectors.EVENT_READ, index)
            self.origins.append(Origin(sock.getsockname()[1]))
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="countserver", daemon=True)
        self._thread.start()

    # -- what tests read -------------------------------------------------------------
    @property
    def urls(self) -> list[str]:
        return [o.url for o in self.origins]

    def reset_max(self) -> None:
        """Start the maxima again from the connections open now."""
        self.max_open = self.open
        for origin in self.origins:
            origin.max_open = origin.open

    def conns_of(self, origin: int) -> list[Conn]:
        return [c for c in self.conns if c.origin == origin]

    def wait_for(self, condition: Callable[[], bool], timeout: float = 3.0) -> bool:
        """Poll ``condition`` until true or ``timeout``; its last value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.01)
        return condition()

    # -- the loop ------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            timeout = _TICK_S
            if self._timers:
                timeout = min(timeout, max(0.0, self._timers[0][0] - time.monotonic()))
            events = self._sel.select(timeout)
            # Reads (and FINs) first, accepts after: see the module docstring.
            for key, _ in events:
                if isinstance(key.data, Conn):
                    self._readable(key.data)
            for key, _ in events:
                if isinstance(key.data, int):
                    self._accept(key.data)
            self._run_timers()

    def _accept(self, index: int) -> None:
        listener = self._listeners[index]
        origin = self.origins[index]
        while True:
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, OSError):
                return
            sock.setblocking(False)
            # A FIN that arrived after this round's select() would otherwise
            # be read only after this accept is counted (a client closing
            # one connection and at once opening the next would then look
            # like one too many open): read what is readable now, first.
            for key, _ in self._sel.select(0):
                if isinstance(key.data, Conn):
                    self._readable(key.data)
            conn = Conn(index, peer, time.monotonic(), sock)
            self.conns.append(conn)
            self._sel.register(sock, selectors.EVENT_READ, conn)
            origin.accepted += 1
            origin.open += 1
            origin.max_open = max(origin.max_open, origin.open)
            self.open += 1
            self.max_open = max(self.max_open, self.open)

    def _readable(self, conn: Conn) -> None:
        while True:
            try:
                data = conn.sock.recv(65536)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                self._closed(conn)
                return
            conn.buf += data
        while self._one_request(conn):
            pass

    def _one_request(self, conn: Conn) -> bool:
        head, sep, rest = conn.buf.partition(b"\r\n\r\n")
        if not sep:
            return False
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if len(rest) < length:
            return False
        conn.buf = rest[length:]
        path = lines[0].split(" ")[1]
        conn.requests.append((path, headers))
        conn.pending += 1
        self.log.append((conn.origin, path))
        self._answer(conn, path)
        return True

    def _answer(self, conn: Conn, path: str) -> None:
        parts = path.partition("?")[0].strip("/").split("/")
        if parts[0] == "sleep":
            self._later(float(parts[1]), lambda: self._send(conn, _ok(), done=True))
        elif parts[0] == "stall":
            self._send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", done=False)
        elif parts[0] == "drip":
            n, every = int(parts[1]), float(parts[2])
            self._send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n, done=False)
            for i in range(n):
                last = i == n - 1
                self._later(every * (i + 1), lambda last=last: self._send(conn, b"x", done=last))
        else:
            self._send(conn, _ok(), done=True)

    def _send(self, conn: Conn, data: bytes, *, done: bool) -> None:
        if conn.closed:
            return
        with contextlib.suppress(OSError):  # small writes: the send buffer takes them
            conn.sock.send(data)
        if done:
            conn.pending -= 1

    def _later(self, delay: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._seq), action))

    def _run_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, action = heapq.heappop(self._timers)
            action()

    def _closed(self, conn: Conn) -> None:
        self._sel.unregister(conn.sock)
        conn.sock.close()
        conn.closed_at = time.monotonic()
        conn.cut = conn.pending > 0 or bool(conn.buf)
        self.origins[conn.origin].open -= 1
        self.open -= 1

    # -- shutting down ---------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self._listeners:
            sock.close()
        for conn in self.conns:
            if not conn.closed:
                with contextlib.suppress(OSError):
                    conn.sock.close()
        self._sel.close()

    def __enter__(self) -> CountServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
