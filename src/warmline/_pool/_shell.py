"""What both pool shells share and that does no I/O.

``PoolShell`` holds a pool's identity, its core and its counters and answers
the questions that only read them (``available``, ``stats()``...);
``Lease`` is a leased slot's handle. The asyncio and thread shells subclass
them and add only how they wait, release and talk to sockets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Any, Final, Generic, TypeAlias, TypeVar

from warmline._hooks import CompositeHooks, Hooks
from warmline._policy import DEFAULT, PoolStats, TimeoutArg
from warmline._pool._client import Resilience
from warmline._pool._core import C, Plan, PoolCore, Slot, check_timeout
from warmline._pool._observe import Observer, TimedReader
from warmline._pool._state import IN_USE, OPENING
from warmline._pool._verbs import PoolVerbs, Req, SlotVerbs
from warmline.errors import PoolClosed, PoolError, WarmlineError, WriteTimeout
from warmline.http11 import Response
from warmline.http11._upload import StreamedBody, Upload, not_replayed
from warmline.resilience._drive import HedgeThreads
from warmline.resilience._stats import ResilienceStats

if TYPE_CHECKING:
    from warmline._config import PoolConfig

__all__ = ["BUSY", "RELEASED_IN_FLIGHT", "Lease", "PoolShell"]

log = logging.getLogger("warmline")

RELEASED_IN_FLIGHT: Final = "the slot was released while its request was in flight"
BUSY: Final = "a request is already in flight on this slot; one at a time"

R = TypeVar("R")
S = TypeVar("S")
#: What a stream calls when it is released (None: nothing).
OnRelease: TypeAlias = "Callable[[], None] | None"
L = TypeVar("L", bound="Lease[Any, Any, Any]")


class PoolShell(PoolVerbs[R, S], Generic[C, R, S]):
    """A pool's state, read-only questions and error bookkeeping, and the
    parts of a request that do not wait: building it, its deadline, the
    hooks around it. A shell adds how it waits and talks to sockets.
    """

    #: The shell's clock, in the unit of deadlines (``loop.time`` on asyncio).
    _now: Callable[[], float] = staticmethod(monotonic)
    #: What ``stream()`` returns, given the call that opens the stream.
    _stream_context: Callable[[Callable[[], Any]], S]
    #: The shell's hooked request and stream (see :mod:`warmline._pool._observe`).
    _observed_fns: tuple[Callable[..., Any], Callable[..., Any]]
    #: The shell's request under a retry or hedge policy (:mod:`warmline._pool._attempts`).
    _resilient_fn: Callable[..., Any]

    def __init__(self, config: PoolConfig) -> None:
        self._config = config
        self.origin = config.origin
        self._origin = str(config.origin)
        # Copied out of the config: read on every request.
        self._writer = config.writer
        self._timeout = config.timeout
        self._core: PoolCore[C] = config.new_core()
        self._core.shell = self
        self._stats = self._core.stats
        # A streamed body's limits (AioBody, SyncBody).
        self._body_options: dict[str, Any] = {
            "drain_limit": config.drain_limit,
            "decompress": config.decompress,
            "max_size": config.max_body_size,
        }
        self._observer: Observer | None = None
        self._resilience: Resilience | None = None
        if config.hooks is not None or config.latency:
            self._observe(config.hooks, config.latency)
        self._key = self._origin  # its name in the resilience counters
        self._hedges: HedgeThreads | None = None
        if config.retry is not None or config.hedge is not None:
            # The pool's own requests (pool.get()) go through the attempt
            # loop, each attempt the plain (or hooked) _call; leases do not.
            self._resilience = Resilience(
                config.retry, config.hedge, None, None, None, self._timeout
            )
            if config.hedge is not None:  # the thread pool's race runs on these
                workers = config.connections * (1 + config.hedge.max_extra)
                self._hedges = HedgeThreads(workers, "pool closed")
            self._call_once = self._call
            self._bind_resilient()

    def _bind_resilient(self) -> None:
        """``_call`` under ``retry=`` or ``hedge=``, on the instance: each
        attempt is ``_call_once``, the plain (or hooked) ``_call``. A request
        that is not hedged goes straight out once; only an error or a watched
        status enters the loop (:mod:`warmline._pool._attempts`, which has
        its cost)."""
        res = self._resilience
        fn = functools.partial(self._resilient_fn, res, self, self._call_once, None, self._hedges)
        object.__setattr__(self, "_call", fn)

    # -- hooks and histograms (see warmline._pool._observe) ---------------------------
    def _observe(self, hooks: Hooks | None, latency: bool) -> Observer:
        """Set up (or update) the observer; bind the hooked request path if needed.

        The hooked ``_request``/``_call`` are bound on the instance, shadowing
        the class's plain methods: a pool without hooks or histograms runs the
        plain ones and tests nothing per request.
        """
        obs = self._observer
        if obs is None:
            obs = Observer(self._config, self._core, hooks, latency, self._now)
            self._observer = obs
        else:
            if latency and obs.histograms is None:
                obs.histograms = Observer(self._config, self._core, None, True).histograms
            obs.set_hooks(hooks)
        if obs.requests_on:
            observed, stream_observed = self._observed_fns
            bind = functools.partial
            object.__setattr__(self, "_request", bind(observed, self))
            # Under a retry or hedge policy, each attempt is hooked.
            once = "_call" if self._resilience is None else "_call_once"
            object.__setattr__(self, once, bind(observed, self, None))
            if self._resilience is not None:
                self._bind_resilient()  # with the hooked attempt
            object.__setattr__(self, "_stream_call", bind(stream_observed, self, None))
            object.__setattr__(self, "_lease_stream", bind(stream_observed, self))
            self._time_idle_connections(obs)
        return obs

    def _time_idle_connections(self, obs: Observer) -> None:
        # Connections opened before the hooks have plain readers: give the
        # idle ones a timed reader now (a reader between responses holds no
        # state worth keeping), so their phases are timed too.
        for slot in list(self._core.ready):
            conn = slot.conn
            reader = getattr(conn, "_reader", None)
            plain = reader is not None and not isinstance(reader, TimedReader)
            if plain and not getattr(conn, "busy", False) and getattr(conn, "alive", False):
                conn._reader = obs.new_reader()  # type: ignore[union-attr]

    def _add_hooks(self, hooks: Hooks) -> None:
        """Add ``hooks`` to the pool's own (``warmline.contrib.otel.instrument``)."""
        obs = self._observer
        mine = None if obs is None else obs.hooks
        self._observe(
            hooks if mine is None else CompositeHooks(mine, hooks),
            obs is not None and obs.histograms is not None,
        )

    def _conn_observer(self) -> Observer | None:
        """The observer of a connection opened now: None unless hooks, histograms,
        or DEBUG logging (looked at here, once per connection)."""
        obs = self._observer
        if obs is None and log.isEnabledFor(logging.DEBUG):
            obs = self._observe(None, False)
        return obs

    # -- the core's decisions, carried out ------------------------------------------
    def _decide(self, op: Callable[..., object], *args: Any) -> None:
        """Run a core operation (``op(*args, plan)``), then carry out its plan.
        The thread shell runs the operation under its lock."""
        plan: Plan[C] = Plan()
        op(*args, plan)
        self._carry_out(plan)

    def _carry_out(self, plan: Plan[C], error: WarmlineError | None = None) -> None:
        """Close, wake, heal what the core decided; ``error`` fails a request
        in flight on a closed connection."""
        raise NotImplementedError

    def _give_back(self, slot: Slot[C]) -> None:
        """A slot handed to a waiter that left (cancelled, interrupted)."""
        if slot.state is OPENING:  # an empty slot to open: empty again, permit freed
            self._decide(self._core.open_failed, slot, self._now())
        else:
            self._release(slot)

    # -- the request path's shared steps ------------------------------------------
    def _request(self, slot: Slot[C], req: Req, lease: object) -> R:
        raise NotImplementedError

    def _release_lease(self, slot: Slot[C]) -> None:
        """A lease's ``release()``."""
        raise NotImplementedError

    def _release_from_gc(self, slot: Slot[C]) -> None:
        """A lease collected without ``release()``, on whatever thread."""
        raise NotImplementedError

    def _release(self, slot: Slot[C]) -> None:
        raise NotImplementedError

    def _streamed(self, response: Response, body: object) -> Response:
        """A stream's response, counted, with its body source attached."""
        self._stats.requests += 1
        response._source = body  # type: ignore[assignment]
        return response

    def _lease_stream(self, slot: Slot[C], req: Req) -> Any:
        """A lease's ``stream()``: the stream opened on its slot."""
        return self._open_stream(slot, req, None)

    def _stream(self, req: Req, acquire_timeout: TimeoutArg) -> S:
        return self._stream_context(lambda: self._stream_call(req, acquire_timeout))

    def _stream_call(self, req: Req, acquire_timeout: TimeoutArg) -> Any:
        raise NotImplementedError

    def _open_stream(self, slot: Slot[C], req: Req, on_release: OnRelease) -> Any:
        """Send ``req`` on ``slot``; the response with its body source attached."""
        raise NotImplementedError

    def _deadline(self, timeout: TimeoutArg) -> tuple[float | None, float | None]:
        """The request's timeout and deadline (off the hot path, which inlines this).

        Raises:
            WriteTimeout: A timeout of 0: nothing is sent.
            ValueError, TypeError: A bad timeout.
        """
        if timeout is DEFAULT:
            timeout = self._timeout
        checked = check_timeout(timeout, "timeout")
        if checked == 0:
            raise WriteTimeout("timeout of 0: nothing was sent")
        return checked, None if checked is None else self._now() + checked

    def _stream_setup(self, req: Req) -> tuple[bytes, Upload | None, float | None, float | None]:
        """A streamed response's request bytes (the head alone when the body
        is a stream too: then also its upload), deadline and read timeout.
        An error is counted and given its context."""
        method, path, params, headers, content, json, timeout = req
        upload = None
        try:
            try:
                data = self._writer.build(
                    method, path, params=params, headers=headers, content=content, json=json
                )
            except StreamedBody:
                data, upload = self._writer.build_head(
                    method, path, params=params, headers=headers, content=content
                )
            timeout, deadline = self._deadline(timeout)
        except WarmlineError as exc:
            self._fail(exc, method, path)
            raise
        read_timeout = self._config.read_timeout
        return data, upload, deadline, timeout if read_timeout is None else read_timeout

    def _stream_again(
        self, exc: WarmlineError, req: Req, first: bool, upload: Upload | None
    ) -> None:
        """Return if a stream's request goes once more on a new connection
        (the first attempt met a stale keep-alive connection, and its body
        can be sent again); else raise, counted, saying why an upload was
        not sent twice."""
        method = req[0]
        if first and upload is None and self._core.retry_stale(exc, method):
            return
        refused = exc if upload is None else not_replayed(exc)
        self._fail(refused, method, req[1])
        if refused is not exc:
            raise refused from exc
        raise exc

    def _upload_setup(self, req: Req) -> tuple[bytes, Upload, float | None]:
        """A streamed upload's head, body and deadline."""
        method, path, params, headers, content, _, timeout = req
        head, upload = self._writer.build_head(
            method, path, params=params, headers=headers, content=content
        )
        return head, upload, self._deadline(timeout)[1]

    def _before_reopen(self, slot: Slot[C]) -> None:
        """A leased slot is about to reconnect inline (its connection closed):
        refused once the pool is closed or the slot released; the old
        connection is dropped."""
        if self._core.closed:
            raise PoolClosed("pool closed")
        if slot.state is not IN_USE:  # released under its request (healing or empty)
            raise PoolError(RELEASED_IN_FLIGHT)
        if slot.conn is not None:
            slot.conn.close()
            slot.conn = None

    def _reopened(self, slot: Slot[C], conn: C) -> C:
        """The slot's new connection, unless the pool closed or the slot was
        released while it opened (then it is closed, and that is raised)."""
        if self._core.closed or slot.state is not IN_USE:
            conn.close()
            raise PoolClosed("pool closed") if self._core.closed else PoolError(RELEASED_IN_FLIGHT)
        self._stats.reconnects += 1
        slot.conn = conn
        return conn

    def _acquire_wait(self, timeout: TimeoutArg, acquire_timeout: TimeoutArg) -> float | None:
        """How long ``pool.get()`` and friends wait for a slot: ``acquire_timeout``,
        else ``Timeouts.pool``, else the request's total timeout (so a pool
        whose server is down fails in bounded time; both shells alike)."""
        if acquire_timeout is DEFAULT:
            acquire_timeout = self._config.pool_timeout
            if acquire_timeout is None:
                acquire_timeout = self._timeout if timeout is DEFAULT else timeout
        return check_timeout(acquire_timeout, "acquire_timeout")

    def _connect_budget(self, deadline: float | None, now: float) -> TimeoutArg:
        """The connect timeout left for a (re)connect within a request's deadline."""
        connect_timeout = self._config.connect_timeout
        if deadline is None:
            return DEFAULT
        left = max(deadline - now, 1e-6)
        return left if connect_timeout is None or left < connect_timeout else DEFAULT

    def _count(self, exc: WarmlineError) -> WarmlineError:
        self._stats.error(exc)
        return exc

    def _fail(self, exc: WarmlineError, method: str, path: str) -> WarmlineError:
        self._stats.error(exc)
        return exc.with_context(origin=self._origin, method=method, path=path)

    @property
    def available(self) -> int:
        """Slots ready now (a dead one among them is found on acquire)."""
        return len(self._core.ready)

    @property
    def size(self) -> int:
        """Number of slots."""
        return len(self._core.slots)

    @property
    def closed(self) -> bool:
        return self._core.closed

    @property
    def _waiters(self) -> Any:
        return self._core.waiters

    def stats(self) -> PoolStats:
        """A snapshot of the counters and the current slot states (and copies
        of the latency histograms with ``latency=True``)."""
        snap = self._core.snapshot()
        obs = self._observer
        if obs is not None and obs.histograms is not None:
            copies = {name: h.copy() for name, h in obs.histograms.items()}
            snap = dataclasses.replace(snap, histograms=copies)
        return snap

    def resilience_stats(self) -> ResilienceStats:
        """What ``retry=`` and ``hedge=`` did: retries, hedges sent and won
        (a copy; zeros when neither is set)."""
        res = self._resilience
        if res is None:
            return ResilienceStats()
        return res.snapshot([self._origin])[self._origin]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._core.describe()}>"


class Lease(SlotVerbs[R, S], Generic[C, R, S]):
    """A leased slot: send requests on one warm connection, then release.

    Use it as a context manager (``with slot:`` releases on exit) or call
    ``release()``. After release the lease is spent: using it raises
    PoolError. One request at a time: a second one while the first is in
    flight raises PoolError, and releasing the slot under a request in
    flight fails that request at once with PoolError.
    """

    __slots__ = ("_pool", "_slot")

    def __init__(self, pool: PoolShell[C, R, S], slot: Slot[C]) -> None:
        self._pool = pool
        self._slot: Slot[C] | None = slot

    def __repr__(self) -> str:
        where = "released" if self._slot is None else str(self._pool.origin)
        return f"<{type(self).__name__} {where}>"

    def __enter__(self: L) -> L:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __del__(self) -> None:
        # A lease dropped without release() must not drain the pool. The
        # collector may run on any thread, even inside the pool's locked
        # section, or after an event loop ended: the shell copes.
        slot = self._slot
        if slot is not None:
            self._slot = None
            with contextlib.suppress(Exception):
                self._pool._release_from_gc(slot)

    def release(self) -> None:
        """Return the slot to its pool (idempotent; from any thread)."""
        slot = self._slot
        if slot is not None:
            self._slot = None
            self._pool._release_lease(slot)

    def _slot_or_raise(self) -> Slot[C]:
        slot = self._slot
        if slot is None:
            raise PoolError("this slot was released; acquire a new one")
        return slot

    def _send(self, req: Req) -> R:
        # Returns what the pool's _request returns (the coroutine itself on
        # asyncio: one frame per request, not one per layer). ``self`` rides
        # along so that a lease dropped right after ``lease.get()`` returned
        # is not collected, and released, while its request runs.
        slot = self._slot
        if slot is None:
            raise PoolError("this slot was released; acquire a new one")
        return self._pool._request(slot, req, self)

    def _stream(self, req: Req) -> S:
        slot = self._slot_or_raise()
        pool = self._pool
        return pool._stream_context(lambda: pool._lease_stream(slot, req))
