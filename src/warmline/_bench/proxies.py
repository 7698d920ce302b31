"""The proxies the proxy scenarios go through, started on the server's CPU.

Two kinds, because each origin scheme reaches its origin in its own way in
every client measured (warmline, aiohttp, httpx, aiosonic, urllib3,
requests, curl all do the same):

* ``connect``: an https origin through an HTTP ``CONNECT`` tunnel. tinyproxy
  (Debian, written in C; CI installs it for the proxy tests) relays the
  tunnel's bytes and nothing more, so a pooled request costs the client the
  same bytes as a direct TLS request. Compared with the ``tls`` row.
* ``forward``: an http origin through an HTTP proxy, absolute-form requests
  (``GET http://host:port/small``, RFC 9112 section 3.2.2). tinyproxy does
  not fit here: it closes the client connection after every absolute-form
  request, so every request would open a new connection. pproxy (PyPI)
  keeps the connection alive (after the first request it relays to the same
  origin, rewriting each request line), so a pool stays pooled. Compared
  with the ``get`` row. pproxy is Python: it is the slowest part of the path
  and, sharing the server's CPU, limits the rows above concurrency 1.

A proxy that is not installed makes its scenario "not run" with the reason,
as a missing client does. Each proxy is our child, in a session of its own,
stopped by the PID we started (``launch.Server.stop``).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from warmline._server import launch

__all__ = ["KINDS", "missing_reason", "start", "start_relay", "version"]

KINDS = ("connect", "forward")
_START_TIMEOUT_S = 20.0

# pproxy imports uvloop when it can and then calls asyncio.get_event_loop()
# outside a running loop, which uvloop >= 0.21 refuses: hide uvloop from it.
_PPROXY = (
    "import sys; sys.modules['uvloop'] = None; "
    "from pproxy.server import main; sys.argv[0] = 'pproxy'; main()"
)


def _tinyproxy_path() -> str | None:
    return shutil.which("tinyproxy") or next(
        (p for p in ("/usr/bin/tinyproxy", "/usr/sbin/tinyproxy") if os.access(p, os.X_OK)), None
    )


def missing_reason(kind: str) -> str | None:
    """Why the ``kind`` proxy cannot run here, or None."""
    if kind == "connect" and _tinyproxy_path() is None:
        return "tinyproxy is not installed (apt-get install tinyproxy)"
    if kind == "forward" and importlib.util.find_spec("pproxy") is None:
        return "pproxy is not installed (pip install pproxy)"
    return None


def version(name: str) -> str:
    """The version of a proxy the bench started ("tinyproxy" or "pproxy"), or "?"."""
    if name == "pproxy":
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version("pproxy")
        return "?"
    binary = _tinyproxy_path()
    if binary is None:
        return "?"
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).strip().rsplit(" ", 1)[-1] or "?"


def start(kind: str, cpu: int | None) -> launch.Server:
    """Start the ``kind`` proxy on 127.0.0.1, pinned to ``cpu``; ``.url`` is its URL.

    Raises:
        RuntimeError: It is missing, exited, or did not listen in time.
    """
    reason = missing_reason(kind)
    if reason is not None:
        raise RuntimeError(reason)
    port = launch.free_port()
    workdir = tempfile.mkdtemp(prefix=f"warmline-{kind}-proxy-")
    if kind == "connect":
        name, cmd = "tinyproxy", _tinyproxy_cmd(Path(workdir), port)
    else:
        listen = f"http://{launch.HOST}:{port}"
        name, cmd = "pproxy", [sys.executable, "-c", _PPROXY, "-l", listen]
    return _launch(name, cmd, port, workdir, cpu)


def start_relay(upstream_port: int, cpu: int | None) -> launch.Server:
    """Start the ``tail`` scenario's delaying relay (``relay``) in front of the server.

    Raises:
        RuntimeError: It exited, or did not listen in time.
    """
    port = launch.free_port()
    workdir = tempfile.mkdtemp(prefix="warmline-relay-")
    cmd = [sys.executable, "-m", "warmline._bench.relay", str(port), str(upstream_port)]
    return _launch("relay", cmd, port, workdir, cpu)


def start_exchange(cpu: int | None) -> launch.Server:
    """Start the ``ccxt`` scenario's fake Binance (``exchange``) on the server's CPU.

    Raises:
        RuntimeError: It exited, or did not listen in time.
    """
    port = launch.free_port()
    workdir = tempfile.mkdtemp(prefix="warmline-exchange-")
    cmd = [sys.executable, "-m", "warmline._bench.exchange", str(port)]
    return _launch("exchange", cmd, port, workdir, cpu)


def _launch(name: str, cmd: list[str], port: int, workdir: str, cpu: int | None) -> launch.Server:
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    log = Path(workdir) / "proxy.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = launch.Server(name, proc, port, workdir=workdir)
    try:
        _wait_listening(server, log)
        server.pids = [proc.pid]
        if cpu is not None and not shutil.which("taskset") and hasattr(os, "sched_setaffinity"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(proc.pid, {cpu})
    except BaseException:
        server.stop()
        raise
    return server


def _tinyproxy_cmd(workdir: Path, port: int) -> list[str]:
    """tinyproxy in the foreground: no auth, no Via header, CONNECT to any port.

    MaxClients above the bench's largest pool (64) plus a margin: tinyproxy
    refuses connections beyond it.
    """
    binary = _tinyproxy_path()
    assert binary is not None
    conf = workdir / "tinyproxy.conf"
    conf.write_text(
        f"Port {port}\nListen {launch.HOST}\nTimeout 600\nMaxClients 256\n"
        f"Allow 127.0.0.1\nDisableViaHeader Yes\nLogLevel Warning\n"
    )
    return [binary, "-d", "-c", str(conf)]


def _wait_listening(server: launch.Server, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            tail = log.read_text(errors="replace")[-500:].strip()
            raise RuntimeError(f"{server.name} exited at start: {tail}")
        with socket.socket() as s:
            if s.connect_ex((launch.HOST, server.port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"{server.name} did not listen on port {server.port} in time")
