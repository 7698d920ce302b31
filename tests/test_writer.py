"""RequestWriter: table-driven cases, and a round trip through h11's server side."""

from __future__ import annotations

import enum
import importlib
import json as stdlib_json
import pickle
import sys
from decimal import Decimal
from typing import Any
from urllib.parse import quote, unquote

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import warmline._json as wjson
from warmline.errors import InvalidRequest, WarmlineError
from warmline.http11._writer import (
    CACHE_SIZE,
    DEFAULT_MAX_REQUEST_BODY_SIZE,
    DEFAULT_USER_AGENT,
    RequestWriter,
)

HOST = "api.example.com"
UA = DEFAULT_USER_AGENT.encode()


def plain(host: str = HOST, **kwargs: Any) -> RequestWriter:
    """A writer without User-Agent, so expected bytes stay short."""
    kwargs.setdefault("user_agent", None)
    return RequestWriter(host, **kwargs)


def request_line(request: bytes) -> bytes:
    return request.partition(b"\r\n")[0]


def head_lines(request: bytes) -> list[bytes]:
    """The field lines, without the request line and the blank line."""
    head = request.partition(b"\r\n\r\n")[0]
    return head.split(b"\r\n")[1:]


def body_of(request: bytes) -> bytes:
    return request.partition(b"\r\n\r\n")[2]


# -- methods ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("GET", b"GET /x HTTP/1.1\r\nHost: api.example.com\r\n\r\n"),
        ("HEAD", b"HEAD /x HTTP/1.1\r\nHost: api.example.com\r\n\r\n"),
        ("DELETE", b"DELETE /x HTTP/1.1\r\nHost: api.example.com\r\n\r\n"),
        ("OPTIONS", b"OPTIONS /x HTTP/1.1\r\nHost: api.example.com\r\n\r\n"),
        # RFC 9110 §8.6: methods that define content get an explicit zero length.
        ("POST", b"POST /x HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 0\r\n\r\n"),
        ("PUT", b"PUT /x HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 0\r\n\r\n"),
        ("PATCH", b"PATCH /x HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 0\r\n\r\n"),
        ("get", b"GET /x HTTP/1.1\r\nHost: api.example.com\r\n\r\n"),
        ("pOsT", b"POST /x HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 0\r\n\r\n"),
        ("PURGE", b"PURGE /x HTTP/1.1\r\nHost: api.example.com\r\n\r\n"),
        ("M-SEARCH", b"M-SEARCH /x HTTP/1.1\r\nHost: api.example.com\r\n\r\n"),
    ],
)
def test_methods(method: str, expected: bytes) -> None:
    assert plain().build(method, "/x") == expected


@pytest.mark.parametrize("method", ["", "GE T", "GET\r\n", "G\x00T", "GÉT", "GET/", "(GET)", "A:B"])
def test_invalid_method(method: str) -> None:
    with pytest.raises(InvalidRequest, match="method"):
        plain().build(method, "/x")


def test_method_not_str() -> None:
    with pytest.raises(TypeError):
        plain().build(b"GET", "/x")  # type: ignore[arg-type]


def test_options_asterisk() -> None:
    w = plain()
    assert request_line(w.build("OPTIONS", "*")) == b"OPTIONS * HTTP/1.1"
    with pytest.raises(InvalidRequest):
        w.build("GET", "*")
    with pytest.raises(InvalidRequest, match="query"):
        w.build("OPTIONS", "*", params={"a": "b"})


# -- targets ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_path", "path", "target"),
    [
        ("", "/x", b"/x"),
        ("/", "/x", b"/x"),
        ("/api/v3", "/ticker/price", b"/api/v3/ticker/price"),
        ("/api/v3/", "/ticker", b"/api/v3/ticker"),
        ("api/v3", "/ticker", b"/api/v3/ticker"),
        ("//api//", "/t", b"/api/t"),
        ("/api", "/", b"/api/"),
        ("/api", "/t?a=1", b"/api/t?a=1"),
        ("/a b/é", "/t", b"/a%20b/%C3%A9/t"),
    ],
)
def test_base_path(base_path: str, path: str, target: bytes) -> None:
    assert request_line(plain(base_path=base_path).build("GET", path)) == (
        b"GET " + target + b" HTTP/1.1"
    )


@pytest.mark.parametrize(
    ("base_path", "normalised"), [("", ""), ("/", ""), ("api/v3/", "/api/v3"), ("/a b", "/a%20b")]
)
def test_base_path_property(base_path: str, normalised: str) -> None:
    w = plain(base_path=base_path)
    assert w.base_path == normalised
    assert w.host == HOST
    assert "api.example.com" in repr(w)


@pytest.mark.parametrize("base_path", ["/api?x=1", "/api#x"])
def test_base_path_with_query_or_fragment_is_refused(base_path: str) -> None:
    with pytest.raises(InvalidRequest, match="base_path"):
        plain(base_path=base_path)


@pytest.mark.parametrize("path", ["", "x", "api/v3", "http://evil.example/x", " /x", "?a=1"])
def test_path_must_start_with_slash(path: str) -> None:
    with pytest.raises(InvalidRequest, match="must start with '/'") as info:
        plain().build("GET", path)
    assert info.value.method == "GET"
    assert info.value.path == path


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/plain/path", b"/plain/path"),
        ("/a b", b"/a%20b"),
        ("/a\r\nHost: evil", b"/a%0D%0AHost:%20evil"),
        ("/a\nb", b"/a%0Ab"),
        ("/nul\x00", b"/nul%00"),
        ("/tab\tdel\x7f", b"/tab%09del%7F"),
        ("/ctl\x01\x1f", b"/ctl%01%1F"),
        ("/é", b"/%C3%A9"),
        ("/😀", b"/%F0%9F%98%80"),
        ("/%41%2f", b"/%41%2f"),  # valid triplets are kept as given
        ("/%zz", b"/%25zz"),
        ("/%4", b"/%254"),
        ("/100%", b"/100%25"),
        ("/%%41", b"/%25%41"),
        ("/é%20", b"/%C3%A9%20"),
        ("/a#fragment", b"/a"),  # the fragment never goes on the wire
        ("/a?b=c#frag", b"/a?b=c"),
        ("/a?b=c d", b"/a?b=c%20d"),
        ("/a?x=/?&y=:@", b"/a?x=/?&y=:@"),
        ("/!$&'()*+,;=:@-._~", b"/!$&'()*+,;=:@-._~"),
        ('/[x]"<>\\^`{|}', b"/%5Bx%5D%22%3C%3E%5C%5E%60%7B%7C%7D"),
        ("/../a/./b", b"/../a/./b"),  # dot segments are the server's business
    ],
)
def test_path_encoding(path: str, target: bytes) -> None:
    request = plain().build("GET", path)
    line = request_line(request)
    assert line == b"GET " + target + b" HTTP/1.1"
    # Nothing unsafe reaches the wire raw: two spaces, no controls, ASCII only.
    assert line.count(b" ") == 2
    assert line.isascii()
    assert not any(c < 0x21 or c == 0x7F for c in target)


def test_path_with_lone_surrogate_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="Unicode"):
        plain().build("GET", "/\ud800")


def test_path_not_str() -> None:
    with pytest.raises(TypeError):
        plain().build("GET", b"/x")  # type: ignore[arg-type]


# -- query parameters ---------------------------------------------------------


class Side(enum.StrEnum):
    BUY = "BUY"


class Level(enum.IntEnum):
    FIVE = 5


@pytest.mark.parametrize(
    ("path", "params", "target"),
    [
        ("/t", {"symbol": "BTCUSDT"}, b"/t?symbol=BTCUSDT"),
        ("/t", {"symbol": "BTCUSDT", "limit": 100}, b"/t?symbol=BTCUSDT&limit=100"),
        ("/t", [("a", "1"), ("a", "2")], b"/t?a=1&a=2"),
        ("/t", {"a": ["1", 2, None, True]}, b"/t?a=1&a=2&a=true"),
        ("/t", {"a": ("x", "y")}, b"/t?a=x&a=y"),
        ("/t", {"a": []}, b"/t"),
        ("/t", {"q": "a b"}, b"/t?q=a%20b"),
        ("/t", {"q": "é€"}, b"/t?q=%C3%A9%E2%82%AC"),
        ("/t", {"q": "&=?/#+%;"}, b"/t?q=%26%3D%3F%2F%23%2B%25%3B"),
        ("/t", {"q": "-._~"}, b"/t?q=-._~"),
        ("/t", {"q": "\r\n\x00"}, b"/t?q=%0D%0A%00"),
        ("/t", {"a b": "c", "é": "d"}, b"/t?a%20b=c&%C3%A9=d"),
        ("/t", {"q": ""}, b"/t?q="),
        ("/t", {"": "v"}, b"/t?=v"),
        ("/t", {"t": True, "f": False}, b"/t?t=true&f=false"),
        ("/t", {"n": -5, "z": 0}, b"/t?n=-5&z=0"),
        ("/t", {"x": 1.5, "y": 1e-05, "z": 1e20}, b"/t?x=1.5&y=1e-05&z=1e%2B20"),
        ("/t", {"d": Decimal("1E-7"), "e": Decimal("-12.50")}, b"/t?d=0.0000001&e=-12.50"),
        ("/t", {"side": Side.BUY, "lvl": Level.FIVE}, b"/t?side=BUY&lvl=5"),
        ("/t", {"skip": None, "keep": "k"}, b"/t?keep=k"),
        ("/t", {"skip": None}, b"/t"),
        ("/t", {}, b"/t"),
        ("/t?x=1", {"a": "b"}, b"/t?x=1&a=b"),
        ("/t?", {"a": "b"}, b"/t?a=b"),
        ("/t?x=1&", {"a": "b"}, b"/t?x=1&a=b"),
        ("/t#f", {"a": "b"}, b"/t?a=b"),
        ("/t", iter([("g", "1")]), b"/t?g=1"),
    ],
)
def test_params(path: str, params: Any, target: bytes) -> None:
    request = plain().build("GET", path, params=params)
    assert request_line(request) == b"GET " + target + b" HTTP/1.1"


@pytest.mark.parametrize("value", [b"bytes", object(), {"a": 1}, {1, 2}])
def test_param_unsupported_type(value: object) -> None:
    with pytest.raises(TypeError, match="unsupported value type"):
        plain().build("GET", "/t", params={"a": value})


def test_param_key_not_str() -> None:
    with pytest.raises(TypeError, match="name must be str"):
        plain().build("GET", "/t", params={1: "a"})  # type: ignore[dict-item]


def test_param_lone_surrogate() -> None:
    with pytest.raises(InvalidRequest, match="Unicode") as info:
        plain().build("GET", "/t", params={"a": "\udc80"})
    assert (info.value.method, info.value.path) == ("GET", "/t")


def test_params_agree_with_urllib_quote() -> None:
    # An independent oracle: urllib's quote with nothing but unreserved safe.
    text = "".join(chr(c) for c in range(1, 300))
    request = plain().build("GET", "/t", params={"k": text})
    expected = "/t?k=" + quote(text, safe="")
    assert request_line(request) == f"GET {expected} HTTP/1.1".encode()


# -- headers ------------------------------------------------------------------

BAD_NAMES = ["", "X Y", "X:Y", "X\r\nY", "X\nY", "X\rY", "X\x00", "Ünïcode", "X(Y)", " X", "X\t"]
BAD_VALUES = ["a\rb", "a\nb", "a\r\nInjected: 1", "a\x00b", "\x01", "a\x1fb", "a\x7fb", "€", "😀"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_header_name_per_request(name: str) -> None:
    with pytest.raises(InvalidRequest, match="header name") as info:
        plain().build("GET", "/x", headers={name: "v"})
    assert (info.value.method, info.value.path) == ("GET", "/x")


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_header_name_default(name: str) -> None:
    with pytest.raises(InvalidRequest, match="header name"):
        plain(headers={name: "v"})


@pytest.mark.parametrize("value", BAD_VALUES)
def test_bad_header_value_per_request(value: str) -> None:
    with pytest.raises(InvalidRequest, match="'X-Key'") as info:
        plain().build("POST", "/o", headers={"X-Key": "s3cr3t" + value})
    assert (info.value.method, info.value.path) == ("POST", "/o")
    # The value may be a secret: the message names the header, not the value.
    assert "s3cr3t" not in str(info.value)


@pytest.mark.parametrize("value", BAD_VALUES)
def test_bad_header_value_default(value: str) -> None:
    with pytest.raises(InvalidRequest, match="'X-Key'"):
        plain(headers=[("X-Key", value)])


@pytest.mark.parametrize("value", BAD_VALUES)
def test_bad_user_agent(value: str) -> None:
    with pytest.raises(InvalidRequest, match="User-Agent"):
        RequestWriter(HOST, user_agent=value)


@pytest.mark.parametrize("name", ["Content-Length", "content-length", "Transfer-Encoding"])
def test_framing_headers_are_refused(name: str) -> None:
    with pytest.raises(InvalidRequest, match="computed by the writer"):
        plain().build("POST", "/x", headers={name: "5"})
    with pytest.raises(InvalidRequest, match="computed by the writer"):
        plain(headers={name: "5"})


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        ("plain", b"plain"),
        ("  padded \t", b"padded"),
        ("in side", b"in side"),
        ("tab\tinside", b"tab\tinside"),
        ("", b""),
        ("   ", b""),
        ("café", b"caf\xe9"),  # obs-text: latin-1 is sent as is (RFC 9110 §5.5)
        ("\xa0nbsp\xad", b"\xa0nbsp\xad"),
    ],
)
def test_header_values_sent(value: str, sent: bytes) -> None:
    expected = b"X-V: " + sent
    assert expected in head_lines(plain().build("GET", "/x", headers={"X-V": value}))
    assert expected in head_lines(plain(headers={"X-V": value}).build("GET", "/x"))


def test_header_value_not_str() -> None:
    with pytest.raises(TypeError, match="must be str"):
        plain().build("GET", "/x", headers={"X-N": 5})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="must be str"):
        plain(headers={"X-N": 5})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="name must be str"):
        plain().build("GET", "/x", headers={b"X": "v"})  # type: ignore[dict-item]


def test_default_headers_serialised_in_order() -> None:
    w = RequestWriter(HOST, headers=[("X-A", "1"), ("Accept", "a"), ("Accept", "b")])
    assert head_lines(w.build("GET", "/x")) == [
        b"Host: api.example.com",
        b"User-Agent: " + UA,
        b"X-A: 1",
        b"Accept: a",
        b"Accept: b",
    ]


def test_user_agent_options() -> None:
    assert b"User-Agent: " + UA in head_lines(RequestWriter(HOST).build("GET", "/"))
    assert DEFAULT_USER_AGENT.startswith("warmline/")
    custom = RequestWriter(HOST, user_agent="bot/1")
    assert head_lines(custom.build("GET", "/"))[1] == b"User-Agent: bot/1"
    given = RequestWriter(HOST, user_agent="ignored", headers={"user-agent": "mine"})
    lines = head_lines(given.build("GET", "/"))
    assert lines == [b"Host: api.example.com", b"user-agent: mine"]
    assert not any(b"User-Agent" in line for line in head_lines(plain().build("GET", "/")))


@pytest.mark.parametrize(
    ("defaults", "per_request", "expected"),
    [
        # Same name, any case: the per-request header replaces the default.
        ({"X-Key": "a"}, {"x-key": "b"}, [b"Host: h", b"X-Other: o", b"x-key: b"]),
        (
            {"X-Key": "a"},
            {"X-KEY": "b", "X-New": "n"},
            [b"Host: h", b"X-Other: o", b"X-KEY: b", b"X-New: n"],
        ),
        # Several defaults of that name all go; several per-request values all stay.
        (
            [("Accept", "a"), ("Accept", "b")],
            [("accept", "c"), ("accept", "d")],
            [b"Host: h", b"X-Other: o", b"accept: c", b"accept: d"],
        ),
        # Per-request names that match no default are added after the defaults.
        ({}, [("X-A", "1"), ("X-A", "2")], [b"Host: h", b"X-Other: o", b"X-A: 1", b"X-A: 2"]),
        # Host may be replaced too; it stays the first field line (RFC 9110 §7.2).
        ({}, {"X-Z": "z", "host": "other:81"}, [b"host: other:81", b"X-Other: o", b"X-Z: z"]),
    ],
)
def test_per_request_header_replaces_default(
    defaults: Any, per_request: Any, expected: list[bytes]
) -> None:
    items = list(defaults.items()) if isinstance(defaults, dict) else list(defaults)
    w = plain("h", headers=[("X-Other", "o"), *items])
    assert head_lines(w.build("GET", "/x", headers=per_request)) == expected
    # The replacement is per request: the defaults come back on the next call.
    assert head_lines(w.build("GET", "/x")) == [b"Host: h", b"X-Other: o"] + [
        f"{k}: {v}".encode() for k, v in items
    ]


def test_replacing_user_agent() -> None:
    w = RequestWriter("h", headers={"X-A": "1"})
    lines = head_lines(w.build("GET", "/", headers={"User-Agent": "other"}))
    assert lines == [b"Host: h", b"X-A: 1", b"User-Agent: other"]


def test_host_header_rules() -> None:
    w = plain("10.0.0.5:8080", headers={"Host": "api.internal"})
    assert head_lines(w.build("GET", "/")) == [b"Host: api.internal"]
    assert w.host == "10.0.0.5:8080"
    with pytest.raises(InvalidRequest, match="more than one Host"):
        plain(headers=[("Host", "a"), ("host", "b")])
    with pytest.raises(InvalidRequest, match="more than one Host"):
        plain().build("GET", "/", headers=[("Host", "a"), ("host", "b")])


def test_header_name_cache_does_not_leak_between_writers() -> None:
    a = plain("h", headers={"X-Key": "default"})
    b = plain("h")
    assert head_lines(a.build("GET", "/", headers={"X-Key": "r"})) == [b"Host: h", b"X-Key: r"]
    assert head_lines(b.build("GET", "/", headers={"X-Key": "r"})) == [b"Host: h", b"X-Key: r"]


# -- bodies -------------------------------------------------------------------


ORDER = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.001", "price": 65000.5, "é": None}


def test_json_body() -> None:
    request = plain().build("POST", "/order", json=ORDER)
    body = wjson.dumps(ORDER)
    assert head_lines(request) == [
        b"Host: api.example.com",
        b"Content-Type: application/json",
        b"Content-Length: " + str(len(body)).encode(),
    ]
    assert body_of(request) == body
    assert stdlib_json.loads(body_of(request)) == ORDER
    assert b" " not in body  # compact separators


@pytest.mark.parametrize("json_value", [[], 0, "", False, {"a": [1, 2]}])
def test_falsy_json_values_are_bodies(json_value: object) -> None:
    request = plain().build("PUT", "/x", json=json_value)
    assert body_of(request) == wjson.dumps(json_value)
    assert b"Content-Type: application/json" in head_lines(request)


def test_json_respects_callers_content_type() -> None:
    per_request = plain().build("POST", "/o", json={}, headers={"content-type": "text/x"})
    assert head_lines(per_request) == [
        b"Host: api.example.com",
        b"content-type: text/x",
        b"Content-Length: 2",
    ]
    default = plain(headers={"Content-Type": "application/vnd+json"}).build("POST", "/o", json={})
    assert head_lines(default).count(b"Content-Type: application/vnd+json") == 1
    assert b"Content-Type: application/json" not in head_lines(default)


@pytest.mark.parametrize(
    ("content", "body"),
    [
        (b"raw", b"raw"),
        (bytearray(b"array"), b"array"),
        (memoryview(b"view"), b"view"),
        (memoryview(bytearray(b"abcdef"))[1:4], b"bcd"),
        (memoryview(b"abcdef")[::2], b"ace"),  # not contiguous
        (memoryview(b"\x01\x00\x00\x00\x02\x00\x00\x00").cast("i"), b"\x01\0\0\0\x02\0\0\0"),
        ("text é", "text é".encode()),  # length in bytes, not characters
        (b"", b""),
        ("", b""),
    ],
)
def test_content_body(content: Any, body: bytes) -> None:
    request = plain().build("POST", "/u", content=content)
    assert head_lines(request)[-1] == b"Content-Length: " + str(len(body)).encode()
    assert body_of(request) == body
    assert not any(line.startswith(b"Content-Type") for line in head_lines(request))


def test_get_with_body_has_length() -> None:
    request = plain().build("GET", "/search", content=b"{}")
    assert head_lines(request)[-1] == b"Content-Length: 2"


def test_content_and_json_together_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="not both") as info:
        plain().build("POST", "/o", content=b"x", json={"a": 1})
    assert (info.value.method, info.value.path) == ("POST", "/o")


@pytest.mark.parametrize("content", [1, ["a"], {"a": 1}, object()])
def test_content_wrong_type(content: object) -> None:
    with pytest.raises(TypeError, match="content must be"):
        plain().build("POST", "/o", content=content)  # type: ignore[arg-type]


def test_json_unserialisable() -> None:
    with pytest.raises(TypeError):
        plain().build("POST", "/o", json={"a": object()})


def test_max_body_size() -> None:
    w = plain(max_body_size=4)
    assert body_of(w.build("POST", "/o", content=b"1234")) == b"1234"
    with pytest.raises(InvalidRequest, match="body too large for the writer") as info:
        w.build("POST", "/o", content=b"12345")
    assert (info.value.method, info.value.path) == ("POST", "/o")
    with pytest.raises(InvalidRequest, match="too large"):
        w.build("POST", "/o", json="abcd")  # serialised: 6 bytes with quotes
    unlimited = plain(max_body_size=None)
    assert len(body_of(unlimited.build("POST", "/o", content=b"x" * 100_000))) == 100_000
    assert DEFAULT_MAX_REQUEST_BODY_SIZE >= 1024 * 1024
    with pytest.raises(ValueError, match="max_body_size"):
        plain(max_body_size=-1)


def test_invalid_request_errors_pickle() -> None:
    with pytest.raises(InvalidRequest) as info:
        plain().build("GET", "/x", headers={"Bad Name": "v"})
    clone = pickle.loads(pickle.dumps(info.value))
    assert isinstance(clone, WarmlineError)
    assert (clone.method, clone.path, str(clone)) == ("GET", "/x", str(info.value))


# -- cache --------------------------------------------------------------------


def test_cache_reuses_identical_plain_calls() -> None:
    w = RequestWriter(HOST, headers={"X-Key": "k"})
    first = w.build("GET", "/ticker/price")
    assert w.build("GET", "/ticker/price") is first
    post = w.build("POST", "/order")
    assert w.build("POST", "/order") is post
    assert post != first


def test_cache_never_serves_a_different_call() -> None:
    w = plain()
    cached = w.build("GET", "/t")
    variants = [
        w.build("GET", "/t", params={"a": "1"}),
        w.build("GET", "/t", headers={"X": "1"}),
        w.build("GET", "/t", content=b"x"),
        w.build("GET", "/t", json={"a": 1}),
        w.build("HEAD", "/t"),
        w.build("GET", "/u"),
        w.build("GET", "/t/"),
    ]
    for variant in variants:
        assert variant is not cached
        assert variant != cached
    assert w.build("GET", "/t") is cached
    # An empty params dict changes nothing on the wire.
    assert w.build("GET", "/t", params={}) == cached


def test_lower_case_method_shares_bytes() -> None:
    w = plain()
    assert w.build("get", "/t") == w.build("GET", "/t")


def test_cache_is_bounded_and_stays_correct() -> None:
    w = plain()
    for i in range(3 * CACHE_SIZE + 7):
        method = ("GET", "get", "DELETE", f"X{i}")[i % 4]
        expected = f"{method.upper()} /p/{i} HTTP/1.1".encode()
        assert request_line(w.build(method, f"/p/{i}")) == expected
        w.build("GET", f"/q/{i}", params={f"k{i}": i}, headers={f"X-{i}": "v"})
    assert sum(map(len, w._requests.values())) <= CACHE_SIZE
    assert sum(map(len, w._lines.values())) <= CACHE_SIZE
    assert len(w._names) <= CACHE_SIZE
    assert len(w._query_keys) <= CACHE_SIZE
    assert request_line(w.build("GET", "/p/0")) == b"GET /p/0 HTTP/1.1"


def test_errors_are_not_cached() -> None:
    w = plain()
    for _ in range(2):
        with pytest.raises(InvalidRequest):
            w.build("GET", "x")
        with pytest.raises(InvalidRequest):
            w.build("GET", "/x", headers={"X": "a\nb"})
    with pytest.raises(InvalidRequest):
        w.build("GET", "/x", headers={"Bad Name": "v"})
    with pytest.raises(InvalidRequest):  # the bad name was not learnt
        w.build("GET", "/x", headers={"Bad Name": "v"})


# -- host ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "api.example.com",
        "127.0.0.1:8080",
        "[::1]:8443",
        "[::1]",
        "[fe80::1%25eth0]:80",
        "localhost",
        "my_svc:80",
        "h:65535",
        "xn--bcher-kva.example",
    ],
)
def test_valid_hosts(host: str) -> None:
    request = RequestWriter(host).build("GET", "/")
    assert head_lines(request)[0] == b"Host: " + host.encode()


@pytest.mark.parametrize(
    "host",
    [
        "",
        "a b",
        "a\r\nX: y",
        "a\x00",
        "a/b",
        "a?b",
        "a#b",
        "user@host",
        "host:",
        "host:abc",
        "host:65536",
        "host:123456",
        "a:1:2",
        "[::1",
        "[::1]x",
        "[::1]:",
        "[]",
        "[::1]:8a",
        "bücher.example",
        "http://a",
        "%zz",
    ],
)
def test_invalid_hosts(host: str) -> None:
    with pytest.raises(InvalidRequest, match="invalid host"):
        RequestWriter(host)


def test_host_not_str() -> None:
    with pytest.raises(TypeError):
        RequestWriter(b"h")  # type: ignore[arg-type]


# -- _json --------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [{"a": 1, "b": "é", "c": [1.5, None, True]}, [], "x", 0, {"nested": {"k": "v"}}]
)
def test_json_backends_agree(value: object) -> None:
    assert wjson.dumps(value) == wjson._stdlib_dumps(value)
    assert isinstance(wjson.dumps(value), bytes)
    raw = wjson.dumps(value)
    for data in (raw, raw.decode(), bytearray(raw), memoryview(raw)):
        assert wjson.loads(data) == value
        assert wjson._stdlib_loads(data) == value


def test_json_errors_are_standard() -> None:
    for dumps in (wjson.dumps, wjson.plain_dumps, wjson._stdlib_dumps):
        with pytest.raises(TypeError):
            dumps({"d": {1, 2}})
    for loads in (wjson.loads, wjson._stdlib_loads):
        with pytest.raises(ValueError):
            loads(b"{not json")


def test_json_falls_back_to_stdlib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "orjson", None)  # makes `import orjson` fail
    try:
        fallback = importlib.reload(wjson)
        assert fallback.BACKEND == "json"
        assert fallback.dumps({"a": "é"}) == '{"a":"é"}'.encode()
        assert fallback.loads(b'{"a":1}') == {"a": 1}
    finally:
        monkeypatch.undo()
        importlib.reload(wjson)
    assert wjson.BACKEND == "orjson"


# -- round trip through h11 ---------------------------------------------------

TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# RFC 9110 §5.5 field-value characters (VCHAR, SP, HTAB, obs-text).
FIELD_CHARS = (
    "\t" + "".join(chr(c) for c in range(0x20, 0x7F)) + "".join(chr(c) for c in range(0x80, 0x100))
)
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE"]
DEFAULTS = [("X-Default", "d"), ("Accept", "*/*")]
BASE = "/api v1"
# "%" and "#" in paths have their own table above; "?" would start a query.
path_chars = st.characters(exclude_categories=("Cs",), exclude_characters="%#?")
any_chars = st.characters(exclude_categories=("Cs",))
header_names = st.one_of(
    # Names that replace a default or interact with json=, in any case.
    st.sampled_from(["Accept", "x-default", "USER-AGENT", "Content-Type", "content-type"]),
    st.text(TCHAR, min_size=1, max_size=12).filter(
        lambda n: n.lower() not in {"content-length", "transfer-encoding", "host"}
    ),
)
param_values = st.one_of(st.text(any_chars, max_size=8), st.integers(), st.booleans(), st.none())
bodies = st.one_of(
    st.none(),
    st.tuples(st.just("content"), st.binary(max_size=64)),
    st.tuples(
        st.just("json"),
        st.dictionaries(
            st.text(any_chars, max_size=5),
            st.integers(-(2**53), 2**53) | st.text(any_chars, max_size=5),
            max_size=4,
        ),
    ),
)


def param_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return quote(str(value), safe="")


def expected_headers(
    method: str, headers: list[tuple[str, str]], body: bytes | None, is_json: bool
) -> list[tuple[bytes, bytes]]:
    """An independent model of the head the writer must produce."""
    names = {name.lower() for name, _ in headers}
    out = [(b"host", HOST.encode()), (b"user-agent", UA)]
    out = [h for h in out if h[0].decode() not in names]
    out += [(n.lower().encode(), v.encode()) for n, v in DEFAULTS if n.lower() not in names]
    out += [(n.lower().encode(), v.strip(" \t").encode("latin-1")) for n, v in headers]
    if is_json and "content-type" not in names:
        out.append((b"content-type", b"application/json"))
    if body is not None:
        out.append((b"content-length", str(len(body)).encode()))
    elif method in {"POST", "PUT", "PATCH"}:
        out.append((b"content-length", b"0"))
    return out


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(METHODS),
    segments=st.lists(st.text(path_chars, max_size=8), max_size=4),
    params=st.lists(st.tuples(st.text(any_chars, max_size=6), param_values), max_size=4),
    headers=st.lists(st.tuples(header_names, st.text(FIELD_CHARS, max_size=16)), max_size=4),
    body=bodies,
)
def test_round_trip_through_h11(
    method: str,
    segments: list[str],
    params: list[tuple[str, object]],
    headers: list[tuple[str, str]],
    body: tuple[str, Any] | None,
) -> None:
    writer = RequestWriter(HOST, base_path=BASE, headers=DEFAULTS)
    path = "/" + "/".join(segments)
    kwargs: dict[str, Any] = {}
    if body is not None:
        kwargs[body[0]] = body[1]
    request = writer.build(method, path, params=params, headers=headers, **kwargs)

    conn = h11.Connection(h11.SERVER)
    conn.receive_data(request)
    event = conn.next_event()
    assert isinstance(event, h11.Request)
    assert event.method == method.encode()
    assert event.http_version == b"1.1"
    target = event.target.decode("ascii")
    # The path round-trips through percent-decoding; the query matches urllib.
    wanted_query = "&".join(
        f"{quote(k, safe='')}={param_text(v)}" for k, v in params if v is not None
    )
    raw_path, _, query = target.partition("?")
    assert unquote(raw_path) == BASE + path
    assert query == wanted_query
    sent_body = None
    if body is not None:
        sent_body = wjson.dumps(body[1]) if body[0] == "json" else body[1]
    expected = expected_headers(method, headers, sent_body, body is not None and body[0] == "json")
    assert list(event.headers) == expected
    received = b""
    while True:
        part = conn.next_event()
        if isinstance(part, h11.EndOfMessage):
            break
        assert isinstance(part, h11.Data)
        received += part.data
    assert received == (sent_body or b"")
    assert conn.next_event() is h11.NEED_DATA  # the whole request, no byte left over
