"""Response and Headers: lazy decoding, case-insensitive lookups, text and JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from warmline.http11 import _response
from warmline.http11._headers import Headers
from warmline.http11._reader import ResponseReader
from warmline.http11._response import Response, split_fields

RAW: list[tuple[bytes, bytes]] = [
    (b"Content-Type", b"application/json; charset=utf-8"),
    (b"Set-Cookie", b"a=1"),
    (b"X-Latin", b"caf\xe9"),
    (b"set-cookie", b"b=2"),
    (b"Content-Length", b"7"),
]


def read(raw: bytes, method: str = "GET") -> Response:
    reader = ResponseReader()
    reader.start(method)
    response = reader.feed(raw)
    assert response is not None
    return response


# -- Headers ------------------------------------------------------------------------------


def test_lookup_is_case_insensitive_and_returns_the_first_value() -> None:
    h = Headers(RAW)
    assert h["content-type"] == "application/json; charset=utf-8"
    assert h["CONTENT-TYPE"] == h["Content-Type"]
    assert h["set-cookie"] == "a=1"
    assert h.get("SET-COOKIE") == "a=1"
    assert h.get_all("Set-Cookie") == ["a=1", "b=2"]
    assert h.get_all("missing") == []


def test_missing_keys() -> None:
    h = Headers(RAW)
    with pytest.raises(KeyError):
        h["missing"]
    assert h.get("missing") is None
    assert h.get("missing", "default") == "default"
    assert "missing" not in h
    assert "content-length" in h
    assert 42 not in h
    assert "caf\u20ac" not in h  # not latin-1: cannot be a received name
    assert h.get_all("caf\u20ac") == []


def test_values_are_decoded_as_latin_1() -> None:
    h = Headers(RAW)
    assert h["x-latin"] == "caf\xe9"


def test_iteration_and_length_are_over_distinct_lower_cased_names() -> None:
    h = Headers(RAW)
    assert list(h) == ["content-type", "set-cookie", "x-latin", "content-length"]
    assert len(h) == 4
    assert dict(h) == {
        "content-type": "application/json; charset=utf-8",
        "set-cookie": "a=1",
        "x-latin": "caf\xe9",
        "content-length": "7",
    }
    assert isinstance(h, Mapping)


def test_multi_items_keep_names_as_received() -> None:
    h = Headers(RAW)
    assert h.multi_items()[1] == ("Set-Cookie", "a=1")
    assert h.multi_items()[3] == ("set-cookie", "b=2")
    assert len(h.multi_items()) == 5
    assert h.raw is RAW


def test_equality() -> None:
    h = Headers(RAW)
    assert h == Headers([(n.upper(), v) for n, v in RAW])
    assert h != Headers(RAW[:-1])
    assert h != Headers([(n, v.upper()) for n, v in RAW])
    assert h == {
        "Content-Type": "application/json; charset=utf-8",
        "SET-COOKIE": "a=1",
        "x-latin": "caf\xe9",
        "content-length": "7",
    }
    assert h != {"content-type": "text/plain"}
    assert h != 42
    assert Headers() == {}
    with pytest.raises(TypeError):
        hash(h)


def test_repr() -> None:
    assert repr(Headers([(b"A", b"1")])) == "Headers([('A', '1')])"


def test_empty_headers() -> None:
    h = Headers()
    assert len(h) == 0
    assert list(h) == []
    assert h.get("x") is None


# -- Response -------------------------------------------------------------------------------


def test_constructor_and_repr() -> None:
    r = Response(200, "OK", "1.1", RAW, b'{"a": 1}')
    assert r.status == 200
    assert r.reason == "OK"
    assert r.http_version == "1.1"
    assert r.raw_headers is RAW
    assert r.content == b'{"a": 1}'
    assert repr(r) == "<Response [200 OK]>"
    assert repr(Response(204, "", "1.1", [])) == "<Response [204]>"
    assert r.ok
    assert not Response(404, "Not Found", "1.1", []).ok
    assert list(r.raw_trailers) == []
    assert len(r.trailers) == 0


def test_reason_as_bytes_is_decoded_lazily() -> None:
    r = Response(200, b"\xc7a va", "1.1", [])
    assert r.reason == "\xc7a va"
    assert r.reason == "\xc7a va"


def test_headers_are_built_once() -> None:
    r = Response(200, "OK", "1.1", RAW)
    assert r.headers is r.headers
    assert r.headers["set-cookie"] == "a=1"


def test_fields_from_the_reader_are_split_when_read() -> None:
    r = read(b"HTTP/1.1 200 OK\r\nA:  1 \r\nb:2\r\nContent-Length: 0\r\n\r\n")
    assert r.raw_headers == [(b"A", b"1"), (b"b", b"2"), (b"Content-Length", b"0")]
    assert r.raw_headers is r.raw_headers
    assert r.headers["a"] == "1"


def test_split_fields() -> None:
    assert split_fields(b"HTTP/1.1 200 OK\r\n") == []
    assert split_fields(b"\r\nX: 1\r\nY:\t2 \r\n") == [(b"X", b"1"), (b"Y", b"2")]


def test_trailers() -> None:
    r = read(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\nX-Sum: 1\r\nx-sum: 2\r\n\r\n"
    )
    assert r.raw_trailers == [(b"X-Sum", b"1"), (b"x-sum", b"2")]
    assert r.trailers.get_all("X-SUM") == ["1", "2"]


@pytest.mark.parametrize(
    ("content_type", "body", "text"),
    [
        (None, "h\xe9llo \u20ac".encode(), "h\xe9llo \u20ac"),  # default UTF-8
        (b"text/plain", "\u20ac".encode(), "\u20ac"),
        (b"text/plain; charset=ISO-8859-1", b"caf\xe9", "caf\xe9"),
        (b'text/plain; charset="latin-1"', b"caf\xe9", "caf\xe9"),
        (b"text/plain;CHARSET=utf-16-le", "hi".encode("utf-16-le"), "hi"),
        (b"text/plain; format=flowed; charset=cp1252", b"\x80", "\u20ac"),
        (b"text/plain; charset=no-such-codec", "\u20ac".encode(), "\u20ac"),
        (b"text/plain; charset=", "\u20ac".encode(), "\u20ac"),
        (b"application/json", b"\xff{}", "\ufffd{}"),  # undecodable: replaced
    ],
)
def test_text_uses_the_charset(content_type: bytes | None, body: bytes, text: str) -> None:
    fields = [] if content_type is None else [(b"Content-Type", content_type)]
    assert Response(200, "OK", "1.1", fields, body).text == text


def test_charset() -> None:
    assert Response(200, "OK", "1.1", []).charset is None
    assert Response(200, "OK", "1.1", [(b"Content-Type", b"text/html")]).charset is None
    r = Response(200, "OK", "1.1", [(b"content-type", b"text/html; Charset = 'x'; charset=UTF-8")])
    assert r.charset == "'x'"


def test_json() -> None:
    r = Response(200, "OK", "1.1", [], b'{"price": "1.5", "qty": [1, 2]}')
    assert r.json() == {"price": "1.5", "qty": [1, 2]}
    with pytest.raises(ValueError):
        Response(200, "OK", "1.1", [], b"{not json").json()


def test_json_without_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_response, "_loads", json.loads)
    r = Response(200, "OK", "1.1", [], '{"a": "\u20ac"}'.encode())
    assert r.json() == {"a": "\u20ac"}


def test_json_uses_orjson_when_installed() -> None:
    orjson = pytest.importorskip("orjson")
    assert _response._loads is orjson.loads
