"""What both pool shells do for hooks, latency histograms and connection logs.

A pool made with ``hooks=`` (request callbacks) or ``latency=True`` gets an
:class:`Observer`, and its shell binds ``_request``/``_call`` to their hooked
variants *on the instance*; a pool without keeps the class's plain methods,
so its hot path does not test anything (callgrind, ``benchmarks/hotpath.py``:
the same instructions per request as before hooks existed).

The hooked variants call the plain ones and read the phases afterwards from
the connection's :class:`TimedReader`, which notes when the request was
handed to the connection (``start()``, just before the socket write) and when
the first byte of its response arrived (the first ``feed()``). So no receive
path of a connection changes, and ``on_request_written``/``on_response_head``
are called, in order, once the plain request returned (a non-streamed
request has nobody to tell before that anyway).

Connections opened while an observer exists are the shells' ``Observed``
connection classes: they carry a ``conn_id`` and report their close, once,
with its reason (:meth:`Observer.closed`); an observer exists also when only
DEBUG logging was on at open time (checked then, never per request).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping
from time import monotonic
from typing import TYPE_CHECKING, Any, Final

from warmline._histogram import LatencyHistogram
from warmline._hooks import (
    CloseReason,
    ConnectionEvent,
    HealEvent,
    Hooks,
    KeepWarmEvent,
    RequestEvent,
    safe_call,
)
from warmline.errors import ConnectionClosed, PoolClosed, ProtocolError
from warmline.http11 import Response, ResponseReader
from warmline.http11._writer import HeadersArg

if TYPE_CHECKING:
    from warmline._config import PoolConfig
    from warmline._policy import StatsCounters
    from warmline._pool._core import PoolCore

__all__ = ["PHASES", "Observer", "TimedReader", "close_reason_of", "next_conn_id"]

log = logging.getLogger("warmline")

PHASES: Final = ("acquire_wait", "ttfb", "total")
# The callbacks that need the hooked request path (the others are pool events).
_REQUEST_HOOKS: Final = (
    "on_request_start",
    "on_slot_acquired",
    "on_request_written",
    "on_response_head",
    "on_response_end",
    "on_error",
    "on_stale_retry",
)

_ids = itertools.count(1)


def next_conn_id() -> int:
    """A process-wide connection id (``RequestEvent.conn_id``)."""
    return next(_ids)


class TimedReader(ResponseReader):
    """A ResponseReader that notes when each request started and its first byte came.

    ``started``: ``time.monotonic()`` at ``start()`` (the connections call it
    just before writing the request); ``first_byte``: at the first ``feed()``
    after it (None until then). Costs two clock reads and one Python frame
    per chunk, on observed connections only.
    """

    __slots__ = ("first_byte", "started")

    def __init__(self, **limits: Any) -> None:
        super().__init__(**limits)
        self.started = monotonic()  # the connection's birth until the first request
        self.first_byte: float | None = None

    def start(self, method: str = "GET") -> None:
        super().start(method)
        self.started = monotonic()
        self.first_byte = None

    def feed(self, data: bytes) -> Response | None:
        if self.first_byte is None:
            self.first_byte = monotonic()
        return super().feed(data)


def close_reason_of(exc: BaseException) -> CloseReason:
    """The close reason a request's failure gives its connection."""
    if isinstance(exc, PoolClosed):
        return CloseReason.POOL_CLOSED
    if isinstance(exc, ProtocolError):
        return CloseReason.PROTOCOL_ERROR
    if isinstance(exc, ConnectionClosed):
        return CloseReason.PEER_CLOSED
    return CloseReason.NOT_REUSABLE  # timed out, cancelled, interrupted, released


def _merge(headers: HeadersArg | None, extra: list[tuple[str, str]]) -> HeadersArg:
    if headers is None:
        return extra
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    return [*items, *extra]


class Observer:
    """One pool's hooks, histograms and connection log (see the module docstring).

    Args:
        config: The pool's settings (origin, ages, keep-alive).
        core: The pool's core (closed, admission) and counters.
        hooks: The user's hooks, or None.
        latency: Keep latency histograms.
        loop_time: The clock of the connections' ``opened_at``.
    """

    def __init__(
        self,
        config: PoolConfig,
        core: PoolCore[Any],
        hooks: Hooks | None,
        latency: bool,
        loop_time: Callable[[], float] = monotonic,
    ) -> None:
        self.origin = str(config.origin)
        self.config = config
        self.core = core
        self.stats: StatsCounters = core.stats
        self.loop_time = loop_time
        self.histograms: dict[str, LatencyHistogram] | None = (
            {p: LatencyHistogram() for p in PHASES} if latency else None
        )
        self.set_hooks(hooks)

    def set_hooks(self, hooks: Hooks | None) -> None:
        """Take these hooks' callbacks (read once, here: rebind after changing them)."""
        self.hooks = hooks
        present = frozenset() if hooks is None else hooks.present
        for name in ("on_connection_opened", "on_connection_closed"):
            setattr(self, name, getattr(hooks, name) if name in present else None)
        for name in ("on_heal_attempt", "on_keep_warm", *_REQUEST_HOOKS):
            setattr(self, name, getattr(hooks, name) if name in present else None)
        self.requests_on = self.histograms is not None or any(n in present for n in _REQUEST_HOOKS)

    on_request_start: Callable[[RequestEvent], object] | None
    on_slot_acquired: Callable[[RequestEvent], object] | None
    on_request_written: Callable[[RequestEvent], object] | None
    on_response_head: Callable[[RequestEvent], object] | None
    on_response_end: Callable[[RequestEvent], object] | None
    on_error: Callable[[RequestEvent], object] | None
    on_stale_retry: Callable[[RequestEvent], object] | None
    on_connection_opened: Callable[[ConnectionEvent], object] | None
    on_connection_closed: Callable[[ConnectionEvent], object] | None
    on_heal_attempt: Callable[[HealEvent], object] | None
    on_keep_warm: Callable[[KeepWarmEvent], object] | None

    def _call(self, callback: Callable[[Any], object] | None, event: object) -> None:
        if callback is not None and not safe_call(callback, event):
            self.stats.hook_errors += 1

    def new_reader(self) -> ResponseReader:
        """The reader of a connection opened now (timed while requests are observed)."""
        config = self.config
        return TimedReader(
            max_head_size=config.max_head_size,
            max_headers=config.max_headers,
            max_body_size=config.max_body_size,
            decompress=config.decompress,
        )

    # -- requests -------------------------------------------------------------------
    def begin(
        self, method: str, path: str, headers: HeadersArg | None
    ) -> tuple[RequestEvent, HeadersArg | None]:
        """A request was called: its event, and its headers with any a hook added."""
        event = RequestEvent(self.origin, method, path)
        callback = self.on_request_start
        if callback is not None:
            self._call(callback, event)
            if event.extra_headers:
                headers = _merge(headers, event.extra_headers)
        return event, headers

    def acquired(self, event: RequestEvent, conn: object, wait: float) -> None:
        """A slot is held (``wait``: seconds since the call; 0.0 on a lease)."""
        event.conn_id = getattr(conn, "conn_id", None)
        event.timings.acquire_wait = wait
        self._call(self.on_slot_acquired, event)

    def _sent(self, event: RequestEvent, t1: float, first: object, last: object) -> None:
        """Written (and maybe stale-retried) callbacks, from the readers' notes."""
        timings = event.timings
        first_reader = getattr(first, "_reader", None)
        started = getattr(first_reader, "started", None)
        if first is not None and first is not last and started is not None and started >= t1:
            # The request went out on the slot's first connection, which failed
            # before any response byte: a stale retry on ``last``.
            timings.write = started - t1
            self._call(self.on_request_written, event)
            event.attempt = 2
            event.conn_id = getattr(last, "conn_id", None)
            self._call(self.on_stale_retry, event)
        reader = getattr(last, "_reader", None)
        started = getattr(reader, "started", None)
        if started is None or started < t1:
            return
        timings.write = started - t1
        self._call(self.on_request_written, event)
        first_byte = reader.first_byte  # type: ignore[union-attr]
        if first_byte is not None and first_byte >= started:
            timings.ttfb = first_byte - started

    def done(
        self,
        event: RequestEvent,
        t0: float,
        t1: float,
        first: object,
        last: object,
        response: Response,
    ) -> None:
        """The request returned ``response``: head and end callbacks, histograms."""
        self._sent(event, t1, first, last)
        now = monotonic()
        timings = event.timings
        timings.total = now - t0
        event.status = response.status
        self._call(self.on_response_head, event)
        self._call(self.on_response_end, event)
        histograms = self.histograms
        if histograms is not None:
            histograms["acquire_wait"].record(t1 - t0)
            if timings.ttfb is not None:
                histograms["ttfb"].record(timings.ttfb)
            histograms["total"].record(timings.total)

    def failed(
        self,
        event: RequestEvent,
        t0: float,
        t1: float | None,
        first: object,
        last: object,
        exc: BaseException,
    ) -> None:
        """The request raised ``exc`` (cancellation included)."""
        if t1 is not None:
            self._sent(event, t1, first, last)
        event.timings.total = monotonic() - t0
        event.error = exc
        self._call(self.on_error, event)

    # -- connections, heals, pings -----------------------------------------------------
    def opened(self, conn: Any, connect_time: float) -> None:
        """A connection opened (``connect_time`` in seconds)."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "warmline: connection %s to %s opened in %.1f ms",
                conn.conn_id,
                self.origin,
                connect_time * 1000,
            )
        callback = self.on_connection_opened
        if callback is not None:
            self._call(callback, ConnectionEvent(self.origin, conn.conn_id, connect_time))

    def closed(self, conn: Any, reason: CloseReason, error: BaseException | None) -> None:
        """An observed connection closed (called once per connection)."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "warmline: connection %s to %s closed: %s%s",
                conn.conn_id,
                self.origin,
                reason.value,
                "" if error is None else f" ({type(error).__name__}: {error})",
            )
        callback = self.on_connection_closed
        if callback is not None:
            event = ConnectionEvent(self.origin, conn.conn_id, reason=reason, error=error)
            self._call(callback, event)

    def classify(
        self, conn: Any, error: BaseException | None
    ) -> tuple[CloseReason, BaseException | None]:
        """Why the pool closes ``conn`` (its core decided; this tells which rule)."""
        core = self.core
        config = self.config
        if core.closed or isinstance(error, PoolClosed):
            return CloseReason.POOL_CLOSED, error
        if error is not None or getattr(conn, "busy", False):
            return CloseReason.NOT_REUSABLE, error  # released with a request in flight
        if not conn.alive:
            return CloseReason.PEER_CLOSED, None
        now = self.loop_time()
        if config.max_lifetime is not None and now - conn.opened_at > config.max_lifetime:
            return CloseReason.MAX_LIFETIME, None
        if config.idle_timeout is not None:
            # The last request started before the slot went idle: if even that
            # is within idle_timeout, the idle rule did not close it.
            started = getattr(conn._reader, "started", None)
            if started is not None and monotonic() - started > config.idle_timeout:
                return CloseReason.IDLE_TIMEOUT, None
        readable = getattr(conn, "readable", None)
        if readable is not None and readable():
            return CloseReason.PEER_CLOSED, None  # threads: found closed while idle
        if not config.keep_alive:
            return CloseReason.CONNECTION_CLOSE, None
        if core.admission is not None:
            return CloseReason.EVICTED, None
        return CloseReason.ERROR, None

    def heal(
        self,
        conn: Any,
        failures: int,
        duration: float,
        error: BaseException | None,
    ) -> None:
        """A reconnect attempt ended."""
        callback = self.on_heal_attempt
        if callback is not None:
            conn_id = None if conn is None else getattr(conn, "conn_id", None)
            self._call(callback, HealEvent(self.origin, conn_id, failures, duration, error))

    def keep_warm(
        self,
        conn: Any,
        status: int | None,
        duration: float,
        error: BaseException | None,
    ) -> None:
        """A keep-warm ping ended."""
        callback = self.on_keep_warm
        if callback is not None:
            warm = self.config.keep_warm
            assert warm is not None
            event = KeepWarmEvent(
                self.origin,
                getattr(conn, "conn_id", None),
                warm.method.upper(),
                warm.path,
                status,
                duration,
                error,
            )
            self._call(callback, event)
