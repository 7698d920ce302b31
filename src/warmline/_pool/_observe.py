"""What both pool shells do for hooks, latency histograms and connection logs.

A pool made with ``hooks=`` (request callbacks) or ``latency=True`` gets an
:class:`Observer`, and ``PoolShell._observe`` binds ``_request``, ``_call``
and the stream entry points to their hooked variants *on the instance*; a
pool without keeps the class's plain methods, so its hot path does not test
anything (callgrind, ``benchmarks/hotpath.py``:
the same instructions per request as before hooks existed).

The hooked variants call the plain ones and read the phases afterwards from
the connection's :class:`TimedReader`, which notes when the request was
handed to the connection (``start()``, just before the socket write) and when
the first byte of its response arrived (the first ``feed()``). So no receive
path of a connection changes, and ``on_request_written``/``on_response_head``
are called, in order, once the plain request returned (a non-streamed
request has nobody to tell before that anyway).

The hooked variants live here (:func:`aio_observed`, :func:`aio_stream_observed`
and their ``sync_`` twins; the shells name theirs as class attributes). What they cost, per
request (callgrind, ``PYTHONHASHSEED=0 python -m benchmarks.hotpath MODE N``,
N=5000 minus N=0, 2026-12-01; plain ``pool.get`` 35.4k instructions):

- ``+hook`` (one no-op ``on_response_end``): 55.5k (+57 %) before, 44.7k
  (+26 %) now: no event until the request ended, one wrapper frame,
  callbacks called inline (no safe_call frame), events made without their
  dataclasses' ``__init__`` (:func:`_event`).
- ``+latency``: 62.7k (+78 %) before, 43.2k (+22 %) now: samples buffered
  and recorded 256 at a time (``LatencyHistogram.record_many``), no clock
  read for a slot free at the call.
- ``+hooks`` (six no-op request callbacks): 59.3k (+68 %) before, 50.9k
  (+44 %) now.

What is left is mostly fixed: five clock reads (~500 instructions each),
the timed reader's two frames (~3.6k), the wrapper's coroutine frame and
the histogram arithmetic (~1.5k per request and phase in batches). The
issue's bar for latency on by default (1 %) is out of reach in Python.

Streams (``stream()``): the event is made at the call; head callbacks when
the head is in; end (or error, if the body failed) when the stream is
released, from the body's ``on_release`` (:class:`_StreamEnd`), which then
releases the slot; the histograms get the stream then.

Connections opened while an observer exists are the shells' ``Observed``
connection classes: they carry a ``conn_id`` and report their close, once,
with its reason (:meth:`Observer.closed`); an observer exists also when only
DEBUG logging was on at open time (checked then, never per request).
"""

from __future__ import annotations

import itertools
import logging
import threading
from asyncio.events import _get_running_loop
from collections.abc import Callable, Mapping
from time import monotonic
from typing import TYPE_CHECKING, Any, Final

from warmline import _hooks
from warmline._histogram import LatencyHistogram
from warmline._hooks import (
    CloseReason,
    ConnectionEvent,
    HealEvent,
    Hooks,
    KeepWarmEvent,
    PhaseTimings,
    RequestEvent,
    safe_call,
)
from warmline._policy import DEFAULT, TimeoutArg
from warmline._pool._verbs import Req, with_headers
from warmline.errors import ConnectionClosed, PoolClosed, ProtocolError
from warmline.http11 import Response, ResponseReader
from warmline.http11._writer import HeadersArg

if TYPE_CHECKING:
    from warmline._config import PoolConfig
    from warmline._policy import StatsCounters
    from warmline._pool._core import PoolCore

__all__ = [
    "PHASES",
    "Observer",
    "TimedReader",
    "aio_observed",
    "aio_stream_observed",
    "close_reason_of",
    "next_conn_id",
    "sync_observed",
    "sync_stream_observed",
]

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

# Latency samples buffered per pool before one batch goes into the histograms
# (bounded memory: 256 tuples of 5 floats, ~40 KB).
_FLUSH_AT: Final = 256

_ids = itertools.count(1)


def next_conn_id() -> int:
    """A process-wide connection id (``RequestEvent.conn_id``)."""
    return next(_ids)


class TimedReader(ResponseReader):
    """A ResponseReader that notes when each request started and its first byte came.

    ``started``: ``time.monotonic()`` at ``start()`` (the connections call it
    just before writing the request; ``start_stream()`` calls it too);
    ``first_byte``: at the first ``feed()`` or ``feed_stream()`` after it
    (None until then). Costs two clock reads and one Python frame per chunk,
    on observed connections only (the base methods are called directly, not
    through ``super()``: ~150 instructions less each).
    """

    __slots__ = ("first_byte", "started")

    def __init__(self, **limits: Any) -> None:
        super().__init__(**limits)
        self.started = monotonic()  # the connection's birth until the first request
        self.first_byte: float | None = None

    def start(self, method: str = "GET") -> None:
        _start(self, method)
        self.started = monotonic()
        self.first_byte = None

    def feed(self, data: bytes) -> Response | None:
        if self.first_byte is None:
            self.first_byte = monotonic()
        return _feed(self, data)

    def feed_stream(self, data: bytes) -> Response | None:
        if self.first_byte is None:
            self.first_byte = monotonic()
        return _feed_stream(self, data)


_start = ResponseReader.start
_feed = ResponseReader.feed
_feed_stream = ResponseReader.feed_stream


_new = object.__new__


def _event(origin: str, method: str, path: str, conn_id: int | None) -> RequestEvent:
    """``RequestEvent(origin, method, path, conn_id)`` at a third of the cost.

    The dataclasses' generated ``__init__`` runs through ``type.__call__``
    (callgrind: ~2.8k instructions for a RequestEvent, ~1.7k for its
    PhaseTimings); allocating them and storing each slot costs ~1.1k for
    both. Every field is set here (tests/test_hooks_wiring.py checks that the
    events equal constructor-made ones).
    """
    timings = _new(PhaseTimings)
    timings.acquire_wait = timings.write = timings.ttfb = timings.total = None
    event = _new(RequestEvent)
    event.origin = origin
    event.method = method
    event.path = path
    event.conn_id = conn_id
    event.timings = timings
    event.status = event.error = event.extra_headers = event.scratch = None
    event.attempt = 1
    return event


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
        self._flush_lock = threading.Lock()
        self._histograms: dict[str, LatencyHistogram] | None = None
        # Latency samples not yet in the histograms, by phase; ``pending`` is
        # the totals (one per request), None when latency is off.
        self.pending: list[float] | None = None
        self._waits: list[float] = []
        self._ttfbs: list[float] = []
        if latency:
            self.histograms = {p: LatencyHistogram() for p in PHASES}
        self.set_hooks(hooks)

    @property
    def histograms(self) -> dict[str, LatencyHistogram] | None:
        """The latency histograms by phase (None when latency is off), up to date."""
        if self.pending:
            self.flush()
        return self._histograms

    @histograms.setter
    def histograms(self, value: dict[str, LatencyHistogram] | None) -> None:
        self._histograms = value
        if value is None:
            self.pending = None
        elif self.pending is None:
            self.pending = []

    def flush(self) -> None:
        """Move the buffered latency samples into the histograms.

        Requests append their durations to lists (``done``); every
        ``_FLUSH_AT`` requests, and before the histograms are read, the lists
        are recorded in one batch each (``LatencyHistogram.record_many``):
        per request ~3k instructions less than three ``record`` calls
        (callgrind). The lock keeps two threads from recording one batch twice.
        """
        with self._flush_lock:
            totals = self.pending
            histograms = self._histograms
            if not totals or histograms is None:
                return
            waits, ttfbs = self._waits, self._ttfbs
            self.pending, self._waits, self._ttfbs = [], [], []
        histograms["acquire_wait"].record_many(waits)
        histograms["ttfb"].record_many(ttfbs)
        histograms["total"].record_many(totals)

    def set_hooks(self, hooks: Hooks | None) -> None:
        """Take these hooks' callbacks (read once, here: rebind after changing them)."""
        self.hooks = hooks
        present = frozenset() if hooks is None else hooks.present
        for name in ("on_connection_opened", "on_connection_closed"):
            setattr(self, name, getattr(hooks, name) if name in present else None)
        for name in ("on_heal_attempt", "on_keep_warm", *_REQUEST_HOOKS):
            setattr(self, name, getattr(hooks, name) if name in present else None)
        # ``events``: a RequestEvent is needed (some request callback is set);
        # ``early``: it is needed from the start (a callback runs before the
        # request is sent). Without ``early`` the event is made once the
        # request ended, only to be handed to the callbacks then.
        self.events = any(n in present for n in _REQUEST_HOOKS)
        self.early = "on_request_start" in present or "on_slot_acquired" in present
        self.requests_on = self._histograms is not None or self.events

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

    def _hook_failed(self, callback: Callable[[Any], object], exc: Exception) -> None:
        """A callback raised: log it as safe_call does, and count it."""
        if not isinstance(exc, _hooks._AlreadyReported):
            _hooks._failures.report(callback, exc)
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
    def new_event(self, method: str, path: str) -> RequestEvent:
        """A request's event, no phase timed yet."""
        return _event(self.origin, method, path, None)

    def begin(
        self, method: str, path: str, headers: HeadersArg | None
    ) -> tuple[RequestEvent, HeadersArg | None]:
        """A request was called: its event, and its headers with any a hook added."""
        event = _event(self.origin, method, path, None)
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

    def _written(
        self,
        event: RequestEvent,
        t1: float,
        first: object,
        last: object,
        started: float | None,
        first_byte: float | None,
    ) -> None:
        """The written callback and the ttfb of an event made before the end."""
        if first is not last:
            self._sent(event, t1, first, last)  # a stale retry: the slow path
            return
        if started is not None and started >= t1:
            timings = event.timings
            timings.write = started - t1
            callback = self.on_request_written
            if callback is not None:
                try:
                    callback(event)
                except Exception as exc:
                    self._hook_failed(callback, exc)
            if first_byte is not None and first_byte >= started:
                timings.ttfb = first_byte - started

    def done(
        self,
        event: RequestEvent | None,
        method: str,
        path: str,
        t0: float,
        t1: float,
        first: Any,
        last: Any,
        status: int,
    ) -> None:
        """The request ended with a response of ``status``: samples, then callbacks.

        ``event`` is None unless a callback needed it before (``early``);
        ``t0``/``t1``: clock at the call and once the slot was held;
        ``first``/``last``: the slot's connection before and after the request
        (two on a stale retry).
        """
        now = monotonic()
        reader = last._reader
        try:
            started: float | None = reader.started
            first_byte: float | None = reader.first_byte
        except AttributeError:  # a connection opened before the hooks, still busy then
            started = first_byte = None
        pending = self.pending
        if pending is not None:
            self._waits.append(t1 - t0)
            # Only a byte of this request's own response counts.
            if first_byte is not None and started >= t1 and first_byte >= started:  # type: ignore[operator]
                self._ttfbs.append(first_byte - started)  # type: ignore[operator]
            pending.append(now - t0)
            if len(pending) >= _FLUSH_AT:
                self.flush()
        if not self.events:
            return
        if event is None and first is last and self.on_request_written is None:
            # Nobody looks before the head: the event is made complete, in two
            # constructor calls (~600 instructions less than filling it in).
            write = ttfb = None
            if started is not None and started >= t1:
                write = started - t1
                if first_byte is not None and first_byte >= started:
                    ttfb = first_byte - started
            # Made as _event() does, inline: a frame less (~400 instructions).
            timings = _new(PhaseTimings)
            timings.acquire_wait = t1 - t0
            timings.write = write
            timings.ttfb = ttfb
            timings.total = now - t0
            event = _new(RequestEvent)
            event.origin = self.origin
            event.method = method
            event.path = path
            event.conn_id = getattr(first, "conn_id", None)
            event.timings = timings
            event.status = status
            event.error = event.extra_headers = event.scratch = None
            event.attempt = 1
        else:
            if event is None:
                event = _event(self.origin, method, path, getattr(first, "conn_id", None))
                event.timings.acquire_wait = t1 - t0
            self._written(event, t1, first, last, started, first_byte)
            event.timings.total = now - t0
            event.status = status
        callback = self.on_response_head
        if callback is not None:
            try:
                callback(event)
            except Exception as exc:
                self._hook_failed(callback, exc)
        callback = self.on_response_end
        if callback is not None:
            try:
                callback(event)
            except Exception as exc:
                self._hook_failed(callback, exc)

    def failed(
        self,
        event: RequestEvent | None,
        method: str,
        path: str,
        t0: float,
        t1: float | None,
        first: object,
        last: object,
        exc: BaseException,
    ) -> None:
        """The request raised ``exc`` (cancellation included)."""
        if event is None:
            event = self.new_event(method, path)
            if t1 is not None:
                event.timings.acquire_wait = t1 - t0
                event.conn_id = getattr(first, "conn_id", None)
        if t1 is not None:
            self._sent(event, t1, first, last)
        event.timings.total = monotonic() - t0
        event.error = exc
        self._call(self.on_error, event)

    # -- streams ---------------------------------------------------------------------
    def stream_head(
        self, event: RequestEvent, t1: float, first: object, last: object, status: int
    ) -> None:
        """A streamed request's head arrived: written (and stale retry), head callbacks."""
        self._sent(event, t1, first, last)
        event.status = status
        self._call(self.on_response_head, event)

    def stream_end(self, event: RequestEvent, t0: float, body: object) -> None:
        """A stream was released: end (or error, if its body failed) and samples.

        A body closed before its end (``aclose()`` early) is an end too: the
        caller chose to stop; ``total`` then runs to the close.
        """
        now = monotonic()
        timings = event.timings
        timings.total = now - t0
        error = getattr(body, "_error", None)
        if error is not None:
            event.error = error
            self._call(self.on_error, event)
            return
        pending = self.pending
        if pending is not None:
            self._waits.append(timings.acquire_wait or 0.0)
            if timings.ttfb is not None:
                self._ttfbs.append(timings.ttfb)
            pending.append(now - t0)
            if len(pending) >= _FLUSH_AT:
                self.flush()
        self._call(self.on_response_end, event)

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


# -- the hooked request paths, bound on an observed pool instance --------------------
#
# ``PoolShell._observe`` binds these on the instance (they take the pool as
# ``self``) over the plain ``_request``, ``_call``, ``_stream_call`` and
# ``_lease_stream``: ``observed(self, slot, req, lease)`` for a lease's
# request, ``observed(self, None, req, acquire_timeout)`` for the pool's own
# (a slot taken, then released). Each wraps the class's plain method in one
# frame, reads the clock twice (call, slot held; once when a slot is free)
# and hands the rest to ``Observer.done``, which reads the third clock and
# the connection reader's notes. No event object unless a callback needs one.
# One function per flavour: the same steps, one awaiting, one blocking.


async def aio_observed(self: Any, slot: Any, req: Req, extra: Any = DEFAULT) -> Response:
    """``ClientPool._request`` (``slot`` given, ``extra`` its lease) or
    ``ClientPool._call`` (``slot`` None, ``extra`` the acquire timeout),
    with its phases reported."""
    obs: Observer = self._observer
    method, path = req[0], req[1]
    t0 = t1 = monotonic()
    event = None
    if obs.early:
        event, headers = obs.begin(method, path, req[3])
        req = with_headers(req, headers)
    held = slot
    if held is None:
        try:
            if _get_running_loop() is not self._loop:
                raise self._wrong_loop()
            slot = None if self._core.waiters else self._pop()
            if slot is None:
                slot = await self._wait(self._acquire_wait(req[6], extra))
                t1 = monotonic()  # a slot was free: no wait, one clock read less
        except BaseException as exc:
            if obs.events:
                obs.failed(event, method, path, t0, None, None, None, exc)
            raise
    try:
        first = slot.conn
        if event is not None:
            obs.acquired(event, first, t1 - t0)
        try:
            response: Response = await type(self)._request(
                self, slot, req, None if held is None else extra
            )
        except BaseException as exc:  # cancellation included
            if obs.events:
                obs.failed(event, method, path, t0, t1, first, slot.conn, exc)
            raise
        obs.done(event, method, path, t0, t1, first, slot.conn, response.status)
        return response
    finally:
        if held is None:
            self._release(slot)


def sync_observed(self: Any, slot: Any, req: Req, extra: Any = DEFAULT) -> Response:
    """The threads' :func:`aio_observed`."""
    obs: Observer = self._observer
    method, path = req[0], req[1]
    t0 = t1 = monotonic()
    event = None
    if obs.early:
        event, headers = obs.begin(method, path, req[3])
        req = with_headers(req, headers)
    held = slot
    if held is None:
        try:
            slot = None if self._core.waiters else self._pop()
            if slot is None:
                slot = self._wait(self._acquire_wait(req[6], extra), None)
                t1 = monotonic()
        except BaseException as exc:
            if obs.events:
                obs.failed(event, method, path, t0, None, None, None, exc)
            raise
    try:
        first = slot.conn
        if event is not None:
            obs.acquired(event, first, t1 - t0)
        try:
            response: Response = type(self)._request(self, slot, req)
        except BaseException as exc:
            if obs.events:
                obs.failed(event, method, path, t0, t1, first, slot.conn, exc)
            raise
        obs.done(event, method, path, t0, t1, first, slot.conn, response.status)
        return response
    finally:
        if held is None:
            self._release(slot)


class _StreamEnd:
    """A stream's ``on_release``: report its end once, then release its slot."""

    __slots__ = ("body", "event", "obs", "release", "t0")

    def __init__(
        self, obs: Observer, event: RequestEvent, t0: float, release: Callable[[], None] | None
    ) -> None:
        self.obs = obs
        self.event = event
        self.t0 = t0
        self.release = release
        self.body: object = None  # set once the head is in; None: not reported

    def __call__(self) -> None:
        body, self.body = self.body, None
        try:
            if body is not None:
                self.obs.stream_end(self.event, self.t0, body)
        finally:
            if self.release is not None:
                self.release()


async def aio_stream_observed(
    self: Any, slot: Any, req: Req, acquire_timeout: TimeoutArg = DEFAULT
) -> Response:
    """``pool.stream()`` (``slot`` None) or ``slot.stream()`` with its phases reported.

    Head callbacks when the head is in; end (or error) when the stream is
    released, from the body's ``on_release``; histograms then.
    """
    obs: Observer = self._observer
    method, path = req[0], req[1]
    t0 = t1 = monotonic()
    event, headers = obs.begin(method, path, req[3])
    req = with_headers(req, headers)
    leased = slot is not None
    try:
        if not leased:
            if _get_running_loop() is not self._loop:
                raise self._wrong_loop()
            slot = None if self._core.waiters else self._pop()
            if slot is None:
                slot = await self._wait(self._acquire_wait(req[6], acquire_timeout))
                t1 = monotonic()
    except BaseException as exc:
        obs.failed(event, method, path, t0, None, None, None, exc)
        raise
    first = slot.conn
    obs.acquired(event, first, t1 - t0)
    end = _StreamEnd(obs, event, t0, None if leased else lambda: self._release(slot))
    try:
        response: Response = await type(self)._open_stream(self, slot, req, end)
    except BaseException as exc:
        obs.failed(event, method, path, t0, t1, first, slot.conn, exc)
        if not leased:
            self._release(slot)
        raise
    end.body = response._source
    obs.stream_head(event, t1, first, slot.conn, response.status)
    return response


def sync_stream_observed(
    self: Any, slot: Any, req: Req, acquire_timeout: TimeoutArg = DEFAULT
) -> Response:
    """The threads' :func:`aio_stream_observed`."""
    obs: Observer = self._observer
    method, path = req[0], req[1]
    t0 = t1 = monotonic()
    event, headers = obs.begin(method, path, req[3])
    req = with_headers(req, headers)
    leased = slot is not None
    try:
        if not leased:
            slot = None if self._core.waiters else self._pop()
            if slot is None:
                slot = self._wait(self._acquire_wait(req[6], acquire_timeout), None)
                t1 = monotonic()
    except BaseException as exc:
        obs.failed(event, method, path, t0, None, None, None, exc)
        raise
    first = slot.conn
    obs.acquired(event, first, t1 - t0)
    end = _StreamEnd(obs, event, t0, None if leased else lambda: self._release(slot))
    try:
        response: Response = type(self)._open_stream(self, slot, req, end)
    except BaseException as exc:
        obs.failed(event, method, path, t0, t1, first, slot.conn, exc)
        if not leased:
            self._release(slot)
        raise
    end.body = response._source
    obs.stream_head(event, t1, first, slot.conn, response.status)
    return response
