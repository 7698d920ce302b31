"""The events the observed path makes without their dataclass constructors (issue 12)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tests.faultproxy import PoolDriver
from tests.scripted import Recorder
from warmline._hooks import Hooks, PhaseTimings, RequestEvent
from warmline._pool._observe import _event


def test_event_helper_equals_the_constructor() -> None:
    fast = _event("http://h:1", "GET", "/p", 7)
    slow = RequestEvent("http://h:1", "GET", "/p", 7)
    assert dataclasses.asdict(fast) == dataclasses.asdict(slow)
    assert dataclasses.asdict(fast.timings) == dataclasses.asdict(PhaseTimings())


@pytest.mark.parametrize("flavour", ["aio", "sync"])
def test_an_event_made_at_the_end_has_every_field(flavour: str) -> None:
    got: list[Any] = []
    with Recorder() as server:
        pool = PoolDriver(
            flavour, server.url, connections=1, hooks=Hooks(on_response_end=got.append)
        )
        try:
            pool.get("/x")
        finally:
            pool.close()
    (event,) = got
    fields = dataclasses.asdict(event)  # raises if a slot was left unset
    assert set(fields) == {f.name for f in dataclasses.fields(RequestEvent)}
    assert (event.method, event.path, event.status, event.attempt) == ("GET", "/x", 200, 1)
    assert event.error is None and event.extra_headers is None and event.scratch is None
    assert isinstance(event.conn_id, int)
    t = event.timings
    assert None not in (t.acquire_wait, t.write, t.ttfb, t.total)
    assert t.body is not None and t.body >= 0
