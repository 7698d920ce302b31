"""warmline.testing: a real HTTP/1.1 mock server for testing HTTP clients.

:class:`MockServer` listens on 127.0.0.1 (a free port), optionally also on a
Unix socket and with TLS, and serves from a background thread, so asyncio and
threaded tests use it alike. Expectations say what requests to expect and
how to answer them, wiremock style; ``verify()`` checks the counts and
explains any difference; the journal records every request with the id of
the server-side connection it came on, so a test can assert connection reuse.

Example::

    import warmline
    from warmline.testing import MockServer, Reset, Reply, regex

    with MockServer() as server:
        server.expect(
            method="GET", path="/api/v3/ticker", query={"symbol": "BTCUSDT"}
        ).respond(json={"symbol": "BTCUSDT", "price": "97000.5"}).times(100)
        server.expect(method="POST", path="/api/v3/order", json_subset={"side": "BUY"}).respond(
            status=201, json={"orderId": 1}
        )
        server.expect(path=regex(r"/api/v3/flaky/\\d+")).respond_with(
            Reset(), Reply(200, body="ok")     # first a reset mid-body, then ok
        ).any_times()

        with warmline.AtomicClientPool.connect(server.url, connections=5) as pool:
            for _ in range(100):
                r = pool.get("/api/v3/ticker", params={"symbol": "BTCUSDT"})
                assert r.json()["price"] == "97000.5"
            pool.post("/api/v3/order", json={"side": "BUY", "qty": "0.01"})

        server.verify()                        # AssertionError with a diff if not met
        assert len({r.connection_id for r in server.journal}) <= 5

With pytest, the ``warmline_mock`` fixture (plugin ``warmline.testing.plugin``)
gives a started server per test and verifies it on teardown.
"""

from warmline.testing._match import (
    ABSENT,
    Matcher,
    RecordedRequest,
    RequestHeaders,
    ValueSpec,
    body,
    header,
    json_equals,
    json_subset,
    method,
    path,
    predicate,
    query,
    regex,
)
from warmline.testing._respond import (
    Close,
    Garbage,
    Reply,
    Reset,
    Responder,
    Sequence,
    Stall,
)
from warmline.testing._server import Expectation, MockServer

__all__ = [  # noqa: RUF022 (grouped by purpose, not sorted)
    # the server
    "Expectation",
    "MockServer",
    "RecordedRequest",
    "RequestHeaders",
    # matchers
    "ABSENT",
    "Matcher",
    "ValueSpec",
    "body",
    "header",
    "json_equals",
    "json_subset",
    "method",
    "path",
    "predicate",
    "query",
    "regex",
    # responders and faults
    "Close",
    "Garbage",
    "Reply",
    "Reset",
    "Responder",
    "Sequence",
    "Stall",
]
