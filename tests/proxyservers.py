"""Real proxy servers for the tests, on 127.0.0.1 only, none written here.

* pproxy (PyPI, a dev dependency): HTTP CONNECT + absolute-form, SOCKS5, with
  or without username/password, plain or TLS (an https:// proxy).
* tinyproxy (Debian): HTTP CONNECT and absolute-form, Basic auth.
* dante (Debian ``dante-server``): SOCKS5 without auth.
* microsocks (Debian): SOCKS5 with RFC 1929 username/password.

Each runs in the foreground as our child, with a config written to a tmp dir,
and is stopped by the PID we started. A Debian one that is not installed
makes its fixture skip with the apt-get line to run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from warmline._server.launch import free_port

HOST = "127.0.0.1"
USER, PASSWORD = "alice", "s3cr3t-Pa55"

# pproxy imports uvloop when it can and then calls asyncio.get_event_loop(),
# which uvloop >= 0.21 refuses outside a running loop; on asyncio's own loop
# that call still works on 3.11-3.13. So pproxy runs with uvloop hidden.
_PPROXY = (
    "import sys; sys.modules['uvloop'] = None; "
    "from pproxy.server import main; sys.argv[0] = 'pproxy'; main()"
)


@dataclass
class ProxyServer:
    name: str
    port: int
    proc: subprocess.Popen[bytes]

    def url(self, scheme: str = "http", *, auth: tuple[str, str] | None = None) -> str:
        creds = f"{auth[0]}:{auth[1]}@" if auth else ""
        return f"{scheme}://{creds}{HOST}:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def _wait_listening(proc: subprocess.Popen[bytes], port: int, name: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"{name} exited with {proc.returncode}: {out[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"{name} did not listen on {HOST}:{port} in time")


@contextlib.contextmanager
def run_proxy(
    name: str, argv: Sequence[str], port: int, cwd: Path | None = None
) -> Iterator[ProxyServer]:
    proc = subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )
    server = ProxyServer(name, port, proc)
    try:
        _wait_listening(proc, port, name)
        yield server
    finally:
        server.stop()
        if proc.stdout is not None:
            proc.stdout.close()


def pproxy(
    *, auth: bool, tls_files: tuple[str, str] | None = None, port: int | None = None
) -> contextlib.AbstractContextManager[ProxyServer]:
    """pproxy serving HTTP and SOCKS5 on one port (TLS on it with ``tls_files``)."""
    port = port or free_port()
    scheme = "http+socks5+ssl" if tls_files else "http+socks5"
    listen = f"{scheme}://{HOST}:{port}" + (f"#{USER}:{PASSWORD}" if auth else "")
    # --auth 0: forget a client IP's successful login at once; pproxy would
    # otherwise let 127.0.0.1 in for 30 days without credentials.
    argv = [sys.executable, "-c", _PPROXY, "-l", listen, "--auth", "0"]
    if tls_files:
        argv += ["--ssl", ",".join(tls_files)]
    return run_proxy("pproxy", argv, port)


def _debian(binary: str, package: str) -> str:
    path = shutil.which(binary) or next(
        (p for p in (f"/usr/sbin/{binary}", f"/usr/bin/{binary}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        pytest.skip(f"{binary} is not installed (CI installs it: apt-get install {package})")
    return path


@contextlib.contextmanager
def tinyproxy(workdir: Path) -> Iterator[ProxyServer]:
    """tinyproxy with Basic auth; CONNECT allowed to any port."""
    binary = _debian("tinyproxy", "tinyproxy")
    port = free_port()
    conf = workdir / "tinyproxy.conf"
    conf.write_text(
        f"Port {port}\nListen {HOST}\nTimeout 30\nMaxClients 50\nAllow 127.0.0.1\n"
        f"BasicAuth {USER} {PASSWORD}\nDisableViaHeader Yes\nLogLevel Warning\n"
    )
    with run_proxy("tinyproxy", [binary, "-d", "-c", str(conf)], port) as server:
        yield server


@contextlib.contextmanager
def dante(workdir: Path) -> Iterator[ProxyServer]:
    """dante's danted: SOCKS5 without auth, to loopback only."""
    binary = _debian("danted", "dante-server")
    port = free_port()
    conf = workdir / "danted.conf"
    privileged = "user.privileged: root\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"logoutput: stderr\ninternal: {HOST} port = {port}\nexternal: {HOST}\n"
        f"clientmethod: none\nsocksmethod: none\n{privileged}"
        "user.unprivileged: nobody\n"
        "client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }\n"
        "socks pass { from: 127.0.0.0/8 to: 127.0.0.0/8 }\n"
        "socks block { from: 0.0.0.0/0 to: 0.0.0.0/0 }\n"
    )
    with run_proxy("danted", [binary, "-f", str(conf), "-N", "1"], port) as server:
        yield server


@contextlib.contextmanager
def microsocks() -> Iterator[ProxyServer]:
    """microsocks: SOCKS5 with username/password (RFC 1929)."""
    binary = _debian("microsocks", "microsocks")
    port = free_port()
    argv = [binary, "-i", HOST, "-p", str(port), "-u", USER, "-P", PASSWORD]
    with run_proxy("microsocks", argv, port) as server:
        yield server
