"""warmline.testing.MockServer driven by warmline's own pools, http.client and raw sockets.

Every server here listens on 127.0.0.1 (or a Unix socket in a temporary
directory) and stops with its test; every loop is bounded in count, and
faults are bounded by request timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import http.client
import itertools
import json
import re
import socket
import sys
import textwrap
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import warmline
from warmline.testing import (
    ABSENT,
    Close,
    Garbage,
    MockServer,
    RecordedRequest,
    Reply,
    RequestHeaders,
    Reset,
    Sequence,
    Stall,
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


@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockServer() as s:
        yield s


@pytest.fixture
def pool(server: MockServer) -> Iterator[warmline.AtomicClientPool]:
    with warmline.AtomicClientPool.connect(server.url, connections=2, timeout=5.0) as p:
        yield p


def fetch(
    server: MockServer,
    method_: str,
    target: str,
    body_: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request(method_, target, body=body_, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def raw(server: MockServer, data: bytes, *, shut: bool = False) -> bytes:
    """Send ``data`` on a new connection; read until the server closes (5 s bound)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        out = b""
        with contextlib.suppress(OSError):
            while chunk := s.recv(65536):
                out += chunk
        return out


def request(
    method_: str = "GET",
    target: str = "/",
    headers: list[tuple[str, str]] | None = None,
    body_: bytes = b"",
) -> RecordedRequest:
    path_, _, qs = target.partition("?")
    from urllib.parse import parse_qs

    return RecordedRequest(
        0, method_, target, path_, parse_qs(qs, keep_blank_values=True),
        RequestHeaders(headers or []), body_, "1.1", 1, 0.0,
    )  # fmt: skip


# -- matchers (unit) --------------------------------------------------------------


def test_method_and_path_specs() -> None:
    r = request("GET", "/api/v3/ticker")
    assert method("get").matches(r)
    assert not method("POST").matches(r)
    assert method("POST").explain(r) == "method: expected 'POST', got 'GET'"
    assert path("/api/v3/ticker").matches(r)
    assert path(regex(r"/api/v\d/\w+")).matches(r)
    assert not path(regex(r"/api")).matches(r)  # fullmatch, not search
    assert path(lambda p: p.endswith("ticker")).matches(r)
    assert path("/x").explain(r) == "path: expected '/x', got '/api/v3/ticker'"
    with pytest.raises(TypeError, match="path must be"):
        path(3)  # type: ignore[arg-type]


def test_query_matcher() -> None:
    r = request("GET", "/t?symbol=BTCUSDT&ids=1&ids=2&empty=")
    assert query({"symbol": "BTCUSDT"}).matches(r)
    assert query({"symbol": regex("BTC.*"), "ids": "2"}).matches(r)  # any value matches
    assert query({"ids": ["1", "2"]}).matches(r)
    assert not query({"ids": ["2", "1"]}).matches(r)
    assert query({"empty": ""}).matches(r)
    assert query({"limit": ABSENT}).matches(r)
    assert query({"symbol": ABSENT}).explain(r) == "query symbol: expected absent, got ['BTCUSDT']"
    assert query({"limit": "5"}).explain(r) == "query limit: expected '5', missing"
    assert query({"symbol": "ETHUSDT"}).explain(r) == (
        "query symbol: expected 'ETHUSDT', got 'BTCUSDT'"
    )
    assert query({"symbol": "BTCUSDT"}, exact=True).explain(r) == (
        "query: unexpected parameters ['empty', 'ids']"
    )


def test_header_matcher() -> None:
    r = request(headers=[("X-Api-Key", "k1"), ("Accept", "a"), ("Accept", "b")])
    assert header("x-api-key", "k1").matches(r)
    assert header("X-API-KEY", regex("k\\d")).matches(r)
    assert header("accept", ["a", "b"]).matches(r)
    assert header("Authorization", ABSENT).matches(r)
    assert header("x-api-key", "k2").explain(r) == "header x-api-key: expected 'k2', got 'k1'"
    assert r.headers["ACCEPT"] == "a, b"
    assert "x-api-key" in r.headers and len(r.headers) == 2


def test_body_matchers() -> None:
    r = request("POST", "/", body_=b'{"side": "BUY", "qty": "0.01", "n": [1, {"a": true}]}')
    assert body(r.body).matches(r)
    assert body(r.body.decode()).matches(r)
    assert body(regex(r'\{"side".*')).matches(r)
    assert body(re.compile(rb".*BUY.*")).matches(r)
    assert body(b"x").explain(r).startswith("body: expected b'x', got b'{")  # type: ignore[union-attr]
    assert json_equals({"qty": "0.01", "side": "BUY", "n": [1, {"a": True}]}).matches(r)
    assert json_equals({"side": "BUY"}).explain(r) == "json $: unexpected keys ['n', 'qty']"
    assert json_subset({"side": "BUY"}).matches(r)
    assert json_subset({"n": [1, {}]}).matches(r)
    assert json_subset({"qty": regex(r"0\.\d+")}).matches(r)
    assert json_subset({"n": [1, {"a": 1}]}).explain(r) == "json $.n[1].a: expected 1, got True"
    assert json_subset({"side": "SELL"}).explain(r) == "json $.side: expected 'SELL', got 'BUY'"
    assert json_subset({"price": "1"}).explain(r) == "json $.price: expected '1', missing"
    assert json_subset({"n": [1]}).explain(r) == "json $.n: expected [1], got [1, {'a': True}]"
    assert json_subset({}).explain(request(body_=b"not json")) == (
        "body: expected JSON, got b'not json'"
    )
    assert json_subset({}).explain(request()) == "body: expected JSON, got an empty body"


def test_predicate_matcher() -> None:
    m = predicate(lambda r: len(r.body) > 3, "body longer than 3")
    assert m.matches(request(body_=b"abcd"))
    assert m.explain(request()) == "body longer than 3: false"
    assert repr(m) == "<_Predicate body longer than 3>"


# -- expectations through the thread pool ------------------------------------------


def test_expect_matches_every_field(server: MockServer, pool: warmline.AtomicClientPool) -> None:
    e = (
        server.expect(
            method="POST",
            path="/order",
            query={"symbol": "BTCUSDT"},
            headers={"X-Api-Key": "secret", "X-Absent": ABSENT},
            json_subset={"side": "BUY"},
        )
        .respond(201, json={"orderId": 7}, headers={"X-Server": "mock"})
        .once()
    )
    r = pool.post(
        "/order",
        params={"symbol": "BTCUSDT"},
        headers={"X-Api-Key": "secret"},
        json={"side": "BUY", "qty": "1"},
    )
    assert (r.status, r.json(), r.headers["x-server"]) == (201, {"orderId": 7}, "mock")
    assert r.headers["content-type"] == "application/json"
    assert [x.json() for x in e.received] == [{"side": "BUY", "qty": "1"}]
    server.verify()


def test_body_and_json_expectations(server: MockServer, pool: warmline.AtomicClientPool) -> None:
    server.expect(method="PUT", body=b"raw bytes").respond(body=b"a")
    server.expect(method="PUT", json={"k": [1, 2]}).respond(body=b"b")
    assert pool.put("/", content=b"raw bytes").content == b"a"
    assert pool.put("/", json={"k": [1, 2]}).content == b"b"
    server.verify()


def test_unmatched_request_gets_404_with_explanation(
    server: MockServer, pool: warmline.AtomicClientPool
) -> None:
    server.expect(method="GET", path="/ticker", query={"symbol": "BTCUSDT"})
    r = pool.get("/ticker", params={"symbol": "ETHUSDT"})
    assert r.status == 404
    assert r.headers["x-warmline-mock"] == "unmatched"
    assert r.text == (
        "warmline MockServer: no expectation matched GET /ticker?symbol=ETHUSDT\n"
        "  [1] method 'GET', path '/ticker', query {symbol='BTCUSDT'}: "
        "query symbol: expected 'BTCUSDT', got 'ETHUSDT'\n"
    )
    assert [x.target for x in server.unmatched] == ["/ticker?symbol=ETHUSDT"]
    with pytest.raises(AssertionError):
        server.verify()


def test_first_registered_wins_and_limit_falls_through(
    server: MockServer, pool: warmline.AtomicClientPool
) -> None:
    server.expect(path="/x").respond(503).limit(2).times(2)
    server.expect(path="/x").respond(200).at_least(1)
    server.expect(path="/x").respond(418).never()  # shadowed by the one above
    assert [pool.get("/x").status for _ in range(4)] == [503, 503, 200, 200]
    server.verify()


def test_count_bounds(server: MockServer) -> None:
    e = server.expect(path="/a")
    for setup, count, ok in [
        (e.times, 2, True), (e.times, 3, False), (e.at_least, 2, True), (e.at_least, 3, False),
        (e.at_most, 2, True), (e.at_most, 1, False), (e.never, None, False),
    ]:  # fmt: skip
        setup() if count is None else setup(count)
        e.count = 2
        assert e.is_satisfied() is ok, (setup, count)
    assert e.between(1, 3).describe_count() == "between 1 and 3"
    assert e.any_times().describe_count() == "any number"
    assert e.at_most(4).describe_count() == "at most 4"
    with pytest.raises(ValueError, match="bad expected count"):
        e.between(3, 1)
    with pytest.raises(ValueError, match="limit"):
        e.limit(-1)


def test_expect_rejects_non_matchers(server: MockServer) -> None:
    with pytest.raises(TypeError, match="Matcher instances"):
        server.expect("GET")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a responder"):
        server.expect().respond_with(200)  # type: ignore[arg-type]


def test_extra_matchers_and_name(server: MockServer, pool: warmline.AtomicClientPool) -> None:
    server.expect(
        method(regex("GET|HEAD")), predicate(lambda r: "k" in r.query, "has k"), name="probe"
    ).respond(204).times(1)
    assert pool.get("/p", params={"k": "1"}).status == 204
    assert pool.get("/p").status == 404
    with pytest.raises(AssertionError) as info:
        server.verify()
    assert "[1] probe: expected exactly 1, received 1" in str(info.value)


# -- verify() report ---------------------------------------------------------------


def test_verify_report_shows_expected_against_received(server: MockServer) -> None:
    server.expect(method="GET", path="/ticker", query={"symbol": "BTCUSDT"}).times(3)
    server.expect(method="POST", path="/order").respond(201)
    with warmline.AtomicClientPool.connect(server.url, connections=1) as p:
        p.get("/ticker", params={"symbol": "BTCUSDT"})
        p.get("/ticker", params={"symbol": "ETHUSDT"})
        p.post("/order", content=b"{}")
    with pytest.raises(AssertionError) as info:
        server.verify()
    assert str(info.value) == (
        "MockServer.verify() failed: 1 of 2 expectations not met, 1 unmatched request(s)\n"
        "\n"
        "Expectations:\n"
        "  ✗ [1] method 'GET', path '/ticker', query {symbol='BTCUSDT'}: "
        "expected exactly 3, received 1\n"
        "      #0 conn 1 GET /ticker?symbol=BTCUSDT: matched\n"
        "      #1 conn 1 GET /ticker?symbol=ETHUSDT: query symbol: expected 'BTCUSDT', "
        "got 'ETHUSDT'\n"
        "      #2 conn 1 POST /order (2 B): method: expected 'GET', got 'POST'\n"
        "  ✓ [2] method 'POST', path '/order': expected at least 1, received 1\n"
        "\n"
        "Unmatched requests (answered 404):\n"
        "  #1 conn 1 GET /ticker?symbol=ETHUSDT\n"
        "\n"
        "Received 3 request(s) on 1 connection(s)."
    )


def test_verify_report_when_nothing_arrived_and_shadowed(
    server: MockServer, pool: warmline.AtomicClientPool
) -> None:
    server.expect(path="/a").any_times()
    server.expect(path="/a", method="GET")
    server.expect(path="/never")
    pool.get("/a")
    with pytest.raises(AssertionError) as info:
        server.verify()
    text = str(info.value)
    assert "would match, but [1] answered it" in text
    assert "path: expected '/never', got '/a'" in text
    server.reset()
    server.expect(path="/b")
    with pytest.raises(AssertionError, match=r"\(no request was received\)"):
        server.verify()


def test_verify_non_strict_ignores_unmatched() -> None:
    with MockServer(strict=False) as server:
        status, _, _ = fetch(server, "GET", "/nothing")
        assert status == 404
        server.verify()
        assert len(server.unmatched) == 1


# -- responders ------------------------------------------------------------------------


def test_reply_body_kinds_and_reason(server: MockServer, pool: warmline.AtomicClientPool) -> None:
    server.expect(path="/text").respond(body="héllo")
    server.expect(path="/bytes").respond(body=b"\x00\x01", reason="Fine")
    server.expect(path="/none").respond(204)
    r = pool.get("/text")
    assert (r.text, r.headers["content-type"]) == ("héllo", "text/plain; charset=utf-8")
    r = pool.get("/bytes")
    assert (r.content, r.reason, "content-type" in r.headers) == (b"\x00\x01", "Fine", False)
    r = pool.get("/none")
    assert (r.status, r.content, "content-length" in r.headers) == (204, b"", False)


def test_reply_validation() -> None:
    with pytest.raises(ValueError, match="status"):
        Reply(42)
    with pytest.raises(ValueError, match="body or json"):
        Reply(body=b"x", json=1)
    with pytest.raises(ValueError, match="delay"):
        Reply(delay=-1)
    with pytest.raises(ValueError, match="drip"):
        Reply(drip=(0, 0.1))
    with pytest.raises(ValueError, match="chunked"):
        Reply(chunked=0)
    with pytest.raises(TypeError, match="body must be"):
        Reply(body=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one"):
        Sequence()
    with pytest.raises(TypeError, match="Garbage data must be bytes"):
        Garbage("text")  # type: ignore[arg-type]


def test_tls_without_trustme_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "trustme", None)
    with pytest.raises(ImportError, match=r"pip install 'warmline\[testing\]'"):
        MockServer(tls=True).start()


def test_a_failing_leaf_fails_verify_not_the_thread(server: MockServer) -> None:
    class Broken(Close):
        def _send(self, io: object, request: RecordedRequest) -> bool:
            raise RuntimeError("boom")

    server.expect().respond_with(Broken())
    assert raw(server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == b""
    assert wait_until(lambda: server.errors != [])
    with pytest.raises(AssertionError, match=r"server error RuntimeError\('boom'\)"):
        server.verify()


def test_head_gets_no_body(server: MockServer) -> None:
    server.expect(method="HEAD").respond(body=b"12345")
    status, headers, data = fetch(server, "HEAD", "/")
    assert (status, headers["content-length"], data) == (200, "5", b"")


def test_sequence_repeats_last_or_cycles(
    server: MockServer, pool: warmline.AtomicClientPool
) -> None:
    server.expect(path="/s").respond_with(Reply(500), Reply(502), Reply(200))
    server.expect(path="/c").respond_with(Reply(201), Reply(202), cycle=True)
    assert [pool.get("/s").status for _ in range(4)] == [500, 502, 200, 200]
    assert [pool.get("/c").status for _ in range(3)] == [201, 202, 201]


def test_callable_responder_sees_the_request(
    server: MockServer, pool: warmline.AtomicClientPool
) -> None:
    server.expect(path="/echo").respond_with(lambda r: Reply(json={"got": r.query["q"][0]}))
    assert pool.get("/echo", params={"q": "hi"}).json() == {"got": "hi"}
    server.expect(path="/bad").respond_with(lambda r: 5)  # type: ignore[arg-type,return-value]
    r = pool.get("/bad")  # a broken responder answers 500 and the server serves on
    assert r.status == 500 and "TypeError: a responder must be a Responder" in r.text
    assert pool.get("/echo", params={"q": "again"}).json() == {"got": "again"}
    with pytest.raises(AssertionError, match=r"GET /bad: the responder of \[path '/bad'\] raised"):
        server.verify()


def test_chunked_and_gzip(server: MockServer, pool: warmline.AtomicClientPool) -> None:
    payload = b"0123456789" * 100
    server.expect(path="/chunked").respond(body=payload, chunked=64)
    server.expect(path="/gzip").respond(body=payload, gzip=True, chunked=True)
    r = pool.get("/chunked")
    assert (r.content, r.headers["transfer-encoding"]) == (payload, "chunked")
    assert "content-length" not in r.headers
    r = pool.get("/gzip")
    assert r.headers["content-encoding"] == "gzip"
    assert r.content == payload and gzip.decompress(r.raw_content) == payload  # decompress=True
    status, _, data = fetch(server, "GET", "/chunked")  # http.client de-chunks it too
    assert (status, data) == (200, payload)


def test_lying_content_length_is_sent_as_given(
    server: MockServer, pool: warmline.AtomicClientPool
) -> None:
    server.expect().respond(body=b"short", headers={"Content-Length": "50"})
    with pytest.raises(warmline.ReadTimeout):
        pool.get("/", timeout=0.3)


def test_delay_trips_a_read_timeout(server: MockServer, pool: warmline.AtomicClientPool) -> None:
    server.expect(path="/slow").respond(body=b"late", delay=0.5)
    with pytest.raises(warmline.ReadTimeout):
        pool.get("/slow", timeout=0.1)
    server.expect(path="/quick").respond(body=b"ok", delay=0.01)
    assert pool.get("/quick").content == b"ok"


def test_drip_sends_small_pieces(server: MockServer) -> None:
    server.expect().respond(body=b"abcdefghij", drip=(3, 0.01))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        pieces = []
        data = b""
        while not data.endswith(b"abcdefghij"):
            chunk = s.recv(65536)
            assert chunk
            pieces.append(chunk)
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert len(pieces) > 1 and max(map(len, pieces)) <= 6  # at most two drips coalesced


def test_close_after_reply(server: MockServer) -> None:
    server.expect().respond(body=b"bye", close=True)
    data = raw(server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"Connection: close\r\n" in data and data.endswith(b"bye")


# -- faults through both pools -------------------------------------------------------


def test_faults_in_threads(server: MockServer) -> None:
    server.expect(path="/close").respond_with(Close())
    server.expect(path="/close-mid").respond_with(Close(after=40))
    server.expect(path="/reset").respond_with(Reset())
    server.expect(path="/garbage").respond_with(Garbage())
    server.expect(path="/stall").respond_with(Stall())
    server.expect(path="/stall-body").respond_with(Stall(after=70))
    server.expect(path="/ok").respond(body=b"ok")
    with warmline.AtomicClientPool.connect(server.url, connections=2, retry_stale=False) as p:
        with pytest.raises(warmline.ConnectionClosed) as closed:
            p.post("/close")
        assert closed.value.received_any is False
        with pytest.raises(warmline.ConnectionClosed) as closed:
            p.post("/close-mid")
        assert closed.value.received_any is True
        with pytest.raises(warmline.ConnectionClosed) as closed:
            p.post("/reset")
        assert closed.value.received_any is True
        with pytest.raises(warmline.ProtocolError):
            p.post("/garbage")
        with pytest.raises(warmline.ReadTimeout):
            p.get("/stall", timeout=0.2)
        with pytest.raises(warmline.ReadTimeout):
            p.get("/stall-body", timeout=0.2)
        assert p.get("/ok", acquire_timeout=5.0).content == b"ok"  # after healing
    assert server.connections_accepted > 2


@pytest.mark.asyncio
async def test_faults_in_asyncio() -> None:
    async with MockServer() as server:
        server.expect(path="/close").respond_with(Close())
        server.expect(path="/reset").respond_with(Reset(reply=Reply(body=b"y" * 5000)))
        server.expect(path="/garbage").respond_with(Garbage(b"HTTP/1.1 2xx nope\r\n\r\n"))
        server.expect(path="/stall").respond_with(Stall(seconds=30))
        server.expect(path="/ok").respond(json=[1])
        async with await warmline.ClientPool.connect(
            server.url, connections=2, retry_stale=False
        ) as p:
            with pytest.raises(warmline.ConnectionClosed):
                await p.get("/close")
            with pytest.raises(warmline.ConnectionClosed):
                await p.get("/reset")
            with pytest.raises(warmline.ProtocolError):
                await p.get("/garbage")
            with pytest.raises(warmline.ReadTimeout):
                await p.get("/stall", timeout=0.2)
            async with p.acquire(timeout=5.0) as slot:
                assert (await slot.get("/ok")).json() == [1]


def test_stale_retry_is_visible_in_the_journal(server: MockServer) -> None:
    # The first GET meets a close before any byte; the pool re-sends it once
    # on a fresh connection, which the journal shows as a second connection.
    server.expect(path="/t").respond_with(Close(), Reply(body=b"ok")).times(2)
    with warmline.AtomicClientPool.connect(server.url, connections=1) as p:
        assert p.get("/t").content == b"ok"
    ids = [r.connection_id for r in server.journal]
    assert len(ids) == 2 and ids[0] != ids[1]
    server.verify()


# -- journal: connection reuse ----------------------------------------------------------


def test_100_requests_through_5_connections_threads(server: MockServer) -> None:
    server.expect(method="GET", path="/ticker").respond(json={"p": "1"}).times(100)
    with warmline.AtomicClientPool.connect(server.url, connections=5) as p:
        # Each thread holds one slot for its 20 requests, all five at once.
        together = threading.Barrier(5, timeout=10)

        def work() -> None:
            with p.acquire(timeout=5.0) as slot:
                together.wait()
                for _ in range(20):
                    assert slot.get("/ticker").status == 200

        threads = [threading.Thread(target=work) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    server.verify()
    journal = server.journal
    assert len(journal) == 100
    per_connection = Counter(r.connection_id for r in journal)
    assert sorted(per_connection.values()) == [20] * 5
    assert [r.index for r in journal] == list(range(100))
    assert all(a.time <= b.time for a, b in itertools.pairwise(journal))


@pytest.mark.asyncio
async def test_100_requests_through_5_connections_asyncio() -> None:
    async with MockServer() as server:
        server.expect(path="/ticker").respond(json={"p": "1"}).times(100)
        async with await warmline.ClientPool.connect(server.url, connections=5) as p:

            async def one() -> int:
                async with p.acquire(timeout=5.0) as slot:
                    return (await slot.get("/ticker")).status

            assert await asyncio.gather(*(one() for _ in range(100))) == [200] * 100
        server.verify()
        assert len({r.connection_id for r in server.journal}) == 5


def test_wait_for_requests(server: MockServer) -> None:
    def later() -> None:
        time.sleep(0.05)
        fetch(server, "GET", "/late")

    t = threading.Thread(target=later)
    t.start()
    assert [r.path for r in server.wait_for_requests(1)] == ["/late"]
    t.join(5)
    with pytest.raises(AssertionError, match=r"expected 2 requests within 0\.05 s, got 1"):
        server.wait_for_requests(2, timeout=0.05)


# -- TLS and Unix sockets -------------------------------------------------------------------


def test_tls_with_generated_certificate() -> None:
    with MockServer(tls=True) as server:
        assert server.url.startswith("https://127.0.0.1:")
        server.expect(path="/secure").respond(json={"tls": True}).times(3)
        with warmline.AtomicClientPool.connect(
            server.url, connections=1, tls=server.ssl_context()
        ) as p:
            assert [p.get("/secure").json() for _ in range(2)] == [{"tls": True}] * 2
        ctx = server.ssl_context()
        with urllib.request.urlopen(server.url + "/secure", context=ctx, timeout=5) as r:
            assert json.load(r) == {"tls": True}
        # A client that does not trust the CA fails its handshake; the server lives on.
        with pytest.raises(warmline.ConnectError):
            warmline.AtomicClientPool.connect(server.url, connections=1, tls=True)
        server.verify()
        assert all(r.tls for r in server.journal)
        assert server.ca_file is not None


@pytest.mark.asyncio
async def test_unix_socket_and_tls_over_it() -> None:
    async with MockServer(uds=True) as server:
        server.expect(path="/u").respond(body=b"unix").times(2)
        async with await warmline.ClientPool.connect(server.uds_url, connections=1) as p:
            assert (await p.get("/u")).content == b"unix"
        with warmline.AtomicClientPool.connect(server.uds_url, connections=1) as tp:
            assert tp.get("/u").content == b"unix"
        assert [r.transport for r in server.journal] == ["unix", "unix"]
        server.verify()
    with MockServer(uds=True, tls=True) as server:
        server.expect().respond(body=b"both")
        ctx = server.ssl_context()
        with warmline.AtomicClientPool.connect(
            "https://localhost", uds=server.uds_path, tls=ctx, connections=1
        ) as tp:
            assert tp.get("/").content == b"both"
        assert server.journal[0].tls and server.journal[0].transport == "unix"


def test_addresses_need_options() -> None:
    server = MockServer()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url
    with server:
        with pytest.raises(RuntimeError, match="uds=True"):
            _ = server.uds_url
        with pytest.raises(RuntimeError, match="tls=True"):
            server.ssl_context()
        with pytest.raises(RuntimeError, match="already started"):
            server.start()
    with pytest.raises(ValueError, match="loopback"):
        MockServer(host="0.0.0.0")  # the point: it is refused


# -- lifecycle --------------------------------------------------------------------------


def test_stop_while_a_client_is_mid_request() -> None:
    server = MockServer().start()
    server.expect(path="/stall").respond_with(Stall())
    server.expect(path="/drip").respond(body=b"x" * 10_000, drip=(1, 0.05))
    errors: list[BaseException] = []

    def client(target: str) -> None:
        try:
            # No client timeout: only stop() ends it. No stale retry: the
            # stalled GET would be re-sent to the stopped server (ConnectError).
            with warmline.AtomicClientPool.connect(
                server.url, connections=1, retry_stale=False
            ) as p:
                p.get(target, timeout=None)
        except warmline.WarmlineError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(t,)) for t in ("/stall", "/drip")]
    for t in threads:
        t.start()
    server.wait_for_requests(2)
    server.stop()
    assert server.open_connections == 0
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    assert [type(e) for e in errors] == [warmline.ConnectionClosed] * 2
    prefix = f"MockServer:{server.port}"
    assert not [t for t in threading.enumerate() if t.name.startswith(prefix)]
    server.stop()  # idempotent


def test_journal_is_bounded_and_reset_forgets() -> None:
    with MockServer(journal_size=3) as server:
        server.expect().any_times()
        for i in range(5):
            fetch(server, "GET", f"/{i}")
        assert [(r.index, r.path) for r in server.journal] == [(2, "/2"), (3, "/3"), (4, "/4")]
        server.reset()
        assert server.journal == [] and server.expectations == []


def test_stop_with_an_idle_keep_alive_connection_and_one_mid_handshake() -> None:
    with MockServer(tls=True) as server:
        idle = socket.create_connection(("127.0.0.1", server.port), timeout=5)  # no handshake
        assert wait_until(lambda: server.open_connections == 1)
    assert idle.recv(10) == b""  # the server closed it
    idle.close()


def test_idle_timeout_and_close_connections() -> None:
    with MockServer(idle_timeout=0.1) as server:
        server.expect().respond(body=b"ok").any_times()
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            assert s.recv(10) == b""  # closed by the server after 0.1 s idle
    with MockServer() as server:
        server.expect().respond(body=b"ok").any_times()
        with warmline.AtomicClientPool.connect(server.url, connections=3) as p:
            assert wait_until(lambda: server.open_connections == 3)
            assert server.close_connections() == 3
            # The pool sees its connections die; a GET succeeds on a fresh one.
            assert p.get("/", acquire_timeout=5.0).content == b"ok"


# -- the request parser, from the client side ------------------------------------------------


def test_request_bodies_content_length_and_chunked(server: MockServer) -> None:
    e = server.expect(method="POST").respond(body=b"ok").times(2)
    assert fetch(server, "POST", "/", b"plain body")[0] == 200
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("POST", "/", body=iter([b"chunk-1,", b"chunk-2"]), encode_chunked=True)
    assert conn.getresponse().read() == b"ok"
    conn.close()
    assert [r.body for r in e.received] == [b"plain body", b"chunk-1,chunk-2"]


def test_expect_100_continue_and_http10(server: MockServer) -> None:
    server.expect().respond(body=b"ok").any_times()
    data = raw(
        server,
        b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"
        b"Connection: close\r\n\r\nhi",
    )
    assert data.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    data = raw(server, b"GET / HTTP/1.0\r\n\r\n")  # HTTP/1.0: the server closes after
    assert data.endswith(b"ok")
    assert server.journal[-1].http_version == "1.0"


def test_pipelined_requests_are_answered_in_order(server: MockServer) -> None:
    server.expect(path="/1").respond(body=b"one")
    server.expect(path="/2").respond(body=b"two")
    data = raw(
        server,
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert data.index(b"one") < data.index(b"two")
    assert len({r.connection_id for r in server.journal}) == 1


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        (b"GARBAGE\r\n\r\n", 400, "malformed request line"),
        (b"GET / HTTP/2.0\r\n\r\n", 505, "unsupported HTTP version"),
        (b"G(T / HTTP/1.1\r\n\r\n", 400, "bad method"),
        (b"GET /\x7f HTTP/1.1\r\n\r\n", 400, "bad request target"),
        (b"GET / HTTP/1.1\nHost: x\r\n\r\n", 400, "bare CR or LF"),
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, "malformed header field"),
        (b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 400, "obsolete line folding"),
        (b"GET / HTTP/1.1\r\nA: b\x00\r\n\r\n", 400, "control character"),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
         "request smuggling"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "Transfer-Encoding"),
        (b"POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n", 400, "bad Content-Length"),
        (b"POST / HTTP/1.1\r\nContent-Length: \xc2\xb2\r\n\r\n", 400, "bad Content-Length"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "bad chunk size"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd", 400,
         "not followed by CRLF"),
        (b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 101 + b"\r\n", 431, "more than 100"),
        (b"GET /" + b"a" * 70_000, 431, "request head larger"),
    ],
)  # fmt: skip
def test_malformed_requests_get_an_error_and_are_recorded(
    server: MockServer, data: bytes, status: int, reason: str
) -> None:
    answer = raw(server, data)
    assert answer.startswith(b"HTTP/1.1 %d " % status)
    assert reason.encode() in answer
    assert reason in server.errors[0]
    with pytest.raises(AssertionError, match="malformed requests"):
        server.verify()


def test_body_too_large_is_413() -> None:
    with MockServer(max_body_size=10) as server:
        answer = raw(server, b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n01234567890")
        assert answer.startswith(b"HTTP/1.1 413 ")
        answer = raw(
            server, b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n01234567890\r\n"
        )
        assert answer.startswith(b"HTTP/1.1 413 ")


def test_client_closing_mid_request_is_not_an_error(server: MockServer) -> None:
    assert raw(server, b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", shut=True) == b""
    assert server.errors == [] and server.journal == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_server_survives_any_bytes(data: bytes) -> None:
    with MockServer(strict=False) as server:
        server.expect().respond(body=b"alive").any_times()
        raw(server, data, shut=True)
        assert fetch(server, "GET", "/")[2] == b"alive"


# -- the pytest plugin ------------------------------------------------------------------------


def test_fixture_gives_a_started_server(warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/f").respond(body=b"fixture").once()
    assert fetch(warmline_mock, "GET", "/f")[2] == b"fixture"


# -- the documentation's examples run -------------------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "testing.md"


def test_module_docstring_example_runs() -> None:
    import warmline.testing as module

    assert module.__doc__ is not None
    example = module.__doc__.split("Example::\n", 1)[1].split("\nWith pytest", 1)[0]
    exec(compile(textwrap.dedent(example), "warmline.testing example", "exec"), {})


def test_docs_page_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    assert len(blocks) == 2
    exec(compile(blocks[0], "docs/testing.md example 1", "exec"), {})
    namespace: dict[str, object] = {}
    exec(compile(blocks[1], "docs/testing.md example 2", "exec"), namespace)
    with MockServer() as server:
        namespace["test_time"](server)  # type: ignore[operator]
        server.verify()
