"""Measure one client in a fresh process: ``python -m warmline._bench.child SPEC``.

SPEC is a JSON object: the client, its loop, the CPU to pin to, the server's
PIDs (for its CPU time) and the list of cases. For each case the child builds
the client, warms it up, times a section bounded by a request count and a
wall-clock cap, closes the client, and prints one JSON line with the figures
(or ``{"id": ..., "error": ...}``). Only those lines go to stdout: anything a
library prints is sent to stderr.

Figures: client CPU is ``getrusage(RUSAGE_SELF)`` (user + system, all
threads) over the timed section only; the server's CPU comes from
``/proc/PID/task/*/schedstat`` (ns, where ``/proc/PID/stat`` counts 10 ms
ticks), the proxy's included in the proxy scenarios;
latency percentiles are nearest-rank over every timed request.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import math
import os
import resource
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from warmline._bench import clients
from warmline._bench.clients import AsyncCall, Result, SyncCall, Target

__all__ = ["main", "percentile"]

# Stop a phase after this many exceptions: a client failing every request
# would otherwise spin through the whole request budget.
_MAX_FAILURES = 100

Case = dict[str, Any]


def percentile(sorted_ns: Sequence[int], q: float) -> float:
    """Nearest-rank percentile of sorted nanoseconds, in microseconds."""
    return sorted_ns[max(0, math.ceil(q * len(sorted_ns)) - 1)] / 1000.0


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Tally:
    """What one phase did: requests, errors, the first error's text."""

    __slots__ = ("bad", "done", "failures", "first_error")

    def __init__(self) -> None:
        self.done = 0
        self.bad = 0
        self.failures = 0
        self.first_error: str | None = None

    def fail(self, exc: BaseException) -> None:
        self.failures += 1
        if self.first_error is None:
            self.first_error = f"{type(exc).__name__}: {exc}"[:300]

    def check(self, result: Result, lo: int, hi: int) -> None:
        """Count a bad response: status not 200 or a body length out of range."""
        status, body = result
        if status != 200 or not lo <= len(body) <= hi:
            self.bad += 1
            if self.first_error is None:
                self.first_error = f"status {status}, {len(body)} bytes (expected {lo}..{hi})"

    def merge(self, other: Tally) -> None:
        self.done += other.done
        self.bad += other.bad
        self.failures += other.failures
        self.first_error = self.first_error or other.first_error


class Server:
    """The server's side of a timed section: CPU time and accepted connections."""

    def __init__(self, pids: Sequence[int], status_url: str | None) -> None:
        self.pids = list(pids)
        self.status_url = status_url

    def cpu_s(self) -> float | None:
        if not self.pids:
            return None
        total = 0
        for pid in self.pids:
            # Every thread: tinyproxy serves each connection on a thread of
            # its own, and /proc/PID/schedstat counts the main thread only.
            for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
                with suppress(OSError, ValueError, IndexError):
                    total += int(task.read_text().split()[0])
        return total / 1e9

    def accepts(self) -> int | None:
        """Connections nginx has accepted so far (stub_status), or None."""
        if not self.status_url:
            return None
        parts = urlsplit(self.status_url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        try:
            with socket.create_connection((host, port), timeout=5) as s:
                s.sendall(
                    b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % parts.path.encode()
                )
                data = b""
                for _ in range(100):  # bounded: the reply is ~100 bytes
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            # "Active connections: 1 \nserver accepts handled requests\n 5 5 9 \n..."
            return int(data.split(b"\r\n\r\n", 1)[1].split(b"\n")[2].split()[0])
        except (OSError, ValueError, IndexError):
            return None


class Section:
    """Brackets a timed section: wall, own CPU, server CPU, new connections."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def __enter__(self) -> Section:
        self.acc0 = self.server.accepts()
        self.srv0 = self.server.cpu_s()
        self.cpu0 = _cpu_s()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.cpu = _cpu_s() - self.cpu0
        srv1 = self.server.cpu_s()
        self.srv = None if srv1 is None or self.srv0 is None else srv1 - self.srv0
        acc1 = self.server.accepts()
        # Minus one: our own probe at the start of the section.
        self.conns = None if acc1 is None or self.acc0 is None else acc1 - self.acc0 - 1

    def figures(self, tally: Tally, lat: list[int], per_op: int) -> dict[str, Any]:
        requests = (tally.done + tally.failures) * per_op
        wall = max(self.wall, 1e-9)
        out: dict[str, Any] = {
            "requests": requests,
            "ops": tally.done + tally.failures,
            "errors": tally.bad + tally.failures * per_op,
            "wall_s": wall,
            "rps": requests / wall,
            "cpu_s": self.cpu,
            "cpu_us_per_req": 1e6 * self.cpu / max(requests, 1),
            "client_busy": self.cpu / wall,
            "server_cpu_s": self.srv,
            "server_busy": None if self.srv is None else self.srv / wall,
            "new_conns": self.conns,
            "samples": len(lat),
            "first_error": tally.first_error,
        }
        if lat:
            lat.sort()
            out.update(
                p50_us=percentile(lat, 0.5),
                p99_us=percentile(lat, 0.99),
                p999_us=percentile(lat, 0.999),
            )
        return out


# ---------------------------------------------------------------- asyncio side
async def _async_phase(
    call: AsyncCall,
    workers: int,
    limit: int,
    seconds: float,
    expect: Sequence[int],
    lat: list[int] | None,
) -> Tally:
    tally = Tally()
    lo, hi = expect
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)
    started = [0]
    sink: list[int] = [] if lat is None else lat

    async def worker() -> None:
        append = sink.append
        while started[0] < limit:
            started[0] += 1  # no await in between: atomic among the tasks
            t0 = clock()
            try:
                result = await call()
            except Exception as exc:
                tally.fail(exc)
                if tally.failures >= _MAX_FAILURES:
                    return
                continue
            t1 = clock()
            append(t1 - t0)
            tally.done += 1
            tally.check(result, lo, hi)
            if t1 >= deadline:
                return

    await asyncio.gather(*(worker() for _ in range(workers)))
    return tally


async def _async_fanout_phase(
    calls: Sequence[AsyncCall],
    limit: int,
    seconds: float,
    expect: Sequence[int],
    lat: list[int] | None,
) -> Tally:
    # One fan-out at a time: a request to every origin in parallel
    # (asyncio.gather), the latency being that of the slowest.
    tally = Tally()
    lo, hi = expect
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)
    gather = asyncio.gather
    sink: list[int] = [] if lat is None else lat
    for _ in range(limit):
        t0 = clock()
        try:
            results = await gather(*[c() for c in calls])
        except Exception as exc:
            tally.fail(exc)
            if tally.failures >= _MAX_FAILURES:
                break
            continue
        t1 = clock()
        sink.append(t1 - t0)
        tally.done += 1
        for result in results:
            tally.check(result, lo, hi)
        if t1 >= deadline:
            break
    return tally


async def _run_async(name: str, case: Case, target: Target, server: Server) -> dict[str, Any]:
    calls, close = await clients.make_async(name, target)
    try:
        fan = case["fanout"]

        async def phase(limit: int, seconds: float, lat: list[int] | None) -> Tally:
            if fan:
                return await _async_fanout_phase(calls, limit, seconds, case["expect"], lat)
            return await _async_phase(
                calls[0], case["workers"], limit, seconds, case["expect"], lat
            )

        await phase(case["warm_n"], case["warm_s"], None)
        gc.collect()
        lat: list[int] = []
        with Section(server) as section:
            tally = await phase(case["n"], case["time_s"], lat)
        return section.figures(tally, lat, len(calls) if fan else 1)
    finally:
        await close()


# ---------------------------------------------------------------- thread side
def _sync_worker(
    call: SyncCall,
    counter: itertools.count[int],
    limit: int,
    deadline: int,
    expect: Sequence[int],
    lat: list[int],
    tally: Tally,
) -> None:
    lo, hi = expect
    clock = time.perf_counter_ns
    append = lat.append
    while next(counter) < limit:  # next() on a count is atomic under the GIL
        t0 = clock()
        try:
            result = call()
        except Exception as exc:
            tally.fail(exc)
            if tally.failures >= _MAX_FAILURES:
                return
            continue
        t1 = clock()
        append(t1 - t0)
        tally.done += 1
        tally.check(result, lo, hi)
        if t1 >= deadline:
            return


def _sync_phase(
    call: SyncCall,
    workers: int,
    limit: int,
    seconds: float,
    expect: Sequence[int],
    lat: list[int],
) -> Tally:
    counter = itertools.count()
    deadline = time.perf_counter_ns() + int(seconds * 1e9)
    if workers == 1:
        tally = Tally()
        _sync_worker(call, counter, limit, deadline, expect, lat, tally)
        return tally
    tallies = [Tally() for _ in range(workers)]
    lats: list[list[int]] = [[] for _ in range(workers)]
    threads = [
        threading.Thread(
            target=_sync_worker,
            args=(call, counter, limit, deadline, expect, lats[i], tallies[i]),
            daemon=True,
        )
        for i in range(workers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = Tally()
    for i in range(workers):
        total.merge(tallies[i])
        lat += lats[i]
    return total


def _sync_fanout_phase(
    calls: Sequence[SyncCall],
    pool: ThreadPoolExecutor,
    limit: int,
    seconds: float,
    expect: Sequence[int],
    lat: list[int],
) -> Tally:
    tally = Tally()
    lo, hi = expect
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)
    submit = pool.submit
    for _ in range(limit):
        t0 = clock()
        try:
            results = [f.result() for f in [submit(c) for c in calls]]
        except Exception as exc:
            tally.fail(exc)
            if tally.failures >= _MAX_FAILURES:
                break
            continue
        t1 = clock()
        lat.append(t1 - t0)
        tally.done += 1
        for result in results:
            tally.check(result, lo, hi)
        if t1 >= deadline:
            break
    return tally


def _run_sync(name: str, case: Case, target: Target, server: Server) -> dict[str, Any]:
    calls, close = clients.make_sync(name, target)
    fan = case["fanout"]
    pool = ThreadPoolExecutor(max_workers=len(calls)) if fan else None
    try:

        def phase(limit: int, seconds: float, lat: list[int]) -> Tally:
            if pool is not None:
                return _sync_fanout_phase(calls, pool, limit, seconds, case["expect"], lat)
            return _sync_phase(calls[0], case["workers"], limit, seconds, case["expect"], lat)

        phase(case["warm_n"], case["warm_s"], [])
        gc.collect()
        lat: list[int] = []
        with Section(server) as section:
            tally = phase(case["n"], case["time_s"], lat)
        return section.figures(tally, lat, len(calls) if fan else 1)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
        close()


# ---------------------------------------------------------------------- driver
def _loop_factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if loop == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run_case(spec: dict[str, Any], case: Case, tls: ssl.SSLContext | None) -> dict[str, Any]:
    """Measure one case; the figures, or raise."""
    target = Target(
        origins=tuple(case["origins"]),
        method=case["method"],
        path=case["path"],
        conc=case["conc"],
        fresh=case["fresh"],
        context=tls,
        cafile=spec.get("cafile"),
        proxy=case.get("proxy"),
        stream=case.get("stream", False),
        gunzip=case.get("gunzip", False),
    )
    server = Server(spec.get("server_pids") or [], spec.get("status_url"))
    name, loop = spec["client"], spec["loop"]
    clients.EXTRAS.clear()
    if clients.CLIENTS[name].kind == "sync":
        figures = _run_sync(name, case, target, server)
    else:
        with asyncio.Runner(loop_factory=_loop_factory(loop)) as runner:
            figures = runner.run(_run_async(name, case, target, server))
    # What the client itself counted (hedges), read when it closed.
    return {**figures, **clients.EXTRAS}


def _run_micro(spec: dict[str, Any], out: TextIO) -> None:
    import importlib

    for module in spec["modules"]:
        line: dict[str, Any] = {"id": module}
        try:
            mod = importlib.import_module(f"warmline._bench.micro.{module}")
        except ImportError as exc:
            line["unavailable"] = f"{type(exc).__name__}: {exc}"
        else:
            try:
                line["rows"] = mod.run(quick=bool(spec.get("quick")))
            except Exception as exc:
                line["error"] = f"{type(exc).__name__}: {exc}"
        out.write(json.dumps(line, default=str) + "\n")
        out.flush()


def _pin(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        with suppress(OSError):
            os.sched_setaffinity(0, {cpu})


def _result_stream() -> TextIO:
    # Keep the real stdout for our JSON lines; whatever a library prints
    # goes to stderr, so that it can never corrupt a result line.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return out


class _Live:
    """``bench --live``: the child's pools, and ``{"live": {origin: stats}}`` lines.

    Pools are tracked from their construction until the end of the case (so
    the one-request pools of the fresh-connection cases count too); pools of
    one origin are summed. A line every ``interval`` s, and one when each
    case ends. Only with --live: nothing of this exists otherwise.
    """

    def __init__(self, out: TextIO, lock: threading.Lock, interval: float) -> None:
        from warmline._pool._shell import PoolShell

        self.out = out
        self.lock = lock
        self.pools: list[Any] = []
        pools = self.pools
        init = PoolShell.__init__

        def tracked(pool: Any, config: Any) -> None:
            init(pool, config)
            pools.append(pool)

        PoolShell.__init__ = tracked  # type: ignore[method-assign,assignment]
        thread = threading.Thread(target=self._tick, args=(interval,), daemon=True)
        thread.start()

    def _tick(self, interval: float) -> None:
        while True:
            time.sleep(interval)
            self.send()

    def send(self) -> None:
        """Write one snapshot line (under the result lines' lock)."""
        snapshot: dict[str, dict[str, Any]] = {}
        for pool in list(self.pools):
            with suppress(Exception):  # a pool changing under us: next time
                _add_stats(snapshot.setdefault(str(pool.origin), {}), pool.stats().to_dict())
        with self.lock:
            self.out.write(json.dumps({"live": snapshot}, default=str) + "\n")
            self.out.flush()

    def case_done(self) -> None:
        self.send()
        self.pools.clear()


def _add_stats(into: dict[str, Any], stats: dict[str, Any]) -> None:
    for key, value in stats.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            into[key] = into.get(key, 0) + value
        elif key == "errors" and isinstance(value, dict):
            errors = into.setdefault("errors", {})
            for kind, n in value.items():
                errors[kind] = errors.get(kind, 0) + n


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 1:
        print("usage: python -m warmline._bench.child SPEC_JSON", file=sys.stderr)
        return 2
    spec: dict[str, Any] = json.loads(args[0])
    _pin(spec.get("cpu"))
    out = _result_stream()
    if spec.get("kind") == "micro":
        _run_micro(spec, out)
        return 0
    # One context per process, built before any timed section: the bench's
    # CA when it runs its own server, else the system's store (--url).
    tls = ssl.create_default_context(cafile=spec.get("cafile"))
    lock = threading.Lock()  # result lines and --live lines never interleave
    live = _Live(out, lock, float(spec["live"])) if spec.get("live") else None
    for case in spec["cases"]:
        try:
            line = {"id": case["id"], **run_case(spec, case, tls)}
        except Exception as exc:
            line = {"id": case["id"], "error": f"{type(exc).__name__}: {exc}"[:500]}
        if live is not None:
            live.case_done()
        with lock:
            out.write(json.dumps(line) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
