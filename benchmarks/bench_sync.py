"""Blocking clients head to head: warmline.AtomicClientPool against its peers.

    uv run python -m benchmarks.bench_sync [--n 20000] [--rounds 3] [--threads 16]

Starts nginx (granian when nginx is absent) pinned to CPU 1, pins itself to
CPU 0, and runs every client in a fresh child process (which inherits the
pin), round-robin over ``--rounds`` rounds; the table shows the median round.

Sequential GET /small (~100 B JSON), one request at a time: 1000 warm-up
requests, then N timed. Then throughput: N requests shared by ``--threads``
threads on one client (pool size = threads). Columns: client CPU µs per
request (getrusage RUSAGE_SELF, user + sys, all threads; the steady figure on
a noisy VM), req/s, p50/p99 latency (sequential only), and CPU per request as
a ratio to warmline's (> 1: the peer burns more CPU than warmline). The
user-CPU column leaves out the kernel's share (syscalls, loopback TCP,
wake-ups), which is the same work for every client and dominates on a VM.

Floors: ``raw-socket`` is the anchors' blocking client (recv(262144) and a
Content-Length parse, nothing else); ``raw-recv-into`` is the same with
recv_into a preallocated buffer, the cheapest way CPython can do it.
Only talks to 127.0.0.1; every timed section is bounded by N and 120 s.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

PATH = "/small"
EXPECT_LEN = 100  # /small is 100 bytes from nginx and from granian
WARMUP = 1000
DEADLINE_S = 120.0
Get = Callable[[], bytes]

SEQUENTIAL = ["warmline", "warmline-lease", "raw-socket", "raw-recv-into", "pycurl", "urllib3"]
SEQUENTIAL_SLOW = ["requests"]
THREADED = ["warmline", "urllib3", "requests"]


# -- clients: each returns (get, close); get() does one GET and returns the body


def _warmline(url: str, conc: int) -> tuple[Get, Callable[[], None]]:
    from warmline.sync import AtomicClientPool

    pool = AtomicClientPool.connect(url, connections=conc)
    get = pool.get

    def call() -> bytes:
        return get(PATH).content

    return call, pool.close


def _warmline_lease(url: str, conc: int) -> tuple[Get, Callable[[], None]]:
    from warmline.sync import AtomicClientPool

    pool = AtomicClientPool.connect(url, connections=conc)
    acquire = pool.acquire

    def call() -> bytes:
        with acquire(timeout=1.0) as slot:
            return slot.get(PATH).content

    return call, pool.close


def _request_bytes(url: str) -> tuple[bytes, str, int]:
    host, _, port = url.removeprefix("http://").partition(":")
    request = b"GET %s HTTP/1.1\r\nHost: %s:%s\r\n\r\n" % (
        PATH.encode(),
        host.encode(),
        port.encode(),
    )
    return request, host, int(port)


def _response_end(buf: bytes | bytearray) -> int:
    # The anchors' framing: Content-Length only, as the raw floors do.
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return -1
    head = bytes(buf[:end]).lower()
    i = head.index(b"\r\ncontent-length:") + 17
    j = head.find(b"\r\n", i)
    return end + 4 + int(head[i : j if j > 0 else None])


def _raw_socket(url: str, conc: int) -> tuple[Get, Callable[[], None]]:
    req, host, port = _request_bytes(url)
    s = socket.create_connection((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def call() -> bytes:  # as /work/shared/anchors/bench.py rawsock_client
        s.sendall(req)
        buf, need = bytearray(), -1
        while need < 0 or len(buf) < need:
            chunk = s.recv(262144)
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
            if need < 0:
                need = _response_end(buf)
        return bytes(buf[buf.find(b"\r\n\r\n") + 4 : need])

    return call, s.close


def _raw_recv_into(url: str, conc: int) -> tuple[Get, Callable[[], None]]:
    req, host, port = _request_bytes(url)
    s = socket.create_connection((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    store = bytearray(262144)
    mv = memoryview(store)

    def call() -> bytes:
        s.sendall(req)
        data = b""
        need = -1
        while need < 0 or len(data) < need:
            n = s.recv_into(store)
            if not n:
                raise ConnectionError("closed")
            data += mv[:n]
            if need < 0:
                need = _response_end(data)
        return data[data.find(b"\r\n\r\n") + 4 : need]

    return call, s.close


def _pycurl(url: str, conc: int) -> tuple[Get, Callable[[], None]]:
    import pycurl  # type: ignore[import-not-found]

    c = pycurl.Curl()
    c.setopt(pycurl.URL, url + PATH)
    c.setopt(pycurl.PROXY, "")  # never a proxy from the environment

    def call() -> bytes:
        buf = io.BytesIO()
        c.setopt(pycurl.WRITEDATA, buf)
        c.perform()
        return buf.getvalue()

    return call, c.close


def _urllib3(url: str, conc: int) -> tuple[Get, Callable[[], None]]:
    import urllib3

    pm = urllib3.PoolManager(maxsize=conc, block=True)
    full = url + PATH

    def call() -> bytes:
        return pm.request("GET", full).data

    return call, pm.clear


def _requests(url: str, conc: int) -> tuple[Get, Callable[[], None]]:
    import requests

    s = requests.Session()
    s.trust_env = False
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=conc, pool_block=True)
    s.mount("http://", adapter)
    full = url + PATH

    def call() -> bytes:
        return s.get(full).content

    return call, s.close


CLIENTS: dict[str, Callable[[str, int], tuple[Get, Callable[[], None]]]] = {
    "warmline": _warmline,
    "warmline-lease": _warmline_lease,
    "raw-socket": _raw_socket,
    "raw-recv-into": _raw_recv_into,
    "pycurl": _pycurl,
    "urllib3": _urllib3,
    "requests": _requests,
}


# -- child: one client, one mode, one JSON line ------------------------------


def _cpu_s() -> tuple[float, float]:
    """(user + system, user) CPU seconds of this process, all threads."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_utime


def _pct(sorted_ns: list[int], q: float) -> float:
    return sorted_ns[max(0, int(q * len(sorted_ns) + 0.999999) - 1)] / 1000.0


def _sequential(get: Get, n: int) -> dict[str, Any]:
    for _ in range(WARMUP):
        get()
    lat = [0] * n
    errors = 0
    clock = time.perf_counter_ns
    stop = time.perf_counter() + DEADLINE_S
    (cpu0, user0), t0 = _cpu_s(), time.perf_counter()
    done = 0
    for i in range(n):
        start = clock()
        body = get()
        lat[i] = clock() - start
        errors += len(body) != EXPECT_LEN
        done += 1
        if not i & 1023 and time.perf_counter() > stop:
            break
    wall, (cpu, user) = time.perf_counter() - t0, _cpu_s()
    timed = sorted(lat[:done])
    return {
        "done": done,
        "errors": errors,
        "rps": done / wall,
        "cpu_us": 1e6 * (cpu - cpu0) / done,
        "user_us": 1e6 * (user - user0) / done,
        "p50_us": _pct(timed, 0.5),
        "p99_us": _pct(timed, 0.99),
    }


def _threaded(get: Get, n: int, threads: int) -> dict[str, Any]:
    counter = iter(range(n + WARMUP))
    lock = threading.Lock()
    tally = {"done": 0, "errors": 0}
    stop = time.perf_counter() + DEADLINE_S

    def worker(limit: int) -> None:
        done = errors = 0
        # next() on a shared range iterator is atomic under the GIL.
        for i in counter:
            if i >= limit or time.perf_counter() > stop:
                break
            errors += len(get()) != EXPECT_LEN
            done += 1
        with lock:
            tally["done"] += done
            tally["errors"] += errors

    def phase(limit: int) -> None:
        workers = [threading.Thread(target=worker, args=(limit,)) for _ in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(DEADLINE_S + 30)

    phase(WARMUP)  # consumes the first WARMUP numbers
    counter = iter(range(n))
    tally.update(done=0, errors=0)
    (cpu0, user0), t0 = _cpu_s(), time.perf_counter()
    phase(n)
    wall, (cpu, user) = time.perf_counter() - t0, _cpu_s()
    done = max(tally["done"], 1)
    return {
        "done": tally["done"],
        "errors": tally["errors"],
        "rps": done / wall,
        "cpu_us": 1e6 * (cpu - cpu0) / done,
        "user_us": 1e6 * (user - user0) / done,
    }


def child(name: str, url: str, n: int, threads: int) -> dict[str, Any]:
    conc = max(threads, 1)
    try:
        get, close = CLIENTS[name](url, conc)
    except ImportError as exc:
        return {"client": name, "threads": threads, "skipped": f"ImportError: {exc}"}
    try:
        result = _sequential(get, n) if threads == 0 else _threaded(get, n, threads)
    finally:
        close()
    return {"client": name, "threads": threads, **result}


# -- parent: server, rounds, table -------------------------------------------


def _start_server(cpu: int | None) -> Any:
    from warmline._server.launch import nginx_path, start_granian, start_nginx

    if nginx_path() is not None:
        return start_nginx(cpu=cpu)
    return start_granian(cpu=cpu)


def _run_child(name: str, url: str, n: int, threads: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.bench_sync", "--child", name, "--url", url]
    cmd += ["--n", str(n), "--threads", str(threads)]
    limit = DEADLINE_S * 2 + 60
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=limit)
    if out.returncode != 0:
        return {"client": name, "threads": threads, "skipped": out.stderr.strip()[-300:]}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "skipped" not in r]
    if not ok:
        return runs[0]
    # The round with the median CPU per request, so a row's figures agree.
    ok.sort(key=lambda r: r["cpu_us"])
    row = dict(ok[len(ok) // 2])
    cpus = [r["cpu_us"] for r in ok]
    row["cpu_spread"] = (max(cpus) - min(cpus)) / statistics.median(cpus)
    return row


def _table(title: str, rows: list[dict[str, Any]], latency: bool) -> None:
    base = next((r for r in rows if r["client"] == "warmline" and "skipped" not in r), None)
    print(f"\n## {title}\n")
    cols = "| client | CPU µs/req | x warmline | CPU spread | user µs/req | req/s |"
    cols += " p50 µs | p99 µs |" if latency else ""
    print(cols + " errors |")
    print("|---" * (cols.count("|") - 1) + "|---|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['client']} | skipped: {r['skipped'][:80]} |")
            continue
        ratio = r["cpu_us"] / base["cpu_us"] if base else float("nan")
        line = f"| {r['client']} | {r['cpu_us']:.1f} | {ratio:.2f} | {r['cpu_spread']:.0%} |"
        line += f" {r['user_us']:.1f} | {r['rps']:,.0f} |"
        if latency:
            line += f" {r['p50_us']:.1f} | {r['p99_us']:.1f} |"
        print(line + f" {r['errors']} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=20000, help="timed requests per run")
    p.add_argument("--rounds", type=int, default=3, help="runs per row (median shown)")
    p.add_argument("--threads", type=int, default=16, help="threads for the throughput table")
    p.add_argument("--only", default="", help="only clients whose name contains this")
    p.add_argument(
        "--no-pin", action="store_true", help="let the scheduler place server and clients"
    )
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.url, args.n, args.threads)))
        return 0
    pin = not args.no_pin and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1
    if pin:
        os.sched_setaffinity(0, {0})  # children inherit the pin
    seq = [c for c in SEQUENTIAL + SEQUENTIAL_SLOW if args.only in c]
    thr = [c for c in THREADED if args.only in c]
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with _start_server(1 if pin else None) as server:
        where = "on CPU 1, clients on CPU 0" if pin else "and clients unpinned"
        print(
            f"server: {server.name} {server.url} {where}; "
            f"N={args.n}, {args.rounds} rounds, Python {sys.version.split()[0]}"
        )
        for rnd in range(args.rounds):
            for name in seq:
                runs.setdefault((name, 0), []).append(_run_child(name, server.url, args.n, 0))
            for name in thr:
                key = (name, args.threads)
                runs.setdefault(key, []).append(_run_child(name, server.url, args.n, args.threads))
            print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)
    _table(
        f"Sequential GET {PATH}, keep-alive ({WARMUP} warm-up, N={args.n})",
        [_median(runs[(c, 0)]) for c in seq],
        latency=True,
    )
    _table(
        f"Throughput, {args.threads} threads sharing one client, GET {PATH}",
        [_median(runs[(c, args.threads)]) for c in thr],
        latency=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
