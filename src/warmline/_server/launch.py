"""Start and stop real loopback servers (granian, nginx) for the bench and tests.

Each server listens on 127.0.0.1 only, is started as a child process, and is
always stopped by the PID we started (``Server.stop`` and the context manager),
even when the caller fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from warmline._server.app import BOOK_GZ, LARGE, SMALL, TICKERS

HOST = "127.0.0.1"
_START_TIMEOUT_S = 20.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def nginx_path() -> str | None:
    """The nginx binary, from PATH or Debian's /usr/sbin, or None."""
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )


@dataclass
class Server:
    """A running server process and where to reach it."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    scheme: str = "http"
    uds: str | None = None
    workdir: str | None = None
    pids: list[int] = field(default_factory=list)
    extra_ports: list[int] = field(default_factory=list)
    tls_ports: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{HOST}:{self.port}"

    @property
    def tls_urls(self) -> list[str]:
        """One https URL per TLS listener (nginx's ``tls_ports``)."""
        return [f"https://{HOST}:{p}" for p in self.tls_ports]

    @property
    def urls(self) -> list[str]:
        """The main URL, then one per extra plain-TCP listener."""
        return [self.url, *(f"http://{HOST}:{p}" for p in self.extra_ports)]

    def cpu_seconds(self) -> float:
        """CPU time used so far by the server's processes (from /proc schedstat)."""
        total = 0
        for pid in self.pids or [self.proc.pid]:
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
        return total / 1e9

    def stop(self) -> None:
        """Stop the process we started (SIGTERM, then SIGKILL) and clean up."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _pin(cmd: list[str], cpu: int | None) -> list[str]:
    if cpu is None or not shutil.which("taskset"):
        return cmd
    return ["taskset", "-c", str(cpu), *cmd]


def _pin_pids(pids: Sequence[int], cpu: int | None) -> None:
    # Without taskset the processes start unpinned: pin them now (children
    # forked later, e.g. a respawned nginx worker, inherit the mask).
    if cpu is None or shutil.which("taskset") or not hasattr(os, "sched_setaffinity"):
        return
    for pid in pids:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, {cpu})


def _ready(server: Server, log: Path, cpu: int | None) -> Server:
    """Wait for the port, find the worker PIDs, pin them; stop it on any failure."""
    try:
        _wait_ready(server, log)
        server.pids = [server.proc.pid, *_children(server.proc.pid)]
        _pin_pids(server.pids, cpu)
    except BaseException:
        # Ctrl-C during the start must not leave the server running.
        server.stop()
        raise
    return server


def _wait_ready(server: Server, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            server.stop()
            raise RuntimeError(f"{server.name} exited at start:\n{tail}")
        try:
            if server.uds:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(server.uds)
            else:
                socket.create_connection((HOST, server.port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{server.name} did not open port {server.port} in {_START_TIMEOUT_S} s")


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry))
    return out


def start_granian(
    *,
    port: int | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
    uds: str | None = None,
    cpu: int | None = None,
    extra: Sequence[str] = (),
) -> Server:
    """Start granian serving ``warmline._server.app`` on 127.0.0.1 (or a Unix socket)."""
    port = port or free_port()
    workdir = tempfile.mkdtemp(prefix="warmline-granian-")
    log = Path(workdir) / "granian.log"
    cmd = [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "asgi",
        "--workers",
        "1",
        "--runtime-threads",
        "1",
        "--no-ws",
        "--log-level",
        "warning",
        "--http",
        "1",
    ]
    cmd += ["--uds", uds] if uds else ["--host", HOST, "--port", str(port)]
    if certfile and keyfile:
        cmd += ["--ssl-certificate", certfile, "--ssl-keyfile", keyfile]
    cmd += [*extra, "warmline._server.app:app"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            _pin(cmd, cpu), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    scheme = "https" if certfile else "http"
    return _ready(Server("granian", proc, port, scheme, uds, workdir), log, cpu)


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid nginx.pid;
error_log error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server_tokens off;
    keepalive_requests 1000000;
    keepalive_timeout {keepalive}s;
    sendfile on;
    tcp_nodelay on;
    client_body_temp_path tmp;
    proxy_temp_path tmp;
    fastcgi_temp_path tmp;
    uwsgi_temp_path tmp;
    scgi_temp_path tmp;
    default_type application/octet-stream;
    server {{
{listen}
        location = /small {{
            default_type application/json;
            return 200 '{small}';
        }}
        location = /large {{ root html; }}
        location = /echo {{
            default_type text/plain;
            return 200 "$request_method $request_uri|$http_x_api_key|$http_user_agent";
        }}
        # POST /order echoes the request body (a small JSON order) with a
        # Content-Length. Stock nginx has no "echo the body" directive, so:
        # the mirror module reads the whole body first (precontent phase),
        # the static module then refuses the POST with 405, and error_page
        # sends that to @order, where $request_body is now set.
        location = /order {{
            client_body_buffer_size 16k;
            client_body_in_single_buffer on;
            mirror /_mirror_sink;
            mirror_request_body on;
            root html;
            error_page 405 = @order;
            try_files /order.txt =404;
        }}
        location @order {{
            default_type application/json;
            return 200 $request_body;
        }}
        location = /_mirror_sink {{ internal; return 204; }}
        # GET /chunked: the SSI filter drops Content-Length, so nginx sends
        # the file with Transfer-Encoding: chunked (RFC 9112 section 7.1).
        location = /chunked {{
            root html;
            ssi on;
            ssi_types *;
            default_type text/plain;
            try_files /chunked.txt =404;
        }}
        # GET /gzip: the TICKERS JSON, gzipped on the fly when asked to
        # (Accept-Encoding: gzip), then sent chunked.
        location = /gzip {{
            root html;
            gzip on;
            gzip_types *;
            gzip_min_length 0;
            default_type application/json;
            try_files /tickers.json =404;
        }}
        # GET /book.json: the order book JSON gzipped beforehand, sent with
        # Content-Encoding: gzip whatever the request asks (book.json.gz).
        location = /book.json {{
            root html;
            gzip_static always;
            default_type application/json;
        }}
        # GET /stream/N: N zero bytes, for each N of STREAM_SIZES (sparse
        # files: nothing on disk), sent with sendfile.
        location ^~ /stream/ {{ root html; }}
        location = /status {{ stub_status; }}
        location / {{ return 404; }}
    }}
}}
"""

# The sizes nginx serves at /stream/N (granian serves any N).
STREAM_SIZES = (16 << 20, 256 << 20)

# The /chunked body: the same bytes as granian's app serves at /chunked.
CHUNKED_BODY = b"".join(b"chunk-%d;" % i * 50 for i in range(20))


def _listen_lines(
    port: int, extra_ports: Sequence[int], tls_ports: Sequence[int], certfile: str
) -> str:
    lines = [f"        listen {HOST}:{p} backlog=4096;" for p in (port, *extra_ports)]
    lines += [f"        listen {HOST}:{p} ssl backlog=4096;" for p in tls_ports]
    if tls_ports:
        lines.append(f"        ssl_certificate {certfile};")
        lines.append(f"        ssl_certificate_key {certfile}.key;")
    return "\n".join(lines)


def _nginx_root(workdir: str, certfile: str | None, keyfile: str | None) -> Path:
    root = Path(workdir)
    (root / "html").mkdir()
    (root / "tmp").mkdir()
    (root / "html" / "large").write_bytes(LARGE)
    (root / "html" / "chunked.txt").write_bytes(CHUNKED_BODY)
    (root / "html" / "tickers.json").write_bytes(TICKERS)
    (root / "html" / "order.txt").write_bytes(b"POST a JSON order here\n")
    (root / "html" / "book.json.gz").write_bytes(BOOK_GZ)
    (root / "html" / "stream").mkdir()
    for size in STREAM_SIZES:
        with open(root / "html" / "stream" / str(size), "wb") as f:
            f.truncate(size)  # sparse: reads as zeros, takes no disk
    if certfile and keyfile:
        # Copies next to the config: the workers may run as nobody.
        (root / "cert.pem").write_bytes(Path(certfile).read_bytes())
        (root / "cert.pem.key").write_bytes(Path(keyfile).read_bytes())
    # The workers may run as nobody (when we are root): let them read html/.
    for path in (root, root / "html", root / "tmp", root / "html" / "stream"):
        path.chmod(0o755)
    for path in [*(root / "html").iterdir(), *(root / "html" / "stream").iterdir()]:
        if path.is_file():
            path.chmod(0o644)
    return root


def start_nginx(
    *,
    port: int | None = None,
    cpu: int | None = None,
    keepalive: int = 75,
    extra_ports: Sequence[int] = (),
    tls_ports: Sequence[int] = (),
    certfile: str | None = None,
    keyfile: str | None = None,
) -> Server:
    """Start nginx (one worker, keep-alive on, no access log) on 127.0.0.1.

    Args:
        port: The main plain-TCP port (a free one when None).
        cpu: Pin the master and its worker to this CPU.
        keepalive: keepalive_timeout in seconds.
        extra_ports: More plain-TCP ports served by the same worker.
        tls_ports: Also listen with TLS on these (needs certfile and keyfile).
        certfile: Certificate chain (PEM). keyfile: Its private key (PEM).
    """
    binary = nginx_path()
    if binary is None:
        raise RuntimeError("nginx is not installed")
    if tls_ports and not (certfile and keyfile):
        raise ValueError("tls_ports needs certfile and keyfile")
    port = port or free_port()
    workdir = tempfile.mkdtemp(prefix="warmline-nginx-")
    root = _nginx_root(workdir, certfile, keyfile)
    listen = _listen_lines(port, extra_ports, tls_ports, str(root / "cert.pem"))
    conf = NGINX_CONF.format(listen=listen, small=SMALL.decode(), keepalive=keepalive)
    (root / "nginx.conf").write_text(conf)
    log = root / "error.log"
    cmd = [binary, "-p", workdir, "-c", str(root / "nginx.conf")]
    with open(root / "stdout.log", "wb") as out:
        proc = subprocess.Popen(
            _pin(cmd, cpu), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server("nginx", proc, port, "http", None, workdir)
    server.extra_ports = list(extra_ports)
    server.tls_ports = list(tls_ports)
    return _ready(server, log, cpu)


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    """Stop ``server`` on exit, whatever happens."""
    try:
        yield server
    finally:
        server.stop()
