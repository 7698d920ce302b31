"""Retry: the sans-I/O decision table, Retry-After parsing, validation."""

from __future__ import annotations

import math
import pickle
from email.utils import formatdate

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warmline._policy import IDEMPOTENT_METHODS, Backoff
from warmline.errors import (
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    InvalidRequest,
    PoolTimeout,
    ProtocolError,
    ProxyError,
    RateLimited,
    ReadTimeout,
    WriteTimeout,
)
from warmline.resilience import Retry, parse_retry_after

FLAT = Backoff(initial=0.1, maximum=0.8, multiplier=2.0, jitter=0.0)
NOW = 1_700_000_000.0


def headers(**values: str) -> dict[str, str]:
    return {k.replace("_", "-"): v for k, v in values.items()}


def test_defaults_match_the_issue() -> None:
    r = Retry()
    assert r.total == 2
    assert r.statuses == frozenset({429, 502, 503, 504})
    assert r.methods == IDEMPOTENT_METHODS
    assert r.respect_retry_after is True
    assert r.max_retry_after == 30.0


def test_is_immutable_and_picklable() -> None:
    r = Retry(total=3, backoff=FLAT)
    with pytest.raises(AttributeError):
        r.total = 5  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(r)) == r
    assert hash(r) == hash(Retry(total=3, backoff=FLAT))


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"total": -1}, ValueError),
        ({"total": 1.5}, ValueError),
        ({"total": True}, ValueError),
        ({"max_retry_after": -0.1}, ValueError),
        ({"max_retry_after": math.nan}, ValueError),
        ({"max_retry_after": "30"}, ValueError),
        ({"backoff": 0.1}, TypeError),
        ({"statuses": frozenset({"503"})}, TypeError),
        ({"methods": "GET"}, TypeError),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], exc: type[Exception]) -> None:
    with pytest.raises(exc):
        Retry(**kwargs)  # type: ignore[arg-type]


def test_user_sets_are_normalised() -> None:
    r = Retry(statuses=[500], methods=["post", "get"])  # type: ignore[arg-type]
    assert r.statuses == frozenset({500})
    assert r.methods == frozenset({"POST", "GET"})


def test_backoff_grows_per_attempt_then_stops() -> None:
    r = Retry(total=3, backoff=FLAT)
    delays = [r.decide(a, "GET", status=503, now_epoch=NOW) for a in (1, 2, 3, 4)]
    assert delays == [0.1, 0.2, 0.4, None]


def test_total_zero_never_retries() -> None:
    assert Retry(total=0).decide(1, "GET", status=503, now_epoch=NOW) is None


@pytest.mark.parametrize("status", [200, 201, 301, 400, 404, 500])
def test_statuses_outside_the_set_are_returned(status: int) -> None:
    assert Retry(backoff=FLAT).decide(1, "GET", status=status, now_epoch=NOW) is None


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_non_idempotent_status_not_retried_unless_listed(method: str) -> None:
    assert Retry(backoff=FLAT).decide(1, method, status=503, now_epoch=NOW) is None
    listed = Retry(backoff=FLAT, methods=IDEMPOTENT_METHODS | {method})
    assert listed.decide(1, method, status=503, now_epoch=NOW) == 0.1


def test_streamed_body_never_retried_after_a_response() -> None:
    r = Retry(backoff=FLAT, methods=frozenset({"PUT", "POST"}))
    assert r.decide(1, "PUT", status=503, replayable_body=False, now_epoch=NOW) is None


def test_retry_after_seconds_replaces_the_backoff() -> None:
    get = headers(retry_after="3").get
    assert Retry(backoff=FLAT).decide(1, "GET", status=429, headers_get=get, now_epoch=NOW) == 3.0


def test_retry_after_http_date() -> None:
    get = headers(retry_after=formatdate(NOW + 7, usegmt=True)).get
    assert Retry(backoff=FLAT).decide(1, "GET", status=503, headers_get=get, now_epoch=NOW) == 7.0


def test_retry_after_above_the_cap_returns_the_response() -> None:
    r = Retry(backoff=FLAT, max_retry_after=30.0)
    assert (
        r.decide(1, "GET", status=429, headers_get=headers(retry_after="31").get, now_epoch=NOW)
        is None
    )
    assert (
        r.decide(1, "GET", status=429, headers_get=headers(retry_after="30").get, now_epoch=NOW)
        == 30.0
    )


def test_retry_after_garbage_falls_back_to_the_backoff() -> None:
    get = headers(retry_after="in a while").get
    assert Retry(backoff=FLAT).decide(1, "GET", status=429, headers_get=get, now_epoch=NOW) == 0.1


def test_retry_after_ignored_when_not_respected() -> None:
    r = Retry(backoff=FLAT, respect_retry_after=False)
    get = headers(retry_after="300").get
    assert r.decide(2, "GET", status=429, headers_get=get, now_epoch=NOW) == 0.2


def test_wait_that_outlasts_the_deadline_stops() -> None:
    r = Retry(backoff=FLAT)
    get = headers(retry_after="2").get
    assert r.decide(1, "GET", status=429, headers_get=get, now_epoch=NOW, time_left=1.0) is None
    assert r.decide(1, "GET", status=429, headers_get=get, now_epoch=NOW, time_left=2.5) == 2.0
    assert r.decide(1, "GET", error=ConnectError("x"), now_epoch=NOW, time_left=0.05) is None


@pytest.mark.parametrize("method", ["GET", "POST", "PATCH"])
@pytest.mark.parametrize("error", [ConnectError("refused"), ConnectTimeout("slow")])
def test_connect_errors_retry_any_method_and_body(method: str, error: Exception) -> None:
    r = Retry(backoff=FLAT)
    assert r.decide(1, method, error=error, replayable_body=False, now_epoch=NOW) == 0.1


@pytest.mark.parametrize(
    ("status", "expected"), [(407, None), (403, None), (502, 0.1), (None, 0.1)]
)
def test_proxy_errors_retry_unless_the_proxy_refused(
    status: int | None, expected: float | None
) -> None:
    err = ProxyError("tunnel", status=status)
    assert Retry(backoff=FLAT).decide(1, "GET", error=err, now_epoch=NOW) == expected


@pytest.mark.parametrize(
    "error", [ReadTimeout("r"), WriteTimeout("w"), ConnectionClosed("c", received_any=True)]
)
def test_sent_request_errors_retry_only_idempotent_replayable(error: Exception) -> None:
    r = Retry(backoff=FLAT)
    assert r.decide(1, "GET", error=error, now_epoch=NOW) == 0.1
    assert r.decide(1, "POST", error=error, now_epoch=NOW) is None
    assert r.decide(1, "PUT", error=error, replayable_body=False, now_epoch=NOW) is None


@pytest.mark.parametrize(
    "error",
    [
        ProtocolError("garbage"),
        PoolTimeout("pool"),
        RateLimited("limit", retry_after=1.0),
        InvalidRequest("bad"),
        ValueError("user bug"),
        KeyboardInterrupt(),
    ],
)
def test_other_errors_are_never_retried(error: BaseException) -> None:
    assert Retry(backoff=FLAT).decide(1, "GET", error=error, now_epoch=NOW) is None


def test_jitter_uses_the_given_random_number() -> None:
    r = Retry(backoff=Backoff(initial=1.0, maximum=10.0, jitter=0.5))
    assert r.decide(1, "GET", status=503, now_epoch=NOW, rand=0.0) == 0.5
    assert r.decide(1, "GET", status=503, now_epoch=NOW, rand=0.999999) == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("120", 120.0),
        (" 5 ", 5.0),
        ("1.5", 1.5),
        ("", None),
        ("-1", None),
        ("1e3", None),
        ("5s", None),
        ("1.", None),
        ("٣", None),  # a non-ASCII digit is not delay-seconds
        ("9" * 11, None),
        (None, None),
        ("Thu, 01 Jan 1970 00:00:30 GMT", 20.0),
        ("Thu, 01 Jan 1970 00:00:30", 20.0),  # no zone: GMT, not local time
        ("Thu, 01 Jan 1970 00:00:05 GMT", 0.0),  # in the past: now
        ("Sunday, 06-Nov-94 08:49:37 GMT", 784111777.0 - 10.0),  # RFC 850 form, obsolete
        ("Mon, 99 Foo 2024 25:61:61 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, 10.0) == expected


@settings(max_examples=200)
@given(st.text(max_size=40))
def test_parse_retry_after_never_raises(value: str) -> None:
    result = parse_retry_after(value, NOW)
    assert result is None or (math.isfinite(result) and result >= 0)


@settings(max_examples=200)
@given(
    attempt=st.integers(1, 10),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    status=st.one_of(st.none(), st.integers(100, 599)),
    replayable=st.booleans(),
    retry_after=st.one_of(st.none(), st.text(max_size=12), st.integers(0, 100).map(str)),
)
def test_decide_never_exceeds_its_bounds(
    attempt: int, method: str, status: int | None, replayable: bool, retry_after: str | None
) -> None:
    r = Retry(total=3, backoff=FLAT, max_retry_after=30.0)
    get = {"retry-after": retry_after}.get if retry_after is not None else None
    d = r.decide(
        attempt, method, status=status, headers_get=get, replayable_body=replayable, now_epoch=NOW
    )
    if d is not None:
        assert attempt <= 3
        assert 0 <= d <= 30.0
        assert status in r.statuses and replayable and method in r.methods
