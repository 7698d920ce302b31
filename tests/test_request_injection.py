"""Request-side injection: CR, LF, NUL never reach the wire raw.

A raw server records every byte each connection receives. Header names and
values (per request, default, Host, User-Agent) and methods carrying CR, LF,
NUL or other controls are refused with InvalidRequest before anything is sent;
the path, the base path and query parameters are percent-encoded instead
(RFC 3986 §2.1), and a body is framed by its exact Content-Length. After each
case the recorded stream is parsed strictly: only whole requests, every line
ending in CRLF with no stray CR, LF or NUL, no header the caller did not set.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest

from warmline import InvalidRequest

from .faultproxy import FLAVOURS, Flavour, PoolDriver
from .rawserver import OK_SMALL, RawServer

TCHAR = set(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
EXPECTED_FIELDS = {
    b"host",
    b"user-agent",
    b"content-length",
    b"content-type",
    b"x-ok",
    b"accept-encoding",
}


class Recorder:
    """Records the raw bytes of each connection; answers each request with 200 ok."""

    def __init__(self) -> None:
        self.streams: dict[int, bytearray] = {}
        self.lock = threading.Lock()

    def __call__(self, conn: socket.socket, index: int) -> None:
        conn.settimeout(10)
        stream = bytearray()
        with self.lock:
            self.streams[index] = stream
        answered = 0
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                stream += data
            complete = len(parse_requests(bytes(stream), partial=True))
            while answered < complete:
                conn.sendall(OK_SMALL)
                answered += 1

    def requests(self) -> list[tuple[bytes, list[tuple[bytes, bytes]], bytes]]:
        with self.lock:
            raw = b"".join(bytes(s) for _, s in sorted(self.streams.items()))
        return parse_requests(raw)


def parse_requests(
    raw: bytes, partial: bool = False
) -> list[tuple[bytes, list[tuple[bytes, bytes]], bytes]]:
    """Strictly split ``raw`` into (request line, fields, body); all of it must parse."""
    out = []
    pos = 0
    while pos < len(raw):
        end = raw.find(b"\r\n\r\n", pos)
        if end < 0:
            assert partial, f"trailing bytes that are not a request: {raw[pos:]!r}"
            break
        lines = raw[pos:end].split(b"\r\n")
        for line in lines:
            for bad in (b"\r", b"\n", b"\x00"):
                assert bad not in line, f"raw {bad!r} in a request line: {line!r}"
        request_line, fields = lines[0], []
        assert request_line.count(b" ") == 2, request_line
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            assert colon and name and set(name) <= TCHAR, line
            fields.append((name.lower(), value.strip(b" \t")))
        length = int(dict(fields).get(b"content-length", b"0"))
        body_end = end + 4 + length
        if body_end > len(raw):
            assert partial, "a body shorter than its Content-Length"
            break
        out.append((request_line, fields, raw[end + 4 : body_end]))
        pos = body_end
    return out


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> Flavour:
    return request.param  # type: ignore[no-any-return]


def assert_clean(recorder: Recorder) -> list[tuple[bytes, list[tuple[bytes, bytes]], bytes]]:
    requests = recorder.requests()
    for _, fields, _ in requests:
        names = {name for name, _ in fields}
        assert names <= EXPECTED_FIELDS, names - EXPECTED_FIELDS
    return requests


# -- refused before anything is sent ------------------------------------------------

BAD_HEADERS: dict[str, Any] = {
    "value-crlf": {"X-A": "1\r\nX-Evil: 1"},
    "value-crlfcrlf-request": {"X-A": "1\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x"},
    "value-lf": {"X-A": "1\nX-Evil: 1"},
    "value-cr": {"X-A": "1\rX-Evil: 1"},
    "value-nul": {"X-A": "1\x00"},
    "value-vt": {"X-A": "1\x0b2"},
    "value-del": {"X-A": "1\x7f"},
    "value-unicode-lf-low-byte": {"X-A": "\u560a"},  # U+560A: a LF when truncated
    "value-line-separator": {"X-A": "a\u2028b"},
    "name-crlf": {"X-A\r\nX-Evil": "1"},
    "name-lf": {"X-A\nX-Evil": "1"},
    "name-nul": {"X-A\x00": "1"},
    "name-colon": {"X-A:": "1"},
    "name-space": {"X A": "1"},
    "name-empty": {"": "1"},
    "host-crlf": {"Host": "example.com\r\nX-Evil: 1"},
    "pairs-crlf": [("X-A", "1\r\nX-Evil: 1")],
}


@pytest.mark.parametrize("name", list(BAD_HEADERS))
def test_bad_request_header_is_refused_and_nothing_sent(flavour: Flavour, name: str) -> None:
    recorder = Recorder()
    with RawServer(recorder) as server, PoolDriver(flavour, server.url, connections=1) as pool:
        with pytest.raises(InvalidRequest) as info:
            pool.get("/x", headers=BAD_HEADERS[name], timeout=5)
        assert (info.value.method, info.value.path) == ("GET", "/x")
        if not name.startswith("name-"):
            # The message names the header but never echoes its value (a secret?).
            assert "Evil" not in str(info.value) and "smuggled" not in str(info.value)
        # The connection stays usable: the next request is the only one sent.
        assert pool.get("/ok", headers={"X-Ok": "1"}, timeout=5).content == b"ok"
        requests = assert_clean(recorder)
    assert [line for line, _, _ in requests] == [b"GET /ok HTTP/1.1"]


def test_bad_request_header_error_names_the_origin_and_is_counted(
    flavour: Flavour, request: pytest.FixtureRequest
) -> None:
    recorder = Recorder()
    with RawServer(recorder) as server, PoolDriver(flavour, server.url, connections=1) as pool:
        with pytest.raises(InvalidRequest) as info:
            pool.get("/x", headers={"X-A": "1\r\n"}, timeout=5)
        assert info.value.origin == server.url
        assert pool.stats().errors == {"InvalidRequest": 1}


@pytest.mark.parametrize("method", ["GET /x HTTP/1.1\r\nX-Evil: 1\r\n\r\nGET", "GE\x00T", "GE T"])
def test_bad_method_is_refused(flavour: Flavour, method: str) -> None:
    recorder = Recorder()
    with RawServer(recorder) as server, PoolDriver(flavour, server.url, connections=1) as pool:
        with pytest.raises(InvalidRequest):
            pool.request(method, "/x", timeout=5)
        assert pool.get("/ok", timeout=5).content == b"ok"
        assert [line for line, _, _ in assert_clean(recorder)] == [b"GET /ok HTTP/1.1"]


@pytest.mark.parametrize(
    "options",
    [
        {"headers": {"X-Api-Key": "k\r\nX-Evil: 1"}},
        {"headers": {"X-Api-Key\r\n": "k"}},
        {"headers": {"Host": "h\r\nX-Evil: 1"}},
        {"user_agent": "ua\r\nX-Evil: 1"},
        {"user_agent": "ua\x00"},
    ],
    ids=["default-value", "default-name", "default-host", "user-agent-crlf", "user-agent-nul"],
)
def test_bad_default_header_is_refused_at_connect(
    flavour: Flavour, options: dict[str, Any]
) -> None:
    recorder = Recorder()
    with RawServer(recorder) as server:
        with pytest.raises(InvalidRequest):
            PoolDriver(flavour, server.url, connections=1, **options)
        assert server.connections == 0  # refused before connecting at all


# -- encoded, never raw ---------------------------------------------------------------

PATHS = {
    "crlf": ("/a\r\nX-Evil: 1", b"/a%0D%0AX-Evil:%201"),
    "crlfcrlf-request": (
        "/a\r\n\r\nGET /smuggled HTTP/1.1\r\n",
        b"/a%0D%0A%0D%0AGET%20/smuggled%20HTTP/1.1%0D%0A",
    ),
    "lf": ("/a\nb", b"/a%0Ab"),
    "cr": ("/a\rb", b"/a%0Db"),
    "nul": ("/a\x00b", b"/a%00b"),
    "space": ("/a b", b"/a%20b"),
    "tab-vt": ("/a\t\x0bb", b"/a%09%0Bb"),
    "unicode-lf-low-byte": ("/\u560d\u560a", b"/%E5%98%8D%E5%98%8A"),
    "in-query": ("/q?a=1\r\nX-Evil: 1", b"/q?a=1%0D%0AX-Evil:%201"),
    "percent-crlf-kept-encoded": ("/a%0D%0Ab", b"/a%0D%0Ab"),
}


@pytest.mark.parametrize("name", list(PATHS))
def test_path_is_percent_encoded(flavour: Flavour, name: str) -> None:
    path, wire = PATHS[name]
    recorder = Recorder()
    with RawServer(recorder) as server, PoolDriver(flavour, server.url, connections=1) as pool:
        assert pool.get(path, timeout=5).content == b"ok"
        requests = assert_clean(recorder)
    assert [line for line, _, _ in requests] == [b"GET " + wire + b" HTTP/1.1"]


PARAMS = {
    "value-crlf": ({"q": "a\r\nX-Evil: 1"}, b"q=a%0D%0AX-Evil%3A%201"),
    "value-nul": ({"q": "a\x00b"}, b"q=a%00b"),
    "value-space-lf": ({"q": " \n"}, b"q=%20%0A"),
    "key-crlf": ({"k\r\nX-Evil: 1": "v"}, b"k%0D%0AX-Evil%3A%201=v"),
    "list-values": ({"q": ["a\r\n", "b\x00"]}, b"q=a%0D%0A&q=b%00"),
    "pairs": ([("q", "\r\n\r\nGET / HTTP/1.1")], b"q=%0D%0A%0D%0AGET%20%2F%20HTTP%2F1.1"),
    "unicode-lf-low-byte": ({"q": "\u560a"}, b"q=%E5%98%8A"),
}


@pytest.mark.parametrize("name", list(PARAMS))
def test_query_params_are_percent_encoded(flavour: Flavour, name: str) -> None:
    params, wire = PARAMS[name]
    recorder = Recorder()
    with RawServer(recorder) as server, PoolDriver(flavour, server.url, connections=1) as pool:
        assert pool.get("/p", params=params, timeout=5).content == b"ok"
        requests = assert_clean(recorder)
    assert [line for line, _, _ in requests] == [b"GET /p?" + wire + b" HTTP/1.1"]


def test_base_path_is_percent_encoded(flavour: Flavour) -> None:
    recorder = Recorder()
    with (
        RawServer(recorder) as server,
        PoolDriver(flavour, server.url, connections=1, base_path="/api\r\nX-Evil: 1") as pool,
    ):
        assert pool.get("/v", timeout=5).content == b"ok"
        requests = assert_clean(recorder)
    assert [line for line, _, _ in requests] == [b"GET /api%0D%0AX-Evil:%201/v HTTP/1.1"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"content": b"a\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"},
        {"content": "x\r\nContent-Length: 0\r\n\r\n"},
        {"json": {"k\r\n": "v\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n"}},
    ],
    ids=["bytes", "str", "json"],
)
def test_body_is_framed_by_its_exact_length(flavour: Flavour, kwargs: dict[str, Any]) -> None:
    recorder = Recorder()
    with RawServer(recorder) as server, PoolDriver(flavour, server.url, connections=1) as pool:
        assert pool.post("/b", timeout=5, **kwargs).content == b"ok"
        requests = assert_clean(recorder)
    assert len(requests) == 1  # one request, not one plus a smuggled one
    line, fields, body = requests[0]
    assert line == b"POST /b HTTP/1.1"
    assert int(dict(fields)[b"content-length"]) == len(body)
    if "content" in kwargs:
        content = kwargs["content"]
        assert body == (content.encode() if isinstance(content, str) else content)
    else:
        assert b"\r\n" not in body  # JSON escapes control characters
