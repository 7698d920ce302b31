"""Content decoders: round trips in any split, stacks, truncation, corruption, bombs."""

from __future__ import annotations

import gzip
import importlib
import tracemalloc
import zlib
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warmline.errors import DecodingError, ProtocolError, ResponseTooLarge
from warmline.http11 import _decoders
from warmline.http11._decoders import (
    MAX_CODINGS,
    Decoder,
    accept_encoding,
    available_codings,
    gzip_backend,
    make_decoder,
)


def _optional(name: str) -> object | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


brotli = _optional("brotli") or _optional("brotlicffi")
zstd = _optional("compression.zstd") or _optional("backports.zstd")
needs_brotli = pytest.mark.skipif(
    brotli is None, reason="br needs the brotli extra: pip install 'warmline[brotli]'"
)
needs_zstd = pytest.mark.skipif(
    zstd is None, reason="zstd needs the zstd extra: pip install 'warmline[zstd]'"
)


def _raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def _br(data: bytes) -> bytes:
    assert brotli is not None
    return brotli.compress(data)  # type: ignore[attr-defined,no-any-return]


def _zstd(data: bytes) -> bytes:
    assert zstd is not None
    return zstd.compress(data)  # type: ignore[attr-defined,no-any-return]


# name in the header -> encoder
ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "raw deflate": _raw_deflate,
    "br": _br,
    "zstd": _zstd,
}
CODING_PARAMS = [
    pytest.param("gzip", id="gzip"),
    pytest.param("deflate", id="deflate-zlib"),
    pytest.param("raw deflate", id="deflate-raw"),
    pytest.param("br", id="br", marks=needs_brotli),
    pytest.param("zstd", id="zstd", marks=needs_zstd),
]


def _header(kind: str) -> str:
    return "deflate" if kind == "raw deflate" else kind


def _gzip_backends() -> list[object]:
    names = ["zlib", "zlib_ng.zlib_ng", "isal.isal_zlib"]
    return [
        pytest.param(
            name, marks=pytest.mark.skipif(_optional(name) is None, reason="not installed")
        )
        for name in names
    ]


@pytest.fixture(params=_gzip_backends())
def gzip_module(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test on each installed gzip backend."""
    monkeypatch.setattr(_decoders, "_gzip_module", importlib.import_module(request.param))
    return str(request.param)


def _decode(header: str, pieces: list[bytes], max_size: int = 1 << 24) -> bytes:
    decoder = make_decoder(header, max_size=max_size)
    assert decoder is not None
    out = b"".join(decoder.feed(piece) for piece in pieces)
    return out + decoder.flush()


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


# -- round trips ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", CODING_PARAMS)
@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_round_trip_any_split(kind: str, data: bytes, cuts: list[int]) -> None:
    encoded = ENCODERS[kind](data)
    assert _decode(_header(kind), _split(encoded, cuts)) == data


@pytest.mark.parametrize("kind", CODING_PARAMS)
def test_round_trip_byte_by_byte(kind: str) -> None:
    data = b"".join(b"%d:%s," % (i, b"x" * (i % 13)) for i in range(2000))
    encoded = ENCODERS[kind](data)
    pieces = [encoded[i : i + 1] for i in range(len(encoded))]
    assert _decode(_header(kind), pieces) == data


@pytest.mark.parametrize("kind", ["gzip", "deflate", "raw deflate"])
def test_each_gzip_backend_round_trips(gzip_module: str, kind: str) -> None:
    data = bytes(range(256)) * 300 + b"\0" * 100_000
    assert gzip_backend()[1] is importlib.import_module(gzip_module)
    encoded = ENCODERS[kind](data)
    assert _decode(_header(kind), _split(encoded, [1, 2, 777, 5000])) == data
    with pytest.raises(DecodingError, match="truncated"):
        _decode(_header(kind), [encoded[:-3]])


def test_gzip_backend_is_the_fastest_installed() -> None:
    name, module = gzip_backend()
    expected = next(
        n for n in ("isal.isal_zlib", "zlib_ng.zlib_ng", "zlib") if _optional(n) is not None
    )
    assert module is importlib.import_module(expected)
    assert name == expected.rpartition(".")[2]


def test_deflate_flavours_are_told_apart() -> None:
    data = b"the same text, wrapped or not " * 50
    for encoded in (zlib.compress(data), _raw_deflate(data)):
        decoder = make_decoder("deflate", max_size=1 << 20)
        assert decoder is not None
        assert decoder.feed(encoded[:1]) == b""  # one byte cannot tell them apart
        assert decoder.feed(encoded[1:]) + decoder.flush() == data


def test_gzip_members_follow_each_other() -> None:
    encoded = gzip.compress(b"first ") + gzip.compress(b"") + gzip.compress(b"second")
    assert _decode("gzip", [encoded]) == b"first second"
    assert _decode("gzip", [encoded[i : i + 1] for i in range(len(encoded))]) == b"first second"


@needs_zstd
def test_zstd_frames_follow_each_other() -> None:
    encoded = _zstd(b"one ") + _zstd(b"two")
    assert _decode("zstd", _split(encoded, [3, 15, 20])) == b"one two"


# -- stacks and the header -------------------------------------------------------------


def _stack_params() -> list[object]:
    stacks = [("gzip", "gzip"), ("deflate", "gzip"), ("gzip", "br"), ("zstd", "br", "gzip")]
    params = []
    for stack in stacks:
        marks = []
        if "br" in stack:
            marks.append(needs_brotli)
        if "zstd" in stack:
            marks.append(needs_zstd)
        params.append(pytest.param(stack, id=",".join(stack), marks=marks))
    return params


@pytest.mark.parametrize("stack", _stack_params())
def test_stacked_codings_decode_in_reverse(stack: tuple[str, ...]) -> None:
    data = b'{"price":"1.0","qty":"2"}' * 400
    encoded = data
    for name in stack:  # applied in header order
        encoded = ENCODERS[name](encoded)
    header = ", ".join(stack)
    decoder = make_decoder(header, max_size=1 << 20)
    assert decoder is not None
    assert decoder.codings == tuple(reversed(stack))
    assert _decode(header, _split(encoded, [1, 50, 51, 300])) == data


@pytest.mark.parametrize("value", [None, "", b"", "identity", " Identity ,, ", b"identity"])
def test_nothing_to_decode(value: str | bytes | None) -> None:
    assert make_decoder(value, max_size=10) is None


@pytest.mark.parametrize("value", ["GZIP", " gzip ", "x-gzip", b"gzip", "identity, gzip,"])
def test_header_forms(value: str | bytes) -> None:
    decoder = make_decoder(value, max_size=100)
    assert decoder is not None
    assert decoder.codings == ("gzip",)
    assert decoder.feed(gzip.compress(b"ok")) + decoder.flush() == b"ok"


@pytest.mark.parametrize("value", ["compress", "gzip, snappy", "x-bzip2", "chunked"])
def test_unknown_coding_is_named(value: str) -> None:
    with pytest.raises(DecodingError, match="unsupported Content-Encoding") as info:
        make_decoder(value, max_size=100)
    assert value.rpartition(" ")[2] in str(info.value)
    assert isinstance(info.value, ProtocolError)


def test_stack_depth_is_bounded() -> None:
    assert make_decoder(", ".join(["gzip"] * MAX_CODINGS), max_size=100) is not None
    with pytest.raises(DecodingError, match="more than 5"):
        make_decoder(", ".join(["gzip"] * (MAX_CODINGS + 1)), max_size=100)


def test_bad_limits() -> None:
    with pytest.raises(ValueError, match="max_size"):
        make_decoder("gzip", max_size=-1)
    decoder = make_decoder("gzip", max_size=10)
    assert decoder is not None
    with pytest.raises(ValueError, match="chunk_size"):
        decoder.iter_feed(b"", 0)


# -- bad streams -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CODING_PARAMS)
def test_truncated_stream(kind: str) -> None:
    data = bytes(range(256)) * 64
    encoded = ENCODERS[kind](data)
    for cut in (1, 2, len(encoded) // 2, len(encoded) - 1):
        decoder = make_decoder(_header(kind), max_size=1 << 20)
        assert decoder is not None
        decoder.feed(encoded[:cut])
        with pytest.raises(DecodingError, match="truncated"):
            decoder.flush()


@pytest.mark.parametrize("kind", CODING_PARAMS)
def test_empty_body_is_empty(kind: str) -> None:
    decoder = make_decoder(_header(kind), max_size=0)
    assert decoder is not None
    assert decoder.feed(b"") == b""
    assert decoder.flush() == b""


@pytest.mark.parametrize(
    ("header", "body"),
    [
        pytest.param("gzip", b"this is not gzip at all", id="gzip-garbage"),
        pytest.param("deflate", b"\xff" * 40, id="deflate-garbage"),
        pytest.param("gzip", gzip.compress(b"x" * 100)[:-8] + b"\0" * 8, id="gzip-crc"),
        pytest.param("gzip", gzip.compress(b"abc") + b"junk after it", id="gzip-trailing"),
        pytest.param("deflate", zlib.compress(b"abc") + b"more", id="zlib-trailing"),
        pytest.param("deflate", zlib.compress(b"abc")[:-1] + b"\0", id="zlib-adler"),
        pytest.param("br", b"\xff\xff\xff\xff not br", id="br-garbage", marks=needs_brotli),
        pytest.param("zstd", b"not a zstd frame", id="zstd-garbage", marks=needs_zstd),
    ],
)
def test_corrupt_stream(header: str, body: bytes) -> None:
    decoder = make_decoder(header, max_size=1 << 20)
    assert decoder is not None
    with pytest.raises(DecodingError):
        decoder.feed(body)
        decoder.flush()


@needs_brotli
def test_br_trailing_data() -> None:
    with pytest.raises(DecodingError):
        _decode("br", [_br(b"abc"), b"junk"])


@needs_zstd
def test_zstd_trailing_data() -> None:
    with pytest.raises(DecodingError):
        _decode("zstd", [_zstd(b"abc") + b"junk"])


@needs_zstd
def test_zstd_window_larger_than_allowed() -> None:
    assert zstd is not None
    # A frame that asks for a 128 MiB window: refused before allocating it
    # when the body may hold 1 MiB (the cap is then the 8 MiB floor).
    option = {zstd.CompressionParameter.window_log: 27}  # type: ignore[attr-defined]
    # Streamed (no content size in the header), so the frame keeps its window.
    c = zstd.ZstdCompressor(options=option)  # type: ignore[attr-defined]
    encoded = c.compress(b"x" * 1000) + c.flush()
    with pytest.raises(DecodingError, match="corrupt zstd"):
        _decode("zstd", [encoded], max_size=1 << 20)
    assert _decode("zstd", [encoded], max_size=1 << 27) == b"x" * 1000


# -- limits and bombs ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", CODING_PARAMS)
def test_limit_is_exact(kind: str) -> None:
    data = b"0123456789" * 1000
    encoded = ENCODERS[kind](data)
    assert _decode(_header(kind), [encoded], max_size=len(data)) == data
    with pytest.raises(ResponseTooLarge):
        _decode(_header(kind), [encoded], max_size=len(data) - 1)


def _gzip_zeros(gib: int = 1) -> Iterator[bytes]:
    """1 GiB of zeros as a valid gzip stream of ~1 MiB, made without compressing 1 GiB.

    After a full flush deflate starts afresh, so each 1 MiB block of zeros
    compresses to the same bytes: compress it once and repeat it.
    """
    zeros = b"\0" * (1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    yield b"\x1f\x8b\x08\0\0\0\0\0\0\xff"  # gzip header (RFC 1952 §2.3)
    crc = 0
    for _ in range(1024 * gib):
        yield block
        crc = zlib.crc32(zeros, crc)
    yield (
        c.flush() + crc.to_bytes(4, "little") + ((1 << 30) * gib % (1 << 32)).to_bytes(4, "little")
    )


def _blocks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


def _feed_all(header: str, pieces: Iterator[bytes], max_size: int) -> None:
    decoder = make_decoder(header, max_size=max_size)
    assert decoder is not None
    for piece in pieces:
        decoder.feed(piece)
    decoder.flush()


def test_gzip_bomb_stops_at_the_limit_with_bounded_memory(gzip_module: str) -> None:
    limit = 1 << 20
    sent = 0

    def pieces() -> Iterator[bytes]:
        nonlocal sent
        for piece in _gzip_zeros():
            sent += len(piece)
            yield piece

    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLarge, match="decoded body larger than 1048576"):
            _feed_all("gzip", pieces(), limit)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sent < 64 * 1024  # stopped at once, not after the whole gigabyte
    assert peak < limit + 3 * (1 << 20)


def test_the_gzip_bomb_is_valid() -> None:
    # The bomb generator makes a real stream: with room for it all, it decodes.
    decoder = make_decoder("gzip", max_size=1 << 30)
    assert decoder is not None
    total = 0
    for piece in _gzip_zeros():
        for out in decoder.iter_feed(piece, 1 << 20):
            assert len(out) <= 1 << 20
            total += len(out)
    decoder.flush()
    assert total == 1 << 30


@pytest.mark.parametrize(
    "kind", [pytest.param("br", marks=needs_brotli), pytest.param("zstd", marks=needs_zstd)]
)
def test_br_and_zstd_bombs(kind: str) -> None:
    zeros = b"\0" * (1 << 20)
    if kind == "br":
        assert brotli is not None
        c = brotli.Compressor(quality=1)  # type: ignore[attr-defined]
        parts = [c.process(zeros) for _ in range(256)] + [c.finish()]
    else:
        assert zstd is not None
        c = zstd.ZstdCompressor(level=1)  # type: ignore[attr-defined]
        parts = [c.compress(zeros) for _ in range(256)] + [c.flush()]
    encoded = b"".join(parts)
    assert len(encoded) < 1 << 20  # 256 MiB squeezed into little
    limit = 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLarge):
            _feed_all(kind, _blocks(encoded), limit)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit + len(encoded) + 3 * (1 << 20)


def test_bomb_inside_a_stack_stays_bounded() -> None:
    # gzip(gzip(256 MiB of zeros)): the inner layer decodes in steps, so the
    # outer layer's output never piles up.
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    inner = b"".join(c.compress(b"\0" * (1 << 20)) for _ in range(256)) + c.flush()
    outer = gzip.compress(inner)
    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLarge):
            _feed_all("gzip, gzip", iter([outer]), 1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * (1 << 20)


def test_iter_feed_pieces_are_bounded() -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    decoder = make_decoder("gzip", max_size=len(data))
    assert decoder is not None
    pieces = list(decoder.iter_feed(gzip.compress(data), 10_000))
    assert max(len(p) for p in pieces) <= 10_000
    assert b"".join(pieces) == data
    assert decoder.size == len(data)
    assert decoder.flush() == b""


@pytest.mark.skipif(_optional("brotlicffi") is None, reason="brotlicffi not installed")
def test_brotlicffi_binding(monkeypatch: pytest.MonkeyPatch) -> None:
    brotlicffi = importlib.import_module("brotlicffi")
    monkeypatch.setattr(_decoders, "_brotli_module", brotlicffi)
    data = bytes(range(256)) * 1000
    encoded = brotlicffi.compress(data)
    assert _decode("br", _split(encoded, [1, 9, 100])) == data
    with pytest.raises(DecodingError, match="truncated"):
        _decode("br", [encoded[:-2]])
    with pytest.raises(ResponseTooLarge):
        _decode("br", [encoded], max_size=len(data) - 1)
    decoder = make_decoder("br", max_size=len(data))
    assert decoder is not None
    assert max(len(p) for p in decoder.iter_feed(encoded, 1000)) <= 1000


# -- what is installed ----------------------------------------------------------------------


def test_accept_encoding_reflects_what_is_installed() -> None:
    expected = ["gzip", "deflate"]
    if brotli is not None:
        expected.append("br")
    if zstd is not None:
        expected.append("zstd")
    assert available_codings() == tuple(expected)
    assert accept_encoding() == ", ".join(expected).encode()


@pytest.mark.parametrize(
    ("name", "attr", "extra"),
    [("br", "_brotli_module", "brotli"), ("zstd", "_zstd_module", "zstd")],
)
def test_missing_extra_is_named(
    monkeypatch: pytest.MonkeyPatch, name: str, attr: str, extra: str
) -> None:
    monkeypatch.setattr(_decoders, attr, _decoders._MISSING)
    monkeypatch.setattr(_decoders, "_PARSED", {})
    monkeypatch.setattr(_decoders, "_accept_encoding", None)
    with pytest.raises(DecodingError, match=rf"pip install 'warmline\[{extra}\]'"):
        make_decoder(f"gzip, {name}", max_size=100)
    assert name not in available_codings()
    assert name.encode() not in accept_encoding()
    assert accept_encoding().startswith(b"gzip, deflate")


def test_repr_and_direct_construction() -> None:
    decoder = Decoder(("gzip",), max_size=50)
    decoder.feed(gzip.compress(b"abc"))
    assert repr(decoder) == "<Decoder gzip 3/50 bytes>"
