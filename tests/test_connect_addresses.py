"""A name with several addresses: a dead first one does not cost the whole
connect timeout (asyncio: happy eyeballs, RFC 8305; threads: each address
gets its share of the time left).

The name is resolved by a stand-in for ``socket.getaddrinfo``: no lookup
leaves the machine, and every address is on 127.0.0.1.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

import warmline
from warmline._server.launch import Server

from .faultproxy import FLAVOURS, Flavour, PoolDriver, blackhole_listener

NAME = "multi.warmline.test"


@pytest.fixture
def addresses(monkeypatch: pytest.MonkeyPatch, granian: Server) -> Iterator[list[int]]:
    """NAME resolves to these ports of 127.0.0.1, in order (a list the test may change)."""
    dead, holes = blackhole_listener()
    ports = [dead, int(granian.url.rsplit(":", 1)[1])]
    real = socket.getaddrinfo

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != NAME:
            return real(host, port, *args, **kwargs)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", p))
            for p in ports
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    try:
        yield ports
    finally:
        for sock in holes:
            sock.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_dead_first_address_does_not_eat_the_connect_timeout(
    flavour: Flavour, addresses: list[int]
) -> None:
    start = time.monotonic()
    with PoolDriver(flavour, f"http://{NAME}:80", connections=1, connect_timeout=4) as d:
        took = time.monotonic() - start
        r = d.get("/small")
        assert r.status == 200 and len(r.content) == 100
    # A hang check, not a speed check: the whole 4 s would mean the dead
    # address got the whole timeout (threads: half of it, by design).
    assert took < 3.5


@pytest.mark.timeout(30)
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_every_address_dead_is_a_connect_timeout_within_the_timeout(
    flavour: Flavour, addresses: list[int]
) -> None:
    addresses[1] = addresses[0]  # both blackholed
    start = time.monotonic()
    with pytest.raises(warmline.ConnectTimeout):
        PoolDriver(flavour, f"http://{NAME}:80", connections=1, connect_timeout=1)
    assert time.monotonic() - start < 3.0
