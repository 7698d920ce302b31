"""Request hooks: optional callbacks that the pools call at each phase of a request.

A :class:`Hooks` object is passed as ``hooks=`` to a pool or client. Each of
its callbacks is either None (not called, costs nothing) or a callable that
receives one event object:

=========================  ==================  =================================
callback                   event               when
=========================  ==================  =================================
``on_request_start``       RequestEvent        the request was called; may add
                                               headers (``event.add_header``)
``on_slot_acquired``       RequestEvent        a slot is held (``acquire_wait``)
``on_request_written``     RequestEvent        the request's bytes were written
``on_response_head``       RequestEvent        status line and headers parsed
``on_response_end``        RequestEvent        body complete (``total``)
``on_error``               RequestEvent        the request failed (``error``)
``on_stale_retry``         RequestEvent        re-sent after a stale connection
``on_connection_opened``   ConnectionEvent     a connection is up
``on_connection_closed``   ConnectionEvent     a connection closed (``reason``)
``on_heal_attempt``        HealEvent           a reconnect attempt ended
``on_keep_warm``           KeepWarmEvent       a keep-warm ping ended
=========================  ==================  =================================

One :class:`RequestEvent` is made per request and the same object goes to each
of that request's callbacks, updated in place; copy what you keep.

Cost: with ``hooks=None`` a pool runs the very same request code as without
the option (the hooked path is bound on the pool instance only when hooks or
histograms are set; callgrind, ``benchmarks/hotpath.py``: per-request
instructions unchanged). A hooks object with request callbacks costs one
event per request plus those callbacks; the event is made only when the
request ended unless ``on_request_start`` or ``on_slot_acquired`` is set.
Measured (callgrind, ``PYTHONHASHSEED=0``, ``python -m benchmarks.hotpath
MODE N``, per request, 2026-12-01): ``pool.get`` 35.4k instructions;
``+hook`` (one no-op ``on_response_end``) 44.7k (+26 %); ``+hooks`` (six
no-op request callbacks) 50.9k (+44 %); ``+latency`` 43.2k (+22 %).
:attr:`Hooks.present` names them. Callbacks read once, when the pool is made
(or ``instrument()`` adds hooks): assigning one later has no effect on it.

Contract for the shells (one request; ``t0`` = clock at the call):
``on_request_start`` first, before acquiring, and before the request is
serialised (so ``extra_headers`` can be sent); ``on_slot_acquired`` once a slot
is held (``conn_id``, ``acquire_wait``; 0.0 on a slot already held or free). Then,
once the plain request has returned or raised (the pools time the phases
from the connection's reader, not by calling out mid-request), in this
order: ``on_request_written`` (``write``) if the request was handed to a
connection; ``on_response_head`` (``status``, ``ttfb``); then exactly one of
``on_response_end`` (``total``) or ``on_error`` (``error``, ``total``;
cancellation included), so every timing is already filled in when
``on_response_head`` runs. On a stale retry: ``on_request_written`` for the
first attempt, ``on_stale_retry`` with ``attempt`` now 2 and the new
``conn_id``, then ``on_request_written`` again and the rest for the new
attempt (same slot: no second ``on_slot_acquired``). Each redirect hop is its
own request (its own event). A streamed request (``stream()``) reports
``on_request_written`` and ``on_response_head`` once its head is in, then
``on_response_end`` (``total``, so ``body`` too) when the stream is released
(body read, or closed early), or ``on_error`` if its body failed. Every call
goes through :func:`safe_call`.

Failure policy (:func:`safe_call`): a hook that raises never breaks the
request. The exception is logged on the ``warmline`` logger at WARNING with
its traceback the first time for each hook function, then at most once a
minute per hook with the number of failures in between; the request goes on
and the caller counts the failure. ``BaseException`` that is not an
``Exception`` (KeyboardInterrupt, SystemExit, a cancellation) propagates.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import time
from collections.abc import Callable
from typing import Any, Final

__all__ = [
    "HOOK_NAMES",
    "CloseReason",
    "CompositeHooks",
    "ConnectionEvent",
    "HealEvent",
    "Hooks",
    "KeepWarmEvent",
    "PhaseTimings",
    "RequestEvent",
    "safe_call",
]

log = logging.getLogger("warmline")

HOOK_NAMES: Final = (
    "on_request_start",
    "on_slot_acquired",
    "on_request_written",
    "on_response_head",
    "on_response_end",
    "on_error",
    "on_stale_retry",
    "on_connection_opened",
    "on_connection_closed",
    "on_heal_attempt",
    "on_keep_warm",
)


class CloseReason(enum.StrEnum):
    """Why a connection was closed (``ConnectionEvent.reason``)."""

    POOL_CLOSED = "pool_closed"  # close() on the pool or client
    PEER_CLOSED = "peer_closed"  # the server closed or reset it
    NOT_REUSABLE = "not_reusable"  # body not fully read, cancelled or timed out mid-request
    CONNECTION_CLOSE = "connection_close"  # "Connection: close" or HTTP/1.0 without keep-alive
    PROTOCOL_ERROR = "protocol_error"  # malformed response
    IDLE_TIMEOUT = "idle_timeout"  # idle longer than idle_timeout
    MAX_LIFETIME = "max_lifetime"  # older than max_lifetime
    EVICTED = "evicted"  # closed to make room for another origin (client limits)
    FORK = "fork"  # inherited across fork(), dropped by the child
    ERROR = "error"  # any other failure (see ConnectionEvent.error)


@dataclasses.dataclass(slots=True)
class PhaseTimings:
    """Where a request's time went, in seconds; None for a phase not reached.

    Each figure is the duration of its own phase, so they add up:
    ``acquire_wait + write + ttfb + body == total``.

    Attributes:
        acquire_wait: From the call until a slot was held (0.0 on a slot
            already held, or free at the call: the pools read no clock then).
        write: From the slot held until the request was handed to its
            connection, just before the socket write (on a stale retry: until
            the last attempt's, so the failed attempt and the reconnect count
            here).
        ttfb: From then until the first byte of the response arrived (the
            socket write, server time and the network; on a stale retry: the
            last attempt's).
        total: From the call until the response ended or the request failed.
    """

    acquire_wait: float | None = None
    write: float | None = None
    ttfb: float | None = None
    total: float | None = None

    @property
    def body(self) -> float | None:
        """Time reading the body: what ``total`` leaves after the other phases."""
        if None in (self.acquire_wait, self.write, self.ttfb, self.total):
            return None
        return self.total - self.acquire_wait - self.write - self.ttfb  # type: ignore[operator]

    def as_dict(self) -> dict[str, float | None]:
        return {
            "acquire_wait": self.acquire_wait,
            "write": self.write,
            "ttfb": self.ttfb,
            "body": self.body,
            "total": self.total,
        }


@dataclasses.dataclass(slots=True, eq=False)
class RequestEvent:
    """One request as the hooks see it; the same object through its phases.

    Attributes:
        origin: The pool's origin, ``scheme://host:port`` (or ``unix://path``).
        method: Request method, upper case.
        path: Target as sent (path and query, base path included).
        conn_id: The slot's connection id once a slot is held, else None.
        timings: Phase durations so far.
        status: Response status once the head arrived, else None.
        error: The exception that ended the request (``on_error``), else None.
        attempt: 1, then 2 after a stale retry.
        extra_headers: Headers added by ``on_request_start`` hooks, sent with
            this request; None when none were added.
        scratch: Per-request storage for hook implementations (a tracer keeps
            its span here), keyed by the hooks object; None until used.
    """

    origin: str
    method: str
    path: str
    conn_id: int | None = None
    timings: PhaseTimings = dataclasses.field(default_factory=PhaseTimings)
    status: int | None = None
    error: BaseException | None = None
    attempt: int = 1
    extra_headers: list[tuple[str, str]] | None = None
    scratch: dict[object, Any] | None = None

    @property
    def url(self) -> str:
        """The full URL (``origin`` + ``path``)."""
        return self.origin + self.path

    def add_header(self, name: str, value: str) -> None:
        """Send one more header with this request (from ``on_request_start`` only).

        The shells read ``extra_headers`` after ``on_request_start`` and
        validate them like any user header.
        """
        if self.extra_headers is None:
            self.extra_headers = []
        self.extra_headers.append((name, value))


@dataclasses.dataclass(slots=True, eq=False)
class ConnectionEvent:
    """A connection opened or closed.

    Attributes:
        origin: The pool's origin.
        conn_id: The connection's id.
        connect_time: Seconds to open it, handshakes included (on opened).
        reason: Why it closed (on closed).
        error: The exception behind the close, if any.
    """

    origin: str
    conn_id: int | None
    connect_time: float | None = None
    reason: CloseReason | None = None
    error: BaseException | None = None


@dataclasses.dataclass(slots=True, eq=False)
class HealEvent:
    """One reconnect attempt of a slot, after it ended.

    Attributes:
        origin: The pool's origin.
        conn_id: The new connection's id on success, else None.
        failures: Consecutive failed attempts, this one included (0 on success).
        duration: Seconds the attempt took.
        error: Why it failed, or None on success.
    """

    origin: str
    conn_id: int | None
    failures: int
    duration: float
    error: BaseException | None = None


@dataclasses.dataclass(slots=True, eq=False)
class KeepWarmEvent:
    """A keep-warm ping on an idle slot, after it ended.

    Attributes:
        origin: The pool's origin.
        conn_id: The pinged connection's id.
        method: Ping method (``KeepWarm.method``).
        path: Ping path.
        status: Response status, or None on failure.
        duration: Seconds the ping took.
        error: Why it failed, or None.
    """

    origin: str
    conn_id: int | None
    method: str
    path: str
    status: int | None
    duration: float
    error: BaseException | None = None


RequestHook = Callable[[RequestEvent], object]
ConnectionHook = Callable[[ConnectionEvent], object]
HealHook = Callable[[HealEvent], object]
KeepWarmHook = Callable[[KeepWarmEvent], object]


class Hooks:
    """Callbacks for a pool's events; every one optional.

    Pass callables as keywords, or subclass and define the methods you want
    (call ``super().__init__()`` if you define ``__init__``)::

        hooks = warmline.Hooks(on_response_end=lambda ev: print(ev.timings.total))

        class Timing(warmline.Hooks):
            def on_error(self, event: warmline.RequestEvent) -> None: ...

    Attributes:
        present: Names of the callbacks that are set, fixed when constructed
            (and updated if one is assigned later). A pool given hooks whose
            ``present`` is empty treats them as ``hooks=None``.
    """

    on_request_start: RequestHook | None = None
    on_slot_acquired: RequestHook | None = None
    on_request_written: RequestHook | None = None
    on_response_head: RequestHook | None = None
    on_response_end: RequestHook | None = None
    on_error: RequestHook | None = None
    on_stale_retry: RequestHook | None = None
    on_connection_opened: ConnectionHook | None = None
    on_connection_closed: ConnectionHook | None = None
    on_heal_attempt: HealHook | None = None
    on_keep_warm: KeepWarmHook | None = None

    present: frozenset[str]

    def __init__(
        self,
        *,
        on_request_start: RequestHook | None = None,
        on_slot_acquired: RequestHook | None = None,
        on_request_written: RequestHook | None = None,
        on_response_head: RequestHook | None = None,
        on_response_end: RequestHook | None = None,
        on_error: RequestHook | None = None,
        on_stale_retry: RequestHook | None = None,
        on_connection_opened: ConnectionHook | None = None,
        on_connection_closed: ConnectionHook | None = None,
        on_heal_attempt: HealHook | None = None,
        on_keep_warm: KeepWarmHook | None = None,
    ) -> None:
        given = locals()
        for name in HOOK_NAMES:
            callback = given[name]
            if callback is None:
                continue  # leave a subclass's method visible
            if not callable(callback):
                raise TypeError(f"Hooks({name}=...) must be callable, got {callback!r}")
            object.__setattr__(self, name, callback)
        self._refresh()

    def _refresh(self) -> None:
        object.__setattr__(
            self, "present", frozenset(n for n in HOOK_NAMES if getattr(self, n) is not None)
        )

    def __setattr__(self, name: str, value: Any) -> None:
        if name in HOOK_NAMES and value is not None and not callable(value):
            raise TypeError(f"{name} must be callable or None, got {value!r}")
        object.__setattr__(self, name, value)
        if name in HOOK_NAMES:
            self._refresh()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {', '.join(sorted(self.present)) or 'none'}>"


class _AlreadyReported(Exception):
    """Raised by a composite after its children's failures were logged."""


class CompositeHooks(Hooks):
    """Several hooks objects as one (say OpenTelemetry plus your own).

    For each callback, the children that set it are called in the order
    given, each through :func:`safe_call`, so one child raising does not stop
    the others. A callback only one child sets is that child's own callable,
    with no extra layer; nested composites are flattened.

    Example:
        >>> a = Hooks(on_error=print)
        >>> b = Hooks(on_response_end=print)
        >>> sorted(CompositeHooks(a, b).present)
        ['on_error', 'on_response_end']
    """

    def __init__(self, *hooks: Hooks) -> None:
        children: list[Hooks] = []
        for h in hooks:
            if not isinstance(h, Hooks):
                raise TypeError(f"CompositeHooks takes Hooks objects, got {h!r}")
            children.extend(h.children if isinstance(h, CompositeHooks) else (h,))
        object.__setattr__(self, "children", tuple(children))
        for name in HOOK_NAMES:
            callbacks = [cb for h in children if (cb := getattr(h, name)) is not None]
            if callbacks:
                object.__setattr__(self, name, _fan_out(callbacks))
        super().__init__()

    children: tuple[Hooks, ...]


def _fan_out(callbacks: list[Callable[[Any], object]]) -> Callable[[Any], object]:
    if len(callbacks) == 1:
        return callbacks[0]
    fixed = tuple(callbacks)

    def call_all(event: Any) -> None:
        failed = False
        for cb in fixed:
            if not safe_call(cb, event):
                failed = True
        if failed:  # so that the caller's safe_call counts it (and logs nothing more)
            raise _AlreadyReported

    return call_all


# -- the failure policy -------------------------------------------------------

_LOG_EVERY_S = 60.0
_MAX_TRACKED = 256  # hook functions tracked for rate limiting (bounded memory)


class _HookFailureLog:
    """Rate-limited logging of hook failures, per hook function."""

    __slots__ = ("_state",)

    def __init__(self) -> None:
        # name -> [time last logged, failures not logged since]
        self._state: dict[str, list[float]] = {}

    def report(self, callback: Callable[..., object], exc: Exception) -> None:
        name = _name(callback)
        now = time.monotonic()
        state = self._state.get(name)
        if state is None:
            if len(self._state) >= _MAX_TRACKED:
                self._state.clear()
            self._state[name] = [now, 0]
            log.warning(
                "warmline: hook %s raised %s; the request goes on "
                "(further failures of this hook are logged at most once a minute)",
                name,
                type(exc).__name__,
                exc_info=exc,
            )
        elif now - state[0] >= _LOG_EVERY_S:
            log.warning(
                "warmline: hook %s raised %s: %s (%d more failures since the last report)",
                name,
                type(exc).__name__,
                exc,
                int(state[1]),
            )
            state[0], state[1] = now, 0
        else:
            state[1] += 1


def _name(callback: Callable[..., object]) -> str:
    module = getattr(callback, "__module__", None) or "?"
    qualname = getattr(callback, "__qualname__", None) or type(callback).__qualname__
    return f"{module}.{qualname}"


_failures = _HookFailureLog()


def safe_call(callback: Callable[[Any], object], event: object) -> bool:
    """Call one hook; never let its ``Exception`` reach the request.

    Returns:
        True when the hook returned, False when it raised (the shells count
        that in ``stats()``). The failure is logged as the module docstring
        says.
    """
    try:
        callback(event)
    except _AlreadyReported:
        return False
    except Exception as exc:
        _failures.report(callback, exc)
        return False
    return True
