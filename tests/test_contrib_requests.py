"""warmline.contrib.requests: real requests on warmline's Client, against granian and MockServer."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
import urllib3

import warmline
from warmline import errors
from warmline._server.launch import Server
from warmline.contrib.requests import Adapter, map_error, request_timeout
from warmline.testing import Close, Garbage, MockServer


@pytest.fixture
def session() -> Iterator[requests.Session]:
    s = requests.Session()
    s.trust_env = False  # a proxy from the environment must not reach these tests
    s.mount("http://", Adapter())
    yield s
    s.close()


@pytest.fixture
def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def _comparable(echo: dict[str, Any]) -> dict[str, Any]:
    # requests sends "Content-Length: 0" on a DELETE without a body; warmline's
    # writer sends none there (RFC 9110 §8.6), and frames every body itself.
    skip = ("connection", "content-length")
    headers = sorted((k, v) for k, v in echo["headers"] if k not in skip)
    return {**echo, "headers": headers}


# -- against granian, compared with requests' own adapter --------------------------------


def test_requests_echo_like_the_default_adapter(session: requests.Session, granian: Server) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [
        ("GET", {"params": {"symbol": "BTCUSDT", "limit": 5}}),
        ("GET", {"headers": {"X-Api-Key": "k1", "Accept": "application/json"}}),
        ("POST", {"json": {"side": "BUY", "qty": "0.01"}}),
        ("PUT", {"data": b"raw bytes"}),
        ("DELETE", {"params": {"id": "7"}}),
        ("PATCH", {"data": {"a": "1", "b": "x y"}}),
        ("POST", {"data": "text body"}),
    ]
    url = granian.url + "/echo"
    with requests.Session() as plain:
        plain.trust_env = False
        for method, kwargs in calls:
            a = session.request(method, url, **kwargs)
            b = plain.request(method, url, **kwargs)
            assert (a.status_code, a.reason, a.url) == (200, "OK", b.url)
            assert _comparable(a.json()) == _comparable(b.json()), (method, kwargs)
            assert a.headers["content-type"] == b.headers["content-type"]


def test_bodies_status_and_head(session: requests.Session, granian: Server) -> None:
    with requests.Session() as plain:
        plain.trust_env = False
        for path in ("/large", "/chunked", "/bytes/100000", "/small"):
            a, b = session.get(granian.url + path), plain.get(granian.url + path)
            assert (a.status_code, a.content) == (b.status_code, b.content), path
    head = session.head(granian.url + "/large")
    assert (head.status_code, head.content) == (200, b"")
    failed = session.get(granian.url + "/status/503")
    assert not failed.ok
    with pytest.raises(requests.HTTPError):
        failed.raise_for_status()


@pytest.mark.parametrize(
    "body",
    [io.BytesIO(b"from a file"), iter([b"from ", "an ", b"iterator"])],
    ids=["file", "iterator"],
)
def test_file_and_iterator_bodies_go_up_streamed(
    session: requests.Session, granian: Server, body: Any
) -> None:
    echo = session.post(granian.url + "/echo", data=body).json()
    assert echo["body"] in ("from a file", "from an iterator")
    fields = [tuple(h) for h in echo["headers"]]
    assert ("transfer-encoding", "chunked") in fields  # not joined: no length known
    assert "content-length" not in [k for k, _ in fields]


def test_a_regular_file_goes_up_with_its_length(
    session: requests.Session, granian: Server, tmp_path: Any
) -> None:
    path = tmp_path / "body.bin"
    path.write_bytes(b"on disk" * 1000)
    with path.open("rb") as file:
        echo = session.post(granian.url + "/echo", data=file).json()
    assert echo["body"] == "on disk" * 1000
    assert ("content-length", "7000") in [tuple(h) for h in echo["headers"]]


# -- against MockServer -----------------------------------------------------------------


def test_stream_true_serves_the_body_through_raw(
    session: requests.Session, warmline_mock: MockServer
) -> None:
    lines = b"".join(b"line %d\n" % i for i in range(100))
    warmline_mock.expect(path="/lines").respond(body=lines, gzip=True).times(3)
    r = session.get(warmline_mock.url + "/lines", stream=True)
    assert b"".join(r.iter_content(chunk_size=7)) == lines
    r = session.get(warmline_mock.url + "/lines", stream=True)
    assert list(r.iter_lines())[:2] == [b"line 0", b"line 1"]
    r = session.get(warmline_mock.url + "/lines", stream=True)
    assert r.raw.read(decode_content=True) == lines
    r.close()


def test_cookies_reach_the_session_jar(
    session: requests.Session, warmline_mock: MockServer
) -> None:
    warmline_mock.expect(path="/login").respond(
        body="ok", headers={"Set-Cookie": "sid=abc; Path=/"}
    ).once()
    warmline_mock.expect(path="/me", headers={"Cookie": "sid=abc"}).respond(body="me").once()
    r = session.get(warmline_mock.url + "/login")
    assert r.cookies["sid"] == "abc"
    assert session.get(warmline_mock.url + "/me").text == "me"


def test_redirects_are_followed_by_requests(
    session: requests.Session, warmline_mock: MockServer
) -> None:
    warmline_mock.expect(path="/old").respond(301, headers={"Location": "/new"}).once()
    warmline_mock.expect(path="/new").respond(json={"here": True}).once()
    r = session.get(warmline_mock.url + "/old")
    assert r.json() == {"here": True}
    assert [h.status_code for h in r.history] == [301]
    assert r.url == warmline_mock.url + "/new"


def test_userinfo_goes_as_basic_auth(session: requests.Session, warmline_mock: MockServer) -> None:
    warmline_mock.expect(headers={"Authorization": "Basic dTpw"}).respond(body="in").once()
    url = warmline_mock.url.replace("http://", "http://u:p@") + "/private"
    assert session.get(url).text == "in"
    assert warmline_mock.journal[0].target == "/private"


def test_connections_are_reused_across_threads(warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/t").respond(json={"ok": True}).times(60)
    with requests.Session() as s:
        s.mount("http://", Adapter(limits=warmline.Limits(total=10, per_host=3)))
        for _ in range(10):
            assert s.get(warmline_mock.url + "/t").ok
        with ThreadPoolExecutor(6) as ex:
            rs = list(ex.map(lambda _: s.get(warmline_mock.url + "/t"), range(50)))
    assert all(r.json() == {"ok": True} for r in rs)
    ids = [r.connection_id for r in warmline_mock.journal]
    assert len(set(ids[:10])) == 1
    assert len(set(ids)) <= 3


@pytest.mark.parametrize("timeout", [0.2, (0.2, 0.2), (None, 0.2)])
def test_a_slow_server_raises_read_timeout(
    session: requests.Session, warmline_mock: MockServer, timeout: Any
) -> None:
    warmline_mock.expect(path="/slow").respond(body="late", delay=2.0).once()
    with pytest.raises(requests.exceptions.ReadTimeout) as info:
        session.get(warmline_mock.url + "/slow", timeout=timeout)
    assert isinstance(info.value.__cause__, errors.ReadTimeout)
    assert info.value.request is not None


def test_no_free_connection_is_a_connect_timeout(warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/slow").respond(body="x", delay=1.0).any_times()
    adapter = Adapter(
        limits=warmline.Limits(total=1, per_host=1), timeout=warmline.Timeouts(pool=0.1)
    )
    with requests.Session() as s, ThreadPoolExecutor(1) as ex:
        s.mount("http://", adapter)
        first = ex.submit(s.get, warmline_mock.url + "/slow")
        warmline_mock.wait_for_requests(1)
        with pytest.raises(requests.exceptions.ConnectTimeout):
            s.get(warmline_mock.url + "/slow")
        assert first.result().text == "x"


def test_a_closed_port_raises_connection_error(session: requests.Session, closed_port: int) -> None:
    with pytest.raises(requests.exceptions.ConnectionError) as info:
        session.get(f"http://127.0.0.1:{closed_port}/")
    assert not isinstance(info.value, requests.exceptions.Timeout)


@pytest.mark.parametrize("fault", [Close(), Garbage(b"not http\r\n\r\n")])
def test_a_broken_peer_raises_connection_error(
    warmline_mock: MockServer, fault: Close | Garbage
) -> None:
    warmline_mock.expect(path="/x").respond_with(fault).any_times()
    with requests.Session() as s:
        s.mount("http://", Adapter(retry_stale=False))
        with pytest.raises(requests.exceptions.ConnectionError):
            s.get(warmline_mock.url + "/x")


def test_proxies_and_certs_are_refused_clearly(
    session: requests.Session, warmline_mock: MockServer
) -> None:
    warmline_mock.expect(path="/").respond(body="direct").any_times()
    with pytest.raises(requests.exceptions.ProxyError, match="proxies"):
        session.get(warmline_mock.url, proxies={"http": "http://127.0.0.1:9"})
    with pytest.raises(ValueError, match="tls="):
        session.get(warmline_mock.url, cert="/nonexistent.pem")
    # verify= is the client's TLS context: ignored per request, never weakened.
    assert session.get(warmline_mock.url, verify=False).text == "direct"
    assert session.get(warmline_mock.url, proxies={"https": "http://127.0.0.1:9"}).ok


# -- units -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (errors.ConnectTimeout("t"), requests.exceptions.ConnectTimeout),
        (errors.PoolTimeout("t"), requests.exceptions.ConnectTimeout),
        (errors.ReadTimeout("t"), requests.exceptions.ReadTimeout),
        (errors.WriteTimeout("t"), requests.exceptions.Timeout),
        (errors.ProxyError("p"), requests.exceptions.ProxyError),
        (errors.ConnectError("c"), requests.exceptions.ConnectionError),
        (errors.ConnectionClosed("c"), requests.exceptions.ConnectionError),
        (errors.ProtocolError("p"), requests.exceptions.ConnectionError),
        (errors.InvalidRequest("i"), requests.exceptions.InvalidURL),
        (errors.PoolClosed("closed"), requests.exceptions.RequestException),
    ],
)
def test_every_error_maps_to_its_requests_class(
    ours: errors.WarmlineError, theirs: type[requests.exceptions.RequestException]
) -> None:
    request = requests.Request("GET", "http://127.0.0.1/x").prepare()
    mapped = map_error(ours, request)
    assert type(mapped) is theirs
    assert mapped.request is request


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [
        (None, None),
        (3, 3.0),
        (2.5, 2.5),
        ((1.0, 4.0), 4.0),
        ((6, 4.0), 6.0),
        ((None, 2.0), 2.0),
        ((1.0, None), None),
        (urllib3.Timeout(total=7.0), 7.0),
        (urllib3.Timeout(connect=1.0, read=3.0), 3.0),
        (urllib3.Timeout(connect=1.0), None),
    ],
)
def test_requests_timeouts_become_one_total(timeout: Any, expected: float | None) -> None:
    assert request_timeout(timeout) == expected


def test_bad_timeouts_fail_like_requests() -> None:
    with pytest.raises(ValueError, match="connect, read"):
        request_timeout((1.0, 2.0, 3.0))
    with pytest.raises(TypeError):
        request_timeout("5")


def test_a_given_client_is_left_open(warmline_mock: MockServer) -> None:
    warmline_mock.expect(path="/t").respond(body="x").times(2)
    with warmline.Client() as mine:
        with requests.Session() as s:
            s.mount("http://", Adapter(mine))
            assert s.get(warmline_mock.url + "/t").text == "x"
        assert not mine.closed
        assert mine.get(warmline_mock.url + "/t").content == b"x"
    with pytest.raises(TypeError, match="not both"):
        Adapter(mine, warm={})
    with pytest.raises(TypeError, match=r"warmline\.Client"):
        Adapter(warmline.AsyncClient())  # type: ignore[arg-type]
