"""Regression tests for issue 9: what a user hits when misusing or stressing a pool.

Every test drives the public API only (``ClientPool``, ``AtomicClientPool``,
their leases, ``stats()`` and the error classes), so it holds for any
implementation of the two shells. Where an item applies to both pools, one
test body runs against both (``flavour``), through
:class:`tests.faultproxy.PoolDriver`: the asyncio pool lives on its own loop
in a thread, and a blocking call of the body runs there.

The issue's item numbers are in each test's docstring. Bounds are hang checks,
never speed checks: a call that has not ended long after it should have is a
failure, a slow one is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from warmline import (
    AtomicClientPool,
    AtomicClientSlot,
    Backoff,
    ClientPool,
    ClientSlot,
    ConnectTimeout,
    InvalidRequest,
    PoolClosed,
    PoolError,
    PoolTimeout,
    ReadTimeout,
    Response,
    WarmlineError,
    WriteTimeout,
)
from warmline._pool import Plan, PoolCore, Waiter
from warmline._server.launch import Server

from .faultproxy import FLAVOURS, FaultProxy, Flavour, PoolDriver, blackhole_listener
from .rawserver import RawServer
from .scripted import HANG_S, Recorder, background, idle_close_handler, outcome, run

FAST = Backoff(initial=0.02, maximum=0.2, multiplier=2.0, jitter=0.2)
CLOSE_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> Flavour:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    yield
    gc.collect()  # a leaked socket or transport is reported by the test that leaked it


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder() as server:
        yield server


@contextlib.contextmanager
def driven(flavour: Flavour, url: str, **options: Any) -> Iterator[PoolDriver]:
    options.setdefault("connect_timeout", 2.0)
    options.setdefault("reconnect", FAST)
    with PoolDriver(flavour, url, **options) as driver:
        yield driver


def on_pool(driver: PoolDriver, fn: Any, bound: float = HANG_S) -> Any:
    """Run a plain (non-async) pool method where it belongs: the pool's loop or a thread."""

    async def call() -> Any:
        return fn()

    return run(driver, call if driver.flavour == "aio" else fn, bound)


def close_bounded(driver: PoolDriver, bound: float = 5.0) -> None:
    """``driver.close()`` (pool and loop); AssertionError if it does not return in time."""
    done = threading.Event()

    def close() -> None:
        driver.close()
        done.set()

    threading.Thread(target=close, name="misuse-close", daemon=True).start()
    assert done.wait(bound), f"close() did not return within {bound} s"


def wait_until(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())


# -- item 1: a request in flight when its slot is released -----------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("request_timeout", [None, 0.5])
def test_release_mid_request_ends_the_request(
    flavour: Flavour, recorder: Recorder, request_timeout: float | None
) -> None:
    """Item 1: the request fails (WarmlineError) instead of hanging; the slot stays sound.

    asyncio: the lease is released on the loop while a task's request is in
    flight. Threads: the lease is released by another thread mid-request.
    """
    with driven(flavour, recorder.url, connections=1) as driver:
        lease = driver.acquire(timeout=2)
        pending = background(driver, lambda: lease.lease.get("/slow", timeout=request_timeout))
        assert recorder.slow_seen.wait(5), "the request never reached the server"
        lease.release()
        result = outcome(pending, bound=5.0)
        assert isinstance(result, WarmlineError), result
        # The released slot is sound: the next caller gets its own response,
        # not "start() called while a response is still outstanding".
        after = run(driver, lambda: driver.pool.get("/", timeout=5, acquire_timeout=5))
        assert isinstance(after, Response), after
        assert after.content == b"ok"


@pytest.mark.timeout(30)
def test_second_concurrent_request_on_one_lease_is_refused(
    flavour: Flavour, recorder: Recorder
) -> None:
    """Item 1: two requests at once on one slot: the second gets PoolError at once."""
    with driven(flavour, recorder.url, connections=1) as driver:
        lease = driver.acquire(timeout=2)
        first = background(driver, lambda: lease.lease.get("/slow", timeout=5))
        assert recorder.slow_seen.wait(5), "the first request never reached the server"
        second = run(driver, lambda: lease.lease.get("/", timeout=5), bound=3.0)
        assert isinstance(second, PoolError), second
        lease.release()
        assert isinstance(outcome(first, bound=8.0), WarmlineError)
        after = run(driver, lambda: driver.pool.get("/", timeout=5, acquire_timeout=5))
        assert isinstance(after, Response), after


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_gathered_requests_on_one_slot(granian: Server) -> None:
    """Item 1 (the issue's reproducer): ``gather`` of two requests on one slot.

    The first gets its own response; the second is refused with PoolError
    instead of closing the first's connection under it (which hung it).
    """
    pool = await ClientPool.connect(granian.url, connections=1, reconnect=FAST)
    try:
        async with pool.acquire(timeout=2) as slot:
            both = asyncio.gather(
                slot.get("/echo", params={"n": "1"}, timeout=2),
                slot.get("/echo", params={"n": "2"}, timeout=2),
                return_exceptions=True,
            )
            try:
                first, second = await asyncio.wait_for(both, 5)
            except TimeoutError:
                pytest.fail("hang: gathered requests on one slot did not end within 5 s")
        assert isinstance(first, Response), first
        assert first.json()["query"] == "n=1"
        assert isinstance(second, PoolError), second
        r = await asyncio.wait_for(pool.get("/echo", params={"n": "3"}, timeout=2), 5)
        assert r.json()["query"] == "n=3"
    finally:
        await pool.close()


# -- item 5: loop affinity -----------------------------------------------------------


@pytest.mark.timeout(30)
def test_pool_used_from_another_loop_raises_pool_error(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 5: a ClientPool used from a second event loop says so with PoolError.

    No bare RuntimeError, no slot handed out that can never work, no slot left
    "in use" for good, no "Future exception was never retrieved".
    """
    with driven("aio", recorder.url, connections=2) as driver:
        pool = driver.pool

        async def elsewhere() -> dict[str, Any]:
            seen: dict[str, Any] = {}
            for name, call in (
                ("get", lambda: pool.get("/", timeout=2, acquire_timeout=2)),
                ("acquire", lambda: pool.acquire(timeout=2)),
            ):
                try:
                    seen[name] = await asyncio.wait_for(call(), 5)
                except Exception as exc:
                    seen[name] = exc
            try:
                slot = pool.try_acquire()
                # A slot handed out here must at least refuse to work.
                seen["try_acquire"] = (
                    slot if slot is None else await asyncio.wait_for(slot.get("/", timeout=2), 5)
                )
            except Exception as exc:
                seen["try_acquire"] = exc
            return seen

        seen = asyncio.run(elsewhere())
        for name in ("get", "acquire", "try_acquire"):
            assert isinstance(seen[name], PoolError), (name, seen[name])
            assert "loop" in str(seen[name]).lower(), (name, seen[name])
        # Back on its own loop, the pool is whole.
        assert driver.wait_for(lambda: driver.available == 2, timeout=5)
        assert driver.get("/", timeout=5).content == b"ok"
    gc.collect()
    assert "never retrieved" not in caplog.text


def _run_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` under ``python -X dev -W error`` (bounded), from the source tree."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    return subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", textwrap.dedent(script), *args],
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
        env=env,
    )


_AFTER_RUN = """
    import asyncio, sys
    import warmline

    async def make():
        return await warmline.ClientPool.connect(sys.argv[1], connections=1)

    pool = asyncio.run(make())

    async def use():
        try:
            await asyncio.wait_for(pool.get("/", timeout=2, acquire_timeout=2), 5)
        except warmline.PoolError as exc:
            print("get: PoolError:", exc)
        except BaseException as exc:
            print("get: other:", type(exc).__name__, exc)
        else:
            print("get: a response")
        try:
            slot = pool.try_acquire()
            got = slot if slot is None else await asyncio.wait_for(slot.get("/", timeout=2), 5)
        except warmline.PoolError as exc:
            print("try_acquire: PoolError:", exc)
        except BaseException as exc:
            print("try_acquire: other:", type(exc).__name__, exc)
        else:
            print("try_acquire: no error:", got)

    asyncio.run(use())
    print("end", flush=True)
"""


@pytest.mark.timeout(40)
def test_pool_used_after_its_loop_ended_raises_pool_error(recorder: Recorder) -> None:
    """Item 5: after its ``asyncio.run()`` has ended, the pool raises PoolError naming the loop."""
    done = _run_script(_AFTER_RUN, recorder.url)
    lines = done.stdout.splitlines()
    assert "end" in lines, done.stderr
    for name in ("get", "try_acquire"):
        line = next(x for x in lines if x.startswith(f"{name}:"))
        assert line.startswith(f"{name}: PoolError:"), line
        assert "loop" in line.lower(), line
    assert "never retrieved" not in done.stderr
    assert "never awaited" not in done.stderr


_LEASE_AFTER_RUN = """
    import asyncio, gc, sys
    import warmline

    url, variant = sys.argv[1], sys.argv[2]
    held = []

    async def main():
        pool = await warmline.ClientPool.connect(url, connections=1)
        lease = await pool.acquire(timeout=5)
        if variant == "served_close":
            await lease.get("/", timeout=5)  # Connection: close: the slot must heal
        held.append(lease)
        if variant == "pool_closed":
            await pool.close()

    asyncio.run(main())
    held.clear()  # the lease is collected here, its loop long gone
    gc.collect()
    print("end", flush=True)
"""


@pytest.mark.timeout(40)
@pytest.mark.parametrize("variant", ["served_close", "idle", "pool_closed"])
def test_lease_dropped_after_its_loop_ended_is_quiet(variant: str) -> None:
    """Items 5, 6, 13: a lease collected after ``asyncio.run()`` just closes its connection.

    Under ``python -X dev -W error``: no "coroutine ... was never awaited"
    (the issue's RuntimeWarning from ClientSlot.__del__), no exception from
    the closed loop, and no socket or transport left unclosed.
    """
    response = CLOSE_RESPONSE if variant == "served_close" else None
    with Recorder(*(() if response is None else (response,))) as server:
        done = _run_script(_LEASE_AFTER_RUN, server.url, variant)
    assert done.returncode == 0, done.stderr
    assert "end" in done.stdout.splitlines(), done.stderr
    for bad in (
        "RuntimeWarning",
        "never awaited",
        "never retrieved",
        "unclosed transport",
        "unclosed <socket",
        "Event loop is closed",
    ):
        assert bad not in done.stderr, done.stderr


# -- item 6: close() closes every connection -----------------------------------------


@pytest.mark.timeout(30)
def test_close_closes_the_connection_of_a_held_lease(flavour: Flavour, recorder: Recorder) -> None:
    """Item 6: ``close()`` closes the connection of a slot never released.

    The lease then refuses to work (PoolClosed) without opening a connection,
    and its late release is harmless.
    """
    with driven(flavour, recorder.url, connections=1) as driver:
        lease = driver.acquire(timeout=2)
        driver.close_pool()
        assert wait_until(lambda: recorder.client_closes == 1), "the held connection stayed open"
        late = run(driver, lambda: lease.lease.get("/", timeout=2))
        assert isinstance(late, PoolClosed), late
        lease.release()
        assert recorder.connections == 1, "a connection was opened after close()"


# -- item 8: a closed pool says so; stats() counts pool errors ---------------------


@pytest.mark.timeout(30)
def test_try_acquire_after_close_raises_pool_closed(flavour: Flavour, recorder: Recorder) -> None:
    """Item 8: None would read as "busy"; a closed pool raises PoolClosed."""
    with driven(flavour, recorder.url, connections=1) as driver:
        driver.close_pool()
        result = on_pool(driver, driver.pool.try_acquire)
        assert isinstance(result, PoolClosed), result


@pytest.mark.timeout(30)
def test_stats_count_pool_timeout_and_pool_closed(flavour: Flavour, recorder: Recorder) -> None:
    """Item 8: failed requests are counted whatever failed them, the pool included."""
    with driven(flavour, recorder.url, connections=1) as driver:
        lease = driver.acquire(timeout=2)
        timed_out = run(driver, lambda: driver.pool.get("/", timeout=2, acquire_timeout=0.05))
        assert isinstance(timed_out, PoolTimeout), timed_out
        lease.release()
        driver.close_pool()
        closed = run(driver, lambda: driver.pool.get("/", timeout=2, acquire_timeout=2))
        assert isinstance(closed, PoolClosed), closed
        errors = driver.stats().errors
        assert errors.get("PoolTimeout") == 1, errors
        assert errors.get("PoolClosed") == 1, errors


# -- item 7: options are validated at connect() --------------------------------------

_NAN = math.nan
_INF = math.inf
# (option, bad value): each must be refused by connect() with a ValueError, or
# a TypeError for a value of the wrong type, whose message names the option.
# inf is listed only where it cannot mean anything (counts and sizes).
BAD_OPTIONS: list[tuple[str, Any]] = [
    ("timeout", -1),
    ("timeout", "1"),
    ("timeout", _NAN),
    ("connect_timeout", -1),
    ("connect_timeout", "1"),
    ("connect_timeout", _NAN),
    ("idle_timeout", -1),
    ("idle_timeout", "1"),
    ("idle_timeout", _NAN),
    ("connections", 0),
    ("connections", -1),
    ("connections", 1.5),
    ("connections", "2"),
    ("connections", _INF),
    ("connections", _NAN),
    ("require", -1),
    ("require", 1.5),
    ("require", _NAN),
    ("max_body_size", -1),
    ("max_body_size", _INF),
    ("max_body_size", "1"),
    ("max_head_size", -1),
    ("max_head_size", _INF),
    ("max_headers", -1),
    ("max_headers", _INF),
]


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("option", "value"), BAD_OPTIONS, ids=[f"{o}={v!r}" for o, v in BAD_OPTIONS]
)
def test_connect_rejects_a_bad_option(
    flavour: Flavour, recorder: Recorder, option: str, value: Any
) -> None:
    """Item 7: every numeric option of ``connect()`` is checked, naming it."""
    options: dict[str, Any] = {"connections": 1, option: value}
    try:
        driver = PoolDriver(flavour, recorder.url, **options)
    except (ValueError, TypeError) as exc:
        assert option in str(exc), f"the message does not name {option!r}: {exc}"
        return
    driver.close()
    pytest.fail(f"connect() accepted {option}={value!r}")


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "url",
    ["ftp://127.0.0.1:1", "http://127.0.0.1:1/api", "127.0.0.1:80", "http://", "http://a b"],
)
def test_connect_rejects_a_bad_url_with_invalid_request(flavour: Flavour, url: str) -> None:
    """Item 7: a bad URL is InvalidRequest (a bad option value is ValueError)."""
    with pytest.raises(InvalidRequest):
        PoolDriver(flavour, url, connections=1, connect_timeout=1)


# -- item 9: require=0 and close() do not wait on connects ---------------------------


@pytest.mark.timeout(40)
def test_connect_with_require_zero_returns_at_once(flavour: Flavour) -> None:
    """Item 9: with ``require=0`` the slots open in the background.

    The origin only times out (a full accept queue); connect_timeout is 10 s,
    and connect() must return well before (bound: 5 s), then close() too.
    """
    port, sockets = blackhole_listener()
    url = f"http://127.0.0.1:{port}"
    made: list[PoolDriver] = []
    try:
        pending = background_thread(
            lambda: made.append(
                PoolDriver(flavour, url, connections=2, connect_timeout=10, require=0)
            )
        )
        assert pending.wait(5.0), "connect(require=0) waited for the connect timeout"
        driver = made[0]
        assert driver.size == 2
        assert driver.available == 0
        close_bounded(driver, 5.0)
    finally:
        pending.wait(15.0)
        for driver in made:
            driver.close()
        for sock in sockets:
            sock.close()


def background_thread(fn: Any) -> threading.Event:
    """Run ``fn()`` in a daemon thread; the event is set when it has returned (or raised)."""
    done = threading.Event()

    def work() -> None:
        try:
            fn()
        finally:
            done.set()

    threading.Thread(target=work, name="misuse-bg", daemon=True).start()
    return done


@pytest.mark.timeout(40)
def test_close_returns_while_a_reconnect_is_connecting(
    flavour: Flavour, recorder: Recorder
) -> None:
    """Item 9: close() does not wait for a reconnect stuck in connect (abandoned)."""
    with FaultProxy(recorder.url) as proxy:
        driver = PoolDriver(flavour, proxy.url, connections=1, connect_timeout=10, reconnect=FAST)
        try:
            proxy.blackhole()
            proxy.reset_all()
            # Make the pool meet its dead slot; the reconnect then hangs in connect.
            failed = run(driver, lambda: driver.pool.get("/", timeout=0.5, acquire_timeout=0.5))
            assert isinstance(failed, WarmlineError), failed
            time.sleep(0.3)
            close_bounded(driver, 5.0)
        finally:
            driver.close()


# -- item 12: an exception while waiting in acquire() loses no slot (threads) --------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("timeout", [_INF, _NAN], ids=["inf", "nan"])
def test_odd_acquire_timeout_loses_no_slot(recorder: Recorder, timeout: float) -> None:
    """Item 12: ``acquire(timeout=inf|nan)`` waits or is refused; capacity stays whole."""
    with AtomicClientPool.connect(recorder.url, connections=1, reconnect=FAST) as pool:
        held = pool.acquire(timeout=2)
        result: list[Any] = []

        def odd() -> None:
            try:
                lease = pool.acquire(timeout=timeout)
            except Exception as exc:
                result.append(exc)
            else:
                result.append("served")
                lease.release()

        waiter = threading.Thread(target=odd, daemon=True)
        waiter.start()
        time.sleep(0.2)
        held.release()
        waiter.join(5)
        assert result, "acquire(timeout=...) never returned after the slot was released"
        if result[0] != "served":
            assert isinstance(result[0], (ValueError, TypeError, PoolError)), result[0]
        with pool.acquire(timeout=2) as lease:  # PoolTimeout if the slot was lost
            assert lease.get("/", timeout=5).content == b"ok"
        assert pool.available == 1


class _Interrupted(Exception):
    """Raised by the test's signal handler inside a blocked acquire()."""


@pytest.mark.timeout(30)
def test_signal_handler_exception_in_acquire_loses_no_slot(recorder: Recorder) -> None:
    """Item 12: an exception raised into a waiting acquire() (a signal handler's,
    as KeyboardInterrupt is) leaves no dead waiter that swallows the next slot."""

    def interrupt(signum: int, frame: object) -> None:
        raise _Interrupted

    previous = signal.signal(signal.SIGUSR1, interrupt)
    main = threading.get_ident()
    try:
        with AtomicClientPool.connect(recorder.url, connections=1, reconnect=FAST) as pool:
            held = pool.acquire(timeout=2)
            kicker = threading.Timer(0.3, signal.pthread_kill, (main, signal.SIGUSR1))
            kicker.start()
            try:
                with pytest.raises(_Interrupted):
                    pool.acquire(timeout=10)
            finally:
                kicker.cancel()
            held.release()
            with pool.acquire(timeout=2) as lease:  # PoolTimeout if the slot was lost
                assert lease.get("/", timeout=5).content == b"ok"
            assert pool.available == 1
    finally:
        signal.signal(signal.SIGUSR1, previous)


# -- item 13: a release on a foreign thread (what the garbage collector does) --------

_WATCHDOG_S = 3.0


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_release_from_a_foreign_thread_wakes_the_waiter(recorder: Recorder) -> None:
    """Item 13: the waiter wakes with no unrelated timer firing.

    The waiter has no timeout (no timer of the pool's) and nothing else is
    scheduled; only a watchdog thread, after 3 s, wakes the loop with
    call_soon_threadsafe. Today the waiter wakes only then.
    """
    loop = asyncio.get_running_loop()
    pool = await ClientPool.connect(recorder.url, connections=1, reconnect=FAST)
    try:
        lease = await pool.acquire(timeout=2)
        waiter = asyncio.ensure_future(pool.acquire())
        for _ in range(3):
            await asyncio.sleep(0)  # the waiter queues (no timer involved)
        fired = threading.Event()

        def watchdog() -> None:
            fired.set()
            waiter.cancel()

        timer = threading.Timer(_WATCHDOG_S, loop.call_soon_threadsafe, (watchdog,))
        timer.start()
        releaser = threading.Thread(target=lease.release, name="gc-like")
        releaser.start()
        releaser.join(5)
        try:
            got: ClientSlot | None = await waiter
        except asyncio.CancelledError:
            got = None
        finally:
            timer.cancel()
        assert not fired.is_set(), "the waiter woke only when the watchdog woke the loop"
        assert isinstance(got, ClientSlot)
        with got:
            assert (await got.get("/", timeout=5)).content == b"ok"
    finally:
        await pool.close()


# -- item 15: a request whose deadline has passed is not sent -------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("request_timeout", [-1, 0])
def test_expired_deadline_sends_nothing(
    flavour: Flavour, recorder: Recorder, request_timeout: float
) -> None:
    """Item 15: a POST with no time left never reaches the server.

    A negative timeout is refused at the call (ValueError or InvalidRequest
    naming it, item 7); a zero one is refused or fails with WriteTimeout. In
    no case does the server execute it while the caller gets ReadTimeout.
    """
    with driven(flavour, recorder.url, connections=1) as driver:
        lease = driver.acquire(timeout=2)
        result = run(
            driver, lambda: lease.lease.post("/order", content=b"buy", timeout=request_timeout)
        )
        lease.release()
        assert not isinstance(result, ReadTimeout), "sent, executed, reported as ReadTimeout"
        if request_timeout < 0:
            assert isinstance(result, (ValueError, InvalidRequest)), result
            assert "timeout" in str(result), result
        else:
            assert isinstance(result, (ValueError, InvalidRequest, WriteTimeout)), result
        # Anything sent would have arrived by the time this answer comes back.
        assert run(driver, lambda: driver.pool.get("/", timeout=5, acquire_timeout=5)).status == 200
        assert recorder.posts() == [], recorder.posts()


# -- item 16: waiter expiry is O(1) (asyncio) -----------------------------------------

_OLD_WAITERS = 4_000
_NEW_WAITERS = 2_000
_WAIT_S = 0.2


class _CountingWaiter(Waiter):
    """A waiter that counts how often it is compared with another: a queue
    that finds a waiter by scanning compares it with every one ahead."""

    __slots__ = ()
    comparisons = 0

    def __eq__(self, other: object) -> bool:
        type(self).comparisons += 1
        return self is other

    __hash__ = Waiter.__hash__


def test_waiter_removal_does_not_scan_the_queue() -> None:
    """Item 16: taking an expired waiter off the queue is O(1).

    Removing each of 2,000 expiring waiters from behind 40,000 older ones by
    scanning (a deque's remove) would compare ~80 million times; by key,
    about never. Counted, not timed.
    """
    core: PoolCore[object] = PoolCore(1, backoff=Backoff())
    plan: Plan[object] = Plan()
    (slot,) = core.start_connect()
    core.opened(slot, object(), 0.0, plan)
    assert core.pop() is slot  # the one slot is leased: every waiter queues
    old = [_CountingWaiter() for _ in range(40_000)]
    new = [_CountingWaiter() for _ in range(2_000)]
    for waiter in (*old, *new):
        core.add_waiter(waiter, plan)
    _CountingWaiter.comparisons = 0
    assert all(core.remove_waiter(w) for w in reversed(new))
    assert _CountingWaiter.comparisons <= len(new)
    assert len(core.waiters) == len(old)


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_waiter_timeouts_arrive_behind_many_waiters(recorder: Recorder) -> None:
    """Item 16, end to end: every waiter with a timeout gets its PoolTimeout
    however many wait ahead of it without one, and the others keep waiting."""
    pool = await ClientPool.connect(recorder.url, connections=1, reconnect=FAST)
    lease = await pool.acquire(timeout=2)
    old = [asyncio.ensure_future(pool.acquire()) for _ in range(_OLD_WAITERS)]
    timed_out: list[PoolTimeout] = []
    errors: list[BaseException] = []

    async def new() -> None:
        try:
            await pool.acquire(timeout=_WAIT_S)
        except PoolTimeout as exc:
            timed_out.append(exc)
        except Exception as exc:
            errors.append(exc)

    try:
        await asyncio.sleep(0)
        await asyncio.gather(*(new() for _ in range(_NEW_WAITERS)))
        assert errors == []
        assert len(timed_out) == _NEW_WAITERS
        assert not any(task.done() for task in old)
        assert len(pool._core.waiters) == _OLD_WAITERS
    finally:
        for task in old:
            task.cancel()
        await asyncio.gather(*old, return_exceptions=True)
        lease.release()
        await pool.close()


# -- item 17: close() with a request in flight ----------------------------------------


@pytest.mark.timeout(30)
def test_close_ends_an_in_flight_request_with_pool_closed(
    flavour: Flavour, recorder: Recorder
) -> None:
    """Item 17: the request ends with PoolClosed; no connection opens after close().

    The server then drops the connection without answering: the stale retry
    of a GET must not reconnect on the closed pool.
    """
    with driven(flavour, recorder.url, connections=1) as driver:
        pending = background(driver, lambda: driver.pool.get("/slow", timeout=5))
        assert recorder.slow_seen.wait(5), "the request never reached the server"
        driver.close_pool()
        time.sleep(0.2)
        recorder.let_go.set()  # FIN without an answer
        result = outcome(pending, bound=8.0)
        assert isinstance(result, PoolClosed), result
        time.sleep(0.3)
        assert recorder.connections == 1, "a connection was opened after close()"


# -- settled drift: one behaviour in both shells ---------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("where", ["pool", "call"])
def test_acquire_timeout_defaults_to_the_request_timeout(
    flavour: Flavour, recorder: Recorder, where: str
) -> None:
    """Drift: ``pool.get()`` waits for a slot no longer than the request's timeout.

    The timeout comes from ``connect(timeout=)`` or the call's ``timeout=``.
    """
    pool_timeout = 0.3 if where == "pool" else None
    call_kwargs: dict[str, Any] = {} if where == "pool" else {"timeout": 0.3}
    with driven(flavour, recorder.url, connections=1, timeout=pool_timeout) as driver:
        lease = driver.acquire(timeout=2)
        try:
            result = run(driver, lambda: driver.pool.get("/", **call_kwargs), bound=5.0)
        finally:
            lease.release()
        assert isinstance(result, PoolTimeout), result


@pytest.mark.timeout(30)
def test_every_connect_timing_out_raises_connect_timeout(flavour: Flavour) -> None:
    """Drift: when every connect times out, connect() raises ConnectTimeout in both."""
    port, sockets = blackhole_listener()
    try:
        with pytest.raises(ConnectTimeout):
            PoolDriver(flavour, f"http://127.0.0.1:{port}", connections=2, connect_timeout=0.3)
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.timeout(40)
def test_requests_are_bounded_while_the_server_is_down(
    flavour: Flavour, recorder: Recorder
) -> None:
    """Item 4: with the server down, ``pool.get`` ends (an error) within its timeout."""
    with (
        FaultProxy(recorder.url) as proxy,
        driven(flavour, proxy.url, connections=2, timeout=0.5, connect_timeout=0.3) as driver,
    ):
        proxy.refuse()
        proxy.reset_all()
        for _ in range(3):
            result = run(driver, lambda: driver.pool.get("/"), bound=5.0)
            assert isinstance(result, WarmlineError), result
        proxy.clear()
        assert driver.wait_for(lambda: driver.available == 2, timeout=10)


@pytest.mark.timeout(30)
def test_idle_close_is_not_a_failed_reconnect(flavour: Flavour) -> None:
    """Item 3: a server closing idle connections (0.3 s keep-alive) drives no backoff.

    With a 2 s first backoff step, counting the idle close as a failure
    leaves every slot reconnecting for 2 s; healed at once, a slot is ready
    when the next order comes after a quiet second.
    """
    slow_backoff = Backoff(initial=2.0, maximum=4.0, multiplier=2.0, jitter=0.0)
    with (
        RawServer(idle_close_handler(lambda index: 0.3)) as server,
        driven(flavour, server.url, connections=2, reconnect=slow_backoff) as driver,
    ):
        time.sleep(1.2)
        found = None
        for _ in range(10):
            found = on_pool(driver, driver.pool.try_acquire)
            if found is not None:
                break
            time.sleep(0.05)
        assert isinstance(found, (ClientSlot, AtomicClientSlot)), found
        on_pool(driver, found.release)
        assert driver.stats().reconnect_failures == 0
