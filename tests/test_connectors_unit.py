"""The connectors' sans-I/O parts alone: Proxy URLs, handshakes byte by byte, env rules."""

from __future__ import annotations

import base64
import pickle
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warmline._policy import Origin
from warmline.connectors import (
    HTTPConnectHandshake,
    Proxy,
    Socks5Handshake,
    as_proxy,
    bypasses_proxy,
    forward_form,
    proxy_for,
    uses_tunnel,
)
from warmline.connectors._http_connect import MAX_HEAD_SIZE
from warmline.errors import InvalidRequest, ProxyError, WarmlineError
from warmline.http11 import RequestWriter

SECRET = "pa%3Ass"  # percent-encoded "pa:ss"

# -- Proxy ---------------------------------------------------------------------


def test_proxy_parses_and_hides_credentials() -> None:
    p = Proxy(f"http://bob:{SECRET}@127.0.0.1:3128")
    assert (p.scheme, p.host, p.port) == ("http", "127.0.0.1", 3128)
    assert p.credentials == ("bob", "pa:ss")
    for text in (repr(p), str(p), p.redacted, repr([p])):
        assert "bob" not in text and "pa" not in text.split("://")[1].split("@")[0]
        assert "***@127.0.0.1:3128" in text


@pytest.mark.parametrize(
    ("url", "port"),
    [
        ("http://h", 80),
        ("https://h", 443),
        ("socks5://h", 1080),
        ("socks5h://h:9050", 9050),
        ("HTTP://h:1/", 1),
    ],
)
def test_proxy_default_ports(url: str, port: int) -> None:
    assert Proxy(url).port == port


def test_proxy_ipv6_is_bracketed_when_shown() -> None:
    assert Proxy("socks5://[::1]:1080").redacted == "socks5://[::1]:1080"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://u:secretword@h:1",
        "http://u:secretword@:1",
        "http://u:secretword@h:99999",
        "http://u:secretword@h:x",
        "http://u:secretword@h:1/path",
        "http://u:secretword@h:1?q",
        "http://u:secretword@h:0",
        "socks5://u:" + "p" * 256 + "@h",
    ],
)
def test_bad_proxy_urls_never_echo_credentials(url: str) -> None:
    with pytest.raises(ValueError) as info:
        Proxy(url)
    assert "secretword" not in str(info.value) and "ppp" not in str(info.value)
    # Nothing chained that could carry the URL (urlsplit's errors quote it).
    exc = info.value
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)


def test_proxy_argument_types() -> None:
    with pytest.raises(TypeError):
        Proxy(b"http://h")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        as_proxy(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="proxy header"):
        Proxy("http://h", headers={"X-A": "b\r\nInjected: 1"})
    assert as_proxy(None) is None
    assert as_proxy("http://h:1") == Proxy("http://h:1")


def test_proxy_pickles_and_compares() -> None:
    p = Proxy("http://u:p@h:1", headers={"X-Tenant": "7"})
    assert pickle.loads(pickle.dumps(p)) == p
    assert hash(p) == hash(Proxy("http://u:p@h:1", headers=[("X-Tenant", "7")]))
    assert p != Proxy("http://u:q@h:1", headers={"X-Tenant": "7"})


def test_routes() -> None:
    http, https = Origin.parse("http://a.example:8080"), Origin.parse("https://a.example")
    assert not uses_tunnel(http, Proxy("http://p"))
    assert uses_tunnel(https, Proxy("http://p"))
    assert uses_tunnel(http, Proxy("socks5://p"))
    form = forward_form(http, Proxy("http://u:pw@p", headers={"X-T": "1"}))
    assert form is not None and form.prefix == "http://a.example:8080"
    auth = "Basic " + base64.b64encode(b"u:pw").decode()
    assert form.headers == (("Proxy-Authorization", auth), ("X-T", "1"))
    assert "Basic" not in repr(form)
    assert forward_form(https, Proxy("http://p")) is None
    assert (
        forward_form(Origin.parse("http://[::1]:81"), Proxy("http://p")).prefix == "http://[::1]:81"
    )  # type: ignore[union-attr]


# -- RequestWriter absolute-form ---------------------------------------------------


def test_writer_absolute_form() -> None:
    w = RequestWriter("h:81", absolute_form_prefix="http://h:81", user_agent=None)
    assert w.build("GET", "/a?x=1", params={"y": 2}) == (
        b"GET http://h:81/a?x=1&y=2 HTTP/1.1\r\nHost: h:81\r\n\r\n"
    )
    assert w.build("GET", "/a") == b"GET http://h:81/a HTTP/1.1\r\nHost: h:81\r\n\r\n"
    assert w.build("OPTIONS", "*").startswith(b"OPTIONS http://h:81 HTTP/1.1\r\n")
    plain = RequestWriter("h:81", user_agent=None)
    assert plain.build("GET", "/a") == b"GET /a HTTP/1.1\r\nHost: h:81\r\n\r\n"


@pytest.mark.parametrize("prefix", ["h:81", "ftp://h", "http://h/x", "http://h\r\n", "http://"])
def test_writer_refuses_bad_absolute_prefix(prefix: str) -> None:
    with pytest.raises(InvalidRequest):
        RequestWriter("h", absolute_form_prefix=prefix)


# -- HTTP CONNECT ----------------------------------------------------------------


def _connect(
    proxy: str = "http://127.0.0.1:3128", host: str = "example.com", port: int = 443
) -> HTTPConnectHandshake:
    return HTTPConnectHandshake(Proxy(proxy, headers={"X-Tenant": "7"}), host, port)


def test_connect_request_bytes() -> None:
    hs = _connect("http://u:p@127.0.0.1:3128", "::1", 8443)
    assert hs.start() == (
        b"CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n"
        b"Proxy-Authorization: Basic dTpw\r\nX-Tenant: 7\r\n\r\n"
    )


def _feed_bytewise(hs: HTTPConnectHandshake | Socks5Handshake, data: bytes) -> bytes:
    out = b""
    for i in range(len(data)):
        out += hs.feed(data[i : i + 1])
    return out


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 Connection established\r\n\r\n",
        b"HTTP/1.0 200\r\nProxy-Agent: x\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 OK\r\n\r\n",
    ],
)
def test_connect_success_byte_by_byte(answer: bytes) -> None:
    hs = _connect()
    hs.start()
    assert _feed_bytewise(hs, answer[:-1]) == b"" and not hs.done
    hs.feed(answer[-1:])
    assert hs.done and hs.status is not None and 200 <= hs.status < 300


@pytest.mark.parametrize(
    ("answer", "status", "words"),
    [
        (b"HTTP/1.1 407 Proxy Authentication Required\r\nA: b\r\n\r\n", 407, "407 Proxy Auth"),
        (b"HTTP/1.1 403 Forbidden\r\n\r\n", 403, "403 Forbidden"),
        (b"HTTP/1.1 502 \x1b[31mBad\r\n\r\n", 502, "502 ?[31mBad"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", None, "did not answer CONNECT with HTTP"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", None, "did not answer"),
        (b"HTTP/1.1 200 OK\r\n\r\nextra", None, "bytes after"),
    ],
)
def test_connect_failures(answer: bytes, status: int | None, words: str) -> None:
    hs = _connect("http://user:hunter2@127.0.0.1:3128")
    hs.start()
    with pytest.raises(ProxyError) as info:
        _feed_bytewise(hs, answer) if status else hs.feed(answer)
    assert info.value.status == status
    assert words in str(info.value)
    assert "http://***@127.0.0.1:3128" in str(info.value) and "hunter2" not in str(info.value)
    assert info.value.proxy == "http://***@127.0.0.1:3128"


def test_connect_head_is_bounded() -> None:
    hs = _connect()
    hs.start()
    hs.feed(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(ProxyError, match="over"):
        for _ in range(MAX_HEAD_SIZE // 1000 + 2):
            hs.feed(b"X-Pad: " + b"a" * 1000 + b"\r\n")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(1, 20))
def test_connect_never_raises_anything_else(data: bytes, step: int) -> None:
    hs = _connect()
    hs.start()
    try:
        for i in range(0, len(data), step):
            hs.feed(data[i : i + step])
    except WarmlineError:
        pass


# -- SOCKS5 ----------------------------------------------------------------------

OK_REPLY_V4 = b"\x05\x00\x00\x01\x7f\x00\x00\x01" + struct.pack("!H", 1080)


def test_socks5_no_auth_domain_byte_by_byte() -> None:
    hs = Socks5Handshake(Proxy("socks5h://127.0.0.1"), "example.com", 443)
    assert hs.start() == b"\x05\x01\x00"
    assert hs.feed(b"\x05") == b""
    assert hs.feed(b"\x00") == b"\x05\x01\x00\x03\x0bexample.com\x01\xbb"
    assert _feed_bytewise(hs, OK_REPLY_V4) == b"" and hs.done
    assert hs.bound == ("127.0.0.1", 1080)


def test_socks5_user_pass_ipv6() -> None:
    hs = Socks5Handshake(Proxy("socks5://al%40ice:p%20w@127.0.0.1"), "::1", 80)
    assert hs.start() == b"\x05\x02\x00\x02"
    assert hs.feed(b"\x05\x02") == b"\x01\x06al@ice\x03p w"
    request = hs.feed(b"\x01\x00")
    assert request == b"\x05\x01\x00\x04" + b"\x00" * 15 + b"\x01\x00\x50"
    reply = b"\x05\x00\x00\x03\x09localhost\x00\x50"
    assert _feed_bytewise(hs, reply) == b"" and hs.bound == ("localhost", 80)


def test_socks5_all_at_once_ipv4() -> None:
    hs = Socks5Handshake(Proxy("socks5://127.0.0.1"), "10.1.2.3", 8080)
    hs.start()
    assert hs.feed(b"\x05\x00") == b"\x05\x01\x00\x01\x0a\x01\x02\x03\x1f\x90"
    assert hs.feed(OK_REPLY_V4) == b"" and hs.done


@pytest.mark.parametrize("code", range(1, 10))
def test_socks5_reply_codes(code: int) -> None:
    hs = Socks5Handshake(Proxy("socks5h://u:hunter2@127.0.0.1:1"), "example.com", 443)
    hs.start()
    hs.feed(b"\x05\x02")
    hs.feed(b"\x01\x00")
    with pytest.raises(ProxyError) as info:
        hs.feed(bytes((5, code, 0, 1, 0, 0, 0, 0, 0, 0)))
    assert info.value.status == code
    assert f"0x{code:02x}" in str(info.value) and "hunter2" not in str(info.value)
    if code == 5:
        assert "connection refused" in str(info.value)


@pytest.mark.parametrize(
    ("steps", "words"),
    [
        ([b"\x05\xff"], "accepts none of the offered methods"),
        ([b"\x05\x02"], "was not offered"),  # no credentials: 0x02 was not offered
        ([b"\x04\x00"], "version 4"),
        ([b"\x05\x00", b"\x05\x00\x00\x07\x00"], "unknown address type"),
        ([b"\x05\x00", OK_REPLY_V4 + b"x"], "bytes after"),
    ],
)
def test_socks5_protocol_errors(steps: list[bytes], words: str) -> None:
    hs = Socks5Handshake(Proxy("socks5://127.0.0.1"), "1.2.3.4", 1)
    hs.start()
    with pytest.raises(ProxyError, match=words):
        for step in steps:
            hs.feed(step)


def test_socks5_auth_rejected() -> None:
    hs = Socks5Handshake(Proxy("socks5://u:hunter2@127.0.0.1"), "1.2.3.4", 1)
    hs.start()
    hs.feed(b"\x05\x02")
    with pytest.raises(ProxyError, match="rejected the username/password") as info:
        hs.feed(b"\x01\x01")
    assert "hunter2" not in str(info.value) and info.value.status is None


def test_socks5_long_name() -> None:
    with pytest.raises(ProxyError, match="over 255"):
        Socks5Handshake(Proxy("socks5h://h"), "a." * 128, 1)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=100), st.integers(1, 7))
def test_socks5_never_raises_anything_else(data: bytes, step: int) -> None:
    hs = Socks5Handshake(Proxy("socks5h://u:p@h"), "example.com", 443)
    hs.start()
    try:
        for i in range(0, len(data), step):
            hs.feed(data[i : i + step])
    except WarmlineError:
        pass


# -- the environment ----------------------------------------------------------------

P1, P2, P3 = "http://p1:1", "http://p2:2", "http://p3:3"


@pytest.mark.parametrize(
    ("env", "scheme", "host", "port", "want"),
    [
        ({}, "https", "a.com", 443, None),
        ({"https_proxy": P1}, "https", "a.com", 443, P1),
        ({"HTTPS_PROXY": P1}, "https", "a.com", 443, P1),
        ({"https_proxy": P1, "HTTPS_PROXY": P2}, "https", "a.com", 443, P1),  # lower wins
        ({"https_proxy": "", "HTTPS_PROXY": P2}, "https", "a.com", 443, P2),  # empty = unset
        ({"http_proxy": P1}, "https", "a.com", 443, None),
        ({"http_proxy": P1, "https_proxy": P2}, "http", "a.com", 80, P1),
        ({"HTTP_PROXY": P1}, "http", "a.com", 80, P1),
        ({"HTTP_PROXY": P1, "REQUEST_METHOD": "GET"}, "http", "a.com", 80, None),  # httpoxy
        ({"http_proxy": P1, "REQUEST_METHOD": "GET"}, "http", "a.com", 80, P1),
        ({"ALL_PROXY": P3}, "https", "a.com", 443, P3),
        ({"all_proxy": P3, "https_proxy": P1}, "https", "a.com", 443, P1),
        ({"all_proxy": "socks5h://s:1080"}, "http", "a.com", 80, "socks5h://s:1080"),
        ({"https_proxy": "p1:1"}, "https", "a.com", 443, P1),  # no scheme: http://
        ({"https_proxy": P1}, "unix", "localhost", 0, None),
        ({"https_proxy": P1, "no_proxy": "*"}, "https", "a.com", 443, None),
        ({"https_proxy": P1, "NO_PROXY": "a.com"}, "https", "a.com", 443, None),
        ({"https_proxy": P1, "no_proxy": "b.com", "NO_PROXY": "a.com"}, "https", "a.com", 443, P1),
    ],
)
def test_proxy_for(
    env: dict[str, str], scheme: str, host: str, port: int, want: str | None
) -> None:
    got = proxy_for(scheme, host, port, env)
    assert got == (None if want is None else Proxy(want))


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "bypass"),
    [
        ("", "a.com", 443, False),
        ("*", "anything", 1, True),
        ("a.com", "a.com", 443, True),
        ("a.com", "api.a.com", 443, True),
        ("a.com", "bada.com", 443, False),  # a dot boundary, unlike requests' raw suffix
        (".a.com", "a.com", 443, True),
        (".a.com", "x.y.a.com", 443, True),
        ("*.a.com", "x.a.com", 443, True),
        ("A.COM", "api.a.com", 443, True),
        ("a.com.", "a.com", 443, True),
        ("a.com:8443", "a.com", 8443, True),
        ("a.com:8443", "a.com", 443, False),
        ("b.com, a.com", "a.com", 443, True),
        ("b.com  a.com", "a.com", 443, True),
        ("localhost,127.0.0.1", "127.0.0.1", 80, True),
        ("127.0.0.1", "127.0.0.2", 80, False),
        ("10.0.0.0/8", "10.2.3.4", 80, True),
        ("10.0.0.0/8", "11.2.3.4", 80, False),
        ("10.0.0.0/8", "ten.example", 80, False),  # names are never resolved
        ("::1", "::1", 80, True),
        ("[::1]", "::1", 80, True),
        ("[::1]:80", "::1", 80, True),
        ("[::1]:81", "::1", 80, False),
        ("fd00::/8", "fd12::1", 80, True),
        ("10.0.0.0/99", "10.0.0.1", 80, False),  # a bad entry matches nothing
        (".", "a.com", 80, False),
    ],
)
def test_no_proxy(no_proxy: str, host: str, port: int, bypass: bool) -> None:
    assert bypasses_proxy(host, port, no_proxy) is bypass


def test_bad_proxy_in_env_names_the_variable_not_the_value() -> None:
    with pytest.raises(ValueError, match=r"\$HTTPS_PROXY") as info:
        proxy_for("https", "a.com", 443, {"HTTPS_PROXY": "ftp://u:hunter2@p"})
    assert "hunter2" not in str(info.value)
