"""Redirects on both clients against MockServer: methods, bodies, Location
forms, history, loops, credentials across origins, https to http."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import pytest

import warmline
from tests.bodydriver import Driver
from warmline.errors import InvalidRequest, TooManyRedirects
from warmline.testing import MockServer

CLIENTS = ("client-aio", "client-sync")


@pytest.fixture(params=CLIENTS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def mock() -> Iterator[MockServer]:
    with MockServer() as server:
        yield server


@pytest.fixture
def other() -> Iterator[MockServer]:
    with MockServer() as server:
        yield server


def _client(kind: str, url: str, **options: Any) -> Driver:
    options.setdefault("follow_redirects", True)
    options.setdefault("timeout", 10.0)
    return Driver(kind, url, **options)


def test_off_by_default_the_3xx_is_returned(kind: str, mock: MockServer) -> None:
    mock.expect(path="/a").respond(302, headers={"Location": "/b"})
    d = Driver(kind, mock.url)
    try:
        r = d.get("/a")
        assert r.status == 302 and r.history == [] and r.headers["location"] == "/b"
        assert len(mock.journal) == 1
    finally:
        d.close()


@pytest.mark.parametrize(
    ("status", "method", "body_kept"),
    [
        (301, "GET", False),
        (302, "GET", False),
        (303, "GET", False),
        (307, "POST", True),
        (308, "POST", True),
    ],
)
def test_methods_and_bodies(
    kind: str, mock: MockServer, status: int, method: str, body_kept: bool
) -> None:
    mock.expect(path="/start").respond(status, headers={"Location": "/end?x=1"})
    mock.expect(path="/end").respond(body=b"done").any_times()
    d = _client(kind, mock.url)
    try:
        r = d.request("POST", "/start", content=b"order", headers={"Content-Type": "text/plain"})
        assert r.status == 200 and r.content == b"done"
        assert [h.status for h in r.history] == [status]
        assert r.url == mock.url + "/end?x=1" and r.history[0].url == mock.url + "/start"
        second = mock.journal[1]
        assert second.method == method and second.target == "/end?x=1"
        assert second.body == (b"order" if body_kept else b"")
        assert ("content-type" in second.headers) is body_kept
    finally:
        d.close()


def test_head_stays_head_and_absolute_locations(kind: str, mock: MockServer) -> None:
    mock.expect(path="/h").respond(301, headers={"Location": mock.url + "/h2#frag"})
    mock.expect(path="/h2").respond(body=b"x")
    d = _client(kind, mock.url)
    try:
        r = d.request("HEAD", "/h")
        assert r.status == 200 and mock.journal[1].method == "HEAD"
        assert mock.journal[1].target == "/h2"  # the fragment is not sent
    finally:
        d.close()


def test_relative_location_without_slash(kind: str, mock: MockServer) -> None:
    mock.expect(path="/dir/a").respond(302, headers={"Location": "b"})
    mock.expect(path="/dir/b").respond(body=b"b")
    d = _client(kind, mock.url)
    try:
        assert d.get("/dir/a").content == b"b"
    finally:
        d.close()


def test_a_loop_is_too_many_redirects(kind: str, mock: MockServer) -> None:
    mock.expect(path="/loop").respond(302, headers={"Location": "/loop"}).any_times()
    d = _client(kind, mock.url, max_redirects=3)
    try:
        with pytest.raises(TooManyRedirects, match="more than 3"):
            d.get("/loop")
        assert len(mock.journal) == 4  # the first request and 3 hops
    finally:
        d.close()


@pytest.mark.parametrize("location", [None, "", "ftp://example.invalid/x", "http://h:99999/"])
def test_no_or_bad_location_returns_the_3xx(
    kind: str, mock: MockServer, location: str | None
) -> None:
    headers = {} if location is None else {"Location": location}
    mock.expect(path="/r").respond(302, headers=headers)
    d = _client(kind, mock.url)
    try:
        r = d.get("/r")
        assert r.status == 302 and r.history == []
    finally:
        d.close()


def test_credentials_never_cross_origins(kind: str, mock: MockServer, other: MockServer) -> None:
    mock.expect(path="/go").respond(307, headers={"Location": other.url + "/there"})
    mock.expect(path="/same").respond(302, headers={"Location": "/here"})
    mock.expect(path="/here").respond(body=b"h")
    other.expect(path="/there").respond(body=b"t")
    secrets = {"Authorization": "Bearer s3cret", "Cookie": "k=v", "X-Plain": "1"}
    d = _client(kind, mock.url)
    try:
        assert d.get("/go", headers=secrets).content == b"t"
        seen = other.journal[0].headers
        assert "authorization" not in seen and "cookie" not in seen
        assert seen["x-plain"] == "1"
        assert d.get("/same", headers=secrets).content == b"h"  # same origin: kept
        assert mock.journal[-1].headers["authorization"] == "Bearer s3cret"
    finally:
        d.close()


def test_default_credentials_refuse_a_cross_origin_hop(
    kind: str, mock: MockServer, other: MockServer
) -> None:
    mock.expect(path="/go").respond(302, headers={"Location": other.url + "/there"})
    d = _client(kind, mock.url, headers={"Authorization": "Bearer s3cret"})
    try:
        with pytest.raises(InvalidRequest, match="authorization"):
            d.get("/go")
        assert other.journal == []
    finally:
        d.close()


def test_https_to_http_is_refused(kind: str, mock: MockServer) -> None:
    with MockServer(tls=True) as secure:
        secure.expect(path="/down").respond(301, headers={"Location": mock.url + "/plain"})
        ctx = ssl.create_default_context(cafile=secure.ca_file)
        d = _client(kind, secure.url, tls=ctx)
        try:
            with pytest.raises(InvalidRequest, match="https to http"):
                d.get("/down")
            assert mock.journal == []
        finally:
            d.close()


def test_options_are_checked() -> None:
    with pytest.raises(TypeError):
        warmline.Client(follow_redirects="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_redirects"):
        warmline.Client(max_redirects=-1)
