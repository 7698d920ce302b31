"""Soak: both pools under concurrency 64, every fault mixed in, no leaks allowed.

    uv run python -m benchmarks.soak [--seconds 60] [--concurrency 64] [--seed N]
                                     [--flavour aio|sync] [--no-tracemalloc]

Starts granian on 127.0.0.1 and the fault-injection proxy of
``tests/faultproxy.py`` in front of it, then runs ClientPool (asyncio tasks)
and AtomicClientPool (threads) one after the other, each for half the time,
with ``--concurrency`` workers on a 16-slot pool. While they run, a seeded
schedule switches the proxy between faults every 0.2-0.8 s: latency and
jitter, a bandwidth limit, reset or close after N response bytes, a stall,
new connections dropped, reset or held, the port refused or blackholed,
idle connections closed, every connection reset or closed.

Checked, and printed (the exit status is 1 on any violation):

* every request has exactly one outcome, a response or a WarmlineError
  (anything else is a violation), and none is late (its acquire timeout plus
  its timeout plus 3 s);
* every response is the answer to its own request (echoed method and path,
  exact bodies): no desync under faults;
* granian's per-id counter: a POST is never sent twice, a GET at most twice;
* after the faults stop the pool is back to full size within the backoff
  bound; after close(), file descriptors, threads, asyncio tasks and traced
  memory (tracemalloc) are back to their baseline.

The pytest wrapper ``tests/soak/test_soak.py`` runs it for
``WARMLINE_SOAK_SECONDS`` (default 30) seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import http.client
import json
import random
import sys
import threading
import time
import tracemalloc
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The proxy and the pool driver are test fixtures; the soak reuses them.
from tests.faultproxy import FaultProxy, Flavour, PoolDriver

from warmline import Backoff, Response, WarmlineError
from warmline._server.app import LARGE
from warmline._server.launch import CHUNKED_BODY, start_granian

TIMEOUT = 2.0
ACQUIRE_TIMEOUT = 2.0
LATE = ACQUIRE_TIMEOUT + TIMEOUT + 3.0
CONNECTIONS = 16
BACKOFF = Backoff(initial=0.05, maximum=1.0, multiplier=2.0, jitter=0.2)
CONNECT_TIMEOUT = 1.0
# Python objects allocated during a phase and still alive after it (the
# module-level caches of warmline are bounded and warm up within seconds).
MEMORY_SLACK = 2 * 1024 * 1024


def _drop(mode: str) -> Callable[[FaultProxy, random.Random], None]:
    def apply(proxy: FaultProxy, rng: random.Random) -> None:
        proxy.configure(drop_new=mode)
        proxy.reset_all()

    return apply


def _port_down(blackhole: bool) -> Callable[[FaultProxy, random.Random], None]:
    def apply(proxy: FaultProxy, rng: random.Random) -> None:
        if blackhole:
            proxy.blackhole()
        else:
            proxy.refuse()
        proxy.reset_all()

    return apply


FAULTS: list[tuple[str, Callable[[FaultProxy, random.Random], object]]] = [
    ("clean", lambda p, r: None),
    ("latency", lambda p, r: p.configure(latency=r.uniform(0.01, 0.1), jitter=0.05)),
    ("bandwidth", lambda p, r: p.configure(bandwidth=r.choice([20_000, 200_000]))),
    ("reset-after", lambda p, r: p.configure(reset_after=r.choice([0, 30, 300, 20_000]))),
    ("close-after", lambda p, r: p.configure(close_after=r.choice([0, 30, 300, 20_000]))),
    ("stall", lambda p, r: p.stall(r.uniform(0.2, 1.5))),
    ("drop-close", _drop("close")),
    ("drop-reset", _drop("reset")),
    ("drop-hang", _drop("hang")),
    ("refuse", _port_down(blackhole=False)),
    ("blackhole", _port_down(blackhole=True)),
    ("idle-close", lambda p, r: p.configure(idle_close=r.uniform(0.05, 0.3))),
    ("reset-all", lambda p, r: p.reset_all()),
    ("close-all", lambda p, r: p.close_all()),
]


@dataclass
class Phase:
    """What one flavour's run did."""

    flavour: str
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    max_latency: float = 0.0
    ids: dict[str, str] = field(default_factory=dict)  # x-id -> method
    resources: dict[str, tuple[int, int]] = field(default_factory=dict)
    memory_peak: int = 0
    stats: Any = None

    @property
    def requests(self) -> int:
        return sum(self.outcomes.values())


# -- one request ---------------------------------------------------------------------


def make_request(rng: random.Random) -> tuple[str, str, dict[str, Any], Callable[[Any], bool]]:
    """A random request and the check its response must pass."""
    kind = rng.randrange(6)
    kwargs: dict[str, Any] = {"timeout": TIMEOUT, "acquire_timeout": ACQUIRE_TIMEOUT}
    if kind == 0:
        return "GET", "/small", kwargs, lambda r: r.json()["symbol"] == "BTCUSDT"
    if kind == 1:
        return "GET", "/large", kwargs, lambda r: r.content == LARGE
    if kind == 2:
        return "GET", "/chunked", kwargs, lambda r: r.content == CHUNKED_BODY
    if kind == 3:
        order = {"qty": rng.randrange(1_000_000)}
        kwargs["json"] = order
        return "POST", "/order", kwargs, lambda r: r.json() == order
    method = "GET" if kind == 4 else "POST"
    request_id = uuid.uuid4().hex
    kwargs["headers"] = {"x-id": request_id}
    path = f"/echo/{request_id}"

    def check(r: Response) -> bool:
        echo = r.json()
        return bool(echo["method"] == method and echo["path"] == path)

    return method, path, kwargs, check


def record(phase: Phase, outcome: Any, seconds: float, what: str, ok: bool) -> None:
    phase.max_latency = max(phase.max_latency, seconds)
    if seconds > LATE:
        phase.violations.append(f"late: {what} took {seconds:.1f} s ({outcome!r})")
    if isinstance(outcome, Response):
        if outcome.status != 200 or not ok:
            phase.violations.append(f"wrong answer to {what}: {outcome.status}")
        phase.outcomes["ok"] += 1
    elif isinstance(outcome, WarmlineError):
        phase.outcomes[type(outcome).__name__] += 1
    else:
        phase.violations.append(f"not a WarmlineError from {what}: {outcome!r}")
        phase.outcomes[f"unexpected {type(outcome).__name__}"] += 1


# -- workers -------------------------------------------------------------------------


def sync_workers(driver: PoolDriver, phase: Phase, until: float, concurrency: int) -> None:
    def work(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < until:
            method, path, kwargs, check = make_request(rng)
            if "headers" in kwargs:
                phase.ids[kwargs["headers"]["x-id"]] = method
            start = time.monotonic()
            try:
                outcome: Any = driver.pool.request(method, path, **kwargs)
                ok = check(outcome)
            except Exception as exc:  # recorded: only WarmlineError is allowed
                outcome, ok = exc, False
            record(phase, outcome, time.monotonic() - start, f"{method} {path}", ok)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(until - time.monotonic() + LATE + 10)
        if t.is_alive():
            phase.violations.append("hang: a worker thread did not finish")


async def aio_workers(pool: Any, phase: Phase, until: float, concurrency: int) -> None:
    async def work(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < until:
            method, path, kwargs, check = make_request(rng)
            if "headers" in kwargs:
                phase.ids[kwargs["headers"]["x-id"]] = method
            start = time.monotonic()
            try:
                outcome: Any = await pool.request(method, path, **kwargs)
                ok = check(outcome)
            except Exception as exc:  # recorded: only WarmlineError is allowed
                outcome, ok = exc, False
            record(phase, outcome, time.monotonic() - start, f"{method} {path}", ok)

    await asyncio.gather(*(work(i) for i in range(concurrency)))


def fault_schedule(
    proxy: FaultProxy, phase: Phase, rng: random.Random, stop: threading.Event
) -> threading.Thread:
    """Switch faults until ``stop``; returns the thread running it."""

    def run() -> None:
        while not stop.is_set():
            name, apply = rng.choice(FAULTS)
            phase.faults[name] += 1
            apply(proxy, rng)
            stop.wait(rng.uniform(0.2, 0.8))
            proxy.clear()
            stop.wait(rng.uniform(0.05, 0.3))
        proxy.clear()

    thread = threading.Thread(target=run, name="soak-faults")
    thread.start()
    return thread


# -- resources -----------------------------------------------------------------------


def fd_count() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


def settle(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def traced() -> int:
    """Bytes allocated by anything but the soak's own bookkeeping, still alive."""
    gc.collect()
    if not tracemalloc.is_tracing():
        return 0
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, __file__), tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    return sum(stat.size for stat in snapshot.statistics("filename"))


def run_phase(
    flavour: Flavour, proxy: FaultProxy, seconds: float, concurrency: int, seed: int
) -> Phase:
    phase = Phase(flavour)
    fds, threads, memory = fd_count(), threading.active_count(), traced()
    if tracemalloc.is_tracing():
        tracemalloc.reset_peak()
    start = time.monotonic()
    drive(flavour, proxy, phase, start + seconds, concurrency, random.Random(seed))
    # The pool is closed and dropped: everything it used must be back.
    phase.seconds = time.monotonic() - start
    settle(lambda: fd_count() <= fds and threading.active_count() <= threads)
    phase.resources["file descriptors"] = (fds, fd_count())
    phase.resources["threads"] = (threads, threading.active_count())
    phase.resources["traced memory (bytes)"] = (memory, traced())
    if tracemalloc.is_tracing():
        phase.memory_peak = tracemalloc.get_traced_memory()[1]
    for name, (before, now) in phase.resources.items():
        slack = MEMORY_SLACK if name.startswith("traced") else 0
        if now > before + slack:
            phase.violations.append(f"{name}: {before} before, {now} after")
    return phase


def drive(
    flavour: Flavour,
    proxy: FaultProxy,
    phase: Phase,
    until: float,
    concurrency: int,
    rng: random.Random,
) -> None:
    """Run the workers and the fault schedule until ``until``, then close the pool."""
    driver = PoolDriver(
        flavour,
        proxy.url,
        connections=CONNECTIONS,
        reconnect=BACKOFF,
        connect_timeout=CONNECT_TIMEOUT,
    )
    try:
        stop = threading.Event()
        schedule = fault_schedule(proxy, phase, rng, stop)
        try:
            if flavour == "aio":
                bound = until - time.monotonic() + LATE + 30
                driver.call_soon(aio_workers(driver.pool, phase, until, concurrency), bound)
            else:
                sync_workers(driver, phase, until, concurrency)
        finally:
            stop.set()
            schedule.join(30)
        # Faults over: the pool must be whole again within the backoff bound.
        bound = BACKOFF.bound() + CONNECT_TIMEOUT + 5.0
        if not settle(lambda: driver.available == driver.size, bound):
            phase.violations.append(
                f"pool not back to full size within {bound:.0f} s: {driver.stats()}"
            )
        phase.stats = driver.stats()
        driver.close_pool()
        tasks = driver.tasks_left()
        phase.resources["asyncio tasks"] = (0, tasks)
        if tasks:
            phase.violations.append(f"{tasks} asyncio tasks left after close()")
    finally:
        driver.close()


def check_counts(phase: Phase, counts: dict[str, int]) -> None:
    """granian's per-id counts: POST at most once, GET at most twice."""
    for request_id, method in phase.ids.items():
        sent = counts.get(request_id, 0)
        if sent > (1 if method == "POST" else 2):
            phase.violations.append(f"{method} {request_id} reached the server {sent} times")


def server_counts(port: int) -> dict[str, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/count")
        return json.loads(conn.getresponse().read())  # type: ignore[no-any-return]
    finally:
        conn.close()


# -- the whole soak --------------------------------------------------------------------


@contextlib.contextmanager
def tracing(enabled: bool) -> Iterator[None]:
    if not enabled or tracemalloc.is_tracing():
        yield
        return
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def run(
    seconds: float = 60.0,
    *,
    concurrency: int = 64,
    flavours: tuple[Flavour, ...] = ("aio", "sync"),
    seed: int | None = None,
    upstream_port: int | None = None,
    trace_memory: bool = True,
    out: Callable[[str], None] = print,
) -> list[Phase]:
    """Run the soak; returns one Phase per flavour (see ``Phase.violations``).

    Args:
        seconds: Total duration, shared equally by the flavours.
        concurrency: Workers (tasks or threads) per flavour.
        flavours: Which pools to soak.
        seed: Seed of the fault schedule (random when None; printed).
        upstream_port: A granian already running on 127.0.0.1 (else one is started).
        trace_memory: Measure memory with tracemalloc (slows the run ~2x).
        out: Where the report goes.
    """
    seed = random.randrange(1 << 32) if seed is None else seed
    out(f"soak: {seconds:.0f} s, concurrency {concurrency}, seed {seed}")
    with contextlib.ExitStack() as stack:
        if upstream_port is None:
            upstream_port = stack.enter_context(start_granian()).port
        proxy = stack.enter_context(FaultProxy(("127.0.0.1", upstream_port)))
        phases = []
        with tracing(trace_memory):
            for n, flavour in enumerate(flavours):
                phase = run_phase(flavour, proxy, seconds / len(flavours), concurrency, seed + n)
                phases.append(phase)
        counts = server_counts(upstream_port)
    for phase in phases:
        check_counts(phase, counts)
        report(phase, out)
    return phases


def report(phase: Phase, out: Callable[[str], None]) -> None:
    rate = phase.requests / phase.seconds if phase.seconds else 0.0
    out(f"\n== {phase.flavour}: {phase.requests} requests in {phase.seconds:.1f} s ({rate:.0f}/s)")
    for name, count in phase.outcomes.most_common():
        out(f"   {name:<28} {count:>8}")
    out(f"   max latency {phase.max_latency:.2f} s (late after {LATE:.0f} s)")
    out("   faults applied: " + ", ".join(f"{k} {v}" for k, v in sorted(phase.faults.items())))
    if phase.stats is not None:
        s = phase.stats
        out(
            f"   pool stats: requests {s.requests}, reconnects {s.reconnects}, "
            f"reconnect failures {s.reconnect_failures}, stale retries {s.stale_retries}, "
            f"acquire waits {s.acquire_waits}"
        )
    out(f"   ids checked at the server: {len(phase.ids)}")
    for name, (before, after) in phase.resources.items():
        out(f"   {name:<28} {before:>10} -> {after:>10}")
    if phase.memory_peak:
        out(f"   traced memory peak           {phase.memory_peak:>10}")
    verdict = "OK" if not phase.violations else f"{len(phase.violations)} VIOLATIONS"
    out(f"   {verdict}")
    for violation in phase.violations[:20]:
        out(f"     - {violation}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--flavour", choices=["aio", "sync"], action="append")
    parser.add_argument("--no-tracemalloc", action="store_true")
    args = parser.parse_args(argv)
    phases = run(
        args.seconds,
        concurrency=args.concurrency,
        flavours=tuple(args.flavour or ("aio", "sync")),
        seed=args.seed,
        trace_memory=not args.no_tracemalloc,
    )
    return 1 if any(p.violations for p in phases) else 0


if __name__ == "__main__":
    sys.exit(main())
