"""Shared fixtures: real servers (granian always, nginx when installed), TLS certs."""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from warmline._server.launch import Server, nginx_path, start_granian, start_nginx

from .proxyservers import ProxyServer, dante, microsocks, pproxy, tinyproxy
from .resilience_helpers import HoldingServer


@dataclass
class TLSFiles:
    ca: trustme.CA
    certfile: str
    keyfile: str

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        return ctx


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    d = tmp_path_factory.mktemp("tls")
    certfile, keyfile = d / "cert.pem", d / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(certfile), append=True)
    cert.private_key_pem.write_to_path(str(keyfile))
    return TLSFiles(ca, str(certfile), str(keyfile))


@pytest.fixture(scope="session")
def granian() -> Iterator[Server]:
    with start_granian() as server:
        yield server


@pytest.fixture(scope="session")
def granian_tls(tls_files: TLSFiles) -> Iterator[Server]:
    with start_granian(certfile=tls_files.certfile, keyfile=tls_files.keyfile) as server:
        yield server


@pytest.fixture(scope="session")
def granian_uds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    path = tmp_path_factory.mktemp("uds") / "granian.sock"
    with start_granian(uds=str(path)) as server:
        yield server


@pytest.fixture(scope="session")
def nginx() -> Iterator[Server]:
    if nginx_path() is None:
        pytest.skip("nginx is not installed (CI installs it; apt-get install nginx-light)")
    with start_nginx() as server:
        yield server


def fd_count() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


@pytest.fixture(autouse=True)
def _spin_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """``WARMLINE_TEST_SPIN=50e-6 uv run pytest ...`` runs every thread-pool
    connection in spin mode (issue 13: correctness under every existing
    thread-pool test with spin on); CI runs the thread-pool files so once."""
    spin = os.environ.get("WARMLINE_TEST_SPIN")
    if not spin:
        return
    from warmline.sync import _pool

    plain = _pool.AtomicClientPool._open

    def spinning(self: _pool.AtomicClientPool, *args: Any, **kwargs: Any) -> Any:
        conn = plain(self, *args, **kwargs)
        conn.spin = float(spin)
        return conn

    monkeypatch.setattr(_pool.AtomicClientPool, "_open", spinning)


@pytest.fixture
def holding() -> Iterator[Any]:
    """``holding(hold)``: a server that never answers the requests numbered in ``hold``."""
    servers: list[HoldingServer] = []

    def make(hold: set[int]) -> HoldingServer:
        servers.append(HoldingServer(hold))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


# -- real proxies, one process per test module that uses them -----------------------


@pytest.fixture(scope="module")
def pp_open() -> Iterator[ProxyServer]:
    with pproxy(auth=False) as server:
        yield server


@pytest.fixture(scope="module")
def pp_auth() -> Iterator[ProxyServer]:
    with pproxy(auth=True) as server:
        yield server


@pytest.fixture(scope="module")
def pp_tls(tls_files: TLSFiles) -> Iterator[ProxyServer]:
    with pproxy(auth=True, tls_files=(tls_files.certfile, tls_files.keyfile)) as server:
        yield server


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    with tinyproxy(tmp_path_factory.mktemp("tinyproxy")) as server:
        yield server


@pytest.fixture(scope="module")
def danted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    with dante(tmp_path_factory.mktemp("dante")) as server:
        yield server


@pytest.fixture(scope="module")
def micro() -> Iterator[ProxyServer]:
    with microsocks() as server:
        yield server
