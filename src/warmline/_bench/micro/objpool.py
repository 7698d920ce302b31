"""Object pools: acquire+release pairs, warmline against what Python code pools with.

    uv run python -m benchmarks.bench_objpool [--quick]

One pair = take a ``bytearray(4096)`` out, give it back with ``clear()`` as the
reset (every contender runs the same reset). Contenders:

  * ``LocalPool`` / ``SyncPool``: ``pool.try_acquire()`` then ``guard.release()``;
    also ``LocalPool`` as a ``with`` block, with ``reclaim=False`` (no
    ``__del__`` safety net), and through ``take()``/``put()``.
  * ``queue.LifoQueue``: ``get_nowait``/``put_nowait``, what urllib3's pools use.
  * ``collections.deque`` and ``list + Lock``: by hand, ``pop``/``append``
    (the lock variant is what a locked SyncPool would cost).
  * ``asyncio.Queue``: ``get_nowait``/``put_nowait`` (single thread only: it is
    not thread-safe).
  * ``list by hand``: ``pop``/``clear``/``append`` inline, the floor.

Modes:

  * ``single-thread``: each contender's idiomatic loop, methods pre-bound.
  * ``4 releasing threads``: the main thread acquires and hands values to 4
    worker threads in batches of 32 through ``queue.SimpleQueue``; workers
    release them (the seed's "one acquirer, many returners" case). Every
    contender runs in the same harness, through one ``acquire() -> item|None``
    and one ``release(item)`` function each; ``handoff only`` is the harness
    with no pool at all, so the difference is the pool's share.
  * ``4 acquiring threads``: 4 threads each acquire and release in a loop,
    from a pool trimmed to 8 values (SyncPool's multi-acquirer case).

Interleaved rounds (a load spike hits everyone alike), timed with
``time.perf_counter_ns``; the figure is the fastest round, the median is shown
beside it. ``vs LifoQueue`` is how many times faster than ``queue.LifoQueue``
in the same mode. Quick: < 5 s; full: < 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import queue
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from warmline.objpool import LocalPool, Pooled, SyncPool

SIZE = 4096
CAPACITY = 1024
WORKERS = 4
BATCH = 32
Timed = Callable[[int], int]  # runs n pairs, returns elapsed ns
Acquire = Callable[[], Any]  # an item, or None when the pool is empty
Release = Callable[[Any], None]


def _buffer() -> bytearray:
    return bytearray(SIZE)


# --- single thread: each contender's own idiomatic loop -----------------------------------------


def _guard_loop(pool: LocalPool[bytearray] | SyncPool[bytearray]) -> Timed:
    def timed(n: int) -> int:
        acquire = pool.try_acquire
        start = time.perf_counter_ns()
        for _ in range(n):
            acquire().release()  # type: ignore[union-attr]
        return time.perf_counter_ns() - start

    return timed


def _with_loop(pool: LocalPool[bytearray]) -> Timed:
    def timed(n: int) -> int:
        acquire = pool.try_acquire
        start = time.perf_counter_ns()
        for _ in range(n):
            with acquire():  # type: ignore[union-attr]
                pass
        return time.perf_counter_ns() - start

    return timed


def _take_put_loop(pool: LocalPool[bytearray]) -> Timed:
    def timed(n: int) -> int:
        take, put = pool.take, pool.put
        start = time.perf_counter_ns()
        for _ in range(n):
            put(take())  # type: ignore[arg-type]
        return time.perf_counter_ns() - start

    return timed


def _get_put_loop(get: Callable[[], bytearray], put: Callable[[bytearray], None]) -> Timed:
    """LifoQueue, asyncio.Queue, deque: take, clear, give back."""

    def timed(n: int) -> int:
        start = time.perf_counter_ns()
        for _ in range(n):
            buf = get()
            buf.clear()
            put(buf)
        return time.perf_counter_ns() - start

    return timed


def _locked_list_loop() -> Timed:
    stack = [_buffer() for _ in range(CAPACITY)]
    lock = threading.Lock()

    def timed(n: int) -> int:
        pop, append = stack.pop, stack.append
        start = time.perf_counter_ns()
        for _ in range(n):
            with lock:
                buf = pop()
            buf.clear()
            with lock:
                append(buf)
        return time.perf_counter_ns() - start

    return timed


def _lifo_queue() -> queue.LifoQueue[bytearray]:
    q: queue.LifoQueue[bytearray] = queue.LifoQueue()
    for _ in range(CAPACITY):
        q.put_nowait(_buffer())
    return q


def _asyncio_queue() -> asyncio.Queue[bytearray]:
    # get_nowait/put_nowait need no running loop (3.10+ binds the loop lazily).
    q: asyncio.Queue[bytearray] = asyncio.Queue()
    for _ in range(CAPACITY):
        q.put_nowait(_buffer())
    return q


def _single_thread() -> dict[str, Timed]:
    clear = bytearray.clear
    lifo, aq = _lifo_queue(), _asyncio_queue()
    dq = collections.deque(_buffer() for _ in range(CAPACITY))
    floor = [_buffer() for _ in range(CAPACITY)]
    return {
        "LocalPool": _guard_loop(LocalPool(_buffer, capacity=CAPACITY, reset=clear)),
        "LocalPool with-block": _with_loop(LocalPool(_buffer, capacity=CAPACITY, reset=clear)),
        "LocalPool reclaim=False": _guard_loop(
            LocalPool(_buffer, capacity=CAPACITY, reset=clear, reclaim=False)
        ),
        "LocalPool take/put": _take_put_loop(LocalPool(_buffer, capacity=CAPACITY, reset=clear)),
        "SyncPool": _guard_loop(SyncPool(_buffer, capacity=CAPACITY, reset=clear)),
        "queue.LifoQueue": _get_put_loop(lifo.get_nowait, lifo.put_nowait),
        "asyncio.Queue": _get_put_loop(aq.get_nowait, aq.put_nowait),
        "collections.deque": _get_put_loop(dq.pop, dq.append),
        "list + Lock": _locked_list_loop(),
        "list by hand (floor)": _get_put_loop(floor.pop, floor.append),
    }


# --- threads: one harness, every contender through acquire()/release() -------------------------


def _pool_ops(pool: SyncPool[bytearray]) -> tuple[Acquire, Release]:
    return pool.try_acquire, Pooled.release


def _lifo_ops() -> tuple[Acquire, Release]:
    q = _lifo_queue()
    get, put, empty = q.get_nowait, q.put_nowait, queue.Empty

    def acquire() -> bytearray | None:
        try:
            return get()
        except empty:
            return None

    def release(buf: bytearray) -> None:
        buf.clear()
        put(buf)

    return acquire, release


def _deque_ops() -> tuple[Acquire, Release]:
    dq = collections.deque(_buffer() for _ in range(CAPACITY))
    pop, append = dq.pop, dq.append

    def acquire() -> bytearray | None:
        try:
            return pop()
        except IndexError:
            return None

    def release(buf: bytearray) -> None:
        buf.clear()
        append(buf)

    return acquire, release


def _locked_list_ops() -> tuple[Acquire, Release]:
    stack = [_buffer() for _ in range(CAPACITY)]
    lock = threading.Lock()

    def acquire() -> bytearray | None:
        with lock:
            return stack.pop() if stack else None

    def release(buf: bytearray) -> None:
        buf.clear()
        with lock:
            stack.append(buf)

    return acquire, release


def _handoff_ops() -> tuple[Acquire, Release]:
    """No pool: the harness alone (values are handed round, never exhausted)."""
    bufs = [_buffer() for _ in range(CAPACITY)]
    index = [0]

    def acquire() -> bytearray:
        i = index[0] = (index[0] + 1) % CAPACITY
        return bufs[i]

    return acquire, bytearray.clear


def _releasing_threads(acquire: Acquire, release: Release) -> Timed:
    def timed(n: int) -> int:
        inboxes: list[queue.SimpleQueue[list[Any] | None]] = [
            queue.SimpleQueue() for _ in range(WORKERS)
        ]

        def work(inbox: queue.SimpleQueue[list[Any] | None]) -> None:
            while (batch := inbox.get()) is not None:
                for item in batch:
                    release(item)

        threads = [threading.Thread(target=work, args=(box,), daemon=True) for box in inboxes]
        for t in threads:
            t.start()
        start = time.perf_counter_ns()
        sent = turn = 0
        while sent < n:
            batch: list[Any] = []
            while len(batch) < BATCH:
                item = acquire()
                if item is None:  # all out: send what we have, or let workers run
                    if batch:
                        break
                    time.sleep(0)
                    continue
                batch.append(item)
            inboxes[turn].put(batch)
            turn = (turn + 1) % WORKERS
            sent += len(batch)
        for box in inboxes:
            box.put(None)
        for t in threads:
            t.join()
        return time.perf_counter_ns() - start

    return timed


def _acquiring_threads(make: Callable[[], tuple[Acquire, Release]]) -> Timed:
    def timed(n: int) -> int:
        acquire, release = make()
        per_thread = n // WORKERS
        ready = threading.Barrier(WORKERS + 1)  # thread start-up stays out of the timing

        def work() -> None:
            ready.wait()
            done = 0
            while done < per_thread:
                item = acquire()
                if item is None:
                    time.sleep(0)
                    continue
                release(item)
                done += 1

        threads = [threading.Thread(target=work, daemon=True) for _ in range(WORKERS)]
        for t in threads:
            t.start()
        ready.wait()
        start = time.perf_counter_ns()
        for t in threads:
            t.join()
        return time.perf_counter_ns() - start

    return timed


def _small_sync_pool() -> tuple[Acquire, Release]:
    return _pool_ops(SyncPool(_buffer, capacity=8, reset=bytearray.clear))


def _small(make: Callable[[], tuple[Acquire, Release]]) -> Callable[[], tuple[Acquire, Release]]:
    """The same contender, trimmed to 8 values for the contention mode."""

    def trimmed() -> tuple[Acquire, Release]:
        acquire, release = make()
        spare = []
        while (item := acquire()) is not None:
            spare.append(item)
        for item in spare[:8]:
            release(item)
        return acquire, release

    return trimmed


def _threaded() -> dict[tuple[str, str], Timed]:
    releasing = "4 releasing threads"
    acquiring = "4 acquiring threads"
    clear = bytearray.clear
    return {
        (releasing, "SyncPool"): _releasing_threads(
            *_pool_ops(SyncPool(_buffer, capacity=CAPACITY, reset=clear))
        ),
        (releasing, "queue.LifoQueue"): _releasing_threads(*_lifo_ops()),
        (releasing, "collections.deque"): _releasing_threads(*_deque_ops()),
        (releasing, "list + Lock"): _releasing_threads(*_locked_list_ops()),
        (releasing, "handoff only (no pool)"): _releasing_threads(*_handoff_ops()),
        (acquiring, "SyncPool"): _acquiring_threads(_small_sync_pool),
        (acquiring, "queue.LifoQueue"): _acquiring_threads(_small(_lifo_ops)),
        (acquiring, "collections.deque"): _acquiring_threads(_small(_deque_ops)),
        (acquiring, "list + Lock"): _acquiring_threads(_small(_locked_list_ops)),
    }


# --- running and reporting -----------------------------------------------------------------------


def _calibrate(timed: Timed, budget_ns: float) -> int:
    """Pairs per round so that a round takes about ``budget_ns`` (also warms up)."""
    n = 500
    while (elapsed := timed(n)) < budget_ns / 4:
        n *= 4
    return max(500, int(n * budget_ns / elapsed))


def _sample(
    timers: dict[tuple[str, str], tuple[Timed, int]], rounds: int
) -> dict[Any, list[float]]:
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in timers}
    for _ in range(rounds):  # interleaved, so load spikes hit everyone alike
        for key, (timed, n) in timers.items():
            samples[key].append(timed(n) / n)
    return samples


def run(quick: bool = False) -> list[dict[str, object]]:
    """Time every contender in every mode.

    Returns:
        One row per (mode, contender): ``name``, ``mode``, ``ns_per_pair``
        (fastest round), ``median_ns_per_pair``, ``pairs_per_s`` and
        ``vs_lifoqueue`` (> 1: that many times faster than ``queue.LifoQueue``).
    """
    # Short single-thread rounds (~2 ms), many of them: on a loaded machine the
    # fastest is the one no other process interrupted.
    budget_ns, single_rounds = (1e6, 20) if quick else (2e6, 100)
    thread_n, thread_rounds = (8_000, 3) if quick else (20_000, 15)
    single = {
        ("single-thread", name): (t, _calibrate(t, budget_ns))
        for name, t in _single_thread().items()
    }
    threaded = {key: (t, thread_n) for key, t in _threaded().items()}
    samples = _sample(single, single_rounds) | _sample(threaded, thread_rounds)
    rows: list[dict[str, object]] = []
    for (mode, name), values in samples.items():
        best = min(values)
        lifo = min(samples[mode, "queue.LifoQueue"])
        rows.append(
            {
                "name": name,
                "mode": mode,
                "ns_per_pair": round(best, 1),
                "median_ns_per_pair": round(statistics.median(values), 1),
                "pairs_per_s": round(1e9 / best),
                "vs_lifoqueue": round(lifo / best, 2),
            }
        )
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    header = (
        f"{'mode':<20} {'contender':<24} {'ns/pair':>9} {'median':>9} {'pairs/s':>11} "
        f"{'vs LifoQueue':>13}"
    )
    lines = [
        f"{row['mode']:<20} {row['name']:<24} {row['ns_per_pair']:>9.0f} "
        f"{row['median_ns_per_pair']:>9.0f} {row['pairs_per_s']:>11,} "
        f"{row['vs_lifoqueue']:>12.1f}x"
        for row in rows
    ]
    return "\n".join([header, "-" * len(header), *lines])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (< 5 s)")
    args = parser.parse_args(argv)
    print(_table(run(quick=args.quick)))


if __name__ == "__main__":
    main()
