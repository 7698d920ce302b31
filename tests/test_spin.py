"""spin=: the thread pool's latency mode (issue 13)."""

from __future__ import annotations

import asyncio

import pytest

import warmline
from warmline._server.launch import Server


@pytest.mark.timeout(30)
def test_spin_pool_and_client_answer(granian: Server) -> None:
    with warmline.AtomicClientPool.connect(granian.url, connections=2, spin=50e-6) as pool:
        slot = pool.try_acquire()
        assert slot is not None
        with slot:
            conn = slot._slot.conn  # type: ignore[union-attr]
            assert conn is not None and conn.spin == 50e-6
            for _ in range(20):
                assert slot.get("/small").status == 200
            r = slot.get("/large", timeout=5)  # the timed path spins too
            assert len(r.content) == 64 * 1024
    with warmline.Client(spin=20e-6) as client:
        assert client.get(granian.url + "/small").status == 200


@pytest.mark.parametrize("bad", [-1, float("inf"), float("nan"), 2.0, "1"])
def test_spin_refuses_bad_values(granian: Server, bad: object) -> None:
    with pytest.raises((ValueError, TypeError), match="spin"):
        warmline.AtomicClientPool.connect(granian.url, connections=1, spin=bad)  # type: ignore[arg-type]


def test_the_asyncio_flavour_refuses_spin(granian: Server) -> None:
    with pytest.raises(ValueError, match="thread"):
        warmline.AsyncClient(spin=50e-6)

    async def connect() -> None:
        await warmline.ClientPool.connect(granian.url, connections=1, spin=50e-6)

    with pytest.raises(ValueError, match="thread"):
        asyncio.run(connect())
