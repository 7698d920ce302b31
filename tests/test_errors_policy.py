"""The error tree and the pure policy objects shared by both shells."""

from __future__ import annotations

import pickle

import pytest

import warmline
from warmline import errors
from warmline._policy import DEFAULT, Backoff, Origin, StatsCounters

ALL_ERRORS = [getattr(errors, name) for name in errors.__all__]


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_every_error_is_a_warmline_error_and_pickles_with_context(cls: type) -> None:
    assert issubclass(cls, warmline.WarmlineError)
    exc = cls("boom", origin="http://h:1", method="GET", path="/p")
    exc.__cause__ = OSError("low level")
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is cls
    context = (back.message, back.origin, back.method, back.path)
    assert context == ("boom", "http://h:1", "GET", "/p")
    assert str(back) == "boom (http://h:1 GET /p)"


def test_connection_closed_keeps_received_any_through_pickle() -> None:
    exc = warmline.ConnectionClosed("closed", received_any=True)
    assert pickle.loads(pickle.dumps(exc)).received_any is True


def test_timeouts_are_builtin_timeouts_and_phases_are_distinct() -> None:
    for cls in (warmline.PoolTimeout, warmline.ConnectTimeout, warmline.ReadTimeout):
        assert issubclass(cls, TimeoutError)
    assert issubclass(warmline.ConnectTimeout, warmline.ConnectError)
    assert issubclass(warmline.PoolTimeout, warmline.PoolError)
    assert issubclass(warmline.ResponseTooLarge, warmline.ProtocolError)
    assert not issubclass(warmline.ReadTimeout, warmline.ConnectError)


def test_with_context_fills_only_what_is_missing() -> None:
    exc = warmline.ProtocolError("bad", path="/known")
    assert exc.with_context(origin="http://o:1", method="GET", path="/other") is exc
    assert (exc.origin, exc.method, exc.path) == ("http://o:1", "GET", "/known")


def test_backoff_grows_caps_and_jitters_within_bounds() -> None:
    b = Backoff(initial=0.1, maximum=1.0, multiplier=2.0, jitter=0.0)
    assert [b.delay(k) for k in range(6)] == [0.0, 0.1, 0.2, 0.4, 0.8, 1.0]
    assert b.delay(10_000) == 1.0  # no float overflow
    j = Backoff(initial=0.1, maximum=1.0, multiplier=2.0, jitter=0.5)
    assert j.delay(2, rand=0.0) == pytest.approx(0.1)
    assert j.delay(2, rand=0.999999) == pytest.approx(0.3, rel=1e-4)
    assert all(0.0 < j.delay(3) <= 1.0 for _ in range(200))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": -1.0},
        {"maximum": float("nan")},
        {"multiplier": 0.5},
        {"jitter": 1.0},
        {"initial": 2.0, "maximum": 1.0},
    ],
)
def test_backoff_rejects_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port", "host_header"),
    [
        ("http://api.x.com", "http", "api.x.com", 80, "api.x.com"),
        ("https://api.x.com/", "https", "api.x.com", 443, "api.x.com"),
        ("http://127.0.0.1:8080", "http", "127.0.0.1", 8080, "127.0.0.1:8080"),
        ("https://[::1]:8443", "https", "::1", 8443, "[::1]:8443"),
        ("HTTP://Example.COM", "http", "example.com", 80, "example.com"),
    ],
)
def test_origin_parse(url: str, scheme: str, host: str, port: int, host_header: str) -> None:
    origin = Origin.parse(url)
    assert (origin.scheme, origin.host, origin.port, origin.host_header) == (
        scheme,
        host,
        port,
        host_header,
    )


def test_origin_unix_socket() -> None:
    origin = Origin.parse("unix:///run/app.sock")
    assert (origin.uds, origin.host_header, str(origin)) == (
        "/run/app.sock",
        "localhost",
        "unix:///run/app.sock",
    )


@pytest.mark.parametrize(
    "url",
    [
        "ftp://x",
        "http://h/path",
        "http://h?q=1",
        "http://",
        "http://u:p@h",
        "http://h:0",
        "http://h:99999",
        "unix://",
        "http://h\r\nX: y",
    ],
)
def test_origin_rejects_bad_urls(url: str) -> None:
    with pytest.raises(warmline.InvalidRequest):
        Origin.parse(url)


def test_stats_counters_snapshot_is_independent() -> None:
    counters = StatsCounters()
    counters.error(warmline.ReadTimeout("t"))
    counters.error(warmline.ReadTimeout("t"))
    snap = counters.snapshot(ready=1, in_use=2, reconnecting=3, size=6)
    counters.error(warmline.ProtocolError("p"))
    assert snap.errors == {"ReadTimeout": 2}
    assert snap.as_dict()["in_use"] == 2
    assert repr(DEFAULT) == "<pool default>"
