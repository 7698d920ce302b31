"""Streamed requests reported to hooks and histograms like whole ones (issue 12).

Both flavours, against the scripted keep-alive server (127.0.0.1 only);
every loop is bounded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.faultproxy import PoolDriver
from tests.scripted import Recorder
from tests.test_hooks_wiring import REQUEST_PHASES, Log, request_calls
from warmline import _hooks
from warmline.errors import ReadTimeout


@pytest.fixture(params=("aio", "sync"))
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def fresh_failure_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_hooks, "_failures", _hooks._HookFailureLog())


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder() as server:
        yield server


def stream_read(pool: PoolDriver, path: str, *, lease: bool = False, read: bool = True) -> Any:
    """Open a stream, read its body (or not), close it; returns (status, body)."""
    if pool.flavour == "sync":
        if lease:
            with pool.pool.try_acquire() as slot, slot.stream("GET", path) as r:
                return r.status, (r.read() if read else b"")
        with pool.pool.stream("GET", path) as r:
            return r.status, (r.read() if read else b"")

    async def go() -> Any:
        if lease:
            slot = pool.pool.try_acquire()
            try:
                async with slot.stream("GET", path) as r:
                    return r.status, (await r.aread() if read else b"")
            finally:
                slot.release()
        async with pool.pool.stream("GET", path) as r:
            return r.status, (await r.aread() if read else b"")

    return pool.call_soon(go())


@pytest.mark.parametrize("lease", [False, True], ids=["pool", "lease"])
def test_a_stream_fires_every_phase_once_in_order(
    flavour: str, recorder: Recorder, lease: bool
) -> None:
    log = Log()
    pool = PoolDriver(flavour, recorder.url, connections=1, hooks=log.hooks)
    try:
        status, body = stream_read(pool, "/s", lease=lease)
        assert status == 200 and body
        calls = request_calls(log)
        assert [c[0] for c in calls] == list(REQUEST_PHASES)
        assert len({id(c[1]) for c in calls}) == 1
        event = calls[0][1]
        assert (event.method, event.path, event.status, event.error) == ("GET", "/s", 200, None)
        head, end = calls[3][2], calls[4][2]
        assert head["total"] is None  # the body is not read yet at the head
        for name in ("acquire_wait", "write", "ttfb", "body", "total"):
            assert end[name] >= 0, name
        parts = end["acquire_wait"] + end["write"] + end["ttfb"] + end["body"]
        assert parts == pytest.approx(end["total"])
        # The slot is back: a second stream on a one-slot pool goes through.
        assert stream_read(pool, "/t", lease=lease)[0] == 200
        assert len(log.of("on_response_end")) == 2
    finally:
        pool.close()


def test_a_stream_closed_early_still_ends(flavour: str, recorder: Recorder) -> None:
    log = Log()
    pool = PoolDriver(flavour, recorder.url, connections=1, hooks=log.hooks)
    try:
        stream_read(pool, "/s", read=False)
        assert log.names(("on_response_end", "on_error")) == ["on_response_end"]
    finally:
        pool.close()


def test_a_failed_stream_ends_with_on_error(flavour: str, recorder: Recorder) -> None:
    log = Log()
    pool = PoolDriver(flavour, recorder.url, connections=1, hooks=log.hooks)
    try:
        recorder.let_go.clear()
        with pytest.raises(ReadTimeout):
            if flavour == "sync":
                with pool.pool.stream("GET", "/slow", timeout=0.2):
                    pass
            else:

                async def go() -> None:
                    async with pool.pool.stream("GET", "/slow", timeout=0.2):
                        pass

                pool.call_soon(go())
        names = log.names((*REQUEST_PHASES, "on_error"))
        assert names[0] == "on_request_start" and names[-1] == "on_error"
        assert "on_response_end" not in names and "on_response_head" not in names
        (event,) = log.of("on_error")
        assert isinstance(event.error, ReadTimeout) and event.timings.total > 0
        recorder.let_go.set()
        assert stream_read(pool, "/again")[0] == 200  # the slot was released
    finally:
        pool.close()


def test_streams_are_recorded_in_the_histograms(flavour: str, recorder: Recorder) -> None:
    pool = PoolDriver(flavour, recorder.url, connections=1, latency=True)
    try:
        for i in range(3):
            stream_read(pool, f"/s{i}")
        pool.get("/whole")
        histograms = pool.pool.stats().histograms
        assert histograms["total"].count == 4
        assert histograms["ttfb"].count == 4
        assert histograms["acquire_wait"].count == 4
    finally:
        pool.close()
