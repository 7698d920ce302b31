"""Whole responses decoded (decompress=True, the default) on both pools and both
clients, against granian (every coding), nginx (gzip on) and MockServer."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator

import pytest

import warmline
from tests.bodydriver import KINDS, Driver
from warmline._server.app import TICKERS, encode
from warmline._server.launch import Server
from warmline.errors import DecodingError, ResponseTooLarge
from warmline.http11 import accept_encoding
from warmline.testing import MockServer

CODINGS = ["gzip", "deflate", "br", "zstd", "gzip,br", "deflate,zstd,gzip"]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def mock() -> Iterator[MockServer]:
    with MockServer() as server:
        yield server


def _driver(kind: str, url: str, **options: object) -> Driver:
    if kind.startswith("pool"):
        options.setdefault("connections", 1)
    return Driver(kind, url, **options)


@pytest.mark.parametrize("chunked", [False, True])
def test_every_coding_from_granian_decodes_to_the_original(
    kind: str, granian: Server, chunked: bool
) -> None:
    d = _driver(kind, granian.url)
    try:
        for coding in CODINGS:
            r = d.get(f"/coded/{coding}" + ("?chunked" if chunked else ""))
            assert r.content == TICKERS, coding
            assert r.json()[0]["symbol"] == "SYM0USDT"
            assert r.raw_content == encode(TICKERS, coding)
            assert r.headers["content-encoding"] == coding  # the header stays as sent
    finally:
        d.close()


def test_nginx_gzip_on_is_decoded(kind: str, nginx: Server) -> None:
    d = _driver(kind, nginx.url)
    try:
        for _ in range(3):  # the same connection, reused after each decoded body
            r = d.get("/gzip")
            assert r.headers["content-encoding"] == "gzip"
            assert r.headers.get("transfer-encoding") == "chunked"
            assert r.content == TICKERS
            assert gzip.decompress(r.raw_content) == TICKERS
    finally:
        d.close()


def test_decompress_false_gives_the_bytes_as_sent_and_asks_for_nothing(
    kind: str, mock: MockServer
) -> None:
    mock.expect(path="/t").respond(body=TICKERS, gzip=True).any_times()
    d = _driver(kind, mock.url, decompress=False)
    try:
        r = d.get("/t")
        assert gzip.decompress(r.content) == TICKERS
        assert r.raw_content is r.content
        assert "accept-encoding" not in mock.journal[-1].headers
    finally:
        d.close()


def test_accept_encoding_is_sent_unless_the_user_set_one(kind: str, mock: MockServer) -> None:
    mock.expect(path="/t").respond(body=b"plain").any_times()
    d = _driver(kind, mock.url, headers={"accept-ENCODING": "identity"})
    try:
        d.get("/t")
        assert mock.journal[-1].headers.get_all("accept-encoding") == ["identity"]
    finally:
        d.close()
    d = _driver(kind, mock.url)
    try:
        r = d.get("/t")
        assert r.content == b"plain" and r.raw_content is r.content
        assert mock.journal[-1].headers["accept-encoding"] == accept_encoding().decode()
        d.get("/t", headers={"Accept-Encoding": "gzip"})  # per request: replaces it
        assert mock.journal[-1].headers.get_all("accept-encoding") == ["gzip"]
    finally:
        d.close()


def test_a_bomb_stops_at_max_body_size_and_the_slot_heals(kind: str, mock: MockServer) -> None:
    bomb = gzip.compress(b"\0" * (8 << 20), compresslevel=9)  # 8 MiB in ~8 KiB
    mock.expect(path="/bomb").respond(body=bomb, headers={"Content-Encoding": "gzip"})
    mock.expect(path="/ok").respond(body=b"fine").any_times()
    d = _driver(kind, mock.url, max_body_size=1 << 20)
    try:
        with pytest.raises(ResponseTooLarge, match="decoded body larger"):
            d.get("/bomb")
        assert d.get("/ok").content == b"fine"
    finally:
        d.close()


@pytest.mark.parametrize(
    "body",
    [
        gzip.compress(TICKERS)[:-4],  # truncated: no trailer
        gzip.compress(TICKERS)[:-8] + b"\0" * 8,  # trailer mismatch
        b"not gzip at all",
    ],
    ids=["truncated", "bad-trailer", "garbage"],
)
def test_a_corrupt_body_is_a_decoding_error_and_the_slot_heals(
    kind: str, mock: MockServer, body: bytes
) -> None:
    mock.expect(path="/bad").respond(body=body, headers={"Content-Encoding": "gzip"})
    mock.expect(path="/ok").respond(body=b"fine").any_times()
    d = _driver(kind, mock.url)
    try:
        with pytest.raises(DecodingError) as info:
            d.get("/bad")
        assert isinstance(info.value, warmline.ProtocolError)
        assert info.value.path == "/bad" or info.value.path.endswith("/bad")
        assert d.get("/ok").content == b"fine"
    finally:
        d.close()


def test_an_unknown_coding_is_returned_as_sent(kind: str, mock: MockServer) -> None:
    sent = zlib.compress(TICKERS)
    mock.expect(path="/x").respond(body=sent, headers={"Content-Encoding": "x-custom"})
    d = _driver(kind, mock.url)
    try:
        r = d.get("/x")
        assert r.content == sent and r.headers["content-encoding"] == "x-custom"
        with pytest.raises(DecodingError, match="x-custom"):
            r.json()
        with pytest.raises(DecodingError):
            _ = r.text
    finally:
        d.close()


def test_head_and_empty_bodies_with_a_coding(kind: str, mock: MockServer) -> None:
    mock.expect(path="/h").respond(body=TICKERS, gzip=True).any_times()
    mock.expect(path="/e").respond(
        status=200, headers={"Content-Encoding": "gzip", "Content-Length": "0"}
    )
    d = _driver(kind, mock.url)
    try:
        assert d.request("HEAD", "/h").content == b""
        assert d.get("/e").content == b""
        assert d.get("/h").content == TICKERS
    finally:
        d.close()
