"""MockServer: a real HTTP/1.1 server in a background thread, with expectations.

Threads, not an event loop: one thread accepts (a selector over the TCP and
Unix listeners and a wake-up socket), and each connection gets its own thread
running blocking reads and ``sendall``. Delays, drips and stalls are then
plain waits on the stop event, and one server serves asyncio and threaded
tests alike. ``stop()`` shuts every socket down (which wakes a thread blocked
in ``recv``/``sendall``), sets the stop event (which wakes every wait) and
joins the threads within a bound.

Measured (``uv run python benchmarks/mockserver_rate.py``, 2-vCPU VM,
CPython 3.11.7): 25,000-40,000 keep-alive requests/s over 5 connections from
an ``AtomicClientPool`` with 5 client threads in the same process (server
and client share the GIL), so tests of connection reuse with thousands of
requests take well under a second. An event-loop server would save the
threads, but every delay, drip and stall would then need its own timer.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import selectors
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time
import traceback
import warnings
from collections import deque
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import parse_qs

from warmline.testing import _match as m
from warmline.testing._http import BadRequest, ClientGone, ParsedRequest, RequestReader
from warmline.testing._respond import (
    Leaf,
    Reply,
    Responder,
    ResponderLike,
    Sequence,
    resolve,
)

__all__ = ["Expectation", "MockServer"]

_HANDSHAKE_TIMEOUT: Final = 10.0
_DIFF_LINES: Final = 10
_UNSET: Final[Any] = object()


class Expectation:
    """What the server expects and how it answers; built by ``MockServer.expect``.

    Every builder method returns the expectation, so calls chain::

        server.expect(method="GET", path="/time").respond(json={"t": 1}).times(2)

    By default an expectation must be met at least once (``verify()`` fails
    otherwise); ``any_times()`` turns it into a stub that may go unused.

    The expectation is live as soon as ``expect()`` returns: finish the chain
    before your client sends the requests it is meant for.
    """

    def __init__(self, server: MockServer, matchers: list[m.Matcher], name: str | None) -> None:
        self._server = server
        self.matchers = matchers
        self.name = name
        self.responder: ResponderLike = Reply()
        self.min_count = 1
        self.max_count: int | None = None
        self.match_limit: int | None = None
        self.count = 0

    # -- responses -------------------------------------------------------------
    def respond(self, status: int = 200, **reply: Any) -> Self:
        """Answer with ``Reply(status, **reply)`` (see :class:`Reply` for the keywords)."""
        self.responder = Reply(status, **reply)
        return self

    def respond_with(self, *responders: ResponderLike, cycle: bool = False) -> Self:
        """Answer with a responder, a fault, a callable ``(request) -> Responder``,
        or with several in turn (the last repeats unless ``cycle``)."""
        for r in responders:
            if not (isinstance(r, Responder) or callable(r)):
                raise TypeError(f"not a responder: {r!r}")
        if not responders:
            raise ValueError("respond_with needs at least one responder")
        one = len(responders) == 1 and not cycle
        self.responder = responders[0] if one else Sequence(*responders, cycle=cycle)
        return self

    # -- counts ----------------------------------------------------------------
    def times(self, n: int) -> Self:
        """Expect exactly ``n`` matching requests."""
        return self._bounds(n, n)

    def once(self) -> Self:
        """Expect exactly one matching request."""
        return self._bounds(1, 1)

    def never(self) -> Self:
        """Expect no matching request (one that arrives is still answered)."""
        return self._bounds(0, 0)

    def at_least(self, n: int) -> Self:
        """Expect ``n`` or more matching requests."""
        return self._bounds(n, None)

    def at_most(self, n: int) -> Self:
        """Expect no more than ``n`` matching requests (none is fine)."""
        return self._bounds(0, n)

    def between(self, low: int, high: int) -> Self:
        """Expect from ``low`` to ``high`` matching requests, both included."""
        return self._bounds(low, high)

    def any_times(self) -> Self:
        """A stub: any number of requests, none included, satisfies ``verify()``."""
        return self._bounds(0, None)

    def limit(self, n: int) -> Self:
        """Match at most ``n`` requests; later ones fall through to other expectations.

        Registering ``expect(path="/x").respond(status=503).limit(2)`` before
        ``expect(path="/x").respond(status=200)`` fails twice, then succeeds.
        """
        if n < 0:
            raise ValueError("limit must be >= 0")
        self.match_limit = n
        return self

    def _bounds(self, low: int, high: int | None) -> Self:
        if low < 0 or (high is not None and high < low):
            raise ValueError(f"bad expected count: {low}..{high}")
        self.min_count, self.max_count = low, high
        return self

    # -- inspection ------------------------------------------------------------
    @property
    def received(self) -> list[m.RecordedRequest]:
        """The requests this expectation answered (those still in the journal)."""
        return [r for r in self._server.journal if r.expectation is self]

    def describe(self) -> str:
        """``name`` if given, else its matchers, e.g. ``method 'GET', path '/time'``."""
        if self.name:
            return self.name
        return ", ".join(x.describe() for x in self.matchers) or "any request"

    def describe_count(self) -> str:
        """The expected count in words: ``exactly 3``, ``at least 1``..."""
        low, high = self.min_count, self.max_count
        if high is None:
            return "any number" if low == 0 else f"at least {low}"
        if low == high:
            return f"exactly {low}"
        return f"at most {high}" if low == 0 else f"between {low} and {high}"

    def is_satisfied(self) -> bool:
        """Whether the count received so far meets the expected count."""
        return self.count >= self.min_count and (
            self.max_count is None or self.count <= self.max_count
        )

    def explain(self, request: m.RecordedRequest) -> str | None:
        """None if ``request`` matches every matcher, else the first reason it does not."""
        for matcher in self.matchers:
            if (reason := matcher.explain(request)) is not None:
                return reason
        return None

    def __repr__(self) -> str:
        return f"<Expectation {self.describe()}: {self.describe_count()}, got {self.count}>"


def _matchers_from(
    method: m.ValueSpec | None,
    path: m.ValueSpec | None,
    query: Mapping[str, object] | None,
    headers: Mapping[str, object] | None,
    body: Any,
    json: Any,
    json_subset: Any,
    extra: Iterable[m.Matcher],
) -> list[m.Matcher]:
    found: list[m.Matcher] = []
    if method is not None:
        found.append(m.method(method))
    if path is not None:
        found.append(m.path(path))
    if query is not None:
        found.append(m.query(query))
    found.extend(m.header(k, v) for k, v in (headers or {}).items())
    if body is not None:
        found.append(m.body(body))
    if json is not _UNSET:
        found.append(m.json_equals(json))
    if json_subset is not _UNSET:
        found.append(m.json_subset(json_subset))
    for x in extra:
        if not isinstance(x, m.Matcher):
            raise TypeError(f"matchers must be Matcher instances, got {x!r}")
        found.append(x)
    return found


class _Conn:
    """One accepted connection: its socket, id and thread (the ``ConnIO`` of leaves)."""

    __slots__ = ("id", "server", "sock", "thread", "tls", "transport")

    def __init__(self, server: MockServer, sock: socket.socket, cid: int, transport: str) -> None:
        self.server = server
        self.sock = sock
        self.id = cid
        self.transport = transport
        self.tls = False
        self.thread: threading.Thread | None = None

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def wait(self, seconds: float | None) -> bool:
        return self.server._stopping.wait(seconds)

    def reset(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def shutdown(self) -> None:
        # The plain socket's shutdown, also on an SSLSocket: SSLSocket.shutdown
        # would drop its SSL object under the thread still using it.
        with contextlib.suppress(OSError, ValueError):
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)


class MockServer:
    """A real HTTP/1.1 server on 127.0.0.1 (and a Unix socket, and TLS) for tests.

    Args:
        tls: True to serve TLS with a certificate made at start for
            ``127.0.0.1`` and ``localhost`` by a throwaway CA (needs
            ``trustme``); or a server ``ssl.SSLContext`` of your own.
        uds: True to also listen on a Unix socket in a temporary directory
            (``uds_path``), or the path to listen on.
        host: The loopback address to listen on.
        port: The port; 0 (the default) picks a free one.
        idle_timeout: Close a kept-alive connection idle this many seconds
            (to test stale connections); None keeps it open.
        strict: Whether ``verify()`` also fails on unmatched requests and on
            malformed requests from the client.
        max_body_size: Largest request body accepted (413 beyond).
        journal_size: Most requests the journal keeps (the oldest go first).
        stop_timeout: Seconds ``stop()`` waits for the threads to finish.

    Raises:
        ValueError: A host that is not a loopback address.
        ImportError: ``tls=True`` without ``trustme`` installed.
    """

    def __init__(
        self,
        *,
        tls: bool | ssl.SSLContext = False,
        uds: bool | str = False,
        host: str = "127.0.0.1",
        port: int = 0,
        idle_timeout: float | None = None,
        strict: bool = True,
        max_body_size: int = 16 * 1024 * 1024,
        journal_size: int = 100_000,
        stop_timeout: float = 5.0,
    ) -> None:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(
                f"MockServer listens on a loopback IP address only (127.0.0.1, ::1), got {host!r}"
            )
        self.host = host
        self._want_port = port
        self._tls_option = tls
        self._uds_option = uds
        self.idle_timeout = idle_timeout
        self.strict = strict
        self.max_body_size = max_body_size
        self.stop_timeout = stop_timeout
        self.expectations: list[Expectation] = []
        self._journal: deque[m.RecordedRequest] = deque(maxlen=journal_size)
        self._recorded = 0
        self._errors: list[str] = []
        self._responder_errors: list[str] = []
        self._lock = threading.Lock()
        self._journal_grew = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._conns: dict[int, _Conn] = {}
        self._next_conn = 0
        self._listeners: list[tuple[socket.socket, str]] = []
        self._tmpdir: str | None = None
        self._server_ctx: ssl.SSLContext | None = None
        self._accept_thread: threading.Thread | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self.port = 0
        self.uds_path: str | None = None
        self.ca_file: str | None = None

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> Self:
        """Bind, listen and start serving in a background thread; returns self."""
        if self._accept_thread is not None:
            raise RuntimeError("MockServer already started")
        try:
            self._tmpdir = tempfile.mkdtemp(prefix="warmline-mock-")
            self._server_ctx = self._make_tls()
            self._listen()
        except BaseException:
            self._cleanup()
            raise
        self._wake = socket.socketpair()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"MockServer:{self.port}", daemon=True
        )
        self._accept_thread.start()
        return self

    def _make_tls(self) -> ssl.SSLContext | None:
        option = self._tls_option
        if isinstance(option, ssl.SSLContext) or not option:
            return option or None
        try:
            import trustme
        except ImportError as exc:
            raise ImportError(
                "MockServer(tls=True) makes its certificate with trustme: "
                "pip install 'warmline[testing]' (or pass a server ssl.SSLContext)"
            ) from exc
        ca = trustme.CA()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost", "::1").configure_cert(ctx)
        assert self._tmpdir is not None
        self.ca_file = os.path.join(self._tmpdir, "ca.pem")
        ca.cert_pem.write_to_path(self.ca_file)
        return ctx

    def _listen(self) -> None:
        tcp = socket.create_server((self.host, self._want_port), backlog=512)
        self._listeners.append((tcp, "tcp"))
        self.port = tcp.getsockname()[1]
        if self._uds_option:
            assert self._tmpdir is not None
            path = self._uds_option
            self.uds_path = path if isinstance(path, str) else os.path.join(self._tmpdir, "s.sock")
            uds = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._listeners.append((uds, "unix"))
            uds.bind(self.uds_path)
            uds.listen(512)
        for sock, _ in self._listeners:
            sock.setblocking(False)

    def stop(self) -> None:
        """Close every connection and listener; join the threads (``stop_timeout`` bound).

        Idempotent. A thread still running after the bound (which would be a
        bug) is reported with a ``RuntimeWarning``.
        """
        accept = self._accept_thread
        if accept is None or self._stopping.is_set():
            return
        deadline = time.monotonic() + self.stop_timeout
        self._stopping.set()
        if self._wake is not None:
            with contextlib.suppress(OSError):
                self._wake[1].send(b"x")
        accept.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            conns = list(self._conns.values())
        for conn in conns:
            conn.shutdown()
        stuck = sum(1 for c in conns if c.thread and not _join(c.thread, deadline))
        stuck += accept.is_alive()
        self._cleanup()
        if stuck:
            warnings.warn(
                f"MockServer.stop: {stuck} thread(s) still running after {self.stop_timeout} s",
                RuntimeWarning,
                stacklevel=2,
            )

    def _cleanup(self) -> None:
        for sock, _ in self._listeners:
            sock.close()
        for sock in self._wake or ():
            sock.close()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, tp: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(
        self, tp: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        import asyncio

        # stop() joins threads: off the event loop, so clients on it can finish.
        await asyncio.to_thread(self.stop)

    # -- addresses ---------------------------------------------------------------
    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` with TLS); no trailing slash."""
        if not self.port:
            raise RuntimeError("MockServer not started: use start() or `with MockServer()`")
        scheme = "https" if self._server_ctx else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def uds_url(self) -> str:
        """``unix:///path`` of the Unix socket (give ``uds=True`` to the constructor)."""
        if self.uds_path is None:
            raise RuntimeError("MockServer has no Unix socket: pass uds=True")
        return f"unix://{self.uds_path}"

    def ssl_context(self) -> ssl.SSLContext:
        """A client ``SSLContext`` that trusts this server's generated certificate."""
        if self.ca_file is None:
            raise RuntimeError("no generated certificate: pass tls=True and start the server")
        return ssl.create_default_context(cafile=self.ca_file)

    # -- expectations ------------------------------------------------------------
    def expect(
        self,
        *matchers: m.Matcher,
        method: m.ValueSpec | None = None,
        path: m.ValueSpec | None = None,
        query: Mapping[str, object] | None = None,
        headers: Mapping[str, object] | None = None,
        body: Any = None,
        json: Any = _UNSET,
        json_subset: Any = _UNSET,
        name: str | None = None,
    ) -> Expectation:
        """Add an expectation; the first registered one that matches answers.

        Args:
            *matchers: Extra :class:`Matcher` objects (``predicate(...)`` etc.).
            method, path: Value specs (str, ``regex(...)``, callable).
            query: Parameters, see :func:`warmline.testing.query`.
            headers: Header name to value spec (or ``ABSENT``).
            body: The exact body (bytes or str) or a pattern.
            json: The body parsed as JSON equals this.
            json_subset: The body parsed as JSON contains this.
            name: Shown in diffs instead of the matchers.

        Returns:
            The :class:`Expectation`: chain ``respond(...)`` and a count on it.
        """
        found = _matchers_from(method, path, query, headers, body, json, json_subset, matchers)
        expectation = Expectation(self, found, name)
        with self._lock:
            self.expectations.append(expectation)
        return expectation

    def reset(self) -> None:
        """Forget every expectation, the journal and the recorded errors."""
        with self._lock:
            self.expectations.clear()
            self._journal.clear()
            self._errors.clear()
            self._responder_errors.clear()

    def close_connections(self) -> int:
        """Close every open connection now, as a server restart would; returns how many."""
        with self._lock:
            conns = list(self._conns.values())
        for conn in conns:
            conn.shutdown()
        return len(conns)

    # -- journal -----------------------------------------------------------------
    @property
    def journal(self) -> list[m.RecordedRequest]:
        """Every request received (up to ``journal_size``), oldest first."""
        with self._lock:
            return list(self._journal)

    @property
    def unmatched(self) -> list[m.RecordedRequest]:
        """The requests no expectation matched (they were answered 404)."""
        return [r for r in self.journal if r.expectation is None]

    @property
    def errors(self) -> list[str]:
        """Malformed requests received (``conn 3: 400 bad chunk...``), then
        callable responders that raised, one line each."""
        with self._lock:
            return self._errors + self._responder_errors

    @property
    def connections_accepted(self) -> int:
        """How many connections the server accepted so far."""
        return self._next_conn

    @property
    def open_connections(self) -> int:
        """How many connections are open now."""
        with self._lock:
            return len(self._conns)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[m.RecordedRequest]:
        """Block until the server has received ``count`` requests in all; return the journal.

        Raises:
            AssertionError: Fewer arrived within ``timeout`` seconds.
        """
        with self._journal_grew:
            if not self._journal_grew.wait_for(lambda: self._recorded >= count, timeout):
                raise AssertionError(
                    f"expected {count} requests within {timeout} s, got {self._recorded}"
                )
            return list(self._journal)

    # -- verification --------------------------------------------------------------
    def verify(self) -> None:
        """Check every expectation's count, that no callable responder raised, and
        (when ``strict``) that no request was unmatched or malformed.

        Raises:
            AssertionError: With a report of what was expected and what arrived.
        """
        with self._lock:
            expectations = list(self.expectations)
            journal = list(self._journal)
            errors = (self._errors if self.strict else []) + self._responder_errors
        unmet = [e for e in expectations if not e.is_satisfied()]
        unmatched = [r for r in journal if r.expectation is None] if self.strict else []
        if unmet or unmatched or errors:
            raise AssertionError(_report(expectations, journal, unmet, unmatched, errors))

    # -- serving -------------------------------------------------------------------
    def _accept_loop(self) -> None:
        assert self._wake is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._wake[0], selectors.EVENT_READ)
            for sock, transport in self._listeners:
                sel.register(sock, selectors.EVENT_READ, transport)
            while not self._stopping.is_set():
                for key, _ in sel.select():
                    if key.data is None:
                        return
                    self._accept(key.fileobj, key.data)  # type: ignore[arg-type]

    def _accept(self, listener: socket.socket, transport: str) -> None:
        try:
            sock, _ = listener.accept()
        except OSError:  # the client gave up in the meantime, or out of fds
            return
        if transport == "tcp":
            # One sendall per response, but drips and faults send small
            # pieces that must leave now, not after a delayed ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            if self._stopping.is_set():
                sock.close()
                return
            self._next_conn += 1
            conn = _Conn(self, sock, self._next_conn, transport)
            self._conns[conn.id] = conn
        conn.thread = threading.Thread(
            target=self._serve, args=(conn,), name=f"MockServer:{self.port}#{conn.id}", daemon=True
        )
        conn.thread.start()

    def _serve(self, conn: _Conn) -> None:
        try:
            if self._server_ctx is not None and not self._handshake(conn):
                return
            conn.sock.settimeout(self.idle_timeout)
            reader = RequestReader(conn.sock, self.max_body_size)
            while not self._stopping.is_set() and self._serve_one(conn, reader):
                pass
        except BadRequest as exc:
            self._bad_request(conn, exc)
        except (ClientGone, OSError, ValueError):
            # The client left, a stop shut the socket, or a fault closed it
            # (ValueError: an SSLSocket used after close).
            pass
        except Exception as exc:  # a bug, here or in a responder: fail verify(), not the thread
            with self._lock:
                self._responder_errors.append(f"conn {conn.id}: server error {exc!r}")
        finally:
            conn.sock.close()
            with self._lock:
                self._conns.pop(conn.id, None)

    def _handshake(self, conn: _Conn) -> bool:
        assert self._server_ctx is not None
        conn.sock.settimeout(_HANDSHAKE_TIMEOUT)
        # wrap_socket detaches the plain socket: publish the TLS one before
        # the handshake blocks, so that stop() can shut it down; a stop that
        # came in between is seen by the is_set() check.
        conn.sock = self._server_ctx.wrap_socket(
            conn.sock, server_side=True, do_handshake_on_connect=False
        )
        if self._stopping.is_set():
            return False
        try:
            conn.sock.do_handshake()
        except (OSError, ValueError):
            return False  # a client that rejects the certificate, or garbage
        conn.tls = True
        return not self._stopping.is_set()

    def _serve_one(self, conn: _Conn, reader: RequestReader) -> bool:
        try:
            parsed = reader.read_head()
        except TimeoutError:
            return False  # idle_timeout: close the kept-alive connection
        if parsed.expect_continue:
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        parsed.body = reader.read_body(parsed)
        request, leaf = self._record(parsed, conn)
        keep = leaf._send(conn, request)
        return keep and parsed.keep_alive

    def _record(self, parsed: ParsedRequest, conn: _Conn) -> tuple[m.RecordedRequest, Leaf]:
        path, _, qs = parsed.target.partition("?")
        query = parse_qs(qs, keep_blank_values=True)
        headers = m.RequestHeaders(parsed.headers)
        now = time.monotonic()
        with self._lock:
            request = m.RecordedRequest(
                self._recorded,
                parsed.method,
                parsed.target,
                path,
                query,
                headers,
                parsed.body,
                parsed.http_version,
                conn.id,
                now,
                conn.tls,
                conn.transport,
            )
            expectation, call = self._claim(request)
            if expectation is not None:
                # Frozen for users; the server sets the link once, here.
                object.__setattr__(request, "expectation", expectation)
            self._journal.append(request)
            self._recorded += 1
            self._journal_grew.notify_all()
        if expectation is None:
            return request, self._not_found(request)
        try:
            return request, resolve(expectation.responder, request, call)
        except Exception as exc:  # a user's callable responder failed: say so, serve on
            return request, self._responder_failed(request, expectation, exc)

    def _responder_failed(
        self, request: m.RecordedRequest, expectation: Expectation, exc: Exception
    ) -> Reply:
        line = f"{request.summary()}: the responder of [{expectation.describe()}] raised {exc!r}"
        with self._lock:
            self._responder_errors.append(line)
        text = "".join(traceback.format_exception(exc))
        return Reply(500, body=f"warmline MockServer: {line}\n\n{text}")

    def _claim(self, request: m.RecordedRequest) -> tuple[Expectation | None, int]:
        # Under the lock: the first expectation that matches and is not at
        # its limit takes the request; its call number picks the response.
        for e in self.expectations:
            if e.match_limit is not None and e.count >= e.match_limit:
                continue
            if e.explain(request) is None:
                e.count += 1
                return e, e.count - 1
        return None, 0

    def _not_found(self, request: m.RecordedRequest) -> Reply:
        lines = [f"warmline MockServer: no expectation matched {request.method} {request.target}"]
        with self._lock:
            expectations = list(self.expectations)
        if not expectations:
            lines.append("(no expectation is registered)")
        for i, e in enumerate(expectations, 1):
            reason = e.explain(request) or f"at its limit of {e.match_limit}"
            lines.append(f"  [{i}] {e.describe()}: {reason}")
        return Reply(404, body="\n".join(lines) + "\n", headers={"X-Warmline-Mock": "unmatched"})

    def _bad_request(self, conn: _Conn, exc: BadRequest) -> None:
        with self._lock:
            self._errors.append(f"conn {conn.id}: {exc.status} {exc.reason}")
        reply = Reply(exc.status, body=f"warmline MockServer: {exc.reason}\n", close=True)
        with contextlib.suppress(OSError, ValueError):
            conn.sendall(reply.wire)
            # Half-close and drain briefly, so that unread request bytes do
            # not turn our close into a RST that loses the 400 on the way.
            socket.socket.shutdown(conn.sock, socket.SHUT_WR)
            conn.sock.settimeout(0.2)
            for _ in range(16):
                if not conn.sock.recv(65536):
                    break


def _join(thread: threading.Thread, deadline: float) -> bool:
    thread.join(max(0.0, deadline - time.monotonic()))
    return not thread.is_alive()


# -- the verify() report ----------------------------------------------------------


def _report(
    expectations: list[Expectation],
    journal: list[m.RecordedRequest],
    unmet: list[Expectation],
    unmatched: list[m.RecordedRequest],
    errors: list[str],
) -> str:
    counts = [f"{len(unmet)} of {len(expectations)} expectations not met"]
    if unmatched:
        counts.append(f"{len(unmatched)} unmatched request(s)")
    if errors:
        counts.append(f"{len(errors)} error(s)")
    out = [f"MockServer.verify() failed: {', '.join(counts)}", "", "Expectations:"]
    for i, e in enumerate(expectations, 1):
        mark = "✓" if e.is_satisfied() else "✗"
        out.append(
            f"  {mark} [{i}] {e.describe()}: expected {e.describe_count()}, received {e.count}"
        )
        if e in unmet:
            out.extend(_near_misses(e, journal, expectations))
    if unmatched:
        out += ["", "Unmatched requests (answered 404):"]
        out += [f"  {r.summary()}" for r in unmatched[:_DIFF_LINES]]
        out += _more(len(unmatched))
    if errors:
        out += ["", "Errors (malformed requests, responders that raised):"]
        out += [f"  {line}" for line in errors[:_DIFF_LINES]] + _more(len(errors))
    connections = len({r.connection_id for r in journal})
    out += ["", f"Received {len(journal)} request(s) on {connections} connection(s)."]
    return "\n".join(out)


def _near_misses(
    e: Expectation, journal: list[m.RecordedRequest], expectations: list[Expectation]
) -> list[str]:
    """Each received request against ``e``: matched, or the first reason why not."""
    if not journal:
        return ["      (no request was received)"]
    lines = []
    for r in journal[:_DIFF_LINES]:
        if r.expectation is e:
            why = "matched"
        elif (reason := e.explain(r)) is None:
            other = expectations.index(r.expectation) + 1 if r.expectation else 0
            why = f"would match, but [{other}] answered it" if other else "would match"
        else:
            why = reason
        lines.append(f"      {r.summary()}: {why}")
    return lines + [f"  {line}" for line in _more(len(journal))]


def _more(n: int) -> list[str]:
    return [f"    ... and {n - _DIFF_LINES} more"] if n > _DIFF_LINES else []
