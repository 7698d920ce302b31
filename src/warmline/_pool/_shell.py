"""What both pool shells share and that does no I/O.

``PoolShell`` holds a pool's identity, its core and its counters and answers
the questions that only read them (``available``, ``stats()``...);
``Lease`` is a leased slot's handle. The asyncio and thread shells subclass
them and add only how they wait, release and talk to sockets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from warmline._policy import DEFAULT, PoolStats, TimeoutArg
from warmline._pool._core import C, PoolCore, Slot, check_timeout
from warmline._pool._verbs import PoolVerbs, SlotVerbs
from warmline.errors import PoolError, WarmlineError
from warmline.http11._writer import ContentArg, HeadersArg, ParamsArg

if TYPE_CHECKING:
    from warmline._config import PoolConfig

__all__ = ["RELEASED_IN_FLIGHT", "Lease", "PoolShell"]

RELEASED_IN_FLIGHT: Final = "the slot was released while its request was in flight"

R = TypeVar("R")
L = TypeVar("L", bound="Lease[Any, Any]")


class PoolShell(PoolVerbs[R], Generic[C, R]):
    """A pool's state, read-only questions and error bookkeeping."""

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

    def _request(
        self,
        slot: Slot[C],
        method: str,
        path: str,
        params: ParamsArg | None,
        headers: HeadersArg | None,
        content: ContentArg | None,
        json: Any,
        timeout: TimeoutArg,
        lease: object,
    ) -> R:
        raise NotImplementedError

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
        """A snapshot of the counters and the current slot states."""
        return self._core.snapshot()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._core.describe()}>"


class Lease(SlotVerbs[R], Generic[C, R]):
    """A leased slot: send requests on one warm connection, then release.

    Use it as a context manager (``with slot:`` releases on exit) or call
    ``release()``. After release the lease is spent: using it raises
    PoolError. One request at a time: a second one while the first is in
    flight raises PoolError, and releasing the slot under a request in
    flight fails that request at once with PoolError.
    """

    __slots__ = ("_pool", "_slot")

    def __init__(self, pool: PoolShell[C, R], slot: Slot[C]) -> None:
        self._pool = pool
        self._slot: Slot[C] | None = slot

    def __repr__(self) -> str:
        where = "released" if self._slot is None else str(self._pool.origin)
        return f"<{type(self).__name__} {where}>"

    def __enter__(self: L) -> L:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def release(self) -> None:
        raise NotImplementedError

    def _send(
        self,
        method: str,
        path: str,
        params: ParamsArg | None,
        headers: HeadersArg | None,
        content: ContentArg | None,
        json: Any,
        timeout: TimeoutArg,
    ) -> R:
        # Returns what the pool's _request returns (the coroutine itself on
        # asyncio: one frame per request, not one per layer). ``self`` rides
        # along so that a lease dropped right after ``lease.get()`` returned
        # is not collected, and released, while its request runs.
        slot = self._slot
        if slot is None:
            raise PoolError("this slot was released; acquire a new one")
        pool = self._pool
        return pool._request(slot, method, path, params, headers, content, json, timeout, self)
