"""Object pools: LocalPool, SyncPool and the Pooled guard.

Single-thread semantics first (LIFO, bounds, growth, reset, guards, garbage
collection, stats), then a model-based hypothesis test, then threads: guards
released from 8 worker threads, and 8 threads acquiring and releasing at once,
checking by object identity that no value is lost, duplicated, or held by two
threads at the same time.
"""

from __future__ import annotations

import copy
import gc
import pickle
import queue
import subprocess
import sys
import sysconfig
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warmline import objpool
from warmline.errors import PoolError
from warmline.objpool import LocalPool, Pooled, SyncPool

JOIN_TIMEOUT = 20.0
V = TypeVar("V")


class Item:
    """A distinct, identifiable pooled value."""

    def __init__(self, serial: int) -> None:
        self.serial = serial
        self.dirty = False

    def __repr__(self) -> str:
        return f"Item({self.serial})"


def counting_factory() -> Callable[[], Item]:
    serials = iter(range(1_000_000))
    return lambda: Item(next(serials))


def clean(item: Item) -> None:
    item.dirty = False


class BoomError(Exception):
    pass


def acquire_ok(pool: LocalPool[V] | SyncPool[V]) -> Pooled[V]:
    guard = pool.try_acquire()
    assert guard is not None
    return guard


def release_all(guards: Sequence[Pooled[Any] | None]) -> None:
    """Tests give back what they hold, so they stay quiet under ``-X dev``."""
    for guard in guards:
        assert guard is not None
        guard.release()


# --- LocalPool: order, bounds, growth ---------------------------------------------------------


def test_lifo_order_most_recently_released_goes_out_first() -> None:
    pool = LocalPool(counting_factory(), capacity=4)
    guards = [acquire_ok(pool) for _ in range(3)]
    items = [g.value for g in guards]
    for g in guards:  # released 0, 1, 2: 2 is on top
        g.release()
    again = [acquire_ok(pool) for _ in range(3)]  # held: a dropped guard would come back
    assert [g.value for g in again] == items[::-1]
    release_all(again)


def test_lifo_take_put() -> None:
    pool = LocalPool(counting_factory(), capacity=3)
    a, b = pool.take(), pool.take()
    assert a is not None and b is not None
    pool.put(a)
    pool.put(b)
    assert pool.take() is b
    assert pool.take() is a


def test_bounded_is_preallocated_and_exhausts() -> None:
    pool = LocalPool(counting_factory(), capacity=2)
    assert (pool.capacity, pool.available) == (2, 2)
    assert pool.stats()["created"] == 2
    held = [acquire_ok(pool), acquire_ok(pool)]
    first = held[0].value
    assert pool.available == 0
    assert pool.try_acquire() is None
    assert pool.take() is None
    with pytest.raises(PoolError, match="exhausted"):
        pool.acquire()
    assert pool.stats()["misses"] == 3
    assert pool.stats()["created"] == 2  # exhaustion never calls the factory
    held[0].release()
    back = pool.acquire()
    assert back.value is first
    release_all([back, held[1]])


def test_bounded_acquire_returns_a_guard_while_values_remain() -> None:
    pool = LocalPool(counting_factory(), capacity=1)
    guard = pool.acquire()
    assert isinstance(guard, Pooled)
    guard.release()
    again = pool.acquire()
    assert again.value is not None
    again.release()


def test_growable_creates_when_empty_and_keeps_what_comes_back() -> None:
    made: list[Item] = []

    def factory() -> Item:
        made.append(Item(len(made)))
        return made[-1]

    pool = LocalPool(factory)
    assert pool.capacity is None
    assert pool.available == 0 and not made  # growable: no prefill by default
    guards = [pool.acquire() for _ in range(3)]
    assert [g.value for g in guards] == made and len(made) == 3
    for g in guards:
        g.release()
    assert pool.available == 3
    again = [pool.acquire() for _ in range(3)]
    assert len(made) == 3  # reused, no new value
    assert {id(g.value) for g in again} == {id(v) for v in made}
    extra = pool.take()  # empty again: take() grows too
    assert len(made) == 4 and extra is made[3]
    release_all(again)
    stats = pool.stats()
    assert stats["created"] == 4 and stats["misses"] == 4


def test_growable_prefill_and_try_acquire_never_none() -> None:
    pool = LocalPool(counting_factory(), prefill=2)
    assert pool.available == 2
    held = [pool.try_acquire() for _ in range(5)]
    assert pool.stats()["created"] == 5
    release_all(held)


def test_bounded_with_partial_prefill_grows_lazily_up_to_capacity() -> None:
    pool = LocalPool(counting_factory(), capacity=3, prefill=1)
    assert pool.available == 1
    held = [acquire_ok(pool) for _ in range(3)]
    assert pool.stats()["created"] == 3
    assert pool.try_acquire() is None
    assert len({id(g.value) for g in held}) == 3
    release_all(held)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"capacity": 0}, ValueError),
        ({"capacity": -1}, ValueError),
        ({"capacity": 2, "prefill": 3}, ValueError),
        ({"prefill": -1}, ValueError),
    ],
)
def test_local_pool_validates_arguments(kwargs: dict[str, int], error: type[Exception]) -> None:
    with pytest.raises(error):
        LocalPool(counting_factory(), **kwargs)  # type: ignore[arg-type]


def test_factory_and_reset_must_be_callable() -> None:
    with pytest.raises(TypeError):
        LocalPool(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        SyncPool(counting_factory(), capacity=1, reset="clear")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SyncPool(counting_factory(), capacity=0)


def test_sync_pool_basics() -> None:
    pool = SyncPool(counting_factory(), capacity=2, reset=clean)
    assert (pool.capacity, pool.available) == (2, 2)
    first, second = acquire_ok(pool), acquire_ok(pool)
    value = second.value
    assert first.value is not value
    assert pool.try_acquire() is None
    assert pool.take() is None
    assert pool.stats()["misses"] == 2 and pool.stats()["created"] == 2
    second.release()
    assert pool.take() is value
    pool.put(value)
    again = acquire_ok(pool)
    assert again.value is value and again is not second  # a fresh guard every time
    release_all([first, again])
    assert pool.stats()["acquired"] == pool.stats()["released"] == 4


# --- reset --------------------------------------------------------------------------------------


def test_reset_runs_on_release_and_put_never_on_acquire() -> None:
    calls: list[bytearray] = []

    def reset(buf: bytearray) -> None:
        calls.append(buf)
        buf.clear()

    pool = LocalPool(bytearray, capacity=2, reset=reset)
    guard = acquire_ok(pool)
    guard.value += b"dirty"
    assert not calls
    guard.release()
    assert len(calls) == 1 and calls[0] == b""
    buf = pool.take()
    assert buf is not None and buf == b""
    buf += b"more"
    pool.put(buf)
    assert len(calls) == 2 and buf == b""


def test_bytearray_clear_as_reset() -> None:
    pool = SyncPool(lambda: bytearray(16), capacity=1, reset=bytearray.clear)
    with pool.try_acquire() as buf:  # type: ignore[union-attr]
        assert len(buf) == 16
        buf.extend(b"x")
    with pool.try_acquire() as again:  # type: ignore[union-attr]
        assert again == b""


def test_raising_reset_drops_counts_and_the_factory_refills_later() -> None:
    made: list[Item] = []

    def factory() -> Item:
        made.append(Item(len(made)))
        return made[-1]

    def reset(item: Item) -> None:
        if item.dirty:
            raise BoomError("cannot clean")

    pool = LocalPool(factory, capacity=2, reset=reset)
    guard = acquire_ok(pool)
    guard.value.dirty = True
    with pytest.raises(BoomError):
        guard.release()
    assert guard.released  # the guard is done, even though reset failed
    guard.release()  # and idempotent
    stats = pool.stats()
    assert stats["dropped"] == 1 and stats["released"] == 0
    assert pool.available == 1  # the dirty value is gone for good
    # The pool keeps working, and the factory restores capacity on demand.
    first, second = acquire_ok(pool), acquire_ok(pool)
    assert len(made) == 3
    assert first.value is made[0] and second.value is made[2]  # made[1] was dropped
    assert pool.try_acquire() is None  # still bounded at 2
    first.release()
    second.release()
    assert pool.available == 2
    assert pool.stats() == {
        "acquired": 3,
        "released": 2,
        "dropped": 1,
        "created": 3,
        "misses": 2,
        "reclaimed": 0,
    }


def test_raising_reset_on_put_drops_and_counts() -> None:
    def reset(item: Item) -> None:
        raise BoomError

    pool = LocalPool(counting_factory(), capacity=1, reset=reset)
    item = pool.take()
    assert item is not None
    with pytest.raises(BoomError):
        pool.put(item)
    assert pool.available == 0 and pool.stats()["dropped"] == 1
    assert pool.take() is not item  # refilled by the factory


def test_raising_reset_inside_with_block_chains_onto_the_body_error() -> None:
    def reset(item: Item) -> None:
        raise BoomError("reset")

    pool = LocalPool(counting_factory(), capacity=1, reset=reset)
    with pytest.raises(BoomError) as info, pool.acquire():
        raise KeyError("body")
    assert isinstance(info.value.__context__, KeyError)
    assert pool.stats()["dropped"] == 1


def test_failing_factory_propagates_and_keeps_the_refill_allowance() -> None:
    fail = [True]

    def factory() -> Item:
        if fail[0]:
            raise BoomError("factory")
        return Item(0)

    pool = LocalPool(factory, capacity=1, prefill=0)
    with pytest.raises(BoomError):
        pool.try_acquire()
    fail[0] = False
    guard = acquire_ok(pool)  # the allowance was given back
    assert guard.value.serial == 0
    guard.release()


# --- guards ------------------------------------------------------------------------------------


def test_double_release_is_idempotent() -> None:
    pool = LocalPool(counting_factory(), capacity=2, reset=clean)
    guard = acquire_ok(pool)
    guard.release()
    guard.release()
    assert pool.available == 2
    assert pool.stats()["released"] == 1


def test_stale_guard_cannot_release_or_read_the_next_users_value() -> None:
    pool = LocalPool(counting_factory(), capacity=1)
    old = acquire_ok(pool)
    item = old.value
    old.release()
    new = acquire_ok(pool)
    assert new.value is item  # same value, new owner
    old.release()
    assert pool.available == 0  # the stale release did not give it back
    with pytest.raises(AttributeError, match="released"):
        _ = old.value.serial
    assert "released" in repr(old.value)
    new.release()
    assert pool.available == 1


def test_context_manager_yields_the_value_and_releases() -> None:
    pool = LocalPool(counting_factory(), capacity=1, reset=clean)
    guard = acquire_ok(pool)
    with guard as item:
        assert isinstance(item, Item) and item is guard.value
        assert pool.available == 0
    assert guard.released and pool.available == 1


def test_context_manager_releases_on_error() -> None:
    pool = LocalPool(counting_factory(), capacity=1)
    with pytest.raises(KeyError), pool.acquire():
        raise KeyError("x")
    assert pool.available == 1


def test_release_inside_with_block_is_fine() -> None:
    pool = LocalPool(counting_factory(), capacity=1)
    guard = pool.acquire()
    with guard:
        guard.release()
        assert pool.available == 1
    assert pool.available == 1
    assert pool.stats()["released"] == 1


def test_assigning_value_returns_the_new_object() -> None:
    pool = LocalPool(counting_factory(), capacity=1)
    guard = pool.acquire()
    replacement = Item(99)
    guard.value = replacement
    guard.release()
    assert pool.take() is replacement


def test_guards_cannot_be_built_copied_or_pickled() -> None:
    with pytest.raises(TypeError):
        Pooled()
    pool = LocalPool(counting_factory(), capacity=1)
    guard = pool.acquire()
    with pytest.raises(TypeError):
        copy.copy(guard)
    with pytest.raises(TypeError):
        copy.deepcopy(guard)
    with pytest.raises(TypeError):
        pickle.dumps(guard)
    guard.release()
    assert pool.available == 1


def test_reprs() -> None:
    pool = LocalPool(counting_factory(), capacity=2)
    assert repr(pool) == "<LocalPool capacity=2 available=2>"
    assert repr(LocalPool(counting_factory())) == "<LocalPool growable available=0>"
    guard = pool.acquire()
    assert repr(guard) == "<Pooled Item from LocalPool>"
    guard.release()
    assert repr(guard) == "<Pooled (released)>"
    assert repr(SyncPool(counting_factory(), capacity=3)) == "<SyncPool capacity=3 available=3>"


# --- garbage collection of unreleased guards ---------------------------------------------------


def test_dropped_guard_returns_its_value() -> None:
    pool = LocalPool(counting_factory(), capacity=2, reset=clean, debug=False)
    guard = acquire_ok(pool)
    guard.value.dirty = True
    item = guard.value
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del guard
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert pool.available == 2
    assert not item.dirty  # reset ran on the way back
    assert pool.stats()["reclaimed"] == 1 and pool.stats()["released"] == 1
    assert pool.take() is item


def test_guard_in_a_garbage_cycle_returns_its_value_on_collect() -> None:
    pool = SyncPool(counting_factory(), capacity=1, debug=False)

    class Holder:
        pass

    holder = Holder()
    holder.guard = acquire_ok(pool)  # type: ignore[attr-defined]
    holder.me = holder  # type: ignore[attr-defined]
    del holder
    gc.collect()
    assert pool.available == 1 and pool.stats()["reclaimed"] == 1


def test_reset_failing_on_a_collected_guard_is_reported_and_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def reset(item: Item) -> None:
        if item.dirty:
            raise BoomError("dirty")

    seen: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: seen.append(info.exc_value))
    pool = LocalPool(counting_factory(), capacity=1, reset=reset, debug=False)
    guard = acquire_ok(pool)
    guard.value.dirty = True
    del guard
    gc.collect()
    assert len(seen) == 1 and isinstance(seen[0], BoomError)
    stats = pool.stats()
    assert (stats["reclaimed"], stats["dropped"], pool.available) == (1, 1, 0)
    refill = acquire_ok(pool)  # the factory replaces the dropped value
    assert refill.value.serial == 1
    refill.release()


def test_dropped_guard_warns_in_debug_mode() -> None:
    pool = LocalPool(counting_factory(), capacity=1, debug=True)
    assert pool.debug
    guard = acquire_ok(pool)
    with pytest.warns(ResourceWarning, match="without release"):
        del guard
        gc.collect()
    assert pool.available == 1


def test_released_guard_collected_silently_in_debug_mode() -> None:
    pool = LocalPool(counting_factory(), capacity=1, debug=True)
    guard = acquire_ok(pool)
    guard.release()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del guard
        gc.collect()
    assert not caught
    assert pool.stats()["reclaimed"] == 0


def test_debug_defaults_to_dev_mode() -> None:
    assert LocalPool(counting_factory()).debug is sys.flags.dev_mode
    code = (
        "from warmline.objpool import LocalPool, SyncPool;"
        "print(LocalPool(list).debug, SyncPool(list, capacity=1).debug)"
    )
    out = subprocess.run(
        [sys.executable, "-X", "dev", "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert out.split() == ["True", "True"]


@pytest.mark.parametrize("make", [LocalPool, SyncPool])
def test_released_guard_sheds_its_finalizer_on_gil_builds(make: Callable[..., Any]) -> None:
    # The safety net is for unreleased guards only: on a GIL build a released
    # guard no longer runs __del__ when it dies (the ~45 ns that kept SyncPool
    # under 5x queue.LifoQueue), and is still a Pooled guard in every respect.
    pool = make(counting_factory(), capacity=2, debug=False)
    guard = acquire_ok(pool)
    assert hasattr(type(guard), "__del__")  # held: the safety net is armed
    guard.release()
    assert objpool._SWAP_CLASS_ON_RELEASE is not bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    if objpool._SWAP_CLASS_ON_RELEASE:
        assert not hasattr(type(guard), "__del__")
    assert isinstance(guard, Pooled) and guard.released
    guard.release()  # still idempotent
    with pytest.raises(AttributeError, match="released"):
        guard.value.serial  # noqa: B018 - the read itself must fail
    assert pool.available == 2 and pool.stats()["reclaimed"] == 0


def test_without_class_swap_guards_keep_their_finalizer(monkeypatch: pytest.MonkeyPatch) -> None:
    # What a free-threaded build does: no __class__ assignment, __del__ stays
    # and finds the guard released.
    monkeypatch.setattr(objpool, "_SWAP_CLASS_ON_RELEASE", False)
    pool = SyncPool(counting_factory(), capacity=1, debug=True)
    guard = acquire_ok(pool)
    kind = type(guard)
    guard.release()
    assert type(guard) is kind and hasattr(kind, "__del__")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del guard
        gc.collect()
    assert not caught and pool.stats()["reclaimed"] == 0
    dropped = acquire_ok(pool)
    with pytest.warns(ResourceWarning):
        del dropped
    assert pool.available == 1 and pool.stats()["reclaimed"] == 1


def test_reset_failing_still_sheds_the_finalizer() -> None:
    def boom(item: Item) -> None:
        raise BoomError(item)

    pool = SyncPool(counting_factory(), capacity=1, reset=boom, debug=False)
    guard = acquire_ok(pool)
    with pytest.raises(BoomError):
        guard.release()
    assert guard.released
    if objpool._SWAP_CLASS_ON_RELEASE:
        assert not hasattr(type(guard), "__del__")
    del guard
    gc.collect()
    assert pool.stats()["reclaimed"] == 0 and pool.stats()["dropped"] == 1


def test_reclaim_false_loses_a_forgotten_value() -> None:
    pool = LocalPool(counting_factory(), capacity=2, reclaim=False, debug=False)
    guard = acquire_ok(pool)
    del guard
    gc.collect()
    assert pool.available == 1  # gone for good: the documented trade
    assert pool.stats()["reclaimed"] == 0
    kept = acquire_ok(pool)
    kept.release()  # explicit release works the same
    assert pool.available == 1


def test_reclaim_false_still_reclaims_and_warns_in_debug_mode() -> None:
    pool = SyncPool(counting_factory(), capacity=1, reclaim=False, debug=True)
    guard = acquire_ok(pool)
    with pytest.warns(ResourceWarning):
        del guard
    assert pool.available == 1


# --- stats ---------------------------------------------------------------------------------------


def test_stats_follow_a_known_sequence() -> None:
    pool = LocalPool(counting_factory(), capacity=3, reset=clean)
    assert pool.stats() == {
        "acquired": 0,
        "released": 0,
        "dropped": 0,
        "created": 3,
        "misses": 0,
        "reclaimed": 0,
    }
    guards = [acquire_ok(pool) for _ in range(3)]
    assert pool.try_acquire() is None
    guards[0].release()
    taken = pool.take()
    assert taken is not None
    pool.put(taken)
    guards[1].release()
    assert pool.stats() == {
        "acquired": 4,
        "released": 3,
        "dropped": 0,
        "created": 3,
        "misses": 1,
        "reclaimed": 0,
    }
    guards[2].release()


# --- a model-based check of LocalPool ----------------------------------------------------------

OPS = st.lists(
    st.sampled_from(["acquire", "release", "release_again", "take", "put", "drop_guard", "dirty"]),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops=OPS, capacity=st.integers(1, 4))
def test_local_pool_matches_a_model(ops: list[str], capacity: int) -> None:
    """LIFO order, bounds, drops and refills agree with a plain-list model."""

    def reset(item: Item) -> None:
        if item.dirty:
            raise BoomError

    pool = LocalPool(counting_factory(), capacity=capacity, reset=reset, debug=False)
    model: list[Item] = list(pool._stack)  # the idle stack, top last
    live = capacity  # values in existence: idle + out
    guards: list[Pooled[Item]] = []
    released: list[Pooled[Item]] = []
    taken: list[Item] = []
    for op in ops:
        if op == "acquire":
            guard = pool.try_acquire()
            if model:
                assert guard is not None and guard.value is model.pop()
                guards.append(guard)
            elif live < capacity:
                assert guard is not None  # refilled by the factory
                live += 1
                guards.append(guard)
            else:
                assert guard is None
        elif op == "release" and guards:
            guard = guards.pop(0)
            item = guard.value
            if item.dirty:
                with pytest.raises(BoomError):
                    guard.release()
                live -= 1
            else:
                guard.release()
                model.append(item)
            released.append(guard)
        elif op == "release_again" and released:
            released[-1].release()  # a stale release never changes anything
        elif op == "take":
            maybe = pool.take()
            if model:
                assert maybe is model.pop()
                taken.append(maybe)
            elif live < capacity:
                assert maybe is not None
                live += 1
                taken.append(maybe)
            else:
                assert maybe is None
        elif op == "put" and taken:
            item = taken.pop()
            item.dirty = False
            pool.put(item)
            model.append(item)
        elif op == "drop_guard" and guards:
            guard = guards.pop()
            item = guard.value
            if item.dirty:
                item.dirty = False  # keep the unraisable hook out of it
            del guard
            gc.collect()
            model.append(item)
        elif op == "dirty" and guards:
            guards[-1].value.dirty = True
        assert [id(v) for v in pool._stack] == [id(v) for v in model]
        assert pool.available + len(guards) + len(taken) == live
    for guard in guards:  # leave nothing for __del__ after the example
        guard.value.dirty = False
        guard.release()


# --- threads --------------------------------------------------------------------------------------


def run_threads(target: Callable[[int], None], count: int) -> None:
    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"


def test_reset_runs_on_the_releasing_thread() -> None:
    where: list[int] = []
    pool = SyncPool(
        counting_factory(), capacity=1, reset=lambda _: where.append(threading.get_ident())
    )
    guard = acquire_ok(pool)
    worker_ident: list[int] = []

    def work(_: int) -> None:
        worker_ident.append(threading.get_ident())
        guard.release()

    run_threads(work, 1)
    assert where == worker_ident and where[0] != threading.get_ident()
    assert pool.available == 1


def test_guards_released_from_8_threads_lose_and_duplicate_nothing() -> None:
    """One acquirer, eight releasing threads (the seed's SPMC fan-out)."""
    capacity, rounds, workers = 32, 6_000, 8
    pool = SyncPool(bytearray, capacity=capacity, reset=bytearray.clear)
    originals = {id(v): v for v in pool._stack}
    in_use: set[int] = set()
    errors: list[str] = []
    inboxes: list[queue.SimpleQueue[Pooled[bytearray] | None]] = [
        queue.SimpleQueue() for _ in range(workers)
    ]

    def work(i: int) -> None:
        inbox = inboxes[i]
        while (guard := inbox.get(timeout=JOIN_TIMEOUT)) is not None:
            value = guard.value
            if bytes(value) != b"%d" % id(value):
                errors.append("value changed while held")
            in_use.discard(id(value))  # before release: the acquirer may pop it right after
            guard.release()

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(workers)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + JOIN_TIMEOUT
    sent = 0
    while sent < rounds and time.monotonic() < deadline:
        guard = pool.try_acquire()
        if guard is None:
            time.sleep(0)  # all out: let the workers run
            continue
        value = guard.value
        if id(value) in in_use or id(value) not in originals or value:
            errors.append(f"bad value handed out: in use={id(value) in in_use}, {value!r}")
        in_use.add(id(value))
        value += b"%d" % id(value)
        inboxes[sent % workers].put(guard)
        sent += 1
    for inbox in inboxes:
        inbox.put(None)
    for t in threads:
        t.join(JOIN_TIMEOUT)
    assert sent == rounds
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert sorted(id(v) for v in pool._stack) == sorted(originals)  # nothing lost or doubled
    assert all(v == b"" for v in pool._stack)
    stats = pool.stats()
    assert stats["acquired"] == stats["released"] == rounds
    assert stats["dropped"] == stats["reclaimed"] == 0


def test_8_threads_acquiring_and_releasing_never_share_a_value() -> None:
    capacity, rounds, workers = 6, 2_000, 8  # fewer values than threads: contention
    pool = SyncPool(bytearray, capacity=capacity, reset=bytearray.clear)
    originals = {id(v) for v in pool._stack}
    owner: dict[int, int] = {}
    errors: list[str] = []
    done = [0] * workers

    def work(i: int) -> None:
        mark = b"%d" % i
        deadline = time.monotonic() + JOIN_TIMEOUT
        while done[i] < rounds and time.monotonic() < deadline:
            guard = pool.try_acquire()
            if guard is None:
                time.sleep(0)
                continue
            value = guard.value
            if owner.setdefault(id(value), i) != i:  # setdefault is atomic
                errors.append(f"value {id(value)} held by {owner[id(value)]} and {i}")
            if value or id(value) not in originals:
                errors.append(f"not reset or foreign: {value!r}")
            value += mark
            if done[i] % 7 == 0:
                time.sleep(0)  # give others a chance to collide
            if value != mark:
                errors.append(f"thread {i} saw {value!r}")
            del owner[id(value)]
            guard.release()
            done[i] += 1

    run_threads(work, workers)
    assert errors == []
    assert done == [rounds] * workers
    assert sorted(id(v) for v in pool._stack) == sorted(originals)


def test_take_put_from_many_threads() -> None:
    capacity, rounds, workers = 4, 1_000, 8
    pool = SyncPool(counting_factory(), capacity=capacity, reset=clean)
    originals = {id(v) for v in pool._stack}
    seen: set[int] = set()

    def work(_: int) -> None:
        for _ in range(rounds):
            item = pool.take()
            if item is None:
                time.sleep(0)
                continue
            seen.add(id(item))
            item.dirty = True
            pool.put(item)

    run_threads(work, workers)
    assert sorted(id(v) for v in pool._stack) == sorted(originals)
    assert seen <= originals
    assert not any(v.dirty for v in pool._stack)


def test_reset_failing_on_a_worker_thread_is_refilled_on_the_acquirer() -> None:
    def reset(item: Item) -> None:
        if item.dirty:
            raise BoomError

    pool = SyncPool(counting_factory(), capacity=2, reset=reset)
    guard = acquire_ok(pool)
    guard.value.dirty = True
    raised: list[BaseException] = []

    def work(_: int) -> None:
        try:
            guard.release()
        except BoomError as exc:
            raised.append(exc)

    run_threads(work, 1)
    assert len(raised) == 1
    assert pool.available == 1 and pool.stats()["dropped"] == 1
    held = [acquire_ok(pool), acquire_ok(pool)]
    assert pool.try_acquire() is None
    assert pool.stats()["created"] == 3
    for g in held:
        g.release()
    assert pool.available == 2


def test_guard_dropped_on_another_thread_comes_back() -> None:
    pool = SyncPool(counting_factory(), capacity=1, debug=False)
    box: list[Pooled[Item]] = [acquire_ok(pool)]

    def work(_: int) -> None:
        box.clear()  # the last reference dies here

    run_threads(work, 1)
    gc.collect()
    assert pool.available == 1 and pool.stats()["reclaimed"] == 1


@pytest.fixture(autouse=True)
def _no_stray_guards() -> Iterator[None]:
    """Collect between tests, so a guard left by one test never fires in another."""
    yield
    gc.collect()
