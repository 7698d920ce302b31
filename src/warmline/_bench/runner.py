"""Run ``warmline bench``: start the server, run every client's cases, take medians.

The server (nginx when installed, else granian) listens on 127.0.0.1 and is
pinned to one CPU, with the proxies of the proxy scenarios (``proxies``);
every client runs in a fresh child process pinned to another
(``python -m warmline._bench.child``). A round runs each client once, all
its cases in one child; rounds are interleaved (all clients, then all
again), so that a slow period of the machine spreads over every row, and the
report shows the median of the rounds. A child that crashes or overruns its
per-case timeout costs only that case: the row shows the error, the next
cases run in a new child.

The server is stopped whatever happens: ``run`` holds it in try/finally, and
the CLI turns SIGTERM into an exception so that finally runs on it too.
"""

from __future__ import annotations

import contextlib
import datetime
import gzip
import http.client
import importlib.metadata
import importlib.util
import json
import os
import platform
import queue
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urlsplit

from warmline._bench import exchange, proxies
from warmline._bench.bodies import STREAM_CLIENTS
from warmline._bench.clients import CLIENTS, ORDER, missing_reason, unsupported
from warmline._server import launch

__all__ = [
    "SCENARIOS",
    "BenchError",
    "Options",
    "Progress",
    "Scenario",
    "run",
]

CHILD = [sys.executable, "-m", "warmline._bench.child"]
MICRO_MODULES = ("objpool", "http11_parse", "http11_build", "decoders")

# A case may take its time cap plus setup; anything far beyond is a hang.
_CASE_TIMEOUT_S = 30.0
# The first case of a child also pays the interpreter start and the imports.
_STARTUP_S = 30.0
_MICRO_TIMEOUT_S = 240.0


class BenchError(Exception):
    """A problem the user can fix (bad URL, port in use): one line, exit code 2."""


@dataclass(frozen=True)
class Scenario:
    """One kind of case. ``endpoint`` names a server endpoint, not a path.

    ``proxy`` names the kind of proxy the requests go through (see
    ``proxies``); ``sweep`` runs the case at every concurrency, not only 1.
    ``delayed`` goes through the relay that holds every 20th response for
    50 ms (``relay``), with the long budget; ``clients`` (None: all) are the
    only clients the scenario compares.
    """

    key: str
    title: str
    method: str = "GET"
    endpoint: str = "small"
    fresh: bool = False
    tls: bool = False
    fanout: bool = False
    proxy: str | None = None
    sweep: bool = False
    delayed: bool = False
    clients: tuple[str, ...] | None = None
    # Served by the fake exchange (``exchange``) instead of the HTTP server.
    exchange: bool = False
    stream: bool = False
    gunzip: bool = False


# The download scenario's body, in bytes: (quick) -> size. nginx serves these
# two sizes (launch.STREAM_SIZES), granian any.
DOWNLOAD_SIZES = {False: 256 << 20, True: 16 << 20}

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("get", "Keep-alive GET /small (~100 B JSON)", sweep=True),
    Scenario("post", "Keep-alive POST /order (small JSON order, echoed)", "POST", "order"),
    Scenario("large", "Keep-alive GET /large (64 KiB body)", endpoint="large"),
    Scenario("chunked", "Keep-alive GET /chunked (8.5 KB, chunked coding)", endpoint="chunked"),
    Scenario(
        "gzip",
        "Keep-alive GET /book.json (5.2 KB JSON order book sent gzipped, 1.9 KB), decoded:"
        " the raw floors with zlib.decompress, pycurl with ACCEPT_ENCODING",
        endpoint="gzip",
        gunzip=True,
    ),
    Scenario(
        "download",
        f"Streamed download of {DOWNLOAD_SIZES[False] >> 20} MiB ({DOWNLOAD_SIZES[True] >> 20} MiB"
        " with --quick), read piece by piece, only counted: CPU per request is per download",
        endpoint="download",
        stream=True,
        clients=STREAM_CLIENTS,
    ),
    Scenario("newconn", "New connection per request, GET /small (TCP)", fresh=True),
    Scenario("tls", "Keep-alive GET /small over TLS", tls=True),
    Scenario("newconn-tls", "New connection per request over TLS", fresh=True, tls=True),
    Scenario(
        "fanout",
        "Fan-out: one GET /small to each of 5 exchanges in parallel (latency of the fan-out)",
        fanout=True,
    ),
    # The two ways an HTTP proxy carries a request, each compared with its
    # direct twin (same client, loop and concurrency): "CPU vs direct".
    Scenario(
        "proxy",
        "Keep-alive GET /small (TCP) through an HTTP proxy: absolute-form requests to pproxy,"
        " which keeps the connection alive (tinyproxy closes it after each one);"
        " compared with get",
        proxy="forward",
        sweep=True,
    ),
    Scenario(
        "proxy-tls",
        "Keep-alive GET /small over TLS through a CONNECT tunnel (tinyproxy), TLS to the"
        " origin inside it; compared with tls",
        tls=True,
        proxy="connect",
    ),
    Scenario(
        "tail",
        "Sequential GET /small through a relay that delays every 20th response by 50 ms:"
        " warmline-client with and without Hedge(after=0.005, max_extra=1, budget=0.05)",
        delayed=True,
        clients=("warmline-client", "warmline-client+hedge"),
    ),
    Scenario(
        "spin",
        "Sequential GET /small: the thread pool with spin=50e-6 and without,"
        " against the blocking floors (raw socket, pycurl)",
        clients=("warmline-threads", "warmline-threads+spin", "raw-socket", "pycurl"),
    ),
    Scenario(
        "ccxt",
        "ccxt binance fetch_ticker('BTC/USDT') against a fake Binance (a Python server on the"
        " server's CPU): ccxt on its own aiohttp session, and on"
        " warmline.contrib.aiohttp.ClientSession",
        endpoint="ticker",
        exchange=True,
        clients=("ccxt", "ccxt+warmline"),
    ),
)
SCENARIO_KEYS = tuple(s.key for s in SCENARIOS)
FANOUT_WIDTH = 5


@dataclass(frozen=True)
class Budget:
    """How long one case runs: each section stops at its count or its seconds."""

    warm_requests: int
    warm_s: float
    requests: int
    time_cap_s: float


# (quick, new connection per request) -> budget. The time cap keeps a slow
# client (~1 ms a request) within the same time as a fast one; a fast client
# stops at the count. The CLI's --help quotes these.
BUDGETS: dict[tuple[bool, bool], Budget] = {
    (False, False): Budget(500, 0.1, 20_000, 0.3),
    (False, True): Budget(20, 0.05, 2_000, 0.3),
    (True, False): Budget(100, 0.03, 2_000, 0.08),
    (True, True): Budget(5, 0.02, 200, 0.08),
}
# The tail scenario: 1 response in 20 takes 50 ms (2.5 ms a request on
# average unhedged), and its p99.9 needs a thousand samples or more.
LONG_BUDGETS: dict[bool, Budget] = {
    False: Budget(200, 0.5, 2_000, 6.0),
    True: Budget(50, 0.2, 400, 1.5),
}
# The download scenario: one warm-up download, then a few timed ones.
DOWNLOAD_BUDGETS: dict[bool, Budget] = {
    False: Budget(1, 0.0, 4, 1.0),
    True: Budget(1, 0.0, 2, 0.3),
}
DEFAULT_ROUNDS, QUICK_ROUNDS = 3, 1
ASYNC_CONCURRENCY, SYNC_CONCURRENCY = (1, 16, 64), (1, 16)


@dataclass
class Options:
    """What to run; the CLI's options, validated."""

    quick: bool = False
    url: str | None = None
    clients: list[str] | None = None
    concurrency: list[int] | None = None
    requests: int | None = None
    tls: bool = False
    out: Path = Path("bench-results")
    rounds: int | None = None
    port: int | None = None
    scenarios: list[str] | None = None
    micro: bool = True
    child: list[str] = field(default_factory=lambda: list(CHILD))
    case_timeout: float = _CASE_TIMEOUT_S
    startup_timeout: float = _STARTUP_S
    # --live: seconds between the children's stats snapshots (None: off).
    live: float | None = None

    @property
    def n_rounds(self) -> int:
        if self.rounds is not None:
            return self.rounds
        return QUICK_ROUNDS if self.quick else DEFAULT_ROUNDS


class Progress(Protocol):
    """Where the runner reports as it goes (the CLI's rich display)."""

    def start(self, total: int) -> None: ...

    def step(self, label: str, line: dict[str, Any]) -> None: ...

    def note(self, text: str) -> None: ...


class SilentProgress:
    """A Progress that shows nothing (for tests and --json without a terminal)."""

    def start(self, total: int) -> None:
        pass

    def step(self, label: str, line: dict[str, Any]) -> None:
        pass

    def note(self, text: str) -> None:
        pass


# --------------------------------------------------------------------- servers
@dataclass
class Endpoint:
    path: str
    expect: tuple[int, int]  # body length range a correct response has


@dataclass
class Servers:
    """The server(s) under test, as the cases see them."""

    name: str
    version: str
    plain: list[str]
    tls: list[str]
    endpoints: dict[str, Endpoint]
    processes: list[launch.Server] = field(default_factory=list)
    status_url: str | None = None
    cafile: str | None = None
    cpu: int | None = None
    # The running proxies (kind -> URL) and why the others could not start.
    proxies: dict[str, str] = field(default_factory=dict)
    proxy_names: dict[str, str] = field(default_factory=dict)
    proxy_missing: dict[str, str] = field(default_factory=dict)
    # The delaying relay of the tail scenario, or why it could not start.
    delayed: str | None = None
    delayed_missing: str | None = None
    # The ccxt scenario's fake exchange, or why it could not start.
    exchange: str | None = None
    exchange_missing: str | None = None

    @property
    def pids(self) -> list[int]:
        return [pid for s in self.processes for pid in (s.pids or [s.proc.pid])]

    def stop(self) -> None:
        for server in self.processes:
            with contextlib.suppress(Exception):
                server.stop()


def _cpus() -> tuple[int | None, int | None]:
    """(client CPU, server CPU), or (None, None) with fewer than two CPUs."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return None, None
    if len(allowed) < 2:
        return None, None
    return allowed[0], allowed[1]


def _tls_files(workdir: Path) -> tuple[str, str, str]:
    """A throwaway CA and a cert for 127.0.0.1: (certfile, keyfile, cafile)."""
    try:
        import trustme
    except ImportError as exc:
        raise BenchError("TLS scenarios need trustme (pip install trustme)") from exc
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile, cafile = workdir / "cert.pem", workdir / "key.pem", workdir / "ca.pem"
    for i, pem in enumerate(cert.cert_chain_pems):
        pem.write_to_path(str(certfile), append=i > 0)
    cert.private_key_pem.write_to_path(str(keyfile))
    ca.cert_pem.write_to_path(str(cafile))
    return str(certfile), str(keyfile), str(cafile)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((launch.HOST, port))
        except OSError:
            return False
    return True


def _start_embedded(
    opts: Options, scenarios: Sequence[Scenario], workdir: Path, servers: Servers
) -> None:
    """Start nginx or granian with every port the scenarios need, into ``servers``."""
    fanout = any(s.fanout for s in scenarios)
    width = FANOUT_WIDTH if fanout else 1
    n_tls = width if opts.tls else (1 if any(s.tls for s in scenarios) else 0)
    if opts.port is not None and not _port_free(opts.port):
        raise BenchError(f"port {opts.port} on {launch.HOST} is in use; pick another --port")
    tls_files = _tls_files(workdir) if n_tls else None
    certfile, keyfile, servers.cafile = tls_files or (None, None, None)
    if launch.nginx_path():
        server = launch.start_nginx(
            port=opts.port,
            cpu=servers.cpu,
            extra_ports=[launch.free_port() for _ in range(width - 1)],
            tls_ports=[launch.free_port() for _ in range(n_tls)],
            certfile=certfile,
            keyfile=keyfile,
        )
        servers.processes.append(server)
        servers.name, servers.version = "nginx", _nginx_version()
        servers.plain, servers.tls = server.urls, server.tls_urls
        servers.status_url = server.url + "/status"
        return
    servers.name, servers.version = "granian", _version("granian") or "?"
    for i in range(width):
        server = launch.start_granian(port=opts.port if i == 0 else None, cpu=servers.cpu)
        servers.processes.append(server)
        servers.plain.append(server.url)
    for _ in range(n_tls):
        server = launch.start_granian(cpu=servers.cpu, certfile=certfile, keyfile=keyfile)
        servers.processes.append(server)
        servers.tls.append(server.url)


def _probe(
    origin: str, method: str, path: str, body: bytes | None, cafile: str | None
) -> tuple[int, bytes]:
    parts = urlsplit(origin)
    host, port = parts.hostname or "127.0.0.1", parts.port
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        ctx = ssl.create_default_context(cafile=cafile)
        conn = http.client.HTTPSConnection(host, port, timeout=10, context=ctx)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _find_endpoints(servers: Servers) -> None:
    """Each endpoint's path, and the body length range of a correct answer."""
    paths = {"small": "/small", "large": "/large", "chunked": "/chunked", "gzip": "/book.json"}
    paths["order"] = "/order"
    origin = servers.plain[0]
    for name, path in paths.items():
        if name == "order":
            compact = json.dumps(ORDER, separators=(",", ":")).encode()
            status, body = _probe(origin, "POST", path, compact, servers.cafile)
            # Both servers echo the body; clients serialise the order
            # compactly or with json.dumps's default spaces.
            if body != compact:
                raise BenchError(f"{servers.name} does not echo POST {path}: broken server")
            expect = (len(compact), len(json.dumps(ORDER)))
        else:
            status, body = _probe(origin, "GET", path, None, servers.cafile)
            if name == "gzip":  # sent gzipped; the clients decode it
                body = gzip.decompress(body)
            expect = (len(body), len(body))
        if status != 200:
            raise BenchError(f"{servers.name} answered {status} to {path}: broken server config")
        servers.endpoints[name] = Endpoint(path, expect)


def _external(url: str) -> Servers:
    """An existing server: GET its path, check that it answers 200."""
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        status, first = _probe(origin, "GET", path, None, None)
        _, second = _probe(origin, "GET", path, None, None)
    except (OSError, http.client.HTTPException) as exc:
        raise BenchError(f"cannot reach {url}: {exc}") from exc
    if status != 200:
        raise BenchError(f"{url} answered {status}; give a URL that answers 200")
    # A body whose length changes between two GETs is checked for status only.
    expect = (len(first), len(first)) if len(first) == len(second) else (0, 1 << 40)
    is_tls = parts.scheme == "https"
    return Servers(
        name=f"external ({parts.netloc})",
        version="?",
        plain=[] if is_tls else [origin],
        tls=[origin] if is_tls else [],
        endpoints={"small": Endpoint(path, expect)},
    )


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _nginx_version() -> str:
    binary = launch.nginx_path()
    if binary is None:
        return "?"
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    return out.stderr.strip().rsplit("/", 1)[-1] or "?"


@contextlib.contextmanager
def _serving(opts: Options, scenarios: Sequence[Scenario], progress: Progress) -> Iterator[Servers]:
    """The server(s) for the run, always stopped on exit (error, Ctrl-C, SIGTERM)."""
    if opts.url:
        yield _external(opts.url)
        return
    _, server_cpu = _cpus()
    workdir = Path(tempfile.mkdtemp(prefix="warmline-bench-"))
    servers = Servers("?", "?", [], [], {}, cpu=server_cpu)
    try:
        _start_embedded(opts, scenarios, workdir, servers)
        pins = "" if server_cpu is None else f", pinned to CPU {server_cpu}"
        progress.note(
            f"server: {servers.name} {servers.version} on {servers.plain[0]}{pins}, "
            f"pids {' '.join(map(str, servers.pids))}"
        )
        _find_endpoints(servers)
        _start_proxies(scenarios, servers, progress)
        yield servers
    finally:
        servers.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _start_proxies(scenarios: Sequence[Scenario], servers: Servers, progress: Progress) -> None:
    """Start each proxy kind the scenarios need on the server's CPU; note those that can't."""
    for kind in dict.fromkeys(s.proxy for s in scenarios if s.proxy):
        try:
            server = proxies.start(kind, servers.cpu)
        except (RuntimeError, OSError) as exc:
            servers.proxy_missing[kind] = str(exc)
            continue
        servers.processes.append(server)
        servers.proxies[kind] = server.url
        servers.proxy_names[kind] = f"{server.name} {proxies.version(server.name)}"
        pins = "" if servers.cpu is None else f", pinned to CPU {servers.cpu}"
        progress.note(f"proxy ({kind}): {server.name} on {server.url}{pins}, pid {server.proc.pid}")
    if any(s.delayed for s in scenarios):
        _start_relay(servers, progress)
    if any(s.exchange for s in scenarios):
        _start_exchange(servers, progress)


def _start_exchange(servers: Servers, progress: Progress) -> None:
    """Start the ccxt scenario's fake Binance on the server's CPU; its ticker is an endpoint."""
    try:
        server = proxies.start_exchange(servers.cpu)
    except (RuntimeError, OSError) as exc:
        servers.exchange_missing = str(exc)
        return
    servers.processes.append(server)
    servers.exchange = server.url
    n = len(exchange.ticker_body())
    servers.endpoints["ticker"] = Endpoint(exchange.TICKER_PATH, (n, n))
    progress.note(f"fake exchange (ccxt): {server.url}, pid {server.proc.pid}")


def _start_relay(servers: Servers, progress: Progress) -> None:
    """Start the tail scenario's relay in front of the first plain origin, on the server's CPU."""
    upstream = urlsplit(servers.plain[0]).port if servers.plain else None
    if upstream is None:
        servers.delayed_missing = "no plain-TCP server for the relay"
        return
    try:
        server = proxies.start_relay(upstream, servers.cpu)
    except (RuntimeError, OSError) as exc:
        servers.delayed_missing = str(exc)
        return
    servers.processes.append(server)
    servers.delayed = server.url
    progress.note(f"relay (tail): {server.url} -> {servers.plain[0]}, pid {server.proc.pid}")


def _runnable(scenarios: Sequence[Scenario], servers: Servers) -> list[Scenario]:
    """The scenarios whose proxy or relay (if any) is running."""
    return [
        s
        for s in scenarios
        if (s.proxy is None or s.proxy in servers.proxies)
        and (not s.delayed or servers.delayed)
        and (not s.exchange or servers.exchange)
    ]


def _skipped(scenarios: Sequence[Scenario], servers: Servers) -> list[dict[str, str]]:
    """A "not run" line for each scenario whose proxy or relay is missing."""
    out = [
        {"scenario": s.key, "reason": servers.proxy_missing.get(s.proxy, "no proxy")}
        for s in scenarios
        if s.proxy is not None and s.proxy not in servers.proxies
    ]
    reason = servers.delayed_missing or "no relay"
    out += [
        {"scenario": s.key, "reason": reason}
        for s in scenarios
        if s.delayed and not servers.delayed
    ]
    out += [
        {"scenario": s.key, "reason": servers.exchange_missing or "no fake exchange"}
        for s in scenarios
        if s.exchange and not servers.exchange
    ]
    return out


def direct_twins(scenarios: Sequence[Scenario], opts: Options) -> dict[str, str]:
    """Each proxy scenario's direct twin: same endpoint, TLS or not, kept alive, no proxy."""
    out = {}
    for sc in scenarios:
        if sc.proxy is None:
            continue
        tls = sc.tls or opts.tls
        for other in scenarios:
            if (
                other.proxy is None
                and not other.delayed
                and other.clients is None  # tail, spin: a few clients only
                and not other.fresh
                and not other.fanout
                and other.endpoint == sc.endpoint
                and (other.tls or opts.tls) == tls
            ):
                out[sc.key] = other.key
                break
    return out


# ----------------------------------------------------------------------- cases
@dataclass
class Group:
    """One client on one loop, and its cases: what one child process runs."""

    client: str
    loop: str
    cases: list[dict[str, Any]]


def _budget(opts: Options, sc: Scenario) -> tuple[int, float, int, float]:
    """(warm-up requests, warm-up seconds, timed requests, timed seconds).

    Every section stops at whichever bound comes first, so a slow client
    (~1 ms a request) fits in the same time as a fast one.
    """
    if sc.stream:
        budget = DOWNLOAD_BUDGETS[opts.quick]
    elif sc.delayed:
        budget = LONG_BUDGETS[opts.quick]
    else:
        budget = BUDGETS[opts.quick, sc.fresh]
    warm_n, warm_s, n, cap = budget.warm_requests, budget.warm_s, budget.requests, budget.time_cap_s
    if sc.fanout:
        warm_n, n = warm_n // FANOUT_WIDTH, n // FANOUT_WIDTH
    if opts.requests is not None:
        n = max(1, opts.requests // FANOUT_WIDTH) if sc.fanout else opts.requests
        warm_n = min(warm_n, max(1, n // 4))
    return warm_n, warm_s, n, cap


def _selected_scenarios(opts: Options, notes: list[str]) -> list[Scenario]:
    if opts.url:
        keys = ["get", "newconn"]
    else:
        keys = list(opts.scenarios or SCENARIO_KEYS)
        if opts.tls:  # every scenario is over TLS already (and none is forwarded)
            keys = [k for k in keys if k not in ("tls", "newconn-tls", "proxy", "tail")]
    chosen = [s for s in SCENARIOS if s.key in keys]
    if opts.url or importlib.util.find_spec("trustme") is not None:
        return chosen
    # The embedded server's certificate comes from trustme.
    if opts.tls:
        raise BenchError("--tls needs trustme for the server's certificate: pip install trustme")
    if any(s.tls for s in chosen):
        notes.append("trustme is not installed: the TLS scenarios were not run")
    return [s for s in chosen if not s.tls]


def _concurrencies(opts: Options, kind: str, sc: Scenario) -> list[int]:
    if not sc.sweep:
        return [1]
    if opts.concurrency:
        return list(opts.concurrency)
    return list(ASYNC_CONCURRENCY if kind == "async" else SYNC_CONCURRENCY)


def _origins(opts: Options, sc: Scenario, servers: Servers) -> list[str]:
    if sc.delayed and servers.delayed:
        return [servers.delayed]
    if sc.exchange and servers.exchange:
        return [servers.exchange]
    tls = sc.tls or opts.tls or not servers.plain
    pool = servers.tls if tls else servers.plain
    return pool[:FANOUT_WIDTH] if sc.fanout else pool[:1]


def _cases(
    opts: Options, kind: str, scenarios: Sequence[Scenario], servers: Servers
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for sc in scenarios:
        endpoint = servers.endpoints.get(sc.endpoint) or servers.endpoints["small"]
        if sc.stream:
            size = DOWNLOAD_SIZES[opts.quick]
            endpoint = Endpoint(f"/stream/{size}", (size, size))
        warm_n, warm_s, n, cap = _budget(opts, sc)
        out.extend(
            {
                "id": f"{sc.key}/c{conc}",
                "scenario": sc.key,
                "method": sc.method,
                "path": endpoint.path,
                "origins": _origins(opts, sc, servers),
                "conc": conc,
                "workers": conc,
                "fresh": sc.fresh,
                "fanout": sc.fanout,
                "n": n,
                "warm_n": warm_n,
                "warm_s": warm_s,
                "time_s": cap,
                "expect": list(endpoint.expect),
                "proxy": servers.proxies.get(sc.proxy) if sc.proxy else None,
                "stream": sc.stream,
                "gunzip": sc.gunzip,
            }
            for conc in _concurrencies(opts, kind, sc)
        )
    return out


def _plan(
    opts: Options, scenarios: Sequence[Scenario], servers: Servers
) -> tuple[list[Group], list[dict[str, str]]]:
    """The groups to run, and a line for each client (or client's scenario) left out."""
    groups, missing = [], []
    for name in opts.clients or list(CLIENTS):
        info = CLIENTS[name]
        for loop in info.loops:
            reason = missing_reason(name, loop)
            if reason is not None:
                missing.append({"client": name, "loop": loop, "reason": reason})
                continue
            own = []
            for sc in _for_client(name, scenarios):
                why = unsupported(name, sc.proxy, sc.tls or opts.tls)
                if why is None:
                    own.append(sc)
                else:
                    missing.append({"client": name, "loop": loop, "reason": f"{sc.key}: {why}"})
            cases = _cases(opts, info.kind, own, servers)
            if cases:
                groups.append(Group(name, loop, cases))
    return groups, missing


def _planned(
    scenarios: Sequence[Scenario], groups: Sequence[Group]
) -> tuple[list[Scenario], list[dict[str, str]]]:
    """The scenarios some client runs, and a "not run" line for the others.

    tail and spin compare a few clients only: without them (``--clients``,
    or not installed) the scenario has no row.
    """
    keys = {c["scenario"] for g in groups for c in g.cases}
    kept = [s for s in scenarios if s.key in keys]
    out = []
    for s in scenarios:
        if s.key not in keys:
            wanted = ", ".join(s.clients or ()) or "any client"
            out.append({"scenario": s.key, "reason": f"none of its clients runs ({wanted})"})
    return kept, out


def _for_client(name: str, scenarios: Sequence[Scenario]) -> list[Scenario]:
    """The scenarios ``name`` takes part in: variants made for one scenario run only it."""
    only = CLIENTS[name].only
    return [
        sc
        for sc in scenarios
        if (sc.clients is None or name in sc.clients) and (only is None or sc.key in only)
    ]


# ---------------------------------------------------------------------- children
class Child:
    """A child process whose stdout lines arrive on a queue (with timeouts)."""

    def __init__(self, cmd: list[str]) -> None:
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        # Closed in kill(), which the runner always calls (try/finally).
        self.stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        # A session of its own: a Ctrl-C in the terminal reaches only the
        # runner, which then stops this child by its PID.
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self.stderr, env=env, start_new_session=True
        )
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        # --live: called with each {"live": ...} snapshot the child writes.
        self.on_live: Callable[[dict[str, Any]], None] | None = None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next_line(self, timeout: float) -> dict[str, Any] | str:
        """The next JSON line, or "timeout" or "eof"."""
        while True:
            try:
                raw = self.lines.get(timeout=timeout)
            except queue.Empty:
                return "timeout"
            if raw is None:
                return "eof"
            with contextlib.suppress(ValueError):
                data = json.loads(raw)
                if isinstance(data, dict) and "live" in data and self.on_live is not None:
                    self.on_live(data["live"])
                if isinstance(data, dict) and "id" in data:
                    return data

    def crash_message(self) -> str:
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            rc = None
        self.stderr.seek(0)
        tail = [ln.strip() for ln in self.stderr.read().decode(errors="replace").splitlines()]
        last = next((ln for ln in reversed(tail) if ln), "")
        return f"child exited (rc {rc})" + (f": {last[:300]}" if last else "")

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        # The pipe reaches EOF once the child is gone; then close our end.
        self.reader.join(timeout=5)
        if self.proc.stdout is not None and not self.reader.is_alive():
            self.proc.stdout.close()
        self.stderr.close()


class _Rounds:
    """Runs every group round after round and keeps every case's runs."""

    def __init__(self, opts: Options, servers: Servers, progress: Progress) -> None:
        self.opts = opts
        self.servers = servers
        self.progress = progress
        self.runs: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        self.hung: set[tuple[str, str, str]] = set()
        self.round = 0

    def spec(self, group: Group, cases: list[dict[str, Any]]) -> dict[str, Any]:
        # Pinned only when the server is: with an external server, or one CPU,
        # the scheduler places the client.
        client_cpu = _cpus()[0] if self.servers.cpu is not None else None
        return {
            "client": group.client,
            "loop": group.loop,
            "cpu": client_cpu,
            "server_pids": self.servers.pids,
            "status_url": self.servers.status_url,
            "cafile": self.servers.cafile,
            "cases": cases,
            **({"live": self.opts.live} if self.opts.live else {}),
        }

    def record(self, group: Group, case: dict[str, Any], line: dict[str, Any]) -> None:
        key = (group.client, group.loop, case["id"])
        self.runs.setdefault(key, []).append(line)
        label = f"[{self.round + 1}/{self.opts.n_rounds}] {group.client} {group.loop} {case['id']}"
        self.progress.step(label, line)

    def run_group(self, group: Group) -> None:
        pending = []
        for case in group.cases:
            if (group.client, group.loop, case["id"]) in self.hung:
                self.record(group, case, {"id": case["id"], "error": "skipped: hung earlier"})
            else:
                pending.append(case)
        while pending:
            pending = self._run_child(group, pending)

    def _run_child(self, group: Group, pending: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run ``pending`` in one child; the cases left when it had to stop."""
        child = Child([*self.opts.child, json.dumps(self.spec(group, pending))])
        if self.opts.live:
            child.on_live = getattr(self.progress, "live", None)
        try:
            first = True
            while pending:
                case = pending[0]
                timeout = self.opts.case_timeout + (self.opts.startup_timeout if first else 0.0)
                got = child.next_line(timeout)
                if isinstance(got, dict):
                    self.record(group, case, got)
                    pending.pop(0)
                    first = False
                    continue
                if got == "timeout":
                    self.hung.add((group.client, group.loop, case["id"]))
                    error = f"timed out after {timeout:g} s"
                    self.record(group, case, {"id": case["id"], "error": error})
                    pending.pop(0)
                    return pending
                message = child.crash_message()
                # Dead before its first case: it would die again, for every case.
                for lost in pending if first else pending[:1]:
                    self.record(group, lost, {"id": lost["id"], "error": message})
                return [] if first else pending[1:]
            return []
        finally:
            child.kill()


def _run_micro(opts: Options, cpu: int | None, progress: Progress) -> list[dict[str, Any]]:
    spec = {"kind": "micro", "modules": list(MICRO_MODULES), "quick": opts.quick, "cpu": cpu}
    child = Child([*opts.child, json.dumps(spec)])
    out: list[dict[str, Any]] = []
    try:
        for module in MICRO_MODULES:
            got = child.next_line(_MICRO_TIMEOUT_S)
            if isinstance(got, dict):
                out.append({"module": module, **{k: v for k, v in got.items() if k != "id"}})
                progress.step(f"micro {module}", got)
            else:
                message = "timed out" if got == "timeout" else child.crash_message()
                out.append({"module": module, "error": message})
                break
    finally:
        child.kill()
    return out


# ---------------------------------------------------------------------- summary
_METRICS = (
    "requests",
    "wall_s",
    "rps",
    "cpu_us_per_req",
    "client_busy",
    "server_busy",
    "new_conns",
    "p50_us",
    "p99_us",
    "p999_us",
    "extra_share",
    "peak_rss_mib",
)


def summarise(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over the rounds that worked, and what failed."""
    ok = [r for r in runs if "error" not in r and r.get("requests", 0) > r.get("errors", 0)]
    out: dict[str, Any] = {"rounds": len(runs), "rounds_ok": len(ok)}
    for metric in _METRICS:
        values = [r[metric] for r in ok if r.get(metric) is not None]
        out[metric] = statistics.median(values) if values else None
    out["errors"] = sum(r.get("errors", 0) for r in ok)
    cpu = [r["cpu_us_per_req"] for r in ok]
    mid = statistics.median(cpu) if cpu else 0.0
    out["cpu_spread"] = (max(cpu) - min(cpu)) / mid if len(cpu) > 1 and mid > 0 else None
    problems = [r.get("error") or r.get("first_error") for r in runs]
    failed = [r.get("error") or r.get("first_error") for r in runs if r not in ok]
    out["error"] = (failed[0] or "failed") if not ok else None
    out["problems"] = sorted({p for p in problems if p})
    return out


def _reference(
    rows: dict[tuple[str, str, str, int], dict[str, Any]], row: dict[str, Any]
) -> dict[str, Any] | None:
    """The warmline row a peer's CPU is compared with: same scenario, same concurrency."""
    scenario, conc = row["scenario"], row["conc"]
    first = ("warmline-threads", "sync") if row["loop"] == "sync" else ("warmline", row["loop"])
    for client, loop in (
        first,
        ("warmline", "uvloop"),
        ("warmline", "asyncio"),
        ("warmline-threads", "sync"),
    ):
        ref = rows.get((client, loop, scenario, conc))
        if ref is not None and ref.get("cpu_us_per_req"):
            return ref
    return None


def _titles(opts: Options, servers: Servers) -> dict[str, str]:
    """Scenario titles; with --url they name the URL's path, not /small."""
    if not opts.url:
        proto = "(TLS)" if opts.tls else "(TCP)"
        return {s.key: s.title.replace("(TCP)", proto) for s in SCENARIOS}
    path = servers.endpoints["small"].path
    proto = "(TLS)" if opts.url.startswith("https:") else "(TCP)"
    return {
        s.key: s.title.replace("/small (~100 B JSON)", path)
        .replace("/small", path)
        .replace("(TCP)", proto)
        for s in SCENARIOS
    }


def _rows(
    groups: Sequence[Group],
    runs: dict[tuple[str, str, str], list[dict[str, Any]]],
    twins: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    for group in groups:
        for case in group.cases:
            case_runs = runs.get((group.client, group.loop, case["id"]), [])
            row = {
                "client": group.client,
                "loop": group.loop,
                "scenario": case["scenario"],
                "conc": case["conc"],
                "path": case["path"],
                "origins": len(case["origins"]),
                **summarise(case_runs),
                "runs": case_runs,
            }
            rows[(group.client, group.loop, case["scenario"], case["conc"])] = row
    for row in rows.values():
        ref = _reference(rows, row)
        if ref is not None and row.get("cpu_us_per_req"):
            row["cpu_ratio"] = row["cpu_us_per_req"] / ref["cpu_us_per_req"]
            row["ratio_to"] = f"{ref['client']} {ref['loop']}"
        else:
            row["cpu_ratio"], row["ratio_to"] = None, None
        _direct_ratio(rows, row, (twins or {}).get(row["scenario"]))
        _stock_ratio(rows, row)
    order = {k: i for i, k in enumerate(SCENARIO_KEYS)}
    return sorted(rows.values(), key=lambda r: (order[r["scenario"]], r["conc"]))


def _direct_ratio(
    rows: dict[tuple[str, str, str, int], dict[str, Any]],
    row: dict[str, Any],
    twin: str | None,
) -> None:
    """``direct_ratio``: this proxy row's CPU / the same client's without the proxy."""
    row["direct_ratio"] = None
    if twin is None:
        return
    ref = rows.get((row["client"], row["loop"], twin, row["conc"]))
    if ref is not None and ref.get("cpu_us_per_req") and row.get("cpu_us_per_req"):
        row["direct_ratio"] = row["cpu_us_per_req"] / ref["cpu_us_per_req"]
        row["direct_to"] = twin


def _stock_ratio(
    rows: dict[tuple[str, str, str, int], dict[str, Any]], row: dict[str, Any]
) -> None:
    """``stock_ratio``: an adapter row's CPU / that of the stack it replaces (same case)."""
    row["stock_ratio"] = None
    stock = CLIENTS[row["client"]].replaces
    ref = rows.get((stock, row["loop"], row["scenario"], row["conc"])) if stock else None
    if ref is not None and ref.get("cpu_us_per_req") and row.get("cpu_us_per_req"):
        row["stock_ratio"] = row["cpu_us_per_req"] / ref["cpu_us_per_req"]
        row["stock_to"] = stock


def _versions(servers: Servers) -> dict[str, Any]:
    out: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        servers.name: servers.version,
        **{name.split(" ")[0]: name.split(" ")[-1] for name in servers.proxy_names.values()},
    }
    for dist in (
        "warmline",
        "aiohttp",
        "aiosonic",
        "httpx",
        "httpcore",
        "anyio",
        "sniffio",
        "urllib3",
        "requests",
        "pycurl",
        "uvloop",
        "h11",
        "httptools",
        "orjson",
    ):
        out[dist] = _version(dist)
    return out


def _notes(opts: Options, servers: Servers) -> list[str]:
    client_cpu, server_cpu = _cpus()
    notes = []
    if opts.url:
        notes.append(f"external server {opts.url}: not pinned, its CPU is not measured")
    elif server_cpu is None:
        notes.append("fewer than 2 CPUs: server and clients are not pinned")
    else:
        notes.append(f"server pinned to CPU {server_cpu}, clients to CPU {client_cpu}")
    for kind, name in servers.proxy_names.items():
        where = "" if server_cpu is None else f", pinned to the server's CPU {server_cpu}"
        form = "CONNECT tunnels (https)" if kind == "connect" else "absolute-form (http)"
        notes.append(
            f"proxy {name}: {form}{where}; server busy includes it;"
            " CPU vs direct = this row's CPU / the same client's without the proxy"
        )
    if servers.delayed:
        notes.append(
            "tail: through a relay (Python asyncio, on the server's CPU; server busy includes"
            " it) holding the response to every 20th request by 50 ms; extra req = hedges"
            " sent / requests made, warm-up included"
        )
    if importlib.util.find_spec("httpx") and not importlib.util.find_spec("sniffio"):
        notes.append(
            "sniffio is not installed: httpx (async) pays ~1.3x CPU (encode/httpcore#1103)"
        )
    return notes


def run(opts: Options, progress: Progress | None = None) -> dict[str, Any]:
    """Run the bench and return the report (a JSON-able dict).

    Raises:
        BenchError: Something the user can fix; the message is one line.
    """
    progress = progress or SilentProgress()
    started = datetime.datetime.now(datetime.UTC)
    t0 = time.monotonic()
    notes: list[str] = []
    wanted = _selected_scenarios(opts, notes)
    with _serving(opts, wanted, progress) as servers:
        scenarios = _runnable(wanted, servers)
        skipped = _skipped(wanted, servers)
        for sk in skipped:
            progress.note(f"scenario {sk['scenario']}: not run, {sk['reason']}")
        groups, missing = _plan(opts, scenarios, servers)
        scenarios, unplanned = _planned(scenarios, groups)
        skipped += unplanned
        for sk in unplanned:
            progress.note(f"scenario {sk['scenario']}: not run, {sk['reason']}")
        for m in missing:
            progress.note(f"{m['client']} ({m['loop']}): not run, {m['reason']}")
        total = opts.n_rounds * sum(len(g.cases) for g in groups)
        progress.start(total + (len(MICRO_MODULES) if opts.micro else 0))
        rounds = _Rounds(opts, servers, progress)
        for number in range(opts.n_rounds):
            rounds.round = number
            for group in groups:
                rounds.run_group(group)
        rows = _rows(groups, rounds.runs, direct_twins(scenarios, opts))
        report = _report(opts, servers, scenarios, rows, notes)
    # After the server stopped: the micro-benchmarks need no server.
    report["micro"] = _run_micro(opts, _cpus()[0], progress) if opts.micro else []
    report["missing"] = missing
    report["skipped"] = skipped
    report["started"] = started.strftime("%Y-%m-%dT%H:%M:%SZ")
    report["duration_s"] = time.monotonic() - t0
    return report


def _report(
    opts: Options,
    servers: Servers,
    scenarios: Sequence[Scenario],
    rows: list[dict[str, Any]],
    notes: list[str],
) -> dict[str, Any]:
    """Everything about the run but its timing, micro-benchmarks and missing clients."""
    titles = _titles(opts, servers)
    for row in rows:
        row["title"] = titles[row["scenario"]]
    return {
        "tool": "warmline bench",
        "options": {
            "quick": opts.quick,
            "url": opts.url,
            "clients": opts.clients,
            "concurrency": opts.concurrency,
            "requests": opts.requests,
            "tls": opts.tls,
            "rounds": opts.n_rounds,
            "scenarios": [s.key for s in scenarios],
        },
        "server": {
            "name": servers.name,
            "version": servers.version,
            "urls": servers.plain + servers.tls,
            "pids": servers.pids,
        },
        "scenarios": [
            {
                "key": s.key,
                "title": titles[s.key],
                "fresh": s.fresh,
                "tls": s.tls or opts.tls,
                "fanout": s.fanout,
                "proxy": servers.proxy_names.get(s.proxy) if s.proxy else None,
            }
            for s in scenarios
        ],
        "clients": {name: info.config for name, info in CLIENTS.items()},
        "rows": rows,
        "notes": _notes(opts, servers) + notes,
        "versions": _versions(servers),
    }
