"""Response.elapsed on both pools and both clients, whole and streamed.

The server holds each answer for a known delay, so elapsed has a lower
bound that any correct measurement meets; the upper bound only catches a
clock read at the wrong place (before a previous request, or in the wrong
unit), not slowness.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest

from tests.bodydriver import KINDS, Driver, stream
from warmline.http11 import Response
from warmline.testing import MockServer

DELAY = 0.05
CEILING = 10.0  # seconds: far above any loaded CI machine, far below a unit error


@pytest.fixture(params=KINDS)
def driver(request: pytest.FixtureRequest) -> Iterator[tuple[Driver, MockServer]]:
    with MockServer() as server:
        options: dict[str, object] = {"timeout": 10.0}
        if str(request.param).startswith("pool"):
            options["connections"] = 1
        d = Driver(str(request.param), server.url, **options)
        try:
            yield d, server
        finally:
            d.close()


def _seconds(r: Response) -> float:
    assert isinstance(r.elapsed, datetime.timedelta)
    return r.elapsed.total_seconds()


def test_elapsed_of_a_whole_response(driver: tuple[Driver, MockServer]) -> None:
    d, server = driver
    server.expect(path="/slow").respond(body=b"x" * 1000, delay=DELAY).times(1)
    server.expect(path="/fast").respond(body=b"y").times(1)
    slow = d.get("/slow")
    fast = d.get("/fast")
    assert slow.content == b"x" * 1000
    assert DELAY <= _seconds(slow) < CEILING
    # Its own request only: not the slow one before it on the same connection.
    assert 0 < _seconds(fast) < _seconds(slow)
    server.verify()


def test_elapsed_of_a_stream_is_to_its_head(driver: tuple[Driver, MockServer]) -> None:
    d, server = driver
    server.expect(path="/s").respond(body=b"z" * 200_000, delay=DELAY).times(1)
    r, body = stream(d, "/s", "read")
    assert body == b"z" * 200_000
    assert DELAY <= _seconds(r) < CEILING
    server.verify()


def test_a_response_built_by_hand_has_zero_elapsed() -> None:
    r = Response(200, "OK", "1.1", [], b"")
    assert r.elapsed == datetime.timedelta(0)
