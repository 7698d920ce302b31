"""Hooks and latency histograms wired into both pools and both clients (issue 12).

Every request loop here is bounded; servers listen on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import warmline
from tests.bodydriver import Driver
from tests.faultproxy import PoolDriver
from tests.rawserver import OK_SMALL, RawServer, read_request
from tests.scripted import Recorder, idle_close_handler
from warmline import _hooks
from warmline._hooks import HOOK_NAMES, CloseReason, Hooks, RequestEvent
from warmline.errors import ReadTimeout
from warmline.testing import MockServer

FLAVOURS = ("aio", "sync")
FAST = warmline.Backoff(initial=0.01, maximum=0.05)
REQUEST_PHASES = (
    "on_request_start",
    "on_slot_acquired",
    "on_request_written",
    "on_response_head",
    "on_response_end",
)


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def fresh_failure_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_hooks, "_failures", _hooks._HookFailureLog())


class Log:
    """Hooks recording every call: (callback name, event, timings copy)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.hooks = Hooks(**{name: self._recorder(name) for name in HOOK_NAMES})

    def _recorder(self, name: str) -> Callable[[Any], None]:
        def record(event: Any) -> None:
            timings = getattr(event, "timings", None)
            with self.lock:
                self.calls.append((name, event, {} if timings is None else timings.as_dict()))

        return record

    def names(self, kinds: tuple[str, ...] = HOOK_NAMES) -> list[str]:
        return [name for name, _, _ in self.calls if name in kinds]

    def of(self, name: str) -> list[Any]:
        return [event for n, event, _ in self.calls if n == name]

    def wait_for(self, name: str, count: int = 1, bound: float = 5.0) -> list[Any]:
        deadline = time.monotonic() + bound
        while len(self.of(name)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} not called {count} times: {self.names()}")
            time.sleep(0.01)
        return self.of(name)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder() as server:
        yield server


def request_calls(log: Log) -> list[tuple[str, Any, dict[str, Any]]]:
    return [c for c in log.calls if c[0] in REQUEST_PHASES or c[0] in ("on_error",)]


# -- request phases -----------------------------------------------------------------------


def test_hooks_fire_in_order_once_per_phase(flavour: str, recorder: Recorder) -> None:
    log = Log()
    pool = PoolDriver(flavour, recorder.url, connections=1, hooks=log.hooks)
    try:
        assert pool.get("/a").status == 200
        calls = request_calls(log)
        assert [c[0] for c in calls] == list(REQUEST_PHASES)
        events = {id(c[1]) for c in calls}
        assert len(events) == 1  # one event object through the phases
        event = calls[0][1]
        assert (event.method, event.path, event.status, event.attempt) == ("GET", "/a", 200, 1)
        assert event.origin == recorder.url and event.url == recorder.url + "/a"
        (opened,) = log.of("on_connection_opened")
        assert event.conn_id == opened.conn_id and opened.connect_time > 0
        # Phases appear one by one, each a non-negative duration, and add up.
        seen = [c[2] for c in calls]
        assert seen[0]["acquire_wait"] is None
        assert seen[1]["acquire_wait"] >= 0 and seen[1]["write"] is None
        assert seen[2]["write"] >= 0
        final = seen[-1]
        for name in ("acquire_wait", "write", "ttfb", "body", "total"):
            assert final[name] >= 0, name
        parts = final["acquire_wait"] + final["write"] + final["ttfb"] + final["body"]
        assert parts == pytest.approx(final["total"])
    finally:
        pool.close()


def test_a_lease_waits_nothing(flavour: str, recorder: Recorder) -> None:
    log = Log()
    pool = PoolDriver(flavour, recorder.url, connections=1, hooks=log.hooks)
    try:
        if flavour == "sync":
            with pool.pool.acquire() as slot:
                slot.get("/a")
                slot.get("/b")
        else:

            async def two() -> None:
                async with pool.pool.acquire() as slot:
                    await slot.get("/a")
                    await slot.get("/b")

            pool.call_soon(two())
        acquired = log.of("on_slot_acquired")
        assert [e.path for e in acquired] == ["/a", "/b"]
        assert all(e.timings.acquire_wait == 0.0 for e in acquired)
        assert len(log.of("on_response_end")) == 2
    finally:
        pool.close()


def test_an_error_ends_with_on_error_and_the_connection_not_reusable(
    flavour: str, recorder: Recorder
) -> None:
    log = Log()
    pool = PoolDriver(flavour, recorder.url, connections=1, hooks=log.hooks, reconnect=FAST)
    try:
        outcome = None
        try:
            pool.get("/slow", timeout=0.2)
        except ReadTimeout as exc:
            outcome = exc
        assert isinstance(outcome, ReadTimeout)
        names = [c[0] for c in request_calls(log)]
        assert names == [
            "on_request_start",
            "on_slot_acquired",
            "on_request_written",
            "on_error",
        ]
        (failed,) = log.of("on_error")
        assert failed.error is outcome and failed.status is None
        assert failed.timings.total >= 0.15
        closed = log.wait_for("on_connection_closed")
        assert closed[0].reason is CloseReason.NOT_REUSABLE
        assert closed[0].conn_id == failed.conn_id
    finally:
        pool.close()


@pytest.mark.asyncio
async def test_cancellation_is_an_error(recorder: Recorder) -> None:
    log = Log()
    async with await warmline.ClientPool.connect(
        recorder.url, connections=1, hooks=log.hooks, reconnect=FAST
    ) as pool:
        task = asyncio.ensure_future(pool.get("/slow"))
        for _ in range(200):
            if log.of("on_slot_acquired"):
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        (failed,) = log.of("on_error")
        assert isinstance(failed.error, asyncio.CancelledError)
        assert log.of("on_response_end") == []
        (closed,) = log.of("on_connection_closed")
        assert closed.reason is CloseReason.NOT_REUSABLE


def one_then_close_on_next(conn: Any, index: int) -> None:
    """Answer a connection's first request, close on its second (a stale keep-alive)."""
    for answer in (True, False):
        if read_request(conn) is None:
            break
        if answer:
            conn.sendall(OK_SMALL)
    conn.close()


def test_a_stale_retry_reports_both_attempts(flavour: str) -> None:
    log = Log()
    with RawServer(one_then_close_on_next) as srv:
        pool = PoolDriver(flavour, srv.url, connections=1, hooks=log.hooks, reconnect=FAST)
        try:
            if flavour == "sync":
                with pool.pool.acquire() as slot:
                    slot.get("/a")
                    slot.get("/b")
            else:

                async def two() -> None:
                    async with pool.pool.acquire() as slot:
                        await slot.get("/a")
                        await slot.get("/b")

                pool.call_soon(two())
            assert pool.stats().stale_retries == 1
            b = [
                (n, ev)
                for n, ev, _ in log.calls
                if isinstance(ev, RequestEvent) and ev.path == "/b"
            ]
            assert [n for n, _ in b] == [
                "on_request_start",
                "on_slot_acquired",
                "on_request_written",
                "on_stale_retry",
                "on_request_written",
                "on_response_head",
                "on_response_end",
            ]
            event = b[0][1]
            assert event.attempt == 2 and event.status == 200
            assert event.conn_id != log.of("on_slot_acquired")[0].conn_id
            assert event.conn_id in {e.conn_id for e in log.of("on_connection_opened")}
        finally:
            pool.close()


@pytest.mark.parametrize("kind", ["client-aio", "client-sync"])
def test_each_redirect_hop_is_its_own_request(kind: str) -> None:
    log = Log()
    with MockServer() as mock:
        mock.expect(path="/a").respond(302, headers={"Location": "/b"})
        mock.expect(path="/b").respond(200, body=b"end")
        d = Driver(kind, mock.url, follow_redirects=True, timeout=10.0, hooks=log.hooks)
        try:
            assert d.get("/a").status == 200
        finally:
            d.close()
    ends = log.of("on_response_end")
    assert [(e.path, e.status) for e in ends] == [("/a", 302), ("/b", 200)]
    assert len(log.of("on_request_start")) == 2
    assert ends[0] is not ends[1]


def test_a_raising_hook_never_breaks_the_request(
    flavour: str, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(event: Any) -> None:
        raise RuntimeError("hook bug")

    hooks = Hooks(on_request_start=boom, on_response_end=boom)
    pool = PoolDriver(flavour, recorder.url, connections=1, hooks=hooks)
    try:
        with caplog.at_level(logging.WARNING, logger="warmline"):
            for _ in range(3):
                assert pool.get("/a").content == b"ok"
        assert pool.stats().hook_errors == 6
        assert pool.stats().requests == 3
        warned = [r for r in caplog.records if "hook bug" in str(r.exc_info and r.exc_info[1])]
        assert len(warned) == 1  # the first failure of the one hook function
    finally:
        pool.close()


def test_hooks_none_binds_nothing(flavour: str, recorder: Recorder) -> None:
    pool = PoolDriver(flavour, recorder.url, connections=1)
    try:
        assert "_request" not in vars(pool.pool) and "_call" not in vars(pool.pool)
        assert pool.stats().histograms == {}
    finally:
        pool.close()
    hooked = PoolDriver(flavour, recorder.url, connections=1, hooks=Hooks(on_error=print))
    try:
        assert "_request" in vars(hooked.pool) and "_call" in vars(hooked.pool)
    finally:
        hooked.close()


# -- connections, heals, keep-warm ------------------------------------------------------------


def test_pool_close_reports_every_connection(flavour: str, recorder: Recorder) -> None:
    log = Log()
    pool = PoolDriver(flavour, recorder.url, connections=3, hooks=log.hooks)
    opened = {e.conn_id for e in log.of("on_connection_opened")}
    assert len(opened) == 3
    pool.close()
    closed = log.wait_for("on_connection_closed", 3)
    assert {e.conn_id for e in closed} == opened
    assert {e.reason for e in closed} == {CloseReason.POOL_CLOSED}


def test_a_server_idle_close_is_peer_closed_and_heals(flavour: str) -> None:
    log = Log()
    with RawServer(idle_close_handler(lambda index: 0.2 if index == 0 else 30.0)) as srv:
        pool = PoolDriver(flavour, srv.url, connections=1, hooks=log.hooks, reconnect=FAST)
        try:
            (first,) = log.of("on_connection_opened")
            closed = log.wait_for("on_connection_closed")
            assert closed[0].conn_id == first.conn_id
            assert closed[0].reason is CloseReason.PEER_CLOSED
            heals = log.wait_for("on_heal_attempt")
            assert heals[0].error is None and heals[0].failures == 0
            assert heals[0].duration >= 0
            assert heals[0].conn_id == log.of("on_connection_opened")[1].conn_id
            assert pool.get("/a").status == 200
        finally:
            pool.close()


def test_idle_timeout_closes_with_its_reason(flavour: str, recorder: Recorder) -> None:
    log = Log()
    pool = PoolDriver(
        flavour, recorder.url, connections=1, hooks=log.hooks, idle_timeout=0.1, reconnect=FAST
    )
    try:
        pool.get("/a")
        time.sleep(0.3)
        pool.get("/b")  # finds the slot past its idle timeout (or swept already)
        closed = log.wait_for("on_connection_closed")
        assert closed[0].reason is CloseReason.IDLE_TIMEOUT
    finally:
        pool.close()


def test_keep_warm_pings_are_reported(flavour: str) -> None:
    log = Log()
    with RawServer(idle_close_handler(lambda index: 1.0)) as srv:
        pool = PoolDriver(
            flavour,
            srv.url,
            connections=1,
            hooks=log.hooks,
            keep_warm=warmline.KeepWarm(interval=0.2, method="GET"),
        )
        try:
            pings = log.wait_for("on_keep_warm", 2)
            for ping in pings[:2]:
                assert (ping.method, ping.path, ping.status, ping.error) == ("GET", "/", 200, None)
                assert ping.duration >= 0
            assert ping.conn_id == log.of("on_connection_opened")[0].conn_id
            assert log.of("on_connection_closed") == []  # kept warm: never idle-closed
        finally:
            pool.close()


def test_debug_logging_of_opens_and_closes(
    flavour: str, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="warmline"):
        pool = PoolDriver(flavour, recorder.url, connections=1)
        pool.get("/a")
        pool.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if any("closed: pool_closed" in r.getMessage() for r in caplog.records):
                break
            time.sleep(0.01)
    messages = [r.getMessage() for r in caplog.records if r.name == "warmline"]
    assert any("opened in" in m and recorder.url in m for m in messages), messages
    assert any("closed: pool_closed" in m for m in messages), messages
    assert not any("/a" in m for m in messages)  # nothing per request


# -- histograms -----------------------------------------------------------------------------


def test_histograms_match_the_recorded_durations(flavour: str, recorder: Recorder) -> None:
    log = Log()
    pool = PoolDriver(flavour, recorder.url, connections=2, hooks=log.hooks, latency=True)
    try:
        for i in range(60):
            pool.get(f"/n{i}")
        stats = pool.stats()
        assert set(stats.histograms) == {"acquire_wait", "ttfb", "total"}
        totals = sorted(e.timings.total for e in log.of("on_response_end"))
        total = stats.histograms["total"]
        assert total.count == 60 == stats.histograms["ttfb"].count
        assert total.max == pytest.approx(totals[-1])
        assert total.percentile(50) == pytest.approx(totals[29], rel=0.05)
        as_dict = stats.to_dict()
        assert as_dict["histograms"]["total"]["count"] == 60
        assert as_dict["histograms"]["total"]["p99"] is not None
        assert stats.as_dict() == as_dict
        # A copy: the pool's own goes on counting.
        pool.get("/more")
        assert total.count == 60 and pool.stats().histograms["total"].count == 61
    finally:
        pool.close()


def test_latency_alone_keeps_histograms_without_hooks(flavour: str, recorder: Recorder) -> None:
    pool = PoolDriver(flavour, recorder.url, connections=1, latency=True)
    try:
        for _ in range(5):
            pool.get("/a")
        assert pool.stats().histograms["total"].count == 5
        assert pool.stats().hook_errors == 0
    finally:
        pool.close()


@pytest.mark.parametrize("kind", ["client-aio", "client-sync"])
def test_client_stats_have_histograms_per_origin(kind: str, recorder: Recorder) -> None:
    with Recorder() as other:
        d = Driver(kind, recorder.url, latency=True, timeout=10.0)
        try:
            d.get("/a")
            d.call(lambda t: t.get(other.url + "/b"))
            d.call(lambda t: t.get(other.url + "/c"))
            stats = d.target.stats()
        finally:
            d.close()
    assert stats[recorder.url].histograms["total"].count == 1
    assert stats[other.url].histograms["total"].count == 2


def test_bad_options_are_type_errors() -> None:
    with pytest.raises(TypeError, match=r"hooks must be a warmline\.Hooks"):
        warmline.AtomicClientPool.connect("http://127.0.0.1:9", hooks=print)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="latency must be a bool"):
        warmline.AtomicClientPool.connect("http://127.0.0.1:9", latency=1)  # type: ignore[arg-type]
