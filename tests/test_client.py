"""AsyncClient and Client against real granian servers: routing, limits, bad input.

One body, two drivers (tests/clientdriver.py): each test runs against the
asyncio client (on its own loop) and the blocking one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import warmline
from tests.clientdriver import FLAVOURS
from tests.clientdriver import ClientDriver as Driver
from warmline._server.launch import Server, start_granian


@pytest.fixture(scope="module")
def second() -> Iterator[Server]:
    with start_granian() as server:
        yield server


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.timeout(60)
def test_one_client_many_origins_within_the_limits(
    flavour: str, granian: Server, second: Server
) -> None:
    d = Driver(
        flavour,
        limits=warmline.Limits(total=3, per_host=2),
        warm={granian.url: 2},
        timeout=warmline.Timeouts(total=10),
    )
    try:
        # The warm origin is connected before the first request.
        assert d.client.stats()[granian.url].ready == 2
        urls = [granian.url + "/small", second.url + "/small"] * 15
        responses = d.many(urls)
        assert all(r.status == 200 and len(r.content) == 100 for r in responses)
        stats = d.client.stats()
        assert set(stats) == {granian.url, second.url}
        assert stats[granian.url].size == 2  # warm: exactly its connections
        assert stats[second.url].size == 2  # lazy: per_host slots
        # total=3 with 2 warm: the lazy origin never had more than one open.
        lazy = stats[second.url]
        assert lazy.ready + lazy.in_use <= 1
        assert sum(s.requests for s in stats.values()) == 30
        pool = d.client.pool(second.url)
        assert pool is d.client.pool(second.url + "/")  # one pool per authority
    finally:
        d.close()


@pytest.mark.timeout(30)
def test_bad_urls_and_a_closed_client(flavour: str, granian: Server) -> None:
    d = Driver(flavour, base_url=granian.url)
    try:
        assert d.get("/small").status == 200  # relative to base_url
        for bad in (
            "ftp://127.0.0.1/x",
            "http://user:secret@127.0.0.1:1/",
            "http://127.0.0.1:99999/",
            "http:///nohost",
            "small",
        ):
            with pytest.raises(warmline.InvalidRequest) as info:
                d.get(bad)
            assert "secret" not in str(info.value)
    finally:
        d.close()
    with pytest.raises(warmline.PoolClosed):
        d.client.get(granian.url + "/small") if flavour == "sync" else asyncio.run(
            d.client.get(granian.url + "/small")
        )


@pytest.mark.timeout(30)
def test_keep_alive_off_and_local_address(flavour: str, granian: Server) -> None:
    d = Driver(flavour, keep_alive=False, local_address="127.0.0.1")
    try:
        for _ in range(3):
            r = d.get(granian.url + "/echo")
            assert r.status == 200
            sent = {name.lower(): value for name, value in r.json()["headers"]}
            assert sent.get("connection") == "close"
        stats = d.client.stats()[granian.url]
        assert stats.ready == 0  # nothing kept: each connection closed after its response
    finally:
        d.close()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limits": warmline.Limits(total=1, per_host=1), "warm": {"http://127.0.0.1:1": 2}},
        {"timeout": "1"},
        {"limits": "10"},
    ],
)
def test_bad_options_fail_at_construction(kwargs: dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError)):
        warmline.Client(**kwargs)


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (warmline.Limits, {"total": 0}),
        (warmline.Limits, {"total": 2, "per_host": 3}),
        (warmline.Timeouts, {"read": -1.0}),
        (warmline.Timeouts, {"total": float("nan")}),
        (warmline.Timeouts, {"connect": float("inf")}),
    ],
)
def test_limits_and_timeouts_refuse_bad_values(cls: Any, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        cls(**kwargs)


@pytest.mark.timeout(30)
def test_one_shot_helpers(granian: Server) -> None:
    r = warmline.get(granian.url + "/small", timeout=5)
    assert r.status == 200 and len(r.content) == 100
    r = warmline.post(granian.url + "/echo", json={"px": 1})
    assert r.json()["method"] == "POST"
    r = warmline.request("put", granian.url + "/echo", content=b"x")
    assert r.json()["method"] == "PUT"
    with pytest.raises(warmline.InvalidRequest):
        warmline.get("not a url")


@pytest.mark.timeout(30)
def test_raise_for_status_and_is_success(granian: Server) -> None:
    with warmline.Client() as client:
        ok = client.get(granian.url + "/small")
        assert ok.is_success and ok.raise_for_status() is ok
        missing = client.get(granian.url + "/no-such-path")
        assert missing.status == 404 and not missing.is_success
        with pytest.raises(warmline.HTTPStatusError) as info:
            missing.raise_for_status()
        assert info.value.status == 404 and info.value.response is missing
        assert "404" in str(info.value)
