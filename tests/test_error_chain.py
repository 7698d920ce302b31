"""Every error chains the low-level exception it came from (DESIGN: ``raise ...
from exc``), in both shells: a reset while reading the response is a
ConnectionClosed whose cause is the ConnectionResetError."""

from __future__ import annotations

import socket
import struct

import pytest

import warmline

from .faultproxy import FLAVOURS, Flavour, PoolDriver
from .rawserver import RawServer, read_request


def reset_after_request(conn: socket.socket, index: int) -> None:
    read_request(conn)
    # SO_LINGER 0: close with a RST instead of a FIN.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_reset_keeps_its_cause(flavour: Flavour) -> None:
    with (
        RawServer(reset_after_request) as server,
        PoolDriver(flavour, server.url, connections=1, retry_stale=False) as d,
    ):
        with pytest.raises(warmline.ConnectionClosed) as info:
            d.post("/order")
        outcome = info.value
        assert isinstance(outcome, warmline.ConnectionClosed)
        assert isinstance(outcome.__cause__, ConnectionResetError), repr(outcome.__cause__)
        assert outcome.method == "POST" and outcome.path == "/order"
