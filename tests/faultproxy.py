"""A fault-injection TCP proxy for tests: 127.0.0.1 only, controlled from the test.

:class:`FaultProxy` listens on a loopback port and forwards every connection to
a real server (granian, nginx, or a raw test server). The test changes what the
proxy does at any moment, from any thread (asyncio and thread tests alike):

* ``configure(latency=, jitter=)``: delay every chunk, each direction, keeping
  the byte order (a chunk is never delivered before the one read before it).
* ``configure(bandwidth=)`` (responses) / ``configure(upload_bandwidth=)``:
  bytes per second; ``bandwidth=1`` turns any server into a one-byte-a-second
  drip.
* ``configure(reset_after=N)`` / ``configure(close_after=N)``: once a
  connection has forwarded N response bytes (counted from the moment the fault
  was set), forward no more and RST (``reset``) or FIN (``close``) both sides.
  ``N=0`` kills a connection at the first response byte, so that the client
  sees its kept-alive connection closed before any byte: the stale case.
* ``configure(drop_new="close" | "reset" | "hang")``: accept new connections,
  then close, reset, or hold them without forwarding anything.
* ``configure(idle_close=T)``: close (FIN) connections idle for T seconds, as
  a server's keep-alive timeout does (the keep-alive race).
* ``stall(T)``: stop forwarding, every connection and direction, for T seconds.
* ``refuse()``: close the listening port (connects get RST); ``accept()``
  opens it again on the same port.
* ``blackhole()``: the port listens but never accepts, and its accept queue is
  full, so the kernel drops SYNs: a connect can only time out (Linux; other
  kernels may refuse instead). ``accept()`` undoes it.
* ``reset_all()`` / ``close_all()``: kill every open connection now (a server
  crash or restart).
* ``clear()``: back to plain forwarding (open port, no faults).

The proxy runs its own event loop in a daemon thread, so a blocking test and an
asyncio test drive it the same way. Every control call returns once the change
is in effect. ``stats`` counts connections, bytes and the faults applied.
The control calls block for a moment: call them from a test, not from code
running on the proxy's own loop.

:class:`PoolDriver` (at the end) drives a ClientPool or an AtomicClientPool
the same way from a blocking test, so that one test body covers both pool
flavours; the asyncio pool runs on its own loop in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

HOST = "127.0.0.1"
_CHUNK = 65536
# Forwarding steps while a bandwidth limit is on: a slice is at most 1/20 s of
# traffic, so the rate is smooth at the scale the tests look at.
_SLICES_PER_S = 20
_CONTROL_TIMEOUT_S = 10.0

T = TypeVar("T")
DropMode = Literal["close", "reset", "hang"]


@dataclasses.dataclass(frozen=True)
class Faults:
    """What the proxy does to traffic; all off by default."""

    latency: float = 0.0
    jitter: float = 0.0
    bandwidth: float | None = None
    upload_bandwidth: float | None = None
    reset_after: int | None = None
    close_after: int | None = None
    drop_new: DropMode | None = None
    idle_close: float | None = None


@dataclasses.dataclass
class ProxyStats:
    """Counters; read them from any thread (plain ints)."""

    accepted: int = 0
    dropped: int = 0
    upstream_failures: int = 0
    resets: int = 0
    closes: int = 0
    idle_closes: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


def _rst(writer: asyncio.StreamWriter) -> None:
    """Abort with RST instead of FIN (SO_LINGER 0)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Link:
    """One proxied connection: client <-> proxy <-> upstream."""

    def __init__(
        self, proxy: FaultProxy, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.proxy = proxy
        self.client_r = reader
        self.client_w = writer
        self.upstream_w: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.last_activity = time.monotonic()
        self.epoch = -1  # the fault epoch that `down_bytes` counts from
        self.down_bytes = 0
        self.dead = False

    async def run(self) -> None:
        proxy = self.proxy
        try:
            up_r, up_w = await asyncio.open_connection(*proxy.upstream)
        except OSError:
            proxy.stats.upstream_failures += 1
            self.dead = True
            _rst(self.client_w)  # the server is down: the client sees a reset
            return
        if self.dead:  # killed while connecting upstream
            up_w.transport.abort()
            return
        self.upstream_w = up_w
        _nodelay(self.client_w)
        _nodelay(up_w)
        loop = asyncio.get_running_loop()
        self.tasks = [
            loop.create_task(self._pump(self.client_r, up_w, down=False)),
            loop.create_task(self._pump(up_r, self.client_w, down=True)),
        ]
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.kill(rst=False)

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, down: bool
    ) -> None:
        """Read from ``src``, delay, then forward to ``dst`` in order; EOF half-closes."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(maxsize=32)
        sender = asyncio.get_running_loop().create_task(self._send(queue, dst, down=down))
        last_due = 0.0
        try:
            while True:
                try:
                    data = await src.read(_CHUNK)
                except OSError:
                    data = b""
                self.last_activity = time.monotonic()
                # Never before the chunk read before this one: bytes stay in order.
                last_due = max(time.monotonic() + self._delay(), last_due)
                await queue.put((last_due, data))
                if not data:
                    break
            await sender
        finally:
            sender.cancel()

    def _delay(self) -> float:
        faults = self.proxy.faults
        return faults.latency + (random.uniform(0, faults.jitter) if faults.jitter else 0.0)

    async def _send(
        self, queue: asyncio.Queue[tuple[float, bytes]], dst: asyncio.StreamWriter, *, down: bool
    ) -> None:
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                with contextlib.suppress(OSError, RuntimeError):
                    if dst.can_write_eof() and not dst.transport.is_closing():
                        dst.write_eof()
                return
            kill_after: bool | None = None
            if down:
                data, kill_after = self._apply_kill_faults(data)
                if not data:
                    return
            await self._forward(data, dst, down=down)
            if kill_after is not None:
                await self._flush(dst)
                self.kill(rst=kill_after)
                return

    def _apply_kill_faults(self, data: bytes) -> tuple[bytes, bool | None]:
        """Trim ``data`` to what may pass before a reset/close fault fires.

        Returns:
            The bytes to forward, and None (no fault fires), True (reset
            after forwarding them) or False (close after forwarding them).
            With nothing left to forward, the link is already killed.
        """
        proxy = self.proxy
        faults = proxy.faults
        reset, close = faults.reset_after, faults.close_after
        if reset is None and close is None:
            return data, None
        if self.epoch != proxy.epoch:
            self.epoch = proxy.epoch
            self.down_bytes = 0
        rst = close is None or (reset is not None and reset <= close)
        limit = reset if rst else close
        assert limit is not None
        allowed = limit - self.down_bytes
        if allowed <= 0:
            self.kill(rst=rst)
            return b"", rst
        if len(data) >= allowed:
            return data[:allowed], rst
        return data, None

    async def _forward(self, data: bytes, dst: asyncio.StreamWriter, *, down: bool) -> None:
        proxy = self.proxy
        view = memoryview(data)
        while view:
            await proxy.wait_unstalled()
            faults = proxy.faults
            rate = faults.bandwidth if down else faults.upload_bandwidth
            step = len(view) if rate is None else max(1, int(rate / _SLICES_PER_S))
            piece = view[:step]
            view = view[step:]
            dst.write(piece)
            if down:
                proxy.stats.bytes_down += len(piece)
                self.down_bytes += len(piece)
            else:
                proxy.stats.bytes_up += len(piece)
            self.last_activity = time.monotonic()
            await dst.drain()
            if rate is not None:
                await asyncio.sleep(len(piece) / rate)

    async def _flush(self, dst: asyncio.StreamWriter) -> None:
        # The bytes allowed through must reach the client before the RST does.
        for _ in range(100):
            if dst.transport.get_write_buffer_size() == 0:
                return
            await asyncio.sleep(0.005)

    def kill(self, *, rst: bool) -> None:
        """End this link now, with RST or FIN on both sides."""
        if self.dead:
            return
        self.dead = True
        stats = self.proxy.stats
        if rst:
            stats.resets += 1
        else:
            stats.closes += 1
        for writer in (self.client_w, self.upstream_w):
            if writer is None:
                continue
            if rst:
                _rst(writer)
            else:
                writer.close()
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()


class FaultProxy:
    """A TCP proxy on 127.0.0.1 in front of ``upstream``, with injectable faults.

    Use it as a context manager, or call :meth:`stop`. See the module
    docstring for the faults.

    Args:
        upstream: ``(host, port)`` of the real server, or its ``http://`` URL.
        port: The port to listen on (0: a free one).
    """

    def __init__(self, upstream: tuple[str, int] | str, port: int = 0) -> None:
        if isinstance(upstream, str):
            hostport = upstream.split("://", 1)[-1].rstrip("/")
            host, _, number = hostport.rpartition(":")
            upstream = (host, int(number))
        self.upstream = upstream
        self.faults = Faults()
        self.epoch = 0
        self.stats = ProxyStats()
        self._stalled_until = 0.0
        self._links: set[_Link] = set()
        self._listener: socket.socket | None = None
        self._clients: set[asyncio.Task[None]] = set()
        # Accepted sockets no transport owns yet (closed at shutdown if a
        # cancelled task never got to them).
        self._unowned: set[socket.socket] = set()
        self._blackhole: list[socket.socket] = []
        self._bound_port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="faultproxy", daemon=True)
        self._thread.start()
        self._watchdog: asyncio.Task[None] | None = None
        self._call(self._start)

    # -- lifecycle ------------------------------------------------------------------
    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        self._loop.close()

    def _call(self, fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``fn()`` on the proxy's loop and wait for it (from any other thread)."""
        future = asyncio.run_coroutine_threadsafe(fn(), self._loop)
        return future.result(_CONTROL_TIMEOUT_S)

    async def _start(self) -> None:
        await self._listen()
        self._watchdog = self._loop.create_task(self._watch_idle())

    async def _listen(self) -> None:
        # A plain accept callback rather than asyncio.start_server or
        # loop.sock_accept: closing either while a connection is being accepted
        # can orphan the accepted socket (CPython 3.11), which a client sees as
        # a server that accepted and went silent instead of a refused port.
        # remove_reader() cancels a pending callback, so the close is exact.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, self._bound_port))
        sock.listen(512)
        sock.setblocking(False)
        self._bound_port = sock.getsockname()[1]
        self._listener = sock
        self._loop.add_reader(sock.fileno(), self._accept_ready, sock)

    def _accept_ready(self, listener: socket.socket) -> None:
        for _ in range(64):
            try:
                conn, _ = listener.accept()
            except OSError:  # BlockingIOError: nothing more to accept
                return
            conn.setblocking(False)
            self._unowned.add(conn)
            task = self._loop.create_task(self._on_client(conn))
            self._clients.add(task)
            task.add_done_callback(self._clients.discard)

    def _close_listener(self) -> None:
        sock = self._listener
        self._listener = None
        if sock is not None:
            self._loop.remove_reader(sock.fileno())
            sock.close()

    @property
    def port(self) -> int:
        return self._bound_port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._bound_port}"

    @property
    def active(self) -> int:
        """Connections open now."""
        return len(self._links)

    def stop(self) -> None:
        """Close everything and stop the proxy's thread (idempotent)."""
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self._call(self._shutdown)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_CONTROL_TIMEOUT_S)

    async def _shutdown(self) -> None:
        self._close_listener()
        self._close_blackhole()
        if self._watchdog is not None:
            self._watchdog.cancel()
        for link in list(self._links):
            link.kill(rst=True)
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for conn in self._unowned:
            conn.close()
        self._unowned.clear()
        await asyncio.sleep(0)  # let the aborted transports run connection_lost

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- connections ----------------------------------------------------------------
    async def _on_client(self, conn: socket.socket) -> None:
        self._unowned.discard(conn)
        try:
            reader, writer = await asyncio.open_connection(sock=conn)
        except BaseException:
            conn.close()
            raise
        with contextlib.suppress(asyncio.CancelledError):  # at shutdown
            await self._serve_client(reader, writer)

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.stats.accepted += 1
        drop = self.faults.drop_new
        if drop is not None:
            self.stats.dropped += 1
            if drop == "reset":
                _rst(writer)
                return
            if drop == "close":
                writer.close()
                return
        link = _Link(self, reader, writer)
        self._links.add(link)
        try:
            if drop == "hang":
                # Hold the connection and forward nothing until it is killed
                # (the abort ends the read) or the client goes away.
                with contextlib.suppress(OSError):
                    while await reader.read(_CHUNK):
                        link.last_activity = time.monotonic()
                link.kill(rst=False)
            else:
                await link.run()
        finally:
            self._links.discard(link)

    async def _watch_idle(self) -> None:
        while True:
            idle = self.faults.idle_close
            await asyncio.sleep(0.01 if idle is None else min(idle / 4, 0.02))
            if idle is None:
                continue
            horizon = time.monotonic() - idle
            for link in list(self._links):
                if link.last_activity < horizon and not link.dead:
                    self.stats.idle_closes += 1
                    link.kill(rst=False)

    async def wait_unstalled(self) -> None:
        while (wait := self._stalled_until - time.monotonic()) > 0:
            await asyncio.sleep(wait)

    # -- control (any thread) -------------------------------------------------------
    def configure(self, **changes: Any) -> Faults:
        """Change some faults (see :class:`Faults`); returns the new set."""

        async def apply() -> Faults:
            self.faults = dataclasses.replace(self.faults, **changes)
            self.epoch += 1  # reset_after/close_after count from now on
            return self.faults

        return self._call(apply)

    def stall(self, seconds: float) -> None:
        """Forward nothing, on any connection, for ``seconds`` (0 resumes)."""

        async def apply() -> None:
            self._stalled_until = time.monotonic() + seconds

        self._call(apply)

    def refuse(self) -> None:
        """Close the listening port: new connects are refused (RST)."""

        async def apply() -> None:
            self._close_listener()
            self._close_blackhole()

        self._call(apply)

    def blackhole(self) -> None:
        """Listen without ever accepting, with a full accept queue: connects time out."""

        async def apply() -> None:
            self._close_listener()
            self._close_blackhole()
            self._blackhole = _full_listener(self._bound_port)
            await asyncio.sleep(0.05)  # let the fillers' handshakes land in the queue

        self._call(apply)

    def accept(self) -> None:
        """Open the port again (after refuse() or blackhole())."""

        async def apply() -> None:
            self._close_blackhole()
            if self._listener is None:
                await self._listen()

        self._call(apply)

    def reset_all(self) -> int:
        """RST every open connection; returns how many."""
        return self._kill_all(rst=True)

    def close_all(self) -> int:
        """FIN every open connection; returns how many."""
        return self._kill_all(rst=False)

    def _kill_all(self, *, rst: bool) -> int:
        async def apply() -> int:
            links = [link for link in self._links if not link.dead]
            for link in links:
                link.kill(rst=rst)
            return len(links)

        return self._call(apply)

    def clear(self) -> None:
        """Plain forwarding again: no faults, no stall, the port open."""

        async def apply() -> None:
            self.faults = Faults()
            self.epoch += 1
            self._stalled_until = 0.0
            self._close_blackhole()
            if self._listener is None:
                await self._listen()

        self._call(apply)

    # -- internals -----------------------------------------------------------------
    def _close_blackhole(self) -> None:
        for sock in self._blackhole:
            with contextlib.suppress(OSError):
                sock.close()
        self._blackhole = []


def _full_listener(port: int) -> list[socket.socket]:
    """A listener on ``port`` with backlog 0 and its accept queue filled.

    Linux drops a SYN that arrives while the accept queue is full, so a connect
    to this port can only time out. Returns the sockets to close later.
    """
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, port))
    listener.listen(0)
    sockets = [listener]
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect((HOST, port))
        sockets.append(filler)
    return sockets


def blackhole_listener() -> tuple[int, list[socket.socket]]:
    """A port whose connects time out (see _full_listener); (port, sockets to close)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    sockets = _full_listener(port)
    time.sleep(0.05)  # let the fillers' handshakes land in the queue
    return port, sockets


# -- driving both pool flavours from one (blocking) test -----------------------------

Flavour = Literal["aio", "sync"]
FLAVOURS: tuple[Flavour, ...] = ("aio", "sync")

# A call that has not finished by then is a hang: the test fails with it.
_HANG_S = 30.0


class PoolDriver:
    """One ClientPool or AtomicClientPool, driven the same way from a blocking test.

    The asyncio pool lives on its own event loop in a thread (the real asyncio
    shell, not a mock); each call is run there and waited for, with a bound
    that turns a hang into a test failure. The thread pool is called directly.
    ``run_many`` sends requests concurrently: tasks on the loop, or threads.

    Args:
        flavour: ``"aio"`` (ClientPool) or ``"sync"`` (AtomicClientPool).
        url: The origin.
        **options: Passed to ``connect()``.
    """

    def __init__(self, flavour: Flavour, url: str, **options: Any) -> None:
        import warmline

        self.flavour = flavour
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        if flavour == "sync":
            self.pool: Any = warmline.AtomicClientPool.connect(url, **options)
            return
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="aio-pool", daemon=True)
        self._thread.start()
        try:
            self.pool = self._run(warmline.ClientPool.connect(url, **options))
        except BaseException:
            self._stop_loop()
            raise

    def _run(self, coro: Coroutine[Any, Any, T], bound: float = _HANG_S) -> T:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(bound)
        except TimeoutError:
            if future.done():
                raise  # the call's own error (ReadTimeout is a TimeoutError too)
            future.cancel()
            raise AssertionError(f"hang: the call did not finish within {bound} s") from None

    def call_soon(self, coro: Coroutine[Any, Any, T], bound: float = _HANG_S) -> T:
        """Run ``coro`` on the asyncio flavour's loop and wait for it (at most ``bound`` s)."""
        return self._run(coro, bound)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """``pool.request(...)``: a Response, or the WarmlineError raised."""
        if self.flavour == "sync":
            return self.pool.request(method, path, **kwargs)
        return self._run(self.pool.request(method, path, **kwargs))

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def run_many(
        self, calls: list[tuple[str, str, dict[str, Any]]], concurrency: int, pace: float = 0.0
    ) -> list[tuple[Any, float]]:
        """Send ``calls`` (method, path, kwargs) with this many in flight at once.

        Each of the ``concurrency`` workers pauses ``pace`` seconds after each
        call, which spreads a batch over time (to meet faults as they change).

        Returns:
            Per call, in order: the Response or the exception raised (any
            exception, so that the test can check they are all WarmlineError),
            and the seconds it took.
        """
        results: list[tuple[Any, float]] = [(None, 0.0)] * len(calls)
        if self.flavour == "aio":

            async def one(i: int) -> None:
                method, path, kwargs = calls[i]
                start = time.monotonic()
                try:
                    outcome: Any = await self.pool.request(method, path, **kwargs)
                except Exception as exc:
                    outcome = exc
                results[i] = (outcome, time.monotonic() - start)

            async def all_of_them() -> None:
                queue = list(range(len(calls)))[::-1]

                async def worker() -> None:
                    while queue:
                        await one(queue.pop())
                        if pace:
                            await asyncio.sleep(pace)

                await asyncio.gather(*(worker() for _ in range(concurrency)))

            self._run(all_of_them(), bound=_HANG_S * 4)
            return results
        lock = threading.Lock()
        order = list(range(len(calls)))[::-1]

        def thread_worker() -> None:
            while True:
                with lock:
                    if not order:
                        return
                    i = order.pop()
                method, path, kwargs = calls[i]
                start = time.monotonic()
                try:
                    outcome: Any = self.pool.request(method, path, **kwargs)
                except Exception as exc:
                    outcome = exc
                results[i] = (outcome, time.monotonic() - start)
                if pace:
                    time.sleep(pace)

        threads = [threading.Thread(target=thread_worker) for _ in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(_HANG_S * 4)
            if t.is_alive():
                raise AssertionError("hang: a request thread did not finish")
        return results

    def acquire(self, timeout: float | None = 5.0) -> SlotDriver:
        """A lease (use ``with``): requests on one slot, as ``pool.acquire()``."""
        if self.flavour == "sync":
            return SlotDriver(self, self.pool.acquire(timeout=timeout))
        return SlotDriver(self, self._run(self._acquire(timeout)))

    async def _acquire(self, timeout: float | None) -> Any:
        return await self.pool.acquire(timeout=timeout)

    def stats(self) -> Any:
        if self.flavour == "sync":
            return self.pool.stats()
        return self._run(self._stats())

    async def _stats(self) -> Any:
        return self.pool.stats()

    @property
    def available(self) -> int:
        return int(self.pool.available)

    @property
    def size(self) -> int:
        return int(self.pool.size)

    def wait_for(self, condition: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Poll ``condition`` until true or ``timeout``; returns its last value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.01)
        return condition()

    def tasks_left(self) -> int:
        """asyncio tasks still alive on the pool's loop (0 for the thread pool)."""
        if self._loop is None:
            return 0

        async def count() -> int:
            return len([t for t in asyncio.all_tasks() if t is not asyncio.current_task()])

        return self._run(count())

    def close_pool(self) -> None:
        """Close the pool; the asyncio flavour's loop keeps running (see tasks_left)."""
        if self.flavour == "sync":
            self.pool.close()
        elif self._loop is not None and self._loop.is_running():
            self._run(self.pool.close())

    def close(self) -> None:
        """Close the pool and stop its loop; idempotent."""
        try:
            self.close_pool()
        finally:
            if self._loop is not None and not self._loop.is_closed():
                self._stop_loop()

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        assert loop is not None and thread is not None

        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(cancel_rest(), loop).result(_CONTROL_TIMEOUT_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_CONTROL_TIMEOUT_S)
        loop.close()

    def __enter__(self) -> PoolDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SlotDriver:
    """A lease from :meth:`PoolDriver.acquire`; requests go on this one slot."""

    def __init__(self, driver: PoolDriver, lease: Any) -> None:
        self._driver = driver
        self.lease = lease

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        if self._driver.flavour == "sync":
            return self.lease.request(method, path, **kwargs)
        return self._driver._run(self.lease.request(method, path, **kwargs))

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def release(self) -> None:
        if self._driver.flavour == "sync":
            self.lease.release()
            return

        async def release() -> None:
            self.lease.release()

        self._driver._run(release())

    def __enter__(self) -> SlotDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
