"""Generic object pools: reuse buffers and other costly objects instead of allocating.

Two pools and one guard, the Python counterparts of nexus-pool's ``local::Pool``
and ``sync::Pool``:

* :class:`LocalPool`: one thread. Bounded (``capacity`` values at most) or
  growable (its factory makes a value whenever the pool is empty).
* :class:`SyncPool`: fixed capacity, pre-allocated; a guard may be released
  from any thread, and several threads may acquire.
* :class:`Pooled`: what ``try_acquire()`` hands out. ``release()`` (or leaving
  a ``with`` block, or the guard being garbage-collected) runs ``reset`` on the
  value and puts it back on the pool's LIFO stack, so the most recently used
  (cache-warm) value goes out next.

Example::

    bufs = SyncPool(capacity=1024, factory=lambda: bytearray(4096), reset=bytearray.clear)
    with bufs.try_acquire() as buf:     # buf is the bytearray itself
        buf += b"market frame"
    guard = bufs.try_acquire()          # or keep the guard: hand it to a worker thread
    if guard is not None:
        guard.value += b"payload"
        guard.release()                 # idempotent; reset runs on the releasing thread

The hot path is a ``list.pop()``, one small guard allocation and a counter on
acquire, and ``reset(value)`` plus ``list.append()`` on release; misses,
refills and failures take slower paths that the common case never enters.

Cost of one acquire+release pair with ``bytearray.clear`` as the reset
(``uv run python -m benchmarks.bench_objpool``, fastest round, on the
reference machine: the project's 2-core box, CPython 3.11 without PGO):

=============================  =========  =================
path                           ns/pair    vs queue.LifoQueue
=============================  =========  =================
``try_acquire()/release()``    ~213       5.0x faster
same, ``reclaim=False``        ~179       6.0x
``with pool.try_acquire()``    ~306       3.5x
``take()/put()``               ~92        11.6x
``queue.LifoQueue``            ~1060      1x
=============================  =========  =================

About 35 ns of the guard path is the safety net that hands back the value of
a guard dropped without release (the guard's class swap on release, see
:class:`_Guard`); ``reclaim=False`` trades that safety net for speed.
"""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Callable
from typing import Any, Generic, NoReturn, TypedDict, TypeVar, cast

from warmline.errors import PoolError

__all__ = ["LocalPool", "Pooled", "SyncPool"]

T = TypeVar("T")


class ObjPoolStats(TypedDict):
    """What :meth:`LocalPool.stats` and :meth:`SyncPool.stats` return."""

    acquired: int
    """Values handed out, by ``try_acquire``/``acquire``/``take``."""
    released: int
    """Values given back and kept: guard releases (garbage-collected guards
    included) and ``put`` calls whose ``reset`` succeeded."""
    dropped: int
    """Values discarded because ``reset`` raised on them."""
    created: int
    """Values the factory made (prefill included)."""
    misses: int
    """Acquisitions that found no idle value: then served by the factory when
    the pool may grow or refill, or refused when it is exhausted."""
    reclaimed: int
    """Guards garbage-collected without ``release()`` whose value went back
    (also counted in ``released``). Anything but 0 means a leak somewhere."""


class _Released:
    """What a released guard's ``value`` holds: any use of it fails loudly."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<released: this Pooled guard gave its value back>"

    def __getattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{name!r}: the Pooled guard was released, its value is gone")


def _class_swap_is_cheap() -> bool:
    """Whether this build has a GIL, where assigning ``__class__`` is cheap.

    On free-threaded builds (3.13t+) a ``__class__`` assignment stops every
    thread; there guards keep their ``__del__`` until they die.
    """
    if not hasattr(sys, "_is_gil_enabled"):  # before 3.13: every build has a GIL
        return True
    import sysconfig

    return not sysconfig.get_config_var("Py_GIL_DISABLED")


_SWAP_CLASS_ON_RELEASE = _class_swap_is_cheap()

# Typed Any so that storing it in ``Pooled.value`` (a T) needs no cast() call.
_RELEASED: Any = _Released()


class Pooled(Generic[T]):
    """A value on loan from a pool; give it back with :meth:`release`.

    Guards come from ``try_acquire()``/``acquire()``; ``Pooled()`` raises.

    Attributes:
        value: The pooled object. Read it (and mutate it) while the guard is
            held. Like the Rust guard's ``DerefMut``, assigning another object
            to ``value`` hands *that* object to the pool on release. After
            release it holds a placeholder whose every use fails, so a stale
            guard cannot touch a value that someone else has acquired since.

    Releasing:
        * ``release()`` runs the pool's ``reset(value)`` on the calling thread,
          then pushes the value back. It is idempotent: a second call does
          nothing. If ``reset`` raises, the value is dropped (counted in
          ``stats()["dropped"]``, replaced by the factory on a later acquire)
          and the exception propagates.
        * ``with guard as value:`` releases on exit, even on error. Note that
          ``__enter__`` returns the *value* (like the Rust guard's ``Deref``),
          so ``with pool.try_acquire() as buf:`` binds the buffer itself;
          check for ``None`` first when the pool may be exhausted.
        * A guard garbage-collected without release returns its value, so a
          forgotten release cannot drain the pool (counted in
          ``stats()["reclaimed"]``; a ``ResourceWarning`` when the pool's
          ``debug`` is on; a ``reset`` failing there is reported through
          ``sys.unraisablehook``). On CPython this happens as soon as the last
          reference goes, like a Rust drop. Pools made with ``reclaim=False``
          skip this safety net for speed.

    A guard belongs to one thread at a time: hand it over (through a queue),
    don't release the same guard from two threads at once. A guard cannot be
    copied or pickled, as that would return the value twice.
    """

    __slots__ = ("_pool", "value")

    value: T
    _pool: _ObjectPool[T] | None

    def __init__(self) -> None:
        raise TypeError("Pooled guards come from a pool's try_acquire() or acquire()")

    def release(self, _exc_type: object = None, _exc: object = None, _tb: object = None) -> None:
        """Reset the value and return it to its pool; does nothing if released.

        The optional arguments are ignored: they let this same function serve
        as ``__exit__``, which saves a nested call (~30 ns) per ``with`` block.

        Raises:
            BaseException: Whatever ``reset`` raised; the value is dropped.
        """
        pool = self._pool
        if pool is None:
            return
        released_type = pool._released_type
        if released_type is not None:
            # The value is home: the guard no longer needs its __del__.
            self.__class__ = released_type
        self._pool = None
        value = self.value
        # A store, not ``del``: DELETE_ATTR is never specialised (~10 ns more).
        self.value = _RELEASED
        reset = pool._reset
        if reset is not None:
            try:
                reset(value)
            except BaseException:
                # Half-reset state is unknown: never hand it out again.
                pool._drop()
                raise
        pool._stack.append(value)

    __exit__ = release

    def __enter__(self) -> T:
        return self.value

    @property
    def released(self) -> bool:
        """Whether the value went back to the pool (or was dropped)."""
        return self._pool is None

    def __repr__(self) -> str:
        pool = self._pool
        if pool is None:
            return "<Pooled (released)>"
        return f"<Pooled {type(self.value).__name__} from {type(pool).__name__}>"

    def __copy__(self) -> NoReturn:
        raise TypeError("a Pooled guard cannot be copied: its value would be released twice")

    def __deepcopy__(self, memo: object) -> NoReturn:
        self.__copy__()

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("a Pooled guard cannot be pickled")


class _FastGuard(Pooled[T]):
    """The guard of a ``reclaim=False`` pool: no ``__del__``.

    Pools build guards through ``type.__call__`` with the C ``object.__init__``
    (~20 ns cheaper than ``object.__new__(cls)``); the public ``Pooled``
    keeps an ``__init__`` that refuses, so users cannot make stray guards.
    """

    __slots__ = ()
    __init__ = object.__init__


class _Guard(_FastGuard[T]):
    """The default guard: returns its value if collected unreleased.

    One guard object per acquire is the price of safe stale guards: reusing
    guards would let the holder of a released one release (or read) the next
    user's value. Only an unreleased guard needs ``__del__``: on GIL builds
    ``release()`` turns the guard into a :class:`_FastGuard` (``__class__``
    assignment, ~34 ns), which skips the ``__del__`` call at its death
    (~45-50 ns, a Python frame run from the deallocator). On free-threaded
    builds a ``__class__`` assignment stops the world, so there guards keep
    ``__del__`` until they die. Other safety nets measured worse: a weakref
    with a C callback per guard ~95 ns, one carrying the value ~200 ns,
    ``weakref.finalize`` more. Reusing guards would need reference-count
    tricks (CPython-only, and a count read changes meaning with 3.14's
    borrowed references).
    """

    __slots__ = ()

    def __del__(self) -> None:
        pool = self._pool
        if pool is not None:
            pool._reclaim(self)


class _ObjectPool(Generic[T]):
    """State and slow paths shared by :class:`LocalPool` and :class:`SyncPool`.

    The idle values live on ``_stack`` (a list: ``pop``/``append`` at the end
    are O(1) and LIFO). ``_deficit`` is how many more values the factory may
    make before a bounded pool reaches its capacity: the ones not prefilled
    plus the ones dropped by a failing ``reset``.
    """

    __slots__ = (
        "_acquired",
        "_capacity",
        "_created",
        "_debug",
        "_deficit",
        "_dropped",
        "_factory",
        "_guard_type",
        "_misses",
        "_reclaimed",
        "_released_type",
        "_reset",
        "_stack",
    )

    def __init__(
        self,
        factory: Callable[[], T],
        capacity: int | None,
        reset: Callable[[T], object] | None,
        prefill: int,
        reclaim: bool,
        debug: bool | None,
    ) -> None:
        if not callable(factory):
            raise TypeError(f"factory must be callable, got {factory!r}")
        if reset is not None and not callable(reset):
            raise TypeError(f"reset must be callable or None, got {reset!r}")
        self._factory = factory
        self._reset = reset
        self._capacity = capacity
        self._debug = sys.flags.dev_mode if debug is None else bool(debug)
        # Debug mode keeps the safety net even with reclaim=False: that is
        # where a leak should show up as a ResourceWarning.
        self._guard_type: type[Pooled[T]] = _Guard if reclaim or self._debug else _FastGuard
        self._released_type: type[Pooled[T]] | None = (
            _FastGuard if self._guard_type is _Guard and _SWAP_CLASS_ON_RELEASE else None
        )
        self._acquired = self._created = self._dropped = self._misses = self._reclaimed = 0
        self._deficit = 0 if capacity is None else capacity - prefill
        self._stack: list[T] = []
        for _ in range(prefill):
            self._stack.append(factory())
            self._created += 1

    @property
    def capacity(self) -> int | None:
        """Most values the pool makes; ``None`` for a growable pool."""
        return self._capacity

    @property
    def available(self) -> int:
        """Idle values on the stack, ready to hand out without the factory."""
        return len(self._stack)

    @property
    def debug(self) -> bool:
        """Whether a guard collected unreleased warns (``ResourceWarning``)."""
        return self._debug

    def stats(self) -> ObjPoolStats:
        """A snapshot of the counters (see :class:`ObjPoolStats`).

        Only acquisitions are counted on the hot path; ``released`` is derived:
        every value made or put is idle, out, or dropped, so
        ``released = acquired - created + available`` (drops cancel out).
        """
        acquired, created = self._acquired, self._created
        return {
            "acquired": acquired,
            "released": max(0, acquired - created + len(self._stack)),
            "dropped": self._dropped,
            "created": created,
            "misses": self._misses,
            "reclaimed": self._reclaimed,
        }

    def put(self, value: T) -> None:
        """Reset ``value`` and push it on the stack: the manual twin of a release.

        Meant for values from ``take()``. The pool does not check where a
        value came from: putting a foreign one adds it (the pool may then hold
        more than ``capacity`` idle values).

        Raises:
            BaseException: Whatever ``reset`` raised; the value is dropped and
                counted like a failed release.
        """
        reset = self._reset
        if reset is not None:
            try:
                reset(value)
            except BaseException:
                self._drop()
                raise
        self._stack.append(value)

    def _guard(self, value: T) -> Pooled[T]:
        # The hot paths inline this: a method call costs ~30 ns.
        guard_type = self._guard_type
        guard = guard_type()
        guard._pool = self
        guard.value = value
        return guard

    def _empty(self) -> T | None:
        """The stack was empty: make a value if allowed, else ``None``."""
        self._misses += 1
        if not self._reserve():
            return None
        try:
            value = self._factory()
        except BaseException:
            self._unreserve()
            raise
        self._created += 1
        self._acquired += 1
        return value

    def _reserve(self) -> bool:
        if self._capacity is None:
            return True
        if self._deficit > 0:
            self._deficit -= 1
            return True
        return False

    def _unreserve(self) -> None:
        if self._capacity is not None:
            self._deficit += 1

    def _drop(self) -> None:
        """``reset`` raised: the value is gone; let the factory replace it."""
        self._dropped += 1
        self._unreserve()

    def _reclaim(self, guard: Pooled[T]) -> None:
        """A guard died unreleased (from ``_Guard.__del__``): return its value."""
        self._count_reclaimed()
        try:
            guard.release()
        finally:
            if self._debug:
                warnings.warn(
                    f"a Pooled guard from {self!r} was garbage-collected without release(); "
                    "its value went back to the pool",
                    ResourceWarning,
                    stacklevel=3,  # _reclaim, __del__, then the frame that dropped it
                    source=guard,
                )

    def _count_reclaimed(self) -> None:
        self._reclaimed += 1

    def __repr__(self) -> str:
        capacity = "growable" if self._capacity is None else f"capacity={self._capacity}"
        return f"<{type(self).__name__} {capacity} available={len(self._stack)}>"


class LocalPool(_ObjectPool[T]):
    """A single-thread object pool: bounded, or growable through its factory.

    Args:
        factory: Makes a new value (called with no arguments).
        capacity: ``None`` (default) for a growable pool: when no value is
            idle, the factory makes one, and every value released is kept.
            An ``int`` for a bounded pool: at most ``capacity`` values exist;
            when all are out, ``try_acquire()`` returns ``None``.
        reset: Called with each value as it comes back (release or ``put``):
            ``bytearray.clear``, ``list.clear``... ``None``: no reset.
        prefill: Values made up front. Default: ``capacity`` for a bounded
            pool (fully pre-allocated), 0 for a growable one. A bounded pool
            with ``prefill < capacity`` makes the rest on demand.
        reclaim: Return the value of a guard garbage-collected without
            release (default). ``False`` drops that safety net to save its
            class swap on release (~35 ns per acquire+release pair on the
            reference machine: ~213 ns -> ~179 ns): a forgotten release then
            loses the value for good, and a bounded pool shrinks. Ignored in
            debug mode, where leaks should show up.
        debug: Warn (``ResourceWarning``) when a guard is garbage-collected
            without release. Default: on in Python's development mode
            (``-X dev`` or ``PYTHONDEVMODE=1``).

    Raises:
        ValueError: ``capacity < 1`` or ``prefill`` outside ``0..capacity``.

    Every method must be called from the thread that owns the pool, releasing
    its guards included. Acquiring never calls ``reset`` and never waits.
    Example::

        pool = LocalPool(list, reset=list.clear)      # growable
        with pool.acquire() as items:
            items.append(1)
    """

    __slots__ = ()

    def __init__(
        self,
        factory: Callable[[], T],
        *,
        capacity: int | None = None,
        reset: Callable[[T], object] | None = None,
        prefill: int | None = None,
        reclaim: bool = True,
        debug: bool | None = None,
    ) -> None:
        if capacity is not None and capacity < 1:
            raise ValueError(f"capacity must be at least 1 (or None: growable), got {capacity}")
        if prefill is None:
            prefill = 0 if capacity is None else capacity
        if prefill < 0 or (capacity is not None and prefill > capacity):
            raise ValueError(f"prefill must be within 0..capacity, got {prefill}")
        super().__init__(factory, capacity, reset, prefill, reclaim, debug)

    def try_acquire(self) -> Pooled[T] | None:
        """The most recently released value, in a guard.

        Returns:
            A guard, or ``None`` when a bounded pool is exhausted. A growable
            pool (and a bounded one below capacity) calls the factory instead.
        """
        stack = self._stack
        if stack:
            self._acquired += 1
            guard_type = self._guard_type  # see SyncPool.try_acquire
            guard = guard_type()
            guard._pool = self
            guard.value = stack.pop()
            return guard
        value = self._empty()
        return None if value is None else self._guard(value)

    def acquire(self) -> Pooled[T]:
        """Like :meth:`try_acquire`, but never ``None``.

        Raises:
            PoolError: A bounded pool is exhausted (a growable pool never is).
        """
        guard = self.try_acquire()
        if guard is None:
            raise PoolError(f"LocalPool exhausted: all {self._capacity} values are in use")
        return guard

    def take(self) -> T | None:
        """Pop a value without a guard; give it back with :meth:`put`.

        Returns:
            The value, or ``None`` when a bounded pool is exhausted (a growable
            one calls the factory). The value still counts against
            ``capacity`` until put back: losing it shrinks the pool for good.
        """
        stack = self._stack
        if stack:
            self._acquired += 1
            return stack.pop()
        return self._empty()


class SyncPool(_ObjectPool[T]):
    """A fixed-capacity object pool whose guards may be released from any thread.

    Args:
        factory: Makes a value; called ``capacity`` times up front, and later
            only to replace a value dropped by a failing ``reset``.
        capacity: Number of values, all made at construction.
        reset: Called with each value as it comes back, on the thread that
            releases it, so it must be safe to run there. ``None``: no reset.
        reclaim: As for :class:`LocalPool`.
        debug: As for :class:`LocalPool`.

    Raises:
        ValueError: ``capacity < 1``.

    Threads. The seed's Rust pool allows one acquirer; here any thread may
    acquire as well as release, because it costs nothing: the idle values are
    a ``list``, and ``list.pop()``/``list.append()`` are each one atomic step
    (under the GIL; under the list's own per-object lock on free-threaded
    3.13t). Acquiring pops under ``try/except IndexError`` (free on 3.11
    unless raised), so two acquirers racing for the last value cannot both
    get it. Guarding the stack with a ``threading.Lock`` instead (around the
    pop and around the append) measured, on the reference machine, +200 ns
    per acquire+release pair with explicit ``acquire()``/``release()`` calls
    and +440 ns as ``with lock:`` blocks, against ~50 ns for the bare list
    operations; SyncPool's whole pair is ~213 ns, the same as LocalPool's.
    So there is no lock.

    Relied upon: the atomicity of ``list.pop``/``list.append``, and
    ``__del__`` running when a guard dies, on whatever thread drops it.
    Counters (``stats()``) are plain ``+=``: exact with one acquirer; with
    several acquirer threads on a free-threaded build an increment can be
    lost. They never affect correctness. Rare paths (a failing ``reset``, a
    refill, a reclaimed guard) take a lock.

    There is no blocking ``acquire``: ``try_acquire()`` returns ``None`` when
    all values are out. Example::

        bufs = SyncPool(capacity=1024, factory=lambda: bytearray(4096),
                        reset=bytearray.clear)
        guard = bufs.try_acquire()
        if guard is not None:
            guard.value += frame
            work_queue.put(guard)   # the worker calls guard.release()
    """

    __slots__ = ("_lock",)

    def __init__(
        self,
        factory: Callable[[], T],
        *,
        capacity: int,
        reset: Callable[[T], object] | None = None,
        reclaim: bool = True,
        debug: bool | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._lock = threading.Lock()
        super().__init__(factory, capacity, reset, capacity, reclaim, debug)

    @property
    def capacity(self) -> int:
        """Number of values the pool holds when none is out."""
        return cast(int, self._capacity)

    def try_acquire(self) -> Pooled[T] | None:
        """The most recently released value, in a guard; ``None`` if all are out.

        Safe from any thread. The factory runs only to replace a value dropped
        by a failing ``reset``.
        """
        stack = self._stack
        if stack:
            try:
                value = stack.pop()
            except IndexError:  # another acquirer took the last one
                return None
            self._acquired += 1
            # Through a local: LOAD_METHOD on a slot holding a class never
            # specialises on 3.11 (~90 instructions a call).
            guard_type = self._guard_type
            guard = guard_type()
            guard._pool = self
            guard.value = value
            return guard
        refill = self._empty()
        return None if refill is None else self._guard(refill)

    def take(self) -> T | None:
        """Pop a value without a guard (``None`` if all are out); see :meth:`put`.

        The value still counts against ``capacity`` until put back.
        """
        try:
            value = self._stack.pop()
        except IndexError:
            return self._empty()
        self._acquired += 1
        return value

    def _empty(self) -> T | None:
        if not self._deficit:  # the usual miss: exhausted, nothing to refill
            self._misses += 1
            return None
        with self._lock:
            self._misses += 1
            if not self._reserve():
                return None
        try:
            value = self._factory()
        except BaseException:
            with self._lock:
                self._unreserve()
            raise
        with self._lock:
            self._created += 1
            self._acquired += 1
        return value

    def _drop(self) -> None:
        with self._lock:
            super()._drop()

    def _count_reclaimed(self) -> None:
        with self._lock:
            self._reclaimed += 1
