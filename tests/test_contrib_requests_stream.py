"""warmline.contrib.requests with ``stream=True``: a lazy raw, on granian and MockServer."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
import requests
import urllib3

import warmline
from warmline._server.launch import Server
from warmline.contrib.requests import Adapter
from warmline.testing import MockServer, Reply, Reset, Stall

from .streamcheck import pattern, read_traced

SIZE = 8 * 1024 * 1024  # granian's /bytes/N: N bytes of a 0..255 pattern


def _session(adapter: Adapter) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.mount("http://", adapter)
    return s


@pytest.fixture
def session() -> Iterator[requests.Session]:
    s = _session(Adapter())
    yield s
    s.close()


def test_iter_content_streams_a_large_body_with_bounded_memory(
    session: requests.Session, granian: Server
) -> None:
    session.get(granian.url + "/small")  # connect first: its buffers are not the stream's

    def chunks() -> Iterator[bytes]:
        r = session.get(f"{granian.url}/bytes/{SIZE}", stream=True)
        assert isinstance(r.raw, urllib3.HTTPResponse)
        return r.iter_content(chunk_size=65536)

    read = read_traced(chunks)
    assert read.total == SIZE and read.largest == 65536
    assert read.first == pattern(0, 300)
    assert read.peak < 2 * 1024 * 1024, read.peak  # the 8 MiB body never sits in memory
    assert session.get(granian.url + "/small").ok  # the connection went back


def test_raw_read_n_gives_n_bytes_then_the_rest(session: requests.Session, granian: Server) -> None:
    r = session.get(f"{granian.url}/bytes/300000", stream=True)
    assert r.raw.read(10) == pattern(0, 10)
    assert r.raw.read(100_000) == pattern(10, 100_000)
    rest = r.raw.read()
    assert rest == pattern(100_010, 199_990)
    assert r.raw.read(10) == b""


def test_exhausting_the_body_reuses_the_connection(
    session: requests.Session, warmline_mock: MockServer
) -> None:
    warmline_mock.expect(path="/big").respond(body=b"b" * 500_000, chunked=65536)
    for _ in range(3):
        r = session.get(warmline_mock.url + "/big", stream=True)
        assert sum(len(c) for c in r.iter_content(100_000)) == 500_000
    assert len({rec.connection_id for rec in warmline_mock.journal}) == 1


def test_early_close_closes_the_connection(
    session: requests.Session, warmline_mock: MockServer
) -> None:
    warmline_mock.expect(path="/big").respond(body=b"z" * (2 * 1024 * 1024))
    warmline_mock.expect(path="/small").respond(body=b"ok")
    r = session.get(warmline_mock.url + "/big", stream=True)
    assert len(r.raw.read(1000)) == 1000
    r.close()  # 2 MiB unread: above drain_limit, so the connection is closed
    assert session.get(warmline_mock.url + "/small").content == b"ok"
    ids = [rec.connection_id for rec in warmline_mock.journal]
    assert len(ids) == 2 and ids[0] != ids[1]


def test_a_gzip_body_is_decoded_while_it_streams(
    session: requests.Session, warmline_mock: MockServer
) -> None:
    text = b"".join(b"line %d\n" % i for i in range(20_000))
    warmline_mock.expect(path="/gz").respond(body=text, gzip=True, chunked=True)
    r = session.get(warmline_mock.url + "/gz", stream=True)
    assert r.headers["content-encoding"] == "gzip"
    assert b"".join(r.iter_content(4096)) == text
    lines = list(session.get(warmline_mock.url + "/gz", stream=True).iter_lines())
    assert len(lines) == 20_000 and lines[-1] == b"line 19999"


def test_a_reset_mid_body_is_a_chunked_encoding_error(
    session: requests.Session, warmline_mock: MockServer
) -> None:
    warmline_mock.expect(path="/cut").respond_with(Reset(reply=Reply(body=b"r" * 500_000)))
    r = session.get(warmline_mock.url + "/cut", stream=True)
    assert r.status_code == 200
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for _ in r.iter_content(65536):
            pass


def test_a_stall_mid_body_is_a_connection_error_as_in_requests(
    warmline_mock: MockServer,
) -> None:
    warmline_mock.expect(path="/stall").respond_with(
        Stall(seconds=5.0, after=100_000, reply=Reply(body=b"s" * 300_000))
    )
    # While the body streams, the client's Timeouts.read bounds each wait;
    # requests raises ConnectionError for a read timeout inside iter_content.
    with _session(Adapter(timeout=warmline.Timeouts(read=0.3))) as s:
        r = s.get(warmline_mock.url + "/stall", stream=True)
        with pytest.raises(requests.exceptions.ConnectionError):
            for _ in r.iter_content(65536):
                pass


def test_without_stream_the_raw_is_spent_like_requests(
    session: requests.Session, warmline_mock: MockServer
) -> None:
    warmline_mock.expect(path="/j").respond(json={"a": 1})
    r = session.get(warmline_mock.url + "/j")
    assert r.json() == {"a": 1}
    assert r.raw.status == 200 and r.raw.headers["content-type"] == "application/json"
    assert r.raw.read() == b""  # requests already read it
    assert type(r) is requests.Response


def test_a_dropped_streamed_response_gives_its_connection_back(
    warmline_mock: MockServer,
) -> None:
    warmline_mock.expect(path="/big").respond(body=b"d" * 300_000).times(2)
    limits = warmline.Limits(total=1, per_host=1)
    timeout = warmline.Timeouts(pool=2.0)
    with _session(Adapter(limits=limits, timeout=timeout)) as s:
        r = s.get(warmline_mock.url + "/big", stream=True)
        assert r.raw.read(10) == b"d" * 10
        del r
        gc.collect()  # the file's IOBase finaliser closes the stream
        r = s.get(warmline_mock.url + "/big", stream=True)  # the one connection is free
        assert len(r.content) == 300_000
