"""Helpers for the pool misuse and lifecycle tests (issue 9).

* :class:`Recorder`: a raw keep-alive server (127.0.0.1, bounded) that
  answers every request with ``ok`` (or, with ``echo=True``, with its request
  line), except paths starting with ``/slow``, which it reads and never
  answers (a request stays in flight until the client closes the connection
  or the test lets go). It records what it saw: request lines, on which
  connection, and client closes.
* :func:`idle_close_handler`: a server whose keep-alive timeout is short: it
  closes (FIN) a connection idle for ``idle_for(index)`` seconds.
* :func:`background` / :func:`outcome`: run one call of a test body (a lambda
  that is blocking for the thread pool, or returns a coroutine for the asyncio
  pool) without waiting, then collect its result or exception with a bound
  that turns a hang into a test failure. The asyncio call runs on the pool's
  own loop (:class:`tests.faultproxy.PoolDriver`), so one body covers both.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from .faultproxy import PoolDriver
from .rawserver import OK_SMALL, Handler, RawServer

# A connection a handler still serves after this long is let go: nothing here
# ever runs unbounded.
_HANDLER_CAP_S = 20.0
# A background call that has not ended by then is a hang.
HANG_S = 10.0


class Recorder:
    """A scripted keep-alive server that records what it saw (see module doc)."""

    def __init__(self, response: bytes = OK_SMALL, *, echo: bool = False) -> None:
        self.response = response
        self.echo = echo
        self.lines: list[bytes] = []  # request lines, in arrival order
        self.seen: list[tuple[int, bytes]] = []  # (connection index, request line)
        self.client_closes = 0  # connections the client closed (EOF or reset)
        self.slow_seen = threading.Event()  # a /slow request arrived
        self.let_go = threading.Event()  # set: drop the /slow connections (FIN)
        self.server = RawServer(self._handle)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def connections(self) -> int:
        return self.server.connections

    def posts(self) -> list[bytes]:
        return [line for line in self.lines if line.startswith(b"POST ")]

    def _handle(self, conn: socket.socket, index: int) -> None:
        conn.settimeout(0.05)
        buf = b""
        stalled = False
        deadline = time.monotonic() + _HANDLER_CAP_S
        while time.monotonic() < deadline:
            if stalled and self.let_go.is_set():
                return  # FIN without an answer
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                self.client_closes += 1
                return
            if not chunk:
                self.client_closes += 1
                return
            buf += chunk
            buf, stalled = self._answer(conn, index, buf, stalled)

    def _answer(
        self, conn: socket.socket, index: int, buf: bytes, stalled: bool
    ) -> tuple[bytes, bool]:
        """Answer every complete request in ``buf``; returns the rest."""
        while b"\r\n\r\n" in buf:
            head, _, rest = buf.partition(b"\r\n\r\n")
            length = _content_length(head)
            if len(rest) < length:
                break
            buf = rest[length:]
            line = head.split(b"\r\n", 1)[0]
            self.lines.append(line)
            self.seen.append((index, line))
            if line.split(b" ")[1].startswith(b"/slow"):
                self.slow_seen.set()
                stalled = True
            elif not stalled:
                conn.sendall(_echo(line) if self.echo else self.response)
        return buf, stalled

    def stop(self) -> None:
        self.let_go.set()
        self.server.stop()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _echo(line: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(line), line)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def idle_close_handler(idle_for: Callable[[int], float]) -> Handler:
    """Answer requests with ``ok``; close a connection idle ``idle_for(index)`` s."""

    def handler(conn: socket.socket, index: int) -> None:
        conn.settimeout(idle_for(index))
        buf = b""
        deadline = time.monotonic() + _HANDLER_CAP_S
        while time.monotonic() < deadline:
            try:
                chunk = conn.recv(65536)
            except OSError:  # TimeoutError: idle for too long
                return
            if not chunk:
                return
            buf += chunk
            while b"\r\n\r\n" in buf:
                _, _, buf = buf.partition(b"\r\n\r\n")
                conn.sendall(OK_SMALL)

    return handler


async def _await_call(call: Callable[[], Any]) -> Any:
    # The coroutine is made on the pool's loop: a shell may check its loop
    # when the request method is called, not only when it is awaited.
    return await call()


def background(driver: PoolDriver, call: Callable[[], Any]) -> concurrent.futures.Future[Any]:
    """Start ``call()`` without waiting: on the pool's loop, or in a thread."""
    if driver.flavour == "aio":
        loop = driver._loop
        assert loop is not None
        return asyncio.run_coroutine_threadsafe(_await_call(call), loop)
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(call())
        except BaseException as exc:  # handed to the test, which judges it
            future.set_exception(exc)

    threading.Thread(target=run, name="misuse-call", daemon=True).start()
    return future


def outcome(future: concurrent.futures.Future[Any], bound: float = HANG_S) -> Any:
    """The call's result, or the exception it raised; AssertionError on a hang."""
    try:
        return future.result(bound)
    except TimeoutError as exc:
        if future.done():
            return exc  # the call's own timeout error (ReadTimeout is a TimeoutError)
        raise AssertionError(f"hang: the call did not end within {bound} s") from None
    except Exception as exc:
        return exc


def run(driver: PoolDriver, call: Callable[[], Any], bound: float = HANG_S) -> Any:
    """``call()`` on the right thread or loop; its result or exception, bounded."""
    return outcome(background(driver, call), bound)
