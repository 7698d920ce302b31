"""The client's connection lifecycle, as the server sees it: warm and lazy origins,
max_lifetime, keep_alive=False, local_address, the read timeout.

One body, two flavours (``ClientDriver``): AsyncClient and Client.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import pytest

import warmline
from tests.clientdriver import FLAVOURS, ClientDriver, Flavour, outcome, wait_for
from tests.countserver import CountServer


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> Flavour:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def server() -> Iterator[CountServer]:
    with CountServer(ports=3) as s:
        yield s


@pytest.mark.timeout(20)
def test_warm_origins_connect_first_and_lazy_ones_on_need(
    flavour: Flavour, server: CountServer
) -> None:
    a, b, lazy = server.urls
    limits = warmline.Limits(total=20, per_host=4)
    with ClientDriver(flavour, limits=limits, warm={a: 3, b: 2}) as d:
        # Connected by start(), before any request.
        assert wait_for(lambda: [o.accepted for o in server.origins] == [3, 2, 0])
        assert server.log == []
        for _ in range(5):  # one at a time: one connection
            assert d.get(lazy + "/small").status == 200
        assert server.origins[2].accepted == 1
        # Three at once: three connections (the first one reused).
        results = d.many([lazy + "/sleep/0.2"] * 3)
        assert [r.status for r in results] == [200] * 3
        assert server.origins[2].accepted == 3
        # The warm origins serve without opening more.
        assert d.get(a + "/small").status == 200
        assert [o.accepted for o in server.origins] == [3, 2, 3]


@pytest.mark.timeout(20)
def test_max_lifetime_replaces_connections_between_requests_only(
    flavour: Flavour, server: CountServer
) -> None:
    origin = server.urls[0]
    with ClientDriver(flavour, max_lifetime=0.2, warm={origin: 1}) as d:
        start = time.monotonic()
        # One request outlives max_lifetime: it must still finish on its connection.
        assert d.get(origin + "/sleep/0.4").status == 200
        while time.monotonic() - start < 1.2:
            assert d.get(origin + "/sleep/0.02").status == 200
        conns = server.conns_of(0)
        assert len(conns) >= 3  # replaced over time
        assert [c for c in conns if c.cut] == []  # never cut mid-request
        assert all(len(c.requests) >= 1 for c in conns[:-1])


@pytest.mark.timeout(20)
def test_keep_alive_off_one_connection_per_request_closed_after_it(
    flavour: Flavour, server: CountServer
) -> None:
    origin = server.urls[0]
    with ClientDriver(flavour, keep_alive=False) as d:
        for i in range(8):
            assert d.get(origin + f"/r/{i}").status == 200
        # The server never closes: every close it sees is the client's.
        assert wait_for(lambda: server.open == 0)
        conns = server.conns_of(0)
        assert len(conns) == 8
        for conn in conns:
            assert len(conn.requests) == 1 and not conn.cut
            assert conn.requests[0][1].get("connection") == "close"
        assert d.permits == 0


@pytest.mark.skipif(sys.platform != "linux", reason="127.0.0.2 reaches 127.0.0.1 on Linux")
@pytest.mark.timeout(20)
def test_local_address_is_the_source_address(flavour: Flavour, server: CountServer) -> None:
    a, b, _ = server.urls
    with ClientDriver(flavour, local_address="127.0.0.2", warm={a: 2}) as d:
        assert d.get(b + "/small").status == 200
        assert d.get(a + "/small").status == 200
        assert len(server.conns) == 3
        assert {c.peer[0] for c in server.conns} == {"127.0.0.2"}


@pytest.mark.timeout(20)
def test_read_timeout_cuts_a_stalled_response_without_a_total(
    flavour: Flavour, server: CountServer
) -> None:
    origin = server.urls[0]
    timeouts = warmline.Timeouts(read=0.4, total=None)
    with ClientDriver(flavour, timeout=timeouts) as d:
        start = time.monotonic()
        error = outcome(d.submit("GET", origin + "/stall"))
        took = time.monotonic() - start
        assert isinstance(error, warmline.ReadTimeout), error
        assert 0.35 <= took < 2.0
        # Inactivity, not a total: bytes every 0.15 s for 1.2 s are fine.
        r = d.get(origin + "/drip/8/0.15")
        assert r.status == 200 and r.content == b"x" * 8
